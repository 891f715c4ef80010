//! Server mode: [`RemoteBackend`] implements [`Backend`] over the Klef server's JSON API
//! (`klef_core::wire`), so every command that works on the local vault works against a server.
//! Only metadata and sealed bytes cross the wire; all crypto stays in the CLI.
//!
//! * `client`: the HTTP client and the HTTP-status → [`BackendError`] mapping;
//! * `session`: the signed-in session (`session.json`);
//! * `token_store`: the session token in the OS keyring or a 0600 file.

pub(crate) mod client;
pub(crate) mod session;
pub(crate) mod token_store;

use klef_core::backend::{Backend, BackendError, BackendResult};
use klef_core::backup::{self, Archive, ArchiveSource, Restore, Restored};
use klef_core::ids::{AccountId, EnvironmentId, InviteId, ProjectId, WorkspaceId};
use klef_core::model::PreviousAccountKeys;
use klef_core::model::{
    Account, AccountKeys, ApiKeyGrant, ApiKeyRecipient, Environment, EnvironmentKeyAccess,
    GrantInfo, KeyRotation, NewEnvironment, NewProject, Project, RotationOutcome, SecretVersion,
    SecretWrite, Workspace,
};
use klef_core::model::{
    Blob, EnvironmentManifest, EnvironmentState, ManifestRecord, ManifestsSince, RosterEntry,
};
use klef_core::wire::{
    AcceptInvitationRequest, AccountKeyHistory, AccountStateResponse, PublishIdentityRequest,
    PutAccountStateRequest, RosterList,
};
use klef_core::wire::{
    ApiKeyRecipientList, AuditList, BACKUP_MEDIA_TYPE, ConfirmMemberRequest,
    CreateEnvironmentRequest, CreateInvitationRequest, CreateProjectRequest,
    CreateWorkspaceRequest, EnvironmentKeyResponse, EnvironmentList, GrantList,
    ImportBackupResponse, Invitation, InvitationList, LoginRequest, MeResponse, Member, MemberList,
    ProjectList, RemoveMemberResponse, RenameEnvironmentRequest, RenameProjectRequest,
    RenameWorkspaceRequest, ReplaceKeysRequest, RotateResponse, SecretList, SecretText,
    SessionResponse, SignupRequest, WorkspaceList, WriteSecretsRequest, WriteSecretsResponse,
    routes,
};
use tokio::sync::OnceCell;

pub(crate) use client::Api;

/// The Klef server as seen by one signed-in account.
pub(crate) struct RemoteBackend {
    api: Api,
    me: OnceCell<MeResponse>,
    /// The account of the signed-in session (`session.json`), known without asking.
    session_account: Option<AccountId>,
    /// `GET /v1/me/state` asked ahead ([`RemoteBackend::prefetch`]), for the first
    /// [`RemoteBackend::account_state`].
    prefetched_state: std::sync::Mutex<Option<AccountStateResponse>>,
}

impl RemoteBackend {
    /// A backend for the server behind `api`.
    pub(crate) fn new(api: Api) -> Self {
        Self {
            api,
            me: OnceCell::new(),
            session_account: None,
            prefetched_state: std::sync::Mutex::new(None),
        }
    }

    /// Asks `/v1/me` and `/v1/me/state` now, at the same time (a read is about to need both,
    /// after other requests it can make meanwhile: one round trip instead of two in a row).
    /// Failures are left for the real use to report.
    pub(crate) async fn prefetch(&self) {
        if self.session_account.is_none() {
            return;
        }
        let (_, state) = tokio::join!(self.me(), self.api.get(routes::ME_STATE));
        if let Ok(state) = state {
            *self
                .prefetched_state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(state);
        }
    }

    /// The account the session file names (`None` for an API key).
    pub(crate) fn session_account(&self) -> Option<&AccountId> {
        self.session_account.as_ref()
    }

    /// Answers `GET /v1/me` from a copy kept with a verified snapshot (`crate::snapshot`), so
    /// a command served by the agent asks the server nothing. No-op once asked.
    pub(crate) fn seed_me(&self, me: MeResponse) {
        let _ = self.me.set(me);
    }

    /// The server's base URL.
    pub(crate) fn server(&self) -> &str {
        self.api.base()
    }

