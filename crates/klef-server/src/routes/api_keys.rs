//! API keys: create (user keys for oneself; system keys by admins of the scoped projects'
//! workspace, with the environment keys their client wrapped to the key), list, replace a
//! system key's scopes, revoke, and describe the key making the request. System keys never
//! manage keys; every decision goes through [`authorize`].

use std::collections::BTreeSet;

use axum::extract::State;
use axum::response::Response;
use klef_core::crypto::PublicKey;
use klef_core::ids::{ApiKeyId, ProjectId, WorkspaceId};
use klef_core::wire::{
    ApiKeyInfo, ApiKeyKind, ApiKeyList, ApiKeyScope, CreateApiKeyRequest, PutApiKeyRequest,
};
use klef_store::server::NewApiKey;
use tracing::instrument;

use super::{audit_by, created};
use crate::AppState;
use crate::authz::{Action, Principal, Resource, authorize};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

/// Checks that the caller administers the workspace of every scoped project, and that the
/// scopes lie in one workspace (a key's audit trail lives there); answers that workspace.
async fn scope_workspace(
    state: &AppState,
    principal: &Principal,
    scopes: &[ApiKeyScope],
) -> Result<Option<WorkspaceId>, ApiError> {
    let projects: BTreeSet<ProjectId> = scopes.iter().map(|s| s.project_id).collect();
    let mut workspaces = BTreeSet::new();
    for p in projects {
        let auth = authorize(
            state,
            principal,
            Action::ManageApiKeys,
            Resource::Project(p),
        )
        .await?;
        workspaces.extend(auth.workspace_id);
    }
    if workspaces.len() > 1 {
        return Err(ApiError::InvalidRequest(
            "the scopes of one system key must all be in one workspace".into(),
        ));
    }
    Ok(workspaces.into_iter().next())
}

/// `proj:env, proj:*` for audit entries.
fn scope_text(info: &ApiKeyInfo) -> String {
    if info.scopes.is_empty() {
        return "full access as its owner".into();
    }
    let scopes: Vec<String> = info.scopes.iter().map(ToString::to_string).collect();
    format!(
        "{} on {}",
        info.permission.map_or("full", |p| p.as_str()),
        scopes.join(", ")
    )
}

