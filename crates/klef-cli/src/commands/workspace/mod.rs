//! `klef workspace …`: list, create and choose the current workspace.

pub(crate) mod accept;
pub(crate) mod confirm;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod invite;
pub(crate) mod list;
pub(crate) mod members;
pub(crate) mod project_key;
pub(crate) mod remove;
pub(crate) mod rename;
pub(crate) mod use_;
pub(crate) mod verify;

use anyhow::Result;
use klef_core::backend::Backend as _;
use klef_core::ids::WorkspaceId;
use klef_core::model::Workspace;

use crate::backend::AnyBackend;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};

/// Manage workspaces
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// List your workspaces
    List(list::Args),
    /// Create a workspace
    Create(create::Args),
    /// Make a workspace the current one
    Use(use_::Args),
    /// Invite someone to the current workspace (server mode)
    Invite(invite::Args),
    /// Accept an invitation (without ID: list yours)
    Accept(accept::Args),
    /// Confirm an invitee after comparing their key fingerprint, and share keys with them
    Confirm(confirm::Args),
    /// List the workspace's members and invitations
    Members(members::Args),
    /// Remove a member (then rotate the keys they could read)
    Remove(remove::Args),
    /// Rename a workspace (admins)
    Rename(rename::Args),
    /// Delete a team workspace with everything in it (its owner)
    Delete(delete::Args),
    /// Verify the signed member list and show a code to compare with teammates
    Verify(verify::Args),
}

pub(crate) async fn run(cmd: Command, ctx: &Context) -> Result<ExitStatus> {
    match cmd {
        Command::List(args) => list::run(&args, ctx).await,
        Command::Create(args) => create::run(args, ctx).await,
        Command::Use(args) => use_::run(&args, ctx).await,
        Command::Invite(args) => invite::run(&args, ctx).await,
        Command::Accept(args) => accept::run(&args, ctx).await,
        Command::Confirm(args) => confirm::run(&args, ctx).await,
        Command::Members(args) => members::run(&args, ctx).await,
        Command::Remove(args) => remove::run(&args, ctx).await,
        Command::Rename(args) => rename::run(&args, ctx).await,
        Command::Delete(args) => delete::run(&args, ctx).await,
        Command::Verify(args) => verify::run(&args, ctx).await,
    }
}

/// Finds a workspace by id or exact name.
pub(crate) async fn find(b: &AnyBackend, needle: &str) -> Result<Workspace> {
    let all = b.workspaces().await?;
    let by_id = needle.parse::<WorkspaceId>().ok();
    let mut hits: Vec<&Workspace> = all
        .iter()
        .filter(|w| Some(w.id) == by_id || w.name == needle)
        .collect();
    match hits.len() {
        0 => {
            let names: Vec<&str> = all.iter().map(|w| w.name.as_str()).collect();
            Err(
                Failure::not_found(format!("workspace \"{needle}\" not found"))
                    .hint(format!("your workspaces: {}", names.join(", ")))
                    .into(),
            )
        }
        1 => Ok(hits.remove(0).clone()),
        _ => Err(
            Failure::usage(format!("several workspaces are named \"{needle}\""))
                .hint("use the workspace id (see `klef workspace list --json`)")
                .into(),
        ),
    }
}
