//! Authentication ([`Principal`] from the bearer token: a session, a user API key or a system
//! API key) and authorization: every permission decision, for every kind of principal, is made
//! by [`authorize`], which loads the facts from the database and hands them to the pure
//! [`decide`]. Handlers never check roles or scopes themselves.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use klef_core::crypto::sha256_hex;
use klef_core::crypto::token::{
    ApiToken, OLD_FORMAT_ADVICE, PresentedBearer, TokenError, TokenKind, is_whole_token,
};
use klef_core::ids::{AccountId, ApiKeyId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{Environment, Role, Timestamp};
use klef_core::wire::{ApiKeyKind, ApiKeyPermission, ApiKeyScope, Grantee};
use klef_store::server::{AccessFacts, AccessTarget, Actor, ActorKind, SecretsRevision, now_ms};

use crate::AppState;
use crate::error::ApiError;

/// What a system key is told when it asks for anything outside secrets.
pub const SYSTEM_KEY_LIMIT: &str = "a system key can only read secrets (and, with readwrite, \
     write them) in the environments of its scopes";

/// Why a system key gets `403` on personal overrides.
pub const PERSONAL_NOT_FOR_SYSTEM_KEYS: &str =
    "personal overrides belong to members: a system key has none and cannot write any";

/// Who is calling.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Principal {
    /// A signed-in person (a `klef_sess_…` token).
    Session(SessionPrincipal),
    /// A user API key (`klef_bearer_user_…`): acts as the person who made it.
    UserKey(UserKeyPrincipal),
    /// A system API key (`klef_bearer_sys_…`): scoped, read or readwrite, no account.
    SystemKey(SystemKeyPrincipal),
}

/// A live session.
#[derive(Clone)]
pub struct SessionPrincipal {
    /// The account.
    pub account: AccountId,
    /// Its email.
    pub email: String,
    /// SHA-256 of the token (to revoke it).
    pub token_hash: String,
    /// When the session expires.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for SessionPrincipal {
    // The token hash is left out: it identifies the session.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPrincipal")
            .field("account", &self.account)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A live user key.
#[derive(Debug, Clone)]
pub struct UserKeyPrincipal {
    /// The account it acts as.
    pub account: AccountId,
    /// That account's email.
    pub email: String,
    /// The key.
    pub key_id: ApiKeyId,
    /// Its label.
    pub label: String,
}

/// A live system key.
#[derive(Debug, Clone)]
pub struct SystemKeyPrincipal {
    /// The key.
    pub key_id: ApiKeyId,
    /// Its label.
    pub label: String,
    /// `label (system key)`: how it signs what it writes.
    pub author: String,
    /// Read or readwrite.
    pub permission: ApiKeyPermission,
    /// Its scopes.
    pub scopes: Vec<ApiKeyScope>,
}

impl SystemKeyPrincipal {
    /// Whether a scope covers the project (any of its environments).
    #[must_use]
    pub fn covers_project(&self, project: &ProjectId) -> bool {
        self.scopes.iter().any(|s| s.project_id == *project)
    }

    /// Whether a scope covers the environment (`proj:env` or `proj:*`).
    #[must_use]
    pub fn covers(&self, project: &ProjectId, env: &EnvironmentId) -> bool {
        self.scopes
            .iter()
            .any(|s| s.project_id == *project && s.environment_id.is_none_or(|e| e == *env))
    }
}

impl Principal {
    /// The account acting: the session's, or a user key's owner. A system key has none
    /// (`403`, [`SYSTEM_KEY_LIMIT`]).
    pub fn account(&self) -> Result<&AccountId, ApiError> {
        match self {
            Principal::Session(s) => Ok(&s.account),
            Principal::UserKey(k) => Ok(&k.account),
            Principal::SystemKey(_) => Err(ApiError::Forbidden(SYSTEM_KEY_LIMIT.into())),
        }
    }

    /// The acting account's email, for accounts.
    #[must_use]
    pub fn email(&self) -> Option<&str> {
        match self {
            Principal::Session(s) => Some(&s.email),
            Principal::UserKey(k) => Some(&k.email),
            Principal::SystemKey(_) => None,
        }
    }