    /// The HTTP client (the API-key commands call their routes through it).
    pub(crate) fn api(&self) -> &Api {
        &self.api
    }

    /// `GET /v1/me` (cached for the command).
    pub(crate) async fn me(&self) -> BackendResult<&MeResponse> {
        if !self.api.has_token() {
            return Err(BackendError::NotSignedIn);
        }
        self.me.get_or_try_init(|| self.api.get(routes::ME)).await
    }

    /// `POST /v1/logout`: revokes the current session.
    pub(crate) async fn logout(&self) -> BackendResult<()> {
        self.api.post_empty(routes::LOGOUT).await
    }

    /// `POST /v1/workspaces/{id}/invitations`.
    pub(crate) async fn invite(
        &self,
        ws: &WorkspaceId,
        req: &CreateInvitationRequest,
    ) -> BackendResult<Invitation> {
        self.api.post(&routes::invitations(ws), req).await
    }

    /// `POST /v1/environments/{id}/secrets`.
    async fn post_writes(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
        manifest: Option<&ManifestRecord>,
        promoted_from: Option<EnvironmentId>,
    ) -> BackendResult<Vec<SecretVersion>> {
        let resp: WriteSecretsResponse = self
            .api
            .post(
                &routes::secrets(env),
                &WriteSecretsRequest {
                    writes: writes.to_vec(),
                    manifest: manifest.cloned(),
                    promoted_from,
                },
            )
            .await?;
        Ok(resp.written)
    }

    /// `DELETE /v1/workspaces/{ws}/invitations/{id}`: cancels an invitation not yet accepted.
    pub(crate) async fn cancel_invitation(
        &self,
        ws: &WorkspaceId,
        id: &InviteId,
    ) -> BackendResult<()> {
        self.api.delete(&routes::invitation(ws, id)).await
    }

    /// `GET /v1/invitations`: open invitations for the caller.
    pub(crate) async fn invitations(&self) -> BackendResult<Vec<Invitation>> {
        let list: InvitationList = self.api.get(routes::INVITATIONS).await?;
        Ok(list.invitations)
    }

    /// `POST /v1/invitations/{id}/accept`.
    pub(crate) async fn accept(
        &self,
        id: &InviteId,
        invite_mac: Option<Blob>,
    ) -> BackendResult<Invitation> {
        self.api
            .post(
                &routes::accept_invitation(id),
                &AcceptInvitationRequest { invite_mac },
            )
            .await
    }

    /// `POST /v1/workspaces`: a team workspace with its roster's genesis entry.
    pub(crate) async fn create_team_workspace(
        &self,
        ws: &Workspace,
        genesis: RosterEntry,
    ) -> BackendResult<()> {
        let _: Workspace = self
            .api
            .post(
                routes::WORKSPACES,
                &CreateWorkspaceRequest {
                    workspace: ws.clone(),
                    genesis: Some(genesis),
                },
            )
            .await?;
        Ok(())
    }

    /// `PUT /v1/me/keys` with the account password re-entered (password change, recovery).
    pub(crate) async fn replace_keys(
        &self,
        keys: &AccountKeys,
        account_password: SecretText,
    ) -> BackendResult<()> {
        self.api
            .put(
                routes::ME_KEYS,
                &ReplaceKeysRequest {
                    keys: keys.clone(),
                    account_password: Some(account_password),
                },
            )
            .await
    }

    /// `GET /v1/me/keys`: the earlier seals of the caller's master key, newest first.
    pub(crate) async fn account_key_history(&self) -> BackendResult<Vec<PreviousAccountKeys>> {
        let history: AccountKeyHistory = self.api.get(routes::ME_KEYS).await?;
        Ok(history.previous)
    }

    /// `PUT /v1/me/identity`.
    pub(crate) async fn publish_identity(&self, identity_key: Blob) -> BackendResult<()> {
        self.api
            .put(
                routes::ME_IDENTITY,
                &PublishIdentityRequest { identity_key },
            )
            .await
    }

    /// `GET /v1/me/state`.
    pub(crate) async fn account_state(&self) -> BackendResult<AccountStateResponse> {
        let prefetched = self
            .prefetched_state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match prefetched {
            Some(state) => Ok(state),
            None => self.api.get(routes::ME_STATE).await,
        }
    }

