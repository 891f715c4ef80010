//! Domain models shared by the CLI, the store and the server. Everything here is either public
//! metadata (names, ids, timestamps) or opaque sealed bytes ([`Blob`]): no plaintext value and no
//! unwrapped key ever appears in these types.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::{AccountId, ApiKeyId, EnvironmentId, ProjectId, WorkspaceId};

mod api_keys;
mod teams;

pub use api_keys::*;
pub use teams::*;

/// Milliseconds since the Unix epoch, UTC.
pub type Timestamp = i64;

/// Opaque bytes: a sealed envelope, a wrapped key or a public key. Serialized as standard base64
/// in human-readable formats (JSON) and as raw bytes in binary ones (postcard).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Blob(pub Vec<u8>);

impl Blob {
    /// The bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            STANDARD
                .decode(s.as_bytes())
                .map(Blob)
                .map_err(serde::de::Error::custom)
        } else {
            let v = <Vec<u8>>::deserialize(d)?;
            Ok(Blob(v))
        }
    }
}

/// The key-derivation function used to turn an encryption password into a key-encryption key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KdfAlgorithm {
    /// Argon2id version 0x13 (RFC 9106).
    Argon2id,
}

/// Argon2id parameters, stored beside the salt so they can be raised later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// The algorithm.
    pub algorithm: KdfAlgorithm,
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism (lanes).
    pub p_cost: u32,
    /// The random salt (16 bytes).
    pub salt: Blob,
}

/// An account's key material as it is stored: only sealed and public parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountKeys {
    /// How the key-encryption key is derived from the password.
    pub kdf: KdfParams,
    /// The master key sealed under the password-derived key-encryption key.
    pub master_key_by_password: Blob,
    /// The master key sealed under the key derived from the recovery code.
    pub master_key_by_recovery: Blob,
    /// The account's X25519 public key (32 bytes).
    pub public_key: Blob,
    /// The account's X25519 private key sealed under the master key.
    pub private_key_sealed: Blob,
}

/// An earlier seal of an account's master key: the KDF parameters and both sealed copies that a
/// password change or a recovery replaced (DESIGN.md §9.4). The store keeps the newest
/// [`KEY_HISTORY_KEPT`] per account so a bad write cannot lock the owner out: `klef recover`
/// falls back to one the recovery code still opens. The key pair never changes, so it is not
/// repeated here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousAccountKeys {
    /// How the key-encryption key was derived from the password then.
    pub kdf: KdfParams,
    /// The master key sealed under that password's key-encryption key.
    pub master_key_by_password: Blob,
    /// The master key sealed under the key derived from the recovery code.
    pub master_key_by_recovery: Blob,
    /// When this seal was replaced.
    pub replaced_at: Timestamp,
}

impl PreviousAccountKeys {
    /// The account's key material with this earlier seal in place of the current one
    /// (`current` gives the key pair, which never changes).
    #[must_use]
    pub fn with_key_pair(&self, current: &AccountKeys) -> AccountKeys {
        AccountKeys {
            kdf: self.kdf.clone(),
            master_key_by_password: self.master_key_by_password.clone(),
            master_key_by_recovery: self.master_key_by_recovery.clone(),
            public_key: current.public_key.clone(),
            private_key_sealed: current.private_key_sealed.clone(),
        }
    }
}

/// How many earlier seals of an account's master key the store keeps.
pub const KEY_HISTORY_KEPT: usize = 10;

/// An account: a person on a server, or the owner of a local vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The id.
    pub id: AccountId,
    /// The sign-in email (server accounts); `None` for a local vault.
    pub email: Option<String>,
    /// The sealed key material.
    pub keys: AccountKeys,
    /// The account's Ed25519 identity public key (32 bytes), derived by its client from the
    /// master key (DESIGN.md §9.1). `None` for an account made before identity keys until its
    /// client publishes it. A server's copy is never trusted: clients compare it with the key
    /// they derive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_key: Option<Blob>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A member's role in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full control, including deleting the workspace.
    Owner,
    /// Manages members, projects, environments and keys.
    Admin,
    /// Reads and writes secrets of the environments shared with them.
    Member,
}

