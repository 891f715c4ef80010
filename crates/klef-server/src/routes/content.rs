//! Workspaces, projects, environments, secrets and key rotation: the remote side of
//! [`Backend`](klef_core::backend::Backend). Sessions and user keys act as their account; a
//! system key reaches only the projects, environments and secrets of its scopes.

use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use klef_core::crypto::EnvelopeShape;
use klef_core::ids::{EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{EnvironmentKeyAccess, ManifestsSince, PersonalRecord, Project};
use klef_core::names::validate_key_name;
use klef_core::wire::{
    ApiKeyRecipientList, CreateEnvironmentRequest, CreateProjectRequest, CreateWorkspaceRequest,
    EnvironmentKeyResponse, EnvironmentList, GrantList, ProjectList, PutPersonalRequest,
    RotateRequest, RotateResponse, SecretList, WorkspaceList, WriteSecretsRequest,
    WriteSecretsResponse,
};
use klef_store::EnvironmentCreation;
use klef_store::server::{RotateOutcome, now_ms};
use serde::Deserialize;
use tracing::instrument;

use super::{audit_by, created, shapes};
use crate::AppState;
use crate::authz::{self, Action, Principal, Resource, authorize};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

/// `?manifests=anchor|N` or `?changes_since=N` on `GET …/secrets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretsQuery {
    manifests: Option<String>,
    changes_since: Option<String>,
    personal: Option<String>,
}

