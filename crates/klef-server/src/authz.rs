//! Authentication ([`Principal`] from the bearer token) and authorization: every permission
//! decision is made by [`authorize`], which loads the facts from the database and hands them to
//! the pure [`decide`]. Handlers never check roles themselves.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use klef_core::crypto::sha256_hex;
use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{Environment, Role, Timestamp};
use klef_store::server::{Actor, ActorKind, now_ms};

use crate::AppState;
use crate::error::ApiError;

/// Who is calling. API keys (user and system, a later issue) become further variants, decided
/// by the same [`authorize`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Principal {
    /// A signed-in person (a `klef_sess_…` token).
    Session(SessionPrincipal),
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

impl Principal {
    /// The account acting (every principal today acts as one).
    #[must_use]
    pub fn account(&self) -> &AccountId {
        match self {
            Principal::Session(s) => &s.account,
        }
    }

    /// How the principal appears in the audit log and as a secret's author.
    #[must_use]
    pub fn label(&self) -> &str {
        match self {
            Principal::Session(s) => &s.email,
        }
    }

    /// The audit-log actor.
    #[must_use]
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Session(s) => Actor {
                kind: ActorKind::Account,
                id: Some(s.account.to_string()),
                label: Some(s.email.clone()),
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
        if token.starts_with("klef_user_") || token.starts_with("klef_sys_") {
            return Err(ApiError::Unauthenticated(
                "this server does not accept API keys yet".into(),
            ));
        }
        Err(ApiError::Unauthenticated(
            "the bearer token is not a Klef token".into(),
        ))
    }
}

/// What the principal wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List a workspace's projects.
    ReadWorkspace,
    /// Create a project in a workspace.
    CreateProject,
    /// Invite, list, confirm and remove members.
    ManageMembers,
    /// Read the audit log.
    ReadAudit,
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
    /// List an environment's direct grants.
    ListGrants,
    /// Rotate an environment's key.
    RotateKey,
}

/// What it is done to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A workspace.
    Workspace(WorkspaceId),
    /// A project.
    Project(ProjectId),
    /// An environment.
    Environment(EnvironmentId),
}

/// Everything [`decide`] needs, loaded by [`authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// How to name the resource in a not-found message.
    pub what: String,
    /// The principal's role in the resource's workspace (`None`: not a member, or no such
    /// resource).
    pub role: Option<Role>,
    /// Whether the workspace is someone's personal one.
    pub personal: bool,
    /// Whether the principal holds the project key (project and environment resources).
    pub project_key: bool,
    /// Whether the principal holds a direct grant (environment resources).
    pub grant: bool,
    /// The environment's slug (environment resources).
    pub slug: Option<String>,
}

/// The decision: `Ok` or the error to answer.
pub fn decide(action: Action, facts: &Facts) -> Result<(), ApiError> {
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
    let no_access = || {
        ApiError::Forbidden(format!(
            "no access to {}",
            facts.slug.as_deref().unwrap_or("this environment")
        ))
    };
    match action {
        Action::ReadWorkspace | Action::ReadProject => Ok(()),
        Action::CreateProject | Action::ReadAudit | Action::ListGrants => require_admin(),
        Action::ManageMembers => {
            require_admin()?;
            if facts.personal {
                Err(ApiError::Forbidden(
                    "a personal workspace cannot be shared; create a team workspace".into(),
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
        Action::ReadEnvironmentKey | Action::ReadSecrets | Action::WriteSecrets => {
            if facts.project_key || facts.grant {
                Ok(())
            } else {
                Err(no_access())
            }
        }
        Action::RotateKey => {
            require_admin()?;
            if facts.project_key {
                Ok(())
            } else {
                Err(no_access())
            }
        }
    }
}

/// What an authorized request may use: the workspace and, for environment resources, the
/// environment.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The resource's workspace.
    pub workspace_id: WorkspaceId,
    /// The environment, for environment resources.
    pub environment: Option<Environment>,
}

/// Decides whether `principal` may do `action` on `resource`; the only place that does.
pub async fn authorize(
    state: &AppState,
    principal: &Principal,
    action: Action,
    resource: Resource,
) -> Result<Authorized, ApiError> {
    let store = &state.store;
    let account = principal.account();
    let (workspace_id, environment, project, what) = match resource {
        Resource::Workspace(ws) => (Some(ws), None, None, format!("workspace {ws}")),
        Resource::Project(p) => (
            store.project_workspace(&p).await?,
            None,
            Some(p),
            format!("project {p}"),
        ),
        Resource::Environment(e) => match store.environment_context(&e).await? {
            Some((env, ws)) => {
                let project = env.project_id;
                (
                    Some(ws),
                    Some(env),
                    Some(project),
                    format!("environment {e}"),
                )
            }
            None => (None, None, None, format!("environment {e}")),
        },
    };
    let role = match &workspace_id {
        Some(ws) => store.role_in(account, ws).await?,
        None => None,
    };
    let personal = match (&workspace_id, role) {
        (Some(ws), Some(_)) => store
            .workspaces_for(account)
            .await?
            .iter()
            .any(|w| w.id == *ws && w.personal),
        _ => false,
    };
    let (project_key, grant) = match (&project, role) {
        (Some(p), Some(_)) => {
            store
                .key_holdings(account, p, environment.as_ref().map(|e| &e.id))
                .await?
        }
        _ => (false, false),
    };
    let facts = Facts {
        what,
        role,
        personal,
        project_key,
        grant,
        slug: environment.as_ref().map(|e| e.slug.clone()),
    };
    decide(action, &facts)?;
    let workspace_id = workspace_id.ok_or_else(|| ApiError::NotFound(facts.what.clone()))?;
    Ok(Authorized {
        workspace_id,
        environment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(role: Option<Role>, project_key: bool, grant: bool) -> Facts {
        Facts {
            what: "environment x".into(),
            role,
            personal: false,
            project_key,
            grant,
            slug: Some("production".into()),
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
    }
}
