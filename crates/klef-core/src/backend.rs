//! The [`Backend`] trait: everything the CLI asks of storage, implemented by the local vault
//! (`klef-store` directly) and by the remote server client. It moves only metadata and sealed
//! bytes; encryption and decryption happen in the caller.

use std::future::Future;

use crate::backup::{Archive, Restore};
use crate::ids::{EnvironmentId, ProjectId, WorkspaceId};
use crate::model::{
    Account, AccountKeys, ApiKeyGrant, ApiKeyRecipient, Environment, EnvironmentKeyAccess,
    EnvironmentManifest, EnvironmentState, GrantInfo, KeyRotation, ManifestRecord, ManifestsSince,
    NewEnvironment, NewProject, PersonalRecord, Project, RotationOutcome, SecretVersion,
    SecretWrite, Workspace,
};

/// What kind of failure a [`BackendError`] is. The CLI decides exit codes and hints on the
/// kind alone, never on a message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// Something looked for does not exist (or is not visible to the caller).
    NotFound,
    /// Something with that name or id already exists.
    AlreadyExists,
    /// A write carried a stale expected version.
    Conflict,
    /// A credential was refused (a wrong password, a revoked or unknown key).
    Unauthenticated,
    /// No session, or the session expired or was revoked: signing in again helps.
    NotSignedIn,
    /// Signed in, but not allowed.
    PermissionDenied,
    /// The server (or database) could not be reached.
    Unreachable,
    /// The server accepted the connection (or was being connected to) but did not answer in
    /// time (`KLEF_TIMEOUT`).
    TimedOut,
    /// Too many attempts; the server asks to wait.
    RateLimited,
    /// The request was rejected as invalid.
    Invalid,
    /// The vault or database is not a Klef vault, or was written by a newer Klef; or the
    /// server is not a Klef server.
    Incompatible,
    /// Anything else.
    Other,
}

/// The lower-level cause of a [`BackendError::Failed`] (shared, so the error stays `Clone`).
pub type ErrorSource = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Errors a backend reports: a [`kind`](BackendError::kind), a lower-case message that never
/// contains secret material, and, for failures of the layer below, the cause as the error's
/// `source()` (rendered as `caused by:` lines, never flattened into the message).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The named thing does not exist (or is not visible to the caller).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `project "my-app"`.
        what: String,
    },
    /// Something with that name or id already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What collided.
        what: String,
    },
    /// A write carried a stale expected version.
    #[error("{name} was changed by {changed_by} (now version {actual}, you expected {expected})")]
    Conflict {
        /// The key name.
        name: String,
        /// The version the writer expected.
        expected: i64,
        /// The current version.
        actual: i64,
        /// Who wrote the current version (`someone else` when unknown).
        changed_by: String,
    },
    /// A credential was refused (says why: a revoked key, a wrong password).
    #[error("{0}")]
    Unauthenticated(String),
    /// No session, or the session expired or was revoked.
    #[error("not signed in or session expired")]
    NotSignedIn,
    /// Signed in, but not allowed.
    #[error("{0}")]
    PermissionDenied(String),
    /// The server could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// Too many attempts: the server's message, and how long it asks to wait.
    #[error("{message}; try again {}", RetryIn(*retry_after_secs))]
    RateLimited {
        /// What was limited, e.g. `too many failed sign-ins`.
        message: String,
        /// Seconds until the next attempt may succeed, when the server said.
        retry_after_secs: Option<u64>,
    },
    /// The request was rejected as invalid.
    #[error("{0}")]
    Invalid(String),
    /// The vault or database is not a Klef vault, or was written by a newer Klef.
    #[error("{0}")]
    Incompatible(String),
    /// Anything else (I/O, database).
    #[error("{0}")]
    Other(String),
    /// A failure of the layer below (file system, database, network) of the given kind, with
    /// its cause kept as the source.
    #[error("{message}")]
    Failed {
        /// What kind of failure it is.
        kind: BackendErrorKind,
        /// What failed, e.g. `failed to open /home/a/.local/share/klef/vault.db`.
        message: String,
        /// The cause.
        #[source]
        source: ErrorSource,
    },
}