/// Most writes accepted in one batch.
const MAX_WRITES: usize = 10_000;

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn workspaces(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<WorkspaceList>, ApiError> {
    let workspaces = state.store.workspaces_for(principal.account()?).await?;
    Ok(axum::Json(WorkspaceList { workspaces }))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn create_workspace(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(req): ApiJson<CreateWorkspaceRequest>,
) -> Result<Response, ApiError> {
    let mut ws = req.workspace;
    if ws.personal {
        return Err(ApiError::InvalidRequest(
            "every account has one personal workspace, made at sign-up".into(),
        ));
    }
    ws.created_at = now_ms();
    if let Some(genesis) = &req.genesis {
        super::identity::check_entries(&ws.id, std::slice::from_ref(genesis))?;
    }
    let audit = audit_by(
        &principal,
        Some(ws.id),
        "workspace.create",
        format!("workspace {} ({})", ws.id, ws.name),
    );
    state
        .store
        .create_workspace(
            principal.account()?,
            &ws,
            req.genesis.as_ref(),
            Some(&audit),
        )
        .await?;
    Ok(created(ws))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn projects(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(ws): ApiPath<WorkspaceId>,
) -> Result<axum::Json<ProjectList>, ApiError> {
    authorize(
        &state,
        &principal,
        Action::ReadWorkspace,
        Resource::Workspace(ws),
    )
    .await?;
    let projects = state
        .store
        .projects_visible_to(principal.account()?, &ws)
        .await?;
    Ok(axum::Json(ProjectList { projects }))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn create_project(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(ws): ApiPath<WorkspaceId>,
    ApiJson(req): ApiJson<CreateProjectRequest>,
) -> Result<Response, ApiError> {
    authorize(
        &state,
        &principal,
        Action::CreateProject,
        Resource::Workspace(ws),
    )
    .await?;
    let mut new = req.project;
    if new.project.workspace_id != ws {
        return Err(ApiError::InvalidRequest(
            "project.workspace_id differs from the path".into(),
        ));
    }
    shapes::check(
        "project.project_key",
        &new.project_key,
        EnvelopeShape::WrappedKey,
    )?;
    for e in &new.environments {
        shapes::check(
            &format!("environment {}: sealed_key", e.environment.slug),
            &e.sealed_key,
            EnvelopeShape::SealedKey,
        )?;
    }
    let now = now_ms();
    new.project.created_at = now;
    for env in &mut new.environments {
        env.environment.created_at = now;
    }
    let slugs: Vec<&str> = new
        .environments
        .iter()
        .map(|e| e.environment.slug.as_str())
        .collect();
    let audit = audit_by(
        &principal,
        Some(ws),
        "project.create",
        format!(
            "project {} ({}) with environments {}",
            new.project.id,
            new.project.name,
            slugs.join(", ")
        ),
    );
    state
        .store
        .create_project(principal.account()?, &new, Some(&audit))
        .await?;
    Ok(created(new.project))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn project(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ProjectId>,
) -> Result<axum::Json<Project>, ApiError> {
    authorize(
        &state,
        &principal,
        Action::ReadProject,
        Resource::Project(id),
    )
    .await?;
    let project = match &principal {
        Principal::SystemKey(_) => state
            .store
            .project_unchecked(&id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("project {id}")))?,
        _ => {
            state
                .store
                .project_visible_to(principal.account()?, &id)
                .await?
        }
    };
    Ok(axum::Json(project))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn environments(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ProjectId>,
) -> Result<axum::Json<EnvironmentList>, ApiError> {
    authorize(
        &state,
        &principal,
        Action::ReadProject,
        Resource::Project(id),
    )
    .await?;
    let environments = match &principal {
        Principal::SystemKey(key) => authz::environments_for_system_key(
            key,
            &id,
            state.store.project_environments(&id).await?,
        ),
        _ => {
            state
                .store
                .environments_for(principal.account()?, &id)
                .await?
        }
    };
    Ok(axum::Json(EnvironmentList { environments }))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn create_environment(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<ProjectId>,
    ApiJson(req): ApiJson<CreateEnvironmentRequest>,
) -> Result<Response, ApiError> {
    let auth = authorize(
        &state,
        &principal,
        Action::CreateEnvironment,
        Resource::Project(project),
    )
    .await?;
    let mut new = req.environment;
    if new.environment.project_id != project {
        return Err(ApiError::InvalidRequest(
            "environment.project_id differs from the path".into(),
        ));
    }
    shapes::check(
        "environment.sealed_key",
        &new.sealed_key,
        EnvelopeShape::SealedKey,
    )?;
    for g in &req.api_key_grants {
        shapes::check(
            &format!("api_key_grants ({})", g.api_key_id),
            &g.wrapped_key,
            EnvelopeShape::WrappedKey,
        )?;
    }
    new.environment.created_at = now_ms();
    let e = &new.environment;
    let audit = audit_by(
        &principal,
        auth.workspace_id,
        "environment.create",
        format!(
            "environment {} ({}) in project {project}, key wrapped to {} system key(s)",
            e.id,
            e.slug,
            req.api_key_grants.len()
        ),
    );
    match state
        .store
        .create_environment(
            principal.account()?,
            &new,
            &req.api_key_grants,
            Some(&audit),
        )
        .await?
    {
        EnvironmentCreation::Created => Ok(created(new.environment)),
        EnvironmentCreation::StaleRecipients { reason } => Err(ApiError::Stale(reason)),
    }
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn environment_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<EnvironmentId>,
) -> Result<axum::Json<EnvironmentKeyResponse>, ApiError> {
    let auth = authorize(
        &state,
        &principal,
        Action::ReadEnvironmentKey,
        Resource::Environment(id),
    )
    .await?;
    let access = match &principal {
        Principal::SystemKey(key) => EnvironmentKeyAccess::Direct {
            environment_key: state
                .store
                .api_key_grant(&key.key_id, &id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("environment {id}")))?,
        },
        _ => {
            state
                .store
                .environment_key_for(principal.account()?, &id)
                .await?
        }
    };
    let environment = auth
        .environment
        .ok_or_else(|| ApiError::NotFound(format!("environment {id}")))?;
    Ok(axum::Json(EnvironmentKeyResponse {
        environment,
        access,
    }))
}

/// The live secrets of an environment. The encoded answer is cached per environment and reused
/// while the environment's revision (read by `authorize`, in the same statement as the access
/// facts) is the one it was read at: two statements per request instead of three plus the
/// encoding of every row.
#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn secrets(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<EnvironmentId>,
    query: Result<Query<SecretsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::InvalidRequest(format!("invalid query: {}", e.body_text())))?;
    let since = match query.manifests.as_deref() {
        None => ManifestsSince::Nothing,
        Some("anchor") => ManifestsSince::Anchor,
        Some(n) => ManifestsSince::Revision(n.parse().map_err(|_| {
            ApiError::InvalidRequest(
                "manifests must be `anchor` or a revision number (a positive integer)".into(),
            )
        })?),
    };
    let changes_since = match query.changes_since.as_deref() {
        None => None,
        Some(_) if since != ManifestsSince::Nothing => {
            return Err(ApiError::InvalidRequest(
                "ask for either manifests or changes_since, not both".into(),
            ));
        }
        Some(n) => Some(n.parse::<u64>().map_err(|_| {
            ApiError::InvalidRequest(
                "changes_since must be a revision number (a positive integer)".into(),
            )
        })?),
    };
    let auth = authorize(
        &state,
        &principal,
        Action::ReadSecrets,
        Resource::Environment(id),
    )
    .await?;
    if let Some(after) = changes_since {
        // A revalidating reader: `304` when its revision is still the newest and its personal
        // overrides the ones it holds (one small answer whatever the environment's size),
        // else only what changed, with the caller's own record.
        let known = match query.personal.as_deref() {
            None => 0,
            Some(r) => r.parse::<u64>().map_err(|_| {
                ApiError::InvalidRequest("personal must be a revision number".into())
            })?,
        };
        let personal = match &principal {
            Principal::SystemKey(_) => None,
            Principal::Session(_) | Principal::UserKey(_) => {
                state.store.personal(&id, principal.account()?).await?
            }
        };
        return Ok(
            match state
                .store
                .environment_changes(&id, after, personal, known)
                .await?
            {
                None => StatusCode::NOT_MODIFIED.into_response(),
                Some(got) => axum::Json(SecretList {
                    secrets: got.secrets,
                    manifests: got.manifests,
                    deleted: got.deleted,
                    personal: got.personal,
                })
                .into_response(),
            },
        );
    }
    if since != ManifestsSince::Nothing {
        // Values and manifests from the same read, never from the list cache: a verifying
        // client checks one against the other.
        let got = state.store.environment_state(&id, since).await?;
        // The caller's own personal overrides (a member's; a system key has none), so a read
        // needs no second round trip.
        let personal = match &principal {
            Principal::SystemKey(_) => None,
            Principal::Session(_) | Principal::UserKey(_) => {
                state.store.personal(&id, principal.account()?).await?
            }
        };
        return Ok(axum::Json(SecretList {
            secrets: got.secrets,
            manifests: got.manifests,
            deleted: got.deleted,
            personal,
        })
        .into_response());
    }
    if let Some(body) = auth
        .revision
        .as_ref()
        .and_then(|r| state.secret_lists.get(&id, r))
    {
        return Ok(json_bytes(body));
    }
    let (secrets, revision) = state.store.secrets_snapshot(&id).await?;
    let body = Bytes::from(
        serde_json::to_vec(&SecretList {
            secrets,
            manifests: Vec::new(),
            deleted: Vec::new(),
            personal: None,
        })
        .map_err(|e| ApiError::internal(&format_args!("encoding a secret list: {e}")))?,
    );
    if let Some(revision) = revision {
        state.secret_lists.put(id, revision, body.clone());
    }
    Ok(json_bytes(body))
}

/// A `200` with an already encoded JSON body.
fn json_bytes(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn secret_history(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, name)): ApiPath<(EnvironmentId, String)>,
) -> Result<axum::Json<SecretList>, ApiError> {
    authorize(
        &state,
        &principal,
        Action::ReadSecrets,
        Resource::Environment(id),
    )
    .await?;
    validate_key_name(&name).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    Ok(axum::Json(SecretList {
        secrets: state.store.secret_history(&id, &name).await?,
        manifests: Vec::new(),
        deleted: Vec::new(),
        personal: None,
    }))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn write_secrets(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<EnvironmentId>,
    ApiJson(req): ApiJson<WriteSecretsRequest>,
) -> Result<axum::Json<WriteSecretsResponse>, ApiError> {
    let auth = authorize(
        &state,
        &principal,
        Action::WriteSecrets,
        Resource::Environment(id),
    )
    .await?;
    if (req.writes.is_empty() && req.manifest.is_none()) || req.writes.len() > MAX_WRITES {
        return Err(ApiError::InvalidRequest(format!(
            "send between 1 and {MAX_WRITES} writes (or a manifest alone)"
        )));
    }
    for w in &req.writes {
        if let Some(ciphertext) = &w.ciphertext {
            shapes::check(&w.name, ciphertext, EnvelopeShape::Value)?;
        }
    }
    let slug = auth.environment.map(|e| e.slug).unwrap_or_default();
    // A promotion names where the values came from, which the caller must be able to read
    // (its slug only when it is in the same workspace: this audit log's readers may not see
    // the others).
    let (action, origin) = match &req.promoted_from {
        None => ("secrets.write", String::new()),
        Some(from) => {
            let source = authorize(
                &state,
                &principal,
                Action::ReadSecrets,
                Resource::Environment(*from),
            )
            .await?;
            let named = match source.environment {
                Some(e) if source.workspace_id == auth.workspace_id => {
                    format!(" from environment {from} ({})", e.slug)
                }
                _ => format!(" from environment {from}"),
            };
            ("secrets.promote", named)
        }
    };
    let audit = audit_by(
        &principal,
        auth.workspace_id,
        action,
        format!(
            "environment {id} ({slug}){origin}: {}",
            write_summary(
                req.writes
                    .iter()
                    .map(|w| (w.name.as_str(), w.ciphertext.is_none()))
            )
        ),
    );
    let written = state
        .store
        .write_secrets(
            &id,
            &req.writes,
            req.manifest.as_ref(),
            Some(principal.label()),
            Some(&audit),
        )
        .await?;
    Ok(axum::Json(WriteSecretsResponse { written }))
}

/// Replaces the caller's own personal overrides of an environment (a member who can read it;
/// a system key gets `403`). The row is keyed by the caller's account: nobody else's is read
/// or written. Audited without names or values (the server sees neither).
#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn put_personal(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<EnvironmentId>,
    ApiJson(req): ApiJson<PutPersonalRequest>,
) -> Result<axum::Json<PersonalRecord>, ApiError> {
    let auth = authorize(
        &state,
        &principal,
        Action::WritePersonal,
        Resource::Environment(id),
    )
    .await?;
    // The AES-256-GCM envelope: suite byte, 96-bit nonce, at least the tag.
    let sealed = req.sealed.as_bytes();
    if sealed.len() < 1 + 12 + 16 || sealed[0] != klef_core::crypto::SUITE_AES256GCM {
        return Err(ApiError::InvalidRequest(
            "sealed: not a sealed personal-overrides record".into(),
        ));
    }
    let account = *principal.account()?;
    let revision = req
        .revision
        .unwrap_or_else(|| req.expected_revision.saturating_add(1));
    let slug = auth.environment.map(|e| e.slug).unwrap_or_default();
    let audit = audit_by(
        &principal,
        auth.workspace_id,
        "personal.write",
        format!("environment {id} ({slug}): personal overrides revision {revision}"),
    );
    let stored = state
        .store
        .put_personal(
            &id,
            &account,
            &req.sealed,
            req.expected_revision,
            revision,
            Some(&audit),
        )
        .await?;
    Ok(axum::Json(stored))
}

/// Names an audit entry lists for one batch of writes; a 10,000-line push would otherwise
/// write a 200 KB audit row.
const AUDIT_NAMES: usize = 20;

/// What a batch of writes did, for the audit log: the first [`AUDIT_NAMES`] names (deletes
/// marked), then how many more. `writes` yields `(name, is_delete)`.
fn write_summary<'a>(writes: impl ExactSizeIterator<Item = (&'a str, bool)>) -> String {
    let total = writes.len();
    let mut out = String::new();
    for (i, (name, delete)) in writes.take(AUDIT_NAMES).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        if delete {
            out.push_str(" (deleted)");
        }
    }
    if total > AUDIT_NAMES {
        let more = total - AUDIT_NAMES;
        let _ = write!(out, " and {more} more ({total} writes)");
    }
    out
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn grants(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<EnvironmentId>,
) -> Result<axum::Json<GrantList>, ApiError> {
    authorize(
        &state,
        &principal,
        Action::ListGrants,
        Resource::Environment(id),
    )
    .await?;
    Ok(axum::Json(GrantList {
        grants: state.store.environment_grants(&id).await?,
    }))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn rotate_project_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<ProjectId>,
    ApiJson(req): ApiJson<klef_core::wire::RotateProjectKeyRequest>,
) -> Result<axum::http::StatusCode, ApiError> {
    let auth = authorize(
        &state,
        &principal,
        Action::RotateKey,
        Resource::Project(project),
    )
    .await?;
    for e in &req.environments {
        shapes::check(
            &format!("environments ({})", e.environment_id),
            &e.sealed_key,
            EnvelopeShape::SealedKey,
        )?;
    }
    for k in &req.project_keys {
        shapes::check(
            &format!("project_keys ({})", k.account_id),
            &k.wrapped_key,
            EnvelopeShape::WrappedKey,
        )?;
    }
    let audit = audit_by(
        &principal,
        auth.workspace_id,
        "project.rotate",
        format!(
            "project {project}: {} environment key(s) re-sealed, wrapped to {} holder(s)",
            req.environments.len(),
            req.project_keys.len()
        ),
    );
    match state
        .store
        .rotate_project_key(&project, &req, &audit)
        .await?
    {
        None => Ok(axum::http::StatusCode::NO_CONTENT),
        Some(reason) => Err(ApiError::Stale(reason)),
    }
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn rotate(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<EnvironmentId>,
    ApiJson(req): ApiJson<RotateRequest>,
) -> Result<axum::Json<RotateResponse>, ApiError> {
    let auth = authorize(
        &state,
        &principal,
        Action::RotateKey,
        Resource::Environment(id),
    )
    .await?;
    shapes::check("sealed_key", &req.sealed_key, EnvelopeShape::SealedKey)?;
    for s in &req.secrets {
        shapes::check(&s.name, &s.ciphertext, EnvelopeShape::Value)?;
    }
    for g in &req.grants {
        shapes::check("grants", &g.wrapped_key, EnvelopeShape::WrappedKey)?;
    }
    let slug = auth.environment.map(|e| e.slug).unwrap_or_default();
    let audit = audit_by(
        &principal,
        auth.workspace_id,
        "environment.rotate",
        format!(
            "environment {id} ({slug}) to key version {}, {} secrets re-encrypted, {} grants",
            req.expected_key_version.saturating_add(1),
            req.secrets.len(),
            req.grants.len()
        ),
    );
    match state
        .store
        .rotate_environment(&id, &req, principal.label(), Some(&audit))
        .await?
    {
        RotateOutcome::Rotated {
            environment,
            written,
        } => Ok(axum::Json(RotateResponse {
            environment,
            written,
        })),
        RotateOutcome::Stale { reason } => Err(ApiError::Stale(reason)),
    }
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn api_key_recipients(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<ProjectId>,
) -> Result<axum::Json<ApiKeyRecipientList>, ApiError> {
    authorize(
        &state,
        &principal,
        Action::CreateEnvironment,
        Resource::Project(project),
    )
    .await?;
    Ok(axum::Json(ApiKeyRecipientList {
        keys: state.store.api_key_recipients(&project).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_summaries_name_the_first_writes_and_count_the_rest() {
        assert_eq!(
            write_summary([("A", false), ("B", true)].into_iter()),
            "A, B (deleted)"
        );
        let names: Vec<String> = (0..10_000).map(|i| format!("KEY_{i}")).collect();
        let summary = write_summary(names.iter().map(|n| (n.as_str(), false)));
        assert!(summary.starts_with("KEY_0, KEY_1, "), "{summary}");
        assert!(
            summary.contains("KEY_19 and 9980 more (10000 writes)"),
            "{summary}"
        );
        assert!(!summary.contains("KEY_20"), "{summary}");
        assert!(summary.len() < 300, "{} bytes", summary.len());
    }
}
