//! `klef keys revoke PREFIX`: revokes a key at once (its next request fails), deletes every
//! environment key wrapped to it, and signs its removal into the workspace's roster.

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::wire::{ApiKeyInfo, ApiKeyKind, routes};

use super::{find_key, remote, roster, short_prefix};
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
    let revoked: ApiKeyInfo = r
        .api()
        .delete(&routes::api_key(&key.id))
        .await
        .with_context(|| format!("failed to revoke {}", key.prefix))?;
    // The signed roster too: no client wraps a key to it again, even if the server kept it.
    // Revocation itself needs no password; signing it needs the keys, when they can be had.
    if revoked.kind == ApiKeyKind::System {
        if let Some(keys) = ctx.keys_if_available(&b).await? {
            let mut trust = Trust::load(ctx, r, &keys).await?;
            for ws in b.workspaces().await? {
                if let Some(roster) = trust.roster_if_pinned(&ws.id, &ws.name).await?
                    && roster.system_key(&key.id).is_some()
                {
                    roster::sign(&mut trust, roster, roster::removal(key.id)).await?;
                }
            }
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
