//! `klef env …`: the project's environments.

pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod list;
pub(crate) mod rename;
pub(crate) mod rotate_key;
pub(crate) mod seal;
pub(crate) mod use_;

use anyhow::Result;

use crate::context::Context;
use crate::diagnostics::ExitStatus;

/// Manage the project's environments
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// List the project's environments, marking the one in use and why
    List(list::Args),
    /// Add an environment to the project
    Create(create::Args),
    /// Choose the environment this directory uses (yours; `--save` for the team's default)
    Use(use_::Args),
    /// Give the environment a new key and re-encrypt its values
    RotateKey(rotate_key::Args),
    /// Sign the current state of an environment made before signed manifests (admins)
    Seal(seal::Args),
    /// Rename an environment (admins)
    Rename(rename::Args),
    /// Delete an environment and all its values (admins)
    Delete(delete::Args),
}

pub(crate) async fn run(cmd: Command, ctx: &Context) -> Result<ExitStatus> {
    match cmd {
        Command::List(args) => list::run(&args, ctx).await,
        Command::Create(args) => create::run(args, ctx).await,
        Command::Use(args) => use_::run(&args, ctx).await,
        Command::RotateKey(args) => rotate_key::run(args, ctx).await,
        Command::Seal(args) => seal::run(args, ctx).await,
        Command::Rename(args) => rename::run(&args, ctx).await,
        Command::Delete(args) => delete::run(&args, ctx).await,
    }
}
