//! The backup archive: a versioned, self-describing, checksummed file holding one or more
//! workspaces as they are stored — metadata, wrapped keys and ciphertext only, never a
//! plaintext value or an unwrapped key. Pure encode/decode; reading and writing the file and
//! the database belong to the CLI and `klef-store`.
//!
//! # Layout (format version 1)
//!
//! | bytes | content |
//! |---|---|
//! | 12 | [`MAGIC`]: `89 4B 4C 45 46 42 41 4B 0D 0A 1A 0A` (`\x89KLEFBAK\r\n\x1a\n`) |
//! | 2 | format version, big-endian `u16` ([`FORMAT_VERSION`]) |
//! | 8 | body length *n*, big-endian `u64` |
//! | *n* | body: the [`Archive`] as UTF-8 JSON (binary fields standard base64) |
//! | 32 | SHA-256 over every preceding byte (magic, version, length and body) |
//!
//! The magic's first byte has its high bit set and it contains `\r\n` and `\x1a`, so a file
//! mangled by a 7-bit or newline-converting transfer is caught as foreign before anything else
//! (the PNG trick). The version is read right after the magic and before anything else, so a
//! later format may change everything that follows it (including the checksum) and still be
//! refused cleanly as [`BackupError::NewerVersion`] by this build.
//!
//! The checksum detects truncation and accidental corruption; it is not a signature. Integrity
//! against an attacker comes from the envelopes themselves: every wrapped key and value is
//! AEAD-sealed and bound to its account, project, environment and key name, so a modified
//! archive cannot make Klef accept a forged value, only fail to open one.
//!
//! # Server imports
//!
//! The body is not specific to the local vault: it lists accounts (public and sealed key
//! material, never a sign-in password hash), workspace members with their roles, per-member
//! wrapped project keys and direct environment grants, so the same archive can be imported into
//! a Klef server, where the accounts already exist and are matched by id. [`ArchiveSource`]
//! records where an archive came from.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use crate::model::{
    Account, Blob, Environment, Project, Role, SecretVersion, Timestamp, Workspace,
};
use crate::names::validate_key_name;

/// The first 12 bytes of every backup archive.
pub const MAGIC: [u8; 12] = *b"\x89KLEFBAK\r\n\x1a\n";

/// The archive format this build writes and the newest one it reads.
pub const FORMAT_VERSION: u16 = 1;

/// Length of the fixed header: magic, version, body length.
const HEADER_LEN: usize = MAGIC.len() + 2 + 8;

/// Length of the SHA-256 trailer.
const CHECKSUM_LEN: usize = 32;

/// Why bytes could not be read as a backup archive. Every message is one line and names no
/// content of the archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The file does not start with [`MAGIC`]: it is not a Klef backup.
    #[error("not a Klef backup file (unknown file signature)")]
    NotABackup,
    /// The archive was written by a newer Klef with a format this build cannot read.
    #[error(
        "the backup was written by a newer version of Klef (archive format {found}, this klef reads up to {supported})"
    )]
    NewerVersion {
        /// The archive's format version.
        found: u16,
        /// [`FORMAT_VERSION`].
        supported: u16,
    },
    /// The format version is 0, which no Klef ever wrote.
    #[error("the backup has an invalid format version {0}")]
    InvalidVersion(u16),
    /// The file ends before the length its header announces.
    #[error("the backup file is truncated ({found} bytes, expected {expected})")]
    Truncated {
        /// Bytes present.
        found: u64,
        /// Bytes the header announces.
        expected: u64,
    },
    /// The file goes on after the checksum.
    #[error("the backup file has {0} unexpected bytes after its end")]
    TrailingData(u64),
    /// The checksum does not match: the file was corrupted (or altered).
    #[error("the backup file is corrupted (checksum mismatch)")]
    ChecksumMismatch,
    /// The body passed the checksum but is not a valid archive (written by a broken tool).
    #[error("the backup's contents are malformed: {0}")]
    Malformed(String),
    /// The body is well-formed but refers to things it does not contain.
    #[error("the backup's contents are inconsistent: {0}")]
    Inconsistent(String),
}

/// Where an archive was exported from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ArchiveSource {
    /// The embedded local vault of one account.
    Local,
    /// A Klef server.
    Server {
        /// The server's base URL.
        url: String,
    },
}

