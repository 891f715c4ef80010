//! `klef workspace rename WORKSPACE NEW`: gives a workspace a new name (unique among your
//! workspaces). The current workspace is kept by id, so it stays current. Admins only on a
//! server (audited).

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::names::validate_display_name;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};

/// Rename a workspace (admins)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The workspace, by name or id
    pub(crate) workspace: String,

    /// Its new name
    pub(crate) new: String,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    validate_display_name("workspace name", &args.new)?;
    let b = ctx.backend().await?;
    let ws = super::find(&b, &args.workspace).await?;
    if args.new != ws.name && b.workspaces().await?.iter().any(|w| w.name == args.new) {
        return Err(
            Failure::other(format!("workspace \"{}\" already exists", args.new))
                .hint("pick another name")
                .into(),
        );
    }
    b.rename_workspace(&ws.id, &args.new)
        .await
        .with_context(|| format!("failed to rename workspace \"{}\"", ws.name))?;
    let renamed = klef_core::model::Workspace {
        name: args.new.clone(),
        ..ws.clone()
    };
    ctx.printer.info(&format!(
        "renamed workspace \"{}\" to \"{}\"",
        ws.name, renamed.name
    ));
    if ctx.global.json {
        ctx.printer.json(&json!({
            "id": renamed.id, "name": renamed.name, "previous_name": ws.name,
        }))?;
    }
    Ok(ExitStatus::SUCCESS)
}