impl BackendError {
    /// A [`BackendError::Failed`] of `kind`, keeping `source` as the cause.
    pub fn caused(
        kind: BackendErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BackendError::Failed {
            kind,
            message: message.into(),
            source: std::sync::Arc::new(source),
        }
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> BackendErrorKind {
        match self {
            BackendError::NotFound { .. } => BackendErrorKind::NotFound,
            BackendError::AlreadyExists { .. } => BackendErrorKind::AlreadyExists,
            BackendError::Conflict { .. } => BackendErrorKind::Conflict,
            BackendError::Unauthenticated(_) => BackendErrorKind::Unauthenticated,
            BackendError::NotSignedIn => BackendErrorKind::NotSignedIn,
            BackendError::PermissionDenied(_) => BackendErrorKind::PermissionDenied,
            BackendError::Unreachable(_) => BackendErrorKind::Unreachable,
            BackendError::RateLimited { .. } => BackendErrorKind::RateLimited,
            BackendError::Invalid(_) => BackendErrorKind::Invalid,
            BackendError::Incompatible(_) => BackendErrorKind::Incompatible,
            BackendError::Other(_) => BackendErrorKind::Other,
            BackendError::Failed { kind, .. } => *kind,
        }
    }
}

/// Two errors are equal when they are of the same kind and say the same (causes aside).
impl PartialEq for BackendError {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.to_string() == other.to_string()
    }
}

impl Eq for BackendError {}

/// `in 30 s`, `in 15 min`, or `later`.
struct RetryIn(Option<u64>);

impl std::fmt::Display for RetryIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("later"),
            Some(s) if s < 120 => write!(f, "in {s} s"),
            Some(s) if s < 2 * 3600 => write!(f, "in {} min", s.div_ceil(60)),
            Some(s) if s < 2 * 86_400 => write!(f, "in {} h", s.div_ceil(3600)),
            Some(s) => write!(f, "in {} days", s.div_ceil(86_400)),
        }
    }
}

/// Shorthand for backend results.
pub type BackendResult<T> = Result<T, BackendError>;

/// Storage as seen by one signed-in account (or the local vault's owner).
pub trait Backend: Send + Sync {
    /// The caller's account, or `None` when no account exists yet (a fresh local vault).
    fn account(&self) -> impl Future<Output = BackendResult<Option<Account>>> + Send;

    /// Creates the local account and its personal workspace in one transaction.
    fn create_account(
        &self,
        account: &Account,
        personal: &Workspace,
    ) -> impl Future<Output = BackendResult<()>> + Send;

    /// Replaces the caller's sealed key material (password change, recovery). Only the sealed
    /// master key copies and KDF parameters may change; the key pair must stay the same.
    fn replace_account_keys(
        &self,
        keys: &AccountKeys,
    ) -> impl Future<Output = BackendResult<()>> + Send;

    /// The workspaces the caller belongs to.
    fn workspaces(&self) -> impl Future<Output = BackendResult<Vec<Workspace>>> + Send;

    /// Creates a workspace owned by the caller.
    fn create_workspace(&self, ws: &Workspace) -> impl Future<Output = BackendResult<()>> + Send;

    /// Projects of a workspace visible to the caller.
    fn projects(
        &self,
        ws: &WorkspaceId,
    ) -> impl Future<Output = BackendResult<Vec<Project>>> + Send;

    /// One project by id.
    fn project(&self, id: &ProjectId) -> impl Future<Output = BackendResult<Project>> + Send;

    /// Creates a project with its environments in one transaction.
    fn create_project(&self, new: &NewProject) -> impl Future<Output = BackendResult<()>> + Send;

    /// The environments of a project visible to the caller.
    fn environments(
        &self,
        project: &ProjectId,
    ) -> impl Future<Output = BackendResult<Vec<Environment>>> + Send;

    /// The system API keys a new environment of `project` must have its key wrapped to (those
    /// scoped to every environment of it); the local vault has none.
    fn environment_recipients(
        &self,
        project: &ProjectId,
    ) -> impl Future<Output = BackendResult<Vec<ApiKeyRecipient>>> + Send;

