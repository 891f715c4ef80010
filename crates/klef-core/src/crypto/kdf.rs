//! Argon2id (RFC 9106): the key-encryption key from a password, and the accepted parameters.

use secrecy::ExposeSecret as _;

use super::{CryptoError, SymmetricKey, fill_random};
use crate::model::{Blob, KdfAlgorithm, KdfParams};

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
pub(super) fn argon2id(
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