/// One workspace membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedMember {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The member.
    pub account_id: AccountId,
    /// Their role.
    pub role: Role,
    /// When they joined.
    pub created_at: Timestamp,
}

/// A project key wrapped (HPKE) to one member's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedProjectKey {
    /// The project.
    pub project_id: ProjectId,
    /// The member it is wrapped to.
    pub account_id: AccountId,
    /// The wrapped project key.
    pub wrapped_key: Blob,
    /// When it was wrapped.
    pub created_at: Timestamp,
}

/// An environment with its key sealed under the project key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedEnvironment {
    /// The environment.
    pub environment: Environment,
    /// Its key sealed (AES-256-GCM) under the project key.
    pub sealed_key: Blob,
}

/// Who a direct environment grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GranteeKind {
    /// An account (a member restricted to some environments).
    Account,
    /// A system API key.
    ApiKey,
}

impl GranteeKind {
    /// The stored name (`account` or `api_key`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            GranteeKind::Account => "account",
            GranteeKind::ApiKey => "api_key",
        }
    }
}

impl std::str::FromStr for GranteeKind {
    type Err = crate::model::UnknownName;

    /// The kind [`GranteeKind::as_str`] names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "account" => Ok(GranteeKind::Account),
            "api_key" => Ok(GranteeKind::ApiKey),
            _ => Err(crate::model::UnknownName::new("grantee kind", s)),
        }
    }
}

/// An environment key wrapped directly to an account or an API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedGrant {
    /// The environment.
    pub environment_id: EnvironmentId,
    /// Account or API key.
    pub grantee_kind: GranteeKind,
    /// The account id or API-key id.
    pub grantee_id: String,
    /// The wrapped environment key.
    pub wrapped_key: Blob,
    /// The environment key version it wraps.
    pub key_version: i64,
    /// When it was granted.
    pub created_at: Timestamp,
}

/// One signed manifest of an archived environment (DESIGN.md §9.3), as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedManifest {
    /// The environment.
    pub environment_id: EnvironmentId,
    /// The manifest, as stored.
    pub manifest: crate::model::ManifestRecord,
}

/// One signed roster entry of an archived workspace (DESIGN.md §9.2), as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedRosterEntry {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The entry, as stored.
    pub entry: crate::model::RosterEntry,
}

/// One member's personal overrides of an archived environment (decision 0021), as stored:
/// sealed to that member alone, so the archive (and whoever holds it) can neither read nor
/// alter them; a restore puts the record back so the member's pinned revision still matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedPersonal {
    /// The environment.
    pub environment_id: EnvironmentId,
    /// The member whose overrides these are.
    pub account_id: AccountId,
    /// The record, as stored (revision and sealed bytes).
    pub record: crate::model::PersonalRecord,
    /// When it was last written.
    pub updated_at: Timestamp,
}

/// The body of a backup: every stored row of the archived workspaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// When it was exported.
    pub created_at: Timestamp,
    /// The program that wrote it, e.g. `klef 0.1.0`.
    pub producer: String,
    /// Where it was exported from.
    pub source: ArchiveSource,
    /// The accounts holding keys in it (sealed and public key material only).
    pub accounts: Vec<Account>,
    /// The workspaces.
    pub workspaces: Vec<Workspace>,
    /// Their members.
    pub members: Vec<ArchivedMember>,
    /// Their projects.
    pub projects: Vec<Project>,
    /// Project keys wrapped to members.
    pub project_keys: Vec<ArchivedProjectKey>,
    /// The projects' environments.
    pub environments: Vec<ArchivedEnvironment>,
    /// Direct environment-key grants.
    pub grants: Vec<ArchivedGrant>,
    /// Every stored version of every secret, deletes (tombstones) included.
    pub secrets: Vec<SecretVersion>,
    /// Every signed manifest of the environments, ascending by revision per environment (absent
    /// in backups made before signed manifests, and for environments not sealed yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<ArchivedManifest>,
    /// The workspaces' signed rosters, ascending by sequence (absent in backups made before
    /// signed rosters, and for workspaces without one, such as the local vault's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roster: Vec<ArchivedRosterEntry>,
    /// Members' personal overrides, one sealed record per environment and member (absent in
    /// backups made before they were archived, and when nobody has any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub personal: Vec<ArchivedPersonal>,
}