    /// `PUT /v1/me/state`.
    pub(crate) async fn put_account_state(
        &self,
        sealed: Blob,
        expected_revision: u64,
    ) -> BackendResult<AccountStateResponse> {
        self.api
            .put(
                routes::ME_STATE,
                &PutAccountStateRequest {
                    sealed,
                    expected_revision,
                },
            )
            .await
    }

    /// `GET /v1/workspaces/{id}/roster[?after=N]`.
    pub(crate) async fn roster(
        &self,
        ws: &WorkspaceId,
        after: Option<u64>,
    ) -> BackendResult<Vec<RosterEntry>> {
        let path = match after {
            Some(after) => format!("{}?after={after}", routes::roster(ws)),
            None => routes::roster(ws),
        };
        let list: RosterList = self.api.get(&path).await?;
        Ok(list.entries)
    }

    /// `POST /v1/workspaces/{id}/roster`.
    pub(crate) async fn append_roster(
        &self,
        ws: &WorkspaceId,
        entries: Vec<RosterEntry>,
    ) -> BackendResult<()> {
        self.api
            .post(&routes::roster(ws), &RosterList { entries })
            .await
    }

    /// `POST /v1/projects/{id}/rotate`.
    pub(crate) async fn rotate_project_key(
        &self,
        project: &ProjectId,
        req: &klef_core::wire::RotateProjectKeyRequest,
    ) -> BackendResult<()> {
        self.api.post(&routes::project_rotate(project), req).await
    }

    /// `GET /v1/workspaces/{id}/members`.
    pub(crate) async fn members(&self, ws: &WorkspaceId) -> BackendResult<Vec<Member>> {
        let list: MemberList = self.api.get(&routes::members(ws)).await?;
        Ok(list.members)
    }

    /// `POST /v1/workspaces/{ws}/members/{account}/confirm`.
    pub(crate) async fn confirm(
        &self,
        ws: &WorkspaceId,
        account: &AccountId,
        req: &ConfirmMemberRequest,
    ) -> BackendResult<Member> {
        self.api
            .post(&routes::confirm_member(ws, account), req)
            .await
    }

    /// `DELETE /v1/workspaces/{ws}/members/{account}`.
    pub(crate) async fn remove_member(
        &self,
        ws: &WorkspaceId,
        account: &AccountId,
    ) -> BackendResult<RemoveMemberResponse> {
        self.api.delete(&routes::member(ws, account)).await
    }

    /// `GET /v1/environments/{id}/key` with the environment's current key version.
    pub(crate) async fn environment_key_full(
        &self,
        env: &EnvironmentId,
    ) -> BackendResult<EnvironmentKeyResponse> {
        self.api.get(&routes::environment_key(env)).await
    }

    /// `GET /v1/workspaces/{id}/audit?limit=N`.
    pub(crate) async fn audit(&self, ws: &WorkspaceId, limit: u32) -> BackendResult<AuditList> {
        self.api
            .get(&format!("{}?limit={limit}", routes::audit(ws)))
            .await
    }
}

/// `POST /v1/signup` (no session yet).
pub(crate) async fn signup(api: &Api, req: &SignupRequest) -> BackendResult<SessionResponse> {
    api.post(routes::SIGNUP, req).await
}

/// `POST /v1/login` (no session yet).
pub(crate) async fn login(api: &Api, req: &LoginRequest) -> BackendResult<SessionResponse> {
    api.post(routes::LOGIN, req).await
}

impl Backend for RemoteBackend {
    async fn account(&self) -> BackendResult<Option<Account>> {
        Ok(Some(self.me().await?.account.clone()))
    }

    async fn create_account(&self, _account: &Account, _personal: &Workspace) -> BackendResult<()> {
        Err(BackendError::Invalid(
            "accounts on a Klef server are created with `klef signup`".into(),
        ))
    }

    async fn replace_account_keys(&self, keys: &AccountKeys) -> BackendResult<()> {
        // The server asks for the account password (`RemoteBackend::replace_keys`); without it
        // this answers 400, naming what is missing.
        self.api
            .put(
                routes::ME_KEYS,
                &ReplaceKeysRequest {
                    keys: keys.clone(),
                    account_password: None,
                },
            )
            .await
    }

