//! `klef projects …`.

pub(crate) mod list;

use anyhow::Result;

use crate::context::Context;
use crate::diagnostics::ExitStatus;

/// Manage projects
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// List the projects of the current workspace
    List(list::Args),
}

pub(crate) async fn run(cmd: Command, ctx: &Context) -> Result<ExitStatus> {
    match cmd {
        Command::List(args) => list::run(&args, ctx).await,
    }
}
