//! HPKE base mode (RFC 9180): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. Wraps a
//! symmetric key to a public key ([`WrappedKey`]); the [`Aad`] bytes are the HPKE `info`.

use hpke::{Deserializable as _, Serializable as _};
use zeroize::Zeroizing;

use super::aead::TAG_LEN;
use super::envelope::check_suite;
use super::{
    Aad, CryptoError, PrivateKey, PublicKey, SUITE_HPKE_X25519_SHA256_AES256GCM, SymmetricKey,
    WrappedKey,
};

/// Length of an X25519 public key / HPKE encapsulated key.
const ENC_LEN: usize = 32;

type HpkeAead = hpke::aead::AesGcm256;
type HpkeKdf = hpke::kdf::HkdfSha256;
type HpkeKem = hpke::kem::X25519HkdfSha256;
type HpkePrivateKey = <HpkeKem as hpke::Kem>::PrivateKey;
type HpkePublicKey = <HpkeKem as hpke::Kem>::PublicKey;
type HpkeEncappedKey = <HpkeKem as hpke::Kem>::EncappedKey;

/// Wraps a symmetric key to a public key with HPKE (RFC 9180 base mode). The [`Aad`] bytes are
/// the HPKE `info` (they enter the key schedule); the AEAD associated data is empty.
///
/// # Panics
/// If `recipient` is a low-order point. Keys read with [`PublicKey::from_slice`] never are;
/// use [`try_wrap_key`] for keys built some other way.
#[must_use]
pub fn wrap_key(recipient: &PublicKey, key: &SymmetricKey, aad: &Aad<'_>) -> WrappedKey {
    try_wrap_key(recipient, key, aad).expect("wrapping to a low-order public key")
}

/// [`wrap_key`] that reports an unusable (low-order) recipient key as
/// [`CryptoError::Malformed`] instead of panicking.
pub fn try_wrap_key(
    recipient: &PublicKey,
    key: &SymmetricKey,
    aad: &Aad<'_>,
) -> Result<WrappedKey, CryptoError> {
    let bad_key = || CryptoError::Malformed {
        what: "public key (a low-order point)".into(),
    };
    recipient.validate()?;
    let pk = HpkePublicKey::from_bytes(&recipient.0).map_err(|_| bad_key())?;
    let (enc, ct) = hpke::single_shot_seal::<HpkeAead, HpkeKdf, HpkeKem>(
        &hpke::OpModeS::Base,
        &pk,
        &aad.to_bytes(),
        key.expose(),
        &[],
    )
    .map_err(|_| bad_key())?;
    let enc = enc.to_bytes();
    let mut out = Vec::with_capacity(1 + enc.len() + ct.len());
    out.push(SUITE_HPKE_X25519_SHA256_AES256GCM);
    out.extend_from_slice(&enc);
    out.extend_from_slice(&ct);
    Ok(WrappedKey::from_bytes(out))
}

/// Unwraps a key wrapped by [`wrap_key`]. A failure to open is [`CryptoError::Tampered`]
/// naming `what` (wrong recipient, other context, or modified bytes).
pub fn unwrap_key(
    private: &PrivateKey,
    wrapped: &WrappedKey,
    aad: &Aad<'_>,
    what: &str,
) -> Result<SymmetricKey, CryptoError> {
    let pt = hpke_open(private, wrapped.as_bytes(), &aad.to_bytes(), what)?;
    SymmetricKey::from_slice(&pt).map_err(|_| CryptoError::Malformed {
        what: what.to_owned(),
    })
}

/// Opens an HPKE envelope with raw `info` bytes.
pub(super) fn hpke_open(
    private: &PrivateKey,
    envelope: &[u8],
    info: &[u8],
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let body = check_suite(envelope, SUITE_HPKE_X25519_SHA256_AES256GCM, what)?;
    if body.len() < ENC_LEN + TAG_LEN {
        return Err(CryptoError::Malformed {
            what: what.to_owned(),
        });
    }
    let (enc, ct) = body.split_at(ENC_LEN);
    let tampered = || CryptoError::Tampered {
        what: what.to_owned(),
    };
    let enc = HpkeEncappedKey::from_bytes(enc).map_err(|_| tampered())?;
    let sk = HpkePrivateKey::from_bytes(private.expose()).map_err(|_| CryptoError::Malformed {
        what: "private key".into(),
    })?;
    hpke::single_shot_open::<HpkeAead, HpkeKdf, HpkeKem>(
        &hpke::OpModeR::Base,
        &sk,
        &enc,
        info,
        ct,
        &[],
    )
    .map(Zeroizing::new)
    .map_err(|_| tampered())
}
