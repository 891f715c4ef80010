//! `klef projects rotate-key PROJECT`: a new project key (admins holding it, on a server).
//! `klef workspace remove` runs it for every project when a member with full access leaves;
//! run it by hand when that failed, or whenever a project key may have leaked. Every
//! environment key is re-sealed under the new key and it is wrapped to the full-access members
//! of the verified roster.

use anyhow::Result;
use klef_core::backend::Backend as _;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::trust::Trust;

/// Give a project a new key (then rotate its environments: `klef env rotate-key`)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The project, by name or id
    #[arg(value_name = "PROJECT")]
    pub(crate) target: String,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("projects rotate-key")?;
    let project = ctx.find_project(&b, &args.target).await?;
    let ws = b
        .workspaces()
        .await?
        .into_iter()
        .find(|w| w.id == project.workspace_id)
        .ok_or_else(|| {
            Failure::not_found(format!("the workspace of project \"{}\"", project.name))
        })?;
    let keys = ctx.keys(&b).await?;
    let mut trust = Trust::load(ctx, remote, &keys).await?;
    let roster = trust.roster_if_pinned(&ws.id, &ws.name).await?;
    trust.save().await?;
    let holders = crate::commands::workspace::project_key::rotate(
        ctx,
        &b,
        &keys,
        roster.as_ref(),
        &ws,
        &project,
    )
    .await?;
    if ctx.global.json {
        ctx.printer
            .json(&json!({"project": project.name, "holders": holders}))?;
    }
    ctx.printer.info(&format!(
        "replaced the key of project \"{}\" (wrapped to {holders} member(s) with full access)",
        project.name
    ));
    ctx.printer.hint(
        "environment keys are unchanged: rotate each with `klef env rotate-key SLUG` if someone may have kept them",
    );
    Ok(ExitStatus::SUCCESS)
}
