//! `klef workspace accept [ID] [--code CODE | --owner-fingerprint FP | --trust-on-first-use]`:
//! accepts an invitation (without ID: lists the open ones).
//!
//! Accepting pins the workspace's roster (DESIGN.md §9.2): with the invite code an admin sent
//! out of band, the code names the genesis to pin and this device MACs its own identity with
//! the code's secret, which the admin's `klef workspace confirm` checks; without a code, the
//! owner's fingerprint (read out by the owner) is compared with the one the verified genesis
//! names, or, only when asked for explicitly, the genesis the server shows is trusted as is.

use std::io::IsTerminal as _;

use anyhow::{Context as _, Result};
use klef_core::ids::InviteId;
use klef_core::model::Blob;
use klef_core::secrecy::{ExposeSecret as _, SecretString};
use klef_core::trust::identity::Fingerprint;
use klef_core::trust::roster::invite::InviteCode;
use klef_core::trust::roster::{RosterAnchor, SignedEntry, VerifiedRoster};
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::table;
use crate::trust::{self, Trust};

/// Accept an invitation to a workspace (without ID: list your invitations)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The invitation id (from `klef workspace accept` with no ID)
    pub(crate) id: Option<InviteId>,

    /// The invite code the admin sent you out of band (`klef_inv_…`); read from
    /// `KLEF_INVITE_CODE` when not given
    #[arg(long, value_name = "CODE", conflicts_with_all = ["owner_fingerprint", "trust_on_first_use"])]
    pub(crate) code: Option<String>,

    /// Without a code: the workspace owner's key fingerprint, as the owner read it to you
    #[arg(
        long,
        value_name = "FINGERPRINT",
        conflicts_with = "trust_on_first_use"
    )]
    pub(crate) owner_fingerprint: Option<String>,

    /// Without a code or fingerprint: trust the workspace's member list as this server shows
    /// it now (a server that lies at this moment could then read what you are given later)
    #[arg(long)]
    pub(crate) trust_on_first_use: bool,
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
    let code = match &args.code {
        Some(text) => Some(parse_code(text)?),
        None => match std::env::var(klef_core::env::EnvVars::KLEF_INVITE_CODE) {
            Ok(text) if !text.trim().is_empty() => Some(parse_code(&text)?),
            // At a terminal, asked without echo (a flag would show in the process list).
            _ if args.owner_fingerprint.is_none()
                && !args.trust_on_first_use
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal() =>
            {
                let typed = crate::password::prompt_hidden(
                    "invite code from the admin (empty: compare fingerprints instead): ",
                )?;
                if typed.expose_secret().trim().is_empty() {
                    None
                } else {
                    Some(parse_code(typed.expose_secret())?)
                }
            }
            _ => None,
        },
    };
    let invitation = remote
        .invitations()
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| {
            Failure::not_found(format!("no open invitation {id} for this account"))
                .hint("`klef workspace accept` lists your invitations")
        })?;
    let ws = invitation.workspace_id;
    let keys = ctx.keys(&b).await?;
    let mut trust = Trust::load(ctx, remote, &keys).await?;
    let entries = remote.roster(&ws, None).await?;
    let signed = trust::to_signed(&entries).map_err(Failure::other)?;
    let named = format!("workspace \"{}\"", invitation.workspace_name);
    let roster = if let Some(code) = &code {
        verify(&named, code.genesis(), &ws, &signed)?
    } else {
        let Some(first) = signed.first() else {
            return Err(Failure::other(format!(
                "the server sent no roster for {named}: it withheld the member list, or the workspace was made before signed rosters"
            ))
            .hint("ask the workspace's owner to run `klef workspace verify` (it starts the roster), then accept again")
            .into());
        };
        let roster = verify(&named, first.hash(), &ws, &signed)?;
        check_owner(
            ctx,
            args.owner_fingerprint.as_deref(),
            args.trust_on_first_use,
            &roster,
            &invitation.invited_by,
        )?;
        roster
    };
    if let Some(pinned) = trust.anchor(&ws)
        && pinned.genesis != roster.genesis()
    {
        return Err(Failure::other(format!(
            "{named} has another roster genesis than the one this account pinned: the server served a forged or another workspace's roster"
        ))
        .into());
    }
    let me = *trust.me();
    let mac = code.as_ref().map(|c| Blob(c.mac(&ws, &id, &me).0.to_vec()));
    let inv = remote
        .accept(&id, mac)
        .await
        .with_context(|| format!("failed to accept invitation {id}"))?;
    trust.pin(&roster)?;
    trust.save().await?;
    let fingerprint = me.fingerprint();
    let owner = roster
        .member(&roster.owner())
        .map(|o| (o.email.clone(), o.identity().fingerprint()));
    if ctx.global.json {
        ctx.printer.json(&json!({
            "invitation": inv,
            "key_fingerprint": fingerprint.to_string(),
            "owner": owner.as_ref().map(|(email, fp)| json!({"email": email, "key_fingerprint": fp.to_string()})),
            "invite_code_used": code.is_some(),
        }))?;
    }
    ctx.printer.info(&format!(
        "accepted the invitation to workspace \"{}\" from {}",
        inv.workspace_name, inv.invited_by
    ));
    ctx.printer
        .always(&format!("your key fingerprint: {fingerprint}"));
    if code.is_some() {
        ctx.printer.hint(&format!(
            "{}'s `klef workspace confirm {}` checks your invite code; nothing else to compare",
            inv.invited_by, inv.email
        ));
    } else {
        ctx.printer.hint(&format!(
            "read this fingerprint to {} over a channel you trust; they confirm you with `klef workspace confirm {} --fingerprint …`",
            inv.invited_by, inv.email
        ));
    }
    Ok(ExitStatus::SUCCESS)
}

