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

impl fmt::Display for RawId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
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
        let bad = || InvalidId(s.chars().take(64).collect());
        if s.len() != 36 {
            return Err(bad());
        }
        let bytes = s.as_bytes();
        for i in [8, 13, 18, 23] {
            if bytes[i] != b'-' {
                return Err(bad());
            }
        }
        let compact: String = s.chars().filter(|c| *c != '-').collect();
        if compact.len() != 32 || !compact.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(compact.to_ascii_lowercase(), &mut out).map_err(|_| bad())?;
        Ok(Self(out))
    }
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
}
