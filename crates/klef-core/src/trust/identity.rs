//! Ed25519 identity keys and fingerprints (DESIGN.md §9.1).
//!
//! * Every account's identity key is **derived** from its master key:
//!   `seed = HKDF-SHA256(ikm = master key, salt = none, info = "klef/v1/identity/ed25519" ‖
//!   account id (16 raw bytes))`, and the Ed25519 key pair is RFC 8032's from that seed. Nothing
//!   new is stored, so nothing new can be rolled back; a password change or a recovery re-seals
//!   the same master key and keeps the identity.
//! * A system key's Ed25519 key comes from its token secret (the `api_key` module).
//! * Signatures are checked with `verify_strict` (no malleable or non-canonical signatures) and
//!   only against keys that are valid points of large order: a small-order ("weak") public key
//!   would verify signatures on many messages and is refused when read.
//! * The [`Fingerprint`] is the first 16 bytes of
//!   `SHA-256(labelled("fingerprint", account id, Ed25519 public key, X25519 public key))`,
//!   shown as eight groups of four hex digits. It names the account and both of its keys; it
//!   carries no email (emails change; the roster entry holds the email).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signer as _;

use super::encoding::{DecodeError, Labelled, Reader};
use super::primitives::{hkdf32, sha256};
use super::text::{grouped_hex, parse_loose_hex};
use crate::crypto::{PublicKey, SymmetricKey};
use crate::ids::AccountId;

/// HKDF `info` prefix of an identity seed; the account id's 16 bytes follow.
pub const IDENTITY_INFO: &[u8] = b"klef/v1/identity/ed25519";

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Why bytes are not a usable Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not 32 bytes, or not the encoding of a curve point.
    #[error("not a valid Ed25519 public key")]
    Invalid,
    /// A point of small order: it would "verify" signatures nobody made.
    #[error("a weak (small-order) Ed25519 public key")]
    Weak,
}

/// An Ed25519 signing key (a member's identity key or a system key's signing key). The secret
/// is zeroized on drop; no `Clone`, and `Debug` shows only the public half.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.verifying_key())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The identity key of `account`, derived from its master key (see the module docs).
    #[must_use]
    pub fn derive_identity(master_key: &SymmetricKey, account: &AccountId) -> Self {
        let mut info = Vec::with_capacity(IDENTITY_INFO.len() + 16);
        info.extend_from_slice(IDENTITY_INFO);
        info.extend_from_slice(account.0.as_bytes());
        Self::from_seed(&hkdf32(master_key.expose(), &info))
    }

    /// The key pair of RFC 8032 for a 32-byte seed.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The public half.
    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Signs a labelled body. Crate-private: only the record types of this module sign, always
    /// over a body that starts with its own `sig/…` label, so no signature of one kind can be
    /// passed off as another.
    pub(crate) fn sign(&self, body: &[u8]) -> Signature {
        debug_assert!(
            body.starts_with(b"klef/v1/sig/"),
            "signing an unlabelled body"
        );
        Signature(self.0.sign(body).to_bytes())
    }
}

/// An Ed25519 public key that is a valid point of large order (checked when read).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", hex::encode(self.0.as_bytes()))
    }
}

impl VerifyingKey {
    /// Reads a public key, refusing non-points and small-order points.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, KeyError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::Invalid)?;
        if key.is_weak() {
            return Err(KeyError::Weak);
        }
        Ok(Self(key))
    }

    /// [`from_bytes`](Self::from_bytes) from a slice, which must be 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let bytes: &[u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::Invalid)?;
        Self::from_bytes(bytes)
    }

    /// The 32-byte encoding.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// Whether `signature` is this key's signature of `message` (RFC 8032 with the strict
    /// checks: canonical `S`, `R` not of small order).
    #[must_use]
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0.verify_strict(message, &signature).is_ok()
    }

    /// Reads the next field of `reader` as a public key.
    pub(crate) fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::from_bytes(&reader.array()?).map_err(|e| match e {
            KeyError::Invalid => DecodeError::Invalid("not an Ed25519 public key"),
            KeyError::Weak => DecodeError::Invalid("a weak Ed25519 public key"),
        })
    }
}

/// An Ed25519 signature (64 bytes), as it travels next to the body it signs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

