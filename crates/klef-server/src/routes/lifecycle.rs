//! Renaming and deleting environments, projects and workspaces (`klef env rename|delete`,
//! `klef projects rename|delete`, `klef workspace rename|delete`). Who may is
//! [`authorize`]'s decision (admins; a workspace's owner to delete it); each change and its
//! audit entry are one transaction in the store.
//!
//! A deleted environment's entry in the secret-list cache is never served again: every read
//! is authorized first, which finds no environment, and the entry ages out of the cache.

use axum::extract::State;
use axum::http::StatusCode;
use klef_core::ids::{EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{Environment, Project, Workspace};
use klef_core::wire::{RenameEnvironmentRequest, RenameProjectRequest, RenameWorkspaceRequest};
use tracing::instrument;

use super::audit_by;
use crate::AppState;
use crate::authz::{Action, Principal, Resource, authorize};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

#[instrument(skip_all, err(level = "warn"), fields(environment = %id))]
pub(super) async fn rename_environment(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<EnvironmentId>,
    ApiJson(req): ApiJson<RenameEnvironmentRequest>,
) -> Result<axum::Json<Environment>, ApiError> {
    let auth = authorize(
        &state,
        &principal,
        Action::RenameEnvironment,
        Resource::Environment(id),
    )
    .await?;
    let mut env = auth
        .environment
        .ok_or_else(|| ApiError::NotFound(format!("environment {id}")))?;
    let audit = audit_by(
        &principal,
        auth.workspace_id,
        "environment.rename",
        format!(
            "environment {id} of project {}: {} -> {}",
            env.project_id, env.slug, req.slug
        ),
    );
    state
        .store
        .rename_environment(
            principal.account()?,
            &id,
            &req.slug,
            &req.name,
            req.manifest.as_ref(),
            Some(&audit),
        )
        .await?;
    env.slug = req.slug;
    env.name = req.name;
    Ok(axum::Json(env))
}

#[instrument(skip_all, err(level = "warn"), fields(environment = %id))]
pub(super) async fn delete_environment(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<EnvironmentId>,
) -> Result<StatusCode, ApiError> {
    let auth = authorize(
        &state,
        &principal,
        Action::DeleteEnvironment,
        Resource::Environment(id),
    )
    .await?;
    let env = auth
        .environment
        .ok_or_else(|| ApiError::NotFound(format!("environment {id}")))?;
    let audit = audit_by(
        &principal,
        auth.workspace_id,
        "environment.delete",
        format!(
            "environment {id} ({}) of project {}, with its secrets",
            env.slug, env.project_id
        ),
    );
    state
        .store
        .delete_environment(principal.account()?, &id, Some(&audit))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[instrument(skip_all, err(level = "warn"), fields(project = %id))]
pub(super) async fn rename_project(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ProjectId>,
    ApiJson(req): ApiJson<RenameProjectRequest>,
) -> Result<axum::Json<Project>, ApiError> {
    let auth = authorize(
        &state,
        &principal,
        Action::RenameProject,
        Resource::Project(id),
    )
    .await?;
    let account = principal.account()?;
    let mut project = state.store.project_visible_to(account, &id).await?;
    let audit = audit_by(
        &principal,
        auth.workspace_id,
        "project.rename",
        format!("project {id}: {} -> {}", project.name, req.name),
    );
    state
        .store
        .rename_project(account, &id, &req.name, &req.manifests, Some(&audit))
        .await?;
    project.name = req.name;
    Ok(axum::Json(project))
}

#[instrument(skip_all, err(level = "warn"), fields(project = %id))]
pub(super) async fn delete_project(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ProjectId>,
) -> Result<StatusCode, ApiError> {
    let auth = authorize(
        &state,
        &principal,
        Action::DeleteProject,
        Resource::Project(id),
    )
    .await?;
    let account = principal.account()?;
    let project = state.store.project_visible_to(account, &id).await?;
    let audit = audit_by(
        &principal,
        auth.workspace_id,
        "project.delete",
        format!(
            "project {id} ({}) with its environments and secrets",
            project.name
        ),
    );
    state
        .store
        .delete_project(account, &id, Some(&audit))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's workspace `id` (authorization has found it).
async fn workspace_of(
    state: &AppState,
    principal: &Principal,
    id: WorkspaceId,
) -> Result<Workspace, ApiError> {
    state
        .store
        .workspaces_for(principal.account()?)
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("workspace {id}")))
}

#[instrument(skip_all, err(level = "warn"), fields(workspace = %id))]
pub(super) async fn rename_workspace(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WorkspaceId>,
    ApiJson(req): ApiJson<RenameWorkspaceRequest>,
) -> Result<axum::Json<Workspace>, ApiError> {
    authorize(
        &state,
        &principal,
        Action::RenameWorkspace,
        Resource::Workspace(id),
    )
    .await?;
    let mut ws = workspace_of(&state, &principal, id).await?;
    let audit = audit_by(
        &principal,
        Some(id),
        "workspace.rename",
        format!("workspace {id}: {} -> {}", ws.name, req.name),
    );
    state
        .store
        .rename_workspace(principal.account()?, &id, &req.name, Some(&audit))
        .await?;
    ws.name = req.name;
    Ok(axum::Json(ws))
}

#[instrument(skip_all, err(level = "warn"), fields(workspace = %id))]
pub(super) async fn delete_workspace(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<WorkspaceId>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &principal,
        Action::DeleteWorkspace,
        Resource::Workspace(id),
    )
    .await?;
    let ws = workspace_of(&state, &principal, id).await?;
    // Kept under the workspace's id, which references nothing, so the entry outlives it.
    let audit = audit_by(
        &principal,
        Some(id),
        "workspace.delete",
        format!(
            "workspace {id} ({}) with its projects, environments and secrets",
            ws.name
        ),
    );
    state
        .store
        .delete_workspace(principal.account()?, &id, Some(&audit))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
