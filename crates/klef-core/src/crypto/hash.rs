//! SHA-256 (token hashes), constant-time comparison and HKDF-SHA256 (RFC 5869).

use sha2::{Digest as _, Sha256};

use super::SymmetricKey;

/// SHA-256 of `bytes` as 64 lower-case hex digits (API-key and session-token hashes).
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compares two byte strings in time that depends only on their lengths (use it for token
/// hashes and anything else an attacker could probe byte by byte).
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// HKDF-SHA256 (RFC 5869) with no salt: 32 bytes of output keying material for `info`, in a
/// box so the key never moves.
pub(crate) fn hkdf_sha256_key(ikm: &[u8], info: &[u8]) -> SymmetricKey {
    let mut okm = Box::new([0u8; 32]);
    hkdf::Hkdf::<Sha256>::new(None, ikm)
        .expand(info, okm.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    SymmetricKey::from_bytes(okm)
}