    async fn workspaces(&self) -> BackendResult<Vec<Workspace>> {
        let list: WorkspaceList = self.api.get(routes::WORKSPACES).await?;
        Ok(list.workspaces)
    }

    async fn create_workspace(&self, ws: &Workspace) -> BackendResult<()> {
        let _: Workspace = self
            .api
            .post(
                routes::WORKSPACES,
                &CreateWorkspaceRequest {
                    workspace: ws.clone(),
                    genesis: None,
                },
            )
            .await?;
        Ok(())
    }

    async fn projects(&self, ws: &WorkspaceId) -> BackendResult<Vec<Project>> {
        let list: ProjectList = self.api.get(&routes::projects(ws)).await?;
        Ok(list.projects)
    }

    async fn project(&self, id: &ProjectId) -> BackendResult<Project> {
        self.api.get(&routes::project(id)).await
    }

    async fn create_project(&self, new: &NewProject) -> BackendResult<()> {
        let _: Project = self
            .api
            .post(
                &routes::projects(&new.project.workspace_id),
                &CreateProjectRequest {
                    project: new.clone(),
                },
            )
            .await?;
        Ok(())
    }

    async fn environments(&self, project: &ProjectId) -> BackendResult<Vec<Environment>> {
        let list: EnvironmentList = self.api.get(&routes::environments(project)).await?;
        Ok(list.environments)
    }

    async fn environment_recipients(
        &self,
        project: &ProjectId,
    ) -> BackendResult<Vec<ApiKeyRecipient>> {
        let list: ApiKeyRecipientList = self.api.get(&routes::api_key_recipients(project)).await?;
        Ok(list.keys)
    }

    async fn create_environment(
        &self,
        new: &NewEnvironment,
        grants: &[ApiKeyGrant],
    ) -> BackendResult<()> {
        let _: Environment = self
            .api
            .post(
                &routes::environments(&new.environment.project_id),
                &CreateEnvironmentRequest {
                    environment: new.clone(),
                    api_key_grants: grants.to_vec(),
                },
            )
            .await?;
        Ok(())
    }

    async fn environment_with_key(
        &self,
        env: &EnvironmentId,
    ) -> BackendResult<(Environment, EnvironmentKeyAccess)> {
        let full = self.environment_key_full(env).await?;
        Ok((full.environment, full.access))
    }

    async fn environment_grants(&self, env: &EnvironmentId) -> BackendResult<Vec<GrantInfo>> {
        let list: GrantList = self.api.get(&routes::grants(env)).await?;
        Ok(list.grants)
    }

    async fn rotate_environment_key(
        &self,
        env: &EnvironmentId,
        rotation: &KeyRotation,
    ) -> BackendResult<RotationOutcome> {
        // A stale view is the server's `409 stale`, an error like any refusal.
        let done: RotateResponse = self.api.post(&routes::rotate(env), rotation).await?;
        Ok(RotationOutcome::Rotated(done.environment))
    }

    /// `GET /v1/workspaces/{id}/export`, checked completely (signature, version, checksum,
    /// consistency) before it is handed on; its source becomes the URL klef used.
    async fn export_backup(&self, ws: &Workspace) -> BackendResult<Archive> {
        let bytes = self
            .api
            .get_bytes(&routes::workspace_export(&ws.id))
            .await?;
        let mut archive = backup::decode(&bytes).map_err(|e| {
            BackendError::Other(format!(
                "the server at {} sent a backup that does not check out: {e}",
                self.server()
            ))
        })?;
        archive.source = ArchiveSource::Server {
            url: self.server().to_owned(),
        };
        Ok(archive)
    }

    /// `POST /v1/import[?force=true]`: restores the archive for the signed-in account (the
    /// server checks the whole file again).
    async fn import_backup(&self, archive: &Archive, replace: bool) -> BackendResult<Restore> {
        let path = if replace {
            format!("{}?force=true", routes::IMPORT)
        } else {
            routes::IMPORT.to_owned()
        };
        let done: ImportBackupResponse = self
            .api
            .post_bytes(&path, BACKUP_MEDIA_TYPE, backup::encode(archive))
            .await?;
        Ok(Restore::Restored(Restored {
            workspace: done.workspace,
            replaced: done.replaced,
            members: done.members,
            projects: done.projects,
            environments: done.environments,
            secret_versions: done.secret_versions,
            notes: done.notes,
        }))
    }

