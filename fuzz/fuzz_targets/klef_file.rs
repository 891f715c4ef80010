//! Fuzzes the `.klef` file reader: arbitrary bytes must never panic, and every file it accepts
//! must render and parse back to the same value.
#![no_main]

use klef_core::klef_file::{KlefFile, VERSION};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = KlefFile::parse(data) else {
        return;
    };
    assert!(file.version <= VERSION, "accepted a newer format version");
    let rendered = file.render();
    let again = KlefFile::parse(rendered.as_bytes()).expect("a rendered .klef file must parse");
    assert_eq!(again, file, "the .klef file did not round-trip");
});
