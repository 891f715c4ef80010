//! The route table: every route of `/v1` as an [`Endpoint`] (method, path template, body
//! limit), and the functions clients call to build a concrete path.
//!
//! This is the one list of routes. The server's router is built from [`Endpoint::ALL`]
//! (`klef-server/src/routes/mod.rs` maps each endpoint to its handler with an exhaustive
//! `match`), the `OpenAPI` check compares `openapi.json` with it, and the clients (the CLI's
//! remote backend, `cargo xtask soak`) build their paths with the functions below, which fill
//! the same templates. A new route is one [`Endpoint`] variant, one arm in the server's
//! `handler`, one entry in `openapi.json` and, if a client calls it, one function here.

use std::fmt;

use crate::ids::{AccountId, ApiKeyId, EnvironmentId, InviteId, ProjectId, WorkspaceId};

/// The API version prefix of every route.
pub const API_PREFIX: &str = "/v1";

/// The largest request body the server accepts (16 MiB: a push of 10,000 secrets, or a dozen
/// values at the 1 MiB limit once base64-encoded); larger bodies get `413`
/// ([`codes::PAYLOAD_TOO_LARGE`](super::codes::PAYLOAD_TOO_LARGE)).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The largest backup archive `POST /v1/import` accepts (64 MiB); the backup routes have this
/// limit instead of [`MAX_BODY_BYTES`].
pub const MAX_BACKUP_BYTES: usize = 64 * 1024 * 1024;

/// The HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// The method as HTTP spells it (`GET`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Path templates, one per path. Parameters are written `{name}`, as axum reads them.