    async fn environment_key(&self, env: &EnvironmentId) -> BackendResult<EnvironmentKeyAccess> {
        Ok(self.environment_key_full(env).await?.access)
    }

    async fn secrets(&self, env: &EnvironmentId) -> BackendResult<Vec<SecretVersion>> {
        let list: SecretList = self.api.get(&routes::secrets(env)).await?;
        Ok(list.secrets)
    }

    async fn secret_history(
        &self,
        env: &EnvironmentId,
        name: &str,
    ) -> BackendResult<Vec<SecretVersion>> {
        klef_core::names::validate_key_name(name)
            .map_err(|e| BackendError::Invalid(e.to_string()))?;
        let list: SecretList = self.api.get(&routes::secret_history(env, name)).await?;
        Ok(list.secrets)
    }

    async fn environment_state(
        &self,
        env: &EnvironmentId,
        since: ManifestsSince,
    ) -> BackendResult<EnvironmentState> {
        let list: SecretList = self
            .api
            .get(&routes::secrets_with_manifests(env, since))
            .await?;
        Ok(EnvironmentState {
            secrets: list.secrets,
            manifests: list.manifests,
            deleted: list.deleted,
            personal: list.personal,
        })
    }

    async fn environment_changes(
        &self,
        env: &EnvironmentId,
        after: u64,
        known_personal: u64,
    ) -> BackendResult<Option<EnvironmentState>> {
        let list: Option<SecretList> = self
            .api
            .get_if_modified(&routes::secrets_changed_since(env, after, known_personal))
            .await?;
        Ok(list.map(|list| EnvironmentState {
            secrets: list.secrets,
            manifests: list.manifests,
            deleted: list.deleted,
            personal: list.personal,
        }))
    }

    async fn write_secrets(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
        manifest: Option<&ManifestRecord>,
    ) -> BackendResult<Vec<SecretVersion>> {
        self.post_writes(env, writes, manifest, None).await
    }

    async fn promote_secrets(
        &self,
        env: &EnvironmentId,
        from: &EnvironmentId,
        writes: &[SecretWrite],
        manifest: Option<&ManifestRecord>,
    ) -> BackendResult<Vec<SecretVersion>> {
        self.post_writes(env, writes, manifest, Some(*from)).await
    }

    async fn put_personal(
        &self,
        env: &EnvironmentId,
        sealed: &Blob,
        expected_revision: u64,
        revision: u64,
    ) -> BackendResult<klef_core::model::PersonalRecord> {
        self.api
            .put(
                &routes::personal(env),
                &klef_core::wire::PutPersonalRequest {
                    sealed: sealed.clone(),
                    expected_revision,
                    // Sent only when it differs from the default, which older servers assume.
                    revision: (revision != expected_revision.saturating_add(1)).then_some(revision),
                },
            )
            .await
    }

    async fn rename_environment(
        &self,
        env: &EnvironmentId,
        slug: &str,
        name: &str,
        manifest: Option<&ManifestRecord>,
    ) -> BackendResult<()> {
        let _: Environment = self
            .api
            .put(
                &routes::environment(env),
                &RenameEnvironmentRequest {
                    slug: slug.to_owned(),
                    name: name.to_owned(),
                    manifest: manifest.cloned(),
                },
            )
            .await?;
        Ok(())
    }

    async fn delete_environment(&self, env: &EnvironmentId) -> BackendResult<()> {
        self.api.delete(&routes::environment(env)).await
    }

    async fn rename_project(
        &self,
        project: &ProjectId,
        name: &str,
        manifests: &[EnvironmentManifest],
    ) -> BackendResult<()> {
        let _: Project = self
            .api
            .put(
                &routes::project(project),
                &RenameProjectRequest {
                    name: name.to_owned(),
                    manifests: manifests.to_vec(),
                },
            )
            .await?;
        Ok(())
    }

