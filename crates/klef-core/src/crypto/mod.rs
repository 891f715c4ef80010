//! Klef's cryptography (DESIGN.md §2, format spec in `docs/crypto.md`).
//!
//! The chain is password → Argon2id → KEK → master key → X25519 private key → project keys →
//! environment keys → values. Every envelope starts with a one-byte **suite id**, so new
//! constructions (e.g. post-quantum X-Wing wrapping) are new suites, not migrations.
//!
//! * [`seal`]/[`open`]: AES-256-GCM, random 96-bit nonce, associated data from [`Aad`].
//! * [`wrap_key`]/[`unwrap_key`]: HPKE base mode (RFC 9180), DHKEM(X25519, HKDF-SHA256),
//!   HKDF-SHA256, AES-256-GCM; `info` and `aad` from [`Aad`].
//! * [`derive_kek`]: Argon2id with the stored [`KdfParams`].
//! * [`account`]: creating, unlocking, recovering and re-sealing an account's keys.

pub mod account;
pub mod recovery;

use secrecy::{ExposeSecret, SecretBox};

use crate::ids::{AccountId, EnvironmentId, ProjectId};
use crate::model::KdfParams;

/// Suite id of an AES-256-GCM envelope: `[0x01][nonce 12][ciphertext ‖ tag 16]`.
pub const SUITE_AES256GCM: u8 = 0x01;
/// Suite id of an HPKE envelope: `[0x10][encapsulated key 32][ciphertext ‖ tag 16]`.
pub const SUITE_HPKE_X25519_SHA256_AES256GCM: u8 = 0x10;

/// Errors from cryptographic operations. None of them carries key or plaintext material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The password (or recovery code) did not open the master key.
    #[error("wrong password")]
    WrongPassword,
    /// An envelope failed authentication under the right key: it was modified, or moved to
    /// another name, environment or account.
    #[error("{what} failed authentication: the data was tampered with or moved")]
    Tampered {
        /// What failed, e.g. `the value of API_KEY`.
        what: String,
    },
    /// The envelope is too short or otherwise not an envelope.
    #[error("malformed {what}")]
    Malformed {
        /// What was malformed.
        what: String,
    },
    /// The envelope uses a suite this version of Klef does not know.
    #[error("unsupported encryption suite 0x{0:02x}: upgrade klef")]
    UnsupportedSuite(u8),
    /// The KDF parameters are unusable (too weak or too large).
    #[error("invalid key-derivation parameters: {0}")]
    InvalidKdfParams(String),
}

/// A 256-bit symmetric key (KEK, master, project or environment key). Zeroized on drop; no
/// `Debug`/`Display`.
pub struct SymmetricKey(SecretBox<[u8; 32]>);

impl SymmetricKey {
    /// A fresh random key from the operating system's generator.
    #[must_use]
    pub fn generate() -> Self {
        let mut k = Box::new([0u8; 32]);
        fill_random(k.as_mut());
        Self(SecretBox::new(k))
    }

    /// Wraps existing key bytes (taking ownership; the box is zeroized on drop).
    #[must_use]
    pub fn from_bytes(bytes: Box<[u8; 32]>) -> Self {
        Self(SecretBox::new(bytes))
    }

    /// Reads a key from a slice, which must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::Malformed { what: "key".into() })?;
        Ok(Self::from_bytes(Box::new(arr)))
    }

    /// The key bytes. Callers must not copy them into unprotected memory.
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl Clone for SymmetricKey {
    fn clone(&self) -> Self {
        Self::from_bytes(Box::new(*self.expose()))
    }
}

/// An X25519 private key. Zeroized on drop; no `Debug`/`Display`.
pub struct PrivateKey(SecretBox<[u8; 32]>);

impl PrivateKey {
    /// Wraps existing key bytes.
    #[must_use]
    pub fn from_bytes(bytes: Box<[u8; 32]>) -> Self {
        Self(SecretBox::new(bytes))
    }

    /// The key bytes.
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        todo!("crypto helper")
    }
}

impl Clone for PrivateKey {
    fn clone(&self) -> Self {
        Self::from_bytes(Box::new(*self.expose()))
    }
}

/// An X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Reads a public key from a slice, which must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| CryptoError::Malformed { what: "public key".into() })
    }

    /// A short, human-comparable fingerprint: the first 16 bytes of SHA-256 over the key, as
    /// eight groups of four hex digits, e.g. `3f2a-91c0-…`.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        todo!("crypto helper")
    }
}

