//! The signed, hash-chained workspace roster (DESIGN.md §9.2).
//!
//! A workspace's roster is an append-only log of **`set-principal`** entries, each restating one
//! principal's whole record: a member (account id, email, identity and X25519 public keys,
//! role, environments shared), a system key (key id, X25519 and Ed25519 public keys, scopes,
//! permission, creator), or `removed`. Readers fold the entries into a map; they never trust a
//! server's list of members or keys.
//!
//! Each entry is `(workspace id, sequence, hash of the previous entry, signer, record)` in the
//! labelled encoding under label `sig/roster`, signed with the signer's identity key. The
//! signed body travels as it was signed ([`SignedEntry`]); the chain hash is SHA-256 of that
//! body (not of the signature, so a signature is never part of what later entries commit to).
//! The genesis entry (sequence 0, previous hash all zeros) is the owner's own record, signed by
//! the owner. Every later entry must be signed by an owner or admin **according to the state
//! folded from the entries before it**.
//!
//! [`VerifiedRoster::verify`] checks a served chain against a pinned [`RosterAnchor`]; the
//! server can withhold entries from a client that has never seen them, never forge, reorder,
//! fork or shorten what a client has pinned.
//!
//! * [`invite`]: invite codes and their MAC (the accept ceremony), and the verification code of
//!   a roster head (`klef workspace verify`).

mod fold;
pub mod invite;

use std::collections::BTreeSet;
use std::fmt;

pub use fold::{OwnEntryError, RosterError, VerifiedRoster, WriterError};

use super::encoding::{DecodeError, Labelled, Reader};
use super::identity::{PublicIdentity, Signature, SigningKey, VerifyingKey, read_x25519};
use super::primitives::sha256;
use crate::crypto::PublicKey;
use crate::ids::{AccountId, ApiKeyId, EnvironmentId, ProjectId, WorkspaceId};
use crate::model::Role;

/// The label of a roster entry's signed body.
pub const ROSTER_LABEL: &str = "sig/roster";

/// Longest email a member record may carry (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// SHA-256 of a roster entry's signed body: what the next entry and the pins commit to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryHash(pub [u8; 32]);

impl EntryHash {
    /// The all-zero hash a genesis entry names as its predecessor.
    pub const ZERO: EntryHash = EntryHash([0; 32]);
}

impl fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryHash({})", hex::encode(self.0))
    }
}

impl fmt::Display for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A roster position: the sequence number of an entry and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RosterHead {
    /// The entry's sequence number (the genesis is 0).
    pub sequence: u64,
    /// The entry's hash.
    pub hash: EntryHash,
}

/// What a client pins for a workspace: the roster it trusts is the one whose genesis has this
/// hash, and it must extend `head` when one is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterAnchor {
    /// The workspace (bound into every entry).
    pub workspace: WorkspaceId,
    /// The genesis entry's hash.
    pub genesis: EntryHash,
    /// The newest entry this account has verified, if any beyond the genesis.
    pub head: Option<RosterHead>,
}

/// Who a roster record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalId {
    /// A member, by account.
    Member(AccountId),
    /// A system (CI) key, by key id.
    SystemKey(ApiKeyId),
}

impl fmt::Display for PrincipalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrincipalId::Member(a) => write!(f, "account {a}"),
            PrincipalId::SystemKey(k) => write!(f, "system key {k}"),
        }
    }
}

/// Which environments a member was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every environment of the workspace (the project keys are wrapped to them).
    All,
    /// Only these environments (their keys are wrapped to them directly).
    Only(BTreeSet<EnvironmentId>),
}

impl Access {
    /// Whether this access covers `environment`.
    #[must_use]
    pub fn covers(&self, environment: &EnvironmentId) -> bool {
        match self {
            Access::All => true,
            Access::Only(set) => set.contains(environment),
        }
    }
}

/// A member's whole record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The account.
    pub account: AccountId,
    /// The email it was invited under (for display; no trust rests on it).
    pub email: String,
    /// Its Ed25519 identity key.
    pub identity_key: VerifyingKey,
    /// Its X25519 key (what project and environment keys are wrapped to).
    pub x25519_key: PublicKey,
    /// Its role.
    pub role: Role,
    /// The environments shared with it (owners and admins: [`Access::All`]).
    pub access: Access,
}

impl MemberRecord {
    /// The account and keys this record vouches for.
    #[must_use]
    pub fn identity(&self) -> PublicIdentity {
        PublicIdentity {
            account: self.account,
            identity_key: self.identity_key,
            x25519_key: self.x25519_key,
        }
    }

    /// Whether this member may sign roster entries (owner or admin).
    #[must_use]
    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::Owner | Role::Admin)
    }
}

/// What a system key may do within its scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read secrets.
    Read,
    /// Read and write secrets (and sign manifests).
    ReadWrite,
}

/// One scope of a system key: one environment of a project, or all of them (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The project.
    pub project: ProjectId,
    /// The environment, or `None` for every environment of the project.
    pub environment: Option<EnvironmentId>,
}

