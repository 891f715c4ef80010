//! `klef signup --from-backup FILE`: creates the server account *with the backup owner's
//! existing keys* (same account id, same sealed key material), then restores the backup into
//! it. This is how a local vault, or a workspace from another server, moves to a server: the
//! server can never re-wrap keys for a new account, so the account itself has to move. The
//! encryption password is only used here to prove that the keys open (nothing is re-sealed),
//! so the same password and the same recovery code keep working.

use std::path::Path;

use anyhow::{Context as _, Result};
use klef_core::crypto;
use klef_core::ids::{AccountId, WorkspaceId};
use klef_core::model::{AccountKeys, Role, Workspace};
use klef_core::secrecy::SecretString;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::password;
use crate::secrets::now;

/// The account a backup's owner brings to a server.
pub(crate) struct Adopted {
    /// The owner's account id (bound into the sealed keys' AAD, so it must stay).
    pub(crate) id: AccountId,
    /// The owner's sealed key material, as in the backup.
    pub(crate) keys: AccountKeys,
    /// The personal workspace to sign up with: the backup's own when it is personal (the
    /// restore then fills it), else a new empty one.
    pub(crate) personal: Workspace,
}

/// Reads and checks `file`, finds its owner account and proves with the encryption password
/// (from `--password-stdin`, `KLEF_PASSWORD` or a prompt) that its keys open.
pub(crate) fn adopt(
    ctx: &Context,
    file: &Path,
) -> Result<(Adopted, SecretString, crate::unlock::AccountSecrets)> {
    let (_, archive) = super::import::read_archive(file)?;
    let shown = file.display();
    let [ws] = archive.workspaces.as_slice() else {
        return Err(Failure::other(format!(
            "cannot sign up from {shown}: it holds {} workspaces, and a server restores one per backup",
            archive.workspaces.len()
        ))
        .into());
    };
    let owner = archive
        .members
        .iter()
        .find(|m| m.workspace_id == ws.id && m.role == Role::Owner)
        .and_then(|m| archive.accounts.iter().find(|a| a.id == m.account_id))
        .filter(|a| !a.keys.master_key_by_password.as_bytes().is_empty())
        .ok_or_else(|| {
            Failure::other(format!(
                "cannot sign up from {shown}: it does not hold its owner's keys"
            ))
            .hint("a backup exported by an admin holds only the admin's own keys; ask the workspace's owner for their backup")
        })?;
    let pw =
        password::current_password(&ctx.global, "encryption password of the backup's account: ")?
            .ok_or_else(|| {
            Failure::auth("the backup's encryption password is needed to sign up with its keys")
                .hint("pass --password-stdin or set KLEF_PASSWORD")
        })?;
    let unlocked = crypto::account::unlock(&owner.id, &owner.keys, &pw)
        .with_context(|| format!("failed to open the keys in {shown}"))?;
    let secrets = crate::unlock::AccountSecrets::of(&owner.id, unlocked);
    let personal = if ws.personal {
        ws.clone()
    } else {
        Workspace {
            id: WorkspaceId::random(),
            name: "Personal".into(),
            personal: true,
            created_at: now(),
        }
    };
    Ok((
        Adopted {
            id: owner.id,
            keys: owner.keys.clone(),
            personal,
        },
        pw,
        secrets,
    ))
}

/// Restores `file` on the server just signed in to (as `klef backup import FILE`), with the
/// keys `adopt` opened (the password was read once).
pub(crate) async fn restore(
    ctx: &Context,
    file: &Path,
    secrets: crate::unlock::AccountSecrets,
) -> Result<ExitStatus> {
    let args = super::import::Args {
        file: file.to_path_buf(),
        force: false,
        allow_older: false,
    };
    let keys = crate::unlock::KeySource::Private(secrets);
    super::import::run_with(&args, ctx, Some(&keys)).await
}
