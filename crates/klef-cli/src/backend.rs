//! [`AnyBackend`]: the storage a command talks to, dispatching the
//! [`Backend`](klef_core::backend::Backend) trait to the concrete implementation. Commands only
//! use the trait, so a `Remote` variant (the server client) slots in without touching them.

use std::path::Path;

use anyhow::{Context as _, Result};
use klef_core::backend::{Backend, BackendResult};
use klef_core::ids::{EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    Account, AccountKeys, Environment, EnvironmentKeyAccess, NewEnvironment, NewProject, Project,
    SecretVersion, SecretWrite, Workspace,
};
use klef_store::LocalVault;

/// Every backend the CLI can use.
pub(crate) enum AnyBackend {
    /// The embedded `SQLite` vault.
    Local(LocalVault),
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
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            AnyBackend::Local($b) => $e,
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

    async fn create_environment(&self, new: &NewEnvironment) -> BackendResult<()> {
        dispatch!(self, b => b.create_environment(new).await)
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

    async fn write_secrets(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
    ) -> BackendResult<Vec<SecretVersion>> {
        dispatch!(self, b => b.write_secrets(env, writes).await)
    }
}