impl Scope {
    /// Whether this scope covers `environment` of `project`.
    #[must_use]
    pub fn covers(&self, project: &ProjectId, environment: &EnvironmentId) -> bool {
        self.project == *project && self.environment.is_none_or(|e| e == *environment)
    }
}

/// A system key's whole record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemKeyRecord {
    /// The key's id (public, in its token's prefix).
    pub key: ApiKeyId,
    /// Its X25519 key (environment keys in scope are wrapped to it).
    pub x25519_key: PublicKey,
    /// Its Ed25519 key (it signs the manifests of its writes).
    pub signing_key: VerifyingKey,
    /// Its scopes (at least one).
    pub scopes: BTreeSet<Scope>,
    /// What it may do within them.
    pub permission: Permission,
    /// The member who created it (listed when that member is removed).
    pub creator: AccountId,
}

impl SystemKeyRecord {
    /// Whether any scope covers `environment` of `project`.
    #[must_use]
    pub fn covers(&self, project: &ProjectId, environment: &EnvironmentId) -> bool {
        self.scopes.iter().any(|s| s.covers(project, environment))
    }
}

/// The one entry kind, `set-principal`: a principal's whole new record, or its removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A member's record.
    Member(MemberRecord),
    /// A system key's record.
    SystemKey(SystemKeyRecord),
    /// The principal is removed (a member) or revoked (a system key).
    Removed(PrincipalId),
}

impl Record {
    /// Who the record is about.
    #[must_use]
    pub fn principal(&self) -> PrincipalId {
        match self {
            Record::Member(m) => PrincipalId::Member(m.account),
            Record::SystemKey(k) => PrincipalId::SystemKey(k.key),
            Record::Removed(p) => *p,
        }
    }
}

/// The content of a roster entry, before signing or after verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryBody {
    /// The workspace (every entry carries it: no replay across workspaces).
    pub workspace: WorkspaceId,
    /// 0 for the genesis, then +1 per entry.
    pub sequence: u64,
    /// The previous entry's hash ([`EntryHash::ZERO`] for the genesis).
    pub previous: EntryHash,
    /// The member who signs it.
    pub signer: AccountId,
    /// The record it sets.
    pub record: Record,
}

/// A roster entry as stored and served: the exact signed bytes and the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedEntry {
    /// The labelled body, exactly as signed.
    pub body: Vec<u8>,
    /// The signer's Ed25519 signature of `body`.
    pub signature: Signature,
}

impl fmt::Debug for SignedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedEntry")
            .field("hash", &self.hash())
            .finish_non_exhaustive()
    }
}

impl SignedEntry {
    /// SHA-256 of the signed body (the chain hash).
    #[must_use]
    pub fn hash(&self) -> EntryHash {
        EntryHash(sha256(&self.body))
    }
}

/// Record kind tags.
const KIND_MEMBER: u8 = 1;
const KIND_SYSTEM_KEY: u8 = 2;
const KIND_REMOVED: u8 = 3;
/// Access tags.
const ACCESS_ALL: u8 = 0;
const ACCESS_ONLY: u8 = 1;

fn role_tag(role: Role) -> u8 {
    match role {
        Role::Owner => 1,
        Role::Admin => 2,
        Role::Member => 3,
    }
}

fn role_from_tag(tag: u8) -> Result<Role, DecodeError> {
    match tag {
        1 => Ok(Role::Owner),
        2 => Ok(Role::Admin),
        3 => Ok(Role::Member),
        _ => Err(DecodeError::Invalid("unknown role")),
    }
}

fn permission_tag(p: Permission) -> u8 {
    match p {
        Permission::Read => 1,
        Permission::ReadWrite => 2,
    }
}

fn principal_tag(p: &PrincipalId) -> (u8, [u8; 16]) {
    match p {
        PrincipalId::Member(a) => (1, *a.0.as_bytes()),
        PrincipalId::SystemKey(k) => (2, *k.0.as_bytes()),
    }
}

/// Appends a principal id: a kind `u8` (1 member, 2 system key) and the id.
pub(crate) fn write_principal(w: Labelled, p: &PrincipalId) -> Labelled {
    let (tag, id) = principal_tag(p);
    w.u8(tag).field(&id)
}

/// Reads what [`write_principal`] wrote.
pub(crate) fn read_principal(r: &mut Reader<'_>) -> Result<PrincipalId, DecodeError> {
    let tag = r.u8()?;
    let id = r.id()?;
    match tag {
        1 => Ok(PrincipalId::Member(AccountId(id))),
        2 => Ok(PrincipalId::SystemKey(ApiKeyId(id))),
        _ => Err(DecodeError::Invalid("unknown principal kind")),
    }
}

