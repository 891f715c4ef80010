//! Secret values: AES-256-GCM under the environment key, bound to the environment, the name,
//! and (suite `0x02`, what this build writes) the value's version and key version
//! ([`Aad::SecretValueAt`]). Values written by earlier builds (suite `0x01`,
//! [`Aad::SecretValue`]) still open.

use zeroize::Zeroizing;

use super::{Aad, CryptoError, SUITE_VALUE_AT, SealedValue, SymmetricKey, aead};
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

/// Where a value sits in its environment's history: what suite `0x02` binds it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueAt {
    /// The value's version (1 for a name's first write).
    pub version: u64,
    /// The environment key version sealing it.
    pub key_version: u64,
}

/// Encrypts a secret value for storage at `at` (suite `0x02`).
#[must_use]
pub fn encrypt_value_at(
    env_key: &SymmetricKey,
    environment: &EnvironmentId,
    name: &str,
    at: ValueAt,
    value: &[u8],
) -> SealedValue {
    let aad = Aad::SecretValueAt {
        environment,
        name,
        version: at.version,
        key_version: at.key_version,
    };
    SealedValue::from_bytes(aead::seal_as(
        SUITE_VALUE_AT,
        env_key,
        value,
        &aad.to_bytes(),
    ))
}

/// Decrypts a stored value found at `at`: a suite `0x02` value must have been sealed for that
/// very version and key version; a suite `0x01` value (an earlier build's) is bound to the
/// environment and name only.
pub fn decrypt_value_at(
    env_key: &SymmetricKey,
    environment: &EnvironmentId,
    name: &str,
    at: ValueAt,
    sealed: &SealedValue,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.as_bytes().first() != Some(&SUITE_VALUE_AT) {
        return decrypt_value(env_key, environment, name, sealed);
    }
    let aad = Aad::SecretValueAt {
        environment,
        name,
        version: at.version,
        key_version: at.key_version,
    };
    aead::open_as(
        SUITE_VALUE_AT,
        env_key,
        sealed.as_bytes(),
        &aad.to_bytes(),
        &format!("the value of {name}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_at_its_version_and_key_version() {
        let key = SymmetricKey::generate();
        let env = EnvironmentId::random();
        let at = ValueAt {
            version: 3,
            key_version: 2,
        };
        let sealed = encrypt_value_at(&key, &env, "DB", at, b"secret");
        assert_eq!(sealed.as_bytes()[0], SUITE_VALUE_AT);
        let opened = decrypt_value_at(&key, &env, "DB", at, &sealed).expect("opens");
        assert_eq!(opened.as_slice(), b"secret");
        for other in [
            ValueAt { version: 4, ..at },
            ValueAt {
                key_version: 1,
                ..at
            },
        ] {
            assert!(matches!(
                decrypt_value_at(&key, &env, "DB", other, &sealed),
                Err(CryptoError::Tampered { .. })
            ));
        }
        assert!(decrypt_value_at(&key, &env, "DB2", at, &sealed).is_err());
        // An earlier build's value still opens wherever it is.
        let old = encrypt_value(&key, &env, "DB", b"old");
        let opened = decrypt_value_at(&key, &env, "DB", at, &old).expect("suite 1 opens");
        assert_eq!(opened.as_slice(), b"old");
        assert!(
            crate::crypto::check_shape(sealed.as_bytes(), crate::crypto::EnvelopeShape::Value)
                .is_ok()
        );
    }
}