    /// How the principal appears as a secret's author: the email, or `label (system key)`.
    #[must_use]
    pub fn label(&self) -> &str {
        match self {
            Principal::Session(s) => &s.email,
            Principal::UserKey(k) => &k.email,
            Principal::SystemKey(k) => &k.author,
        }
    }

    /// Who it is, for log spans: `account:<id>` (a session), `user-key:<id>`, `system-key:<id>`
    /// (ids only: no email or label in logs).
    #[must_use]
    pub fn id(&self) -> String {
        match self {
            Principal::Session(s) => format!("account:{}", s.account),
            Principal::UserKey(k) => format!("user-key:{}", k.key_id),
            Principal::SystemKey(k) => format!("system-key:{}", k.key_id),
        }
    }

    /// The audit-log actor: the account for a session; the key (id, and label) for API keys.
    #[must_use]
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Session(s) => Actor {
                kind: ActorKind::Account,
                id: Some(s.account.to_string()),
                label: Some(s.email.clone()),
            },
            Principal::UserKey(k) => Actor {
                kind: ActorKind::ApiKey,
                id: Some(k.key_id.to_string()),
                label: Some(format!("{} (user key {})", k.email, k.label)),
            },
            Principal::SystemKey(k) => Actor {
                kind: ActorKind::ApiKey,
                id: Some(k.key_id.to_string()),
                label: Some(k.author.clone()),
            },
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthenticated("sign in first (no bearer token)".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::Unauthenticated("the Authorization header is not a bearer token".into())
            })?;
        if token.starts_with("klef_sess_") {
            let hash = sha256_hex(token.as_bytes());
            let session = state.store.session(&hash, now_ms()).await?.ok_or_else(|| {
                ApiError::Unauthenticated(
                    "the session is unknown, expired or signed out; sign in again".into(),
                )
            })?;
            return Ok(Principal::Session(SessionPrincipal {
                account: session.account_id,
                email: session.email,
                token_hash: hash,
                expires_at: session.expires_at,
            }));
        }
        if token.starts_with("klef_bearer_") {
            return api_key_principal(state, token).await;
        }
        if is_whole_token(token) {
            return Err(whole_token(token));
        }
        Err(ApiError::Unauthenticated(
            "the bearer token is not a Klef token".into(),
        ))
    }
}

/// The refusal of a whole API key sent as the bearer token, never looked up: a client from
/// before split secrets sends its (old-format) key whole; a key of the current format is never
/// sent by `klef`, so whoever sent it has leaked it.
fn whole_token(token: &str) -> ApiError {
    match ApiToken::parse(token) {
        Err(TokenError::OldFormat) => ApiError::ApiKeyOutdated(format!(
            "this klef sent the whole API key; update klef, then: {OLD_FORMAT_ADVICE}"
        )),
        Ok(_) => ApiError::Unauthenticated(
            "a whole API key was sent, which klef never does (it sends only the bearer \
             credential derived from it): revoke this key and make a new one"
                .into(),
        ),
        Err(e) => ApiError::Unauthenticated(format!("{e}; check KLEF_TOKEN")),
    }
}

/// Authenticates an API key by its bearer credential (`klef_bearer_<kind>_<id>_<credential>`,
/// DESIGN.md §9.4): parsed, looked up by id, refused when issued before split secrets, the
/// credential's SHA-256 compared in constant time, refused when revoked. No message names the
/// credential.
async fn api_key_principal(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let parsed = PresentedBearer::parse(token)
        .map_err(|e| ApiError::Unauthenticated(format!("{e}; check KLEF_TOKEN")))?;
    let unknown = || ApiError::Unauthenticated("unknown API key; check KLEF_TOKEN".into());
    let Some(key) = state.store.api_key_auth(&parsed.id()).await? else {
        return Err(unknown());
    };
    let kind_matches = matches!(
        (parsed.kind(), key.kind),
        (TokenKind::User, ApiKeyKind::User) | (TokenKind::System, ApiKeyKind::System)
    );
    if !kind_matches {
        return Err(unknown());
    }
    if key.outdated {
        // Its stored hash is of a secret the server saw, so no bearer credential can match it:
        // say what to do instead of "unknown".
        return Err(ApiError::ApiKeyOutdated(format!(
            "API key {}: {OLD_FORMAT_ADVICE}",
            parsed.prefix()
        )));
    }
    if !parsed.matches_hash(&key.bearer_hash) {
        return Err(unknown());
    }
    if key.revoked {
        return Err(ApiError::Unauthenticated(format!(
            "API key {} was revoked",
            parsed.prefix()
        )));
    }
    match key.kind {
        ApiKeyKind::User => Ok(Principal::UserKey(UserKeyPrincipal {
            account: key.created_by,
            email: key.creator_email.unwrap_or_default(),
            key_id: key.id,
            label: key.label,
        })),
        ApiKeyKind::System => Ok(Principal::SystemKey(SystemKeyPrincipal {
            key_id: key.id,
            author: format!("{} (system key)", key.label),
            label: key.label,
            permission: key.permission.unwrap_or(ApiKeyPermission::Read),
            scopes: key.scopes,
        })),
    }
}

