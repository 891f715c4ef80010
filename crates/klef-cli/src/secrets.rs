//! Helpers shared by the secret commands: name and size checks, decryption of stored
//! versions, and the current time. Values stay in `Zeroizing` buffers throughout.

use anyhow::{Context as _, Result};
use klef_core::crypto::{self, SealedValue, SymmetricKey};
use klef_core::dotenv::Entry;
use klef_core::model::{SecretVersion, Timestamp};
use klef_core::names::{MAX_VALUE_LEN, validate_key_name};
use zeroize::Zeroizing;

use crate::context::Target;
use crate::diagnostics::Failure;

/// Checks a key name (`[A-Za-z_][A-Za-z0-9_]*`); a bad name is a usage error (exit 2).
pub(crate) fn check_name(name: &str) -> Result<()> {
    validate_key_name(name)?;
    Ok(())
}

/// Checks a value's size (at most 1 MiB).
pub(crate) fn check_value(name: &str, value: &str) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Failure::usage(format!(
            "the value of {name} is larger than 1 MiB ({} bytes)",
            value.len()
        ))
        .into());
    }
    Ok(())
}

/// Decrypts one stored version (a tombstone has no value and is an error here).
pub(crate) fn decrypt(
    key: &SymmetricKey,
    t: &Target,
    sv: &SecretVersion,
) -> Result<Zeroizing<String>> {
    let Some(ct) = &sv.ciphertext else {
        return Err(
            Failure::not_found(format!("{} was deleted in {}", sv.name, t.describe())).into(),
        );
    };
    let bytes = crypto::decrypt_value(key, &t.env.id, &sv.name, &SealedValue::from(ct))
        .with_context(|| format!("failed to decrypt {}", sv.name))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Failure::other(format!("the value of {} is not valid UTF-8", sv.name)))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Decrypts every live secret, sorted by name.
pub(crate) fn decrypt_all(
    key: &SymmetricKey,
    t: &Target,
    versions: &[SecretVersion],
) -> Result<Vec<Entry>> {
    let mut out = Vec::with_capacity(versions.len());
    for sv in versions.iter().filter(|s| s.ciphertext.is_some()) {
        out.push(Entry {
            name: sv.name.clone(),
            value: decrypt(key, t, sv)?,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Encrypts a value for `name` in the target environment.
pub(crate) fn encrypt(
    key: &SymmetricKey,
    t: &Target,
    name: &str,
    value: &str,
) -> klef_core::model::Blob {
    crypto::encrypt_value(key, &t.env.id, name, value.as_bytes()).into()
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Shows a value on one line for tables (newlines and tabs escaped).
pub(crate) fn one_line_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_limit_is_one_mebibyte() {
        assert!(check_value("A", &"x".repeat(MAX_VALUE_LEN)).is_ok());
        let err = check_value("A", &"x".repeat(MAX_VALUE_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("1 MiB"));
    }

    #[test]
    fn escapes_for_tables() {
        assert_eq!(one_line_value("a\nb\\c"), "a\\nb\\\\c");
    }
}