/// `GET`: liveness and database check, no authentication.
pub const HEALTH: &str = "/v1/health";
/// `GET`: the `OpenAPI` 3.1 document, no authentication.
pub const OPENAPI: &str = "/v1/openapi.json";
/// `POST` [`SignupRequest`](super::SignupRequest).
pub const SIGNUP: &str = "/v1/signup";
/// `POST` [`LoginRequest`](super::LoginRequest).
pub const LOGIN: &str = "/v1/login";
/// `POST`: revokes the current session (`204`).
pub const LOGOUT: &str = "/v1/logout";
/// `GET` [`MeResponse`](super::MeResponse).
pub const ME: &str = "/v1/me";
/// `GET` [`AccountKeyHistory`](super::AccountKeyHistory), `PUT`
/// [`ReplaceKeysRequest`](super::ReplaceKeysRequest) (`204`).
pub const ME_KEYS: &str = "/v1/me/keys";
/// `PUT` [`PublishIdentityRequest`](super::PublishIdentityRequest) (`204`).
pub const ME_IDENTITY: &str = "/v1/me/identity";
/// `GET` [`AccountStateResponse`](super::AccountStateResponse), `PUT`
/// [`PutAccountStateRequest`](super::PutAccountStateRequest).
pub const ME_STATE: &str = "/v1/me/state";
/// `GET` [`WorkspaceList`](super::WorkspaceList), `POST`
/// [`CreateWorkspaceRequest`](super::CreateWorkspaceRequest).
pub const WORKSPACES: &str = "/v1/workspaces";
/// `GET` [`ProjectList`](super::ProjectList), `POST`
/// [`CreateProjectRequest`](super::CreateProjectRequest); see [`projects`].
pub const PROJECTS: &str = "/v1/workspaces/{workspace_id}/projects";
/// `PUT` [`RenameWorkspaceRequest`](super::RenameWorkspaceRequest), `DELETE` (`204`); see
/// [`workspace`].
pub const WORKSPACE: &str = "/v1/workspaces/{workspace_id}";
/// `GET` a [`Project`](crate::model::Project), `PUT`
/// [`RenameProjectRequest`](super::RenameProjectRequest), `DELETE` (`204`); see [`project`].
pub const PROJECT: &str = "/v1/projects/{project_id}";
/// `GET` [`EnvironmentList`](super::EnvironmentList), `POST`
/// [`CreateEnvironmentRequest`](super::CreateEnvironmentRequest); see [`environments`].
pub const ENVIRONMENTS: &str = "/v1/projects/{project_id}/environments";
/// `PUT` [`RenameEnvironmentRequest`](super::RenameEnvironmentRequest), `DELETE` (`204`); see
/// [`environment`].
pub const ENVIRONMENT: &str = "/v1/environments/{environment_id}";
/// `GET` [`EnvironmentKeyResponse`](super::EnvironmentKeyResponse); see [`environment_key`].
pub const ENVIRONMENT_KEY: &str = "/v1/environments/{environment_id}/key";
/// `GET` [`SecretList`](super::SecretList), `POST`
/// [`WriteSecretsRequest`](super::WriteSecretsRequest); see [`secrets`].
pub const SECRETS: &str = "/v1/environments/{environment_id}/secrets";
/// `PUT` [`PutPersonalRequest`](super::PutPersonalRequest), answering a
/// [`PersonalRecord`](crate::model::PersonalRecord); see [`personal`].
pub const PERSONAL: &str = "/v1/environments/{environment_id}/personal";
/// `GET` [`SecretList`](super::SecretList) of one name's history; see [`secret_history`].
pub const SECRET_HISTORY: &str = "/v1/environments/{environment_id}/secrets/{name}/history";
/// `GET` [`GrantList`](super::GrantList); see [`grants`].
pub const GRANTS: &str = "/v1/environments/{environment_id}/grants";
/// `POST` [`RotateRequest`](super::RotateRequest); see [`rotate`].
pub const ROTATE: &str = "/v1/environments/{environment_id}/rotate";
/// `POST` [`RotateProjectKeyRequest`](super::RotateProjectKeyRequest) (`204`).
pub const PROJECT_ROTATE: &str = "/v1/projects/{project_id}/rotate";
/// `POST` [`CreateInvitationRequest`](super::CreateInvitationRequest); see [`invitations`].
pub const WORKSPACE_INVITATIONS: &str = "/v1/workspaces/{workspace_id}/invitations";
/// `DELETE`: cancels an open invitation (`204`); see [`invitation`].
pub const WORKSPACE_INVITATION: &str = "/v1/workspaces/{workspace_id}/invitations/{invitation_id}";
/// `GET` [`InvitationList`](super::InvitationList).
pub const INVITATIONS: &str = "/v1/invitations";
/// `POST`: accepts an invitation; see [`accept_invitation`].
pub const ACCEPT_INVITATION: &str = "/v1/invitations/{invitation_id}/accept";
/// `GET` [`MemberList`](super::MemberList); see [`members`].
pub const MEMBERS: &str = "/v1/workspaces/{workspace_id}/members";
/// `GET` [`RosterList`](super::RosterList) (`?after=N`), `POST` a [`RosterList`](super::RosterList)
/// to append (`204`).
pub const ROSTER: &str = "/v1/workspaces/{workspace_id}/roster";
/// `POST` [`ConfirmMemberRequest`](super::ConfirmMemberRequest); see [`confirm_member`].
pub const CONFIRM_MEMBER: &str = "/v1/workspaces/{workspace_id}/members/{account_id}/confirm";
/// `DELETE`: removes a member; see [`member`].
pub const MEMBER: &str = "/v1/workspaces/{workspace_id}/members/{account_id}";
/// `GET` [`AuditList`](super::AuditList); see [`audit`].
pub const AUDIT: &str = "/v1/workspaces/{workspace_id}/audit";
/// `GET` [`ApiKeyList`](super::ApiKeyList), `POST`
/// [`CreateApiKeyRequest`](super::CreateApiKeyRequest).
pub const API_KEYS: &str = "/v1/api-keys";
/// `PUT` [`PutApiKeyRequest`](super::PutApiKeyRequest), `DELETE` (revoke); see [`api_key`].
pub const API_KEY: &str = "/v1/api-keys/{api_key_id}";
/// `GET` the [`ApiKeyInfo`](super::ApiKeyInfo) of the API key making the request.
pub const ME_API_KEY: &str = "/v1/me/api-key";
/// `GET` [`ApiKeyRecipientList`](super::ApiKeyRecipientList); see [`api_key_recipients`].
pub const API_KEY_RECIPIENTS: &str = "/v1/projects/{project_id}/api-key-recipients";
/// `GET`: the workspace's backup archive; see [`workspace_export`].
pub const WORKSPACE_EXPORT: &str = "/v1/workspaces/{workspace_id}/export";
/// `POST` a backup archive (`application/octet-stream`, at most [`MAX_BACKUP_BYTES`]); query
/// [`ImportBackupParams`](super::ImportBackupParams); answers
/// [`ImportBackupResponse`](super::ImportBackupResponse).
pub const IMPORT: &str = "/v1/import";

