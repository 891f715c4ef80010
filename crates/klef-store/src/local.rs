//! [`LocalVault`]: the embedded single-account vault, a [`Backend`] over a [`Store`] whose one
//! account is the caller.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use klef_core::backend::{Backend, BackendError, BackendResult};
use klef_core::backup::{Archive, ArchiveSource, Restore, Restored};
use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    Account, AccountKeys, ApiKeyGrant, ApiKeyRecipient, Blob, Environment, EnvironmentKeyAccess,
    EnvironmentManifest, EnvironmentState, GrantInfo, KeyRotation, ManifestRecord, ManifestsSince,
    NewEnvironment, NewProject, PersonalRecord, PreviousAccountKeys, Project, RotationOutcome,
    SecretVersion, SecretWrite, Workspace,
};

use crate::audit::{Actor, ActorKind, Audit};
use crate::backup::ImportMode;
use crate::environments::EnvironmentCreation;
use crate::reads::{self, Source};
use crate::rotate::RotateOutcome;
use crate::{Store, StoreError};

/// The author recorded on secret versions written through a [`LocalVault`].
pub const LOCAL_AUTHOR: &str = "local";

/// The local vault: one account (created by `klef init`), its workspaces, projects and secrets
/// in one `SQLite` file. Every [`Backend`] call acts as that account. Cheap to clone (the
/// handle is shared).
///
/// [`LocalVault::open`] on a vault this build can use as it is reads it through a blocking
/// connection on the calling thread (docs/decisions/0012-blocking-vault-reads.md) and opens the
/// sqlx [`Store`] only when the command writes; any other file is opened as a [`Store`] right
/// away, which creates, migrates or refuses it.
#[derive(Debug, Clone)]
pub struct LocalVault {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The vault file, to open the store on first write (`None` for [`LocalVault::new`], whose
    /// store is already open).
    path: Option<PathBuf>,
    /// The blocking reads, when the vault was up to date at open.
    reader: Option<Reader>,
    /// The pool, for writes (and reads when there is no reader).
    store: tokio::sync::OnceCell<Store>,
    owner: OnceLock<AccountId>,
    /// The account row as last read or written through this handle, so a command that needs
    /// both the owner's id and the account (every keyed command) reads the row once.
    account: Mutex<Option<Box<Account>>>,
}

impl LocalVault {
    /// Wraps an opened store.
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self::with(None, None, tokio::sync::OnceCell::from(store))
    }

