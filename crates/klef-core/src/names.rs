//! Validation of user-chosen names: secret key names and environment slugs.

/// The largest secret value accepted, in bytes (1 MiB).
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

/// A name that breaks the naming rules, with the reason as a lower-case phrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {name:?}: {reason}")]
pub struct InvalidName {
    /// What kind of name it is ("key name", "environment slug").
    pub what: &'static str,
    /// The rejected name (never a secret value).
    pub name: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

/// Checks that `name` matches `[A-Za-z_][A-Za-z0-9_]*` and is at most 256 bytes.
pub fn validate_key_name(name: &str) -> Result<(), InvalidName> {
    let err = |reason| InvalidName {
        what: "key name",
        name: name.to_owned(),
        reason,
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return Err(err("it is empty")),
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        Some(_) => return Err(err("it must start with a letter or underscore")),
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(err("only letters, digits and underscores are allowed"));
    }
    if name.len() > 256 {
        return Err(err("it is longer than 256 characters"));
    }
    Ok(())
}

/// Checks that `slug` matches `[a-z0-9][a-z0-9_-]*` and is at most 64 bytes.
pub fn validate_slug(slug: &str) -> Result<(), InvalidName> {
    let err = |reason| InvalidName {
        what: "environment slug",
        name: slug.to_owned(),
        reason,
    };
    let mut chars = slug.chars();
    match chars.next() {
        None => return Err(err("it is empty")),
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => {}
        Some(_) => return Err(err("it must start with a lower-case letter or digit")),
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        return Err(err(
            "only lower-case letters, digits, '-' and '_' are allowed",
        ));
    }
    if slug.len() > 64 {
        return Err(err("it is longer than 64 characters"));
    }
    Ok(())
}

/// Checks a project or workspace name: 1–128 bytes, no control characters, no ':' (scopes use it).
pub fn validate_display_name(what: &'static str, name: &str) -> Result<(), InvalidName> {
    let err = |reason| InvalidName {
        what,
        name: name.to_owned(),
        reason,
    };
    if name.trim().is_empty() {
        return Err(err("it is empty"));
    }
    if name.len() > 128 {
        return Err(err("it is longer than 128 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(err("it contains control characters"));
    }
    if name.contains(':') {
        return Err(err("it must not contain ':'"));
    }
    Ok(())
}

/// Whether `name` is a valid profile name (`KLEF_PROFILE`, `--profile`): 1–64 ASCII letters,
/// digits, `-` and `_`. The CLI and the agent both use this one rule: a profile names a
/// directory and the agent's socket, so no `.`, `/` or anything a shell quotes.
#[must_use]
pub fn is_valid_profile_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names() {
        for ok in ["work", "a-b_c", "X1", &"p".repeat(64)] {
            assert!(is_valid_profile_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a.b",
            ".hidden",
            "a/b",
            "a b",
            "é",
            &"p".repeat(65),
        ] {
            assert!(!is_valid_profile_name(bad), "{bad}");
        }
    }

    #[test]
    fn key_names() {
        for ok in ["A", "_", "DATABASE_URL", "a1_b2"] {
            assert!(validate_key_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", "A.B"] {
            assert!(validate_key_name(bad).is_err(), "{bad}");
        }
        assert!(validate_key_name(&"A".repeat(257)).is_err());
    }

    #[test]
    fn slugs() {
        for ok in ["development", "prod-eu", "qa_2", "1"] {
            assert!(validate_slug(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Prod", "-x", "a b", "a:b"] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }
}
