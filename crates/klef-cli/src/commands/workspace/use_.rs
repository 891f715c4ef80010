//! `klef workspace use NAME|ID`: records the current workspace in the config file.

use anyhow::Result;

use crate::context::Context;
use crate::diagnostics::ExitStatus;

/// Make a workspace the current one
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The workspace, by name or id
    pub(crate) workspace: String,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let ws = super::find(&b, &args.workspace).await?;
    let mut config = ctx.config()?;
    config.workspace = Some(ws.id);
    ctx.save_config(&config)?;
    ctx.printer
        .info(&format!("now using workspace \"{}\"", ws.name));
    Ok(ExitStatus::SUCCESS)
}
