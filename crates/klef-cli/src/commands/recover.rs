//! `klef recover`: sets a new encryption password with the recovery code. The code opens the
//! recovery copy of the master key; the master key is then re-sealed under the new password
//! (DESIGN.md §2). Secrets and the recovery code itself stay as they are.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use klef_core::crypto::account::UnlockedAccount;
use klef_core::crypto::recovery::{RecoveryCode, RecoveryCodeError};
use klef_core::crypto::{self, CryptoError};
use klef_core::model::{Account, AccountKeys, Timestamp};
use serde_json::json;
use zeroize::Zeroizing;

use crate::backend::AnyBackend;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::password;

/// The first line `klef init --recovery-file` writes above the code.
const FILE_HEADER: &str = "klef recovery code";

/// The largest recovery-code file read (the code is 77 characters).
const MAX_CODE_FILE: u64 = 4096;

/// Set a new encryption password with your recovery code
///
/// The recovery code is asked for on the terminal (it is not echoed), or read from
/// `--code-file` (as written by `klef init --recovery-file`). The new password comes from
/// `KLEF_NEW_PASSWORD`, from `--password-stdin`, or from a prompt asked twice. Afterwards the
/// old password no longer opens the vault, every secret stays readable, the recovery code keeps
/// working, and keys cached by the agent for this vault are wiped.
///
/// On a Klef server the account (sign-in) password approves the change: from
/// `KLEF_ACCOUNT_PASSWORD`, else a prompt. When the current sealed master key does not open
/// with the code (someone replaced it), klef tries the earlier seals the server keeps and, with
/// a warning, restores the newest one the code opens.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Read the recovery code from FILE instead of asking for it
    #[arg(long, value_name = "FILE")]
    pub(crate) code_file: Option<PathBuf>,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    // Checked by its checksum before anything else: a typo never reaches the crypto or the vault.
    let code = read_code(args.code_file.as_deref())?;
    let b = ctx.backend().await?;
    let account = ctx.account(&b).await?;
    // On a server, the account password approves the change (DESIGN §9.4).
    let approval = b.approval()?;
    let (current, unlocked, restored) = match open_with_code(&b, &account, &code).await? {
        Opened::Current(u) => (account.keys.clone(), u, None),
        Opened::Earlier(keys, u, replaced_at) => (keys, u, Some(replaced_at)),
    };
    drop(code);
    if let Some(replaced_at) = restored {
        ctx.printer.warn(&format!(
            "the current sealed master key does not open with this recovery code, but an earlier one (replaced {}) does: klef restores it",
            crate::table::time(replaced_at)
        ));
        ctx.printer.hint(
            "someone holding a session and your account password may have replaced them: treat that password as known, and tell your server's administrator",
        );
    }
    let new = super::password::new_password(ctx, true)?;
    let keys = crypto::account::reseal_with_password(&account.id, &current, &unlocked, &new)
        .context("failed to seal the master key under the new password")?;
    drop(unlocked);
    b.replace_account_keys_approved(&keys, approval)
        .await
        .context("failed to store the new sealed master key")?;
    super::password::forget_in_agent(ctx, &b.vault_id(&account)).await;

    if ctx.global.json {
        ctx.printer
            .json(&json!({ "recovered": true, "restored_earlier_seal": restored.is_some() }))?;
    }
    ctx.printer
        .info("set a new encryption password; the old one no longer opens the vault");
    ctx.printer
        .info("your recovery code still works: keep it somewhere safe");
    Ok(ExitStatus::SUCCESS)
}

/// What the recovery code opened.
enum Opened {
    /// The current seal.
    Current(UnlockedAccount),
    /// An earlier seal (the account's keys with it in place), replaced at the timestamp.
    Earlier(AccountKeys, UnlockedAccount, Timestamp),
}

/// Opens the account with the recovery code: the current seal, else the newest earlier seal
/// that the code opens (a bad write replaced the current one: DESIGN §9.4). Nothing opening is
/// "this recovery code does not open this account".
async fn open_with_code(b: &AnyBackend, account: &Account, code: &RecoveryCode) -> Result<Opened> {
    // Whatever a bad write left (a seal of another key, bytes that are no seal at all), the
    // earlier seals are tried before giving up.
    let current = match crypto::account::unlock_with_recovery(&account.id, &account.keys, code) {
        Ok(u) => return Ok(Opened::Current(u)),
        Err(e) => e,
    };
    let history = b
        .account_key_history()
        .await
        .context("failed to read the earlier seals of the master key")?;
    for earlier in &history {
        let keys = earlier.with_key_pair(&account.keys);
        if let Ok(u) = crypto::account::unlock_with_recovery(&account.id, &keys, code) {
            return Ok(Opened::Earlier(keys, u, earlier.replaced_at));
        }
    }
    match current {
        CryptoError::WrongPassword => Err(Failure::auth(
            "this recovery code does not open this account",
        )
        .hint("use the code `klef init` showed when this vault was created; nothing was changed")
        .into()),
        e => Err(anyhow::Error::new(e).context("failed to open the vault")),
    }
}

/// The recovery code from `file` or the terminal, parsed and checked.
fn read_code(file: Option<&Path>) -> Result<RecoveryCode> {
    let text = if let Some(path) = file {
        read_code_file(path)?
    } else {
        if !password::interactive() {
            return Err(Failure::auth(
                "the recovery code is needed and there is no terminal to ask for it",
            )
            .hint("pass --code-file FILE (the file written by `klef init --recovery-file`)")
            .into());
        }
        Zeroizing::new(
            rpassword::prompt_password("recovery code: ")
                .map_err(|_| Failure::auth("could not read the recovery code"))?,
        )
    };
    RecoveryCode::parse(&text).map_err(|e| bad_code(&e).into())
}

/// The code lines of a recovery-code file: everything but blank lines and the header.
fn read_code_file(path: &Path) -> Result<Zeroizing<String>> {
    let size = fs_err::metadata(path)
        .with_context(|| format!("failed to read the recovery code from {}", path.display()))?
        .len();
    if size > MAX_CODE_FILE {
        return Err(Failure::usage(format!(
            "{} is too large to be a recovery-code file",
            path.display()
        ))
        .into());
    }
    let raw =
        Zeroizing::new(fs_err::read_to_string(path).with_context(|| {
            format!("failed to read the recovery code from {}", path.display())
        })?);
    let mut code = Zeroizing::new(String::new());
    for line in raw.lines().map(str::trim) {
        if line.is_empty() || line.eq_ignore_ascii_case(FILE_HEADER) {
            continue;
        }
        if !code.is_empty() {
            code.push(' ');
        }
        code.push_str(line);
    }
    Ok(code)
}

/// A typed code that fails its checksum: name the group, never echo the text.
fn bad_code(e: &RecoveryCodeError) -> Failure {
    let hint = match e {
        RecoveryCodeError::BadGroup { group, .. } => format!(
            "compare group {group} with the code you wrote down (groups are separated by dashes); nothing was changed"
        ),
        _ => "a recovery code has 13 groups of 5 characters, e.g. 7K3QD-…; nothing was changed"
            .to_owned(),
    };
    Failure::auth(e.to_string()).hint(hint)
}
