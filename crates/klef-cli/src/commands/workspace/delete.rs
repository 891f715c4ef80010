//! `klef workspace delete WORKSPACE [--yes]`: deletes a team workspace with its projects,
//! environments, values and history, its members and invitations, for everyone. Only its
//! owner may (on a server; audited). Your personal workspace cannot be deleted. The
//! confirmation names how many projects, environments and values are lost; `--yes` skips it,
//! and without a terminal `--yes` is required. When it was your current workspace, the
//! personal one becomes current again.

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use serde_json::json;

use crate::commands::projects::delete::loss;
use crate::confirm::{confirm, count};
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::env_choice;

/// Delete a team workspace with everything in it (its owner)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The workspace, by name or id
    pub(crate) workspace: String,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let ws = super::find(&b, &args.workspace).await?;
    if ws.personal {
        return Err(Failure::other(format!(
            "\"{}\" is your personal workspace, which cannot be deleted",
            ws.name
        ))
        .hint("delete its projects one by one (`klef projects delete PROJECT`)")
        .into());
    }
    let projects = b.projects(&ws.id).await?;
    let (mut environments, mut secrets) = (0, Some(0));
    for p in &projects {
        let l = loss(&b, p).await?;
        environments += l.environments;
        secrets = secrets.zip(l.secrets).map(|(a, b)| a + b);
    }
    let what = format!(
        "deleting workspace \"{}\" deletes {} with {} and {}, and removes its members, for everyone; this cannot be undone",
        ws.name,
        count(projects.len(), "project", "projects"),
        count(environments, "environment", "environments"),
        secrets.map_or_else(
            || "their secrets".to_owned(),
            |n| count(n, "secret", "secrets")
        ),
    );
    confirm(ctx, &what, "delete it?", args.yes)?;
    b.delete_workspace(&ws.id)
        .await
        .with_context(|| format!("failed to delete workspace \"{}\"", ws.name))?;
    for p in &projects {
        env_choice::project_deleted(&ctx.dirs, &p.id)?;
    }
    let mut config = ctx.config()?;
    if config.workspace == Some(ws.id) {
        config.workspace = None;
        ctx.save_config(&config)?;
        ctx.printer
            .info("your personal workspace is the current one again");
    }
    ctx.printer.info(&format!(
        "deleted workspace \"{}\": {} with {} and {}",
        ws.name,
        count(projects.len(), "project", "projects"),
        count(environments, "environment", "environments"),
        secrets.map_or_else(
            || "their secrets".to_owned(),
            |n| count(n, "secret", "secrets")
        ),
    ));
    if ctx.global.json {
        ctx.printer.json(&json!({
            "id": ws.id, "name": ws.name, "projects": projects.len(),
            "environments": environments, "secrets": secrets,
        }))?;
    }
    Ok(ExitStatus::SUCCESS)
}
