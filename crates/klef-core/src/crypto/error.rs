//! [`CryptoError`]: what can go wrong, never with key or plaintext material.

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
    #[error("{what} is malformed")]
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
