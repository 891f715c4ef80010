//! Sign-in password hashing: Argon2id PHC strings (`$argon2id$v=19$m=…`), computed on a
//! blocking thread. The parameters follow OWASP's server-side recommendation (m = 19 MiB,
//! t = 2, p = 1); the encryption password's much heavier KDF runs on the client only.
//!
//! Every hash and check goes through one [`PasswordGate`]: at most `workers` run at once (each
//! holds 19 MiB while it runs), at most `queue` more wait, and any request beyond that is
//! answered 503 with `Retry-After` at once, so a flood costs neither memory nor threads. The
//! gate counts what actually ran, which the tests and `cargo xtask flood` read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use klef_core::wire::SecretText;
use tokio::sync::Semaphore;

use crate::error::ApiError;

const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

/// Requests allowed to wait for a worker, per worker, by default.
const QUEUE_PER_WORKER: usize = 8;

/// Seconds a client is told to wait when the gate is full.
const BUSY_RETRY_SECS: u64 = 1;

fn hasher() -> Result<Argon2<'static>, ApiError> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, None).map_err(|e| ApiError::internal(&e))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Bounds the Argon2 work of the whole server, and counts it.
#[derive(Debug)]
pub struct PasswordGate {
    /// One permit per Argon2 computation allowed at once.
    workers: Arc<Semaphore>,
    /// One permit per request admitted (running or waiting).
    admitted: Arc<Semaphore>,
    sizes: (usize, usize),
    hashes: AtomicU64,
    verifications: AtomicU64,
    refused_busy: AtomicU64,
}

/// What a [`PasswordGate`] has done since the server started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GateCounts {
    /// Passwords hashed (sign-ups).
    pub hashes: u64,
    /// Passwords checked (sign-ins, including the dummy check for an unknown email).
    pub verifications: u64,
    /// Requests answered 503 because the gate was full.
    pub refused_busy: u64,
}

impl PasswordGate {
    /// At most `workers` (at least 1) computations at once and `queue` waiting.
    #[must_use]
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            workers: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            sizes: (workers, queue),
            hashes: AtomicU64::new(0),
            verifications: AtomicU64::new(0),
            refused_busy: AtomicU64::new(0),
        }
    }

    /// One worker per core of this machine, eight waiting per worker.
    #[must_use]
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::new(cores, cores * QUEUE_PER_WORKER)
    }

    /// `(workers, queue)`.
    #[must_use]
    pub fn sizes(&self) -> (usize, usize) {
        self.sizes
    }

    /// The counts so far.
    #[must_use]
    pub fn counts(&self) -> GateCounts {
        GateCounts {
            hashes: self.hashes.load(Ordering::Relaxed),
            verifications: self.verifications.load(Ordering::Relaxed),
            refused_busy: self.refused_busy.load(Ordering::Relaxed),
        }
    }

    /// Runs `work` on a blocking thread once a worker is free; [`ApiError::Busy`] at once when
    /// `queue` requests wait already. The worker permit moves into the blocking task, so a
    /// client that hangs up cannot make more than `workers` computations run at once.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let Ok(_admitted) = self.admitted.clone().try_acquire_owned() else {
            self.refused_busy.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("password work queue full; answering 503");
            return Err(ApiError::Busy {
                retry_after_secs: BUSY_RETRY_SECS,
            });
        };
        let worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::internal(&e))?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(worker);
            result
        })
        .await
        .map_err(|e| ApiError::internal(&e))?
    }

    /// Hashes a sign-in password to a PHC string.
    pub(crate) async fn hash(&self, password: SecretText) -> Result<String, ApiError> {
        self.hashes.fetch_add(1, Ordering::Relaxed);
        self.run(move || {
            let mut salt = [0u8; 16];
            klef_core::crypto::fill_random(&mut salt);
            hasher()?
                .hash_password_with_salt(password.expose().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| ApiError::internal(&e))
        })
        .await
    }

    /// Checks a sign-in password against a stored PHC string. With no stored hash (an unknown
    /// email, or an account without one) a dummy hash is computed anyway, so the answer takes
    /// as long either way, and the result is `false`.
    pub(crate) async fn verify(
        &self,
        password: SecretText,
        stored: Option<String>,
    ) -> Result<bool, ApiError> {
        let counter = &self.verifications;
        let result = self
            .run(move || {
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
            .await;
        if !matches!(result, Err(ApiError::Busy { .. })) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let gate = PasswordGate::new(1, 0);
        let phc = gate.hash(SecretText::new("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(
            gate.verify(SecretText::new("correct horse"), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !gate
                .verify(SecretText::new("wrong"), Some(phc))
                .await
                .unwrap()
        );
        assert!(!gate.verify(SecretText::new("x"), None).await.unwrap());
        assert_eq!(
            gate.counts(),
            GateCounts {
                hashes: 1,
                verifications: 3,
                refused_busy: 0
            }
        );
    }

    #[tokio::test]
    async fn a_full_gate_answers_busy_at_once() {
        let gate = Arc::new(PasswordGate::new(1, 1));
        // Two admitted (one running, one waiting); the rest are refused without waiting.
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.verify(SecretText::new("pw"), None).await })
            })
            .collect();
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(false) => {}
                Err(ApiError::Busy { retry_after_secs }) => {
                    assert_eq!(retry_after_secs, 1);
                    busy += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let counts = gate.counts();
        assert!(busy >= 1, "{counts:?}");
        assert_eq!(counts.refused_busy, busy);
        assert_eq!(counts.verifications + counts.refused_busy, 6);
    }
}