/// What the principal wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List a workspace's projects.
    ReadWorkspace,
    /// Create a project in a workspace.
    CreateProject,
    /// List and confirm members (admins and the owner; never in a personal workspace).
    ManageMembers,
    /// Invite someone into a workspace with this role: as [`Action::ManageMembers`], and never
    /// as a second owner.
    Invite(Role),
    /// Remove the member of a [`Resource::Member`]: as [`Action::ManageMembers`]; never
    /// oneself, and an admin only by the owner. (The owner is never removed: the store refuses
    /// it in the removal's transaction.)
    RemoveMember,
    /// Read the audit log.
    ReadAudit,
    /// Read the workspace's signed roster (members; invitees are let in by the route).
    ReadRoster,
    /// Append to the workspace's signed roster (admins; clients verify every entry).
    AppendRoster,
    /// Read a project and its environment list.
    ReadProject,
    /// Add an environment to a project.
    CreateEnvironment,
    /// Read how to reach an environment's key.
    ReadEnvironmentKey,
    /// Read secrets and history.
    ReadSecrets,
    /// Write secrets.
    WriteSecrets,
    /// Replace one's own personal overrides of an environment: a member who can read it
    /// (the route keys the row by the caller, so nobody else's is ever touched); never a
    /// system key, which has no personal overrides.
    WritePersonal,
    /// List an environment's direct grants.
    ListGrants,
    /// Rotate an environment's key.
    RotateKey,
    /// Create, list, change and revoke API keys: on [`Resource::OwnKeys`] (user keys, the
    /// caller's own keys) or on a [`Resource::Project`] a system key is scoped to.
    ManageApiKeys,
    /// Download a workspace's backup archive (admins and the owner).
    ExportBackup,
    /// Restore a backup: into an existing workspace (its owner only), or as a new workspace
    /// on [`Resource::OwnAccount`] (any account, never a system key).
    ImportBackup,
    /// Rename a workspace (admins).
    RenameWorkspace,
    /// Delete a team workspace with everything in it (its owner; never a personal one).
    DeleteWorkspace,
    /// Rename a project (admins).
    RenameProject,
    /// Delete a project with its environments and secrets (admins).
    DeleteProject,
    /// Give an environment a new slug and name (admins holding the project key).
    RenameEnvironment,
    /// Delete an environment with its secrets (admins holding the project key).
    DeleteEnvironment,
}

/// What it is done to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A workspace.
    Workspace(WorkspaceId),
    /// An account as a member of a workspace (it need not be one).
    Member(WorkspaceId, AccountId),
    /// A project.
    Project(ProjectId),
    /// An environment.
    Environment(EnvironmentId),
    /// The caller's own API keys (no database facts).
    OwnKeys,
    /// The caller's own account: what it may create for itself (no database facts).
    OwnAccount,
}

/// [`Facts::what`] of [`Resource::OwnKeys`].
const OWN_KEYS: &str = "your API keys";

/// [`Facts::what`] of [`Resource::OwnAccount`].
const OWN_ACCOUNT: &str = "your account";

/// Everything [`decide`] needs, loaded by [`authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// How to name the resource in a not-found message.
    pub what: String,
    /// The principal's role in the resource's workspace (`None`: not a member, or no such
    /// resource).
    pub role: Option<Role>,
    /// For [`Resource::Member`]: that account.
    pub member: Option<MemberFacts>,
    /// Whether the workspace is someone's personal one.
    pub personal: bool,
    /// Whether the principal holds the project key (project and environment resources).
    pub project_key: bool,
    /// Whether the principal holds a direct grant (environment resources).
    pub grant: bool,
    /// The environment's slug (environment resources).
    pub slug: Option<String>,
    /// For a system key: what its scopes allow here.
    pub system_key: Option<SystemKeyFacts>,
}

