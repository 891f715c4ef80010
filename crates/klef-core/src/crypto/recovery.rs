//! Recovery codes: 256 random bits a person can write down and type back, grouped, with a
//! per-group checksum so a typo is caught (and its group named) before any crypto runs.

use super::{CryptoError, SymmetricKey};

/// A recovery code's 256 bits. Zeroized on drop.
pub struct RecoveryCode(SymmetricKey);

/// Why a typed recovery code was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryCodeError {
    /// The code has the wrong number of groups or characters.
    #[error("the recovery code must have {expected} groups, found {found}")]
    WrongLength {
        /// Expected group count.
        expected: usize,
        /// Found group count.
        found: usize,
    },
    /// One group's checksum does not match: a typo in that group (1-based).
    #[error("group {group} of the recovery code ({text:?}) has a typo")]
    BadGroup {
        /// 1-based index of the bad group.
        group: usize,
        /// The group as typed.
        text: String,
    },
}

impl RecoveryCode {
    /// A fresh random code.
    #[must_use]
    pub fn generate() -> Self {
        Self(SymmetricKey::generate())
    }

    /// The printable form (groups separated by `-`).
    #[must_use]
    pub fn display(&self) -> secrecy::SecretString {
        todo!("crypto helper")
    }

    /// Parses a typed code (case-insensitive, spaces and dashes ignored between groups).
    pub fn parse(text: &str) -> Result<Self, RecoveryCodeError> {
        let _ = text;
        todo!("crypto helper")
    }

    /// The key that seals the master key's recovery copy (HKDF-SHA256 of the code's bits).
    pub fn recovery_key(&self) -> Result<SymmetricKey, CryptoError> {
        todo!("crypto helper")
    }
}
