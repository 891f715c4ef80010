//! An account's pins and high-water marks across devices (DESIGN.md §9.2).
//!
//! One record per workspace: `(workspace id, genesis hash, roster head, environment heads,
//! project-record heads)`.
//! The whole [`AccountState`] is sealed (AES-256-GCM) under
//! `HKDF-SHA256(master key, "klef/v1/account-state")` with associated data
//! `labelled("account-state", account id)`, and stored both on the server and locally. On
//! unlock a device [`merge`](AccountState::merge)s the two by maximum: a member's second laptop
//! inherits the pins, and a server that serves an old record cannot lower what this device has
//! seen. The server can withhold the record (the device then does the ceremony again, never
//! trust-on-first-use), never forge it. Two records that disagree on a genesis, or on the hash
//! at the same roster sequence or manifest revision, are an error: the server showed two
//! devices different histories.

use std::collections::BTreeMap;

use super::encoding::{DecodeError, Labelled, Reader};
use super::manifest::{ManifestHash, ManifestHead};
use super::primitives::{hkdf_key, open, seal};
use super::roster::{EntryHash, RosterAnchor, RosterHead};
use crate::crypto::SymmetricKey;
use crate::ids::{AccountId, EnvironmentId, ProjectId, RawId, WorkspaceId};

/// HKDF `info` of the sealing key.
pub const ACCOUNT_STATE_INFO: &[u8] = b"klef/v1/account-state";
/// The label of the sealed plaintext.
const PINS_LABEL: &str = "account-state/pins";

/// One workspace's pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePins {
    /// The roster's genesis hash (the trust anchor).
    pub genesis: EntryHash,
    /// The newest verified roster entry.
    pub roster: RosterHead,
    /// The newest verified manifest of each environment.
    pub environments: BTreeMap<EnvironmentId, ManifestHead>,
    /// The newest verified signed record of each project (its key commitment).
    pub projects: BTreeMap<ProjectId, ManifestHead>,
}

/// Every workspace's pins for one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    /// Pins by workspace.
    pub workspaces: BTreeMap<WorkspaceId, WorkspacePins>,
    /// The highest revision of this account's own personal overrides seen per environment
    /// ([`personal`](super::personal)): a server that serves a lower one is refused. Encoded
    /// after the workspaces only when not empty, so pins without it keep their exact bytes and
    /// pins written before it still parse.
    pub personal: BTreeMap<EnvironmentId, u64>,
}

/// Two records (or a record and a newly verified state) that cannot both be true.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// Two genesis hashes for one workspace.
    #[error(
        "two different roster geneses were pinned for workspace {0}: the server showed this account two different workspaces"
    )]
    ConflictingGenesis(WorkspaceId),
    /// Two hashes at one roster sequence.
    #[error(
        "two different roster entries {sequence} were seen for workspace {workspace}: the server forked the roster between devices"
    )]
    RosterFork {
        /// The workspace.
        workspace: WorkspaceId,
        /// The sequence number.
        sequence: u64,
    },
    /// Two hashes at one project-record revision.
    #[error(
        "two different records {revision} were seen for project {project}: the server forked its history between devices"
    )]
    ProjectFork {
        /// The project.
        project: ProjectId,
        /// The revision.
        revision: u64,
    },
    /// Two hashes at one manifest revision.
    #[error(
        "two different revisions {revision} were seen for environment {environment}: the server forked its history between devices"
    )]
    EnvironmentFork {
        /// The environment.
        environment: EnvironmentId,
        /// The revision.
        revision: u64,
    },
}

/// The sealed record does not open, or does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the account's sealed pins do not open: the server replaced or altered them, or they belong to another account"
)]
pub struct SealedStateError;

fn max_roster(ws: WorkspaceId, a: RosterHead, b: RosterHead) -> Result<RosterHead, MergeError> {
    if a.sequence == b.sequence && a.hash != b.hash {
        return Err(MergeError::RosterFork {
            workspace: ws,
            sequence: a.sequence,
        });
    }
    Ok(if b.sequence > a.sequence { b } else { a })
}

/// The higher of two heads of one environment or project; two hashes at one revision is a
/// fork (`fork` names it).
fn max_head(
    a: ManifestHead,
    b: ManifestHead,
    fork: impl FnOnce(u64) -> MergeError,
) -> Result<ManifestHead, MergeError> {
    if a.revision == b.revision && a != b {
        return Err(fork(a.revision));
    }
    Ok(if b.revision > a.revision { b } else { a })
}

