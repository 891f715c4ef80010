//! Key types: [`SymmetricKey`], X25519 [`PrivateKey`]/[`PublicKey`] (RFC 7748), and the
//! operating system's random generator.

use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest as _, Sha256};

use super::CryptoError;

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

    /// The matching public key (X25519 scalar multiplication of the base point, RFC 7748).
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(*self.expose());
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
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
    /// Reads a public key from a slice, which must be exactly 32 bytes and must not be a
    /// low-order point (one that would make every shared secret all-zero, RFC 7748 §6.1).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let key = bytes
            .try_into()
            .map(Self)
            .map_err(|_| CryptoError::Malformed {
                what: "public key".into(),
            })?;
        key.validate()?;
        Ok(key)
    }

    /// Checks that the key is usable for key agreement: a low-order point (e.g. all zeros)
    /// gives an all-zero shared secret for every private key, and HPKE refuses it.
    pub fn validate(&self) -> Result<(), CryptoError> {
        // Any clamped scalar works: scalar · P is the identity exactly when P has low order.
        let probe = x25519_dalek::StaticSecret::from([0x5a; 32]);
        let shared = probe.diffie_hellman(&x25519_dalek::PublicKey::from(self.0));
        if shared.was_contributory() {
            Ok(())
        } else {
            Err(CryptoError::Malformed {
                what: "public key (a low-order point)".into(),
            })
        }
    }

    /// A short, human-comparable fingerprint: the first 16 bytes of SHA-256 over the key, as
    /// eight groups of four hex digits, e.g. `3f2a-91c0-…`.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0);
        let hex = hex::encode(&digest[..16]);
        let groups: Vec<&str> = (0..8).map(|i| &hex[i * 4..i * 4 + 4]).collect();
        groups.join("-")
    }
}

/// Generates a fresh X25519 key pair from the operating system's generator.
#[must_use]
pub fn generate_keypair() -> (PrivateKey, PublicKey) {
    let mut bytes = Box::new([0u8; 32]);
    fill_random(bytes.as_mut());
    let private = PrivateKey::from_bytes(bytes);
    let public = private.public_key();
    (private, public)
}

/// Fills `buf` from the operating system's cryptographically secure generator.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random generator failed");
}