/// What [`decide`] needs to know of the account a [`Resource::Member`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberFacts {
    /// Its role in the workspace (`None`: not a member).
    pub role: Option<Role>,
    /// Whether it is the principal's own account.
    pub is_self: bool,
}

/// What [`decide`] needs to know of a system key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemKeyFacts {
    /// Whether the resource exists.
    pub exists: bool,
    /// The resource as `project:env` or `project` (for messages).
    pub name: String,
    /// Whether a scope covers it.
    pub in_scope: bool,
    /// Whether an environment key is wrapped to the key (environment resources).
    pub grant: bool,
    /// Read or readwrite.
    pub permission: ApiKeyPermission,
}

/// The decision for a system key: secrets and their keys within scope, nothing else.
fn decide_system_key(action: Action, facts: &Facts, key: &SystemKeyFacts) -> Result<(), ApiError> {
    if action == Action::WritePersonal {
        return Err(ApiError::Forbidden(PERSONAL_NOT_FOR_SYSTEM_KEYS.into()));
    }
    let reads = matches!(
        action,
        Action::ReadProject | Action::ReadEnvironmentKey | Action::ReadSecrets
    );
    if !reads && action != Action::WriteSecrets {
        return Err(ApiError::Forbidden(SYSTEM_KEY_LIMIT.into()));
    }
    if !key.exists {
        return Err(ApiError::NotFound(facts.what.clone()));
    }
    if !key.in_scope {
        return Err(ApiError::Forbidden(format!("no access to {}", key.name)));
    }
    if action != Action::ReadProject && !key.grant {
        return Err(ApiError::Forbidden(format!(
            "no access to {}: no key of it is wrapped to this system key (update it with \
             klef keys put)",
            key.name
        )));
    }
    if action == Action::WriteSecrets && key.permission != ApiKeyPermission::Readwrite {
        return Err(ApiError::Forbidden(format!(
            "this system key may only read {}: its permission is read",
            key.name
        )));
    }
    Ok(())
}

