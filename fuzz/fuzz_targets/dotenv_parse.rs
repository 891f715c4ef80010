//! Fuzzes the `.env` parser on arbitrary UTF-8 and checks every renderer against it.
//!
//! For every input that parses: the `.env` rendering must parse back to exactly the same
//! entries (whatever the values' portability), the JSON rendering must be a JSON object with
//! the same names and values, and the YAML and shell renderings must not panic.
#![no_main]

use klef_core::dotenv::{Format, parse, portability, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(entries) = parse(text) else {
        return;
    };

    let rendered = render(&entries, Format::Dotenv);
    let reparsed = parse(&rendered).expect("the .env rendering of parsed entries must parse");
    assert!(
        reparsed == entries,
        "the .env rendering did not round-trip ({} entries in, {} out)",
        entries.len(),
        reparsed.len()
    );

    let json = render(&entries, Format::Json);
    let value: serde_json::Value =
        serde_json::from_str(&json).expect("the JSON rendering must be valid JSON");
    let object = value
        .as_object()
        .expect("the JSON rendering must be an object");
    assert_eq!(
        object.len(),
        entries.len(),
        "parse must return unique names"
    );
    for entry in &entries {
        assert_eq!(
            object.get(&entry.name).and_then(serde_json::Value::as_str),
            Some(entry.value.as_str()),
            "JSON value of {} differs",
            entry.name
        );
        let _ = portability(&entry.value);
    }

    let _ = render(&entries, Format::Yaml);
    let _ = render(&entries, Format::Shell);
});
