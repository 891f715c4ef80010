//! Klef's cryptography (DESIGN.md §2, format spec in `docs/crypto.md`), one module per
//! primitive as rage's `age` crate lays it out.
//!
//! The chain is password → Argon2id → KEK → master key → X25519 private key → project keys →
//! environment keys → values. Every envelope starts with a one-byte **suite id**, so new
//! constructions (e.g. post-quantum X-Wing wrapping) are new suites, not migrations.
//!
//! * [`encrypt_value`]/[`decrypt_value`] (`value`): a [`SealedValue`], AES-256-GCM under the
//!   environment key, bound to environment and name.
//! * [`seal_key`]/[`open_key`] (`aead`): a [`SealedKey`], AES-256-GCM, random 96-bit nonce,
//!   associated data from [`Aad`].
//! * [`wrap_key`]/[`unwrap_key`] (`hpke`): a [`WrappedKey`], HPKE base mode (RFC 9180),
//!   DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM; `info` from [`Aad`].
//! * [`derive_kek`] (`kdf`): Argon2id with the stored [`KdfParams`](crate::model::KdfParams).
//! * [`account`]: creating, unlocking, recovering and re-sealing an account's keys.
//!
//! The three envelope types are distinct, so a wrapped key cannot be opened as a value; they
//! become plain bytes only at the storage and network edge (`From<…> for Blob`).

mod aad;
pub mod account;
mod aead;
mod base32;
mod envelope;
mod error;
mod hash;
mod hpke;
mod kdf;
mod keys;
pub mod recovery;
pub mod token;
mod value;

pub use aad::Aad;
pub use aead::{open_key, open_private_key, seal_key, seal_private_key};
pub use envelope::{
    EnvelopeShape, SUITE_AES256GCM, SUITE_HPKE_X25519_SHA256_AES256GCM, SUITE_VALUE_AT, SealedKey,
    SealedValue, WrappedKey, check_shape,
};
pub use error::CryptoError;
pub(crate) use hash::hkdf_sha256_key;
pub use hash::{constant_time_eq, sha256_hex};
pub use hpke::{try_wrap_key, unwrap_key, wrap_key};
pub use kdf::{
    DEFAULT_M_COST_KIB, DEFAULT_P_COST, DEFAULT_T_COST, MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST,
    MIN_M_COST_KIB, SALT_LEN, default_kdf_params, derive_kek, kdf_params_below_default,
    validate_kdf_params,
};
pub use keys::{PrivateKey, PublicKey, SymmetricKey, fill_random, generate_keypair};
pub use value::{ValueAt, decrypt_value, decrypt_value_at, encrypt_value, encrypt_value_at};

#[cfg(test)]
mod tests;
