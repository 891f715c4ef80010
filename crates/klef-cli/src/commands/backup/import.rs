//! `klef backup import FILE [--force]`: restores a backup archive into the local vault, in one
//! transaction, after checking the whole file.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::backup::{self, Archive, BackupError};
use klef_store::{ImportMode, StoreError};
use serde_json::json;

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
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    // The whole file is checked before the vault is even opened.
    let archive = read_archive(&args.file)?;
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

    let b = ctx.backend().await?;
    let store = super::store(&b)?;
    let contents = store.contents().await?;
    if !contents.is_empty() && !args.force {
        return Err(not_empty(&args.file, contents.projects, contents.secret_versions).into());
    }
    let previous = b.account().await?;
    let mode = if args.force {
        ImportMode::Replace
    } else {
        ImportMode::IntoEmpty
    };
    let summary = match store.import_archive(&archive, mode).await {
        Ok(s) => s,
        // Someone wrote to the vault between the check and the import.
        Err(StoreError::AlreadyExists { .. }) if !args.force => {
            let now = store.contents().await?;
            return Err(not_empty(&args.file, now.projects, now.secret_versions).into());
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "failed to import {}; nothing was written",
                args.file.display()
            )));
        }
    };
    if let Some(old) = previous {
        crate::commands::password::forget_in_agent(ctx, &old.id.to_string()).await;
    }
    let workspace = &archive.workspaces[0];
    ctx.save_config(&Config {
        workspace: Some(workspace.id),
    })?;

    if ctx.global.json {
        ctx.printer.json(&json!({
            "file": args.file,
            "replaced": args.force && !contents.is_empty(),
            "workspace": { "id": workspace.id, "name": workspace.name },
            "projects": summary.projects,
            "environments": summary.environments,
            "secret_versions": summary.secret_versions,
        }))?;
    }
    ctx.printer.info(&format!(
        "restored workspace \"{}\" from {} ({}, {}, {})",
        workspace.name,
        args.file.display(),
        super::count(summary.projects as u64, "project"),
        super::count(summary.environments as u64, "environment"),
        super::count(summary.secret_versions as u64, "secret version"),
    ));
    ctx.printer
        .info("unlock it with the encryption password it had, or reset that with `klef recover`");
    Ok(ExitStatus::SUCCESS)
}

/// Reads and fully checks the archive; every refusal is one line naming the file.
fn read_archive(path: &Path) -> Result<Archive> {
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
    backup::decode(&bytes).map_err(|e| {
        let failure = Failure::other(format!("cannot import {}: {e}", path.display()));
        let failure = match e {
            BackupError::NewerVersion { .. } => failure.hint("upgrade klef to restore this backup"),
            BackupError::NotABackup => failure.hint("pass a file written by `klef backup export`"),
            BackupError::Truncated { .. } | BackupError::ChecksumMismatch => {
                failure.hint("the file was damaged after it was written; use another copy")
            }
            _ => failure,
        };
        failure.into()
    })
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
