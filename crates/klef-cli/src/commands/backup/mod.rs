//! `klef backup …`: encrypted, versioned archives of a workspace (format in
//! `klef_core::backup`, rows in `klef_store`). An archive holds ciphertext, wrapped keys,
//! metadata and the account's sealed key material, never a plaintext value or an unwrapped
//! key, so restoring it needs the encryption password or the recovery code.

pub(crate) mod adopt;
pub(crate) mod export;
pub(crate) mod import;

use anyhow::Result;

use crate::context::Context;
use crate::diagnostics::ExitStatus;

/// Back up and restore the vault
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// Write an encrypted backup of the current workspace to FILE
    ///
    /// The archive holds only ciphertext, wrapped keys and metadata, plus your account's sealed
    /// key material, so it can be restored into an empty vault and opened with the same
    /// encryption password or the recovery code. FILE is written atomically with mode 0600 and
    /// is never overwritten unless `--force` is given. In server mode the server sends the
    /// archive (admins and the owner only) and klef checks it before writing.
    Export(export::Args),
    /// Restore a backup into the local vault, or into the server
    ///
    /// The file is checked completely first (signature, format version, checksum) and
    /// imported in one transaction: on any error nothing is written. A vault that already
    /// holds data is left alone unless `--force` is given, which replaces everything in it with
    /// the backup. In server mode only the backup's owner account can restore it; a workspace
    /// that already has projects on the server is replaced only with `--force`.
    Import(import::Args),
}

pub(crate) async fn run(cmd: Command, ctx: &Context) -> Result<ExitStatus> {
    match cmd {
        Command::Export(args) => export::run(&args, ctx).await,
        Command::Import(args) => import::run(&args, ctx).await,
    }
}

/// `1 project`, `3 projects`: a count with its noun.
fn count(n: impl Into<i128> + Copy, noun: &str) -> String {
    let n: i128 = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
