//! [`AnyBackend`]: the storage a command talks to, dispatching the
//! [`Backend`](klef_core::backend::Backend) trait to the concrete implementation. Commands only
//! use the trait, so a `Remote` variant (the server client) slots in without touching them.

use std::path::Path;

use anyhow::{Context as _, Result};
use klef_core::backend::{Backend, BackendResult};
use klef_core::backup::{Archive, Restore};
use klef_core::ids::{EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    Account, AccountKeys, ApiKeyGrant, ApiKeyRecipient, Environment, EnvironmentKeyAccess,
    GrantInfo, KeyRotation, NewEnvironment, NewProject, PreviousAccountKeys, Project,
    RotationOutcome, SecretVersion, SecretWrite, Workspace,
};
use klef_core::model::{EnvironmentManifest, EnvironmentState, ManifestRecord, ManifestsSince};
use klef_core::wire::SecretText;
use klef_store::LocalVault;

use crate::remote::RemoteBackend;

/// Every backend the CLI can use.
pub(crate) enum AnyBackend {
    /// The embedded `SQLite` vault.
    Local(LocalVault),
    /// A Klef server (server mode).
    Remote(Box<RemoteBackend>),
}

impl AnyBackend {
    /// Opens (or creates) the local vault at `path`, creating its directory 0700.
    pub(crate) async fn open_local(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            crate::dirs::create_private_dir(dir)?;
        }
        let vault = LocalVault::open(path)
            .await
            .with_context(|| format!("failed to open the local vault {}", path.display()))?;
        Ok(Self::Local(vault))
    }

    /// The server's URL in server mode, `None` for the local vault.
    pub(crate) fn server(&self) -> Option<&str> {
        match self {
            AnyBackend::Local(_) => None,
            AnyBackend::Remote(r) => Some(r.server()),
        }
    }

    /// The server client, or the "needs a server" error for the local vault.
    pub(crate) fn remote(&self, command: &str) -> Result<&RemoteBackend> {
        self.as_remote()
            .ok_or_else(|| crate::remote::needs_server(command).into())
    }

    /// The server client in server mode (the team commands that only a server has).
    pub(crate) fn as_remote(&self) -> Option<&RemoteBackend> {
        match self {
            AnyBackend::Remote(r) => Some(r),
            AnyBackend::Local(_) => None,
        }
    }

    /// Replaces the account's sealed keys (password change, recovery): on a server with the
    /// account password re-entered (`account_password`, which [`Self::approval`] asked for),
    /// on the local vault directly.
    pub(crate) async fn replace_account_keys_approved(
        &self,
        keys: &AccountKeys,
        account_password: Option<SecretText>,
    ) -> BackendResult<()> {
        match (self, account_password) {
            (AnyBackend::Remote(r), Some(pw)) => r.replace_keys(keys, pw).await,
            (b, _) => b.replace_account_keys(keys).await,
        }
    }

    /// The account password that approves replacing the account's sealed keys: asked on a
    /// server (`KLEF_ACCOUNT_PASSWORD` or a prompt), `None` for the local vault.
    pub(crate) fn approval(&self) -> Result<Option<SecretText>> {
        match self {
            AnyBackend::Remote(_) => Ok(Some(crate::remote::account_password_to_approve()?)),
            AnyBackend::Local(_) => Ok(None),
        }
    }

    /// The earlier seals of the account's master key, newest first (`klef recover` falls back
    /// to them when the current seal does not open).
    pub(crate) async fn account_key_history(&self) -> BackendResult<Vec<PreviousAccountKeys>> {
        match self {
            AnyBackend::Local(v) => v.account_key_history().await,
            AnyBackend::Remote(r) => r.account_key_history().await,
        }
    }

    /// The agent's name for the account's keys: the account id for the local vault,
    /// `<server url>#<account id>` on a server, so the two never collide.
    pub(crate) fn vault_id(&self, account: &Account) -> String {
        match self {
            AnyBackend::Local(_) => account.id.to_string(),
            AnyBackend::Remote(r) => crate::remote::session::vault_label(r.server(), &account.id),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            AnyBackend::Local($b) => $e,
            AnyBackend::Remote($b) => $e,
        }
    };
}

impl Backend for AnyBackend {
    async fn account(&self) -> BackendResult<Option<Account>> {
        dispatch!(self, b => b.account().await)
    }

    async fn create_account(&self, account: &Account, personal: &Workspace) -> BackendResult<()> {
        dispatch!(self, b => b.create_account(account, personal).await)
    }

    async fn replace_account_keys(&self, keys: &AccountKeys) -> BackendResult<()> {
        dispatch!(self, b => b.replace_account_keys(keys).await)
    }

    async fn workspaces(&self) -> BackendResult<Vec<Workspace>> {
        dispatch!(self, b => b.workspaces().await)
    }

    async fn create_workspace(&self, ws: &Workspace) -> BackendResult<()> {
        dispatch!(self, b => b.create_workspace(ws).await)
    }

    async fn projects(&self, ws: &WorkspaceId) -> BackendResult<Vec<Project>> {
        dispatch!(self, b => b.projects(ws).await)
    }

