//! Verifying and folding a served roster chain.

use std::collections::BTreeMap;

use super::{
    Access, EntryBody, EntryHash, MemberRecord, Permission, PrincipalId, Record, RosterAnchor,
    RosterHead, SignedEntry, SystemKeyRecord,
};
use crate::crypto::PublicKey;
use crate::ids::{AccountId, ApiKeyId, EnvironmentId, ProjectId, WorkspaceId};
use crate::model::Role;
use crate::trust::encoding::DecodeError;
use crate::trust::identity::{PublicIdentity, SigningKey, VerifyingKey};

/// Why a served roster is refused. Each message names what the server (or whoever wrote the
/// rows it serves) did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RosterError {
    /// No entries at all.
    #[error("the server sent an empty roster: it withheld the workspace's members")]
    Empty,
    /// An entry is not a well-formed roster entry.
    #[error("roster entry at position {position} is malformed ({error}): the server altered it")]
    Malformed {
        /// Its position in the served list.
        position: usize,
        /// What is wrong.
        error: DecodeError,
    },
    /// The first entry is not the pinned genesis.
    #[error(
        "the roster's first entry is not the genesis this account pinned: the server served a forged or another workspace's roster"
    )]
    ForgedGenesis,
    /// The first entry hashes as pinned but is not a valid genesis.
    #[error("the roster's first entry is not a valid genesis: {0}")]
    InvalidGenesis(&'static str),
    /// An entry names another workspace.
    #[error(
        "roster entry {sequence} belongs to another workspace: the server replayed it across workspaces"
    )]
    ForeignWorkspace {
        /// The entry's sequence number.
        sequence: u64,
    },
    /// Entries are missing between two served ones.
    #[error(
        "roster entry {expected} is missing (entry {found} came next): the server withheld entries"
    )]
    Gap {
        /// The sequence number that should have come next.
        expected: u64,
        /// The one that came.
        found: u64,
    },
    /// An entry repeats or precedes one already served.
    #[error(
        "roster entries are out of order or repeated (expected {expected}, got {found}): the server reordered or replayed entries"
    )]
    Reordered {
        /// The sequence number that should have come next.
        expected: u64,
        /// The one that came.
        found: u64,
    },
    /// An entry does not name its predecessor's hash.
    #[error(
        "roster entry {sequence} does not chain to the entry before it: the server inserted, replaced or forked entries"
    )]
    BrokenChain {
        /// The entry's sequence number.
        sequence: u64,
    },
    /// An entry is signed by an account the roster does not hold (or no longer holds).
    #[error(
        "roster entry {sequence} is signed by an account that was not a member at that point: the server forged it"
    )]
    UnknownSigner {
        /// The entry's sequence number.
        sequence: u64,
    },
    /// An entry's signature does not verify under the signer's identity key.
    #[error(
        "the signature of roster entry {sequence} does not verify: the server forged or altered it"
    )]
    ForgedSignature {
        /// The entry's sequence number.
        sequence: u64,
    },
    /// An entry is signed by a member who was not an owner or admin at that point.
    #[error(
        "roster entry {sequence} is signed by a member who was not an admin at that point: the server accepted an unauthorised change"
    )]
    UnauthorisedSigner {
        /// The entry's sequence number.
        sequence: u64,
    },
    /// An entry makes a change no one may make.
    #[error("roster entry {sequence} makes an invalid change: {reason}")]
    InvalidChange {
        /// The entry's sequence number.
        sequence: u64,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The served chain ends before the head this account pinned.
    #[error(
        "the server served the roster up to entry {served}, older than entry {pinned} this account has already verified: it withheld or rolled back entries"
    )]
    Truncated {
        /// The pinned head's sequence number.
        pinned: u64,
        /// The served chain's last sequence number.
        served: u64,
    },
    /// The served chain holds another entry where this account pinned one.
    #[error(
        "roster entry {sequence} differs from the one this account pinned: the server forked the roster"
    )]
    Forked {
        /// The pinned entry's sequence number.
        sequence: u64,
    },
}

