//! `klef keys revoke PREFIX`: revokes a key at once (its next request fails), deletes every
//! environment key wrapped to it, and signs its removal into the workspace's roster.

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::ids::ApiKeyId;
use klef_core::wire::{ApiKeyInfo, ApiKeyKind, routes};

use super::{find_key, remote, roster, short_prefix};
use crate::backend::AnyBackend;
use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::trust::Trust;

/// Revoke an API key: its next request fails
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key's prefix, as `klef keys list` shows it
    pub(crate) prefix: String,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let r = remote(&b, "revoke")?;
    let key = find_key(r, &args.prefix).await?;
    let revoked = revoke_on_server(&b, &key.id, &key.prefix).await?;
    // The signed roster too: no client wraps a key to it again, even if the server kept it.
    // Revocation itself needs no password; signing it needs the keys, when they can be had.
    if revoked.kind == ApiKeyKind::System {
        if let Some(keys) = ctx.keys_if_available(&b).await? {
            // What it wrote last is signed again first, or readers would refuse it once the
            // key is signed out.
            for ws in b.workspaces().await? {
                crate::signed::revouch(
                    ctx,
                    &b,
                    &keys,
                    &ws.id,
                    &[klef_core::trust::roster::PrincipalId::SystemKey(key.id)],
                )
                .await?;
            }
            let mut trust = Trust::load(ctx, r, &keys).await?;
            sign_out(&b, &mut trust, key.id).await?;
            trust.save().await?;
        } else {
            ctx.printer.warn(
                "the key is revoked, but its removal is not signed into the workspace's roster yet (no password to unlock with); an admin's next unlocked `klef workspace verify` signs it",
            );
        }
    }
    ctx.printer.info(&format!(
        "revoked {} ({}): its next request fails",
        short_prefix(&revoked.prefix),
        revoked.label
    ));
    if revoked.kind == ApiKeyKind::System && !revoked.scopes.is_empty() {
        ctx.printer.hint(
            "if the key may have leaked, rotate the environments it could read (`klef env rotate-key SLUG`)",
        );
    }
    Ok(ExitStatus::SUCCESS)
}

/// Revokes key `id` (named `prefix` in messages) on the server: its next request fails and
/// every environment key wrapped to it is deleted. Answers the key as it was.
pub(crate) async fn revoke_on_server(
    b: &AnyBackend,
    id: &ApiKeyId,
    prefix: &str,
) -> Result<ApiKeyInfo> {
    let r = remote(b, "revoke")?;
    r.api()
        .delete(&routes::api_key(id))
        .await
        .with_context(|| format!("failed to revoke {prefix}"))
}

/// Signs the removal of system key `key` into every roster this account has pinned that still
/// lists it; answers how many entries were signed.
pub(crate) async fn sign_out(
    b: &AnyBackend,
    trust: &mut Trust<'_>,
    key: ApiKeyId,
) -> Result<usize> {
    let mut signed = 0;
    for ws in b.workspaces().await? {
        if let Some(roster) = trust.roster_if_pinned(&ws.id, &ws.name).await?
            && roster.system_key(&key).is_some()
        {
            roster::sign(trust, roster, roster::removal(key)).await?;
            signed += 1;
        }
    }
    Ok(signed)
}
