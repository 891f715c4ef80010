//! `klef workspace verify [--json]`: verifies the current workspace's signed roster against
//! this account's pin and prints a short code of its head, for admins (and members) to compare
//! out of band: equal codes at the same entry number mean they see the same roster, so the
//! server is not showing them different member lists.

use anyhow::Result;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::trust::Trust;

/// Verify the workspace's signed member list and show a code to compare with teammates
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("workspace verify")?;
    let ws = ctx.current_workspace(&b).await?;
    let keys = ctx.keys(&b).await?;
    let mut trust = Trust::load(ctx, remote, &keys).await?;
    let mut roster = trust.roster_or_adopt(&ws).await?;
    // An admin signs out the system keys the server no longer lists (revoked without a
    // password at hand). A server hiding a live key only gets it signed out: denial, not access.
    let mut signed_out = Vec::new();
    if roster
        .member(&trust.me().account)
        .is_some_and(klef_core::trust::roster::MemberRecord::is_admin)
    {
        let live: Vec<_> = crate::commands::keys::list_keys(remote)
            .await?
            .into_iter()
            .map(|k| k.id)
            .collect();
        let gone: Vec<_> = roster
            .system_keys()
            .map(|k| k.key)
            .filter(|k| !live.contains(k))
            .collect();
        for key in gone {
            roster = crate::commands::keys::roster::sign(
                &mut trust,
                roster,
                crate::commands::keys::roster::removal(key),
            )
            .await?;
            signed_out.push(crate::commands::keys::short_prefix(
                &klef_core::crypto::token::prefix_of(
                    klef_core::crypto::token::TokenKind::System,
                    &key,
                ),
            ));
        }
    }
    trust.save().await?;
    let code = roster.verification_code();
    let members = roster.members().count();
    let me = trust.me().fingerprint();
    if ctx.global.json {
        ctx.printer.json(&json!({
            "workspace": ws.name,
            "workspace_id": ws.id,
            "entry": code.sequence,
            "code": code.to_string(),
            "members": members,
            "key_fingerprint": me.to_string(),
            "signed_out_keys": signed_out,
        }))?;
        return Ok(ExitStatus::SUCCESS);
    }
    if !signed_out.is_empty() {
        ctx.printer.info(&format!(
            "signed the removal of revoked system key(s) {} into the roster",
            signed_out.join(", ")
        ));
    }
    ctx.printer.data(&format!(
        "workspace \"{}\": roster entry {}, code {code} ({members} member(s))\n",
        ws.name, code.sequence
    ))?;
    ctx.printer.hint(
        "compare the entry number and code with a teammate over a channel you trust: equal means you see the same member list",
    );
    Ok(ExitStatus::SUCCESS)
}