/// Why a principal may not have signed a manifest (DESIGN.md §9.3's authorisation rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriterError {
    /// The manifest names a roster entry past this client's verified head.
    #[error(
        "it references roster entry {sequence}, newer than the verified roster (entry {head}): verify the newer roster first"
    )]
    RosterAhead {
        /// The referenced entry.
        sequence: u64,
        /// This client's verified head.
        head: u64,
    },
    /// The manifest names a roster entry whose hash is not the verified one.
    #[error(
        "it references a roster entry {sequence} that is not in the verified roster: a forked roster"
    )]
    RosterMismatch {
        /// The referenced entry.
        sequence: u64,
    },
    /// The signer is not a live principal at the referenced entry.
    #[error("its signer ({principal}) was not in the roster at entry {sequence}")]
    NotAPrincipal {
        /// The signer.
        principal: PrincipalId,
        /// The referenced entry.
        sequence: u64,
    },
    /// The signer could not write this environment (or change its key) at the referenced entry.
    #[error("its signer ({principal}) could not {what} at roster entry {sequence}")]
    NotAuthorised {
        /// The signer.
        principal: PrincipalId,
        /// What it could not do.
        what: &'static str,
        /// The referenced entry.
        sequence: u64,
    },
    /// The signer lost the right later (removed, demoted, revoked, scope narrowed).
    #[error(
        "its signer ({principal}) was removed, demoted or revoked at roster entry {sequence}, after the entry it references"
    )]
    RevokedSince {
        /// The signer.
        principal: PrincipalId,
        /// The entry that took the right away.
        sequence: u64,
    },
}

/// Why this device's own roster entry is not what it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OwnEntryError {
    /// The verified roster does not hold this principal (or it was removed).
    #[error(
        "the verified roster does not list {0}: it was removed, or the server serves another workspace"
    )]
    NotListed(PrincipalId),
    /// The verified roster lists other public keys for this principal.
    #[error("the verified roster lists other public keys for {0} than this device holds")]
    KeysDiffer(PrincipalId),
}

/// One change of a principal: the record in force from `sequence` on.
#[derive(Debug, Clone)]
struct Change {
    sequence: u64,
    record: Record,
}

/// A roster whose every entry verified, folded into the principals' current records (and their
/// history, for the manifest authorisation rule).
#[derive(Debug, Clone)]
pub struct VerifiedRoster {
    workspace: WorkspaceId,
    owner: AccountId,
    /// Entry hashes by sequence number.
    hashes: Vec<EntryHash>,
    /// Every principal's changes, oldest first (`Record::Removed` = removed from then on).
    principals: BTreeMap<PrincipalId, Vec<Change>>,
}

/// `u64` sequence number from a list index.
fn seq(index: usize) -> u64 {
    u64::try_from(index).expect("fewer than 2^64 entries")
}

impl VerifiedRoster {
    /// Verifies a whole served chain (genesis first) against a pinned anchor and folds it.
    ///
    /// Checks, in order, for every entry: it parses; the genesis hashes to the pinned genesis,
    /// names the pinned workspace, has sequence 0 and a zero predecessor, and is the owner's
    /// own record signed by the owner; every later entry names the workspace, has the next
    /// sequence number, names its predecessor's hash, is signed by a member who is an owner or
    /// admin in the state folded so far (signature checked with that member's key from that
    /// state, `verify_strict`), and makes a valid change. Then, if the anchor has a head, the
    /// chain must reach it and hold that very entry.
    pub fn verify(anchor: &RosterAnchor, entries: &[SignedEntry]) -> Result<Self, RosterError> {
        let (genesis, rest) = entries.split_first().ok_or(RosterError::Empty)?;
        let roster = Self::from_genesis(anchor, genesis)?;
        let roster = roster.extended_from(rest, 1)?;
        roster.check_pinned_head(anchor.head)?;
        Ok(roster)
    }

    /// Verifies entries that continue this roster (the first must be `head + 1`).
    pub fn extended(&self, entries: &[SignedEntry]) -> Result<Self, RosterError> {
        self.extended_from(entries, 0)
    }

    /// Creates a workspace's roster: the genesis entry for `owner`, signed by `owner_key`.
    pub fn create(
        workspace: WorkspaceId,
        owner: MemberRecord,
        owner_key: &SigningKey,
    ) -> Result<(SignedEntry, Self), RosterError> {
        let body = EntryBody {
            workspace,
            sequence: 0,
            previous: EntryHash::ZERO,
            signer: owner.account,
            record: Record::Member(owner),
        };
        let entry = body.sign(owner_key);
        let anchor = RosterAnchor {
            workspace,
            genesis: entry.hash(),
            head: None,
        };
        let roster = Self::from_genesis(&anchor, &entry)?;
        Ok((entry, roster))
    }

