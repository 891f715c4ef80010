//! The key cache: one private key per vault, wiped after an idle timeout (reset on each use) or
//! a hard cap since unlock, whichever comes first (DESIGN.md §3). Every removal drops the key,
//! which zeroizes it.
//!
//! The cache is a plain data structure that takes `now` as an argument, so the expiry logic is
//! unit-tested without sleeping; the server runs a timer task that sleeps until
//! [`KeyCache::next_deadline`] and calls [`KeyCache::expire`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use klef_core::crypto::PrivateKey;
use klef_core::env::EnvVars;
use klef_core::trust::secrets::DerivedSecrets;

use zeroize::Zeroizing;

use crate::hardening::LockedPages;
use crate::protocol::VaultStatus;

/// The idle timeout and hard cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Keys unused this long are wiped.
    pub idle: Duration,
    /// Keys are wiped this long after unlock, used or not.
    pub max_lifetime: Duration,
}

/// The longest (and default) idle timeout: 1 hour.
pub const DEFAULT_IDLE: Duration = Duration::from_hours(1);
/// The longest (and default) hard cap: 8 hours.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_hours(8);

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            idle: DEFAULT_IDLE,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }
}

/// A timeout variable holds an unusable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeoutError {
    /// Not a duration humantime understands.
    #[error("{var}={value:?} is not a duration (examples: 90s, 15m, 1h)")]
    Unparseable {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// Zero would wipe keys at once.
    #[error("{var}={value:?} must be longer than zero")]
    Zero {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// Timeouts can only be shortened.
    #[error("{var}={value:?} is above the maximum of {max}: timeouts can only be shortened")]
    AboveMaximum {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// The maximum, formatted (`1h`, `8h`).
        max: String,
    },
}

impl Timeouts {
    /// Reads `KLEF_AGENT_IDLE_TIMEOUT` and `KLEF_AGENT_MAX_LIFETIME` from the environment.
    pub fn from_env() -> Result<Self, TimeoutError> {
        let get = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self::parse(
            get(EnvVars::KLEF_AGENT_IDLE_TIMEOUT).as_deref(),
            get(EnvVars::KLEF_AGENT_MAX_LIFETIME).as_deref(),
        )
    }

    /// Parses the two values (`None` = default). Values must be above zero and at most the
    /// defaults.
    pub fn parse(idle: Option<&str>, max_lifetime: Option<&str>) -> Result<Self, TimeoutError> {
        Ok(Self {
            idle: parse_one(EnvVars::KLEF_AGENT_IDLE_TIMEOUT, idle, DEFAULT_IDLE)?,
            max_lifetime: parse_one(
                EnvVars::KLEF_AGENT_MAX_LIFETIME,
                max_lifetime,
                DEFAULT_MAX_LIFETIME,
            )?,
        })
    }
}

fn parse_one(
    var: &'static str,
    value: Option<&str>,
    max: Duration,
) -> Result<Duration, TimeoutError> {
    let Some(value) = value else { return Ok(max) };
    let d = humantime::parse_duration(value.trim()).map_err(|_| TimeoutError::Unparseable {
        var,
        value: value.to_owned(),
    })?;
    if d.is_zero() {
        return Err(TimeoutError::Zero {
            var,
            value: value.to_owned(),
        });
    }
    if d > max {
        return Err(TimeoutError::AboveMaximum {
            var,
            value: value.to_owned(),
            max: humantime::format_duration(max).to_string(),
        });
    }
    Ok(d)
}

struct Entry {
    // Field order matters: the keys are dropped (zeroized) before their pages are unlocked.
    key: PrivateKey,
    derived: Box<DerivedSecrets>,
    _pages: [LockedPages; 3],
    unlocked_at: Instant,
    last_used: Instant,
    /// Environments kept with the keys (`Request::PutSnapshot`), least recently used first;
    /// they go when the keys go.
    snapshots: Vec<Snapshot>,
}

/// An environment as its reader verified it, opaque to the agent (ciphertexts and signed
/// state: never plaintext). Zeroized when dropped all the same.
struct Snapshot {
    environment: String,
    aliases: Vec<String>,
    body: Zeroizing<Vec<u8>>,
    /// When the server last confirmed it (stored or touched).
    confirmed_at: Instant,
}

/// The most environments kept per vault; the least recently used goes first.
pub const MAX_SNAPSHOTS: usize = 64;
/// The most snapshot bytes kept per vault (256 MiB).
pub const MAX_SNAPSHOT_BYTES: usize = 256 << 20;

/// A snapshot found by [`KeyCache::get_snapshot`].
pub struct FoundSnapshot {
    /// The environment's id.
    pub environment: String,
    /// Time since the server last confirmed it.
    pub age: Duration,
    /// Its bytes (a copy; zeroized on drop).
    pub body: Zeroizing<Vec<u8>>,
}

impl Entry {
    fn deadline(&self, t: Timeouts) -> Instant {
        (self.last_used + t.idle).min(self.unlocked_at + t.max_lifetime)
    }
}

/// Cached private keys by vault name.
pub struct KeyCache {
    timeouts: Timeouts,
    entries: HashMap<String, Entry>,
}

impl KeyCache {
    /// An empty cache.
    #[must_use]
    pub fn new(timeouts: Timeouts) -> Self {
        Self {
            timeouts,
            entries: HashMap::new(),
        }
    }

    /// The configured timeouts.
    #[must_use]
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Caches `key` and the secrets derived from the same master key for `vault`, replacing
    /// (and wiping) any earlier ones; both clocks restart.
    pub fn insert(&mut self, vault: &str, key: PrivateKey, derived: DerivedSecrets, now: Instant) {
        let derived = Box::new(derived);
        let pages = [
            LockedPages::lock(key.expose().as_ptr(), key.expose().len()),
            LockedPages::lock(derived.identity_seed().as_ptr(), 32),
            LockedPages::lock(derived.state_key().as_ptr(), 32),
        ];
        let entry = Entry {
            key,
            derived,
            _pages: pages,
            unlocked_at: now,
            last_used: now,
            snapshots: Vec::new(),
        };
        self.entries.insert(vault.to_owned(), entry);
    }

    /// Keeps `body` as `environment`'s snapshot for `vault` (replacing an earlier one), found
    /// by `aliases`; a use. `false` when the vault is locked. The least recently used
    /// snapshots go beyond [`MAX_SNAPSHOTS`] or [`MAX_SNAPSHOT_BYTES`].
    pub fn put_snapshot(
        &mut self,
        vault: &str,
        environment: String,
        aliases: Vec<String>,
        body: Zeroizing<Vec<u8>>,
        now: Instant,
    ) -> bool {
        self.expire_one(vault, now);
        let Some(entry) = self.entries.get_mut(vault) else {
            return false;
        };
        entry.last_used = now;
        let list = &mut entry.snapshots;
        list.retain(|s| s.environment != environment);
        // An alias names one environment: a newer answer for it wins.
        for s in list.iter_mut() {
            s.aliases.retain(|a| !aliases.contains(a));
        }
        list.push(Snapshot {
            environment,
            aliases,
            body,
            confirmed_at: now,
        });
        let mut total: usize = list.iter().map(|s| s.body.len()).sum();
        while list.len() > MAX_SNAPSHOTS || (total > MAX_SNAPSHOT_BYTES && list.len() > 1) {
            total -= list.remove(0).body.len();
        }
        true
    }

    /// The snapshot of `vault` found by `alias` (moved to most recently used); a use. `None`
    /// when the vault is locked, `Some(None)` when it has no such snapshot.
    pub fn get_snapshot(
        &mut self,
        vault: &str,
        alias: &str,
        now: Instant,
    ) -> Option<Option<FoundSnapshot>> {
        self.expire_one(vault, now);
        let entry = self.entries.get_mut(vault)?;
        entry.last_used = now;
        let list = &mut entry.snapshots;
        let Some(at) = list
            .iter()
            .position(|s| s.aliases.iter().any(|a| a == alias))
        else {
            return Some(None);
        };
        let s = list.remove(at);
        let found = FoundSnapshot {
            environment: s.environment.clone(),
            age: now.saturating_duration_since(s.confirmed_at),
            body: s.body.clone(),
        };
        list.push(s);
        Some(Some(found))
    }

    /// The server confirmed `environment`'s snapshot: its age restarts. Whether there was one.
    pub fn touch_snapshot(&mut self, vault: &str, environment: &str, now: Instant) -> bool {
        self.expire_one(vault, now);
        let Some(s) = self.entries.get_mut(vault).and_then(|e| {
            e.snapshots
                .iter_mut()
                .find(|s| s.environment == environment)
        }) else {
            return false;
        };
        s.confirmed_at = now;
        true
    }

    /// Forgets `environment`'s snapshot of `vault`, or all of them (`None`); how many went.
    pub fn drop_snapshots(&mut self, vault: &str, environment: Option<&str>) -> usize {
        let Some(entry) = self.entries.get_mut(vault) else {
            return 0;
        };
        let before = entry.snapshots.len();
        match environment {
            Some(env) => entry.snapshots.retain(|s| s.environment != env),
            None => entry.snapshots.clear(),
        }
        before - entry.snapshots.len()
    }

    /// Runs `f` with the key of `vault` and counts it as a use (the idle clock restarts).
    /// `None` when the vault is locked or its key has just expired (which wipes it).
    pub fn use_key<R>(
        &mut self,
        vault: &str,
        now: Instant,
        f: impl FnOnce(&PrivateKey) -> R,
    ) -> Option<R> {
        self.expire_one(vault, now);
        let entry = self.entries.get_mut(vault)?;
        entry.last_used = now;
        Some(f(&entry.key))
    }

    /// Runs `f` with the private key and the derived secrets of `vault`, as
    /// [`use_key`](Self::use_key) does with its private key alone (a use).
    pub fn use_entry<R>(
        &mut self,
        vault: &str,
        now: Instant,
        f: impl FnOnce(&PrivateKey, &DerivedSecrets) -> R,
    ) -> Option<R> {
        self.expire_one(vault, now);
        let entry = self.entries.get_mut(vault)?;
        entry.last_used = now;
        Some(f(&entry.key, &entry.derived))
    }

    /// Whether `vault` holds an unexpired key. Not a use: the idle clock keeps running.
    pub fn is_unlocked(&mut self, vault: &str, now: Instant) -> bool {
        self.expire_one(vault, now);
        self.entries.contains_key(vault)
    }

    /// Wipes one vault's key; whether there was one.
    pub fn remove(&mut self, vault: &str) -> bool {
        self.entries.remove(vault).is_some()
    }

    /// Wipes every key; how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        n
    }

    /// Wipes every key whose deadline has passed; their vault names, sorted.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let t = self.timeouts;
        let mut gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.deadline(t) <= now)
            .map(|(v, _)| v.clone())
            .collect();
        for v in &gone {
            self.entries.remove(v);
        }
        gone.sort();
        gone
    }

    fn expire_one(&mut self, vault: &str, now: Instant) {
        let t = self.timeouts;
        if self
            .entries
            .get(vault)
            .is_some_and(|e| e.deadline(t) <= now)
        {
            self.entries.remove(vault);
        }
    }

    /// The earliest instant at which some key must be wiped.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .map(|e| e.deadline(self.timeouts))
            .min()
    }

    /// Number of cached keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Time left per unexpired vault, sorted by name.
    #[must_use]
    pub fn status(&self, now: Instant) -> Vec<VaultStatus> {
        let t = self.timeouts;
        let mut out: Vec<VaultStatus> = self
            .entries
            .iter()
            .filter(|(_, e)| e.deadline(t) > now)
            .map(|(vault, e)| VaultStatus {
                vault: vault.clone(),
                idle_left: (e.last_used + t.idle).saturating_duration_since(now),
                hard_cap_left: (e.unlocked_at + t.max_lifetime).saturating_duration_since(now),
                environments: u32::try_from(e.snapshots.len()).unwrap_or(u32::MAX),
            })
            .collect();
        out.sort_by(|a, b| a.vault.cmp(&b.vault));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PrivateKey {
        PrivateKey::from_bytes(Box::new([b; 32]))
    }

    fn derived() -> DerivedSecrets {
        DerivedSecrets::from_bytes(&[7; 32], &[8; 32])
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn timeouts_parse_humane_values_downward_only() {
        let t = Timeouts::parse(Some("90s"), Some("15m")).unwrap();
        assert_eq!(t.idle, 90 * S);
        assert_eq!(t.max_lifetime, 15 * 60 * S);
        assert_eq!(Timeouts::parse(None, None).unwrap(), Timeouts::default());
        assert_eq!(
            Timeouts::parse(Some("1h"), Some("8h")).unwrap(),
            Timeouts::default()
        );
        assert_eq!(Timeouts::parse(Some("2s"), None).unwrap().idle, 2 * S);

        let e = Timeouts::parse(Some("2h"), None).unwrap_err();
        assert!(matches!(e, TimeoutError::AboveMaximum { .. }));
        assert_eq!(
            e.to_string(),
            "KLEF_AGENT_IDLE_TIMEOUT=\"2h\" is above the maximum of 1h: timeouts can only be \
             shortened"
        );
        let e = Timeouts::parse(None, Some("9h")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("KLEF_AGENT_MAX_LIFETIME=\"9h\" is above"),
            "{e}"
        );
        assert!(matches!(
            Timeouts::parse(Some("0s"), None),
            Err(TimeoutError::Zero { .. })
        ));
        assert!(matches!(
            Timeouts::parse(Some("soon"), None),
            Err(TimeoutError::Unparseable { .. })
        ));
    }

    #[test]
    fn idle_expiry_is_reset_by_use_but_not_by_queries() {
        let t0 = Instant::now();
        let mut c = KeyCache::new(Timeouts {
            idle: 10 * S,
            max_lifetime: 100 * S,
        });
        c.insert("v", key(1), derived(), t0);
        assert_eq!(c.next_deadline(), Some(t0 + 10 * S));
        assert!(c.is_unlocked("v", t0 + 9 * S));
        assert_eq!(c.use_key("v", t0 + 9 * S, |k| k.expose()[0]), Some(1));
        assert_eq!(c.next_deadline(), Some(t0 + 19 * S));
        assert!(c.expire(t0 + 18 * S).is_empty());
        assert_eq!(c.expire(t0 + 19 * S), vec!["v".to_owned()]);
        assert!(c.is_empty());
        assert_eq!(c.use_key("v", t0 + 19 * S, |_| ()), None);
    }

    #[test]
    fn hard_cap_wins_over_steady_use() {
        let t0 = Instant::now();
        let mut c = KeyCache::new(Timeouts {
            idle: 10 * S,
            max_lifetime: 25 * S,
        });
        c.insert("v", key(1), derived(), t0);
        for i in 1..=24 {
            assert!(c.use_key("v", t0 + i * S, |_| ()).is_some(), "second {i}");
        }
        assert_eq!(c.next_deadline(), Some(t0 + 25 * S));
        assert_eq!(c.use_key("v", t0 + 25 * S, |_| ()), None);
        assert!(c.is_empty());
    }

    fn body(b: u8) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(vec![b; 8])
    }

    #[test]
    fn snapshots_live_and_die_with_the_keys() {
        let t0 = Instant::now();
        let mut c = KeyCache::new(Timeouts {
            idle: 10 * S,
            max_lifetime: 100 * S,
        });
        assert!(!c.put_snapshot("v", "e1".into(), vec!["p/dev".into()], body(1), t0));
        c.insert("v", key(1), derived(), t0);
        assert!(c.put_snapshot("v", "e1".into(), vec!["p/dev".into()], body(1), t0));
        let found = c.get_snapshot("v", "p/dev", t0 + 3 * S).unwrap().unwrap();
        assert_eq!((found.environment.as_str(), found.age), ("e1", 3 * S));
        assert_eq!(found.body[..], [1; 8]);
        assert!(c.get_snapshot("v", "p/prod", t0).unwrap().is_none());
        assert!(c.touch_snapshot("v", "e1", t0 + 4 * S));
        let found = c.get_snapshot("v", "p/dev", t0 + 5 * S).unwrap().unwrap();
        assert_eq!(found.age, S);
        // A newer answer for an alias moves it to the other environment.
        assert!(c.put_snapshot("v", "e2".into(), vec!["p/dev".into()], body(2), t0 + 5 * S));
        let found = c.get_snapshot("v", "p/dev", t0 + 5 * S).unwrap().unwrap();
        assert_eq!(found.environment, "e2");
        assert_eq!(c.status(t0 + 5 * S)[0].environments, 2);
        assert_eq!(c.drop_snapshots("v", Some("e2")), 1);
        assert!(c.get_snapshot("v", "p/dev", t0 + 5 * S).unwrap().is_none());
        // Expiry of the keys takes the snapshots with them; so does a new unlock.
        assert!(c.put_snapshot("v", "e1".into(), vec!["a".into()], body(1), t0 + 5 * S));
        c.insert("v", key(1), derived(), t0 + 6 * S);
        assert!(c.get_snapshot("v", "a", t0 + 6 * S).unwrap().is_none());
        assert!(c.put_snapshot("v", "e1".into(), vec!["a".into()], body(1), t0 + 6 * S));
        assert_eq!(c.expire(t0 + 16 * S), vec!["v".to_owned()]);
        assert!(c.get_snapshot("v", "a", t0 + 16 * S).is_none());
    }

    #[test]
    fn snapshots_are_bounded_least_recently_used_first() {
        let t0 = Instant::now();
        let mut c = KeyCache::new(Timeouts::default());
        c.insert("v", key(1), derived(), t0);
        for i in 0..=MAX_SNAPSHOTS {
            assert!(c.put_snapshot("v", format!("e{i}"), vec![format!("a{i}")], body(0), t0));
            if i == 1 {
                // e0 used again: e1 is now the least recently used.
                assert!(c.get_snapshot("v", "a0", t0).unwrap().is_some());
            }
        }
        assert!(c.get_snapshot("v", "a0", t0).unwrap().is_some());
        assert!(c.get_snapshot("v", "a1", t0).unwrap().is_none());
        assert_eq!(c.status(t0)[0].environments as usize, MAX_SNAPSHOTS);
        assert_eq!(c.drop_snapshots("v", None), MAX_SNAPSHOTS);
    }

    #[test]
    fn status_lock_and_replace() {
        let t0 = Instant::now();
        let mut c = KeyCache::new(Timeouts {
            idle: 10 * S,
            max_lifetime: 30 * S,
        });
        c.insert("b", key(2), derived(), t0);
        c.insert("a", key(1), derived(), t0 + S);
        let s = c.status(t0 + 2 * S);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].vault, "a");
        assert_eq!(s[0].idle_left, 9 * S);
        assert_eq!(s[0].hard_cap_left, 29 * S);
        assert_eq!(s[1].idle_left, 8 * S);
        c.insert("a", key(3), derived(), t0 + 5 * S);
        assert_eq!(c.use_key("a", t0 + 5 * S, |k| k.expose()[0]), Some(3));
        assert_eq!(c.len(), 2);
        assert!(c.remove("a"));
        assert!(!c.remove("a"));
        assert_eq!(c.clear(), 1);
        assert!(c.next_deadline().is_none());
    }
}
