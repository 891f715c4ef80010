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
mod base32;
pub mod recovery;
pub mod token;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hpke::{Deserializable as _, Serializable as _};
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::ids::{AccountId, EnvironmentId, ProjectId};
use crate::model::{Blob, KdfAlgorithm, KdfParams};

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
    /// The associated-data bytes: `"klef/v1/" ‖ label ‖ 0x00 ‖ fields`, each field a
    /// big-endian `u32` length followed by its bytes, so no two contexts can produce the same
    /// bytes (labels contain no `0x00`; ids are their 16 raw bytes; names are UTF-8).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let (label, fields): (&str, [&[u8]; 2]) = match self {
            Aad::MasterKeyByPassword(a) => ("master-key-by-password", [a.0.as_bytes(), &[]]),
            Aad::MasterKeyByRecovery(a) => ("master-key-by-recovery", [a.0.as_bytes(), &[]]),
            Aad::PrivateKey(a) => ("private-key", [a.0.as_bytes(), &[]]),
            Aad::ProjectKey(p) => ("project-key", [p.0.as_bytes(), &[]]),
            Aad::EnvironmentKey(e) => ("environment-key", [e.0.as_bytes(), &[]]),
            Aad::SecretValue { environment, name } => {
                ("secret-value", [environment.0.as_bytes(), name.as_bytes()])
            }
            Aad::Other(label) => ("other", [label.as_bytes(), &[]]),
        };
        let count = match self {
            Aad::SecretValue { .. } => 2,
            _ => 1,
        };
        let mut out = Vec::with_capacity(AAD_PREFIX.len() + label.len() + 1 + 40);
        out.extend_from_slice(AAD_PREFIX);
        out.extend_from_slice(label.as_bytes());
        out.push(0);
        for field in &fields[..count] {
            let len = u32::try_from(field.len()).expect("an AAD field longer than 4 GiB");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }
}

/// The common prefix of every associated-data string (format version 1).
const AAD_PREFIX: &[u8] = b"klef/v1/";
/// AES-GCM nonce length (96 bits, NIST SP 800-38D §8.2.2 with random nonces).
const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Length of an X25519 public key / HPKE encapsulated key.
const ENC_LEN: usize = 32;

/// Seals `plaintext` under `key` with AES-256-GCM and a random nonce.
#[must_use]
pub fn seal(key: &SymmetricKey, plaintext: &[u8], aad: &Aad<'_>) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    seal_with_nonce(key, &nonce, plaintext, &aad.to_bytes())
}

