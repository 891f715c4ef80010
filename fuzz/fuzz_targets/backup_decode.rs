//! Fuzzes the backup archive decoder (`klef backup import` reads files from anywhere): arbitrary
//! bytes must never panic, and every archive it accepts must encode and decode to the same value.
#![no_main]

use klef_core::backup::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(archive) = decode(data) else {
        return;
    };
    let again = decode(&encode(&archive)).expect("an encoded archive must decode");
    assert!(again == archive, "the archive did not round-trip");
});
