//! `klef workspace remove EMAIL`: removes a member and every key wrapped to them in the
//! workspace, then names the environments they could decrypt: they may have kept copies, so
//! those keys should be rotated with `klef env rotate-key`.

use anyhow::{Context as _, Result};
use serde_json::json;

use klef_core::trust::roster::{PrincipalId, Record};

use super::members;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::trust::Trust;

/// Remove a member from the current workspace (then rotate the keys they could read)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The member's email
    pub(crate) email: String,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("workspace remove")?;
    let ws = ctx.current_workspace(&b).await?;
    let member = members::find(remote, &ws, &args.email).await?;
    let Some(account_id) = member.account_id else {
        return Err(Failure::other(format!(
            "{} has not accepted the invitation yet, so there is no member to remove",
            member.email
        ))
        .into());
    };
    // The signed roster first: from this entry on, no client wraps a key to them again, even
    // if the server kept them on a grant list.
    let keys = ctx.keys(&b).await?;
    let mut trust = Trust::load(ctx, remote, &keys).await?;
    let mut signed_out = false;
    if let Some(roster) = trust.roster_if_pinned(&ws.id, &ws.name).await? {
        let principal = PrincipalId::Member(account_id);
        if roster.member(&account_id).is_some() {
            let (entry, roster) = roster
                .append(
                    Record::Removed(principal),
                    trust.me().account,
                    &trust.signing_key(),
                )
                .map_err(|e| {
                    Failure::other(format!(
                        "cannot remove {} from the roster of \"{}\": {e}",
                        member.email, ws.name
                    ))
                })?;
            let sequence = roster.head().sequence;
            remote
                .append_roster(&ws.id, vec![crate::trust::to_wire(&entry, sequence)])
                .await
                .with_context(|| format!("failed to sign {} out of the roster", member.email))?;
            trust.pin(&roster)?;
            signed_out = true;
        }
        trust.save().await?;
    }
    let resp = remote
        .remove_member(&ws.id, &account_id)
        .await
        .with_context(|| {
            format!(
                "failed to remove {} from workspace \"{}\"",
                member.email, ws.name
            )
        })?;
    let all = members::all_environments(&b, &ws).await.unwrap_or_default();
    let names: Vec<String> = resp
        .rotate
        .iter()
        .map(|r| {
            all.iter()
                .find(|(p, _)| p.id == r.project_id)
                .map_or_else(|| r.slug.clone(), |(p, _)| format!("{}:{}", p.name, r.slug))
        })
        .collect();
    if ctx.global.json {
        ctx.printer.json(&json!({
            "email": member.email,
            "account_id": resp.account_id,
            "roster_entry": signed_out,
            "rotate": resp.rotate.iter().zip(&names).map(|(r, n)| json!({"environment_id": r.id, "project_id": r.project_id, "slug": r.slug, "name": n})).collect::<Vec<_>>(),
        }))?;
    }
    ctx.printer.info(&format!(
        "removed {} from workspace \"{}\"",
        member.email, ws.name
    ));
    if !resp.rotate.is_empty() {
        ctx.printer.warn(&format!(
            "{} could decrypt {}; they may have kept copies of those keys",
            member.email,
            names.join(", ")
        ));
        for r in &resp.rotate {
            ctx.printer.hint(&format!(
                "run `klef env rotate-key {}` in that project (-p {}) to lock them out of new values",
                r.slug, r.project_id
            ));
        }
    }
    Ok(ExitStatus::SUCCESS)
}