/// [`seal`] with an explicit nonce and raw associated data (known-answer tests).
fn seal_with_nonce(
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
pub fn open(
    key: &SymmetricKey,
    envelope: &[u8],
    aad: &Aad<'_>,
    what: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    open_with_aad_bytes(key, envelope, &aad.to_bytes(), what)
}

/// [`open`] with raw associated data.
fn open_with_aad_bytes(
    key: &SymmetricKey,
    envelope: &[u8],
    aad: &[u8],
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let body = check_suite(envelope, SUITE_AES256GCM, what)?;
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

/// Checks an envelope's suite byte and returns the rest. Empty → `Malformed`; a suite this
/// build does not know → `UnsupportedSuite`; a known suite of the other kind → `Malformed`.
fn check_suite<'e>(envelope: &'e [u8], expected: u8, what: &str) -> Result<&'e [u8], CryptoError> {
    let (&suite, body) = envelope
        .split_first()
        .ok_or_else(|| CryptoError::Malformed {
            what: what.to_owned(),
        })?;
    match suite {
        s if s == expected => Ok(body),
        SUITE_AES256GCM | SUITE_HPKE_X25519_SHA256_AES256GCM => Err(CryptoError::Malformed {
            what: what.to_owned(),
        }),
        other => Err(CryptoError::UnsupportedSuite(other)),
    }
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
pub fn wrap_key(recipient: &PublicKey, key: &SymmetricKey, aad: &Aad<'_>) -> Vec<u8> {
    try_wrap_key(recipient, key, aad).expect("wrapping to a low-order public key")
}

/// [`wrap_key`] that reports an unusable (low-order) recipient key as
/// [`CryptoError::Malformed`] instead of panicking.
pub fn try_wrap_key(
    recipient: &PublicKey,
    key: &SymmetricKey,
    aad: &Aad<'_>,
) -> Result<Vec<u8>, CryptoError> {
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
    Ok(out)
}

/// Unwraps a key wrapped by [`wrap_key`]. A failure to open is [`CryptoError::Tampered`]
/// naming `what` (wrong recipient, other context, or modified bytes).
pub fn unwrap_key(
    private: &PrivateKey,
    envelope: &[u8],
    aad: &Aad<'_>,
    what: &str,
) -> Result<SymmetricKey, CryptoError> {
    let pt = hpke_open(private, envelope, &aad.to_bytes(), what)?;
    SymmetricKey::from_slice(&pt).map_err(|_| CryptoError::Malformed {
        what: what.to_owned(),
    })
}

/// Opens an HPKE envelope with raw `info` bytes.
fn hpke_open(
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

/// Default Argon2id memory cost: 64 MiB (RFC 9106 §4, second recommended option).
pub const DEFAULT_M_COST_KIB: u32 = 64 * 1024;
/// Default Argon2id passes.
pub const DEFAULT_T_COST: u32 = 3;
/// Default Argon2id lanes.
pub const DEFAULT_P_COST: u32 = 4;
/// Salt length written by [`default_kdf_params`].
pub const SALT_LEN: usize = 16;
/// Smallest memory cost [`derive_kek`] accepts (8 MiB): a vault cannot weaken us below it.
pub const MIN_M_COST_KIB: u32 = 8 * 1024;
/// Largest memory cost [`derive_kek`] accepts (4 GiB): a vault cannot exhaust our memory.
pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
/// Largest number of passes [`derive_kek`] accepts.
pub const MAX_T_COST: u32 = 64;
/// Largest number of lanes [`derive_kek`] accepts.
pub const MAX_P_COST: u32 = 64;
/// Accepted salt lengths.
const SALT_LEN_RANGE: std::ops::RangeInclusive<usize> = 16..=64;

/// The default Argon2id parameters (RFC 9106 second recommendation: m = 64 MiB, t = 3, p = 4)
/// with a fresh 16-byte salt.
#[must_use]
pub fn default_kdf_params() -> KdfParams {
    let mut salt = vec![0u8; SALT_LEN];
    fill_random(&mut salt);
    KdfParams {
        algorithm: KdfAlgorithm::Argon2id,
        m_cost_kib: DEFAULT_M_COST_KIB,
        t_cost: DEFAULT_T_COST,
        p_cost: DEFAULT_P_COST,
        salt: Blob(salt),
    }
}

/// Whether `params` are weaker than the current defaults (so an unlock should re-seal the
/// master key with [`default_kdf_params`]).
#[must_use]
pub fn kdf_params_below_default(params: &KdfParams) -> bool {
    params.m_cost_kib < DEFAULT_M_COST_KIB
        || params.t_cost < DEFAULT_T_COST
        || params.salt.as_bytes().len() < SALT_LEN
}

/// Checks stored KDF parameters against the floor and ceiling above.
pub fn validate_kdf_params(params: &KdfParams) -> Result<(), CryptoError> {
    let bad = |why: String| Err(CryptoError::InvalidKdfParams(why));
    match params.algorithm {
        KdfAlgorithm::Argon2id => {}
    }
    if params.m_cost_kib < MIN_M_COST_KIB {
        return bad(format!(
            "memory cost {} KiB is below the minimum of {MIN_M_COST_KIB} KiB",
            params.m_cost_kib
        ));
    }
    if params.m_cost_kib > MAX_M_COST_KIB {
        return bad(format!(
            "memory cost {} KiB is above the maximum of {MAX_M_COST_KIB} KiB",
            params.m_cost_kib
        ));
    }
    if !(1..=MAX_T_COST).contains(&params.t_cost) {
        return bad(format!(
            "{} passes is outside 1..={MAX_T_COST}",
            params.t_cost
        ));
    }
    if !(1..=MAX_P_COST).contains(&params.p_cost) {
        return bad(format!(
            "{} lanes is outside 1..={MAX_P_COST}",
            params.p_cost
        ));
    }
    let salt_len = params.salt.as_bytes().len();
    if !SALT_LEN_RANGE.contains(&salt_len) {
        return bad(format!(
            "a {salt_len}-byte salt is outside {}..={} bytes",
            SALT_LEN_RANGE.start(),
            SALT_LEN_RANGE.end()
        ));
    }
    Ok(())
}

/// Derives the key-encryption key from a password: Argon2id version 0x13 (RFC 9106) over the
/// password's UTF-8 bytes (not normalised) with the stored salt and costs, 32 bytes out.
/// Parameters outside the accepted range are [`CryptoError::InvalidKdfParams`].
pub fn derive_kek(
    password: &secrecy::SecretString,
    params: &KdfParams,
) -> Result<SymmetricKey, CryptoError> {
    validate_kdf_params(params)?;
    let mut out = Box::new([0u8; 32]);
    argon2id(
        password.expose_secret().as_bytes(),
        params.salt.as_bytes(),
        &[],
        &[],
        (params.m_cost_kib, params.t_cost, params.p_cost),
        out.as_mut(),
    )?;
    Ok(SymmetricKey::from_bytes(out))
}

/// Raw Argon2id v0x13 with optional secret and associated data (RFC 9106 §3.1), no policy
/// checks: [`derive_kek`] validates first; the RFC 9106 known-answer test calls this directly.
fn argon2id(
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    associated_data: &[u8],
    (m_cost, t_cost, p_cost): (u32, u32, u32),
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let invalid = |e: argon2::Error| CryptoError::InvalidKdfParams(e.to_string());
    let mut builder = argon2::ParamsBuilder::new();
    builder
        .m_cost(m_cost)
        .t_cost(t_cost)
        .p_cost(p_cost)
        .output_len(out.len());
    if !associated_data.is_empty() {
        builder.data(argon2::AssociatedData::new(associated_data).map_err(invalid)?);
    }
    let params = builder.build().map_err(invalid)?;
    let ctx = if secret.is_empty() {
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
    } else {
        argon2::Argon2::new_with_secret(
            secret,
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        )
        .map_err(invalid)?
    };
    ctx.hash_password_into(password, salt, out).map_err(invalid)
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use secrecy::SecretString;
    use serde::Deserialize;

    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector hex")
    }

    fn fixed_key(b: u8) -> SymmetricKey {
        SymmetricKey::from_bytes(Box::new([b; 32]))
    }

    /// Cheap but valid KDF parameters (the floor) for tests.
    pub(crate) fn floor_params() -> KdfParams {
        KdfParams {
            m_cost_kib: MIN_M_COST_KIB,
            t_cost: 1,
            p_cost: 1,
            ..default_kdf_params()
        }
    }

    #[derive(Deserialize)]
    struct GcmFile {
        vectors: Vec<GcmVector>,
    }

    #[derive(Deserialize)]
    struct GcmVector {
        name: String,
        key: String,
        nonce: String,
        plaintext: String,
        aad: String,
        ciphertext: String,
        tag: String,
    }

    /// AES-256-GCM known answers from the GCM specification, through Klef's envelope code.
    #[test]
    fn aes256gcm_known_answers() {
        let file: GcmFile =
            serde_json::from_str(include_str!("../../tests/data/aes256gcm.json")).unwrap();
        assert_eq!(file.vectors.len(), 4);
        for v in &file.vectors {
            let key = SymmetricKey::from_slice(&unhex(&v.key)).unwrap();
            let nonce: [u8; NONCE_LEN] = unhex(&v.nonce).try_into().unwrap();
            let aad = unhex(&v.aad);
            let pt = unhex(&v.plaintext);
            let mut expected = vec![SUITE_AES256GCM];
            expected.extend(unhex(&v.nonce));
            expected.extend(unhex(&v.ciphertext));
            expected.extend(unhex(&v.tag));

            let envelope = seal_with_nonce(&key, &nonce, &pt, &aad);
            assert_eq!(hex::encode(&envelope), hex::encode(&expected), "{}", v.name);
            let opened = open_with_aad_bytes(&key, &expected, &aad, "vector").unwrap();
            assert_eq!(opened.as_slice(), pt.as_slice(), "{}", v.name);

            let mut bad_tag = expected.clone();
            *bad_tag.last_mut().unwrap() ^= 1;
            assert_eq!(
                open_with_aad_bytes(&key, &bad_tag, &aad, "vector").unwrap_err(),
                CryptoError::Tampered {
                    what: "vector".into()
                },
                "{}",
                v.name
            );
        }
    }

    #[derive(Deserialize)]
    struct Argon2Vector {
        password: String,
        salt: String,
        secret: String,
        associated_data: String,
        m_cost_kib: u32,
        t_cost: u32,
        p_cost: u32,
        tag: String,
    }

    /// RFC 9106 §5.3 through the same Argon2id call `derive_kek` makes (with secret and AD).
    #[test]
    fn argon2id_rfc9106_known_answer() {
        let v: Argon2Vector =
            serde_json::from_str(include_str!("../../tests/data/argon2id_rfc9106.json")).unwrap();
        let mut out = [0u8; 32];
        argon2id(
            &unhex(&v.password),
            &unhex(&v.salt),
            &unhex(&v.secret),
            &unhex(&v.associated_data),
            (v.m_cost_kib, v.t_cost, v.p_cost),
            &mut out,
        )
        .unwrap();
        assert_eq!(hex::encode(out), v.tag);
    }

    /// `derive_kek` is Argon2id with no secret and no AD over the UTF-8 password: pin one
    /// output at the floor parameters so a change of encoding or algorithm is caught.
    #[test]
    fn derive_kek_is_stable() {
        let params = KdfParams {
            salt: Blob(vec![0x02; 16]),
            ..floor_params()
        };
        let kek = derive_kek(&SecretString::from("correct horse battery staple"), &params).unwrap();
        let mut raw = [0u8; 32];
        argon2id(
            b"correct horse battery staple",
            &[0x02; 16],
            &[],
            &[],
            (MIN_M_COST_KIB, 1, 1),
            &mut raw,
        )
        .unwrap();
        assert_eq!(kek.expose(), &raw);
        assert_eq!(
            hex::encode(kek.expose()),
            include_str!("../../tests/data/derive_kek_floor.hex").trim()
        );
        let other = derive_kek(
            &SecretString::from("correct horse battery stapler"),
            &params,
        )
        .unwrap();
        assert_ne!(kek.expose(), other.expose());
    }

    /// One run at the real defaults (m = 64 MiB, t = 3, p = 4); prints the time so
    /// docs/crypto.md can quote it (`cargo test -p klef-core -- --nocapture derive_kek_default`).
    #[test]
    fn derive_kek_default_params() {
        let params = default_kdf_params();
        assert_eq!(
            (params.m_cost_kib, params.t_cost, params.p_cost),
            (65_536, 3, 4)
        );
        assert_eq!(params.salt.as_bytes().len(), 16);
        let started = std::time::Instant::now();
        let a = derive_kek(&SecretString::from("pw"), &params).unwrap();
        eprintln!("derive_kek at default params: {:?}", started.elapsed());
        let b = derive_kek(&SecretString::from("pw"), &floor_params()).unwrap();
        assert_ne!(a.expose(), b.expose());
        // Fresh salts differ.
        assert_ne!(default_kdf_params().salt, default_kdf_params().salt);
    }

    #[test]
    fn kdf_params_are_bounded() {
        let pw = SecretString::from("pw");
        let cases = [
            KdfParams {
                m_cost_kib: MIN_M_COST_KIB - 1,
                ..floor_params()
            },
            KdfParams {
                m_cost_kib: MAX_M_COST_KIB + 1,
                ..floor_params()
            },
            KdfParams {
                t_cost: 0,
                ..floor_params()
            },
            KdfParams {
                t_cost: MAX_T_COST + 1,
                ..floor_params()
            },
            KdfParams {
                p_cost: 0,
                ..floor_params()
            },
            KdfParams {
                p_cost: MAX_P_COST + 1,
                ..floor_params()
            },
            KdfParams {
                salt: Blob(vec![1; 8]),
                ..floor_params()
            },
            KdfParams {
                salt: Blob(vec![1; 65]),
                ..floor_params()
            },
        ];
        for params in &cases {
            let err = derive_kek(&pw, params).err().expect("must be refused");
            assert!(
                matches!(err, CryptoError::InvalidKdfParams(_)),
                "{params:?}: {err:?}"
            );
        }
        assert!(validate_kdf_params(&floor_params()).is_ok());
        assert!(validate_kdf_params(&default_kdf_params()).is_ok());
        assert!(kdf_params_below_default(&floor_params()));
        assert!(!kdf_params_below_default(&default_kdf_params()));
    }

    #[test]
    fn aad_encoding_is_pinned_and_distinct() {
        let env: EnvironmentId = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
        let bytes = Aad::SecretValue {
            environment: &env,
            name: "API_KEY",
        }
        .to_bytes();
        let mut expected = b"klef/v1/secret-value\0".to_vec();
        expected.extend([0, 0, 0, 16]);
        expected.extend(env.0.as_bytes());
        expected.extend([0, 0, 0, 7]);
        expected.extend(b"API_KEY");
        assert_eq!(bytes, expected);

        let account = AccountId(env.0);
        let project = ProjectId(env.0);
        let all = [
            Aad::MasterKeyByPassword(&account).to_bytes(),
            Aad::MasterKeyByRecovery(&account).to_bytes(),
            Aad::PrivateKey(&account).to_bytes(),
            Aad::ProjectKey(&project).to_bytes(),
            Aad::EnvironmentKey(&env).to_bytes(),
            Aad::SecretValue {
                environment: &env,
                name: "",
            }
            .to_bytes(),
            Aad::SecretValue {
                environment: &env,
                name: "A",
            }
            .to_bytes(),
            Aad::Other("").to_bytes(),
            Aad::Other("backup").to_bytes(),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn open_reports_malformed_and_unknown_suites() {
        let key = fixed_key(7);
        let aad = Aad::Other("test");
        assert_eq!(
            open(&key, &[], &aad, "x").unwrap_err(),
            CryptoError::Malformed { what: "x".into() }
        );
        assert_eq!(
            open(&key, &[SUITE_AES256GCM; 28], &aad, "x").unwrap_err(),
            CryptoError::Malformed { what: "x".into() }
        );
        assert_eq!(
            open(&key, &[0x7f; 64], &aad, "x").unwrap_err(),
            CryptoError::UnsupportedSuite(0x7f)
        );
        let (sk, pk) = generate_keypair();
        let wrapped = wrap_key(&pk, &key, &aad);
        assert_eq!(
            open(&key, &wrapped, &aad, "x").unwrap_err(),
            CryptoError::Malformed { what: "x".into() }
        );
        let sealed = seal(&key, b"abc", &aad);
        assert_eq!(sealed.len(), 1 + 12 + 3 + 16);
        assert!(matches!(
            unwrap_key(&sk, &sealed, &aad, "x"),
            Err(CryptoError::Malformed { .. })
        ));
        assert!(matches!(
            unwrap_key(&sk, &wrapped[..1 + 32 + 15], &aad, "x"),
            Err(CryptoError::Malformed { .. })
        ));
        assert_eq!(
            try_wrap_key(&pk, &key, &aad).unwrap().len(),
            1 + 32 + 32 + 16
        );
    }

    #[test]
    fn values_are_bound_to_name_and_environment() {
        let key = fixed_key(1);
        let env = EnvironmentId::random();
        let other_env = EnvironmentId::random();
        let ct = encrypt_value(&key, &env, "API_KEY", b"s3cr3t");
        assert_eq!(
            decrypt_value(&key, &env, "API_KEY", &ct)
                .unwrap()
                .as_slice(),
            b"s3cr3t"
        );
        assert_eq!(
            decrypt_value(&key, &env, "OTHER_KEY", &ct).unwrap_err(),
            CryptoError::Tampered {
                what: "the value of OTHER_KEY".into()
            }
        );
        assert!(matches!(
            decrypt_value(&key, &other_env, "API_KEY", &ct),
            Err(CryptoError::Tampered { .. })
        ));
        assert!(matches!(
            decrypt_value(&fixed_key(2), &env, "API_KEY", &ct),
            Err(CryptoError::Tampered { .. })
        ));
        // Two seals of the same value differ (random nonce).
        assert_ne!(ct, encrypt_value(&key, &env, "API_KEY", b"s3cr3t"));
    }

    #[test]
    fn keys_wrapped_to_one_context_do_not_open_in_another() {
        let (sk, pk) = generate_keypair();
        let (other_sk, _) = generate_keypair();
        let env_key = SymmetricKey::generate();
        let env = EnvironmentId::random();
        let other = EnvironmentId::random();
        let wrapped = wrap_key(&pk, &env_key, &Aad::EnvironmentKey(&env));
        assert_eq!(wrapped.len(), 1 + 32 + 32 + 16);
        assert_eq!(wrapped[0], SUITE_HPKE_X25519_SHA256_AES256GCM);
        let opened = unwrap_key(&sk, &wrapped, &Aad::EnvironmentKey(&env), "k").unwrap();
        assert_eq!(opened.expose(), env_key.expose());
        for (key, aad) in [
            (&sk, Aad::EnvironmentKey(&other)),
            (&sk, Aad::ProjectKey(&ProjectId(env.0))),
            (&other_sk, Aad::EnvironmentKey(&env)),
        ] {
            assert_eq!(
                unwrap_key(key, &wrapped, &aad, "k").err(),
                Some(CryptoError::Tampered { what: "k".into() })
            );
        }
        let project_key = SymmetricKey::generate();
        let sealed = seal_key(&project_key, &env_key, &Aad::EnvironmentKey(&env));
        assert_eq!(
            open_key(&project_key, &sealed, &Aad::EnvironmentKey(&env), "k")
                .unwrap()
                .expose(),
            env_key.expose()
        );
    }

    #[test]
    fn low_order_public_keys_are_refused() {
        // The all-zero point and the order-8 point from RFC 7748's discussion.
        let zero = [0u8; 32];
        let mut order8 = [0u8; 32];
        order8[0] = 1;
        for bad in [zero, order8] {
            assert!(matches!(
                PublicKey::from_slice(&bad),
                Err(CryptoError::Malformed { .. })
            ));
            assert!(try_wrap_key(&PublicKey(bad), &fixed_key(1), &Aad::Other("t")).is_err());
        }
        assert!(PublicKey::from_slice(&[1u8; 31]).is_err());
        let (_, pk) = generate_keypair();
        assert_eq!(PublicKey::from_slice(&pk.0).unwrap(), pk);
    }

    #[test]
    fn fingerprint_format() {
        let pk = PublicKey([0u8; 32]);
        // SHA-256 of 32 zero bytes starts 66687aadf862bd776c8fc18b8e9f8e20.
        assert_eq!(pk.fingerprint(), "6668-7aad-f862-bd77-6c8f-c18b-8e9f-8e20");
        let (_, other) = generate_keypair();
        assert_ne!(other.fingerprint(), pk.fingerprint());
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            label in "\\PC{0,40}",
            key in proptest::array::uniform32(any::<u8>()),
        ) {
            let key = SymmetricKey::from_bytes(Box::new(key));
            let aad = Aad::Other(&label);
            let env = seal(&key, &data, &aad);
            let opened = open(&key, &env, &aad, "t").unwrap();
            prop_assert_eq!(opened.as_slice(), data.as_slice());
            let other = format!("{label}!");
            prop_assert!(open(&key, &env, &Aad::Other(&other), "t").is_err());
        }

        #[test]
        fn any_flipped_bit_in_a_sealed_envelope_is_detected(
            data in proptest::collection::vec(any::<u8>(), 0..256),
            bit in any::<proptest::sample::Index>(),
        ) {
            let key = fixed_key(9);
            let aad = Aad::Other("flip");
            let mut env = seal(&key, &data, &aad);
            let i = bit.index(env.len() * 8);
            env[i / 8] ^= 1 << (i % 8);
            prop_assert!(open(&key, &env, &aad, "t").is_err());
        }

        #[test]
        fn any_flipped_bit_in_a_wrapped_key_is_detected(bit in any::<proptest::sample::Index>()) {
            let (sk, pk) = generate_keypair();
            let aad = Aad::Other("flip");
            let mut env = wrap_key(&pk, &fixed_key(3), &aad);
            let i = bit.index(env.len() * 8);
            env[i / 8] ^= 1 << (i % 8);
            prop_assert!(unwrap_key(&sk, &env, &aad, "t").is_err());
        }

        #[test]
        fn wrap_unwrap_round_trip(key in proptest::array::uniform32(any::<u8>())) {
            let (sk, pk) = generate_keypair();
            let key = SymmetricKey::from_bytes(Box::new(key));
            let project = ProjectId::random();
            let env = wrap_key(&pk, &key, &Aad::ProjectKey(&project));
            let opened = unwrap_key(&sk, &env, &Aad::ProjectKey(&project), "t").unwrap();
            prop_assert_eq!(opened.expose(), key.expose());
        }

        #[test]
        fn swapped_names_never_open(a in "[A-Z_][A-Z0-9_]{0,20}", b in "[A-Z_][A-Z0-9_]{0,20}") {
            prop_assume!(a != b);
            let key = fixed_key(4);
            let env = EnvironmentId::random();
            let ct = encrypt_value(&key, &env, &a, b"v");
            prop_assert!(decrypt_value(&key, &env, &b, &ct).is_err());
        }
    }
}