    async fn delete_project(&self, project: &ProjectId) -> BackendResult<()> {
        self.api.delete(&routes::project(project)).await
    }

    async fn rename_workspace(&self, ws: &WorkspaceId, name: &str) -> BackendResult<()> {
        let _: Workspace = self
            .api
            .put(
                &routes::workspace(ws),
                &RenameWorkspaceRequest {
                    name: name.to_owned(),
                },
            )
            .await?;
        Ok(())
    }

    async fn delete_workspace(&self, ws: &WorkspaceId) -> BackendResult<()> {
        self.api.delete(&routes::workspace(ws)).await
    }
}

/// The error of a server-only command run against the local vault.
pub(crate) fn needs_server(command: &str) -> crate::diagnostics::Failure {
    crate::diagnostics::Failure::usage(format!(
        "`klef {command}` needs a Klef server, and klef is using the local vault"
    ))
    .hint("create an account on a server with `klef signup --server URL --email EMAIL`, or sign in with `klef login --server URL`")
}

/// Where the server a command talks to was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerSource {
    /// `--server` or `KLEF_SERVER`: the user's own choice.
    Flag,
    /// The `server` field of the nearest `.klef` (a file of the working tree).
    KlefFile(std::path::PathBuf),
    /// The signed-in session (the user's own config).
    Session,
}

/// A server and where it was named.
#[derive(Debug, Clone)]
pub(crate) struct ServerChoice {
    /// The normalised base URL.
    pub(crate) url: String,
    pub(crate) source: ServerSource,
}

/// Which server a command talks to, if any: `--server`/`KLEF_SERVER`, else the nearest
/// `.klef`'s `server` (a `.klef` without one means the local vault), else the signed-in
/// session's server. `None` means the local vault.
pub(crate) fn server_for(ctx: &crate::context::Context) -> anyhow::Result<Option<ServerChoice>> {
    if let Some(url) = ctx
        .global
        .server
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        return Ok(Some(ServerChoice {
            url: client::normalize_url(url)?,
            source: ServerSource::Flag,
        }));
    }
    if let Some(located) = crate::context::Context::find_klef_file()? {
        return match located.file.server {
            Some(url) => Ok(Some(ServerChoice {
                url: client::normalize_url(&url)?,
                source: ServerSource::KlefFile(located.path),
            })),
            None => Ok(None),
        };
    }
    Ok(
        session::Session::load(&ctx.dirs.config)?.map(|s| ServerChoice {
            url: s.server,
            source: ServerSource::Session,
        }),
    )
}

/// A backend for `server`, authenticated with `KLEF_TOKEN` (an API key) when set, else with the
/// stored session when it is for that server.
///
/// An API key goes only to a server the user named (`--server`/`KLEF_SERVER`) or signed in to,
/// never to one named only by a `.klef` in the working tree: a freshly cloned repository, or a
/// parent directory, could otherwise collect the CI key (DESIGN §9.4). A `.klef` naming the
/// server of the user's own session is fine. A stored session token goes only to its own
/// server.
pub(crate) fn connect(
    ctx: &crate::context::Context,
    server: &ServerChoice,
) -> anyhow::Result<RemoteBackend> {
    if let Some(token) = crate::commands::keys::ci::bearer()? {
        if let ServerSource::KlefFile(path) = &server.source
            // The server of the user's own session is theirs, whichever file names it too.
            && let own = session::Session::load(&ctx.dirs.config)?.map(|s| s.server)
            && own.as_deref() != Some(server.url.as_str())
        {
            let mut failure = crate::diagnostics::Failure::auth(format!(
                "KLEF_TOKEN is not sent to {}, which only {} names{}",
                server.url,
                path.display(),
                own.as_deref()
                    .map(|o| format!(" (you are signed in to {o})"))
                    .unwrap_or_default()
            ));
            failure = failure.hint(format!(
                "API keys go only to the server you choose: set KLEF_SERVER={} if you trust it",
                server.url
            ));
            return Err(failure.into());
        }
        return Ok(RemoteBackend::new(Api::new(&server.url, Some(token))?));
    }
    let (token, account) = match session::Session::load(&ctx.dirs.config)? {
        Some(s) if s.server == server.url => (s.token(&ctx.dirs.config)?, Some(s.account_id)),
        _ => (None, None),
    };
    let mut backend = RemoteBackend::new(Api::new(&server.url, token)?);
    backend.session_account = account.filter(|_| backend.api.has_token());
    Ok(backend)
}

