//! `klef password change`: re-seals the master key under a new encryption password
//! (DESIGN.md §2). No secret, project key or environment key is re-encrypted.

use anyhow::{Context as _, Result};
use klef_core::crypto;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::password;

/// Choose a new encryption password
///
/// The current password is read as usual (`--password-stdin`, `KLEF_PASSWORD` or a prompt); the
/// new one from `KLEF_NEW_PASSWORD` or a prompt asked twice. On a Klef server the account
/// (sign-in) password approves the change: from `KLEF_ACCOUNT_PASSWORD`, else a prompt; it needs
/// a session (`klef login`), since an API key cannot replace the account's sealed keys.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let account = ctx.account(&b).await?;
    // On a server, the account password approves the change (DESIGN §9.4): asked first, so a
    // missing one fails before any other prompt.
    let approval = b.approval()?;
    let unlocked =
        password::try_current_password(&ctx.global, "current encryption password: ", |pw| {
            crypto::account::unlock(&account.id, &account.keys, pw)
        })?
        .ok_or_else(password::locked_error)?;
    // The current password may have come from stdin; the new one never does.
    let new = super::new_password(ctx, false)?;
    let raised = crypto::kdf_params_below_default(&account.keys.kdf);
    let keys = crypto::account::reseal_with_password(&account.id, &account.keys, &unlocked, &new)
        .context("failed to seal the master key under the new password")?;
    drop(unlocked);
    b.replace_account_keys_approved(&keys, approval)
        .await
        .context("failed to store the new sealed master key")?;
    super::forget_in_agent(ctx, &b.vault_id(&account)).await;

    let kdf = &keys.kdf;
    if ctx.global.json {
        ctx.printer.json(&json!({
            "changed": true,
            "kdf": {
                "algorithm": "argon2id",
                "m_cost_kib": kdf.m_cost_kib,
                "t_cost": kdf.t_cost,
                "p_cost": kdf.p_cost,
            },
            "kdf_raised": raised,
        }))?;
    }
    ctx.printer.info("changed the encryption password");
    if raised {
        ctx.printer.info(&format!(
            "raised the key-derivation cost to Argon2id m={} MiB, t={}, p={}",
            kdf.m_cost_kib / 1024,
            kdf.t_cost,
            kdf.p_cost
        ));
    }
    ctx.printer
        .info("your recovery code is unchanged; secrets were not re-encrypted");
    Ok(ExitStatus::SUCCESS)
}