/// The decision: `Ok` or the error to answer.
pub fn decide(action: Action, facts: &Facts) -> Result<(), ApiError> {
    if let Some(key) = &facts.system_key {
        return decide_system_key(action, facts, key);
    }
    if action == Action::ManageApiKeys && facts.what == OWN_KEYS {
        return Ok(());
    }
    if facts.what == OWN_ACCOUNT {
        // Restoring one's own backup as a new workspace is like creating a workspace.
        return if action == Action::ImportBackup {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("not allowed on {OWN_ACCOUNT}")))
        };
    }
    let Some(role) = facts.role else {
        return Err(ApiError::NotFound(facts.what.clone()));
    };
    let admin = role <= Role::Admin;
    let require_admin = || {
        if admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this needs the admin or owner role in the workspace".into(),
            ))
        }
    };
    let manage_members = || {
        require_admin()?;
        if facts.personal {
            Err(ApiError::Forbidden(
                "a personal workspace cannot be shared; create a team workspace \
                 (`klef workspace create NAME`, then `klef workspace use NAME`) and a project in \
                 it (`klef init`)"
                    .into(),
            ))
        } else {
            Ok(())
        }
    };
    let no_access = || {
        ApiError::Forbidden(format!(
            "no access to {}",
            facts.slug.as_deref().unwrap_or("this environment")
        ))
    };
    match action {
        Action::ReadWorkspace | Action::ReadProject | Action::ReadRoster => Ok(()),
        // AppendRoster: signed entries (clients verify each), by admins of a team workspace or
        // the owner of a personal one, whose roster records only them and their system keys.
        Action::CreateProject
        | Action::AppendRoster
        | Action::ReadAudit
        | Action::ListGrants
        | Action::ExportBackup
        | Action::RenameWorkspace
        | Action::RenameProject
        | Action::DeleteProject => require_admin(),
        Action::DeleteWorkspace => {
            if facts.personal {
                Err(ApiError::Forbidden(
                    "a personal workspace cannot be deleted".into(),
                ))
            } else if role == Role::Owner {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "only the workspace's owner can delete it".into(),
                ))
            }
        }
        Action::ManageApiKeys => require_admin().map_err(|_| {
            ApiError::Forbidden(
                "a system key scoped to this project needs the admin or owner role in its \
                 workspace"
                    .into(),
            )
        }),
        Action::ManageMembers => manage_members(),
        Action::Invite(invited) => {
            manage_members()?;
            if invited == Role::Owner {
                Err(ApiError::InvalidRequest(
                    "a workspace has one owner: invite as admin or member".into(),
                ))
            } else {
                Ok(())
            }
        }
        Action::RemoveMember => {
            manage_members()?;
            let target = facts.member.unwrap_or(MemberFacts {
                role: None,
                is_self: false,
            });
            if target.is_self {
                Err(ApiError::InvalidRequest(
                    "you cannot remove yourself".into(),
                ))
            } else if target.role == Some(Role::Admin) && role != Role::Owner {
                Err(ApiError::Forbidden(
                    "only the owner can remove an admin".into(),
                ))
            } else {
                Ok(())
            }
        }
        Action::CreateEnvironment => {
            require_admin()?;
            if facts.project_key {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "no access to this project's key".into(),
                ))
            }
        }
        Action::ReadEnvironmentKey
        | Action::ReadSecrets
        | Action::WriteSecrets
        | Action::WritePersonal => {
            if facts.project_key || facts.grant {
                Ok(())
            } else {
                Err(no_access())
            }
        }
        Action::ImportBackup => {
            if role == Role::Owner {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "only the workspace's owner can restore a backup over it".into(),
                ))
            }
        }
        Action::RotateKey | Action::RenameEnvironment | Action::DeleteEnvironment => {
            require_admin()?;
            if facts.project_key {
                Ok(())
            } else {
                Err(no_access())
            }
        }
    }
}

/// Which of a project's environments (`all` of them) a system key sees listed: those its
/// scopes cover (`proj:env`, or every one with `proj:*`, an environment created after the key
/// included). An account's visible environments are a query of the store
/// (`Store::environments_for`), which applies a member's restriction.
#[must_use]
pub fn environments_for_system_key(
    key: &SystemKeyPrincipal,
    project: &ProjectId,
    all: Vec<Environment>,
) -> Vec<Environment> {
    all.into_iter()
        .filter(|e| key.covers(project, &e.id))
        .collect()
}

/// What an authorized request may use: the workspace and, for environment resources, the
/// environment.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The resource's workspace (`None` for [`Resource::OwnKeys`]).
    pub workspace_id: Option<WorkspaceId>,
    /// The environment, for environment resources.
    pub environment: Option<Environment>,
    /// The environment's secrets revision, for [`Action::ReadSecrets`] on an environment.
    pub revision: Option<SecretsRevision>,
}

