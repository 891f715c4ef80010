//! The secret-list cache: the encoded answer of `GET /v1/environments/{id}/secrets`, per
//! environment, kept for the [`SecretsRevision`] it was read at.
//!
//! It never decides anything on its own. Every request is authorized against the database as
//! before, and the same statement returns the environment's current revision; a cached answer
//! is used only when it was read at exactly that revision, so a write made through any replica
//! is seen by the next request on every replica. The cache holds what the database holds for
//! that route — names, versions, authors and ciphertext — never a key or a plaintext
//! (docs/decisions/0009-secret-list-cache.md).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use klef_core::ids::EnvironmentId;
use klef_store::server::SecretsRevision;

/// Encoded secret lists by environment, at most `capacity` bytes of them; the least recently
/// used go first.
pub struct SecretListCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SecretListCache {
    // Sizes only: the bodies are ciphertext, but a log line has no use for them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = self.usage();
        f.debug_struct("SecretListCache")
            .field("capacity", &self.capacity)
            .field("entries", &entries)
            .field("bytes", &bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<EnvironmentId, Entry>,
    bytes: usize,
    clock: u64,
}

struct Entry {
    revision: SecretsRevision,
    body: Bytes,
    used: u64,
}

impl SecretListCache {
    /// A cache of at most `capacity` bytes; `0` turns it off.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The answer for `env` read at exactly `revision`, if it is here.
    pub fn get(&self, env: &EnvironmentId, revision: &SecretsRevision) -> Option<Bytes> {
        if self.capacity == 0 {
            return None;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let entry = inner.entries.get_mut(env)?;
        if entry.revision != *revision {
            return None;
        }
        entry.used = clock;
        Some(entry.body.clone())
    }

    /// Keeps `body`, read at `revision`, for `env`, replacing what was kept for it. An answer
    /// larger than an eighth of the capacity is not kept, so one environment cannot push out
    /// all others.
    pub fn put(&self, env: EnvironmentId, revision: SecretsRevision, body: Bytes) {
        if body.len() > self.capacity / 8 {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let used = inner.clock;
        let size = body.len();
        if let Some(old) = inner.entries.insert(
            env,
            Entry {
                revision,
                body,
                used,
            },
        ) {
            inner.bytes -= old.body.len();
        }
        inner.bytes += size;
        while inner.bytes > self.capacity {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.body.len();
            }
        }
    }

    /// How many answers and bytes are kept.
    #[must_use]
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every update is complete
        // before anything can panic), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> EnvironmentId {
        EnvironmentId::random()
    }

    #[test]
    fn reused_only_at_the_same_revision() {
        let cache = SecretListCache::new(1 << 20);
        let a = env();
        let r1 = SecretsRevision::new("i1", 3);
        cache.put(a, r1.clone(), Bytes::from_static(b"[3]"));
        assert_eq!(cache.get(&a, &r1).as_deref(), Some(&b"[3]"[..]));
        // One more row, or the same count in a restored (re-inserted) environment row: a miss.
        assert!(cache.get(&a, &SecretsRevision::new("i1", 4)).is_none());
        assert!(cache.get(&a, &SecretsRevision::new("i2", 3)).is_none());
        assert!(cache.get(&env(), &r1).is_none());
        // A newer read replaces the older one and the byte count follows.
        cache.put(
            a,
            SecretsRevision::new("i1", 4),
            Bytes::from_static(b"[4, 4]"),
        );
        assert!(cache.get(&a, &r1).is_none());
        assert_eq!(cache.usage(), (1, 6));
    }

    #[test]
    fn least_recently_used_go_first_and_capacity_holds() {
        let cache = SecretListCache::new(800);
        let body = || Bytes::from(vec![b'x'; 100]);
        let ids: Vec<EnvironmentId> = (0..8).map(|_| env()).collect();
        let rev = SecretsRevision::new("i", 1);
        for id in &ids {
            cache.put(*id, rev.clone(), body());
        }
        assert_eq!(cache.usage(), (8, 800));
        // Touch the first; the ninth pushes out the second, the least recently used.
        assert!(cache.get(&ids[0], &rev).is_some());
        let ninth = env();
        cache.put(ninth, rev.clone(), body());
        assert_eq!(cache.usage(), (8, 800));
        assert!(cache.get(&ids[0], &rev).is_some());
        assert!(cache.get(&ids[1], &rev).is_none());
        assert!(cache.get(&ninth, &rev).is_some());
        // Larger than an eighth of the capacity: not kept.
        cache.put(env(), rev.clone(), Bytes::from(vec![b'y'; 101]));
        assert_eq!(cache.usage(), (8, 800));
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let cache = SecretListCache::new(0);
        let a = env();
        let rev = SecretsRevision::new("i", 1);
        cache.put(a, rev.clone(), Bytes::from_static(b"[]"));
        assert!(cache.get(&a, &rev).is_none());
        assert_eq!(cache.usage(), (0, 0));
    }
}