/// Both maps of heads, each the higher of the two.
fn merge_heads<K: Ord + Copy>(
    mine: &BTreeMap<K, ManifestHead>,
    theirs: &BTreeMap<K, ManifestHead>,
    fork: impl Fn(K, u64) -> MergeError,
) -> Result<BTreeMap<K, ManifestHead>, MergeError> {
    let mut out = mine.clone();
    for (id, head) in theirs {
        let merged = match out.get(id) {
            Some(m) => max_head(*m, *head, |revision| fork(*id, revision))?,
            None => *head,
        };
        out.insert(*id, merged);
    }
    Ok(out)
}

impl WorkspacePins {
    fn merge(&self, ws: WorkspaceId, other: &Self) -> Result<Self, MergeError> {
        if self.genesis != other.genesis {
            return Err(MergeError::ConflictingGenesis(ws));
        }
        Ok(Self {
            genesis: self.genesis,
            roster: max_roster(ws, self.roster, other.roster)?,
            environments: merge_heads(&self.environments, &other.environments, |e, r| {
                MergeError::EnvironmentFork {
                    environment: e,
                    revision: r,
                }
            })?,
            projects: merge_heads(&self.projects, &other.projects, |p, r| {
                MergeError::ProjectFork {
                    project: p,
                    revision: r,
                }
            })?,
        })
    }
}

/// Appends a `u32` count and each `(id, revision, hash, key version)`.
fn write_heads<K>(w: &mut Labelled, heads: &BTreeMap<K, ManifestHead>, id: impl Fn(&K) -> RawId) {
    let n = u32::try_from(heads.len()).expect("fewer than 2^32 heads");
    w.push_field(&n.to_be_bytes());
    for (k, head) in heads {
        w.push_field(id(k).as_bytes());
        w.push_field(&head.revision.to_be_bytes());
        w.push_field(&head.hash.0);
        w.push_field(&head.key_version.to_be_bytes());
    }
}

/// Reads what [`write_heads`] wrote (strictly ascending ids).
fn read_heads<K: Ord>(
    r: &mut Reader<'_>,
    make: impl Fn(RawId) -> K,
) -> Result<BTreeMap<K, ManifestHead>, DecodeError> {
    // Each is 20 + 12 + 36 + 12 bytes.
    let n = r.count(80)?;
    let mut heads = BTreeMap::new();
    for _ in 0..n {
        let id = make(r.id()?);
        let head = ManifestHead {
            revision: r.u64()?,
            hash: ManifestHash(r.array()?),
            key_version: r.u64()?,
        };
        if heads.last_key_value().is_some_and(|(last, _)| *last >= id) {
            return Err(DecodeError::Invalid("ids not in ascending order"));
        }
        heads.insert(id, head);
    }
    Ok(heads)
}

impl AccountState {
    /// The pins of both records, each head the higher of the two. Commutative, idempotent and
    /// monotone: merging never lowers a head and never drops a workspace or environment.
    pub fn merge(&self, other: &Self) -> Result<Self, MergeError> {
        let mut workspaces = self.workspaces.clone();
        for (ws, pins) in &other.workspaces {
            let merged = match workspaces.get(ws) {
                Some(mine) => mine.merge(*ws, pins)?,
                None => pins.clone(),
            };
            workspaces.insert(*ws, merged);
        }
        let mut personal = self.personal.clone();
        for (env, revision) in &other.personal {
            let seen = personal.entry(*env).or_insert(0);
            *seen = (*seen).max(*revision);
        }
        Ok(Self {
            workspaces,
            personal,
        })
    }

    /// The highest revision of this account's personal overrides of `env` seen, if any.
    #[must_use]
    pub fn personal_revision(&self, env: &EnvironmentId) -> Option<u64> {
        self.personal.get(env).copied()
    }

    /// Records a revision of this account's personal overrides of `env` (never lowering the
    /// one seen); whether the record changed.
    pub fn record_personal(&mut self, env: EnvironmentId, revision: u64) -> bool {
        let seen = self.personal.entry(env).or_insert(0);
        if revision > *seen {
            *seen = revision;
            true
        } else {
            false
        }
    }

    /// The roster anchor pinned for `workspace`, if any.
    #[must_use]
    pub fn anchor(&self, workspace: &WorkspaceId) -> Option<RosterAnchor> {
        self.workspaces.get(workspace).map(|p| RosterAnchor {
            workspace: *workspace,
            genesis: p.genesis,
            head: Some(p.roster),
        })
    }