    fn with(
        path: Option<PathBuf>,
        reader: Option<Reader>,
        store: tokio::sync::OnceCell<Store>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                reader,
                store,
                owner: OnceLock::new(),
                account: Mutex::new(None),
            }),
        }
    }

    /// Opens (or creates) the vault file at `path`; see [`Store::open_local`] and the type's
    /// documentation.
    #[cfg(feature = "sqlite")]
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(reader) = crate::blocking::Reader::open(path) {
            tracing::debug!(path = %path.display(), "opened the sqlite vault for reading");
            return Ok(Self::with(
                Some(path.to_owned()),
                Some(reader),
                tokio::sync::OnceCell::new(),
            ));
        }
        let store = Store::open_local(path).await?;
        Ok(Self::with(
            Some(path.to_owned()),
            None,
            tokio::sync::OnceCell::from(store),
        ))
    }

    /// Whether reads go straight to the file on the calling thread (the vault was up to date
    /// when opened) rather than through the store's pool.
    #[must_use]
    pub fn reads_directly(&self) -> bool {
        self.inner.reader.is_some()
    }

    /// The underlying store, opened now if the vault has only been read so far.
    pub async fn store(&self) -> Result<&Store, StoreError> {
        self.inner
            .store
            .get_or_try_init(|| async {
                let path = self
                    .inner
                    .path
                    .as_deref()
                    .ok_or_else(|| StoreError::Invalid {
                        reason: "the local vault has no path".into(),
                    })?;
                open_store(path).await
            })
            .await
    }

    /// Where reads run: the blocking reader when there is one, else the store.
    async fn source(&self) -> Result<Source<'_>, StoreError> {
        #[cfg(feature = "sqlite")]
        if let Some(reader) = &self.inner.reader {
            return Ok(Source::Blocking(reader));
        }
        Ok(Source::Pool(self.store().await?))
    }

    /// Ends a command's use of the vault just before the process exits; see
    /// [`Store::release_at_exit`]. Every clone of this handle must be dropped first (a clone
    /// still held is left as it is).
    pub async fn release_at_exit(self) {
        let Ok(inner) = Arc::try_unwrap(self.inner) else {
            return;
        };
        let Inner { store, reader, .. } = inner;
        if let Some(store) = store.into_inner() {
            store.release_at_exit().await;
            // Not closed either: the store's connection folded the log.
            #[cfg(feature = "sqlite")]
            std::mem::forget(reader);
            return;
        }
        #[cfg(feature = "sqlite")]
        if let Some(reader) = reader {
            reader.release_at_exit();
        }
        #[cfg(not(feature = "sqlite"))]
        let _ = reader;
    }

    /// The earlier seals of the owner's master key, newest first (see
    /// [`Store::account_key_history`]): `klef recover` falls back to them.
    pub async fn account_key_history(&self) -> BackendResult<Vec<PreviousAccountKeys>> {
        let owner = self.owner().await?;
        Ok(reads::account_key_history(self.source().await?, &owner).await?)
    }

    /// The vault owner's id; [`BackendError::NotFound`] before `create_account`.
    async fn owner(&self) -> BackendResult<AccountId> {
        if let Some(id) = self.inner.owner.get() {
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
        let account = reads::first_account(self.source().await?).await?;
        if let Some(a) = &account {
            self.inner.owner.get_or_init(|| a.id);
            *self.cached_account() = Some(Box::new(a.clone()));
        }
        Ok(account)
    }

    fn cached_account(&self) -> std::sync::MutexGuard<'_, Option<Box<Account>>> {
        // The guarded value is a plain cache: a panic while holding it cannot leave it torn.
        self.inner
            .account
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(feature = "sqlite")]
type Reader = crate::blocking::Reader;
/// No blocking reads without `SQLite`.
#[cfg(not(feature = "sqlite"))]
type Reader = std::convert::Infallible;

/// [`Store::open_local`], for a vault first opened for reading.
#[cfg(feature = "sqlite")]
async fn open_store(path: &Path) -> Result<Store, StoreError> {
    Store::open_local(path).await
}

#[cfg(not(feature = "sqlite"))]
async fn open_store(_path: &Path) -> Result<Store, StoreError> {
    Err(StoreError::UnsupportedUrl {
        reason: "this build has no SQLite support".into(),
    })
}

impl Backend for LocalVault {
    async fn account(&self) -> BackendResult<Option<Account>> {
        self.load_account().await
    }

