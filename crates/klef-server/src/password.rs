//! Sign-in password hashing: Argon2id PHC strings (`$argon2id$v=19$m=…`), computed on a
//! blocking thread. The parameters follow OWASP's server-side recommendation (m = 19 MiB,
//! t = 2, p = 1); the encryption password's much heavier KDF runs on the client only.
//!
//! Every hash and check goes through one [`PasswordGate`]: at most `workers` run at once (each
//! holds 19 MiB while it runs), at most `queue` more wait, and any request beyond that is
//! answered 503 with `Retry-After` at once, so a flood costs neither memory nor threads. The
//! computations run on `workers` long-lived threads of the gate's own, not on tokio's blocking
//! pool: each thread keeps reusing the 19 MiB its allocator set aside, where a fresh blocking
//! thread per check left one more 19 MiB arena resident each time (measured: +107 MiB after
//! 500 wrong sign-ins). The gate counts what actually ran, which the tests and
//! `cargo xtask flood` read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use std::cell::RefCell;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
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
    /// The queue of the worker threads, started on first use.
    threads: OnceLock<mpsc::Sender<Job>>,
    hashes: AtomicU64,
    verifications: AtomicU64,
    refused_busy: AtomicU64,
}

/// A request admitted by [`PasswordGate::admit`]; dropping it admits the next.
#[derive(Debug)]
pub(crate) struct Admission(
    #[allow(dead_code, reason = "held for its drop")] tokio::sync::OwnedSemaphorePermit,
);

/// One computation for a worker thread.
type Job = Box<dyn FnOnce() + Send>;

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
            threads: OnceLock::new(),
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

    /// Admits one request to the password path (its rate-limit reservation, then its hash or
    /// check), or [`ApiError::Busy`] at once when `workers + queue` requests are in it already.
    /// Taken before the database is touched, so a flood waits neither on the database nor in
    /// memory: what is not admitted is answered at once.
    pub(crate) fn admit(&self) -> Result<Admission, ApiError> {
        if let Ok(permit) = self.admitted.clone().try_acquire_owned() {
            return Ok(Admission(permit));
        }
        self.refused_busy.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("password work queue full; answering 503");
        Err(ApiError::Busy {
            retry_after_secs: BUSY_RETRY_SECS,
        })
    }

    /// Runs `work` on a worker thread once one is free. The worker permit moves into the job,
    /// so a client that hangs up cannot make more than `workers` computations run at once.
    async fn run<T: Send + 'static>(
        &self,
        _admitted: &Admission,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let worker = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
            drop(worker);
        });
        self.threads()
            .send(job)
            .map_err(|e| ApiError::internal(&e))?;
        result.await.map_err(|e| ApiError::internal(&e))?
    }

    /// The worker threads' queue; the threads start on first use and end with the gate.
    fn threads(&self) -> &mpsc::Sender<Job> {
        self.threads.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.sizes.0 {
                let rx = Arc::clone(&rx);
                let spawned = std::thread::Builder::new()
                    .name(format!("klef-argon2-{i}"))
                    .spawn(move || {
                        loop {
                            let job = match rx.lock() {
                                Ok(queue) => queue.recv(),
                                Err(_) => return,
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start a password worker thread");
                }
            }
            tx
        })
    }

    /// Hashes a sign-in password to a PHC string.
    pub(crate) async fn hash(
        &self,
        admitted: &Admission,
        password: SecretText,
    ) -> Result<String, ApiError> {
        self.hashes.fetch_add(1, Ordering::Relaxed);
        self.run(admitted, move || {
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
        admitted: &Admission,
        password: SecretText,
        stored: Option<String>,
    ) -> Result<bool, ApiError> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        self.run(admitted, move || {
            with_blocks(|blocks| {
                if let Some(phc) = stored {
                    return verify_in(blocks, password.expose().as_bytes(), &phc);
                }
                let mut out = [0u8; 32];
                hasher()?
                    .hash_password_into_with_memory(
                        password.expose().as_bytes(),
                        &[0u8; 16],
                        &mut out,
                        blocks,
                    )
                    .map_err(|e| ApiError::internal(&e))?;
                Ok(false)
            })
        })
        .await
    }
}

thread_local! {
    /// The Argon2 memory of this worker thread (19 MiB), allocated on its first check and
    /// reused by every later one: a fresh allocation per check left up to 19 MiB more resident
    /// each time (measured: +98 MiB after five checks).
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's Argon2 memory.
fn with_blocks<T>(f: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with_borrow_mut(|blocks| {
        if blocks.is_empty() {
            blocks.resize(M_COST_KIB as usize, Block::new());
        }
        f(blocks)
    })
}

/// Checks `password` against the PHC string `phc` in `blocks`. A hash made with other
/// parameters (none today) is checked the allocating way.
fn verify_in(blocks: &mut [Block], password: &[u8], phc: &str) -> Result<bool, ApiError> {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Ok(false);
    };
    let params = Params::try_from(&parsed)
        .ok()
        .filter(|p| p.m_cost() == M_COST_KIB && p.t_cost() == T_COST && p.p_cost() == P_COST);
    let ours = parsed.algorithm == Algorithm::Argon2id.ident()
        && parsed.version == Some(Version::V0x13.into());
    let (Some(params), true, Some(salt), Some(expected)) = (params, ours, parsed.salt, parsed.hash)
    else {
        return Ok(hasher()?.verify_password(password, phc).is_ok());
    };
    let mut out = vec![0u8; expected.as_bytes().len()];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password, &salt, &mut out, blocks)
        .map_err(|e| ApiError::internal(&e))?;
    // Constant time: every byte is compared whatever the first difference.
    let diff = out
        .iter()
        .zip(expected.as_bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    Ok(diff == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let gate = PasswordGate::new(1, 0);
        let a = gate.admit().unwrap();
        let phc = gate
            .hash(&a, SecretText::new("correct horse"))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(
            gate.verify(&a, SecretText::new("correct horse"), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !gate
                .verify(&a, SecretText::new("wrong"), Some(phc))
                .await
                .unwrap()
        );
        assert!(!gate.verify(&a, SecretText::new("x"), None).await.unwrap());
        assert_eq!(
            gate.counts(),
            GateCounts {
                hashes: 1,
                verifications: 3,
                refused_busy: 0
            }
        );
    }

    #[test]
    fn a_full_gate_answers_busy_at_once() {
        let gate = PasswordGate::new(1, 1);
        let first = gate.admit().unwrap();
        let _second = gate.admit().unwrap();
        let Err(ApiError::Busy { retry_after_secs }) = gate.admit() else {
            panic!("a third request is admitted past one worker and a queue of one");
        };
        assert_eq!(retry_after_secs, 1);
        assert_eq!(gate.counts().refused_busy, 1);
        drop(first);
        assert!(gate.admit().is_ok(), "a finished request admits the next");
    }
}
