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
///
/// A member of a workspace whose owner started its roster after they joined (a workspace made
/// before signed rosters) pins it here, once, by the owner's fingerprint.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Pin this workspace's roster, not pinned yet, if its owner's fingerprint is this one (as
    /// the owner reads it from `klef whoami`)
    #[arg(long, value_name = "FP", conflicts_with = "trust_on_first_use")]
    pub(crate) owner_fingerprint: Option<String>,

    /// Pin the roster the server shows without comparing the owner's fingerprint
    #[arg(long)]
    pub(crate) trust_on_first_use: bool,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("workspace verify")?;
    let ws = ctx.current_workspace(&b).await?;
    let keys = ctx.keys(&b).await?;
    let mut trust = Trust::load(ctx, remote, &keys).await?;
    if trust.anchor(&ws.id).is_none() {
        pin_existing(ctx, args, remote, &mut trust, &ws).await?;
    }
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

/// A roster this account has not pinned, for a member who joined before it was started: pinned
/// by the owner's fingerprint (or, asked for explicitly, as the server shows it), and only if it
/// lists this account with its own keys (the owner vouched for it with `confirm --fingerprint`).
/// Nothing happens when the server has no roster for the workspace (its owner starts one).
async fn pin_existing(
    ctx: &Context,
    args: &Args,
    remote: &crate::remote::RemoteBackend,
    trust: &mut Trust<'_>,
    ws: &klef_core::model::Workspace,
) -> Result<()> {
    let entries = remote.roster(&ws.id, None).await?;
    let signed = crate::trust::to_signed(&entries).map_err(crate::diagnostics::Failure::other)?;
    let Some(first) = signed.first() else {
        return Ok(());
    };
    let named = format!("workspace \"{}\"", ws.name);
    let roster = super::accept::verify(&named, first.hash(), &ws.id, &signed)?;
    if roster.owner() == trust.me().account {
        // The owner's own workspace: `roster_or_adopt` says what to do (it is not pinned).
        return Ok(());
    }
    if args.owner_fingerprint.is_none()
        && !args.trust_on_first_use
        && !std::io::IsTerminal::is_terminal(&std::io::stdin())
    {
        return Err(crate::trust::not_pinned(&ws.name)
            .hint("a member who joined before the roster was started pins it with `klef workspace verify --owner-fingerprint FP` (the owner reads FP from `klef whoami`)")
            .into());
    }
    super::accept::check_owner(
        ctx,
        args.owner_fingerprint.as_deref(),
        args.trust_on_first_use,
        &roster,
        "the owner",
    )?;
    roster.check_own_member(trust.me()).map_err(|e| {
        crate::diagnostics::Failure::other(format!(
            "{named}'s roster does not list you with your keys ({e})"
        ))
        .hint("ask its owner to vouch for you: `klef workspace confirm EMAIL --fingerprint FP` with the fingerprint `klef whoami` shows you")
    })?;
    trust.pin(&roster)?;
    ctx.printer
        .info(&format!("pinned the signed roster of {named}"));
    Ok(())
}
