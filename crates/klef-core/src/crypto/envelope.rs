//! The typed envelopes the crypto API hands out and takes back: [`SealedValue`] (a secret value
//! under an environment key), [`SealedKey`] (a key under another symmetric key) and
//! [`WrappedKey`] (a key wrapped to a public key with HPKE). Each is its own type, so a wrapped
//! key cannot be passed where a value is opened. On the wire and in the database they are plain
//! bytes ([`Blob`]); convert at that edge with `From`.
//!
//! ```compile_fail
//! # use klef_core::crypto::{Aad, SymmetricKey, decrypt_value, generate_keypair, wrap_key};
//! # use klef_core::ids::EnvironmentId;
//! let (_, public) = generate_keypair();
//! let key = SymmetricKey::generate();
//! let env = EnvironmentId::random();
//! let wrapped = wrap_key(&public, &key, &Aad::EnvironmentKey(&env));
//! // A wrapped key is not a sealed value: this does not compile.
//! let _ = decrypt_value(&key, &env, "API_KEY", &wrapped);
//! ```
//!
//! Every envelope starts with a one-byte suite id ([`SUITE_AES256GCM`],
//! [`SUITE_HPKE_X25519_SHA256_AES256GCM`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::CryptoError;
use crate::model::Blob;

/// Suite id of an AES-256-GCM envelope: `[0x01][nonce 12][ciphertext ‖ tag 16]`.
pub const SUITE_AES256GCM: u8 = 0x01;
/// Suite id of a secret value sealed with AES-256-GCM bound to its version and key version
/// ([`Aad::SecretValueAt`](super::Aad::SecretValueAt)): the same layout as
/// [`SUITE_AES256GCM`], another associated data.
pub const SUITE_VALUE_AT: u8 = 0x02;
/// Suite id of an HPKE envelope: `[0x10][encapsulated key 32][ciphertext ‖ tag 16]`.
pub const SUITE_HPKE_X25519_SHA256_AES256GCM: u8 = 0x10;

macro_rules! envelope {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Serializes as its bytes (`#[serde(transparent)]`); `Debug` shows only the length.
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Vec<u8>);

        impl $name {
            /// Takes bytes read from storage or the network, unchecked: opening checks them.
            #[must_use]
            pub fn from_bytes(bytes: Vec<u8>) -> Self {
                Self(bytes)
            }

            /// The envelope's bytes.
            #[must_use]
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// The envelope's bytes, for storage or the network.
            #[must_use]
            pub fn into_bytes(self) -> Vec<u8> {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({} bytes)"), self.0.len())
            }
        }

        impl From<Blob> for $name {
            fn from(blob: Blob) -> Self {
                Self(blob.0)
            }
        }

        impl From<&Blob> for $name {
            fn from(blob: &Blob) -> Self {
                Self(blob.0.clone())
            }
        }

        impl From<$name> for Blob {
            fn from(envelope: $name) -> Self {
                Blob(envelope.0)
            }
        }
    };
}

envelope! {
    /// A secret value sealed (AES-256-GCM, [`Aad::SecretValue`](super::Aad::SecretValue)) under
    /// an environment key: [`encrypt_value`](super::encrypt_value) /
    /// [`decrypt_value`](super::decrypt_value).
    SealedValue
}

envelope! {
    /// A key sealed (AES-256-GCM) under a symmetric key: an environment key under its project
    /// key, the master key under the KEK or the recovery key, the private key under the master
    /// key. [`seal_key`](super::seal_key) / [`open_key`](super::open_key).
    SealedKey
}

envelope! {
    /// A symmetric key wrapped to an X25519 public key with HPKE (RFC 9180):
    /// [`wrap_key`](super::wrap_key) / [`unwrap_key`](super::unwrap_key).
    WrappedKey
}

/// Checks an envelope's suite byte and returns the rest. Empty → `Malformed`; a suite this
/// build does not know → `UnsupportedSuite`; a known suite of the other kind → `Malformed`.
pub(super) fn check_suite<'e>(
    envelope: &'e [u8],
    expected: u8,
    what: &str,
) -> Result<&'e [u8], CryptoError> {
    let (&suite, body) = envelope
        .split_first()
        .ok_or_else(|| CryptoError::Malformed {
            what: what.to_owned(),
        })?;
    match suite {
        s if s == expected => Ok(body),
        SUITE_AES256GCM | SUITE_VALUE_AT | SUITE_HPKE_X25519_SHA256_AES256GCM => {
            Err(CryptoError::Malformed {
                what: what.to_owned(),
            })
        }
        other => Err(CryptoError::UnsupportedSuite(other)),
    }
}

