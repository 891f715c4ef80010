//! Account key lifecycle: create, unlock with the password, recover with the recovery code,
//! re-seal under a new password.

use secrecy::SecretString;

use super::recovery::RecoveryCode;
use super::{CryptoError, PrivateKey, SymmetricKey};
use crate::ids::AccountId;
use crate::model::AccountKeys;

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
    let _ = (account, password);
    todo!("crypto helper")
}

/// Opens the master key with the password, then the private key. A wrong password is
/// [`CryptoError::WrongPassword`]; a private key that fails to open under a correct master key
/// is [`CryptoError::Tampered`].
pub fn unlock(
    account: &AccountId,
    keys: &AccountKeys,
    password: &SecretString,
) -> Result<UnlockedAccount, CryptoError> {
    let _ = (account, keys, password);
    todo!("crypto helper")
}

/// Opens the master key with the recovery code (wrong code → [`CryptoError::WrongPassword`]).
pub fn unlock_with_recovery(
    account: &AccountId,
    keys: &AccountKeys,
    code: &RecoveryCode,
) -> Result<UnlockedAccount, CryptoError> {
    let _ = (account, keys, code);
    todo!("crypto helper")
}

/// Re-seals the master key under a new password with the current default KDF parameters.
/// Everything else in `keys` (recovery copy, key pair) is returned unchanged.
pub fn reseal_with_password(
    account: &AccountId,
    keys: &AccountKeys,
    unlocked: &UnlockedAccount,
    new_password: &SecretString,
) -> Result<AccountKeys, CryptoError> {
    let _ = (account, keys, unlocked, new_password);
    todo!("crypto helper")
}
