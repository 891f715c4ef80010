//! `klef workspace invite EMAIL [--role admin|member] [--env SLUG[,SLUG…]]`: invites someone to
//! the current workspace. With `--env`, they will only get the keys of those environments of
//! the current project (wrapped to them directly at `klef workspace confirm`); without it, full
//! access to every project.

use anyhow::Result;
use klef_core::backend::BackendErrorKind;
use klef_core::env::EnvVars;
use klef_core::model::Role;
use klef_core::wire::CreateInvitationRequest;

use klef_core::ids::{InviteId, WorkspaceId};
use klef_core::secrecy::ExposeSecret as _;
use klef_core::trust::roster::invite::InviteCode;
use klef_core::trust::secrets::InviteNote;

use crate::context::{self, Context};
use crate::diagnostics::{ExitStatus, Failure};
use crate::trust::Trust;

/// The role an invitee gets.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum InviteRole {
    /// Manages members, projects, environments and keys.
    Admin,
    /// Reads and writes secrets of the environments shared with them.
    Member,
}

/// Invite someone to the current workspace
///
/// `--env staging` (or `--env staging,qa`) restricts them to those environments of the current
/// project: they never receive the project key or any other environment's key.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Their email
    pub(crate) email: String,

    /// Their role
    #[arg(long, value_enum, default_value = "member")]
    pub(crate) role: InviteRole,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("workspace invite")?;
    let email = args.email.trim().to_owned();
    if !email.contains('@') {
        return Err(Failure::usage(format!("{email:?} is not an email address")).into());
    }
    let ws = ctx.current_workspace(&b).await?;
    let environments = match ctx.global.env.as_deref() {
        None => None,
        Some(list) => {
            if std::env::var(EnvVars::KLEF_ENV).is_ok_and(|v| v == list) {
                return Err(Failure::usage(
                    "KLEF_ENV is set, so it is unclear whether this invitation should be restricted to it",
                )
                .hint("unset KLEF_ENV and pass --env SLUG explicitly to restrict the invitation")
                .into());
            }
            let pt = ctx.project(&b).await?;
            if pt.project.workspace_id != ws.id {
                return Err(Failure::usage(format!(
                    "--env names environments of project \"{}\", which is not in workspace \"{}\" (the current one)",
                    pt.project.name, ws.name
                ))
                .hint(format!(
                    "switch to the project's workspace (`klef workspace list`, then `klef workspace use NAME`), or run this in a directory linked to a project of \"{}\"",
                    ws.name
                ))
                .into());
            }
            let envs = Context::environments(&b, &pt.project).await?;
            let mut ids = Vec::new();
            for slug in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                ids.push(context::find_env(&envs, slug, &pt.project)?.id);
            }
            Some(ids)
        }
    };
    let role = match args.role {
        InviteRole::Admin => Role::Admin,
        InviteRole::Member => Role::Member,
    };
    // The invite code pins this workspace's verified genesis for the invitee.
    let keys = ctx.keys(&b).await?;
    let mut trust = Trust::load(ctx, remote, &keys).await?;
    let roster = trust.roster_or_adopt(&ws).await?;
    trust.save().await?;
    let granted = environments.clone();
    let inv = remote
        .invite(
            &ws.id,
            &CreateInvitationRequest {
                email: email.clone(),
                role,
                environments,
            },
        )
        .await
        .map_err(|e| {
            // The code is shown once; inviting again is how an admin who lost it would try
            // to get another, so this refusal says what works instead.
            if e.kind() == BackendErrorKind::AlreadyExists && e.to_string().contains("open invitation") {
                Failure::other(format!(
                    "{email} already has an open invitation to workspace \"{}\"",
                    ws.name
                ))
                .hint(format!(
                    "an invite code is shown only once: if it is lost, `klef workspace remove {email}` cancels the invitation and `klef workspace invite {email}` makes a new one"
                ))
                .into()
            } else {
                anyhow::Error::from(e)
                    .context(format!("failed to invite {email} to workspace \"{}\"", ws.name))
            }
        })?;
    let code = InviteCode::generate(roster.genesis());
    let text = code.to_text();
    let note = InviteNote {
        code,
        role,
        environments: granted.map(|ids| ids.into_iter().collect()),
    };
    save_invite_note(ctx, &trust, &ws.id, &inv.id, &note)?;
    if ctx.global.json {
        let mut value = serde_json::to_value(&inv)?;
        value["invite_code"] = text.expose_secret().into();
        ctx.printer.json(&value)?;
    }
    let scope = match &ctx.global.env {
        Some(list) => format!("environments {list} only"),
        None => "full access".into(),
    };
    ctx.printer.info(&format!(
        "invited {email} to workspace \"{}\" as {} ({scope}); invitation {}",
        ws.name,
        role.as_str(),
        inv.id
    ));
    if !ctx.global.json {
        ctx.printer
            .always(&format!("invite code: {}", text.expose_secret()));
    }
    ctx.printer.hint(&format!(
        "send {email} the invite code over a channel you trust (not through this server); they run `klef signup` (if new) and `klef workspace accept {} --code CODE`; then you run `klef workspace confirm {email}`",
        inv.id
    ));
    Ok(ExitStatus::SUCCESS)
}

/// Keeps the code (sealed under the account's keys) on this device so that `klef workspace
/// confirm` can check the invitee's MAC without asking for it again.
fn save_invite_note(
    ctx: &Context,
    trust: &Trust<'_>,
    ws: &WorkspaceId,
    invite: &InviteId,
    note: &InviteNote,
) -> Result<()> {
    let path = invite_note_path(ctx, invite);
    if let Some(dir) = path.parent() {
        crate::dirs::create_private_dir(dir)?;
    }
    crate::fsutil::write_atomic(&path, &trust.derived().seal_invite(ws, invite, note), 0o600)
}

/// `<data>/invites/<invite id>.bin`.
pub(crate) fn invite_note_path(ctx: &Context, invite: &InviteId) -> std::path::PathBuf {
    ctx.dirs.data.join("invites").join(format!("{invite}.bin"))
}