/// The account (sign-in) password: `KLEF_ACCOUNT_PASSWORD`, else a no-echo prompt (twice when
/// `confirm`). It is sent to the server; the encryption password never is.
pub(crate) fn account_password(confirm: bool) -> anyhow::Result<klef_core::wire::SecretText> {
    account_password_asking("account password (to sign in): ", confirm)
}

/// The account (sign-in) password re-entered to approve a change of the account's sealed keys
/// (`password change`, `recover` on a server: DESIGN §9.4), from `KLEF_ACCOUNT_PASSWORD` or a
/// no-echo prompt.
pub(crate) fn account_password_to_approve() -> anyhow::Result<klef_core::wire::SecretText> {
    account_password_asking(
        "account password (the one you sign in with, to approve this change): ",
        false,
    )
}

fn account_password_asking(
    prompt: &str,
    confirm: bool,
) -> anyhow::Result<klef_core::wire::SecretText> {
    use klef_core::env::EnvVars;
    use klef_core::wire::SecretText;

    use crate::diagnostics::Failure;

    if let Ok(pw) = std::env::var(EnvVars::KLEF_ACCOUNT_PASSWORD)
        && !pw.is_empty()
    {
        return Ok(SecretText::new(pw));
    }
    if !crate::password::interactive() {
        return Err(Failure::auth(
            "an account password is needed and there is no terminal to ask for it",
        )
        .hint("set KLEF_ACCOUNT_PASSWORD")
        .into());
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(SecretText::new)
            .map_err(|_| Failure::auth("could not read the account password from the terminal"))
    };
    let first = ask(prompt)?;
    if confirm {
        let second = ask("repeat the account password: ")?;
        if first != second {
            return Err(Failure::usage("the two passwords differ").into());
        }
    }
    Ok(first)
}

/// Stores a new session's token (keyring, else the 0600 file, saying so once) and writes
/// `session.json`, replacing any earlier session.
pub(crate) fn start_session(
    ctx: &crate::context::Context,
    server: &str,
    resp: &SessionResponse,
) -> anyhow::Result<session::Session> {
    let config = &ctx.dirs.config;
    if let Some(old) = session::Session::load(config)? {
        // A new sign-in replaces the old one locally; its token is forgotten.
        let _ = old.store(config).delete(&old.label());
    }
    let choice = token_store::TokenStore::choose(config)?;
    let s = session::Session {
        server: server.to_owned(),
        email: resp.account.email.clone().unwrap_or_default(),
        account_id: resp.account.id,
        expires_at: resp.expires_at,
        token_store: choice.store.kind(),
    };
    choice.store.save(&s.label(), &resp.token)?;
    s.save(config)?;
    if let Some(reason) = choice.fallback_reason {
        ctx.printer.warn(&format!(
            "no usable OS keyring ({reason}); the session token is kept in {} (mode 0600)",
            choice.store.file_path().display()
        ));
    }
    Ok(s)
}

/// Why an environment slug is missing from the list the server returned. A member restricted
/// to some environments only sees those, so for them a missing slug means "no access" (exit 4)
/// rather than "not found": the server reached their environments through direct grants.
pub(crate) async fn explain_missing_env(
    b: &crate::backend::AnyBackend,
    envs: &[Environment],
    slug: &str,
    not_found: anyhow::Error,
) -> anyhow::Error {
    let (crate::backend::AnyBackend::Remote(r), Some(first)) = (b, envs.first()) else {
        return not_found;
    };
    match r.environment_key(&first.id).await {
        Ok(EnvironmentKeyAccess::Direct { .. }) => {
            let names: Vec<&str> = envs.iter().map(|e| e.slug.as_str()).collect();
            crate::diagnostics::Failure::permission(format!("no access to {slug}"))
                .hint(format!(
                    "you can reach {}; ask a workspace admin to share {slug} with you",
                    names.join(", ")
                ))
                .into()
        }
        _ => not_found,
    }
}
