//! `klef workspace accept [ID]`: accepts an invitation (without ID: lists the open ones). An
//! admin then compares your key fingerprint and confirms you; only then are keys shared.

use anyhow::{Context as _, Result};
use klef_core::crypto::PublicKey;
use klef_core::ids::InviteId;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::table;

/// Accept an invitation to a workspace (without ID: list your invitations)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The invitation id (from `klef workspace accept` with no ID)
    pub(crate) id: Option<InviteId>,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("workspace accept")?;
    let Some(id) = args.id else {
        let invitations = remote.invitations().await?;
        if ctx.global.json {
            ctx.printer.json(&invitations)?;
            return Ok(ExitStatus::SUCCESS);
        }
        let rows: Vec<Vec<String>> = invitations
            .iter()
            .map(|i| {
                vec![
                    i.id.to_string(),
                    i.workspace_name.clone(),
                    i.role.as_str().to_owned(),
                    i.invited_by.clone(),
                    table::time(i.created_at),
                ]
            })
            .collect();
        ctx.printer.data(&table::render(
            &["ID", "WORKSPACE", "ROLE", "INVITED BY", "CREATED"],
            &rows,
        ))?;
        return Ok(ExitStatus::SUCCESS);
    };
    let inv = remote
        .accept(&id)
        .await
        .with_context(|| format!("failed to accept invitation {id}"))?;
    let me = remote.me().await?;
    let fingerprint = PublicKey::from_slice(me.account.keys.public_key.as_bytes())
        .context("the account's public key is malformed")?
        .fingerprint();
    if ctx.global.json {
        ctx.printer.json(&json!({
            "invitation": inv,
            "key_fingerprint": fingerprint,
        }))?;
    }
    ctx.printer.info(&format!(
        "accepted the invitation to workspace \"{}\" from {}",
        inv.workspace_name, inv.invited_by
    ));
    ctx.printer
        .always(&format!("your key fingerprint: {fingerprint}"));
    ctx.printer.hint(&format!(
        "tell {} this fingerprint over a channel you trust; they confirm you with `klef workspace confirm {}`",
        inv.invited_by, inv.email
    ));
    Ok(ExitStatus::SUCCESS)
}
