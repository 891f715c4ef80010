//! System keys in the signed roster (DESIGN.md §9.2, §9.4). `keys create` and `keys put` sign
//! the key's record (its X25519 and Ed25519 public keys, derived from its secret on the
//! creating admin's machine, its scopes and permission) into the roster of the workspace its
//! scopes are in; `keys revoke` signs its removal. From then on, `env rotate-key`, `env create`
//! and `keys put` wrap an environment key to a system key only when its verified record covers
//! the environment, and only to the key recorded there, whatever the server lists.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::PublicKey;
use klef_core::ids::{ApiKeyId, WorkspaceId};
use klef_core::model::{ApiKeyPermission, ApiKeyScope};
use klef_core::trust::identity::VerifyingKey;
use klef_core::trust::roster::{
    Permission, PrincipalId, Record, Scope, SystemKeyRecord, VerifiedRoster,
};

use crate::backend::AnyBackend;
use crate::context::Context;
use crate::diagnostics::Failure;
use crate::trust::Trust;

/// The roster of workspace `ws` for a change this account signs: pinned and verified, or
/// started now by its owner; `None` (with a warning) for a workspace made before signed rosters
/// whose owner is someone else.
pub(crate) async fn roster_of(
    ctx: &Context,
    b: &AnyBackend,
    trust: &mut Trust<'_>,
    ws: WorkspaceId,
) -> Result<Option<VerifiedRoster>> {
    let workspace = b
        .workspaces()
        .await?
        .into_iter()
        .find(|w| w.id == ws)
        .ok_or_else(|| Failure::not_found(format!("workspace {ws} is not visible to you")))?;
    let roster = trust.roster_or_adopt_if_owner(&workspace).await?;
    if roster.is_none() {
        ctx.printer.warn(&format!(
            "workspace \"{}\" has no signed roster yet, so this key is not recorded in one and readers cannot verify it; its owner starts one with `klef workspace verify`",
            workspace.name
        ));
    }
    Ok(roster)
}

/// Signs `record` (a system key's whole new record, or its removal) into `roster` and stores it.
pub(crate) async fn sign(
    trust: &mut Trust<'_>,
    roster: VerifiedRoster,
    record: Record,
) -> Result<VerifiedRoster> {
    let ws = roster.workspace();
    let (entry, roster) = roster
        .append(record, trust.me().account, &trust.signing_key())
        .map_err(|e| Failure::other(format!("cannot sign the key into the roster: {e}")))?;
    let sequence = roster.head().sequence;
    trust
        .remote()
        .append_roster(&ws, vec![crate::trust::to_wire(&entry, sequence)])
        .await
        .context("failed to store the roster entry")?;
    trust.pin(&roster)?;
    Ok(roster)
}

/// A system key's record from the wire scopes and permission.
pub(crate) fn record(
    key: ApiKeyId,
    x25519_key: PublicKey,
    signing_key: VerifyingKey,
    scopes: &[ApiKeyScope],
    permission: ApiKeyPermission,
    creator: klef_core::ids::AccountId,
) -> Record {
    Record::SystemKey(SystemKeyRecord {
        key,
        x25519_key,
        signing_key,
        scopes: scopes
            .iter()
            .map(|s| Scope {
                project: s.project_id,
                environment: s.environment_id,
            })
            .collect::<BTreeSet<_>>(),
        permission: match permission {
            ApiKeyPermission::Read => Permission::Read,
            ApiKeyPermission::Readwrite => Permission::ReadWrite,
        },
        creator,
    })
}

/// The removal of system key `key`.
pub(crate) fn removal(key: ApiKeyId) -> Record {
    Record::Removed(PrincipalId::SystemKey(key))
}