/// Bytes of the AES-256-GCM envelope around a plaintext: suite, nonce and tag.
const AES_OVERHEAD: usize = 1 + 12 + 16;
/// Bytes of the HPKE envelope around a plaintext: suite, encapsulated key and tag.
const HPKE_OVERHEAD: usize = 1 + 32 + 16;
/// A symmetric key's length.
const KEY_LEN: usize = 32;

/// What kind of envelope a field should hold, for [`check_shape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeShape {
    /// A [`SealedValue`]: suite `0x01` or `0x02` around a value (which may be empty).
    Value,
    /// A [`SealedKey`] of a 32-byte key: suite `0x01`, exactly 61 bytes.
    SealedKey,
    /// A [`WrappedKey`] of a 32-byte key: suite `0x10`, exactly 81 bytes.
    WrappedKey,
}

/// Checks, without any key, that `bytes` has the shape of `shape` (suite byte and lengths), so
/// a server can refuse bytes that no client could ever open instead of storing them for every
/// reader to trip over. Passing says nothing about authenticity: only opening does.
///
/// # Errors
///
/// [`CryptoError::UnsupportedSuite`] for another suite byte, [`CryptoError::Malformed`] for a
/// wrong length.
pub fn check_shape(bytes: &[u8], shape: EnvelopeShape) -> Result<(), CryptoError> {
    let (suite, fits) = match shape {
        EnvelopeShape::Value => (
            match bytes.first() {
                Some(&SUITE_VALUE_AT) => SUITE_VALUE_AT,
                _ => SUITE_AES256GCM,
            },
            bytes.len() >= AES_OVERHEAD,
        ),
        EnvelopeShape::SealedKey => (SUITE_AES256GCM, bytes.len() == AES_OVERHEAD + KEY_LEN),
        EnvelopeShape::WrappedKey => (
            SUITE_HPKE_X25519_SHA256_AES256GCM,
            bytes.len() == HPKE_OVERHEAD + KEY_LEN,
        ),
    };
    match bytes.first() {
        None => Err(CryptoError::Malformed {
            what: "envelope (empty)".into(),
        }),
        Some(s) if *s != suite => Err(CryptoError::UnsupportedSuite(*s)),
        Some(_) if !fits => Err(CryptoError::Malformed {
            what: format!("envelope ({} bytes)", bytes.len()),
        }),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod shape_tests {
    use super::*;
    use crate::crypto::{Aad, SymmetricKey, encrypt_value, generate_keypair, seal_key, wrap_key};
    use crate::ids::EnvironmentId;

    #[test]
    fn real_envelopes_pass_and_garbage_does_not() {
        let env = EnvironmentId::random();
        let key = SymmetricKey::generate();
        let (_, public) = generate_keypair();
        let value = encrypt_value(&key, &env, "API_KEY", b"");
        let sealed = seal_key(&key, &SymmetricKey::generate(), &Aad::EnvironmentKey(&env));
        let wrapped = wrap_key(&public, &key, &Aad::EnvironmentKey(&env));
        assert!(check_shape(value.as_bytes(), EnvelopeShape::Value).is_ok());
        assert!(check_shape(sealed.as_bytes(), EnvelopeShape::SealedKey).is_ok());
        assert!(check_shape(wrapped.as_bytes(), EnvelopeShape::WrappedKey).is_ok());
        for (bytes, shape) in [
            (&[0x01][..], EnvelopeShape::Value),
            (&[][..], EnvelopeShape::Value),
            (wrapped.as_bytes(), EnvelopeShape::Value),
            (value.as_bytes(), EnvelopeShape::WrappedKey),
            (&sealed.as_bytes()[..60], EnvelopeShape::SealedKey),
            (&[0x7f; 81][..], EnvelopeShape::WrappedKey),
        ] {
            assert!(
                check_shape(bytes, shape).is_err(),
                "{shape:?} {}",
                bytes.len()
            );
        }
    }
}