fn parse_code(text: &str) -> Result<InviteCode> {
    let text = SecretString::from(text);
    InviteCode::parse(text.expose_secret()).map_err(|e| {
        Failure::usage(format!("the invite code is not valid: {e}"))
            .hint("copy the whole code (`klef_inv_…`) the admin sent you")
            .into()
    })
}

pub(crate) fn verify(
    named: &str,
    genesis: klef_core::trust::roster::EntryHash,
    ws: &klef_core::ids::WorkspaceId,
    signed: &[SignedEntry],
) -> Result<VerifiedRoster> {
    let anchor = RosterAnchor {
        workspace: *ws,
        genesis,
        head: None,
    };
    VerifiedRoster::verify(&anchor, signed)
        .map_err(|e| Failure::other(format!("{named}: {e}")).into())
}

/// Without an invite code: the owner's fingerprint from the verified genesis must match the one
/// the owner read out (`--owner-fingerprint`, or a yes at a terminal); `--trust-on-first-use`
/// skips the comparison only because it was asked for.
pub(crate) fn check_owner(
    ctx: &Context,
    owner_fingerprint: Option<&str>,
    trust_on_first_use: bool,
    roster: &VerifiedRoster,
    invited_by: &str,
) -> Result<()> {
    let owner = roster
        .member(&roster.owner())
        .ok_or_else(|| Failure::other("the roster names no owner"))?;
    let seen = owner.identity().fingerprint();
    if let Some(given) = owner_fingerprint {
        let given: Fingerprint = given.parse().map_err(|_| {
            Failure::usage(format!("{given:?} is not a key fingerprint")).hint(
                "a fingerprint is 32 hex digits, e.g. 3f2a-91c0-77de-0b41-5c6d-e8f9-0a1b-2c3d",
            )
        })?;
        if !given.matches(&seen) {
            return Err(Failure::other(format!(
                "the owner's key fingerprint in this workspace's roster is {seen}, not the one you were given: the server substituted the workspace's member list, or the fingerprint was misread"
            ))
            .hint("nothing was accepted; ask the owner to read their fingerprint again (`klef whoami`), or ask for an invite code")
            .into());
        }
        return Ok(());
    }
    if trust_on_first_use {
        ctx.printer.warn(&format!(
            "trusting the member list this server shows (owner {} with fingerprint {seen}) without comparing it",
            owner.email
        ));
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "accepting without an invite code needs the owner's fingerprint ({} is the owner)",
            owner.email
        ))
        .hint(format!(
            "pass --code with the invite code {invited_by} sent you, or --owner-fingerprint with the fingerprint {} reads to you",
            owner.email
        ))
        .into());
    }
    ctx.printer.always(&format!(
        "the owner of this workspace is {} with key fingerprint {seen}",
        owner.email
    ));
    let question = format!(
        "does it match the fingerprint {} reads to you from `klef whoami`?",
        owner.email
    );
    if crate::confirm::ask_yes_no(&question)? {
        Ok(())
    } else {
        Err(Failure::other("not accepted: the fingerprints were not confirmed").into())
    }
}