    /// Adds an environment to a project, its key wrapped in `grants` to exactly the
    /// [`Backend::environment_recipients`], in one transaction.
    fn create_environment(
        &self,
        new: &NewEnvironment,
        grants: &[ApiKeyGrant],
    ) -> impl Future<Output = BackendResult<()>> + Send;

    /// The environment as stored now (its current key version) and how the caller reaches its
    /// key: where a key rotation starts.
    fn environment_with_key(
        &self,
        env: &EnvironmentId,
    ) -> impl Future<Output = BackendResult<(Environment, EnvironmentKeyAccess)>> + Send;

    /// The direct grants of an environment with each grantee's public key (a rotation
    /// re-wraps the new key to them); the local vault has none.
    fn environment_grants(
        &self,
        env: &EnvironmentId,
    ) -> impl Future<Output = BackendResult<Vec<GrantInfo>>> + Send;

    /// Applies a key rotation the caller sealed, in one transaction.
    fn rotate_environment_key(
        &self,
        env: &EnvironmentId,
        rotation: &KeyRotation,
    ) -> impl Future<Output = BackendResult<RotationOutcome>> + Send;

    /// Every stored row of a workspace as a backup archive, checked.
    fn export_backup(&self, ws: &Workspace) -> impl Future<Output = BackendResult<Archive>> + Send;

    /// Restores an archive the caller has checked, in one transaction: into an empty local
    /// vault (or over everything in it with `replace`), or on a server for the archive's owner
    /// (over an existing workspace with projects only with `replace`).
    fn import_backup(
        &self,
        archive: &Archive,
        replace: bool,
    ) -> impl Future<Output = BackendResult<Restore>> + Send;

    /// How the caller reaches the environment's key.
    fn environment_key(
        &self,
        env: &EnvironmentId,
    ) -> impl Future<Output = BackendResult<EnvironmentKeyAccess>> + Send;

    /// The latest live (not deleted) version of every secret in the environment, by name.
    fn secrets(
        &self,
        env: &EnvironmentId,
    ) -> impl Future<Output = BackendResult<Vec<SecretVersion>>> + Send;

    /// The environment's live values with the manifests asked for (and, with manifests, the
    /// deleted names), read in one snapshot: what a verifying reader or a writer starts from.
    fn environment_state(
        &self,
        env: &EnvironmentId,
        since: ManifestsSince,
    ) -> impl Future<Output = BackendResult<EnvironmentState>> + Send;

    /// What changed in the environment after signed revision `after`: `None` when `after` is
    /// still its newest revision; else the manifests from `after` on (as
    /// [`ManifestsSince::Revision`]), the live values written after it and the names deleted
    /// after it. A reader merges that into the state it verified at `after` and verifies the
    /// result like a full read (a value left out shows there). `known_personal` is the
    /// revision of the caller's personal overrides it holds (0: none): a different one on the
    /// server is a change too, and every answer carries the caller's record.
    fn environment_changes(
        &self,
        env: &EnvironmentId,
        after: u64,
        known_personal: u64,
    ) -> impl Future<Output = BackendResult<Option<EnvironmentState>>> + Send;

    /// Every version of one name, oldest first (tombstones included).
    fn secret_history(
        &self,
        env: &EnvironmentId,
        name: &str,
    ) -> impl Future<Output = BackendResult<Vec<SecretVersion>>> + Send;

    /// Gives an environment a new slug and display name (admins on a server). Values stay
    /// readable: they are bound to the environment's id.
    /// `manifest` is the environment's next manifest with the new slug (required once it has
    /// one).
    fn rename_environment(
        &self,
        env: &EnvironmentId,
        slug: &str,
        name: &str,
        manifest: Option<&ManifestRecord>,
    ) -> impl Future<Output = BackendResult<()>> + Send;

    /// Deletes an environment with every version of its secrets (admins on a server). The
    /// project's last environment is refused.
    fn delete_environment(
        &self,
        env: &EnvironmentId,
    ) -> impl Future<Output = BackendResult<()>> + Send;

