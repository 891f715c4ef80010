//! `klef backup import FILE [--force]`: restores a backup archive into the local vault, in one
//! transaction, after checking the whole file.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use klef_core::backend::{Backend as _, BackendError};
use klef_core::backup::{self, Archive, BackupError, Restore, Restored};
use klef_core::model::Role;
use klef_core::wire::MAX_BACKUP_BYTES;
use serde_json::json;

use crate::backend::AnyBackend;
use crate::config::Config;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};

/// Archives larger than this are refused before being read (1 GiB).
const MAX_ARCHIVE_BYTES: u64 = 1 << 30;

/// Restore a backup into the local vault
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The archive written by `klef backup export`
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// Replace everything in the local vault with the backup
    #[arg(long)]
    pub(crate) force: bool,

    /// Restore a state older than the one this account has seen: its environments' newer
    /// signed state is forgotten here (on a server, teammates who saw it will refuse the older
    /// one as a rollback)
    #[arg(long)]
    pub(crate) allow_older: bool,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    run_with(args, ctx, None).await
}

/// [`run`] with keys the caller already unlocked.
pub(crate) async fn run_with(
    args: &Args,
    ctx: &Context,
    unlocked: Option<&crate::unlock::KeySource>,
) -> Result<ExitStatus> {
    // The whole file is checked before the vault is even opened, or anything sent.
    let (bytes, mut archive) = read_archive(&args.file)?;
    let b = ctx.backend().await?;
    let server = b.server().map(str::to_owned);
    let previous = if let Some(server) = &server {
        check_for_server(args, &b, server, bytes.len(), &archive).await?;
        None
    } else {
        check_for_local(args, &archive)?;
        b.account().await?
    };
    drop(bytes);
    // Signed state moves only between backends of the same kind: a server's manifests are
    // signed under its roster, a local vault's by its owner alone. Across, the environments
    // are sealed again (the local vault on first use, a server by an owner's write or
    // `klef env seal`).
    let from_server = matches!(
        archive.source,
        klef_core::backup::ArchiveSource::Server { .. }
    );
    if from_server != server.is_some() && !archive.manifests.is_empty() {
        archive.manifests.clear();
        archive.roster.clear();
        ctx.printer.info(
            "note: the backup's signed state was made for another kind of vault and is not restored; the environments are signed again on their next write (or `klef env seal`)",
        );
    }
    // Its signed state against what this account has seen: an older or forked backup is refused.
    crate::signed::check_archive(ctx, &b, &archive, args.allow_older, unlocked).await?;
    let file = args.file.display();
    let progress = ctx.printer.progress("importing the archive");
    let imported = b.import_backup(&archive, args.force).await;
    drop(progress);
    let restored = match imported {
        Ok(Restore::Restored(done)) => done,
        Ok(Restore::Occupied {
            projects,
            secret_versions,
        }) => return Err(not_empty(&args.file, projects, secret_versions).into()),
        Err(e) => {
            return Err(match &server {
                None => anyhow::Error::new(e)
                    .context(format!("failed to import {file}; nothing was written")),
                Some(server) => server_refusal(e, &format!("{file}"), server),
            });
        }
    };
    if let Some(old) = previous {
        crate::commands::password::forget_in_agent(ctx, &old.id.to_string()).await;
    }
    ctx.save_config(&Config {
        workspace: Some(restored.workspace.id),
    })?;
    match &server {
        None => report_local(args, ctx, &restored)?,
        Some(server) => report_server(args, ctx, server, &restored)?,
    }
    Ok(ExitStatus::SUCCESS)
}

/// The local vault takes one account's backup.
fn check_for_local(args: &Args, archive: &Archive) -> Result<()> {
    if archive.accounts.len() != 1 || archive.workspaces.is_empty() {
        return Err(Failure::other(format!(
            "cannot import {}: it holds {} accounts and {} workspaces, the local vault takes one account",
            args.file.display(),
            archive.accounts.len(),
            archive.workspaces.len()
        ))
        .hint("a team workspace's backup is restored into a Klef server")
        .into());
    }
    Ok(())
}

/// A server restores one workspace for its owner: the signed-in account must be the archive's
/// owner with the same keys. Checked here for a clear early answer, and again by the server,
/// which also re-checks the whole file.
async fn check_for_server(
    args: &Args,
    b: &AnyBackend,
    server: &str,
    size: usize,
    archive: &Archive,
) -> Result<()> {
    let file = args.file.display();
    if size > MAX_BACKUP_BYTES {
        return Err(Failure::other(format!(
            "cannot import {file}: {size} bytes is more than the {MAX_BACKUP_BYTES} bytes a Klef server accepts"
        ))
        .into());
    }
    let [workspace] = archive.workspaces.as_slice() else {
        return Err(Failure::other(format!(
            "cannot import {file}: it holds {} workspaces, and a server restores one per backup",
            archive.workspaces.len()
        ))
        .into());
    };
    let me = b.account().await?.ok_or_else(|| {
        Failure::auth(format!("not signed in to {server}"))
            .hint("sign in with `klef login --server URL`")
    })?;
    let owner = archive
        .members
        .iter()
        .find(|m| m.workspace_id == workspace.id && m.role == Role::Owner)
        .and_then(|m| archive.accounts.iter().find(|a| a.id == m.account_id));
    if !owner.is_some_and(|o| o.id == me.id && o.keys.public_key == me.keys.public_key) {
        let whose = owner.map_or_else(
            || "no owner".into(),
            |o| {
                o.email
                    .clone()
                    .unwrap_or_else(|| format!("the local account {}", o.id))
            },
        );
        return Err(Failure::permission(format!(
            "cannot import {file} into {server}: the backup belongs to {whose}, and you are signed in as another account"
        ))
        .hint("only the account that owns a backup can restore it on a server (the server cannot re-wrap keys); to move a backup to a new server, create the account there with `klef signup --from-backup FILE`")
        .into());
    }
    Ok(())
}