    async fn create_account(&self, account: &Account, personal: &Workspace) -> BackendResult<()> {
        self.store()
            .await?
            .create_first_account(account, personal)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists { .. } => BackendError::AlreadyExists {
                    what: "the local vault's account".into(),
                },
                other => other.into(),
            })?;
        self.inner.owner.get_or_init(|| account.id);
        *self.cached_account() = Some(Box::new(account.clone()));
        Ok(())
    }

    async fn replace_account_keys(&self, keys: &AccountKeys) -> BackendResult<()> {
        let owner = self.owner().await?;
        // Read again on next use, whatever the outcome.
        *self.cached_account() = None;
        Ok(self
            .store()
            .await?
            .replace_account_keys(&owner, keys, None)
            .await?)
    }

    async fn workspaces(&self) -> BackendResult<Vec<Workspace>> {
        let owner = self.owner().await?;
        Ok(reads::workspaces_for(self.source().await?, &owner).await?)
    }

    async fn create_workspace(&self, ws: &Workspace) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self
            .store()
            .await?
            .create_workspace(&owner, ws, None, None)
            .await?)
    }

    async fn projects(&self, ws: &WorkspaceId) -> BackendResult<Vec<Project>> {
        let owner = self.owner().await?;
        Ok(reads::projects_visible_to(self.source().await?, &owner, ws).await?)
    }

    async fn project(&self, id: &ProjectId) -> BackendResult<Project> {
        let owner = self.owner().await?;
        Ok(reads::project_visible_to(self.source().await?, &owner, id).await?)
    }

    async fn create_project(&self, new: &NewProject) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self
            .store()
            .await?
            .create_project(&owner, new, None)
            .await?)
    }

    async fn environments(&self, project: &ProjectId) -> BackendResult<Vec<Environment>> {
        let owner = self.owner().await?;
        Ok(reads::environments_for(self.source().await?, &owner, project).await?)
    }

    async fn environment_recipients(
        &self,
        _project: &ProjectId,
    ) -> BackendResult<Vec<ApiKeyRecipient>> {
        // The local vault has no API keys.
        Ok(Vec::new())
    }

    async fn create_environment(
        &self,
        new: &NewEnvironment,
        grants: &[ApiKeyGrant],
    ) -> BackendResult<()> {
        let owner = self.owner().await?;
        match self
            .store()
            .await?
            .create_environment(&owner, new, grants, None)
            .await?
        {
            EnvironmentCreation::Created => Ok(()),
            // The local vault has no API keys to wrap the key to.
            EnvironmentCreation::StaleRecipients { reason } => Err(BackendError::Invalid(reason)),
        }
    }

    async fn environment_with_key(
        &self,
        env: &EnvironmentId,
    ) -> BackendResult<(Environment, EnvironmentKeyAccess)> {
        let owner = self.owner().await?;
        let source = self.source().await?;
        let access = reads::environment_key_for(source, &owner, env).await?;
        Ok((reads::environment(source, env).await?, access))
    }

    async fn environment_grants(&self, _env: &EnvironmentId) -> BackendResult<Vec<GrantInfo>> {
        // Direct grants go to team members and API keys, which the local vault has none of.
        Ok(Vec::new())
    }

    async fn rotate_environment_key(
        &self,
        env: &EnvironmentId,
        rotation: &KeyRotation,
    ) -> BackendResult<RotationOutcome> {
        let owner = self.owner().await?;
        let environment = reads::environment(self.source().await?, env).await?;
        let project =
            reads::project_visible_to(self.source().await?, &owner, &environment.project_id)
                .await?;
        let audit = Audit {
            workspace_id: Some(project.workspace_id),
            actor: Actor {
                kind: ActorKind::Account,
                id: Some(owner.to_string()),
                label: Some(LOCAL_AUTHOR.to_owned()),
            },
            action: "environment.rotate".into(),
            target: format!("environment {} ({})", environment.id, environment.slug),
        };
        let outcome = self
            .store()
            .await?
            .rotate_environment(env, rotation, LOCAL_AUTHOR, Some(&audit))
            .await?;
        Ok(match outcome {
            RotateOutcome::Rotated { environment, .. } => RotationOutcome::Rotated(environment),
            RotateOutcome::Stale { reason } => RotationOutcome::Stale { reason },
        })
    }

    async fn export_backup(&self, ws: &Workspace) -> BackendResult<Archive> {
        let producer = format!("klef {}", env!("CARGO_PKG_VERSION"));
        Ok(self
            .store()
            .await?
            .export_workspace(&ws.id, ArchiveSource::Local, &producer)
            .await?)
    }

    async fn import_backup(&self, archive: &Archive, replace: bool) -> BackendResult<Restore> {
        let store = self.store().await?;
        let contents = store.contents().await?;
        if !contents.is_empty() && !replace {
            return Ok(Restore::Occupied {
                projects: contents.projects,
                secret_versions: contents.secret_versions,
            });
        }
        let mode = if replace {
            ImportMode::Replace
        } else {
            ImportMode::IntoEmpty
        };
        let imported = store.import_archive(archive, mode).await;
        // The vault may now belong to the archive's account.
        *self.cached_account() = None;
        let summary = match imported {
            Ok(summary) => summary,
            // Someone wrote to the vault between the check and the import.
            Err(StoreError::AlreadyExists { .. }) if !replace => {
                let now = store.contents().await?;
                return Ok(Restore::Occupied {
                    projects: now.projects,
                    secret_versions: now.secret_versions,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let workspace = archive
            .workspaces
            .first()
            .cloned()
            .ok_or_else(|| BackendError::Invalid("the backup holds no workspace".into()))?;
        let members = archive
            .members
            .iter()
            .filter(|m| m.workspace_id == workspace.id)
            .count();
        Ok(Restore::Restored(Restored {
            workspace,
            replaced: replace && !contents.is_empty(),
            members: members as u64,
            projects: summary.projects as u64,
            environments: summary.environments as u64,
            secret_versions: summary.secret_versions as u64,
            notes: Vec::new(),
        }))
    }

    async fn environment_key(&self, env: &EnvironmentId) -> BackendResult<EnvironmentKeyAccess> {
        let owner = self.owner().await?;
        Ok(reads::environment_key_for(self.source().await?, &owner, env).await?)
    }

    async fn secrets(&self, env: &EnvironmentId) -> BackendResult<Vec<SecretVersion>> {
        Ok(reads::secrets(self.source().await?, env).await?)
    }

    async fn secret_history(
        &self,
        env: &EnvironmentId,
        name: &str,
    ) -> BackendResult<Vec<SecretVersion>> {
        Ok(reads::secret_history(self.source().await?, env, name).await?)
    }

    async fn environment_state(
        &self,
        env: &EnvironmentId,
        since: ManifestsSince,
    ) -> BackendResult<EnvironmentState> {
        let source = self.source().await?;
        let mut state = crate::manifests::environment_state(source, env, since).await?;
        if since != ManifestsSince::Nothing {
            let owner = self.owner().await?;
            state.personal = crate::personal::read(source, env, &owner).await?;
        }
        Ok(state)
    }

    async fn environment_changes(
        &self,
        env: &EnvironmentId,
        after: u64,
        known_personal: u64,
    ) -> BackendResult<Option<EnvironmentState>> {
        let source = self.source().await?;
        let owner = self.owner().await?;
        let personal = crate::personal::read(source, env, &owner).await?;
        Ok(crate::manifests::changes_for(source, env, after, personal, known_personal).await?)
    }

    async fn write_secrets(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
        manifest: Option<&ManifestRecord>,
    ) -> BackendResult<Vec<SecretVersion>> {
        Ok(self
            .store()
            .await?
            .write_secrets(env, writes, manifest, Some(LOCAL_AUTHOR), None)
            .await?)
    }

    async fn rename_environment(
        &self,
        env: &EnvironmentId,
        slug: &str,
        name: &str,
        manifest: Option<&ManifestRecord>,
    ) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self
            .store()
            .await?
            .rename_environment(&owner, env, slug, name, manifest, None)
            .await?)
    }

    async fn delete_environment(&self, env: &EnvironmentId) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self
            .store()
            .await?
            .delete_environment(&owner, env, None)
            .await?)
    }

    async fn rename_project(
        &self,
        project: &ProjectId,
        name: &str,
        manifests: &[EnvironmentManifest],
    ) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self
            .store()
            .await?
            .rename_project(&owner, project, name, manifests, None)
            .await?)
    }

    async fn delete_project(&self, project: &ProjectId) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self
            .store()
            .await?
            .delete_project(&owner, project, None)
            .await?)
    }

    async fn rename_workspace(&self, ws: &WorkspaceId, name: &str) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self
            .store()
            .await?
            .rename_workspace(&owner, ws, name, None)
            .await?)
    }

    async fn delete_workspace(&self, ws: &WorkspaceId) -> BackendResult<()> {
        let owner = self.owner().await?;
        Ok(self
            .store()
            .await?
            .delete_workspace(&owner, ws, None)
            .await?)
    }

    async fn put_personal(
        &self,
        env: &EnvironmentId,
        sealed: &Blob,
        expected_revision: u64,
        revision: u64,
    ) -> BackendResult<PersonalRecord> {
        let owner = self.owner().await?;
        Ok(self
            .store()
            .await?
            .put_personal(env, &owner, sealed, expected_revision, revision, None)
            .await?)
    }
}
