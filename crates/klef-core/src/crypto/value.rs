//! Secret values: AES-256-GCM under the environment key, bound to the environment and the name
//! ([`Aad::SecretValue`]).

use zeroize::Zeroizing;

use super::{Aad, CryptoError, SealedValue, SymmetricKey, aead};
use crate::ids::EnvironmentId;

/// Encrypts a secret value for storage.
#[must_use]
pub fn encrypt_value(
    env_key: &SymmetricKey,
    environment: &EnvironmentId,
    name: &str,
    value: &[u8],
) -> SealedValue {
    let aad = Aad::SecretValue { environment, name };
    SealedValue::from_bytes(aead::seal(env_key, value, &aad.to_bytes()))
}

/// Decrypts a stored secret value; failure is reported as tampering with that name.
pub fn decrypt_value(
    env_key: &SymmetricKey,
    environment: &EnvironmentId,
    name: &str,
    sealed: &SealedValue,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let aad = Aad::SecretValue { environment, name };
    aead::open(
        env_key,
        sealed.as_bytes(),
        &aad.to_bytes(),
        &format!("the value of {name}"),
    )
}