    /// Renames a project (admins on a server).
    /// `manifests` are the next manifests, with the new name, of its environments that have
    /// signed state.
    fn rename_project(
        &self,
        project: &ProjectId,
        name: &str,
        manifests: &[EnvironmentManifest],
    ) -> impl Future<Output = BackendResult<()>> + Send;

    /// Deletes a project with its environments and every version of their secrets (admins on
    /// a server).
    fn delete_project(&self, project: &ProjectId)
    -> impl Future<Output = BackendResult<()>> + Send;

    /// Renames a workspace (admins on a server).
    fn rename_workspace(
        &self,
        ws: &WorkspaceId,
        name: &str,
    ) -> impl Future<Output = BackendResult<()>> + Send;

    /// Deletes a team workspace with everything in it (its owner on a server). A personal
    /// workspace is refused.
    fn delete_workspace(&self, ws: &WorkspaceId) -> impl Future<Output = BackendResult<()>> + Send;

    /// Applies all writes in one transaction: either all become new versions or none does
    /// (a stale `expected_version` fails the batch with [`BackendError::Conflict`]), with the
    /// environment's next `manifest` (required once it has one; a stale revision is a
    /// [`BackendError::Conflict`] too). `writes` may be empty when a manifest is published
    /// alone (sealing an environment made before manifests).
    fn write_secrets(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
        manifest: Option<&ManifestRecord>,
    ) -> impl Future<Output = BackendResult<Vec<SecretVersion>>> + Send;

    /// [`Backend::write_secrets`] of values `klef promote` copied from environment `from`: a
    /// server records the promotion in its audit log (the local vault keeps none).
    fn promote_secrets(
        &self,
        env: &EnvironmentId,
        from: &EnvironmentId,
        writes: &[SecretWrite],
        manifest: Option<&ManifestRecord>,
    ) -> impl Future<Output = BackendResult<Vec<SecretVersion>>> + Send {
        let _ = from;
        self.write_secrets(env, writes, manifest)
    }

    /// Replaces the caller's own personal overrides of `env` (read with
    /// [`Backend::environment_state`]) with `sealed` at revision `revision` (greater than
    /// `expected_revision`; normally `expected_revision + 1`), if `expected_revision` is the
    /// stored one (0: none yet); a stale one is [`BackendError::Conflict`]. Only a member who
    /// can read the environment; never another account's record, never a system key.
    fn put_personal(
        &self,
        env: &EnvironmentId,
        sealed: &crate::model::Blob,
        expected_revision: u64,
        revision: u64,
    ) -> impl Future<Output = BackendResult<PersonalRecord>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_sources() {
        let io = std::io::Error::other("disk on fire");
        let e = BackendError::caused(BackendErrorKind::Unreachable, "failed to read x", io);
        assert_eq!(e.kind(), BackendErrorKind::Unreachable);
        assert_eq!(e.to_string(), "failed to read x");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk on fire"));
        assert_eq!(
            BackendError::NotSignedIn.kind(),
            BackendErrorKind::NotSignedIn
        );
    }

    #[test]
    fn rate_limits_say_the_wait_once() {
        let e = |secs| BackendError::RateLimited {
            message: "too many failed sign-ins".into(),
            retry_after_secs: secs,
        };
        assert_eq!(
            e(Some(30)).to_string(),
            "too many failed sign-ins; try again in 30 s"
        );
        assert_eq!(
            e(Some(891)).to_string(),
            "too many failed sign-ins; try again in 15 min"
        );
        assert_eq!(
            e(None).to_string(),
            "too many failed sign-ins; try again later"
        );
    }

    proptest::proptest! {
        /// Any wait a server asks for renders, without overflow.
        #[test]
        fn any_wait_renders(secs in proptest::option::of(proptest::num::u64::ANY)) {
            let e = BackendError::RateLimited { message: "m".into(), retry_after_secs: secs };
            proptest::prop_assert!(e.to_string().starts_with("m; try again "));
        }
    }
}