    /// Signs the next entry, setting `record`, as `signer` with `key`, and returns it with the
    /// roster it makes. The same checks as a reader's run first, so a client never publishes an
    /// entry others would refuse.
    pub fn append(
        &self,
        record: Record,
        signer: AccountId,
        key: &SigningKey,
    ) -> Result<(SignedEntry, Self), RosterError> {
        let head = self.head();
        let entry = EntryBody {
            workspace: self.workspace,
            sequence: head.sequence.saturating_add(1),
            previous: head.hash,
            signer,
            record,
        }
        .sign(key);
        let next = self.extended(std::slice::from_ref(&entry))?;
        Ok((entry, next))
    }

    fn from_genesis(anchor: &RosterAnchor, entry: &SignedEntry) -> Result<Self, RosterError> {
        let body = EntryBody::parse(&entry.body)
            .map_err(|error| RosterError::Malformed { position: 0, error })?;
        if entry.hash() != anchor.genesis {
            return Err(RosterError::ForgedGenesis);
        }
        if body.workspace != anchor.workspace {
            return Err(RosterError::ForeignWorkspace { sequence: 0 });
        }
        if body.sequence != 0 || body.previous != EntryHash::ZERO {
            return Err(RosterError::InvalidGenesis(
                "it is not entry 0 or names a predecessor",
            ));
        }
        let Record::Member(owner) = &body.record else {
            return Err(RosterError::InvalidGenesis("it is not a member's record"));
        };
        if owner.role != Role::Owner || owner.access != Access::All {
            return Err(RosterError::InvalidGenesis(
                "it does not make its member the owner with access to everything",
            ));
        }
        if owner.account != body.signer {
            return Err(RosterError::InvalidGenesis(
                "it is not signed by the owner it names",
            ));
        }
        if !owner.identity_key.verify(&entry.body, &entry.signature) {
            return Err(RosterError::ForgedSignature { sequence: 0 });
        }
        let owner_id = owner.account;
        let mut principals = BTreeMap::new();
        principals.insert(
            PrincipalId::Member(owner_id),
            vec![Change {
                sequence: 0,
                record: body.record,
            }],
        );
        Ok(Self {
            workspace: body.workspace,
            owner: owner_id,
            hashes: vec![entry.hash()],
            principals,
        })
    }

    /// Folds `entries` (continuing the head) into a copy; `offset` is their position in the
    /// served list, for error messages.
    fn extended_from(&self, entries: &[SignedEntry], offset: usize) -> Result<Self, RosterError> {
        let mut next = self.clone();
        for (i, entry) in entries.iter().enumerate() {
            next.apply(entry, offset + i)?;
        }
        Ok(next)
    }

    fn apply(&mut self, entry: &SignedEntry, position: usize) -> Result<(), RosterError> {
        let body = EntryBody::parse(&entry.body)
            .map_err(|error| RosterError::Malformed { position, error })?;
        let head = self.head();
        let expected = head.sequence.saturating_add(1);
        let sequence = body.sequence;
        if body.workspace != self.workspace {
            return Err(RosterError::ForeignWorkspace { sequence });
        }
        if sequence > expected {
            return Err(RosterError::Gap {
                expected,
                found: sequence,
            });
        }
        if sequence < expected {
            return Err(RosterError::Reordered {
                expected,
                found: sequence,
            });
        }
        if body.previous != head.hash {
            return Err(RosterError::BrokenChain { sequence });
        }
        let signer = match self.current(&PrincipalId::Member(body.signer)) {
            Some(Record::Member(m)) => m.clone(),
            _ => return Err(RosterError::UnknownSigner { sequence }),
        };
        if !signer.identity_key.verify(&entry.body, &entry.signature) {
            return Err(RosterError::ForgedSignature { sequence });
        }
        if !signer.is_admin() {
            return Err(RosterError::UnauthorisedSigner { sequence });
        }
        self.check_change(&signer, &body.record)
            .map_err(|reason| RosterError::InvalidChange { sequence, reason })?;
        self.hashes.push(entry.hash());
        self.principals
            .entry(body.record.principal())
            .or_default()
            .push(Change {
                sequence,
                record: body.record,
            });
        Ok(())
    }