impl Archive {
    /// Checks that every reference points inside the archive (members and project keys to its
    /// accounts, projects to its workspaces, environments to its projects, grants and secrets
    /// to its environments), that ids are unique, and that names and versions are valid.
    pub fn validate(&self) -> Result<(), BackupError> {
        use std::collections::HashSet;

        let bad = |what: String| Err(BackupError::Inconsistent(what));
        let accounts: HashSet<AccountId> = self.accounts.iter().map(|a| a.id).collect();
        if accounts.len() != self.accounts.len() {
            return bad("an account appears twice".into());
        }
        let workspaces: HashSet<WorkspaceId> = self.workspaces.iter().map(|w| w.id).collect();
        if workspaces.len() != self.workspaces.len() {
            return bad("a workspace appears twice".into());
        }
        let mut members = HashSet::new();
        for m in &self.members {
            if !workspaces.contains(&m.workspace_id) || !accounts.contains(&m.account_id) {
                return bad("a membership refers to a missing workspace or account".into());
            }
            if !members.insert((m.workspace_id, m.account_id)) {
                return bad("a membership appears twice".into());
            }
        }
        let mut projects = HashSet::new();
        for p in &self.projects {
            if !workspaces.contains(&p.workspace_id) {
                return bad(format!("project {} refers to a missing workspace", p.id));
            }
            if !projects.insert(p.id) {
                return bad(format!("project {} appears twice", p.id));
            }
        }
        let mut project_keys = HashSet::new();
        for k in &self.project_keys {
            if !projects.contains(&k.project_id) || !accounts.contains(&k.account_id) {
                return bad("a project key refers to a missing project or account".into());
            }
            if !project_keys.insert((k.project_id, k.account_id)) {
                return bad("a project key appears twice".into());
            }
        }
        let mut environments = HashSet::new();
        for e in &self.environments {
            let env = &e.environment;
            if !projects.contains(&env.project_id) {
                return bad(format!(
                    "environment {} refers to a missing project",
                    env.id
                ));
            }
            if env.key_version < 1 {
                return bad(format!("environment {} has key version below 1", env.id));
            }
            if !environments.insert(env.id) {
                return bad(format!("environment {} appears twice", env.id));
            }
        }
        for g in &self.grants {
            if !environments.contains(&g.environment_id) {
                return bad("a grant refers to a missing environment".into());
            }
            if g.key_version < 1 {
                return bad("a grant has key version below 1".into());
            }
        }
        let mut versions = HashSet::new();
        for s in &self.secrets {
            if !environments.contains(&s.environment_id) {
                return bad("a secret refers to a missing environment".into());
            }
            if validate_key_name(&s.name).is_err() {
                return bad("a secret has an invalid name".into());
            }
            if s.version < 1 || s.key_version < 1 {
                return bad(format!("secret {} has a version below 1", s.name));
            }
            if !versions.insert((s.environment_id, s.name.as_str(), s.version)) {
                return bad(format!("version {} of {} appears twice", s.version, s.name));
            }
        }
        // Manifests: per environment, revisions 1, 2, … in order (the chain itself is
        // verified by the importing client, which holds the keys to check it against).
        let mut next_revision: std::collections::HashMap<EnvironmentId, u64> =
            std::collections::HashMap::new();
        for m in &self.manifests {
            if !environments.contains(&m.environment_id) {
                return bad("a manifest refers to a missing environment".into());
            }
            let expected = next_revision.entry(m.environment_id).or_insert(1);
            if m.manifest.revision != *expected {
                return bad(format!(
                    "the manifests of environment {} do not run 1, 2, … in order",
                    m.environment_id
                ));
            }
            *expected += 1;
        }
        let mut next_sequence: std::collections::HashMap<WorkspaceId, u64> =
            std::collections::HashMap::new();
        for e in &self.roster {
            if !workspaces.contains(&e.workspace_id) {
                return bad("a roster entry refers to a missing workspace".into());
            }
            let expected = next_sequence.entry(e.workspace_id).or_insert(0);
            if e.entry.sequence != *expected {
                return bad(format!(
                    "the roster of workspace {} does not run 0, 1, … in order",
                    e.workspace_id
                ));
            }
            *expected += 1;
        }
        let mut personal = HashSet::new();
        for p in &self.personal {
            if !environments.contains(&p.environment_id) || !accounts.contains(&p.account_id) {
                return bad(
                    "a member's personal overrides refer to a missing environment or account"
                        .into(),
                );
            }
            if p.record.revision < 1 || p.record.sealed.as_bytes().is_empty() {
                return bad("a member's personal overrides have revision 0 or no content".into());
            }
            if !personal.insert((p.environment_id, p.account_id)) {
                return bad("a member's personal overrides of an environment appear twice".into());
            }
        }
        Ok(())
    }
}

