//! Typed identifiers. Every id is 128 random bits written as a lower-case UUID (version 4 form),
//! generated client-side so the client can bind ids into AEAD associated data before anything
//! reaches a store or server.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that is not a valid Klef id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {0:?}: expected a UUID such as 0f8fad5b-d9cb-469f-a165-70867728950e")]
pub struct InvalidId(pub String);

/// The 16 raw bytes behind every id type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawId([u8; 16]);

impl RawId {
    /// A fresh random id (UUID version 4 layout).
    #[must_use]
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        crate::crypto::fill_random(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Self(b)
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// Where the dashes of the 36-character text form are.
const DASHES: [usize; 4] = [8, 13, 18, 23];

impl fmt::Display for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'-'; 36];
        let positions = (0..36).filter(|i| !DASHES.contains(i));
        let nibbles = self.0.iter().flat_map(|b| [b >> 4, b & 0x0f]);
        for (at, nibble) in positions.zip(nibbles) {
            text[at] = DIGITS[usize::from(nibble)];
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for RawId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        parse_uuid(s.as_bytes())
            .map(Self)
            .ok_or_else(|| InvalidId(s.chars().take(64).collect()))
    }
}

/// The 16 bytes of a UUID in its 36-character text form (hex digits of either case, dashes
/// exactly at [`DASHES`]), without allocating.
fn parse_uuid(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibble = 0;
    for (at, &c) in text.iter().enumerate() {
        if DASHES.contains(&at) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let value = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        out[nibble / 2] |= if nibble % 2 == 0 { value << 4 } else { value };
        nibble += 1;
    }
    Some(out)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub RawId);

        impl $name {
            /// A fresh random id.
            #[must_use]
            pub fn random() -> Self {
                Self(RawId::random())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                s.parse().map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Identifies an account (a person, or the single owner of a local vault).
    AccountId
);
id_type!(
    /// Identifies a workspace.
    WorkspaceId
);
id_type!(
    /// Identifies a project.
    ProjectId
);
id_type!(
    /// Identifies an environment: the unit of encryption.
    EnvironmentId
);
id_type!(
    /// Identifies an API key (the `<id>` part of `klef_user_<id>_<secret>`).
    ApiKeyId
);
id_type!(
    /// Identifies an invitation to a workspace.
    InviteId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reject() {
        let id = ProjectId::random();
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(s.parse::<ProjectId>().unwrap(), id);
        assert_eq!(
            serde_json::from_str::<ProjectId>(&serde_json::to_string(&id).unwrap()).unwrap(),
            id
        );
        for bad in [
            "",
            "x",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5bxd9cb-469f-a165-70867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950g",
        ] {
            assert!(bad.parse::<ProjectId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn text_form_is_the_canonical_uuid() {
        let text = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let id: RawId = text.parse().unwrap();
        assert_eq!(
            id.as_bytes(),
            &[
                0x0f, 0x8f, 0xad, 0x5b, 0xd9, 0xcb, 0x46, 0x9f, 0xa1, 0x65, 0x70, 0x86, 0x77, 0x28,
                0x95, 0x0e
            ]
        );
        assert_eq!(id.to_string(), text);
        // Upper case is accepted and written back in lower case.
        let upper: RawId = text.to_ascii_uppercase().parse().unwrap();
        assert_eq!(upper, id);
        assert_eq!(upper.to_string(), text);
    }

    #[test]
    fn misplaced_dashes_signs_and_non_ascii_are_rejected() {
        for bad in [
            // A dash moved by one, and a digit where a dash belongs.
            "0f8fad5bd-9cb-469f-a165-70867728950e",
            "0f8fad5b-d9cb-469f-a165070867728950e",
            // Right length, an extra dash in place of a digit.
            "0f8fad5b-d9cb-469f-a165-7086772895-e",
            // A sign where a digit belongs.
            "+f8fad5b-d9cb-469f-a165-70867728950e",
            // 36 bytes, but the last character is two of them.
            "0f8fad5b-d9cb-469f-a165-7086772895é",
        ] {
            let err = bad.parse::<RawId>().unwrap_err();
            assert_eq!(err, InvalidId(bad.to_owned()), "{bad}");
        }
    }
}