    async fn project(&self, id: &ProjectId) -> BackendResult<Project> {
        dispatch!(self, b => b.project(id).await)
    }

    async fn create_project(&self, new: &NewProject) -> BackendResult<()> {
        dispatch!(self, b => b.create_project(new).await)
    }

    async fn environments(&self, project: &ProjectId) -> BackendResult<Vec<Environment>> {
        dispatch!(self, b => b.environments(project).await)
    }

    async fn environment_recipients(
        &self,
        project: &ProjectId,
    ) -> BackendResult<Vec<ApiKeyRecipient>> {
        dispatch!(self, b => b.environment_recipients(project).await)
    }

    async fn create_environment(
        &self,
        new: &NewEnvironment,
        grants: &[ApiKeyGrant],
    ) -> BackendResult<()> {
        dispatch!(self, b => b.create_environment(new, grants).await)
    }

    async fn environment_with_key(
        &self,
        env: &EnvironmentId,
    ) -> BackendResult<(Environment, EnvironmentKeyAccess)> {
        dispatch!(self, b => b.environment_with_key(env).await)
    }

    async fn environment_grants(&self, env: &EnvironmentId) -> BackendResult<Vec<GrantInfo>> {
        dispatch!(self, b => b.environment_grants(env).await)
    }

    async fn rotate_environment_key(
        &self,
        env: &EnvironmentId,
        rotation: &KeyRotation,
    ) -> BackendResult<RotationOutcome> {
        dispatch!(self, b => b.rotate_environment_key(env, rotation).await)
    }

    async fn export_backup(&self, ws: &Workspace) -> BackendResult<Archive> {
        dispatch!(self, b => b.export_backup(ws).await)
    }

    async fn import_backup(&self, archive: &Archive, replace: bool) -> BackendResult<Restore> {
        dispatch!(self, b => b.import_backup(archive, replace).await)
    }

    async fn environment_key(&self, env: &EnvironmentId) -> BackendResult<EnvironmentKeyAccess> {
        dispatch!(self, b => b.environment_key(env).await)
    }

    async fn secrets(&self, env: &EnvironmentId) -> BackendResult<Vec<SecretVersion>> {
        dispatch!(self, b => b.secrets(env).await)
    }

    async fn secret_history(
        &self,
        env: &EnvironmentId,
        name: &str,
    ) -> BackendResult<Vec<SecretVersion>> {
        dispatch!(self, b => b.secret_history(env, name).await)
    }

    async fn environment_state(
        &self,
        env: &EnvironmentId,
        since: ManifestsSince,
    ) -> BackendResult<EnvironmentState> {
        dispatch!(self, b => b.environment_state(env, since).await)
    }

    async fn environment_changes(
        &self,
        env: &EnvironmentId,
        after: u64,
        known_personal: u64,
    ) -> BackendResult<Option<EnvironmentState>> {
        dispatch!(self, b => b.environment_changes(env, after, known_personal).await)
    }

    async fn write_secrets(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
        manifest: Option<&ManifestRecord>,
    ) -> BackendResult<Vec<SecretVersion>> {
        dispatch!(self, b => b.write_secrets(env, writes, manifest).await)
    }

    async fn promote_secrets(
        &self,
        env: &EnvironmentId,
        from: &EnvironmentId,
        writes: &[SecretWrite],
        manifest: Option<&ManifestRecord>,
    ) -> BackendResult<Vec<SecretVersion>> {
        dispatch!(self, b => b.promote_secrets(env, from, writes, manifest).await)
    }

    async fn rename_environment(
        &self,
        env: &EnvironmentId,
        slug: &str,
        name: &str,
        manifest: Option<&ManifestRecord>,
    ) -> BackendResult<()> {
        dispatch!(self, b => b.rename_environment(env, slug, name, manifest).await)
    }

    async fn delete_environment(&self, env: &EnvironmentId) -> BackendResult<()> {
        dispatch!(self, b => b.delete_environment(env).await)
    }

    async fn rename_project(
        &self,
        project: &ProjectId,
        name: &str,
        manifests: &[EnvironmentManifest],
    ) -> BackendResult<()> {
        dispatch!(self, b => b.rename_project(project, name, manifests).await)
    }

    async fn delete_project(&self, project: &ProjectId) -> BackendResult<()> {
        dispatch!(self, b => b.delete_project(project).await)
    }

    async fn rename_workspace(&self, ws: &WorkspaceId, name: &str) -> BackendResult<()> {
        dispatch!(self, b => b.rename_workspace(ws, name).await)
    }

    async fn delete_workspace(&self, ws: &WorkspaceId) -> BackendResult<()> {
        dispatch!(self, b => b.delete_workspace(ws).await)
    }

    async fn put_personal(
        &self,
        env: &EnvironmentId,
        sealed: &klef_core::model::Blob,
        expected_revision: u64,
        revision: u64,
    ) -> BackendResult<klef_core::model::PersonalRecord> {
        dispatch!(self, b => b.put_personal(env, sealed, expected_revision, revision).await)
    }
}