/// A server's refusal of a restore, with the hint that answers it.
fn server_refusal(e: BackendError, file: &str, server: &str) -> anyhow::Error {
    let context = format!("failed to import {file} into {server}; nothing was written");
    // The hint rides on a Failure at the root of the chain, where it is found.
    let failure = match &e {
        BackendError::AlreadyExists { .. } => Some(Failure::other(e.to_string()).hint(
            "pass --force to replace that workspace's contents on the server with the backup",
        )),
        BackendError::PermissionDenied(_) => Some(
            Failure::permission(e.to_string())
                .hint("only the workspace's owner can restore a backup over it"),
        ),
        _ => None,
    };
    match failure {
        Some(f) => anyhow::Error::new(f).context(context),
        None => anyhow::Error::new(e).context(context),
    }
}

fn report_local(args: &Args, ctx: &Context, done: &Restored) -> Result<()> {
    let workspace = &done.workspace;
    if ctx.global.json {
        ctx.printer.json(&json!({
            "file": args.file,
            "replaced": done.replaced,
            "workspace": { "id": workspace.id, "name": workspace.name },
            "projects": done.projects,
            "environments": done.environments,
            "secret_versions": done.secret_versions,
        }))?;
    }
    ctx.printer.info(&format!(
        "restored workspace \"{}\" from {} ({}, {}, {})",
        workspace.name,
        args.file.display(),
        super::count(done.projects, "project"),
        super::count(done.environments, "environment"),
        super::count(done.secret_versions, "secret version"),
    ));
    ctx.printer
        .info("unlock it with the encryption password it had, or reset that with `klef recover`");
    Ok(())
}

fn report_server(args: &Args, ctx: &Context, server: &str, done: &Restored) -> Result<()> {
    if ctx.global.json {
        ctx.printer.json(&json!({
            "file": args.file,
            "server": server,
            "replaced": done.replaced,
            "workspace": { "id": done.workspace.id, "name": done.workspace.name },
            "members": done.members,
            "projects": done.projects,
            "environments": done.environments,
            "secret_versions": done.secret_versions,
            "notes": done.notes,
        }))?;
    }
    for note in &done.notes {
        ctx.printer.warn(note);
    }
    ctx.printer.info(&format!(
        "{} workspace \"{}\" on {server} from {} ({}, {}, {})",
        if done.replaced {
            "replaced"
        } else {
            "restored"
        },
        done.workspace.name,
        args.file.display(),
        super::count(done.projects, "project"),
        super::count(done.environments, "environment"),
        super::count(done.secret_versions, "secret version"),
    ));
    Ok(())
}

/// Reads and fully checks the archive; every refusal is one line naming the file.
pub(crate) fn read_archive(path: &Path) -> Result<(Vec<u8>, Archive)> {
    let read_err = || format!("failed to read {}", path.display());
    let size = fs_err::metadata(path).with_context(read_err)?.len();
    if size > MAX_ARCHIVE_BYTES {
        return Err(Failure::other(format!(
            "cannot import {}: {size} bytes is larger than any Klef backup this build accepts",
            path.display()
        ))
        .into());
    }
    let bytes = fs_err::read(path).with_context(read_err)?;
    let archive = backup::decode(&bytes).map_err(|e| {
        let failure = Failure::other(format!("cannot import {}: {e}", path.display()));
        let failure = match e {
            BackupError::NewerVersion { .. } => failure.hint("upgrade klef to restore this backup"),
            BackupError::NotABackup => failure.hint("pass a file written by `klef backup export`"),
            BackupError::Truncated { .. } | BackupError::ChecksumMismatch => {
                failure.hint("the file was damaged after it was written; use another copy")
            }
            _ => failure,
        };
        anyhow::Error::from(failure)
    })?;
    Ok((bytes, archive))
}

fn not_empty(file: &Path, projects: i64, versions: i64) -> Failure {
    Failure::other(format!(
        "cannot import {}: the local vault already holds data ({}, {})",
        file.display(),
        super::count(projects, "project"),
        super::count(versions, "secret version"),
    ))
    .hint("pass --force to replace everything in the local vault with the backup, or restore into an empty vault (another KLEF_HOME or --profile)")
}
