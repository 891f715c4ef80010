//! `klef workspace members [--json]`: who is in the current workspace on the server, their
//! role, standing (invited, accepted, confirmed), key fingerprint and access. Also the lookups
//! the other team commands share.

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::PublicKey;
use klef_core::ids::EnvironmentId;
use klef_core::model::{Environment, Project, Workspace};
use klef_core::wire::{Member, MemberStatus};
use serde_json::json;

use crate::backend::AnyBackend;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::remote::RemoteBackend;
use crate::table;

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

/// The fingerprint of a member's public key, once they have an account.
pub(crate) fn fingerprint(m: &Member) -> Option<String> {
    m.public_key
        .as_ref()
        .and_then(|k| PublicKey::from_slice(k.as_bytes()).ok())
        .map(|k| k.fingerprint())
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
