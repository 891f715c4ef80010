//! `klef workspace confirm EMAIL [--yes]`: after an invitee accepted, shows their key
//! fingerprint and, once confirmed, wraps keys to their public key here, client-side: the
//! project keys for full access, or only the invited environments' keys for restricted access.
//! The server stores the wrapped keys; it never sees a key.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::{self, Aad, PublicKey};
use klef_core::wire::{
    ConfirmMemberRequest, MemberStatus, WrappedEnvironmentKey, WrappedProjectKey,
};
use serde_json::json;

use super::members;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};

/// Confirm an invitee (after comparing their key fingerprint) and share keys with them
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The invitee's email
    pub(crate) email: String,

    /// Do not ask: the fingerprint was compared some other way (scripts)
    #[arg(long)]
    pub(crate) yes: bool,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("workspace confirm")?;
    let ws = ctx.current_workspace(&b).await?;
    let member = members::find(remote, &ws, &args.email).await?;
    match member.status {
        MemberStatus::Accepted => {}
        MemberStatus::Invited => {
            return Err(Failure::other(format!(
                "{} has not accepted the invitation yet",
                member.email
            ))
            .hint("they run `klef workspace accept ID` first")
            .into());
        }
        MemberStatus::Confirmed => {
            ctx.printer
                .info(&format!("{} is already a confirmed member", member.email));
            return Ok(ExitStatus::SUCCESS);
        }
    }
    let (Some(account_id), Some(pk)) = (member.account_id, member.public_key.as_ref()) else {
        return Err(Failure::other(format!(
            "the server sent no account or public key for {}",
            member.email
        ))
        .into());
    };
    let public = PublicKey::from_slice(pk.as_bytes())
        .with_context(|| format!("the public key of {} is malformed", member.email))?;
    let fingerprint = public.fingerprint();
    if !args.yes && !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "confirming {} needs a yes on a terminal",
            member.email
        ))
        .hint(format!(
            "their key fingerprint is {fingerprint}: compare it with the one they see, then pass --yes"
        ))
        .into());
    }
    ctx.printer.always(&format!(
        "{}'s key fingerprint: {fingerprint}",
        member.email
    ));
    if !args.yes {
        confirm_on_tty(&member.email)?;
    }

    let keys = ctx.keys(&b).await?;
    let mut req = ConfirmMemberRequest {
        project_keys: Vec::new(),
        environment_keys: Vec::new(),
    };
    let mut shared: Vec<String> = Vec::new();
    let all = members::all_environments(&b, &ws).await?;
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
    if ctx.global.json {
        ctx.printer.json(&json!({
            "email": confirmed.email,
            "account_id": account_id,
            "role": confirmed.role.as_str(),
            "key_fingerprint": fingerprint,
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

/// Asks "does the fingerprint match?" on a terminal; without one, `--yes` is required.
fn confirm_on_tty(email: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(
            Failure::usage(format!("confirming {email} needs a yes on a terminal"))
                .hint("compare the fingerprint with them, then pass --yes")
                .into(),
        );
    }
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "does it match the fingerprint {email} sees in `klef whoami`? [y/N] "
    );
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the answer")?;
    if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure::other("not confirmed: nothing was shared").into())
    }
}