/// A live key the caller may change or revoke: one they created, or a system key scoped to
/// projects whose workspace they administer. Anything else is `404`, so keys of others stay
/// invisible.
async fn managed_key(
    state: &AppState,
    principal: &Principal,
    id: &ApiKeyId,
) -> Result<(ApiKeyInfo, Option<WorkspaceId>), ApiError> {
    authorize(state, principal, Action::ManageApiKeys, Resource::OwnKeys).await?;
    let account = *principal.account()?;
    let not_found = || ApiError::NotFound(format!("API key {id}"));
    let (info, creator) = state.store.api_key_info(id).await?.ok_or_else(not_found)?;
    let scopes: Vec<ApiKeyScope> = info
        .scopes
        .iter()
        .map(|s| ApiKeyScope {
            project_id: s.project_id,
            environment_id: s.environment_id,
        })
        .collect();
    if info.kind == ApiKeyKind::User {
        return if creator == account {
            Ok((info, None))
        } else {
            Err(not_found())
        };
    }
    match scope_workspace(state, principal, &scopes).await {
        Ok(ws) => Ok((info, ws)),
        Err(_) if creator == account => Ok((info, None)),
        Err(ApiError::Forbidden(_) | ApiError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e),
    }
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<ApiKeyList>, ApiError> {
    authorize(&state, &principal, Action::ManageApiKeys, Resource::OwnKeys).await?;
    let keys = state
        .store
        .api_keys_visible_to(principal.account()?)
        .await?;
    Ok(axum::Json(ApiKeyList { keys }))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> Result<Response, ApiError> {
    authorize(&state, &principal, Action::ManageApiKeys, Resource::OwnKeys).await?;
    let account = *principal.account()?;
    let workspace_id = match req.kind {
        ApiKeyKind::User => None,
        ApiKeyKind::System => {
            if req.scopes.is_empty() {
                return Err(ApiError::InvalidRequest(
                    "a system key needs at least one scope".into(),
                ));
            }
            if let Some(pk) = &req.public_key {
                PublicKey::from_slice(pk.as_bytes())
                    .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
            }
            if let Some(vk) = &req.signing_key {
                klef_core::trust::identity::VerifyingKey::from_slice(vk.as_bytes())
                    .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
            }
            check_environment_keys(&req.environment_keys)?;
            if req
                .anchor
                .as_ref()
                .is_some_and(|a| a.as_bytes().len() > klef_core::model::MAX_ANCHOR_BYTES)
            {
                return Err(ApiError::InvalidRequest(format!(
                    "anchor: larger than {} bytes",
                    klef_core::model::MAX_ANCHOR_BYTES
                )));
            }
            scope_workspace(&state, &principal, &req.scopes).await?
        }
    };
    let audit = audit_by(
        &principal,
        workspace_id,
        "api_key.create",
        format!(
            "{} key {} ({})",
            req.kind.as_str(),
            req.id,
            req.label.chars().take(128).collect::<String>()
        ),
    );
    let info = state
        .store
        .create_api_key(
            &NewApiKey {
                id: req.id,
                kind: req.kind,
                label: &req.label,
                bearer_hash: &req.bearer_hash,
                public_key: req
                    .public_key
                    .as_ref()
                    .map(klef_core::model::Blob::as_bytes),
                signing_key: req
                    .signing_key
                    .as_ref()
                    .map(klef_core::model::Blob::as_bytes),
                permission: req.permission,
                scopes: &req.scopes,
                environment_keys: &req.environment_keys,
                anchor: req.anchor.as_ref().map(klef_core::model::Blob::as_bytes),
                created_by: account,
            },
            &audit,
        )
        .await?;
    tracing::info!(key = %info.prefix, kind = info.kind.as_str(), "API key created");
    Ok(created(info))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn put(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ApiKeyId>,
    ApiJson(req): ApiJson<PutApiKeyRequest>,
) -> Result<axum::Json<ApiKeyInfo>, ApiError> {
    let (info, _) = managed_key(&state, &principal, &id).await?;
    if info.kind == ApiKeyKind::User {
        return Err(ApiError::InvalidRequest(
            "a user key has no scopes or permission: it acts as its owner everywhere".into(),
        ));
    }
    if req.scopes.is_empty() {
        return Err(ApiError::InvalidRequest(
            "a system key needs at least one scope".into(),
        ));
    }
    check_environment_keys(&req.environment_keys)?;
    let workspace_id = scope_workspace(&state, &principal, &req.scopes).await?;
    let audit = audit_by(
        &principal,
        workspace_id,
        "api_key.put",
        format!(
            "system key {} ({}): was {}, now {} scope(s), {}",
            info.prefix,
            info.label,
            scope_text(&info),
            req.scopes.len(),
            req.permission.as_str()
        ),
    );
    let updated = state.store.put_api_key(&id, &req, &audit).await?;
    Ok(axum::Json(updated))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<ApiKeyId>,
) -> Result<axum::Json<ApiKeyInfo>, ApiError> {
    let (info, workspace_id) = managed_key(&state, &principal, &id).await?;
    let audit = audit_by(
        &principal,
        workspace_id,
        "api_key.revoke",
        format!(
            "{} key {} ({}): {}",
            info.kind.as_str(),
            info.prefix,
            info.label,
            scope_text(&info)
        ),
    );
    let revoked = state.store.revoke_api_key(&id, &audit).await?;
    tracing::info!(key = %revoked.prefix, "API key revoked");
    Ok(axum::Json(revoked))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn current(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<ApiKeyInfo>, ApiError> {
    let id = match &principal {
        Principal::UserKey(k) => k.key_id,
        Principal::SystemKey(k) => k.key_id,
        Principal::Session(_) => {
            return Err(ApiError::InvalidRequest(
                "this request is signed in with a session, not an API key; GET /v1/me \
                 describes the account"
                    .into(),
            ));
        }
    };
    let (info, _) = state
        .store
        .api_key_info(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("API key {id}")))?;
    Ok(axum::Json(info))
}

/// The environment keys given to a system key must be wrapped keys (see `shapes`).
fn check_environment_keys(keys: &[klef_core::wire::WrappedEnvironmentKey]) -> Result<(), ApiError> {
    for k in keys {
        super::shapes::check(
            &format!("environment_keys ({})", k.environment_id),
            &k.wrapped_key,
            klef_core::crypto::EnvelopeShape::WrappedKey,
        )?;
    }
    Ok(())
}