impl EntryBody {
    /// The labelled body (label `sig/roster`); see the decision record for the field order.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let w = Labelled::new(ROSTER_LABEL)
            .id(&self.workspace.0)
            .u64(self.sequence)
            .field(&self.previous.0)
            .id(&self.signer.0);
        match &self.record {
            Record::Member(m) => {
                let w = w
                    .u8(KIND_MEMBER)
                    .id(&m.account.0)
                    .str(&m.email)
                    .field(&m.identity_key.to_bytes())
                    .field(&m.x25519_key.0)
                    .u8(role_tag(m.role));
                match &m.access {
                    Access::All => w.u8(ACCESS_ALL),
                    Access::Only(set) => {
                        let mut w = w.u8(ACCESS_ONLY).count(set.len());
                        for e in set {
                            w.push_field(e.0.as_bytes());
                        }
                        w
                    }
                }
            }
            Record::SystemKey(k) => {
                let mut w = w
                    .u8(KIND_SYSTEM_KEY)
                    .id(&k.key.0)
                    .field(&k.x25519_key.0)
                    .field(&k.signing_key.to_bytes())
                    .u8(permission_tag(k.permission))
                    .id(&k.creator.0)
                    .count(k.scopes.len());
                for s in &k.scopes {
                    w.push_field(s.project.0.as_bytes());
                    w.push_field(s.environment.as_ref().map_or(&[][..], |e| e.0.as_bytes()));
                }
                w
            }
            Record::Removed(p) => write_principal(w.u8(KIND_REMOVED), p),
        }
        .finish()
    }

    /// Signs the encoded body.
    #[must_use]
    pub fn sign(&self, key: &SigningKey) -> SignedEntry {
        let body = self.encode();
        let signature = key.sign(&body);
        SignedEntry { body, signature }
    }

    /// Parses a signed body. Pure and panic-free; callers verify the signature before using
    /// anything but the signer (see [`VerifiedRoster`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, ROSTER_LABEL)?;
        let workspace = WorkspaceId(r.id()?);
        let sequence = r.u64()?;
        let previous = EntryHash(r.array()?);
        let signer = AccountId(r.id()?);
        let record = match r.u8()? {
            KIND_MEMBER => Record::Member(read_member(&mut r)?),
            KIND_SYSTEM_KEY => Record::SystemKey(read_system_key(&mut r)?),
            KIND_REMOVED => Record::Removed(read_principal(&mut r)?),
            _ => return Err(DecodeError::Invalid("unknown record kind")),
        };
        r.finish()?;
        Ok(Self {
            workspace,
            sequence,
            previous,
            signer,
            record,
        })
    }
}

fn read_member(r: &mut Reader<'_>) -> Result<MemberRecord, DecodeError> {
    let account = AccountId(r.id()?);
    let email = r.str()?;
    if email.is_empty() || email.len() > MAX_EMAIL_LEN || email.chars().any(char::is_control) {
        return Err(DecodeError::Invalid("email"));
    }
    let identity_key = VerifyingKey::read(r)?;
    let x25519_key = read_x25519(r)?;
    let role = role_from_tag(r.u8()?)?;
    let access = match r.u8()? {
        ACCESS_ALL => Access::All,
        ACCESS_ONLY => {
            // Each item is a 4-byte length and 16 bytes.
            let n = r.count(20)?;
            let mut set = BTreeSet::new();
            for _ in 0..n {
                let e = EnvironmentId(r.id()?);
                if set.last().is_some_and(|last| *last >= e) {
                    return Err(DecodeError::Invalid("environments not in ascending order"));
                }
                set.insert(e);
            }
            Access::Only(set)
        }
        _ => return Err(DecodeError::Invalid("unknown access kind")),
    };
    Ok(MemberRecord {
        account,
        email: email.to_owned(),
        identity_key,
        x25519_key,
        role,
        access,
    })
}

fn read_system_key(r: &mut Reader<'_>) -> Result<SystemKeyRecord, DecodeError> {
    let key = ApiKeyId(r.id()?);
    let x25519_key = read_x25519(r)?;
    let signing_key = VerifyingKey::read(r)?;
    let permission = match r.u8()? {
        1 => Permission::Read,
        2 => Permission::ReadWrite,
        _ => return Err(DecodeError::Invalid("unknown permission")),
    };
    let creator = AccountId(r.id()?);
    // Each scope is at least a 20-byte project field and a 4-byte empty environment field.
    let n = r.count(24)?;
    let mut scopes = BTreeSet::new();
    for _ in 0..n {
        let project = ProjectId(r.id()?);
        let environment = match r.field()? {
            [] => None,
            bytes => Some(EnvironmentId(super::raw_id(
                bytes.try_into().map_err(|_| DecodeError::BadLength)?,
            ))),
        };
        let scope = Scope {
            project,
            environment,
        };
        if scopes.last().is_some_and(|last| *last >= scope) {
            return Err(DecodeError::Invalid("scopes not in ascending order"));
        }
        scopes.insert(scope);
    }
    Ok(SystemKeyRecord {
        key,
        x25519_key,
        signing_key,
        scopes,
        permission,
        creator,
    })
}
