//! Teams: invitations, members (confirm with client-wrapped keys, remove) and the audit log.

use axum::extract::{Query, State};
use axum::response::Response;
use klef_core::ids::{AccountId, InviteId, WorkspaceId};
use klef_core::wire::{
    AcceptInvitationRequest, AuditList, ConfirmMemberRequest, CreateInvitationRequest, Invitation,
    InvitationList, Member, MemberList, RemoveMemberResponse,
};
use klef_store::server::NewInvitation;
use serde::Deserialize;
use tracing::instrument;

use super::accounts::normalize_email;
use super::{audit_by, created};
use crate::AppState;
use crate::authz::{Action, Principal, Resource, authorize};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};

/// Default and largest page of the audit log.
const AUDIT_PAGE: i64 = 100;
const AUDIT_PAGE_MAX: i64 = 1000;

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn invite(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(ws): ApiPath<WorkspaceId>,
    ApiJson(req): ApiJson<CreateInvitationRequest>,
) -> Result<Response, ApiError> {
    authorize(
        &state,
        &principal,
        Action::Invite(req.role),
        Resource::Workspace(ws),
    )
    .await?;
    let email = normalize_email(&req.email)?;
    let new = NewInvitation {
        id: InviteId::random(),
        workspace_id: ws,
        email: email.clone(),
        role: req.role,
        environments: req.environments,
        invited_by: *principal.account()?,
    };
    let scope = match &new.environments {
        Some(envs) => format!(
            "environments {}",
            envs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "full access".into(),
    };
    let audit = audit_by(
        &principal,
        Some(ws),
        "invitation.create",
        format!(
            "invitation {} for {email} as {} ({scope})",
            new.id,
            req.role.as_str()
        ),
    );
    Ok(created(state.store.create_invitation(&new, &audit).await?))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn my_invitations(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<InvitationList>, ApiError> {
    principal.account()?;
    let email = principal.email().unwrap_or_default();
    let invitations = state.store.invitations_for_email(email).await?;
    Ok(axum::Json(InvitationList { invitations }))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn accept(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<InviteId>,
    ApiJson(req): ApiJson<AcceptInvitationRequest>,
) -> Result<axum::Json<Invitation>, ApiError> {
    let account = *principal.account()?;
    if let Some(mac) = &req.invite_mac
        && mac.as_bytes().len() != 32
    {
        return Err(ApiError::InvalidRequest(
            "invite_mac: must be 32 bytes".into(),
        ));
    }
    let audit = audit_by(
        &principal,
        None,
        "invitation.accept",
        format!(
            "invitation {id} by account {account} ({})",
            principal.label()
        ),
    );
    let invitation = state
        .store
        .accept_invitation(
            &id,
            &account,
            principal.label(),
            req.invite_mac.as_ref(),
            &audit,
        )
        .await?;
    Ok(axum::Json(invitation))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn members(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(ws): ApiPath<WorkspaceId>,
) -> Result<axum::Json<MemberList>, ApiError> {
    authorize(
        &state,
        &principal,
        Action::ManageMembers,
        Resource::Workspace(ws),
    )
    .await?;
    Ok(axum::Json(MemberList {
        members: state.store.members(&ws).await?,
    }))
}

/// `DELETE …/invitations/{id}`: an admin cancels an invitation nobody has accepted yet.
#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn cancel_invitation(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((ws, id)): ApiPath<(WorkspaceId, InviteId)>,
) -> Result<axum::http::StatusCode, ApiError> {
    authorize(
        &state,
        &principal,
        Action::ManageMembers,
        Resource::Workspace(ws),
    )
    .await?;
    let audit = audit_by(
        &principal,
        Some(ws),
        "invitation.cancel",
        format!("invitation {id}"),
    );
    state.store.cancel_invitation(&ws, &id, &audit).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn confirm(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((ws, account)): ApiPath<(WorkspaceId, AccountId)>,
    ApiJson(req): ApiJson<ConfirmMemberRequest>,
) -> Result<axum::Json<Member>, ApiError> {
    authorize(
        &state,
        &principal,
        Action::ManageMembers,
        Resource::Workspace(ws),
    )
    .await?;
    let audit = audit_by(
        &principal,
        Some(ws),
        "member.confirm",
        format!(
            "account {account}: {} project keys, {} environment keys ({})",
            req.project_keys.len(),
            req.environment_keys.len(),
            req.environment_keys
                .iter()
                .map(|k| k.environment_id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if let Some(entry) = &req.roster_entry {
        super::identity::check_entries(&ws, std::slice::from_ref(entry))?;
    }
    for k in &req.project_keys {
        super::shapes::check(
            &format!("project_keys ({})", k.project_id),
            &k.wrapped_key,
            klef_core::crypto::EnvelopeShape::WrappedKey,
        )?;
    }
    for k in &req.environment_keys {
        super::shapes::check(
            &format!("environment_keys ({})", k.environment_id),
            &k.wrapped_key,
            klef_core::crypto::EnvelopeShape::WrappedKey,
        )?;
    }
    state
        .store
        .confirm_member(&ws, &account, &req, &audit)
        .await?;
    let member = state
        .store
        .members(&ws)
        .await?
        .into_iter()
        .find(|m| m.account_id == Some(account))
        .ok_or_else(|| ApiError::NotFound(format!("member {account}")))?;
    Ok(axum::Json(member))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((ws, account)): ApiPath<(WorkspaceId, AccountId)>,
) -> Result<axum::Json<RemoveMemberResponse>, ApiError> {
    authorize(
        &state,
        &principal,
        Action::RemoveMember,
        Resource::Member(ws, account),
    )
    .await?;
    let audit = audit_by(
        &principal,
        Some(ws),
        "member.remove",
        format!("account {account}"),
    );
    let rotate = state.store.remove_member(&ws, &account, &audit).await?;
    let message = if rotate.is_empty() {
        "member removed; they held no environment keys".to_owned()
    } else {
        format!(
            "member removed; they could decrypt {} environment(s): rotate those keys \
             (klef env rotate-key), since they may have kept a copy",
            rotate.len()
        )
    };
    Ok(axum::Json(RemoveMemberResponse {
        account_id: account,
        rotate,
        message,
    }))
}

/// `?limit=N&before=ID`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<i64>,
    before: Option<i64>,
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn audit(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(ws): ApiPath<WorkspaceId>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<AuditList>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::InvalidRequest(format!("invalid query: {}", e.body_text())))?;
    authorize(
        &state,
        &principal,
        Action::ReadAudit,
        Resource::Workspace(ws),
    )
    .await?;
    let limit = query.limit.unwrap_or(AUDIT_PAGE).clamp(1, AUDIT_PAGE_MAX);
    Ok(axum::Json(AuditList {
        entries: state.store.audit_entries(&ws, limit, query.before).await?,
    }))
}