impl Signature {
    /// Reads a signature from a slice, which must be 64 bytes.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

/// Reads an X25519 public key field, refusing low-order points.
pub(crate) fn read_x25519(reader: &mut Reader<'_>) -> Result<PublicKey, DecodeError> {
    let key = PublicKey(reader.array()?);
    key.validate()
        .map_err(|_| DecodeError::Invalid("a low-order X25519 public key"))?;
    Ok(key)
}

/// An account's public identity: what its fingerprint names and what a roster entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicIdentity {
    /// The account.
    pub account: AccountId,
    /// Its Ed25519 identity key.
    pub identity_key: VerifyingKey,
    /// Its X25519 key (the one environment and project keys are wrapped to).
    pub x25519_key: PublicKey,
}

/// Which key of a server's copy of an identity differs from the one this device derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityMismatch {
    /// The server answered another identity (Ed25519) key.
    #[error("the server returned an identity key that is not this account's: it substituted a key")]
    IdentityKey,
    /// The server answered another X25519 key.
    #[error(
        "the server returned an encryption public key that is not this account's: it substituted a key"
    )]
    X25519Key,
}

impl PublicIdentity {
    /// This identity's fingerprint.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.account, &self.identity_key, &self.x25519_key)
    }

    /// Compares the keys a server says this account has with the ones this device derived and
    /// unlocked (`self`). Any difference is an attack (key substitution), never a reason to
    /// use the server's copy.
    pub fn check_server_copy(
        &self,
        identity_key: &[u8],
        x25519_key: &[u8],
    ) -> Result<(), IdentityMismatch> {
        if !crate::crypto::constant_time_eq(identity_key, &self.identity_key.to_bytes()) {
            return Err(IdentityMismatch::IdentityKey);
        }
        if !crate::crypto::constant_time_eq(x25519_key, &self.x25519_key.0) {
            return Err(IdentityMismatch::X25519Key);
        }
        Ok(())
    }
}

/// Length of a fingerprint in bytes.
pub const FINGERPRINT_LEN: usize = 16;

/// A fingerprint: 128 bits naming an account id and both of its public keys. Shown as
/// `3f2a-91c0-…` (eight groups of four lower-case hex digits); parsed ignoring case and any
/// spaces, dashes or colons.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; FINGERPRINT_LEN]);

impl Fingerprint {
    /// The fingerprint of an account's keys.
    #[must_use]
    pub fn of(account: &AccountId, identity_key: &VerifyingKey, x25519_key: &PublicKey) -> Self {
        let body = Labelled::new("fingerprint")
            .id(&account.0)
            .field(&identity_key.to_bytes())
            .field(&x25519_key.0)
            .finish();
        let digest = sha256(&body);
        let mut out = [0u8; FINGERPRINT_LEN];
        out.copy_from_slice(&digest[..FINGERPRINT_LEN]);
        Self(out)
    }

    /// Compares in constant time (fingerprints are public, but cheap to be careful).
    #[must_use]
    pub fn matches(&self, other: &Fingerprint) -> bool {
        crate::crypto::constant_time_eq(&self.0, &other.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&grouped_hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Text that is not a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a fingerprint: expected 32 hex digits such as 3f2a-91c0-77de-0b41-5c6d-e8f9-0a1b-2c3d"
)]
pub struct FingerprintParseError;

impl FromStr for Fingerprint {
    type Err = FingerprintParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_loose_hex::<FINGERPRINT_LEN>(s.trim())
            .map(Self)
            .ok_or(FingerprintParseError)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn master(byte: u8) -> SymmetricKey {
        SymmetricKey::from_bytes(Box::new([byte; 32]))
    }

    #[test]
    fn identity_is_derived_per_master_key_and_account() {
        let account = AccountId::random();
        let a = SigningKey::derive_identity(&master(1), &account).verifying_key();
        assert_eq!(
            a,
            SigningKey::derive_identity(&master(1), &account).verifying_key()
        );
        assert_ne!(
            a,
            SigningKey::derive_identity(&master(2), &account).verifying_key()
        );
        assert_ne!(
            a,
            SigningKey::derive_identity(&master(1), &AccountId::random()).verifying_key()
        );
    }

