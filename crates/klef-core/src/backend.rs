//! The [`Backend`] trait: everything the CLI asks of storage, implemented by the local vault
//! (`klef-store` directly) and by the remote server client. It moves only metadata and sealed
//! bytes; encryption and decryption happen in the caller.

use std::future::Future;

use crate::backup::{Archive, Restore};
use crate::ids::{EnvironmentId, ProjectId, WorkspaceId};
use crate::model::{
    Account, AccountKeys, ApiKeyGrant, ApiKeyRecipient, Environment, EnvironmentKeyAccess,
    GrantInfo, KeyRotation, NewEnvironment, NewProject, Project, RotationOutcome, SecretVersion,
    SecretWrite, Workspace,
};

/// Errors a backend reports. Messages are lower-case and never contain secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// No valid session or key.
    #[error("{0}")]
    Unauthenticated(String),
    /// Signed in, but not allowed.
    #[error("{0}")]
    PermissionDenied(String),
    /// The server could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The request was rejected as invalid.
    #[error("{0}")]
    Invalid(String),
    /// The vault or database is not a Klef vault, or was written by a newer Klef.
    #[error("{0}")]
    Incompatible(String),
    /// Anything else (I/O, database).
    #[error("{0}")]
    Other(String),
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

    /// Every version of one name, oldest first (tombstones included).
    fn secret_history(
        &self,
        env: &EnvironmentId,
        name: &str,
    ) -> impl Future<Output = BackendResult<Vec<SecretVersion>>> + Send;

    /// Applies all writes in one transaction: either all become new versions or none does
    /// (a stale `expected_version` fails the batch with [`BackendError::Conflict`]).
    fn write_secrets(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
    ) -> impl Future<Output = BackendResult<Vec<SecretVersion>>> + Send;
}