/// Declares [`Endpoint`] and [`Endpoint::ALL`] from one list, so the two cannot drift.
macro_rules! endpoints {
    ($($(#[$doc:meta])* $name:ident => $method:ident $path:ident,)*) => {
        /// One route of the server: a method on a path template. The server serves exactly
        /// [`Endpoint::ALL`], in this order (the order of `docs/server.md`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Endpoint {
            $($(#[$doc])* $name,)*
        }

        impl Endpoint {
            /// Every route.
            pub const ALL: &[Endpoint] = &[$(Endpoint::$name,)*];

            /// The route's method.
            #[must_use]
            pub const fn method(self) -> Method {
                match self {
                    $(Endpoint::$name => Method::$method,)*
                }
            }

            /// The route's path template (`/v1/projects/{project_id}`).
            #[must_use]
            pub const fn path(self) -> &'static str {
                match self {
                    $(Endpoint::$name => $path,)*
                }
            }
        }
    };
}

endpoints! {
    /// `GET /v1/health`.
    Health => Get HEALTH,
    /// `GET /v1/openapi.json`.
    OpenApi => Get OPENAPI,
    /// Creates an account.
    Signup => Post SIGNUP,
    /// Signs in.
    Login => Post LOGIN,
    /// Revokes the current session.
    Logout => Post LOGOUT,
    /// The caller's account.
    Me => Get ME,
    /// The earlier seals of the caller's master key.
    AccountKeyHistory => Get ME_KEYS,
    /// Replaces the caller's sealed keys.
    ReplaceKeys => Put ME_KEYS,
    /// Publishes the caller's identity key once.
    PublishIdentity => Put ME_IDENTITY,
    /// The caller's sealed pins.
    AccountState => Get ME_STATE,
    /// Replaces the caller's sealed pins.
    PutAccountState => Put ME_STATE,
    /// Lists the caller's workspaces.
    Workspaces => Get WORKSPACES,
    /// Creates a workspace.
    CreateWorkspace => Post WORKSPACES,
    /// Lists a workspace's projects.
    Projects => Get PROJECTS,
    /// Creates a project.
    CreateProject => Post PROJECTS,
    /// One project.
    Project => Get PROJECT,
    /// Lists a project's environments.
    Environments => Get ENVIRONMENTS,
    /// Creates an environment.
    CreateEnvironment => Post ENVIRONMENTS,
    /// The caller's copy of an environment key.
    EnvironmentKey => Get ENVIRONMENT_KEY,
    /// Lists an environment's secrets.
    Secrets => Get SECRETS,
    /// Writes secrets.
    WriteSecrets => Post SECRETS,
    /// One name's history.
    SecretHistory => Get SECRET_HISTORY,
    /// Replaces the caller's own personal overrides of an environment.
    PutPersonal => Put PERSONAL,
    /// Lists an environment's direct grants.
    Grants => Get GRANTS,
    /// Rotates an environment key.
    Rotate => Post ROTATE,
    /// Rotates a project key.
    RotateProjectKey => Post PROJECT_ROTATE,
    /// Invites someone to a workspace.
    Invite => Post WORKSPACE_INVITATIONS,
    /// Cancels an open invitation.
    CancelInvitation => Delete WORKSPACE_INVITATION,
    /// Lists the caller's open invitations.
    MyInvitations => Get INVITATIONS,
    /// Accepts an invitation.
    AcceptInvitation => Post ACCEPT_INVITATION,
    /// Lists a workspace's members.
    Members => Get MEMBERS,
    /// A workspace's signed roster.
    Roster => Get ROSTER,
    /// Appends to a workspace's signed roster.
    AppendRoster => Post ROSTER,
    /// Confirms an accepted invitee.
    ConfirmMember => Post CONFIRM_MEMBER,
    /// Removes a member.
    RemoveMember => Delete MEMBER,
    /// A workspace's audit log.
    Audit => Get AUDIT,
    /// Lists API keys.
    ApiKeys => Get API_KEYS,
    /// Registers an API key.
    CreateApiKey => Post API_KEYS,
    /// Replaces a system key's scopes.
    PutApiKey => Put API_KEY,
    /// Revokes an API key.
    RevokeApiKey => Delete API_KEY,
    /// The API key making the request.
    CurrentApiKey => Get ME_API_KEY,
    /// The system keys a new environment's key goes to.
    ApiKeyRecipients => Get API_KEY_RECIPIENTS,
    /// A workspace's backup archive.
    ExportWorkspace => Get WORKSPACE_EXPORT,
    /// Restores a backup archive.
    ImportBackup => Post IMPORT,
    /// Renames a workspace.
    RenameWorkspace => Put WORKSPACE,
    /// Deletes a team workspace with everything in it.
    DeleteWorkspace => Delete WORKSPACE,
    /// Renames a project.
    RenameProject => Put PROJECT,
    /// Deletes a project with its environments and secrets.
    DeleteProject => Delete PROJECT,
    /// Renames an environment (a new slug and name).
    RenameEnvironment => Put ENVIRONMENT,
    /// Deletes an environment with its secrets.
    DeleteEnvironment => Delete ENVIRONMENT,
}

impl Endpoint {
    /// The largest request body the route accepts.
    #[must_use]
    pub const fn max_body(self) -> usize {
        match self {
            Self::ExportWorkspace | Self::ImportBackup => MAX_BACKUP_BYTES,
            _ => MAX_BODY_BYTES,
        }
    }
}

/// Fills the `{…}` parameters of `template` with `args`, in order.
fn fill(template: &str, args: &[&dyn fmt::Display]) -> String {
    let mut out = String::with_capacity(template.len() + 36 * args.len());
    let mut args = args.iter();
    for (i, segment) in template.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if segment.starts_with('{') {
            let arg = args.next().expect("one argument per path parameter");
            out.push_str(&arg.to_string());
        } else {
            out.push_str(segment);
        }
    }
    debug_assert!(args.next().is_none(), "more arguments than path parameters");
    out
}

/// [`WORKSPACE`].
#[must_use]
pub fn workspace(ws: &WorkspaceId) -> String {
    fill(WORKSPACE, &[ws])
}

/// [`ENVIRONMENT`].
#[must_use]
pub fn environment(env: &EnvironmentId) -> String {
    fill(ENVIRONMENT, &[env])
}

/// [`PROJECTS`] of a workspace.
#[must_use]
pub fn projects(ws: &WorkspaceId) -> String {
    fill(PROJECTS, &[ws])
}

/// [`PROJECT`].
#[must_use]
pub fn project(id: &ProjectId) -> String {
    fill(PROJECT, &[id])
}

/// [`ENVIRONMENTS`] of a project.
#[must_use]
pub fn environments(project: &ProjectId) -> String {
    fill(ENVIRONMENTS, &[project])
}

/// [`ENVIRONMENT_KEY`].
#[must_use]
pub fn environment_key(env: &EnvironmentId) -> String {
    fill(ENVIRONMENT_KEY, &[env])
}

/// [`SECRETS`] of an environment.
#[must_use]
pub fn secrets(env: &EnvironmentId) -> String {
    fill(SECRETS, &[env])
}

/// [`SECRETS`] with the manifests `since` asks for (`?manifests=anchor` or `?manifests=N`).
#[must_use]
pub fn secrets_with_manifests(env: &EnvironmentId, since: crate::model::ManifestsSince) -> String {
    use crate::model::ManifestsSince;
    let path = secrets(env);
    match since {
        ManifestsSince::Nothing => path,
        ManifestsSince::Anchor => format!("{path}?manifests=anchor"),
        ManifestsSince::Revision(n) => format!("{path}?manifests={n}"),
    }
}

/// [`SECRETS`] asking what changed after signed revision `after`, for a caller holding
/// revision `personal` of its personal overrides (`?changes_since=N&personal=R`): `304 Not
/// Modified` when nothing did.
#[must_use]
pub fn secrets_changed_since(env: &EnvironmentId, after: u64, personal: u64) -> String {
    format!("{}?changes_since={after}&personal={personal}", secrets(env))
}

/// [`PERSONAL`] of an environment.
#[must_use]
pub fn personal(env: &EnvironmentId) -> String {
    fill(PERSONAL, &[env])
}

/// [`SECRET_HISTORY`]. `name` is a validated key name (`[A-Za-z_][A-Za-z0-9_]*`), so it needs
/// no percent-encoding.
#[must_use]
pub fn secret_history(env: &EnvironmentId, name: &str) -> String {
    fill(SECRET_HISTORY, &[env, &name])
}

/// [`GRANTS`] of an environment.
#[must_use]
pub fn grants(env: &EnvironmentId) -> String {
    fill(GRANTS, &[env])
}

/// [`ROTATE`].
#[must_use]
pub fn rotate(env: &EnvironmentId) -> String {
    fill(ROTATE, &[env])
}

/// [`PROJECT_ROTATE`].
#[must_use]
pub fn project_rotate(project: &ProjectId) -> String {
    fill(PROJECT_ROTATE, &[project])
}

/// [`WORKSPACE_INVITATIONS`].
#[must_use]
pub fn invitations(ws: &WorkspaceId) -> String {
    fill(WORKSPACE_INVITATIONS, &[ws])
}

/// [`WORKSPACE_INVITATION`].
#[must_use]
pub fn invitation(ws: &WorkspaceId, id: &InviteId) -> String {
    fill(WORKSPACE_INVITATION, &[ws, id])
}

/// [`ACCEPT_INVITATION`].
#[must_use]
pub fn accept_invitation(id: &InviteId) -> String {
    fill(ACCEPT_INVITATION, &[id])
}

/// [`ROSTER`].
#[must_use]
pub fn roster(ws: &WorkspaceId) -> String {
    fill(ROSTER, &[ws])
}

/// [`MEMBERS`].
#[must_use]
pub fn members(ws: &WorkspaceId) -> String {
    fill(MEMBERS, &[ws])
}

/// [`MEMBER`].
#[must_use]
pub fn member(ws: &WorkspaceId, account: &AccountId) -> String {
    fill(MEMBER, &[ws, account])
}

/// [`CONFIRM_MEMBER`].
#[must_use]
pub fn confirm_member(ws: &WorkspaceId, account: &AccountId) -> String {
    fill(CONFIRM_MEMBER, &[ws, account])
}

/// [`AUDIT`].
#[must_use]
pub fn audit(ws: &WorkspaceId) -> String {
    fill(AUDIT, &[ws])
}

/// [`API_KEY`].
#[must_use]
pub fn api_key(id: &ApiKeyId) -> String {
    fill(API_KEY, &[id])
}

/// [`API_KEY_RECIPIENTS`].
#[must_use]
pub fn api_key_recipients(project: &ProjectId) -> String {
    fill(API_KEY_RECIPIENTS, &[project])
}

/// [`WORKSPACE_EXPORT`].
#[must_use]
pub fn workspace_export(ws: &WorkspaceId) -> String {
    fill(WORKSPACE_EXPORT, &[ws])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn routes_are_under_the_prefix_and_unique() {
        let mut seen = BTreeSet::new();
        for endpoint in Endpoint::ALL {
            assert!(endpoint.path().starts_with(API_PREFIX), "{endpoint:?}");
            assert!(
                seen.insert((endpoint.method(), endpoint.path())),
                "{endpoint:?} listed twice"
            );
        }
    }

    #[test]
    fn builders_fill_the_templates() {
        let ws = WorkspaceId::random();
        let account = AccountId::random();
        let env = EnvironmentId::random();
        assert_eq!(projects(&ws), format!("/v1/workspaces/{ws}/projects"));
        assert_eq!(
            confirm_member(&ws, &account),
            format!("/v1/workspaces/{ws}/members/{account}/confirm")
        );
        assert_eq!(
            secret_history(&env, "API_KEY"),
            format!("/v1/environments/{env}/secrets/API_KEY/history")
        );
    }

    #[test]
    fn only_the_backup_routes_take_archives() {
        let big: Vec<_> = Endpoint::ALL
            .iter()
            .filter(|e| e.max_body() == MAX_BACKUP_BYTES)
            .collect();
        assert_eq!(
            big,
            [&Endpoint::ExportWorkspace, &Endpoint::ImportBackup],
            "{big:?}"
        );
    }
}