    #[test]
    fn signatures_verify_strictly() {
        let key = SigningKey::derive_identity(&master(3), &AccountId::random());
        let body = Labelled::new("sig/test").str("hello").finish();
        let sig = key.sign(&body);
        let public = key.verifying_key();
        assert!(public.verify(&body, &sig));
        let mut other = body.clone();
        *other.last_mut().unwrap() ^= 1;
        assert!(!public.verify(&other, &sig));
        let stranger = SigningKey::derive_identity(&master(4), &AccountId::random());
        assert!(!stranger.verifying_key().verify(&body, &sig));
        // A non-canonical S (S + ℓ) is refused by the strict check.
        let mut malleated = sig;
        let ell: [u8; 32] =
            hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
                .unwrap()
                .try_into()
                .unwrap();
        let mut carry = 0u16;
        for (s, l) in malleated.0[32..].iter_mut().zip(ell) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert!(!public.verify(&body, &malleated));
    }

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        // The identity point (small order) and a point of order 8.
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        };
        assert_eq!(VerifyingKey::from_bytes(&identity), Err(KeyError::Weak));
        let order8: [u8; 32] =
            hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(VerifyingKey::from_bytes(&order8), Err(KeyError::Weak));
        // y = 2 is not on the curve.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(
            VerifyingKey::from_bytes(&not_a_point),
            Err(KeyError::Invalid)
        );
        assert_eq!(VerifyingKey::from_slice(&[1; 31]), Err(KeyError::Invalid));
    }

    #[test]
    fn fingerprint_text() {
        let fp = Fingerprint([
            0x3f, 0x2a, 0x91, 0xc0, 0x77, 0xde, 0x0b, 0x41, 0x5c, 0x6d, 0xe8, 0xf9, 0x0a, 0x1b,
            0x2c, 0x3d,
        ]);
        assert_eq!(fp.to_string(), "3f2a-91c0-77de-0b41-5c6d-e8f9-0a1b-2c3d");
        for typed in [
            "3f2a-91c0-77de-0b41-5c6d-e8f9-0a1b-2c3d",
            "3F2A 91C0 77DE 0B41 5C6D E8F9 0A1B 2C3D",
            "  3f2a91c077de0b415c6de8f90a1b2c3d\n",
            "3f:2a:91:c0:77:de:0b:41:5c:6d:e8:f9:0a:1b:2c:3d",
        ] {
            assert_eq!(typed.parse::<Fingerprint>(), Ok(fp), "{typed:?}");
        }
        for bad in [
            "",
            "3f2a",
            "3f2a-91c0-77de-0b41-5c6d-e8f9-0a1b-2c3",
            "zz2a-91c0-77de-0b41-5c6d-e8f9-0a1b-2c3d",
            "3f2a-91c0-77de-0b41-5c6d-e8f9-0a1b-2c3d-00",
        ] {
            assert_eq!(
                bad.parse::<Fingerprint>(),
                Err(FingerprintParseError),
                "{bad:?}"
            );
        }
        assert!(fp.matches(&fp));
    }

    #[test]
    fn fingerprint_covers_every_input_and_server_copies_are_checked() {
        let account = AccountId::random();
        let key = SigningKey::derive_identity(&master(5), &account).verifying_key();
        let (_, x) = crate::crypto::generate_keypair();
        let (_, x2) = crate::crypto::generate_keypair();
        let other = SigningKey::derive_identity(&master(6), &account).verifying_key();
        let me = PublicIdentity {
            account,
            identity_key: key,
            x25519_key: x,
        };
        let fp = me.fingerprint();
        assert_ne!(fp, Fingerprint::of(&AccountId::random(), &key, &x));
        assert_ne!(fp, Fingerprint::of(&account, &other, &x));
        assert_ne!(fp, Fingerprint::of(&account, &key, &x2));
        assert_eq!(me.check_server_copy(&key.to_bytes(), &x.0), Ok(()));
        assert_eq!(
            me.check_server_copy(&other.to_bytes(), &x.0),
            Err(IdentityMismatch::IdentityKey)
        );
        assert_eq!(
            me.check_server_copy(&key.to_bytes(), &x2.0),
            Err(IdentityMismatch::X25519Key)
        );
        assert_eq!(
            me.check_server_copy(&key.to_bytes()[..31], &x.0),
            Err(IdentityMismatch::IdentityKey)
        );
    }

    proptest! {
        #[test]
        fn any_flipped_bit_breaks_a_signature(bit in 0usize..(8 * 40)) {
            let key = SigningKey::from_seed(&[9; 32]);
            let body = Labelled::new("sig/test").str("abcdefghijklmnop").finish();
            let sig = key.sign(&body);
            let mut tampered = body.clone();
            tampered[bit / 8 % body.len()] ^= 1 << (bit % 8);
            prop_assert!(!key.verifying_key().verify(&tampered, &sig));
            let mut bad_sig = sig;
            bad_sig.0[bit / 8 % 64] ^= 1 << (bit % 8);
            prop_assert!(!key.verifying_key().verify(&body, &bad_sig));
        }

        #[test]
        fn arbitrary_key_bytes_never_panic(bytes in proptest::array::uniform32(any::<u8>())) {
            if let Ok(key) = VerifyingKey::from_bytes(&bytes) {
                prop_assert_eq!(key.to_bytes(), bytes);
            }
        }
    }
}
