//! `klef workspace confirm EMAIL [--yes]`: after an invitee accepted, shows their key
//! fingerprint and, once confirmed, wraps keys to their public key here, client-side: the
//! project keys for full access, or only the invited environments' keys for restricted access.
//! The server stores the wrapped keys; it never sees a key.

use std::io::IsTerminal as _;

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::{self, Aad, PublicKey};
use klef_core::ids::{AccountId, WorkspaceId};
use klef_core::trust::identity::{Fingerprint, PublicIdentity, VerifyingKey};
use klef_core::trust::roster::invite::InviteMac;
use klef_core::trust::roster::{Access, MemberRecord, Record};
use klef_core::wire::{
    ConfirmMemberRequest, Member, MemberStatus, WrappedEnvironmentKey, WrappedProjectKey,
};
use serde_json::json;

use super::members;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::trust::Trust;

/// Confirm an invitee (after comparing their key fingerprint) and share keys with them
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The invitee's email
    pub(crate) email: String,

    /// The fingerprint the invitee read to you (needed without a terminal unless they accepted
    /// with the invite code this device issued)
    #[arg(long, value_name = "FINGERPRINT")]
    pub(crate) fingerprint: Option<String>,

    /// Do not ask before signing and sharing (the keys are still verified: by the invite code,
    /// or by --fingerprint)
    #[arg(long)]
    pub(crate) yes: bool,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("workspace confirm")?;
    let ws = ctx.current_workspace(&b).await?;
    let member = members::find(remote, &ws, &args.email).await?;
    match member.status {
        // Confirmed already: nothing to do if the roster lists them, else (confirmed before the
        // workspace had a signed roster) vouch for them below, without sharing keys again.
        MemberStatus::Accepted | MemberStatus::Confirmed => {}
        MemberStatus::Invited => {
            return Err(Failure::other(format!(
                "{} has not accepted the invitation yet",
                member.email
            ))
            .hint("they run `klef workspace accept ID` first")
            .into());
        }
    }
    let Some(account_id) = member.account_id else {
        return Err(
            Failure::other(format!("the server sent no account for {}", member.email)).into(),
        );
    };
    let keys = ctx.keys(&b).await?;
    let mut trust = Trust::load(ctx, remote, &keys).await?;
    let roster = trust.roster_or_adopt(&ws).await?;
    let revouch = member.status == MemberStatus::Confirmed;
    if revouch && roster.member(&account_id).is_some() {
        trust.save().await?;
        ctx.printer
            .info(&format!("{} is already a confirmed member", member.email));
        return Ok(ExitStatus::SUCCESS);
    }
    // The keys the server relays for the invitee are a claim, checked below before anything
    // is signed or wrapped.
    let claimed = claimed_identity(&member, account_id)?;
    let fingerprint = claimed.fingerprint();
    let how = check_ceremony(ctx, args, &trust, &ws.id, &member, &claimed)?;
    let access = match &member.environments {
        None => Access::All,
        Some(ids) => Access::Only(ids.iter().copied().collect()),
    };
    let all = members::all_environments(&b, &ws).await?;
    let sharing = match &member.environments {
        None => "every environment of every project".to_owned(),
        Some(ids) => ids
            .iter()
            .map(|id| {
                all.iter()
                    .find(|(_, e)| e.id == *id)
                    .map_or_else(|| id.to_string(), |(p, e)| format!("{}:{}", p.name, e.slug))
            })
            .collect::<Vec<_>>()
            .join(", "),
    };
    let summary = if revouch {
        format!(
            "{} ({how}, key fingerprint {fingerprint}), confirmed before \"{}\" had a signed roster, is signed into it as {} with access to {sharing}",
            member.email,
            ws.name,
            member.role.as_str()
        )
    } else {
        format!(
            "{} ({how}, key fingerprint {fingerprint}) joins \"{}\" as {} with access to {sharing}",
            member.email,
            ws.name,
            member.role.as_str()
        )
    };
    if args.yes {
        ctx.printer.always(&summary);
    }
    crate::confirm::confirm_or(
        ctx,
        &summary,
        "sign their roster entry and share these keys?",
        args.yes,
        "not confirmed; nothing was signed or shared",
    )?;
    let record = MemberRecord {
        account: account_id,
        email: member.email.clone(),
        identity_key: claimed.identity_key,
        x25519_key: claimed.x25519_key,
        role: member.role,
        access,
    };
    let (entry, roster) = roster
        .append(
            Record::Member(record),
            trust.me().account,
            &trust.signing_key(),
        )
        .map_err(|e| Failure::other(format!("cannot add {} to the roster: {e}", member.email)))?;
    let sequence = roster.head().sequence;
    if revouch {
        remote
            .append_roster(&ws.id, vec![crate::trust::to_wire(&entry, sequence)])
            .await
            .with_context(|| format!("failed to sign {} into the roster", member.email))?;
        trust.pin(&roster)?;
        trust.save().await?;
        if ctx.global.json {
            ctx.printer.json(&json!({
                "email": member.email,
                "account_id": account_id,
                "role": member.role.as_str(),
                "key_fingerprint": fingerprint.to_string(),
                "verified_by": how,
                "shared": Vec::<String>::new(),
            }))?;
        }
        ctx.printer.info(&format!(
            "signed {} into the roster of workspace \"{}\"",
            member.email, ws.name
        ));
        return Ok(ExitStatus::SUCCESS);
    }
    // Keys are wrapped only to the keys just verified and signed into the roster.
    let public = claimed.x25519_key;

    let mut req = ConfirmMemberRequest {
        project_keys: Vec::new(),
        environment_keys: Vec::new(),
        roster_entry: Some(crate::trust::to_wire(&entry, sequence)),
    };
    let mut shared: Vec<String> = Vec::new();
    match &member.environments {
        None => {
            for project in b.projects(&ws.id).await? {
                let Some((_, env)) = all.iter().find(|(p, _)| p.id == project.id) else {
                    ctx.printer.warn(&format!(
                        "project \"{}\" has no environment you can reach; its key is not shared",
                        project.name
                    ));
                    continue;
                };
                let access = b.environment_key(&env.id).await?;
                let project_key = match keys.project_key(&project, &access).await {
                    Ok(k) => k,
                    Err(e) => {
                        ctx.printer.warn(&format!(
                            "the key of project \"{}\" is not shared: {e}",
                            project.name
                        ));
                        continue;
                    }
                };
                let wrapped =
                    crypto::try_wrap_key(&public, &project_key, &Aad::ProjectKey(&project.id))
                        .with_context(|| format!("cannot wrap a key to {}", member.email))?;
                req.project_keys.push(WrappedProjectKey {
                    project_id: project.id,
                    wrapped_key: wrapped.into(),
                });
                shared.push(format!("project {}", project.name));
            }
        }
        Some(ids) => {
            for id in ids {
                let Some((project, env)) = all.iter().find(|(_, e)| e.id == *id) else {
                    return Err(Failure::permission(format!(
                        "the invitation lists environment {id}, which you cannot reach"
                    ))
                    .into());
                };
                let full = remote.environment_key_full(&env.id).await?;
                let env_key = keys
                    .environment_key(project, &full.environment, &full.access)
                    .await?;
                let wrapped =
                    crypto::try_wrap_key(&public, &env_key, &Aad::EnvironmentKey(&env.id))
                        .with_context(|| format!("cannot wrap a key to {}", member.email))?;
                req.environment_keys.push(WrappedEnvironmentKey {
                    environment_id: env.id,
                    key_version: full.environment.key_version,
                    wrapped_key: wrapped.into(),
                });
                shared.push(format!("{}:{}", project.name, env.slug));
            }
        }
    }
    let confirmed = remote
        .confirm(&ws.id, &account_id, &req)
        .await
        .with_context(|| format!("failed to confirm {}", member.email))?;
    trust.pin(&roster)?;
    trust.save().await?;
    if let Some(invite) = &member.invitation_id {
        // The code has done its job; a confirmed member needs no second check.
        let _ = std::fs::remove_file(super::invite::invite_note_path(ctx, invite));
    }
    if ctx.global.json {
        ctx.printer.json(&json!({
            "email": confirmed.email,
            "account_id": account_id,
            "role": confirmed.role.as_str(),
            "key_fingerprint": fingerprint.to_string(),
            "verified_by": how,
            "shared": shared,
        }))?;
    }
    ctx.printer.info(&format!(
        "confirmed {} in workspace \"{}\"; shared: {}",
        confirmed.email,
        ws.name,
        if shared.is_empty() {
            "nothing yet".to_owned()
        } else {
            shared.join(", ")
        }
    ));
    Ok(ExitStatus::SUCCESS)
}

