//! AES-256-GCM (NIST SP 800-38D) with a random 96-bit nonce: the symmetric envelope, and
//! [`seal_key`]/[`open_key`] for a key under another key.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::envelope::check_suite;
use super::{Aad, CryptoError, PrivateKey, SUITE_AES256GCM, SealedKey, SymmetricKey, fill_random};

/// AES-GCM nonce length (96 bits, NIST SP 800-38D §8.2.2 with random nonces).
pub(super) const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub(super) const TAG_LEN: usize = 16;

/// Seals `plaintext` under `key` with AES-256-GCM, a random nonce and raw associated data.
pub(super) fn seal(key: &SymmetricKey, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    seal_as(SUITE_AES256GCM, key, plaintext, aad)
}

/// [`seal`] under suite byte `suite` (one of the AES-256-GCM suites, which differ only in the
/// associated data they are used with).
pub(super) fn seal_as(suite: u8, key: &SymmetricKey, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut out = seal_with_nonce(key, &nonce, plaintext, aad);
    out[0] = suite;
    out
}

/// [`seal`] with an explicit nonce (known-answer tests).
pub(super) fn seal_with_nonce(
    key: &SymmetricKey,
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
    aad: &[u8],
) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.expose().into());
    let ct = cipher
        .encrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-256-GCM encryption of less than 64 GiB cannot fail");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(SUITE_AES256GCM);
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens an envelope made by [`seal`]. A failure is [`CryptoError::Tampered`] naming `what`.
pub(super) fn open(
    key: &SymmetricKey,
    envelope: &[u8],
    aad: &[u8],
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    open_as(SUITE_AES256GCM, key, envelope, aad, what)
}

/// [`open`] for an envelope of suite `suite`.
pub(super) fn open_as(
    suite: u8,
    key: &SymmetricKey,
    envelope: &[u8],
    aad: &[u8],
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let body = check_suite(envelope, suite, what)?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed {
            what: what.to_owned(),
        });
    }
    let (nonce, ct) = body.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
    let cipher = Aes256Gcm::new(key.expose().into());
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Tampered {
            what: what.to_owned(),
        })
}

/// Seals a symmetric key under another symmetric key (environment key under project key,
/// master key under the KEK or the recovery key).
#[must_use]
pub fn seal_key(wrapping: &SymmetricKey, key: &SymmetricKey, aad: &Aad<'_>) -> SealedKey {
    SealedKey::from_bytes(seal(wrapping, key.expose(), &aad.to_bytes()))
}

/// Opens a key sealed by [`seal_key`].
pub fn open_key(
    wrapping: &SymmetricKey,
    sealed: &SealedKey,
    aad: &Aad<'_>,
    what: &str,
) -> Result<SymmetricKey, CryptoError> {
    let pt = open(wrapping, sealed.as_bytes(), &aad.to_bytes(), what)?;
    SymmetricKey::from_slice(&pt)
}

/// Seals an X25519 private key under the master key ([`Aad::PrivateKey`]).
#[must_use]
pub fn seal_private_key(master: &SymmetricKey, key: &PrivateKey, aad: &Aad<'_>) -> SealedKey {
    SealedKey::from_bytes(seal(master, key.expose(), &aad.to_bytes()))
}

/// Opens a private key sealed by [`seal_private_key`].
pub fn open_private_key(
    master: &SymmetricKey,
    sealed: &SealedKey,
    aad: &Aad<'_>,
    what: &str,
) -> Result<PrivateKey, CryptoError> {
    let pt = open(master, sealed.as_bytes(), &aad.to_bytes(), what)?;
    let bytes: [u8; 32] = pt
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::Malformed {
            what: what.to_owned(),
        })?;
    Ok(PrivateKey::from_bytes(Box::new(bytes)))
}