/// Generates a fresh X25519 key pair.
#[must_use]
pub fn generate_keypair() -> (PrivateKey, PublicKey) {
    todo!("crypto helper")
}

/// Fills `buf` from the operating system's cryptographically secure generator.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random generator failed");
}

/// The context an envelope is bound to. It becomes the AEAD associated data (and HPKE `info`),
/// so an envelope moved to another name, environment or account fails to open.
#[derive(Debug, Clone, Copy)]
pub enum Aad<'a> {
    /// The master key sealed under the password-derived KEK.
    MasterKeyByPassword(&'a AccountId),
    /// The master key sealed under the recovery key.
    MasterKeyByRecovery(&'a AccountId),
    /// The private key sealed under the master key.
    PrivateKey(&'a AccountId),
    /// A project key wrapped to an account or API key public key.
    ProjectKey(&'a ProjectId),
    /// An environment key sealed under the project key or wrapped to a public key.
    EnvironmentKey(&'a EnvironmentId),
    /// A secret value.
    SecretValue {
        /// The environment.
        environment: &'a EnvironmentId,
        /// The key name.
        name: &'a str,
    },
    /// Free-form context for other envelopes (backups, tests); the label must be unique.
    Other(&'a str),
}

impl Aad<'_> {
    /// The associated-data bytes: `"klef/v1/" ‖ label ‖ 0x00 ‖ fields`, each field
    /// length-prefixed so no two contexts can produce the same bytes.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!("crypto helper")
    }
}

/// Seals `plaintext` under `key` with AES-256-GCM and a random nonce.
#[must_use]
pub fn seal(key: &SymmetricKey, plaintext: &[u8], aad: &Aad<'_>) -> Vec<u8> {
    let _ = (key, plaintext, aad);
    todo!("crypto helper")
}

/// Opens an envelope made by [`seal`]. A failure is [`CryptoError::Tampered`] naming `what`.
pub fn open(
    key: &SymmetricKey,
    envelope: &[u8],
    aad: &Aad<'_>,
    what: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    let _ = (key, envelope, aad, what);
    todo!("crypto helper")
}

/// Seals a symmetric key under another symmetric key (environment key under project key).
#[must_use]
pub fn seal_key(wrapping: &SymmetricKey, key: &SymmetricKey, aad: &Aad<'_>) -> Vec<u8> {
    seal(wrapping, key.expose(), aad)
}

/// Opens a key sealed by [`seal_key`].
pub fn open_key(
    wrapping: &SymmetricKey,
    envelope: &[u8],
    aad: &Aad<'_>,
    what: &str,
) -> Result<SymmetricKey, CryptoError> {
    let pt = open(wrapping, envelope, aad, what)?;
    SymmetricKey::from_slice(&pt)
}

/// Wraps a symmetric key to a public key with HPKE (RFC 9180 base mode).
#[must_use]
pub fn wrap_key(recipient: &PublicKey, key: &SymmetricKey, aad: &Aad<'_>) -> Vec<u8> {
    let _ = (recipient, key, aad);
    todo!("crypto helper")
}

/// Unwraps a key wrapped by [`wrap_key`].
pub fn unwrap_key(
    private: &PrivateKey,
    envelope: &[u8],
    aad: &Aad<'_>,
    what: &str,
) -> Result<SymmetricKey, CryptoError> {
    let _ = (private, envelope, aad, what);
    todo!("crypto helper")
}

/// The default Argon2id parameters (RFC 9106 second recommendation: m = 64 MiB, t = 3, p = 4)
/// with a fresh 16-byte salt.
#[must_use]
pub fn default_kdf_params() -> KdfParams {
    todo!("crypto helper")
}

/// Derives the key-encryption key from a password.
pub fn derive_kek(
    password: &secrecy::SecretString,
    params: &KdfParams,
) -> Result<SymmetricKey, CryptoError> {
    let _ = (password, params);
    todo!("crypto helper")
}

/// Encrypts a secret value for storage: [`seal`] with [`Aad::SecretValue`].
#[must_use]
pub fn encrypt_value(
    env_key: &SymmetricKey,
    environment: &EnvironmentId,
    name: &str,
    value: &[u8],
) -> Vec<u8> {
    seal(env_key, value, &Aad::SecretValue { environment, name })
}

/// Decrypts a stored secret value; failure is reported as tampering with that name.
pub fn decrypt_value(
    env_key: &SymmetricKey,
    environment: &EnvironmentId,
    name: &str,
    ciphertext: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    open(
        env_key,
        ciphertext,
        &Aad::SecretValue { environment, name },
        &format!("the value of {name}"),
    )
}