/// The invitee's keys as the server relays them (a claim until the ceremony checks them).
fn claimed_identity(member: &Member, account: AccountId) -> Result<PublicIdentity> {
    let malformed = |what: &str| {
        Failure::other(format!(
            "the server sent a malformed {what} for {}: it altered their keys",
            member.email
        ))
    };
    let x25519 = member
        .public_key
        .as_ref()
        .and_then(|k| PublicKey::from_slice(k.as_bytes()).ok())
        .ok_or_else(|| malformed("encryption key"))?;
    let identity = member
        .identity_key
        .as_ref()
        .ok_or_else(|| {
            Failure::other(format!(
                "the server sent no identity key for {}",
                member.email
            ))
            .hint("they run any command that unlocks (e.g. `klef whoami`) with a current klef, which publishes it")
        })?;
    let identity =
        VerifyingKey::from_slice(identity.as_bytes()).map_err(|_| malformed("identity key"))?;
    Ok(PublicIdentity {
        account,
        identity_key: identity,
        x25519_key: x25519,
    })
}

/// Checks the relayed keys: with the invite code this device issued, by the invitee's MAC;
/// otherwise by the fingerprint the invitee read out (`--fingerprint`, or a yes at a
/// terminal). No flag skips the check. Returns how the keys were verified.
fn check_ceremony(
    ctx: &Context,
    args: &Args,
    trust: &Trust<'_>,
    ws: &WorkspaceId,
    member: &Member,
    claimed: &PublicIdentity,
) -> Result<&'static str> {
    let substituted = || {
        Failure::other(format!(
            "the keys the server relays for {} are not the ones they vouched for: the server substituted their keys (or relayed another account); nothing was shared",
            member.email
        ))
        .hint("tell the server's operator; confirm only once the fingerprints match")
    };
    let note = member
        .invitation_id
        .map(|id| (id, super::invite::invite_note_path(ctx, &id)))
        .and_then(|(id, path)| std::fs::read(path).ok().map(|b| (id, b)))
        .and_then(|(id, sealed)| {
            trust
                .derived()
                .open_invite(ws, &id, &sealed)
                .map(|c| (id, c))
        });
    // What this device invited them as: the server must not have changed it.
    if let Some((_, note)) = &note {
        let listed: Option<std::collections::BTreeSet<_>> = member
            .environments
            .as_ref()
            .map(|ids| ids.iter().copied().collect());
        if note.role != member.role || note.environments != listed {
            return Err(Failure::other(format!(
                "the server changed the invitation of {}: this device invited them as {} with {}, the server now says {} with {}; nothing was signed or shared",
                member.email,
                note.role.as_str(),
                access_text(note.environments.as_ref()),
                member.role.as_str(),
                access_text(listed.as_ref()),
            ))
            .hint("tell the server's operator; invite them again if the invitation should change")
            .into());
        }
    }
    if let Some(given) = &args.fingerprint {
        let given: Fingerprint = given.parse().map_err(|_| {
            Failure::usage(format!("{given:?} is not a key fingerprint")).hint(
                "a fingerprint is 32 hex digits, e.g. 3f2a-91c0-77de-0b41-5c6d-e8f9-0a1b-2c3d",
            )
        })?;
        if !given.matches(&claimed.fingerprint()) {
            return Err(substituted().into());
        }
        return Ok("fingerprint compared");
    }
    if let (Some((invite, note)), Some(mac)) = (&note, &member.invite_mac) {
        let mac: [u8; 32] = mac.as_bytes().try_into().map_err(|_| substituted())?;
        note.code
            .check(ws, invite, claimed, &InviteMac(mac))
            .map_err(|_| substituted())?;
        return Ok("invite code checked");
    }
    if !std::io::stdin().is_terminal() {
        let why = if note.is_some() {
            "they accepted without the invite code"
        } else {
            "this device did not issue their invite code"
        };
        return Err(Failure::usage(format!(
            "confirming {} needs their key fingerprint: {why}",
            member.email
        ))
        .hint(format!(
            "ask {} to read the fingerprint `klef whoami` shows them, then pass --fingerprint FINGERPRINT",
            member.email
        ))
        .into());
    }
    ctx.printer.always(&format!(
        "{}'s key fingerprint, as this server relays it: {}",
        member.email,
        claimed.fingerprint()
    ));
    let question = format!(
        "does it match the fingerprint {} reads to you from `klef whoami`?",
        member.email
    );
    if crate::confirm::ask_yes_no(&question)? {
        Ok("fingerprint compared")
    } else {
        Err(Failure::other("not confirmed: nothing was shared").into())
    }
}

/// `every environment`, or `N environment(s)`, for messages.
fn access_text(envs: Option<&std::collections::BTreeSet<klef_core::ids::EnvironmentId>>) -> String {
    match envs {
        None => "access to every environment".to_owned(),
        Some(ids) => format!("access to {} environment(s)", ids.len()),
    }
}