/// Encodes an archive in the current format ([`FORMAT_VERSION`]).
#[must_use]
pub fn encode(archive: &Archive) -> Vec<u8> {
    // Serializing plain data with string keys into a Vec cannot fail.
    let body = serde_json::to_vec(archive).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + CHECKSUM_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(&body);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Reads only the signature and the format version, so a caller can say early whether the
/// bytes are a backup this build can read.
pub fn read_version(bytes: &[u8]) -> Result<u16, BackupError> {
    let Some(magic) = bytes.get(..MAGIC.len()) else {
        // A prefix of the magic is a truncated backup; anything else is foreign.
        return if !bytes.is_empty() && MAGIC.starts_with(bytes) {
            Err(BackupError::Truncated {
                found: bytes.len() as u64,
                expected: (HEADER_LEN + CHECKSUM_LEN) as u64,
            })
        } else {
            Err(BackupError::NotABackup)
        };
    };
    if magic != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let Some(&[hi, lo]) = bytes.get(MAGIC.len()..MAGIC.len() + 2) else {
        return Err(BackupError::Truncated {
            found: bytes.len() as u64,
            expected: (HEADER_LEN + CHECKSUM_LEN) as u64,
        });
    };
    match u16::from_be_bytes([hi, lo]) {
        0 => Err(BackupError::InvalidVersion(0)),
        v if v > FORMAT_VERSION => Err(BackupError::NewerVersion {
            found: v,
            supported: FORMAT_VERSION,
        }),
        v => Ok(v),
    }
}

/// Decodes and checks an archive: signature, version, length, checksum, then the JSON body and
/// its internal consistency ([`Archive::validate`]).
pub fn decode(bytes: &[u8]) -> Result<Archive, BackupError> {
    read_version(bytes)?;
    let total = bytes.len() as u64;
    let Some(len_bytes) = bytes.get(MAGIC.len() + 2..HEADER_LEN) else {
        return Err(BackupError::Truncated {
            found: total,
            expected: (HEADER_LEN + CHECKSUM_LEN) as u64,
        });
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(len_bytes);
    let body_len = u64::from_be_bytes(len);
    let expected = body_len
        .checked_add((HEADER_LEN + CHECKSUM_LEN) as u64)
        .ok_or(BackupError::Truncated {
            found: total,
            expected: u64::MAX,
        })?;
    if total < expected {
        return Err(BackupError::Truncated {
            found: total,
            expected,
        });
    }
    if total > expected {
        return Err(BackupError::TrailingData(total - expected));
    }
    // `total == expected` fits in usize because `bytes` is in memory.
    let checked_end = bytes.len() - CHECKSUM_LEN;
    let (checked, checksum) = bytes.split_at(checked_end);
    let digest = Sha256::digest(checked);
    if !crate::crypto::constant_time_eq(&digest, checksum) {
        return Err(BackupError::ChecksumMismatch);
    }
    let archive: Archive = serde_json::from_slice(&checked[HEADER_LEN..])
        .map_err(|e| BackupError::Malformed(e.to_string()))?;
    archive.validate()?;
    Ok(archive)
}

/// What restoring an archive did ([`Backend::import_backup`](crate::backend::Backend)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// The archive was restored.
    Restored(Restored),
    /// Nothing was written: the local vault already holds data and replacing it was not
    /// asked for.
    Occupied {
        /// Projects it holds.
        projects: i64,
        /// Secret versions it holds.
        secret_versions: i64,
    },
}

/// A restored archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The restored workspace as the storage now has it.
    pub workspace: Workspace,
    /// Whether existing contents were replaced.
    pub replaced: bool,
    /// Members restored (a server's restore; the caller included).
    pub members: u64,
    /// Projects restored.
    pub projects: u64,
    /// Environments restored.
    pub environments: u64,
    /// Secret versions restored (history and deletes included).
    pub secret_versions: u64,
    /// What was left out or changed, one sentence each (members skipped, grants dropped).
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{AccountKeys, KdfAlgorithm, KdfParams};

    fn sample(secrets: &[(&str, Option<&[u8]>)]) -> Archive {
        let account = AccountId::random();
        let ws = WorkspaceId::random();
        let project = ProjectId::random();
        let env = EnvironmentId::random();
        Archive {
            created_at: 1_700_000_000_000,
            producer: "klef test".into(),
            source: ArchiveSource::Local,
            accounts: vec![Account {
                id: account,
                email: None,
                keys: AccountKeys {
                    kdf: KdfParams {
                        algorithm: KdfAlgorithm::Argon2id,
                        m_cost_kib: 65536,
                        t_cost: 3,
                        p_cost: 4,
                        salt: Blob(vec![7; 16]),
                    },
                    master_key_by_password: Blob(vec![1; 61]),
                    master_key_by_recovery: Blob(vec![2; 61]),
                    public_key: Blob(vec![3; 32]),
                    private_key_sealed: Blob(vec![4; 61]),
                },
                identity_key: None,
                created_at: 1,
            }],
            workspaces: vec![Workspace {
                id: ws,
                name: "Personal".into(),
                personal: true,
                created_at: 2,
            }],
            members: vec![ArchivedMember {
                workspace_id: ws,
                account_id: account,
                role: Role::Owner,
                created_at: 2,
            }],
            projects: vec![Project {
                id: project,
                workspace_id: ws,
                name: "api".into(),
                created_at: 3,
            }],
            project_keys: vec![ArchivedProjectKey {
                project_id: project,
                account_id: account,
                wrapped_key: Blob(vec![5; 81]),
                created_at: 3,
            }],
            environments: vec![ArchivedEnvironment {
                environment: Environment {
                    id: env,
                    project_id: project,
                    slug: "development".into(),
                    name: "Development".into(),
                    key_version: 1,
                    created_at: 4,
                },
                sealed_key: Blob(vec![6; 61]),
            }],
            grants: vec![ArchivedGrant {
                environment_id: env,
                grantee_kind: GranteeKind::Account,
                grantee_id: account.to_string(),
                wrapped_key: Blob(vec![8; 81]),
                key_version: 1,
                created_at: 5,
            }],
            secrets: secrets
                .iter()
                .enumerate()
                .map(|(i, (name, ct))| SecretVersion {
                    environment_id: env,
                    name: (*name).to_owned(),
                    version: i64::try_from(i).unwrap() + 1,
                    ciphertext: ct.map(|c| Blob(c.to_vec())),
                    key_version: 1,
                    created_at: 6,
                    author: Some("local".into()),
                })
                .collect(),
            manifests: Vec::new(),
            roster: Vec::new(),
            personal: vec![ArchivedPersonal {
                environment_id: env,
                account_id: account,
                record: crate::model::PersonalRecord {
                    revision: 2,
                    sealed: Blob(vec![9; 48]),
                },
                updated_at: 7,
            }],
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let archive = sample(&[("A", Some(b"ct")), ("A", None)]);
        let bytes = encode(&archive);
        assert_eq!(&bytes[..12], &MAGIC);
        assert_eq!(&bytes[12..14], &[0, 1]);
        let body_len = u64::from_be_bytes(bytes[14..22].try_into().unwrap());
        assert_eq!(bytes.len() as u64, 22 + body_len + 32);
        assert_eq!(
            &bytes[bytes.len() - 32..],
            Sha256::digest(&bytes[..bytes.len() - 32]).as_slice()
        );
        assert_eq!(decode(&bytes).unwrap(), archive);
        assert_eq!(read_version(&bytes), Ok(1));
    }

    #[test]
    fn foreign_files_are_not_backups() {
        for foreign in [
            &b""[..],
            b"SQLite format 3\0",
            b"{\"json\": true}",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        ] {
            assert_eq!(decode(foreign), Err(BackupError::NotABackup));
        }
    }

    #[test]
    fn versions_are_checked_before_anything_else() {
        let mut bytes = encode(&sample(&[]));
        bytes[13] = 2;
        assert_eq!(
            decode(&bytes),
            Err(BackupError::NewerVersion {
                found: 2,
                supported: 1
            })
        );
        // Even a newer file with a different layout after the version is named as newer.
        let mut newer = MAGIC.to_vec();
        newer.extend([0xff, 0xff, 1, 2, 3]);
        assert!(matches!(
            decode(&newer),
            Err(BackupError::NewerVersion { found: 0xffff, .. })
        ));
        bytes[13] = 0;
        assert_eq!(decode(&bytes), Err(BackupError::InvalidVersion(0)));
    }

    #[test]
    fn truncation_and_trailing_bytes() {
        let bytes = encode(&sample(&[("K", Some(b"x"))]));
        for cut in [1, 5, 12, 13, 20, 22, 40, bytes.len() - 1] {
            assert!(
                matches!(decode(&bytes[..cut]), Err(BackupError::Truncated { .. })),
                "cut at {cut}: {:?}",
                decode(&bytes[..cut])
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(BackupError::TrailingData(1)));
    }

    #[test]
    fn a_body_that_passes_the_checksum_is_still_validated() {
        let mut archive = sample(&[("OK", Some(b"x"))]);
        archive.secrets[0].environment_id = EnvironmentId::random();
        assert!(matches!(
            decode(&encode(&archive)),
            Err(BackupError::Inconsistent(_))
        ));
        let mut archive = sample(&[("1BAD", Some(b"x"))]);
        assert!(matches!(
            archive.validate(),
            Err(BackupError::Inconsistent(_))
        ));
        archive.secrets.clear();
        archive.projects.push(archive.projects[0].clone());
        assert!(matches!(
            archive.validate(),
            Err(BackupError::Inconsistent(_))
        ));

        // Personal overrides: of an environment and a member in the archive, once each, numbered.
        let mut archive = sample(&[]);
        archive.personal[0].account_id = AccountId::random();
        assert!(matches!(
            archive.validate(),
            Err(BackupError::Inconsistent(_))
        ));
        let mut archive = sample(&[]);
        archive.personal.push(archive.personal[0].clone());
        assert!(matches!(
            archive.validate(),
            Err(BackupError::Inconsistent(_))
        ));
        let mut archive = sample(&[]);
        archive.personal[0].record.revision = 0;
        assert!(matches!(
            archive.validate(),
            Err(BackupError::Inconsistent(_))
        ));
        // An archive without any (made before they were archived) reads as none.
        let mut archive = sample(&[]);
        archive.personal.clear();
        let body = serde_json::to_string(&archive).unwrap();
        assert!(!body.contains("personal\":["), "{body}");
        assert_eq!(decode(&encode(&archive)).unwrap().personal, Vec::new());

        // Valid framing around a body that is not an archive.
        let body = br#"{"hello":"world"}"#;
        let mut bytes = MAGIC.to_vec();
        bytes.extend(1u16.to_be_bytes());
        bytes.extend((body.len() as u64).to_be_bytes());
        bytes.extend(body);
        let digest = Sha256::digest(&bytes);
        bytes.extend(digest);
        assert!(matches!(decode(&bytes), Err(BackupError::Malformed(_))));
    }

    #[test]
    fn errors_are_one_line_and_name_no_content() {
        let errors = [
            BackupError::NotABackup,
            BackupError::NewerVersion {
                found: 9,
                supported: 1,
            },
            BackupError::Truncated {
                found: 3,
                expected: 99,
            },
            BackupError::ChecksumMismatch,
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains('\n'));
            assert!(text.starts_with(|c: char| c.is_lowercase()) || text.starts_with("not"));
        }
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            values in proptest::collection::vec(
                ("[A-Z_][A-Z0-9_]{0,12}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))),
                0..20,
            ),
        ) {
            let refs: Vec<(&str, Option<&[u8]>)> =
                values.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
            let archive = sample(&refs);
            prop_assert_eq!(decode(&encode(&archive)).unwrap(), archive);
        }

        #[test]
        fn any_flipped_bit_is_refused(bit in any::<proptest::sample::Index>()) {
            let archive = sample(&[("A", Some(b"ciphertext")), ("B", None)]);
            let mut bytes = encode(&archive);
            let i = bit.index(bytes.len() * 8);
            bytes[i / 8] ^= 1 << (i % 8);
            prop_assert!(decode(&bytes).is_err());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let mut framed = MAGIC.to_vec();
            framed.extend(&bytes);
            let _ = decode(&framed);
        }
    }
}