/// Decides whether `principal` may do `action` on `resource`; the only place that does. The
/// facts come from one database statement ([`Store::access_facts`](klef_store::Store)).
pub async fn authorize(
    state: &AppState,
    principal: &Principal,
    action: Action,
    resource: Resource,
) -> Result<Authorized, ApiError> {
    if let (Principal::SystemKey(key), Resource::Workspace(ws), Action::ReadRoster) =
        (principal, &resource, action)
    {
        return system_key_reads_roster(state, key, *ws).await;
    }
    let (target, what) = match resource {
        Resource::OwnAccount => {
            if let Principal::SystemKey(_) = principal {
                return Err(ApiError::Forbidden(SYSTEM_KEY_LIMIT.into()));
            }
            let mut facts = own_keys_facts();
            facts.what = OWN_ACCOUNT.into();
            decide(action, &facts)?;
            return Ok(Authorized::nothing());
        }
        Resource::OwnKeys => {
            if let Principal::SystemKey(_) = principal {
                return Err(ApiError::Forbidden(
                    "system keys cannot manage API keys; use a session or a user key".into(),
                ));
            }
            decide(action, &own_keys_facts())?;
            return Ok(Authorized::nothing());
        }
        Resource::Workspace(ws) => (AccessTarget::Workspace(ws), format!("workspace {ws}")),
        Resource::Member(ws, account) => {
            (AccessTarget::Member(ws, account), format!("workspace {ws}"))
        }
        Resource::Project(p) => (AccessTarget::Project(p), format!("project {p}")),
        Resource::Environment(e) => (AccessTarget::Environment(e), format!("environment {e}")),
    };
    let who = match principal {
        Principal::Session(s) => Grantee::Account(s.account),
        Principal::UserKey(k) => Grantee::Account(k.account),
        Principal::SystemKey(k) => Grantee::ApiKey(k.key_id),
    };
    let with_revision = action == Action::ReadSecrets;
    let found = state
        .store
        .access_facts(&who, target, with_revision)
        .await?;
    let facts = match principal {
        Principal::SystemKey(key) => system_key_facts(key, what, found.as_ref()),
        Principal::Session(_) | Principal::UserKey(_) => {
            // A non-member learns nothing about the resource: the facts stay empty.
            let member = found.as_ref().filter(|f| f.role.is_some());
            Facts {
                what,
                role: member.and_then(|f| f.role),
                member: match resource {
                    Resource::Member(_, account) => Some(MemberFacts {
                        role: member.and_then(|f| f.member_role),
                        is_self: principal.account().ok() == Some(&account),
                    }),
                    _ => None,
                },
                personal: member.is_some_and(|f| f.personal),
                project_key: member.is_some_and(|f| f.project_key),
                grant: member.is_some_and(|f| f.grant),
                slug: found
                    .as_ref()
                    .and_then(|f| f.environment.as_ref())
                    .map(|e| e.slug.clone()),
                system_key: None,
            }
        }
    };
    decide(action, &facts)?;
    let found = found.ok_or_else(|| ApiError::NotFound(facts.what.clone()))?;
    Ok(Authorized {
        workspace_id: Some(found.workspace_id),
        environment: found.environment,
        revision: found.revision,
    })
}

impl Authorized {
    /// For resources with no database facts.
    fn nothing() -> Self {
        Self {
            workspace_id: None,
            environment: None,
            revision: None,
        }
    }
}

fn own_keys_facts() -> Facts {
    Facts {
        what: OWN_KEYS.into(),
        role: None,
        member: None,
        personal: false,
        project_key: false,
        grant: false,
        slug: None,
        system_key: None,
    }
}

/// A system key's facts: whether the resource exists, whether a scope covers it, and whether
/// its environment key is wrapped to the key.
/// A system key reads the signed roster of the workspace its scopes are in, and no other: its
/// CI job verifies the roster from the anchor sealed at its creation (DESIGN.md §9.4) before
/// using anything the server serves.
async fn system_key_reads_roster(
    state: &AppState,
    key: &SystemKeyPrincipal,
    ws: WorkspaceId,
) -> Result<Authorized, ApiError> {
    for scope in &key.scopes {
        if let Some(project) = state.store.project_unchecked(&scope.project_id).await?
            && project.workspace_id == ws
        {
            return Ok(Authorized {
                workspace_id: Some(ws),
                environment: None,
                revision: None,
            });
        }
    }
    Err(ApiError::Forbidden(format!(
        "no access to workspace {ws}: this system key's scopes are in another workspace"
    )))
}

