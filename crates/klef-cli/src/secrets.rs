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

/// What storing a value means for `klef run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueFit {
    /// It can be passed as an environment variable.
    Fits,
    /// It is stored, but `klef run` cannot pass it: warn with
    /// [`crate::env_policy::too_long_warning`].
    TooLongForRun,
}

/// The one check of every value `klef set` and `klef push` store: at most 1 MiB, and no NUL
/// byte (no program could receive it in its environment); both are usage errors naming the
/// key (exit 2) and never show the value. A value too long to pass as one environment variable
/// is accepted as [`ValueFit::TooLongForRun`].
pub(crate) fn check_value(name: &str, value: &str) -> Result<ValueFit> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Failure::usage(format!(
            "the value of {name} is larger than 1 MiB ({} bytes)",
            value.len()
        ))
        .into());
    }
    if value.contains('\0') {
        return Err(Failure::usage(format!(
            "the value of {name} contains a NUL byte, which no environment variable can hold"
        ))
        .hint("remove the NUL byte; store binary data encoded (base64), or keep it in a file")
        .into());
    }
    Ok(if crate::env_policy::too_long_for_env(name, value) {
        ValueFit::TooLongForRun
    } else {
        ValueFit::Fits
    })
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
    let at = crypto::ValueAt {
        version: u64::try_from(sv.version).unwrap_or(0),
        key_version: u64::try_from(sv.key_version).unwrap_or(0),
    };
    let bytes = crypto::decrypt_value_at(key, &t.env.id, &sv.name, at, &SealedValue::from(ct))
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

/// [`decrypt_all`], leaving out the values that cannot be opened (tampered with, or written by
/// a broken client) and returning their names, for `klef run --skip-unreadable`.
pub(crate) fn decrypt_readable(
    key: &SymmetricKey,
    t: &Target,
    versions: &[SecretVersion],
) -> (Vec<Entry>, Vec<String>) {
    let mut out = Vec::with_capacity(versions.len());
    let mut skipped = Vec::new();
    for sv in versions.iter().filter(|s| s.ciphertext.is_some()) {
        match decrypt(key, t, sv) {
            Ok(value) => out.push(Entry {
                name: sv.name.clone(),
                value,
            }),
            Err(_) => skipped.push(sv.name.clone()),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    skipped.sort();
    (out, skipped)
}

/// Encrypts a value for `name` in the target environment, bound to the version it will be
/// stored as and the key version sealing it (`(version, key_version)`).
pub(crate) fn encrypt(
    key: &SymmetricKey,
    t: &Target,
    name: &str,
    value: &str,
    (version, key_version): (i64, i64),
) -> klef_core::model::Blob {
    let at = crypto::ValueAt {
        version: u64::try_from(version).unwrap_or(0),
        key_version: u64::try_from(key_version).unwrap_or(0),
    };
    crypto::encrypt_value_at(key, &t.env.id, name, at, value.as_bytes()).into()
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

/// Decrypted entries from `(name, value)` pairs, for unit tests.
#[cfg(test)]
pub(crate) fn entries(pairs: &[(&str, &str)]) -> Vec<klef_core::dotenv::Entry> {
    pairs
        .iter()
        .map(|(n, v)| klef_core::dotenv::Entry {
            name: (*n).to_owned(),
            value: zeroize::Zeroizing::new((*v).to_owned()),
        })
        .collect()
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
    fn nul_is_refused_naming_the_key_and_long_values_are_flagged() {
        let err = check_value("DB_PASS", "a\0b").unwrap_err();
        assert_eq!(
            crate::diagnostics::exit_status(&err),
            crate::diagnostics::ExitStatus::USAGE
        );
        let lines = crate::diagnostics::render(&err);
        assert!(lines[0].1.contains("DB_PASS"), "{lines:?}");
        assert!(!lines.iter().any(|(_, t)| t.contains("a\0b")));
        assert_eq!(check_value("K", "plain").unwrap(), ValueFit::Fits);
        let long = "x".repeat(200 * 1024);
        assert_eq!(check_value("K", &long).unwrap(), ValueFit::TooLongForRun);
    }

    #[test]
    fn escapes_for_tables() {
        assert_eq!(one_line_value("a\nb\\c"), "a\\nb\\\\c");
    }
}