impl Role {
    /// The lower-case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownName;

    /// The role [`Role::as_str`] names.
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(UnknownName::new("workspace role", s)),
        }
    }
}

/// A name that is none of a closed set's: what parsing a [`Role`] (or another such enum, from
/// its stored or typed name) fails with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownName {
    /// What was parsed, e.g. `workspace role`.
    pub kind: &'static str,
    /// The text that is not one of its names.
    pub value: String,
}

impl UnknownName {
    /// `value` is not a name of `kind`.
    #[must_use]
    pub fn new(kind: &'static str, value: &str) -> Self {
        Self {
            kind,
            value: value.to_owned(),
        }
    }
}

/// A workspace: the top-level grouping of projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// The id.
    pub id: WorkspaceId,
    /// Display name.
    pub name: String,
    /// Whether this is the account's personal workspace.
    pub personal: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A project: one application or repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// The id.
    pub id: ProjectId,
    /// The workspace that holds it.
    pub workspace_id: WorkspaceId,
    /// Display name, unique within its workspace.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// An environment: the unit of encryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// The id (bound into every value's associated data).
    pub id: EnvironmentId,
    /// The project that holds it.
    pub project_id: ProjectId,
    /// Short lower-case identifier such as `production`, unique within the project.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Incremented each time the environment key is rotated.
    pub key_version: i64,
    /// When it was created.
    pub created_at: Timestamp,
}

/// How the caller reaches an environment's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvironmentKeyAccess {
    /// Through the project key: the project key is wrapped to the caller's public key, the
    /// environment key is sealed under the project key.
    ViaProject {
        /// The project key, wrapped (HPKE) to the caller's public key.
        project_key: Blob,
        /// The environment key, sealed (AES-256-GCM) under the project key.
        environment_key: Blob,
    },
    /// Directly: the environment key wrapped (HPKE) to the caller's public key. Used for members
    /// restricted to some environments and for system API keys.
    Direct {
        /// The wrapped environment key.
        environment_key: Blob,
    },
}

/// One stored version of a secret. `ciphertext == None` is a tombstone (a delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersion {
    /// The environment it belongs to.
    pub environment_id: EnvironmentId,
    /// The key name (plaintext, listable).
    pub name: String,
    /// 1 for the first version, then +1 for each write of this name.
    pub version: i64,
    /// The value sealed under the environment key; `None` for a delete.
    pub ciphertext: Option<Blob>,
    /// Which environment key version sealed it.
    pub key_version: i64,
    /// When this version was written.
    pub created_at: Timestamp,
    /// Who wrote it (email, key label or `local`), when known.
    pub author: Option<String>,
}

/// A write of one name in a transactional batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretWrite {
    /// The key name.
    pub name: String,
    /// The version the writer last saw (0 = the name must not exist or be deleted); `None`
    /// writes unconditionally.
    pub expected_version: Option<i64>,
    /// The new sealed value, or `None` to delete.
    pub ciphertext: Option<Blob>,
}

/// A new environment, with its key sealed under the project key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEnvironment {
    /// The environment (id chosen by the client).
    pub environment: Environment,
    /// The environment key sealed under the project key.
    pub sealed_key: Blob,
    /// Its first manifest (revision 1, no values, the key's commitment), signed by the
    /// creating owner or admin. Absent only in older clients' requests and backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestRecord>,
}

/// One signed manifest of an environment (DESIGN.md §9.3) as stored and served: the exact
/// signed bytes and the Ed25519 signature (`klef_core::trust::manifest::SignedManifest`). The
/// store checks only the numbering (each write carries the next revision, so writers
/// serialise); clients verify the chain, every signature and every value against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestRecord {
    /// The manifest's revision (1 for the first), as the body states it.
    pub revision: u64,
    /// Whether it sets the environment's key or names (its first manifest, a rotation, a
    /// rename): a client with no head for the environment starts verifying at the newest such
    /// manifest. Only an owner or admin may sign one, which readers check; the flag only
    /// tells the server which manifests to serve.
    pub anchor: bool,
    /// The signed body.
    pub body: Blob,
    /// The signature (64 bytes).
    pub signature: Blob,
}

