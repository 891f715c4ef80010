//! Personal overrides (issue #19 item 4): one member's own values for some names of a shared
//! environment, sealed so that only that member can read them.
//!
//! One record per (account, environment): the whole map name → value, encoded as
//!
//! ```text
//! "klef/v1/personal-overrides/map" 0x00 ‖ u32 count ‖ (name ‖ value)…   names ascending, unique
//! ```
//!
//! and sealed with AES-256-GCM (the envelope of `crypto`: suite `0x01`, random 96-bit nonce)
//! under `HKDF-SHA256(account-state key, "klef/v1/personal-overrides")`, a key only the
//! account's unlocked devices (and its agent) can derive: no environment key, project key or
//! system key reaches it, so teammates and CI cannot open it. The associated data is
//!
//! ```text
//! "klef/v1/personal-overrides" 0x00 ‖ u8 format (1) ‖ account id ‖ environment id ‖ u64 revision
//! ```
//!
//! so a server cannot move a record to another account or environment, or relabel an older
//! record with a newer revision: it no longer opens. Rollback to an older record, which still
//! opens under its own revision, is stopped by the reader: the account's sealed pins remember the
//! highest revision seen per environment ([`AccountState`](super::account_state::AccountState)),
//! and a lower one is refused.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::encoding::{Labelled, PREFIX, Reader};
use super::primitives::{hkdf_key, open, seal};
use crate::crypto::SymmetricKey;
use crate::ids::{AccountId, EnvironmentId};
use crate::names::validate_key_name;

/// HKDF `info` (over the account-state key) of the key sealing personal overrides.
pub const PERSONAL_INFO: &[u8] = b"klef/v1/personal-overrides";
/// The format byte bound in the associated data: a later format is a new byte, never a second
/// attempt under another context.
pub const PERSONAL_FORMAT: u8 = 1;
/// The label of the sealed plaintext.
const MAP_LABEL: &str = "personal-overrides/map";

/// One member's overrides of one environment: name → value, sorted by name. Values are wiped
/// from memory when dropped; `Debug` shows the names only.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    values: BTreeMap<String, Zeroizing<String>>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

/// A record that does not open (moved, relabelled, altered or another account's) or does not
/// parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the personal overrides served do not open with this account's keys: the server altered them, moved them from another environment or account, or relabelled an older copy"
)]
pub struct PersonalError;

impl Overrides {
    /// No overrides.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` (a valid key name) to `value`; the previous value, if any, is dropped (and
    /// wiped).
    ///
    /// # Errors
    /// If `name` is not a valid key name.
    pub fn set(
        &mut self,
        name: &str,
        value: Zeroizing<String>,
    ) -> Result<(), crate::names::InvalidName> {
        validate_key_name(name)?;
        self.values.insert(name.to_owned(), value);
        Ok(())
    }

    /// Removes `name`; whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.values.remove(name).is_some()
    }

    /// The value of `name`, if overridden.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Zeroizing<String>> {
        self.values.get(name)
    }

    /// Every override, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Zeroizing<String>)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many names are overridden.
    #[must_use]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is overridden.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The labelled plaintext, in a buffer sized once and wiped on drop (no reallocation leaves
    /// a copy of a value behind).
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let fields: usize = self.values.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let len = PREFIX.len() + MAP_LABEL.len() + 1 + 8 + fields;
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(MAP_LABEL.as_bytes());
        out.push(0);
        let mut field = |bytes: &[u8]| {
            let n = u32::try_from(bytes.len()).expect("a value is at most 1 MiB");
            out.extend_from_slice(&n.to_be_bytes());
            out.extend_from_slice(bytes);
        };
        let count = u32::try_from(self.values.len()).expect("fewer than 2^32 names");
        field(&count.to_be_bytes());
        for (name, value) in &self.values {
            field(name.as_bytes());
            field(value.as_bytes());
        }
        debug_assert_eq!(out.len(), len, "sized once");
        out
    }

    /// Parses [`encode`](Self::encode)'s output (canonical: valid names, strictly ascending).
    fn parse(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes, MAP_LABEL).ok()?;
        // A pair is at least 4 + 1 + 4 bytes.
        let n = r.count(9).ok()?;
        let mut values = BTreeMap::new();
        for _ in 0..n {
            let name = r.str().ok()?;
            let value = r.str().ok()?;
            validate_key_name(name).ok()?;
            if values
                .last_key_value()
                .is_some_and(|(last, _): (&String, _)| last.as_str() >= name)
            {
                return None;
            }
            values.insert(name.to_owned(), Zeroizing::new(value.to_owned()));
        }
        r.finish().ok()?;
        Some(Self { values })
    }
}

/// The associated data of one record.
fn aad(account: &AccountId, env: &EnvironmentId, revision: u64) -> Vec<u8> {
    Labelled::new("personal-overrides")
        .u8(PERSONAL_FORMAT)
        .id(&account.0)
        .id(&env.0)
        .u64(revision)
        .finish()
}

/// The sealing key, from the account-state key.
fn key(state_key: &SymmetricKey) -> SymmetricKey {
    hkdf_key(state_key.expose(), PERSONAL_INFO)
}