    /// The environment head pinned for `environment` of `workspace`, if any.
    #[must_use]
    pub fn environment_head(
        &self,
        workspace: &WorkspaceId,
        environment: &EnvironmentId,
    ) -> Option<ManifestHead> {
        self.workspaces
            .get(workspace)?
            .environments
            .get(environment)
            .copied()
    }

    /// Records a newly verified roster (never lowering the pinned head).
    pub fn record_roster(&mut self, anchor: &RosterAnchor) -> Result<(), MergeError> {
        let head = anchor.head.unwrap_or(RosterHead {
            sequence: 0,
            hash: anchor.genesis,
        });
        let new = Self {
            workspaces: BTreeMap::from([(
                anchor.workspace,
                WorkspacePins {
                    genesis: anchor.genesis,
                    roster: head,
                    environments: BTreeMap::new(),
                    projects: BTreeMap::new(),
                },
            )]),
            personal: BTreeMap::new(),
        };
        *self = self.merge(&new)?;
        Ok(())
    }

    /// Records a newly verified environment head (never lowering it). The workspace must be
    /// pinned already.
    pub fn record_environment(
        &mut self,
        workspace: &WorkspaceId,
        environment: EnvironmentId,
        head: ManifestHead,
    ) -> Result<bool, MergeError> {
        let Some(pins) = self.workspaces.get_mut(workspace) else {
            return Ok(false);
        };
        let merged = match pins.environments.get(&environment) {
            Some(mine) => max_head(*mine, head, |revision| MergeError::EnvironmentFork {
                environment,
                revision,
            })?,
            None => head,
        };
        pins.environments.insert(environment, merged);
        Ok(true)
    }

    /// Forgets the head of `environment`: only for a local vault whose owner restored an older
    /// backup on purpose (`klef backup import --allow-older`). Pins kept on a server merge by
    /// maximum, so this is not offered there.
    pub fn forget_environment(&mut self, workspace: &WorkspaceId, environment: &EnvironmentId) {
        if let Some(pins) = self.workspaces.get_mut(workspace) {
            pins.environments.remove(environment);
        }
        self.personal.remove(environment);
    }

    /// Records a newly verified project-record head (never lowering it). The workspace must
    /// be pinned already.
    pub fn record_project(
        &mut self,
        workspace: &WorkspaceId,
        project: ProjectId,
        head: ManifestHead,
    ) -> Result<bool, MergeError> {
        let Some(pins) = self.workspaces.get_mut(workspace) else {
            return Ok(false);
        };
        let merged = match pins.projects.get(&project) {
            Some(mine) => max_head(*mine, head, |revision| MergeError::ProjectFork {
                project,
                revision,
            })?,
            None => head,
        };
        pins.projects.insert(project, merged);
        Ok(true)
    }

    /// The project-record head pinned for `project` of `workspace`, if any.
    #[must_use]
    pub fn project_head(
        &self,
        workspace: &WorkspaceId,
        project: &ProjectId,
    ) -> Option<ManifestHead> {
        self.workspaces
            .get(workspace)?
            .projects
            .get(project)
            .copied()
    }

