//! `klef keys revoke PREFIX`: revokes a key at once (its next request fails) and deletes every
//! environment key wrapped to it.

use anyhow::{Context as _, Result};
use klef_core::wire::{ApiKeyInfo, ApiKeyKind, routes};

use super::{find_key, remote, short_prefix};
use crate::context::Context;
use crate::diagnostics::ExitStatus;

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