/// Seals `overrides` as `account`'s record of `env` at `revision`.
pub(crate) fn seal_with(
    state_key: &SymmetricKey,
    account: &AccountId,
    env: &EnvironmentId,
    revision: u64,
    overrides: &Overrides,
) -> Vec<u8> {
    seal(
        &key(state_key),
        &aad(account, env, revision),
        &overrides.encode(),
    )
}

/// Opens a record sealed by [`seal_with`] for the same account, environment and revision.
pub(crate) fn open_with(
    state_key: &SymmetricKey,
    account: &AccountId,
    env: &EnvironmentId,
    revision: u64,
    sealed: &[u8],
) -> Result<Overrides, PersonalError> {
    let plain = open(&key(state_key), &aad(account, env, revision), sealed).ok_or(PersonalError)?;
    Overrides::parse(&plain).ok_or(PersonalError)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::trust::secrets::DerivedSecrets;

    fn secrets(n: u8) -> DerivedSecrets {
        DerivedSecrets::from_bytes(&[n; 32], &[n.wrapping_add(1); 32])
    }

    fn env(n: u8) -> EnvironmentId {
        EnvironmentId(crate::trust::raw_id(&[n; 16]))
    }

    fn account(n: u8) -> AccountId {
        AccountId(crate::trust::raw_id(&[n; 16]))
    }

    fn overrides(pairs: &[(&str, &str)]) -> Overrides {
        let mut o = Overrides::new();
        for (k, v) in pairs {
            o.set(k, Zeroizing::new((*v).to_owned())).unwrap();
        }
        o
    }

    prop_compose! {
        fn any_overrides()(map in proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,12}", ".{0,40}", 0..8)) -> Overrides {
            let mut o = Overrides::new();
            for (k, v) in map {
                o.set(&k, Zeroizing::new(v)).unwrap();
            }
            o
        }
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(o in any_overrides(), revision in 1u64..u64::MAX) {
            let s = secrets(1);
            let sealed = s.seal_personal(&account(1), &env(1), revision, &o);
            prop_assert_eq!(s.open_personal(&account(1), &env(1), revision, &sealed).unwrap(), o);
        }

        #[test]
        fn the_record_is_bound_to_account_environment_and_revision(o in any_overrides(), revision in 1u64..1000) {
            let s = secrets(1);
            let sealed = s.seal_personal(&account(1), &env(1), revision, &o);
            prop_assert_eq!(s.open_personal(&account(2), &env(1), revision, &sealed), Err(PersonalError));
            prop_assert_eq!(s.open_personal(&account(1), &env(2), revision, &sealed), Err(PersonalError));
            prop_assert_eq!(s.open_personal(&account(1), &env(1), revision + 1, &sealed), Err(PersonalError));
            prop_assert_eq!(secrets(3).open_personal(&account(1), &env(1), revision, &sealed), Err(PersonalError));
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut input = Labelled::new(MAP_LABEL).finish();
            input.extend_from_slice(&bytes);
            let _ = Overrides::parse(&input);
        }
    }

    #[test]
    fn neither_names_nor_values_appear_in_the_sealed_bytes() {
        let s = secrets(1);
        let o = overrides(&[("DATABASE_URL", "postgres://me@localhost/dev")]);
        let sealed = s.seal_personal(&account(1), &env(1), 1, &o);
        let has = |needle: &[u8]| sealed.windows(needle.len()).any(|w| w == needle);
        assert!(!has(b"DATABASE_URL"));
        assert!(!has(b"postgres://"));
        assert!(format!("{o:?}").contains("DATABASE_URL"));
        assert!(!format!("{o:?}").contains("postgres"));
    }

    #[test]
    fn tampering_and_non_canonical_plaintexts_are_refused() {
        let s = secrets(1);
        let sealed = s.seal_personal(&account(1), &env(1), 4, &overrides(&[("A", "1")]));
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(
            s.open_personal(&account(1), &env(1), 4, &altered),
            Err(PersonalError)
        );
        assert_eq!(
            s.open_personal(&account(1), &env(1), 4, &[]),
            Err(PersonalError)
        );
        // Out of order, repeated or invalid names do not parse even when sealed correctly.
        for bad in [
            Labelled::new(MAP_LABEL)
                .u32(2)
                .str("B")
                .str("1")
                .str("A")
                .str("2"),
            Labelled::new(MAP_LABEL)
                .u32(2)
                .str("A")
                .str("1")
                .str("A")
                .str("2"),
            Labelled::new(MAP_LABEL).u32(1).str("1A").str("x"),
        ] {
            assert!(Overrides::parse(&bad.finish()).is_none());
        }
        let empty = Overrides::new();
        assert_eq!(Overrides::parse(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn edits() {
        let mut o = overrides(&[("B", "2"), ("A", "1")]);
        assert_eq!(o.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["A", "B"]);
        assert!(o.set("not a name", Zeroizing::new(String::new())).is_err());
        assert!(o.remove("A"));
        assert!(!o.remove("A"));
        assert_eq!(o.get("B").map(|v| v.as_str()), Some("2"));
        assert_eq!(o.len(), 1);
        assert!(!o.is_empty());
    }
}
