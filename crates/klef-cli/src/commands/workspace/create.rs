//! `klef workspace create NAME`.

use anyhow::Result;
use klef_core::backend::Backend as _;
use klef_core::ids::WorkspaceId;
use klef_core::model::{Role, Workspace};
use klef_core::names::validate_display_name;
use klef_core::trust::roster::{Access, MemberRecord, VerifiedRoster};
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::secrets::now;
use crate::table;
use crate::trust::Trust;

/// Create a workspace
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Its display name, e.g. "Acme Inc"
    pub(crate) name: String,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    validate_display_name("workspace name", &args.name)?;
    let b = ctx.backend().await?;
    ctx.account(&b).await?;
    if b.workspaces().await?.iter().any(|w| w.name == args.name) {
        return Err(Failure::other(format!("workspace \"{}\" already exists", args.name)).into());
    }
    let ws = Workspace {
        id: WorkspaceId::random(),
        name: args.name,
        personal: false,
        created_at: now(),
    };
    match b.as_remote() {
        // On a server: the roster's genesis (this account as owner), signed here and pinned,
        // so nobody can later pass off another member list as this workspace's.
        Some(remote) => {
            let keys = ctx.keys(&b).await?;
            let mut trust = Trust::load(ctx, remote, &keys).await?;
            let me = *trust.me();
            let record = MemberRecord {
                account: me.account,
                email: trust.account().email.clone().unwrap_or_default(),
                identity_key: me.identity_key,
                x25519_key: me.x25519_key,
                role: Role::Owner,
                access: Access::All,
            };
            let (genesis, roster) = VerifiedRoster::create(ws.id, record, &trust.signing_key())
                .map_err(|e| Failure::other(format!("cannot start the workspace's roster: {e}")))?;
            remote
                .create_team_workspace(&ws, crate::trust::to_wire(&genesis, 0))
                .await?;
            trust.pin(&roster)?;
            trust.save().await?;
        }
        None => b.create_workspace(&ws).await?,
    }
    if ctx.global.json {
        ctx.printer.json(&json!({"id": ws.id, "name": ws.name, "personal": false, "created_at": table::time(ws.created_at)}))?;
    }
    ctx.printer
        .info(&format!("created workspace \"{}\"", ws.name));
    ctx.printer.hint(&format!(
        "`klef workspace use \"{}\"` makes it the current workspace",
        ws.name
    ));
    Ok(ExitStatus::SUCCESS)
}
