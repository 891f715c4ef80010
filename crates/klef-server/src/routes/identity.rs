//! Identity keys, workspace rosters and the account's sealed pins (DESIGN.md §9.1, §9.2). The
//! server stores and serves what clients signed or sealed; it checks shapes (a valid Ed25519
//! point, a continuing sequence) so that a broken client cannot store junk, but clients never
//! rely on that: they verify every entry and open every seal themselves.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use klef_core::ids::WorkspaceId;
use klef_core::model::Blob;
use klef_core::trust::identity::{SIGNATURE_LEN, VerifyingKey};
use klef_core::trust::roster::EntryBody;
use klef_core::wire::{
    AccountStateResponse, PublishIdentityRequest, PutAccountStateRequest, RosterList,
};
use serde::Deserialize;
use tracing::instrument;

use super::audit_by;
use crate::AppState;
use crate::authz::{Action, Principal, Resource, authorize};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

/// The most entries one append may carry, and the largest sealed account state.
const MAX_APPEND: usize = 100;
const MAX_STATE_BYTES: usize = 1 << 20;
/// The largest roster entry body accepted (a member record is well under 1 KiB; a system key
/// with many scopes a few KiB).
const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// Refuses an identity key that is not a valid, large-order Ed25519 point.
pub(super) fn validate_identity_key(key: &Blob) -> Result<(), ApiError> {
    VerifyingKey::from_slice(key.as_bytes())
        .map(drop)
        .map_err(|e| ApiError::InvalidRequest(format!("identity_key: {e}")))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn publish_identity(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(req): ApiJson<PublishIdentityRequest>,
) -> Result<StatusCode, ApiError> {
    if !matches!(principal, Principal::Session(_)) {
        return Err(ApiError::Forbidden(
            "publishing an identity key needs a session (klef login), not an API key".into(),
        ));
    }
    validate_identity_key(&req.identity_key)?;
    let id = *principal.account()?;
    let audit = audit_by(
        &principal,
        None,
        "account.identity.publish",
        format!("account {id}"),
    );
    state
        .store
        .publish_identity_key(&id, &req.identity_key, &audit)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn account_state(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<AccountStateResponse>, ApiError> {
    let id = *principal.account()?;
    let (sealed, revision) = state.store.account_state(&id).await?;
    Ok(axum::Json(AccountStateResponse { sealed, revision }))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn put_account_state(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(req): ApiJson<PutAccountStateRequest>,
) -> Result<axum::Json<AccountStateResponse>, ApiError> {
    let id = *principal.account()?;
    if req.sealed.as_bytes().len() > MAX_STATE_BYTES {
        return Err(ApiError::InvalidRequest(format!(
            "sealed: larger than {MAX_STATE_BYTES} bytes"
        )));
    }
    let revision = state
        .store
        .put_account_state(&id, &req.sealed, req.expected_revision)
        .await?;
    Ok(axum::Json(AccountStateResponse {
        sealed: Some(req.sealed),
        revision,
    }))
}

/// `?after=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RosterQuery {
    after: Option<u64>,
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn roster(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(ws): ApiPath<WorkspaceId>,
    query: Result<Query<RosterQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<RosterList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    match authorize(
        &state,
        &principal,
        Action::ReadRoster,
        Resource::Workspace(ws),
    )
    .await
    {
        Ok(_) => {}
        // An invitee reads the roster before they are a member: to check the genesis against
        // their invite code, and to see who invited them.
        Err(ApiError::NotFound(what)) => {
            let invited = match &principal {
                Principal::Session(_) | Principal::UserKey(_) => {
                    state
                        .store
                        .invited_to(principal.account()?, principal.label(), &ws)
                        .await?
                }
                Principal::SystemKey(_) => false,
            };
            if !invited {
                return Err(ApiError::NotFound(what));
            }
        }
        Err(e) => return Err(e),
    }
    let entries = state.store.roster(&ws, query.after).await?;
    Ok(axum::Json(RosterList { entries }))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn append_roster(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(ws): ApiPath<WorkspaceId>,
    ApiJson(req): ApiJson<RosterList>,
) -> Result<StatusCode, ApiError> {
    authorize(
        &state,
        &principal,
        Action::AppendRoster,
        Resource::Workspace(ws),
    )
    .await?;
    if req.entries.is_empty() || req.entries.len() > MAX_APPEND {
        return Err(ApiError::InvalidRequest(format!(
            "entries: send 1 to {MAX_APPEND} roster entries"
        )));
    }
    check_entries(&ws, &req.entries)?;
    let by = *principal.account()?;
    let audit = audit_by(
        &principal,
        Some(ws),
        "roster.append",
        format!(
            "roster of workspace {ws}: entries {}..={}",
            req.entries[0].sequence,
            req.entries[req.entries.len() - 1].sequence
        ),
    );
    state
        .store
        .append_roster(&ws, &req.entries, &by, &audit)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Shape checks of entries to store: sizes, and the sequence each body states.
pub(super) fn check_entries(
    ws: &WorkspaceId,
    entries: &[klef_core::model::RosterEntry],
) -> Result<(), ApiError> {
    for e in entries {
        if e.body.as_bytes().len() > MAX_ENTRY_BYTES {
            return Err(ApiError::InvalidRequest(format!(
                "roster entry {}: larger than {MAX_ENTRY_BYTES} bytes",
                e.sequence
            )));
        }
        if e.signature.as_bytes().len() != SIGNATURE_LEN {
            return Err(ApiError::InvalidRequest(format!(
                "roster entry {}: the signature is not {SIGNATURE_LEN} bytes",
                e.sequence
            )));
        }
        match EntryBody::parse(e.body.as_bytes()) {
            Ok(body) if body.sequence == e.sequence && body.workspace == *ws => {}
            _ => {
                return Err(ApiError::InvalidRequest(format!(
                    "roster entry {}: not a roster entry of this workspace at that sequence",
                    e.sequence
                )));
            }
        }
    }
    Ok(())
}
