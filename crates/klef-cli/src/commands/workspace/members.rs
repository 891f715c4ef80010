//! `klef workspace members [--json]`: who is in the current workspace on the server, their
//! role, standing (invited, accepted, confirmed), key fingerprint and access. Also the lookups
//! the other team commands share.

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::ids::EnvironmentId;
use klef_core::model::{Environment, Project, Workspace};
use klef_core::trust::roster::VerifiedRoster;
use klef_core::wire::{Member, MemberStatus};
use serde_json::json;

use crate::backend::AnyBackend;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::remote::RemoteBackend;
use crate::table;
use crate::trust::Trust;

/// List the workspace's members and invitations
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("workspace members")?;
    let ws = ctx.current_workspace(&b).await?;
    let members = remote
        .members(&ws.id)
        .await
        .with_context(|| format!("failed to list the members of workspace \"{}\"", ws.name))?;
    let envs = all_environments(&b, &ws).await?;
    let roster = verified_roster(ctx, &b, remote, &ws).await?;
    let fingerprint = |m: &Member| {
        let account = m.account_id?;
        roster
            .as_ref()?
            .member(&account)
            .map(|r| r.identity().fingerprint().to_string())
    };
    let access = |m: &Member| match &m.environments {
        None => "all".to_owned(),
        Some(ids) => ids
            .iter()
            .map(|id| env_label(&envs, id))
            .collect::<Vec<_>>()
            .join(","),
    };
    if ctx.global.json {
        let v: Vec<_> = members
            .iter()
            .map(|m| {
                json!({
                    "email": m.email,
                    "account_id": m.account_id,
                    "role": m.role.as_str(),
                    "status": status_str(m.status),
                    "key_fingerprint": fingerprint(m),
                    "in_roster": fingerprint(m).is_some(),
                    "invitation_id": m.invitation_id,
                    "environments": m.environments.as_ref().map(|ids| ids.iter().map(|id| env_label(&envs, id)).collect::<Vec<_>>()),
                })
            })
            .collect();
        ctx.printer.json(&v)?;
        return Ok(ExitStatus::SUCCESS);
    }
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.email.clone(),
                m.role.as_str().to_owned(),
                status_str(m.status).to_owned(),
                fingerprint(m).unwrap_or_else(|| "-".into()),
                access(m),
            ]
        })
        .collect();
    ctx.printer.data(&table::render(
        &["EMAIL", "ROLE", "STATUS", "KEY FINGERPRINT", "ACCESS"],
        &rows,
    ))?;
    if roster.is_none() {
        ctx.printer.hint(
            "fingerprints are shown only from a verified roster: unlock (or set KLEF_PASSWORD) in a workspace with a signed roster",
        );
    }
    Ok(ExitStatus::SUCCESS)
}

/// `invited`, `accepted` or `confirmed`.
pub(crate) fn status_str(s: MemberStatus) -> &'static str {
    match s {
        MemberStatus::Invited => "invited",
        MemberStatus::Accepted => "accepted",
        MemberStatus::Confirmed => "confirmed",
    }
}

/// The workspace's verified roster, when this account pinned it and its keys can be unlocked
/// without asking a script for a password; `None` otherwise (fingerprints are then not shown:
/// the server's copies of members' keys are claims).
async fn verified_roster(
    ctx: &Context,
    b: &AnyBackend,
    remote: &RemoteBackend,
    ws: &Workspace,
) -> Result<Option<VerifiedRoster>> {
    let Some(keys) = ctx.keys_if_available(b).await? else {
        return Ok(None);
    };
    let mut trust = Trust::load(ctx, remote, &keys).await?;
    let roster = trust.roster_if_pinned(&ws.id, &ws.name).await?;
    trust.save().await?;
    Ok(roster)
}

/// The member with `email` (case-insensitive), or a not-found error.
pub(crate) async fn find(remote: &RemoteBackend, ws: &Workspace, email: &str) -> Result<Member> {
    let members = remote
        .members(&ws.id)
        .await
        .with_context(|| format!("failed to list the members of workspace \"{}\"", ws.name))?;
    members
        .into_iter()
        .find(|m| m.email.eq_ignore_ascii_case(email.trim()))
        .ok_or_else(|| {
            Failure::not_found(format!(
                "{email} is not a member of workspace \"{}\" and has no invitation",
                ws.name
            ))
            .hint("`klef workspace members` lists them")
            .into()
        })
}

/// Every environment of every project of the workspace that the caller can see.
pub(crate) async fn all_environments(
    b: &AnyBackend,
    ws: &Workspace,
) -> Result<Vec<(Project, Environment)>> {
    let mut out = Vec::new();
    for p in b.projects(&ws.id).await? {
        for e in b.environments(&p.id).await? {
            out.push((p.clone(), e));
        }
    }
    Ok(out)
}

/// `project:slug` for an environment id, or the id when it is not visible.
fn env_label(envs: &[(Project, Environment)], id: &EnvironmentId) -> String {
    envs.iter()
        .find(|(_, e)| e.id == *id)
        .map_or_else(|| id.to_string(), |(p, e)| format!("{}:{}", p.name, e.slug))
}
