//! `klef projects …` (also `klef project …`).

pub(crate) mod delete;
pub(crate) mod list;
pub(crate) mod rename;
pub(crate) mod rotate_key;

use anyhow::Result;

use crate::context::Context;
use crate::diagnostics::ExitStatus;

/// Manage projects
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// List the projects of the current workspace
    List(list::Args),
    /// Rename a project (admins)
    Rename(rename::Args),
    /// Delete a project with its environments and values (admins)
    Delete(delete::Args),
    /// Give a project a new key (admins; after a member with full access left)
    RotateKey(rotate_key::Args),
}

pub(crate) async fn run(cmd: Command, ctx: &Context) -> Result<ExitStatus> {
    match cmd {
        Command::List(args) => list::run(&args, ctx).await,
        Command::Rename(args) => rename::run(&args, ctx).await,
        Command::Delete(args) => delete::run(&args, ctx).await,
        Command::RotateKey(args) => rotate_key::run(&args, ctx).await,
    }
}
