//! `klef backup export FILE`: writes the current workspace's rows as a backup archive, read
//! from the local vault or, in server mode, downloaded from the server (which lets only the
//! workspace's admins and owner export it) and checked before it is written.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use klef_core::backend::{Backend as _, BackendError};
use klef_core::backup;
use klef_core::model::Workspace;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};

/// Write an encrypted backup of the current workspace
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The archive to write (refused if it exists, unless --force)
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// Replace FILE if it exists
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    if !args.force && fs_err::symlink_metadata(&args.file).is_ok() {
        return Err(exists(&args.file).into());
    }
    let b = ctx.backend().await?;
    ctx.account(&b).await?;
    let ws = ctx.current_workspace(&b).await?;
    let progress = ctx
        .printer
        .progress(format!("exporting workspace \"{}\"", ws.name));
    let archive = b
        .export_backup(&ws)
        .await
        .map_err(|e| export_failed(e, &ws, b.server()))?;
    let bytes = backup::encode(&archive);
    write_archive(&args.file, &bytes, args.force)?;
    drop(progress);

    let versions = archive.secrets.len();
    if ctx.global.json {
        ctx.printer.json(&json!({
            "file": args.file,
            "format_version": backup::FORMAT_VERSION,
            "workspace": { "id": ws.id, "name": ws.name },
            "projects": archive.projects.len(),
            "environments": archive.environments.len(),
            "secret_versions": versions,
            "bytes": bytes.len(),
        }))?;
    }
    ctx.printer.info(&format!(
        "wrote a backup of workspace \"{}\" to {} ({}, {}, {})",
        ws.name,
        args.file.display(),
        super::count(archive.projects.len() as u64, "project"),
        super::count(archive.environments.len() as u64, "environment"),
        super::count(versions as u64, "secret version"),
    ));
    ctx.printer.info(
        "it holds encrypted data only: restoring it needs your encryption password or recovery code",
    );
    Ok(ExitStatus::SUCCESS)
}

/// Why the export failed, with where from: the local vault, or the server (which lets only
/// the workspace's admins and owner export it).
fn export_failed(e: BackendError, ws: &Workspace, server: Option<&str>) -> anyhow::Error {
    let Some(server) = server else {
        return anyhow::Error::new(e).context(format!("failed to read workspace \"{}\"", ws.name));
    };
    let context = format!("failed to export workspace \"{}\" from {server}", ws.name);
    // The hint rides on a Failure at the root of the chain, where it is found.
    if matches!(e, BackendError::PermissionDenied(_)) {
        anyhow::Error::new(
            Failure::permission(e.to_string())
                .hint("only the workspace's admins and owner can export it"),
        )
        .context(context)
    } else {
        anyhow::Error::new(e).context(context)
    }
}

fn exists(path: &Path) -> Failure {
    Failure::other(format!("{} already exists", path.display()))
        .hint("choose another FILE, or pass --force to replace it")
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, fsync, mode
/// 0600, rename). Without `force` the final rename refuses an existing file, even one created
/// since the first check.
fn write_archive(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::env::current_dir().context("failed to read the current directory")?,
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".klef-backup-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut tmp = builder
        .tempfile_in(&dir)
        .with_context(|| format!("failed to create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("failed to write {}", tmp.path().display()))?;
    let persisted = if force {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    match persisted {
        Ok(_) => {}
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(exists(path).into());
        }
        Err(e) => {
            return Err(e.error).with_context(|| format!("failed to write {}", path.display()));
        }
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        // Makes the rename durable; the file itself is complete either way.
        let _ = d.sync_all();
    }
    Ok(())
}
