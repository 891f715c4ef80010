//! Account key lifecycle: create, unlock with the password, recover with the recovery code,
//! re-seal under a new password.

use secrecy::SecretString;

use super::recovery::RecoveryCode;
use super::{
    Aad, CryptoError, PrivateKey, SealedKey, SymmetricKey, default_kdf_params, derive_kek,
    generate_keypair, open_key, open_private_key, seal_key, seal_private_key,
};
use crate::ids::AccountId;
use crate::model::{AccountKeys, Blob, KdfParams};

/// An unlocked account: the master key and the private key, in memory only.
pub struct UnlockedAccount {
    /// The master key (root of the account's keys).
    pub master_key: SymmetricKey,
    /// The X25519 private key.
    pub private_key: PrivateKey,
}

/// Creates key material for a new account: a random master key sealed under the password and
/// under a fresh recovery code, and an X25519 key pair whose private half is sealed under the
/// master key. Returns the stored form, the recovery code (show it once) and the unlocked keys.
pub fn create(
    account: &AccountId,
    password: &SecretString,
) -> Result<(AccountKeys, RecoveryCode, UnlockedAccount), CryptoError> {
    create_with_params(account, password, default_kdf_params())
}

/// [`create`] with explicit KDF parameters (still subject to [`super::validate_kdf_params`]).
/// Production code calls [`create`]; this exists for tests that need a cheaper KDF.
pub fn create_with_params(
    account: &AccountId,
    password: &SecretString,
    kdf: KdfParams,
) -> Result<(AccountKeys, RecoveryCode, UnlockedAccount), CryptoError> {
    let kek = derive_kek(password, &kdf)?;
    let master_key = SymmetricKey::generate();
    let recovery = RecoveryCode::generate();
    let recovery_key = recovery.recovery_key()?;
    let (private_key, public_key) = generate_keypair();
    let keys = AccountKeys {
        kdf,
        master_key_by_password: seal_key(&kek, &master_key, &Aad::MasterKeyByPassword(account))
            .into(),
        master_key_by_recovery: seal_key(
            &recovery_key,
            &master_key,
            &Aad::MasterKeyByRecovery(account),
        )
        .into(),
        public_key: Blob(public_key.0.to_vec()),
        private_key_sealed: seal_private_key(&master_key, &private_key, &Aad::PrivateKey(account))
            .into(),
    };
    Ok((
        keys,
        recovery,
        UnlockedAccount {
            master_key,
            private_key,
        },
    ))
}

/// Opens the master key with the password, then the private key. A wrong password is
/// [`CryptoError::WrongPassword`]; a private key that fails to open under a correct master key
/// is [`CryptoError::Tampered`].
pub fn unlock(
    account: &AccountId,
    keys: &AccountKeys,
    password: &SecretString,
) -> Result<UnlockedAccount, CryptoError> {
    let kek = derive_kek(password, &keys.kdf)?;
    let master_key = open_master(
        &kek,
        &SealedKey::from(&keys.master_key_by_password),
        &Aad::MasterKeyByPassword(account),
    )?;
    open_private(account, keys, master_key)
}

/// Opens the master key with the recovery code (wrong code → [`CryptoError::WrongPassword`]).
pub fn unlock_with_recovery(
    account: &AccountId,
    keys: &AccountKeys,
    code: &RecoveryCode,
) -> Result<UnlockedAccount, CryptoError> {
    let master_key = open_master(
        &code.recovery_key()?,
        &SealedKey::from(&keys.master_key_by_recovery),
        &Aad::MasterKeyByRecovery(account),
    )?;
    open_private(account, keys, master_key)
}

/// Re-seals the master key under a new password with a fresh salt and KDF costs raised to at
/// least the current defaults (stronger stored costs are kept).
/// Everything else in `keys` (recovery copy, key pair) is returned unchanged.
///
/// `unlocked` must belong to `keys`: its master key must open the stored private key and that
/// key must match the stored public key, otherwise [`CryptoError::Tampered`] (re-sealing a
/// foreign master key would lock the person out).
pub fn reseal_with_password(
    account: &AccountId,
    keys: &AccountKeys,
    unlocked: &UnlockedAccount,
    new_password: &SecretString,
) -> Result<AccountKeys, CryptoError> {
    let check = open_private(account, keys, unlocked.master_key.clone())?;
    if check.private_key.expose() != unlocked.private_key.expose() {
        return Err(CryptoError::Tampered {
            what: "the account's private key".into(),
        });
    }
    // A fresh salt, and each cost at least the current default: weaker stored parameters are
    // raised, stronger ones (chosen deliberately) are never lowered.
    let mut kdf = default_kdf_params();
    kdf.m_cost_kib = kdf.m_cost_kib.max(keys.kdf.m_cost_kib);
    kdf.t_cost = kdf.t_cost.max(keys.kdf.t_cost);
    kdf.p_cost = kdf.p_cost.max(keys.kdf.p_cost);
    let kek = derive_kek(new_password, &kdf)?;
    Ok(AccountKeys {
        kdf,
        master_key_by_password: seal_key(
            &kek,
            &unlocked.master_key,
            &Aad::MasterKeyByPassword(account),
        )
        .into(),
        ..keys.clone()
    })
}

/// Opens a sealed master key; an authentication failure means the password (or recovery code)
/// was wrong, which is what a person needs to hear.
fn open_master(
    kek: &SymmetricKey,
    sealed: &SealedKey,
    aad: &Aad<'_>,
) -> Result<SymmetricKey, CryptoError> {
    match open_key(kek, sealed, aad, "the master key") {
        Err(CryptoError::Tampered { .. }) => Err(CryptoError::WrongPassword),
        other => other,
    }
}

/// Opens the private key under an opened master key and checks it against the stored public
/// key.
fn open_private(
    account: &AccountId,
    keys: &AccountKeys,
    master_key: SymmetricKey,
) -> Result<UnlockedAccount, CryptoError> {
    const WHAT: &str = "the account's private key";
    let private_key = open_private_key(
        &master_key,
        &SealedKey::from(&keys.private_key_sealed),
        &Aad::PrivateKey(account),
        WHAT,
    )?;
    if private_key.public_key().0.as_slice() != keys.public_key.as_bytes() {
        return Err(CryptoError::Tampered {
            what: "the account's public key".into(),
        });
    }
    Ok(UnlockedAccount {
        master_key,
        private_key,
    })
}
