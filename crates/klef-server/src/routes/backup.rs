//! Backups in server mode: `GET /v1/workspaces/{id}/export` answers the workspace's archive
//! (the format of `klef_core::backup`, `application/octet-stream`) to its admins and owner;
//! `POST /v1/import` restores an archive for its owner account, in one transaction. The archive
//! is decoded and checked here again (signature, version, checksum, consistency) whatever the
//! client checked. Both are audited. The rules are in docs/server.md, "Backups".
//!
//! These two routes have their own body limit in the route table instead of the 16 MiB of the
//! others: import bodies may reach [`MAX_BACKUP_BYTES`].

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use klef_core::backup::{self, Archive, ArchiveSource};
use klef_core::ids::WorkspaceId;
use klef_core::model::Role;
use klef_core::wire::{
    BACKUP_MEDIA_TYPE, ImportBackupParams, ImportBackupResponse, MAX_BACKUP_BYTES,
};
use tracing::instrument;

use super::audit_by;
use crate::AppState;
use crate::authz::{Action, Principal, Resource, authorize};
use crate::error::ApiError;
use crate::extract::ApiPath;

fn producer() -> String {
    format!("klef-server {}", env!("CARGO_PKG_VERSION"))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn export(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiPath(ws): ApiPath<WorkspaceId>,
) -> Result<Response, ApiError> {
    authorize(
        &state,
        &principal,
        Action::ExportBackup,
        Resource::Workspace(ws),
    )
    .await?;
    let account = *principal.account()?;
    // The server does not know its public URL; the Host it was reached by is the best hint
    // (the CLI replaces it with the URL it used).
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let source = ArchiveSource::Server {
        url: if host.is_empty() {
            String::new()
        } else {
            format!("//{host}")
        },
    };
    let audit = audit_by(
        &principal,
        Some(ws),
        "backup.export",
        format!("workspace {ws}"),
    );
    let archive = state
        .store
        .export_workspace_for(&ws, &account, source, &producer(), &audit)
        .await?;
    let bytes = backup::encode(&archive);
    let disposition = format!("attachment; filename=\"klef-{ws}.klefbackup\"");
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(BACKUP_MEDIA_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Checks that `archive` is one workspace owned by `principal`'s account with the same keys.
async fn check_owner(
    state: &AppState,
    principal: &Principal,
    archive: &Archive,
) -> Result<(), ApiError> {
    let [ws] = archive.workspaces.as_slice() else {
        return Err(ApiError::InvalidRequest(format!(
            "a server restores one workspace per backup, and this one holds {}",
            archive.workspaces.len()
        )));
    };
    let mut owners = archive
        .members
        .iter()
        .filter(|m| m.workspace_id == ws.id && m.role == Role::Owner);
    let (Some(owner), None) = (owners.next(), owners.next()) else {
        return Err(ApiError::InvalidRequest(
            "the backup's workspace does not have exactly one owner".into(),
        ));
    };
    let me = principal.account()?;
    let archived = archive.accounts.iter().find(|a| a.id == owner.account_id);
    let mine = state.store.account(me).await?;
    let same_keys = match (archived, &mine) {
        (Some(a), Some(m)) => a.keys.public_key == m.keys.public_key,
        _ => false,
    };
    if owner.account_id != *me || !same_keys {
        let whose = archived
            .and_then(|a| a.email.clone())
            .unwrap_or_else(|| format!("account {}", owner.account_id));
        return Err(ApiError::Forbidden(format!(
            "this backup belongs to {whose}: only that account, with the same keys, can restore \
             it (the server cannot re-wrap keys for another account)"
        )));
    }
    Ok(())
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn import(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<ImportBackupParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::InvalidRequest(format!("invalid query: {}", e.body_text())))?;
    principal.account()?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::InvalidRequest(format!(
                "the backup is larger than the {MAX_BACKUP_BYTES} bytes this server accepts"
            ))
        } else {
            ApiError::InvalidRequest(format!("could not read the backup ({})", e.status()))
        }
    })?;
    let archive = backup::decode(&body)
        .map_err(|e| ApiError::InvalidRequest(format!("cannot import the backup: {e}")))?;
    check_owner(&state, &principal, &archive).await?;
    let ws = &archive.workspaces[0];
    if state.store.workspace_exists(&ws.id).await? {
        authorize(
            &state,
            &principal,
            Action::ImportBackup,
            Resource::Workspace(ws.id),
        )
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::AlreadyExists(format!(
                "workspace {} (of which you are not a member) on this server",
                ws.id
            )),
            other => other,
        })?;
    } else {
        authorize(
            &state,
            &principal,
            Action::ImportBackup,
            Resource::OwnAccount,
        )
        .await?;
    }
    let audit = audit_by(
        &principal,
        Some(ws.id),
        "backup.import",
        format!(
            "workspace {} ({}): {} projects, {} environments, {} secret versions{}",
            ws.id,
            ws.name,
            archive.projects.len(),
            archive.environments.len(),
            archive.secrets.len(),
            if params.force { ", force" } else { "" }
        ),
    );
    let me = *principal.account()?;
    let done = state
        .store
        .import_workspace(&archive, &me, params.force, &audit)
        .await?;
    tracing::info!(
        workspace = %done.workspace.id,
        replaced = done.replaced,
        "restored a backup"
    );
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok(axum::Json(ImportBackupResponse {
        workspace: done.workspace,
        replaced: done.replaced,
        members: count(done.members),
        projects: count(done.projects),
        environments: count(done.environments),
        secret_versions: count(done.secret_versions),
        notes: done.notes,
    })
    .into_response())
}
