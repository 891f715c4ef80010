//! The few primitives the trust records need, on the crates `crypto` already uses (sha2 0.11,
//! hkdf 0.13, hmac 0.13, aes-gcm 0.11). Kept here, small and private, so this module does not
//! depend on the layout of `crypto` while that is being split; the envelope format of
//! [`seal`]/[`open`] is the AES-256-GCM envelope of `crypto` (suite `0x01`, random 96-bit
//! nonce, then ciphertext and tag), with raw associated-data bytes.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::Mac as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::crypto::{SUITE_AES256GCM, SymmetricKey, fill_random};

/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// HKDF-SHA256 (RFC 5869), no salt, 32 bytes of output for `info`.
pub(crate) fn hkdf32(ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<Sha256>::new(None, ikm)
        .expand(info, okm.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// [`hkdf32`] as a [`SymmetricKey`].
pub(crate) fn hkdf_key(ikm: &[u8], info: &[u8]) -> SymmetricKey {
    SymmetricKey::from_bytes(Box::new(*hkdf32(ikm, info)))
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is HMAC-SHA256 of `message` under `key`, compared in constant time.
pub(crate) fn hmac_sha256_verify(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.verify_slice(tag).is_ok()
}

/// AES-256-GCM seal with a random nonce: `[0x01][nonce 12][ciphertext ‖ tag 16]`.
pub(crate) fn seal(key: &SymmetricKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let ct = Aes256Gcm::new(key.expose().into())
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-256-GCM encryption of less than 64 GiB cannot fail");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(SUITE_AES256GCM);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens a [`seal`] envelope; `None` when it is malformed or fails authentication.
pub(crate) fn open(key: &SymmetricKey, aad: &[u8], envelope: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (&suite, body) = envelope.split_first()?;
    if suite != SUITE_AES256GCM || body.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ct) = body.split_first_chunk::<NONCE_LEN>()?;
    Aes256Gcm::new(key.expose().into())
        .decrypt(&Nonce::from(*nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_hmac_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hmac_sha256_verify(
            b"Jefe",
            b"what do ya want for nothing?",
            &hmac_sha256(b"Jefe", b"what do ya want for nothing?")
        ));
        assert!(!hmac_sha256_verify(
            b"Jefe",
            b"what do ya want for nothing!",
            &[0; 32]
        ));
    }

    #[test]
    fn rfc5869_hkdf_case_3_no_salt() {
        // RFC 5869 A.3 has empty info and 42 bytes; our 32-byte output is its prefix.
        let okm = hkdf32(&[0x0b; 22], b"");
        assert_eq!(
            hex::encode(okm.as_ref()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        );
    }

    #[test]
    fn seal_open() {
        let key = SymmetricKey::generate();
        let env = seal(&key, b"aad", b"pt");
        assert_eq!(open(&key, b"aad", &env).unwrap().as_slice(), b"pt");
        assert!(open(&key, b"aae", &env).is_none());
        assert!(open(&SymmetricKey::generate(), b"aad", &env).is_none());
        assert!(open(&key, b"aad", &env[..env.len() - 1]).is_none());
        assert!(open(&key, b"aad", &[]).is_none());
        let mut other_suite = env.clone();
        other_suite[0] = 0x10;
        assert!(open(&key, b"aad", &other_suite).is_none());
    }
}
