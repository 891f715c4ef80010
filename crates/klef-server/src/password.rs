//! Sign-in password hashing: Argon2id PHC strings (`$argon2id$v=19$m=…`), computed on a
//! blocking thread. The parameters follow OWASP's server-side recommendation (m = 19 MiB,
//! t = 2, p = 1); the encryption password's much heavier KDF runs on the client only.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use klef_core::wire::SecretText;

use crate::error::ApiError;

const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

fn hasher() -> Result<Argon2<'static>, ApiError> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|e| ApiError::internal(&e))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a sign-in password to a PHC string.
pub(crate) async fn hash(password: SecretText) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        klef_core::crypto::fill_random(&mut salt);
        hasher()?
            .hash_password_with_salt(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(&e))
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
}

/// Checks a sign-in password against a stored PHC string. With no stored hash (an unknown
/// email, or an account without one) a dummy hash is checked anyway, so the answer takes as
/// long either way, and the result is `false`.
pub(crate) async fn verify(password: SecretText, stored: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let argon = hasher()?;
        if let Some(phc) = stored {
            Ok(argon
                .verify_password(password.expose().as_bytes(), phc.as_str())
                .is_ok())
        } else {
            let _ = argon.hash_password_with_salt(password.expose().as_bytes(), &[0u8; 16]);
            Ok(false)
        }
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let phc = hash(SecretText::new("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(
            verify(SecretText::new("correct horse"), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(!verify(SecretText::new("wrong"), Some(phc)).await.unwrap());
        assert!(!verify(SecretText::new("x"), None).await.unwrap());
    }
}
