//! Fuzzes id parsing (`FromStr` and serde) and the name validators.
//!
//! An accepted id is the lower-cased input and survives Display/serde round trips; an accepted
//! key name, slug or display name satisfies the documented grammar, checked here independently.
#![no_main]

use klef_core::ids::{AccountId, ApiKeyId, EnvironmentId, InviteId, ProjectId, RawId, WorkspaceId};
use klef_core::names::{validate_display_name, validate_key_name, validate_slug};
use libfuzzer_sys::fuzz_target;

fn check_id<T>(text: &str)
where
    T: std::str::FromStr + std::fmt::Display + PartialEq + std::fmt::Debug,
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let Ok(id) = text.parse::<T>() else {
        assert!(
            serde_json::from_value::<T>(serde_json::Value::String(text.to_owned())).is_err(),
            "serde accepted an id that FromStr rejects"
        );
        return;
    };
    assert_eq!(id.to_string(), text.to_ascii_lowercase(), "not canonical");
    let json = serde_json::to_string(&id).expect("ids serialize");
    assert_eq!(
        serde_json::from_str::<T>(&json).expect("ids deserialize"),
        id
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    check_id::<AccountId>(text);
    check_id::<WorkspaceId>(text);
    check_id::<ProjectId>(text);
    check_id::<EnvironmentId>(text);
    check_id::<ApiKeyId>(text);
    check_id::<InviteId>(text);
    if let Ok(raw) = text.parse::<RawId>() {
        assert_eq!(raw.to_string().parse::<RawId>().ok(), Some(raw));
    }

    let key_ok = text.len() <= 256
        && text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    assert_eq!(validate_key_name(text).is_ok(), key_ok, "key name rule");

    let slug_ok = text.len() <= 64
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    assert_eq!(validate_slug(text).is_ok(), slug_ok, "slug rule");

    let display_ok = !text.trim().is_empty()
        && text.len() <= 128
        && !text.chars().any(char::is_control)
        && !text.contains(':');
    assert_eq!(
        validate_display_name("project name", text).is_ok(),
        display_ok,
        "display name rule"
    );
});