    /// The labelled plaintext (label `account-state/pins`).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Labelled::new(PINS_LABEL).count(self.workspaces.len());
        for (ws, pins) in &self.workspaces {
            w.push_field(ws.0.as_bytes());
            w.push_field(&pins.genesis.0);
            w.push_field(&pins.roster.sequence.to_be_bytes());
            w.push_field(&pins.roster.hash.0);
            write_heads(&mut w, &pins.environments, |e| e.0);
            write_heads(&mut w, &pins.projects, |p| p.0);
        }
        if !self.personal.is_empty() {
            // A trailing section, absent when empty: see the field's documentation.
            w = w.count(self.personal.len());
            for (env, revision) in &self.personal {
                w.push_field(env.0.as_bytes());
                w.push_field(&revision.to_be_bytes());
            }
        }
        w.finish()
    }

    /// Parses [`encode`](Self::encode)'s output (canonical: ascending ids, no repeats).
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, PINS_LABEL)?;
        // A workspace is at least 20 + 36 + 12 + 36 + 8 + 8 bytes.
        let n = r.count(120)?;
        let mut workspaces = BTreeMap::new();
        for _ in 0..n {
            let ws = WorkspaceId(r.id()?);
            let genesis = EntryHash(r.array()?);
            let roster = RosterHead {
                sequence: r.u64()?,
                hash: EntryHash(r.array()?),
            };
            if roster.sequence == 0 && roster.hash != genesis {
                return Err(DecodeError::Invalid(
                    "a roster head at 0 that is not the genesis",
                ));
            }
            let environments = read_heads(&mut r, EnvironmentId)?;
            let projects = read_heads(&mut r, ProjectId)?;
            if workspaces
                .last_key_value()
                .is_some_and(|(last, _)| *last >= ws)
            {
                return Err(DecodeError::Invalid("workspaces not in ascending order"));
            }
            workspaces.insert(
                ws,
                WorkspacePins {
                    genesis,
                    roster,
                    environments,
                    projects,
                },
            );
        }
        let mut personal = BTreeMap::new();
        if !r.is_empty() {
            // Each is 20 + 12 bytes; an empty section is never written.
            let n = r.count(32)?;
            if n == 0 {
                return Err(DecodeError::Invalid("an empty personal-overrides section"));
            }
            for _ in 0..n {
                let env = EnvironmentId(r.id()?);
                let revision = r.u64()?;
                if personal
                    .last_key_value()
                    .is_some_and(|(last, _)| *last >= env)
                {
                    return Err(DecodeError::Invalid("ids not in ascending order"));
                }
                personal.insert(env, revision);
            }
        }
        r.finish()?;
        Ok(Self {
            workspaces,
            personal,
        })
    }

    /// Seals the record for `account` under its master key.
    #[must_use]
    pub fn seal(&self, master_key: &SymmetricKey, account: &AccountId) -> Vec<u8> {
        self.seal_with(&hkdf_key(master_key.expose(), ACCOUNT_STATE_INFO), account)
    }

    /// Seals the record under the already derived account-state key.
    pub(crate) fn seal_with(&self, key: &SymmetricKey, account: &AccountId) -> Vec<u8> {
        seal(key, &aad(account), &self.encode())
    }

    /// Opens a record sealed by [`seal`](Self::seal).
    pub fn open(
        master_key: &SymmetricKey,
        account: &AccountId,
        sealed: &[u8],
    ) -> Result<Self, SealedStateError> {
        Self::open_with(
            &hkdf_key(master_key.expose(), ACCOUNT_STATE_INFO),
            account,
            sealed,
        )
    }

    /// Opens a record under the already derived account-state key.
    pub(crate) fn open_with(
        key: &SymmetricKey,
        account: &AccountId,
        sealed: &[u8],
    ) -> Result<Self, SealedStateError> {
        let plain = open(key, &aad(account), sealed).ok_or(SealedStateError)?;
        Self::parse(&plain).map_err(|_| SealedStateError)
    }
}