/// An environment's next manifest, sent with a change that covers several environments (a
/// project rename).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentManifest {
    /// The environment.
    pub environment_id: EnvironmentId,
    /// Its next manifest.
    pub manifest: ManifestRecord,
}

/// Which manifests a read of an environment asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestsSince {
    /// None (a caller that does not verify).
    Nothing,
    /// A client with no head: the newest anchor manifest, and the newest manifest if later.
    Anchor,
    /// Every manifest from this revision (the caller's head) on.
    Revision(u64),
}

/// A name whose latest version is a delete, with that version (a writer signs the next one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletedName {
    /// The key name.
    pub name: String,
    /// The version of the delete.
    pub version: i64,
}

/// An environment's current state as one read: the live values, the manifests asked for, and
/// the deleted names (when manifests were asked for).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentState {
    /// The latest live version of every name, sorted by name.
    pub secrets: Vec<SecretVersion>,
    /// The manifests asked for, ascending by revision.
    pub manifests: Vec<ManifestRecord>,
    /// The names whose latest version is a delete.
    pub deleted: Vec<DeletedName>,
    /// The caller's own personal overrides of the environment, if any (a member's read with
    /// manifests; never for a system key).
    pub personal: Option<PersonalRecord>,
}

/// One account's personal overrides of one environment as stored and served: sealed to that
/// account alone (`klef_core::trust::personal`), names included. The revision is bound in the
/// sealed bytes; readers refuse one lower than they have seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalRecord {
    /// The record's revision (1 for the first; each write is the next).
    pub revision: u64,
    /// The sealed map of names and values.
    pub sealed: Blob,
}

/// A new project with its first environments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProject {
    /// The project (id chosen by the client).
    pub project: Project,
    /// The project key wrapped to the creator's public key.
    pub project_key: Blob,
    /// Its environments.
    pub environments: Vec<NewEnvironment>,
}

/// Who holds a direct environment grant: the environment key wrapped to them, not reached
/// through a project key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    /// A member restricted to some environments.
    Account(AccountId),
    /// A system API key.
    ApiKey(ApiKeyId),
}

/// One direct grant of an environment, with the grantee's public key (what a rotation
/// re-wraps the new key to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    /// Who holds it.
    pub grantee: Grantee,
    /// Their public key (to wrap the new key to).
    pub public_key: Blob,
    /// The key version they hold.
    pub key_version: i64,
}

/// A live secret re-encrypted under the new environment key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatedSecret {
    /// The key name.
    pub name: String,
    /// The version that was re-encrypted (must still be the latest).
    pub expected_version: i64,
    /// The value sealed under the new key.
    pub ciphertext: Blob,
}

/// A direct grant re-wrapped for the new key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatedGrant {
    /// Who it is for (must be one of the current grantees).
    pub grantee: Grantee,
    /// The new environment key wrapped to their public key.
    pub wrapped_key: Blob,
}

/// A new key for an environment, everything sealed by the client: applied in one
/// transaction, `key_version` becomes `expected_key_version + 1`, the sealed key is replaced,
/// every live secret gets a new version re-encrypted under the new key, and the direct grants
/// are replaced. A stale key version, a secret changed since it was read, or a grantee set
/// that differs from the current one writes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    /// The key version the client rotated from.
    pub expected_key_version: i64,
    /// The new environment key sealed (`Aad::EnvironmentKey`) under the project key.
    pub sealed_key: Blob,
    /// Every live secret, re-encrypted.
    pub secrets: Vec<RotatedSecret>,
    /// Every current direct grant, re-wrapped (grantees may be left out to drop them).
    pub grants: Vec<RotatedGrant>,
    /// The environment's next manifest (an anchor: the new key version and commitment, the
    /// re-encrypted values), signed by the rotating owner or admin. Required once the
    /// environment has a manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestRecord>,
}

/// What a [`KeyRotation`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The key was rotated: the environment with its new key version.
    Rotated(Environment),
    /// Nothing was written: the rotation was based on a stale view (the reason says what).
    Stale {
        /// What changed, as a lower-case phrase.
        reason: String,
    },
}