    /// The rules a `set-principal` entry must follow beyond its signer being an admin.
    fn check_change(&self, signer: &MemberRecord, record: &Record) -> Result<(), &'static str> {
        let owner = PrincipalId::Member(self.owner);
        match record {
            Record::Member(m) => {
                let is_owner = m.account == self.owner;
                if m.role == Role::Owner && !is_owner {
                    return Err("a workspace has one owner: no one else may be made owner");
                }
                if is_owner && m.role != Role::Owner {
                    return Err("the owner cannot be demoted");
                }
                if is_owner && signer.account != self.owner {
                    return Err("only the owner may restate the owner's record");
                }
                if m.role != Role::Member && m.access != Access::All {
                    return Err("owners and admins have access to every environment");
                }
                Ok(())
            }
            Record::SystemKey(k) => {
                if k.scopes.is_empty() {
                    return Err("a system key needs at least one scope");
                }
                match self.principals.get(&PrincipalId::SystemKey(k.key)) {
                    None if k.creator != signer.account => {
                        Err("a new system key must name its signer as creator")
                    }
                    None => Ok(()),
                    Some(changes) => match changes.last().map(|c| &c.record) {
                        Some(Record::SystemKey(old)) => {
                            if old.x25519_key != k.x25519_key || old.signing_key != k.signing_key {
                                Err("a system key's public keys never change")
                            } else if old.creator != k.creator {
                                Err("a system key's creator never changes")
                            } else {
                                Ok(())
                            }
                        }
                        _ => Err("a revoked system key cannot be restored"),
                    },
                }
            }
            Record::Removed(p) => {
                if *p == owner {
                    return Err("the owner cannot be removed");
                }
                if self.current(p).is_none() {
                    return Err("it removes a principal that is not in the roster");
                }
                Ok(())
            }
        }
    }

    fn check_pinned_head(&self, pinned: Option<RosterHead>) -> Result<(), RosterError> {
        let Some(pinned) = pinned else { return Ok(()) };
        let served = self.head().sequence;
        match self.hash_at(pinned.sequence) {
            None => Err(RosterError::Truncated {
                pinned: pinned.sequence,
                served,
            }),
            Some(hash) if hash != pinned.hash => Err(RosterError::Forked {
                sequence: pinned.sequence,
            }),
            Some(_) => Ok(()),
        }
    }

    /// The workspace.
    #[must_use]
    pub fn workspace(&self) -> WorkspaceId {
        self.workspace
    }

    /// The owner (the genesis member).
    #[must_use]
    pub fn owner(&self) -> AccountId {
        self.owner
    }

    /// The genesis entry's hash.
    #[must_use]
    pub fn genesis(&self) -> EntryHash {
        self.hashes[0]
    }

    /// The newest entry.
    #[must_use]
    pub fn head(&self) -> RosterHead {
        let last = self.hashes.len() - 1;
        RosterHead {
            sequence: seq(last),
            hash: self.hashes[last],
        }
    }

    /// What to pin now: workspace, genesis and this head.
    #[must_use]
    pub fn anchor(&self) -> RosterAnchor {
        RosterAnchor {
            workspace: self.workspace,
            genesis: self.genesis(),
            head: Some(self.head()),
        }
    }

    /// The hash of entry `sequence`, if the chain holds it.
    #[must_use]
    pub fn hash_at(&self, sequence: u64) -> Option<EntryHash> {
        usize::try_from(sequence)
            .ok()
            .and_then(|i| self.hashes.get(i).copied())
    }

    /// Whether the roster has recorded `p` at any entry (live or removed since): a principal it
    /// never named is unknown to it, one it named and removed is refused.
    #[must_use]
    pub fn ever_listed(&self, p: &PrincipalId) -> bool {
        self.principals.contains_key(p)
    }

    /// A principal's record as of entry `sequence` (`None` when absent or removed then): who
    /// signed a manifest made under that roster head, for showing it.
    #[must_use]
    pub fn record_as_of(&self, p: &PrincipalId, sequence: u64) -> Option<&Record> {
        self.record_at(p, sequence)
    }

    /// The live record of a principal (`None` when absent or removed).
    fn current(&self, p: &PrincipalId) -> Option<&Record> {
        self.record_at(p, self.head().sequence)
    }

    /// A principal's live record as of entry `sequence` (`None` when absent or removed then).
    fn record_at(&self, p: &PrincipalId, sequence: u64) -> Option<&Record> {
        let changes = self.principals.get(p)?;
        let idx = changes.partition_point(|c| c.sequence <= sequence);
        match changes.get(idx.checked_sub(1)?)?.record {
            Record::Removed(_) => None,
            ref r => Some(r),
        }
    }

    /// A live member's record.
    #[must_use]
    pub fn member(&self, account: &AccountId) -> Option<&MemberRecord> {
        match self.current(&PrincipalId::Member(*account)) {
            Some(Record::Member(m)) => Some(m),
            _ => None,
        }
    }

    /// A live system key's record.
    #[must_use]
    pub fn system_key(&self, key: &ApiKeyId) -> Option<&SystemKeyRecord> {
        match self.current(&PrincipalId::SystemKey(*key)) {
            Some(Record::SystemKey(k)) => Some(k),
            _ => None,
        }
    }

    /// Every live member.
    pub fn members(&self) -> impl Iterator<Item = &MemberRecord> {
        self.principals
            .keys()
            .filter_map(|p| match self.current(p) {
                Some(Record::Member(m)) => Some(m),
                _ => None,
            })
    }

    /// Every live system key.
    pub fn system_keys(&self) -> impl Iterator<Item = &SystemKeyRecord> {
        self.principals
            .keys()
            .filter_map(|p| match self.current(p) {
                Some(Record::SystemKey(k)) => Some(k),
                _ => None,
            })
    }

    /// Live system keys created by `account` (to list when that member is removed).
    pub fn system_keys_created_by(
        &self,
        account: AccountId,
    ) -> impl Iterator<Item = &SystemKeyRecord> {
        self.system_keys().filter(move |k| k.creator == account)
    }

    /// Who may read `environment` of `project` now, with the X25519 key to wrap its key to:
    /// owners, admins and members whose access covers it, and system keys whose scopes do.
    /// The only list a client may wrap an environment key to.
    #[must_use]
    pub fn readers(
        &self,
        project: &ProjectId,
        environment: &EnvironmentId,
    ) -> Vec<(PrincipalId, PublicKey)> {
        let members = self
            .members()
            .filter(|m| m.is_admin() || m.access.covers(environment))
            .map(|m| (PrincipalId::Member(m.account), m.x25519_key));
        let keys = self
            .system_keys()
            .filter(|k| k.covers(project, environment))
            .map(|k| (PrincipalId::SystemKey(k.key), k.x25519_key));
        members.chain(keys).collect()
    }

    /// Live members with access to every environment: the recipients of project keys.
    pub fn full_access_members(&self) -> impl Iterator<Item = &MemberRecord> {
        self.members().filter(|m| m.access == Access::All)
    }

    /// Checks that this device's own member entry carries the keys it derived and unlocked.
    pub fn check_own_member(&self, me: &PublicIdentity) -> Result<&MemberRecord, OwnEntryError> {
        let p = PrincipalId::Member(me.account);
        let m = self
            .member(&me.account)
            .ok_or(OwnEntryError::NotListed(p))?;
        if m.identity() == *me {
            Ok(m)
        } else {
            Err(OwnEntryError::KeysDiffer(p))
        }
    }

    /// Checks that a system key's entry carries the public keys derived from its own token.
    pub fn check_own_system_key(
        &self,
        key: &ApiKeyId,
        x25519_key: &PublicKey,
        signing_key: &VerifyingKey,
    ) -> Result<&SystemKeyRecord, OwnEntryError> {
        let p = PrincipalId::SystemKey(*key);
        let k = self.system_key(key).ok_or(OwnEntryError::NotListed(p))?;
        if k.x25519_key == *x25519_key && k.signing_key == *signing_key {
            Ok(k)
        } else {
            Err(OwnEntryError::KeysDiffer(p))
        }
    }

    /// DESIGN.md §9.3's authorisation rule for a manifest of `environment` in `project`
    /// signed by `signer` under roster entry `at`: the entry is in this verified roster, the
    /// signer could write that environment then (and, when `admin_only`, set its key or
    /// names: owners and admins only), and no later entry up to this roster's head took the
    /// right to write it away (removed, revoked, demoted out of it, scope or permission
    /// narrowed). A key set by someone who was an admin then stays vouched for if they are
    /// later demoted but keep write access: they know the key either way. Returns the signer's
    /// verifying key as of `at`.
    pub fn check_writer(
        &self,
        signer: &PrincipalId,
        project: &ProjectId,
        environment: &EnvironmentId,
        at: RosterHead,
        admin_only: bool,
    ) -> Result<VerifyingKey, WriterError> {
        let key = self.check_writer_at(signer, project, environment, at, admin_only)?;
        let later = self.principals.get(signer).into_iter().flatten();
        for change in later.filter(|c| c.sequence > at.sequence) {
            if !may_write(&change.record, project, environment, false) {
                return Err(WriterError::RevokedSince {
                    principal: *signer,
                    sequence: change.sequence,
                });
            }
        }
        Ok(key)
    }

    /// The first half of [`check_writer`](Self::check_writer): the right at entry `at` only
    /// (for manifests a later authorised manifest vouches for by hash).
    pub fn check_writer_at(
        &self,
        signer: &PrincipalId,
        project: &ProjectId,
        environment: &EnvironmentId,
        at: RosterHead,
        admin_only: bool,
    ) -> Result<VerifyingKey, WriterError> {
        self.check_reference(at)?;
        let not_a_principal = WriterError::NotAPrincipal {
            principal: *signer,
            sequence: at.sequence,
        };
        let record = self
            .record_at(signer, at.sequence)
            .ok_or_else(|| not_a_principal.clone())?;
        if !may_write(record, project, environment, admin_only) {
            return Err(WriterError::NotAuthorised {
                principal: *signer,
                what: if admin_only {
                    "set this environment's key or names"
                } else {
                    "write this environment"
                },
                sequence: at.sequence,
            });
        }
        match record {
            Record::Member(m) => Ok(m.identity_key),
            Record::SystemKey(k) => Ok(k.signing_key),
            Record::Removed(_) => Err(not_a_principal),
        }
    }

    /// For records only owners and admins sign (a project's key commitment): `signer` was an
    /// owner or admin at entry `at` and, when `through_head`, no later entry up to this
    /// roster's head removed or demoted them. Returns their identity key as of `at`.
    pub fn check_admin(
        &self,
        signer: &PrincipalId,
        at: RosterHead,
        through_head: bool,
    ) -> Result<VerifyingKey, WriterError> {
        self.check_reference(at)?;
        let is_admin = |r: &Record| matches!(r, Record::Member(m) if m.is_admin());
        let key = match self.record_at(signer, at.sequence) {
            Some(Record::Member(m)) if m.is_admin() => m.identity_key,
            Some(_) => {
                return Err(WriterError::NotAuthorised {
                    principal: *signer,
                    what: "act as an admin",
                    sequence: at.sequence,
                });
            }
            None => {
                return Err(WriterError::NotAPrincipal {
                    principal: *signer,
                    sequence: at.sequence,
                });
            }
        };
        let later = self.principals.get(signer).into_iter().flatten();
        if let Some(change) = later
            .filter(|c| through_head && c.sequence > at.sequence)
            .find(|c| !is_admin(&c.record))
        {
            return Err(WriterError::RevokedSince {
                principal: *signer,
                sequence: change.sequence,
            });
        }
        Ok(key)
    }

    /// A record's roster reference must name an entry of this verified roster.
    fn check_reference(&self, at: RosterHead) -> Result<(), WriterError> {
        match self.hash_at(at.sequence) {
            None => Err(WriterError::RosterAhead {
                sequence: at.sequence,
                head: self.head().sequence,
            }),
            Some(h) if h != at.hash => Err(WriterError::RosterMismatch {
                sequence: at.sequence,
            }),
            Some(_) => Ok(()),
        }
    }
}

/// Whether `record` may write `environment` of `project` (and set its key or names, for
/// `admin_only`: owners and admins only).
fn may_write(
    record: &Record,
    project: &ProjectId,
    environment: &EnvironmentId,
    admin_only: bool,
) -> bool {
    match record {
        Record::Member(m) if admin_only => m.is_admin(),
        Record::Member(m) => m.is_admin() || m.access.covers(environment),
        Record::SystemKey(k) => {
            !admin_only && k.permission == Permission::ReadWrite && k.covers(project, environment)
        }
        Record::Removed(_) => false,
    }
}