fn system_key_facts(key: &SystemKeyPrincipal, what: String, found: Option<&AccessFacts>) -> Facts {
    let project = found.and_then(|f| f.project.as_ref());
    let environment = found.and_then(|f| f.environment.as_ref());
    let (name, in_scope, grant) = match (project, environment) {
        (Some((p, project_name)), Some(env)) => {
            let in_scope = key.covers(p, &env.id);
            let grant = in_scope && found.is_some_and(|f| f.grant);
            (format!("{project_name}:{}", env.slug), in_scope, grant)
        }
        (Some((p, project_name)), None) => (project_name.clone(), key.covers_project(p), false),
        (None, _) => (what.clone(), false, false),
    };
    Facts {
        what,
        role: None,
        member: None,
        personal: false,
        project_key: false,
        grant: false,
        slug: environment.map(|e| e.slug.clone()),
        system_key: Some(SystemKeyFacts {
            exists: found.is_some(),
            name,
            in_scope,
            grant,
            permission: key.permission,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(role: Option<Role>, project_key: bool, grant: bool) -> Facts {
        Facts {
            what: "environment x".into(),
            role,
            member: None,
            personal: false,
            project_key,
            grant,
            slug: Some("production".into()),
            system_key: None,
        }
    }

    #[test]
    fn decisions() {
        use Action::*;
        type Case = (Action, Option<Role>, bool, bool, Option<u16>);
        let cases: &[Case] = &[
            (ReadSecrets, None, true, true, Some(404)),
            (ReadSecrets, Some(Role::Member), false, false, Some(403)),
            (ReadSecrets, Some(Role::Member), false, true, None),
            (WritePersonal, Some(Role::Member), false, true, None),
            (WritePersonal, Some(Role::Member), false, false, Some(403)),
            (WritePersonal, None, true, true, Some(404)),
            (WriteSecrets, Some(Role::Member), true, false, None),
            (
                ReadEnvironmentKey,
                Some(Role::Owner),
                false,
                false,
                Some(403),
            ),
            (RotateKey, Some(Role::Member), true, false, Some(403)),
            (RotateKey, Some(Role::Admin), false, true, Some(403)),
            (RotateKey, Some(Role::Admin), true, false, None),
            (CreateProject, Some(Role::Member), false, false, Some(403)),
            (CreateProject, Some(Role::Admin), false, false, None),
            (ManageMembers, Some(Role::Owner), false, false, None),
            (ReadAudit, Some(Role::Member), false, false, Some(403)),
            (ReadWorkspace, Some(Role::Member), false, false, None),
            (
                CreateEnvironment,
                Some(Role::Admin),
                false,
                false,
                Some(403),
            ),
            (ExportBackup, Some(Role::Member), true, false, Some(403)),
            (ExportBackup, Some(Role::Admin), false, false, None),
            (ExportBackup, None, false, false, Some(404)),
            (ImportBackup, Some(Role::Admin), true, false, Some(403)),
            (ImportBackup, Some(Role::Owner), false, false, None),
            (RenameWorkspace, Some(Role::Member), false, false, Some(403)),
            (RenameWorkspace, Some(Role::Admin), false, false, None),
            (RenameWorkspace, None, false, false, Some(404)),
            (DeleteWorkspace, Some(Role::Admin), true, false, Some(403)),
            (DeleteWorkspace, Some(Role::Owner), false, false, None),
            (DeleteWorkspace, None, false, false, Some(404)),
            (RenameProject, Some(Role::Member), true, false, Some(403)),
            (RenameProject, Some(Role::Admin), false, false, None),
            (DeleteProject, Some(Role::Member), true, false, Some(403)),
            (DeleteProject, Some(Role::Admin), false, false, None),
            (
                RenameEnvironment,
                Some(Role::Member),
                true,
                false,
                Some(403),
            ),
            (RenameEnvironment, Some(Role::Admin), false, true, Some(403)),
            (RenameEnvironment, Some(Role::Admin), true, false, None),
            (
                DeleteEnvironment,
                Some(Role::Member),
                true,
                false,
                Some(403),
            ),
            (DeleteEnvironment, Some(Role::Admin), true, false, None),
            (DeleteEnvironment, None, true, false, Some(404)),
        ];
        for (action, role, pk, grant, expected) in cases {
            let got = decide(*action, &facts(*role, *pk, *grant))
                .err()
                .map(|e| e.status().as_u16());
            assert_eq!(got, *expected, "{action:?} {role:?} pk={pk} grant={grant}");
        }
        let err = decide(ReadSecrets, &facts(Some(Role::Member), false, false)).unwrap_err();
        assert_eq!(err.to_string(), "no access to production");
        let mut personal = facts(Some(Role::Owner), true, false);
        personal.personal = true;
        assert!(decide(ManageMembers, &personal).is_err());
        assert_eq!(
            decide(DeleteWorkspace, &personal).unwrap_err().to_string(),
            "a personal workspace cannot be deleted"
        );
        assert!(decide(RenameWorkspace, &personal).is_ok());
        let mut own = own_keys_facts();
        own.what = OWN_ACCOUNT.into();
        assert!(decide(ImportBackup, &own).is_ok());
        assert_eq!(
            decide(ExportBackup, &own).unwrap_err().status().as_u16(),
            403
        );
    }

    /// Inviting and removing members: the rules beyond "admins and the owner manage members".
    #[test]
    fn member_decisions() {
        use Action::*;
        let status = |action: Action, facts: &Facts| {
            decide(action, facts).err().map(|e| e.status().as_u16())
        };
        let member = |caller: Role, target: Option<Role>, is_self: bool| Facts {
            what: "workspace w".into(),
            role: Some(caller),
            member: Some(MemberFacts {
                role: target,
                is_self,
            }),
            personal: false,
            project_key: false,
            grant: false,
            slug: None,
            system_key: None,
        };
        // Nobody invites a second owner; admins and the owner invite admins and members.
        assert_eq!(
            status(Invite(Role::Owner), &member(Role::Owner, None, false)),
            Some(400)
        );
        assert_eq!(
            status(Invite(Role::Admin), &member(Role::Admin, None, false)),
            None
        );
        assert_eq!(
            status(Invite(Role::Member), &member(Role::Owner, None, false)),
            None
        );
        assert_eq!(
            status(Invite(Role::Member), &member(Role::Member, None, false)),
            Some(403)
        );
        // Only the owner removes an admin; an admin removes members; nobody removes themself.
        let admin = Some(Role::Admin);
        assert_eq!(
            status(RemoveMember, &member(Role::Admin, admin, false)),
            Some(403)
        );
        assert_eq!(
            status(RemoveMember, &member(Role::Owner, admin, false)),
            None
        );
        assert_eq!(
            status(
                RemoveMember,
                &member(Role::Admin, Some(Role::Member), false)
            ),
            None
        );
        assert_eq!(
            status(
                RemoveMember,
                &member(Role::Member, Some(Role::Member), false)
            ),
            Some(403)
        );
        assert_eq!(
            status(RemoveMember, &member(Role::Admin, admin, true)),
            Some(400)
        );
        // A non-member target reaches the store, which answers 404.
        assert_eq!(
            status(RemoveMember, &member(Role::Owner, None, false)),
            None
        );
        let mut personal = member(Role::Owner, Some(Role::Member), false);
        personal.personal = true;
        assert_eq!(status(RemoveMember, &personal), Some(403));
        assert_eq!(status(Invite(Role::Member), &personal), Some(403));
        // A system key does neither.
        let mut key = member(Role::Owner, None, false);
        key.role = None;
        key.system_key = Some(SystemKeyFacts {
            exists: true,
            name: "w".into(),
            in_scope: true,
            grant: true,
            permission: ApiKeyPermission::Readwrite,
        });
        assert_eq!(status(Invite(Role::Member), &key), Some(403));
        assert_eq!(status(RemoveMember, &key), Some(403));
        // Nor does it write personal overrides, even readwrite and in scope.
        assert_eq!(status(WritePersonal, &key), Some(403));
    }

    /// A system key lists the environments its scopes cover: one (`proj:env`) or all (`proj:*`).
    #[test]
    fn system_key_environments() {
        let project = ProjectId::random();
        let env = |slug: &str| Environment {
            id: EnvironmentId::random(),
            project_id: project,
            slug: slug.into(),
            name: slug.into(),
            key_version: 1,
            created_at: 0,
        };
        let all = vec![env("staging"), env("production")];
        let key = |scopes: Vec<ApiKeyScope>| SystemKeyPrincipal {
            key_id: ApiKeyId::random(),
            label: "ci".into(),
            author: "ci (system key)".into(),
            permission: ApiKeyPermission::Read,
            scopes,
        };
        let slugs = |k: &SystemKeyPrincipal, p: &ProjectId| -> Vec<String> {
            environments_for_system_key(k, p, all.clone())
                .into_iter()
                .map(|e| e.slug)
                .collect()
        };
        let one = key(vec![ApiKeyScope {
            project_id: project,
            environment_id: Some(all[1].id),
        }]);
        assert_eq!(slugs(&one, &project), ["production"]);
        let star = key(vec![ApiKeyScope {
            project_id: project,
            environment_id: None,
        }]);
        assert_eq!(slugs(&star, &project), ["staging", "production"]);
        let other = ProjectId::random();
        assert!(slugs(&star, &other).is_empty());
    }
}