fn aad(account: &AccountId) -> Vec<u8> {
    Labelled::new("account-state").id(&account.0).finish()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ws(n: u8) -> WorkspaceId {
        WorkspaceId(crate::trust::raw_id(&[n; 16]))
    }

    fn env(n: u8) -> EnvironmentId {
        EnvironmentId(crate::trust::raw_id(&[n; 16]))
    }

    fn project(n: u8) -> ProjectId {
        ProjectId(crate::trust::raw_id(&[n; 16]))
    }

    /// A consistent "true history": hashes are a function of the position, so two states
    /// drawn from it never fork, as two honest devices' states would not.
    fn roster_at(seq: u64) -> RosterHead {
        RosterHead {
            sequence: seq,
            hash: if seq == 0 {
                EntryHash([0xee; 32])
            } else {
                EntryHash([seq as u8; 32])
            },
        }
    }

    fn manifest_at(rev: u64) -> ManifestHead {
        ManifestHead {
            revision: rev,
            hash: ManifestHash([rev as u8; 32]),
            key_version: rev / 3,
        }
    }

    prop_compose! {
        fn state()(spec in proptest::collection::btree_map(0u8..4, (0u64..6, proptest::collection::btree_map(0u8..4, 1u64..9, 0..3), proptest::collection::btree_map(0u8..3, 1u64..5, 0..2)), 0..3), personal in proptest::collection::btree_map(0u8..4, 1u64..9, 0..3)) -> AccountState {
            AccountState {
                personal: personal.into_iter().map(|(e, rev)| (env(e), rev)).collect(),
                workspaces: spec.into_iter().map(|(w, (seq, envs, projects))| (ws(w), WorkspacePins {
                    genesis: EntryHash([0xee; 32]),
                    roster: roster_at(seq),
                    environments: envs.into_iter().map(|(e, rev)| (env(e), manifest_at(rev))).collect(),
                    projects: projects.into_iter().map(|(p, rev)| (project(p), manifest_at(rev))).collect(),
                })).collect(),
            }
        }
    }

    fn at_least(big: &AccountState, small: &AccountState) -> bool {
        small
            .personal
            .iter()
            .all(|(e, r)| big.personal.get(e).is_some_and(|g| g >= r))
            && small.workspaces.iter().all(|(w, p)| {
                big.workspaces.get(w).is_some_and(|q| {
                    q.roster.sequence >= p.roster.sequence
                        && p.environments.iter().all(|(e, h)| {
                            q.environments
                                .get(e)
                                .is_some_and(|g| g.revision >= h.revision)
                        })
                        && p.projects.iter().all(|(e, h)| {
                            q.projects.get(e).is_some_and(|g| g.revision >= h.revision)
                        })
                })
            })
    }

    proptest! {
        #[test]
        fn merge_is_commutative_idempotent_associative_and_monotone(a in state(), b in state(), c in state()) {
            let ab = a.merge(&b).unwrap();
            prop_assert_eq!(&ab, &b.merge(&a).unwrap());
            prop_assert_eq!(&a.merge(&a).unwrap(), &a);
            prop_assert_eq!(&ab.merge(&c).unwrap(), &a.merge(&b.merge(&c).unwrap()).unwrap());
            prop_assert!(at_least(&ab, &a) && at_least(&ab, &b));
            prop_assert_eq!(&ab.merge(&a).unwrap(), &ab, "merging an older record changes nothing");
        }

        #[test]
        fn encoding_round_trips_and_seals(a in state()) {
            prop_assert_eq!(&AccountState::parse(&a.encode()).unwrap(), &a);
            let master = SymmetricKey::from_bytes(Box::new([4; 32]));
            let account = AccountId(crate::trust::raw_id(&[9; 16]));
            let sealed = a.seal(&master, &account);
            prop_assert_eq!(&AccountState::open(&master, &account, &sealed).unwrap(), &a);
        }

        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut input = Labelled::new(PINS_LABEL).finish();
            input.extend_from_slice(&bytes);
            let _ = AccountState::parse(&input);
        }
    }

    #[test]
    fn pins_without_personal_revisions_keep_their_bytes_and_still_open() {
        // Pins as written before personal overrides: the same bytes as this build writes
        // while no personal revision is recorded, parsed field by field as before.
        let old = Labelled::new(PINS_LABEL)
            .count(1)
            .id(&ws(1).0)
            .field(&[0xee; 32])
            .u64(0)
            .field(&[0xee; 32])
            .count(1)
            .id(&env(2).0)
            .u64(3)
            .field(&[3; 32])
            .u64(1)
            .count(0)
            .finish();
        let parsed = AccountState::parse(&old).unwrap();
        assert!(parsed.personal.is_empty());
        assert_eq!(
            parsed.environment_head(&ws(1), &env(2)),
            Some(manifest_at(3))
        );
        assert_eq!(
            parsed.encode(),
            old,
            "unchanged bytes without personal revisions"
        );
        let master = SymmetricKey::from_bytes(Box::new([4; 32]));
        let me = AccountId(crate::trust::raw_id(&[9; 16]));
        let sealed = seal(
            &hkdf_key(master.expose(), ACCOUNT_STATE_INFO),
            &aad(&me),
            &old,
        );
        assert_eq!(AccountState::open(&master, &me, &sealed).unwrap(), parsed);

        let mut with = parsed.clone();
        assert!(with.record_personal(env(2), 4));
        assert!(!with.record_personal(env(2), 3), "never lowered");
        assert_eq!(with.personal_revision(&env(2)), Some(4));
        let bytes = with.encode();
        assert!(bytes.starts_with(&old));
        assert_eq!(AccountState::parse(&bytes).unwrap(), with);
        let mut empty_section = old.clone();
        empty_section.extend_from_slice(&0u32.to_be_bytes());
        assert!(AccountState::parse(&empty_section).is_err());
        with.forget_environment(&ws(1), &env(2));
        assert_eq!(with.personal_revision(&env(2)), None);
    }

    #[test]
    fn conflicts_are_errors_in_both_orders() {
        let base = AccountState {
            workspaces: BTreeMap::from([(
                ws(1),
                WorkspacePins {
                    genesis: EntryHash([0xee; 32]),
                    roster: roster_at(3),
                    environments: BTreeMap::from([(env(1), manifest_at(4))]),
                    projects: BTreeMap::from([(project(1), manifest_at(2))]),
                },
            )]),
            personal: BTreeMap::new(),
        };
        let mut other_genesis = base.clone();
        other_genesis.workspaces.get_mut(&ws(1)).unwrap().genesis = EntryHash([1; 32]);
        let mut roster_fork = base.clone();
        roster_fork.workspaces.get_mut(&ws(1)).unwrap().roster.hash = EntryHash([9; 32]);
        let mut env_fork = base.clone();
        env_fork
            .workspaces
            .get_mut(&ws(1))
            .unwrap()
            .environments
            .get_mut(&env(1))
            .unwrap()
            .hash = ManifestHash([9; 32]);
        let mut project_fork = base.clone();
        project_fork
            .workspaces
            .get_mut(&ws(1))
            .unwrap()
            .projects
            .get_mut(&project(1))
            .unwrap()
            .key_version = 7;
        for (other, want) in [
            (other_genesis, MergeError::ConflictingGenesis(ws(1))),
            (
                roster_fork,
                MergeError::RosterFork {
                    workspace: ws(1),
                    sequence: 3,
                },
            ),
            (
                env_fork,
                MergeError::EnvironmentFork {
                    environment: env(1),
                    revision: 4,
                },
            ),
            (
                project_fork,
                MergeError::ProjectFork {
                    project: project(1),
                    revision: 2,
                },
            ),
        ] {
            assert_eq!(base.merge(&other), Err(want));
            assert_eq!(other.merge(&base), Err(want));
        }
    }

    #[test]
    fn recording_never_lowers_and_sealing_binds_the_account() {
        let mut state = AccountState::default();
        let anchor = RosterAnchor {
            workspace: ws(1),
            genesis: EntryHash([0xee; 32]),
            head: None,
        };
        state.record_roster(&anchor).unwrap();
        assert_eq!(state.anchor(&ws(1)).unwrap().head, Some(roster_at(0)));
        state
            .record_roster(&RosterAnchor {
                head: Some(roster_at(5)),
                ..anchor
            })
            .unwrap();
        state
            .record_roster(&RosterAnchor {
                head: Some(roster_at(2)),
                ..anchor
            })
            .unwrap();
        assert_eq!(state.anchor(&ws(1)).unwrap().head, Some(roster_at(5)));
        assert!(
            state
                .record_environment(&ws(1), env(1), manifest_at(7))
                .unwrap()
        );
        assert!(
            state
                .record_environment(&ws(1), env(1), manifest_at(2))
                .unwrap()
        );
        assert_eq!(
            state.environment_head(&ws(1), &env(1)),
            Some(manifest_at(7))
        );
        assert_eq!(state.environment_head(&ws(1), &env(2)), None);
        assert!(
            state
                .record_project(&ws(1), project(1), manifest_at(3))
                .unwrap()
        );
        assert!(
            state
                .record_project(&ws(1), project(1), manifest_at(1))
                .unwrap()
        );
        assert_eq!(
            state.project_head(&ws(1), &project(1)),
            Some(manifest_at(3))
        );
        assert!(
            !state
                .record_project(&ws(2), project(1), manifest_at(1))
                .unwrap()
        );
        assert!(
            !state
                .record_environment(&ws(2), env(1), manifest_at(1))
                .unwrap()
        );

        let master = SymmetricKey::from_bytes(Box::new([4; 32]));
        let me = AccountId(crate::trust::raw_id(&[9; 16]));
        let sealed = state.seal(&master, &me);
        assert_eq!(AccountState::open(&master, &me, &sealed).unwrap(), state);
        let other = AccountId(crate::trust::raw_id(&[8; 16]));
        assert_eq!(
            AccountState::open(&master, &other, &sealed),
            Err(SealedStateError)
        );
        let wrong_master = SymmetricKey::from_bytes(Box::new([5; 32]));
        assert_eq!(
            AccountState::open(&wrong_master, &me, &sealed),
            Err(SealedStateError)
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            AccountState::open(&master, &me, &tampered),
            Err(SealedStateError)
        );
    }
}
