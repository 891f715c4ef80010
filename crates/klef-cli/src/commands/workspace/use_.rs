//! `klef workspace use NAME|ID`: records the current workspace in the config file. A workspace
//! the caller was invited to but cannot use yet (the invitation is not accepted, or no admin
//! has confirmed them) is named with who has to act, not reported as missing.

use anyhow::Result;
use klef_core::backend::Backend as _;
use klef_core::ids::WorkspaceId;
use klef_core::wire::InvitationStatus;

use crate::backend::AnyBackend;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};

/// Make a workspace the current one
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The workspace, by name or id
    pub(crate) workspace: String,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    waiting_invitation(&b, &args.workspace).await?;
    let ws = super::find(&b, &args.workspace).await?;
    let mut config = ctx.config()?;
    config.workspace = Some(ws.id);
    ctx.save_config(&config)?;
    ctx.printer
        .info(&format!("now using workspace \"{}\"", ws.name));
    Ok(ExitStatus::SUCCESS)
}

/// Fails, saying who has to act, when `needle` is not one of the caller's workspaces but an
/// open invitation of theirs names it.
async fn waiting_invitation(b: &AnyBackend, needle: &str) -> Result<()> {
    let Ok(remote) = b.remote("workspace use") else {
        return Ok(());
    };
    let by_id = needle.parse::<WorkspaceId>().ok();
    let all = b.workspaces().await?;
    if all.iter().any(|w| Some(w.id) == by_id || w.name == needle) {
        return Ok(());
    }
    let Ok(invitations) = remote.invitations().await else {
        return Ok(());
    };
    let Some(inv) = invitations
        .iter()
        .find(|i| Some(i.workspace_id) == by_id || i.workspace_name == needle)
    else {
        return Ok(());
    };
    let name = &inv.workspace_name;
    Err(match inv.status {
        InvitationStatus::Accepted => Failure::permission(format!(
            "you accepted the invitation to workspace \"{name}\", but no admin has confirmed you yet"
        ))
        .hint(format!(
            "{} (or another admin of \"{name}\") has to compare your key fingerprint (`klef whoami`) and run `klef workspace confirm {}`",
            inv.invited_by, inv.email
        )),
        InvitationStatus::Pending => Failure::permission(format!(
            "you are invited to workspace \"{name}\" but have not accepted yet"
        ))
        .hint(format!("run `klef workspace accept {}`", inv.id)),
    }
    .into())
}
