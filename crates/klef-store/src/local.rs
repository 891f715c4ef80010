//! [`LocalVault`]: the embedded single-account vault, a [`Backend`] over a [`Store`] whose one
//! account is the caller.

use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use klef_core::backend::{Backend, BackendError, BackendResult};
use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    Account, AccountKeys, Environment, EnvironmentKeyAccess, NewEnvironment, NewProject, Project,
    SecretVersion, SecretWrite, Workspace,
};

use crate::{Store, StoreError};

/// The author recorded on secret versions written through a [`LocalVault`].
pub const LOCAL_AUTHOR: &str = "local";

/// The local vault: one account (created by `klef init`), its workspaces, projects and secrets
/// in one `SQLite` file. Every [`Backend`] call acts as that account.
#[derive(Debug)]
pub struct LocalVault {
    store: Store,
    owner: OnceLock<AccountId>,
    /// The account row as last read or written through this handle, so a command that needs
    /// both the owner's id and the account (every keyed command) reads the row once.
    account: Mutex<Option<Box<Account>>>,
}

impl LocalVault {
    /// Wraps an opened store.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self {
            store,
            owner: OnceLock::new(),
            account: Mutex::new(None),
        }
    }

    /// Opens (or creates) the vault file at `path`; see [`Store::open_local`].
    #[cfg(feature = "sqlite")]
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::new(Store::open_local(path).await?))
    }

    /// The underlying store.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The vault owner's id; [`BackendError::NotFound`] before `create_account`.
    async fn owner(&self) -> BackendResult<AccountId> {
        if let Some(id) = self.owner.get() {
            return Ok(*id);
        }
        let account = self
            .load_account()
            .await?
            .ok_or_else(|| BackendError::NotFound {
                what: "local account (run `klef init` first)".into(),
            })?;
        Ok(account.id)
    }

    /// The account row: cached, or read and cached (with the owner's id).
    async fn load_account(&self) -> BackendResult<Option<Account>> {
        let cached = self.cached_account().as_deref().cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        let account = self.store.first_account().await?;
        if let Some(a) = &account {
            self.owner.get_or_init(|| a.id);
            *self.cached_account() = Some(Box::new(a.clone()));
        }
        Ok(account)
    }

    fn cached_account(&self) -> std::sync::MutexGuard<'_, Option<Box<Account>>> {
        // The guarded value is a plain cache: a panic while holding it cannot leave it torn.
        self.account.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Backend for LocalVault {
    async fn account(&self) -> BackendResult<Option<Account>> {
        self.load_account().await
    }

    async fn create_account(&self, account: &Account, personal: &Workspace) -> BackendResult<()> {
        self.store
            .create_first_account(account, personal)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists { .. } => BackendError::AlreadyExists {
                    what: "the local vault's account".into(),
                },
                other => other.into(),
            })?;
        self.owner.get_or_init(|| account.id);
        *self.cached_account() = Some(Box::new(account.clone()));
        Ok(())
    }

    async fn replace_account_keys(&self, keys: &AccountKeys) -> BackendResult<()> {
        let owner = self.owner().await?;
        // Read again on next use, whatever the outcome.
        *self.cached_account() = None;
        Ok(self.store.replace_account_keys(&owner, keys).await?)
    }

    async fn workspaces(&self) -> BackendResult<Vec<Workspace>> {
        let owner = self.owner().await?;
        Ok(self.store.workspaces_for(&owner).await?)
    }

    async fn create_workspace(&self, ws: &Workspace) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self.store.create_workspace(&owner, ws).await?)
    }

    async fn projects(&self, ws: &WorkspaceId) -> BackendResult<Vec<Project>> {
        let owner = self.owner().await?;
        Ok(self.store.projects_for(&owner, ws).await?)
    }

    async fn project(&self, id: &ProjectId) -> BackendResult<Project> {
        let owner = self.owner().await?;
        Ok(self.store.project_for(&owner, id).await?)
    }

    async fn create_project(&self, new: &NewProject) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self.store.create_project(&owner, new).await?)
    }

    async fn environments(&self, project: &ProjectId) -> BackendResult<Vec<Environment>> {
        let owner = self.owner().await?;
        Ok(self.store.environments_for(&owner, project).await?)
    }

    async fn create_environment(&self, new: &NewEnvironment) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self.store.create_environment(&owner, new).await?)
    }

    async fn environment_key(&self, env: &EnvironmentId) -> BackendResult<EnvironmentKeyAccess> {
        let owner = self.owner().await?;
        Ok(self.store.environment_key_for(&owner, env).await?)
    }

    async fn secrets(&self, env: &EnvironmentId) -> BackendResult<Vec<SecretVersion>> {
        Ok(self.store.secrets(env).await?)
    }

    async fn secret_history(
        &self,
        env: &EnvironmentId,
        name: &str,
    ) -> BackendResult<Vec<SecretVersion>> {
        Ok(self.store.secret_history(env, name).await?)
    }

    async fn write_secrets(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
    ) -> BackendResult<Vec<SecretVersion>> {
        Ok(self
            .store
            .write_secrets(env, writes, Some(LOCAL_AUTHOR))
            .await?)
    }
}
