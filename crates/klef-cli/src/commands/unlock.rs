//! `klef unlock`: asks for the encryption password once, opens the account's private key and
//! hands it to the agent (started if needed), so later commands need no password until the key
//! expires or `klef lock`.
//!
//! When the agent already holds the key and no `--password-stdin` was given, nothing is asked.
//! With `KLEF_NO_AGENT=1` there is no agent to unlock and the command fails.
//!
//! JSON: `{"vault", "pid", "already_unlocked", "idle_left_secs", "hard_cap_left_secs"}`.

use anyhow::{Context as _, Result};
use klef_agent::client::{AgentClient, default_agent_bin, ensure_running};
use serde_json::json;

use crate::commands::agent::{format_duration, require_agent, start_failure};
use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::unlock;

/// Unlock your vault for this session: later commands need no password
///
/// Asks for the encryption password once (or reads it with `--password-stdin` or
/// `KLEF_PASSWORD`) and hands the opened key to the agent, starting it if needed. The agent
/// wipes the key after `KLEF_AGENT_IDLE_TIMEOUT` unused (1h) and at most `KLEF_AGENT_MAX_LIFETIME`
/// after unlocking (8h), or on `klef lock`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    require_agent("unlock")?;
    let b = ctx.backend().await?;
    let account = ctx.account(&b).await?;
    let vault = b.vault_id(&account);
    let paths = unlock::agent_paths(&ctx.global)?;

    // Already unlocked: nothing to ask (unless a password was explicitly piped in).
    if !ctx.global.password_stdin
        && let Ok(mut client) = AgentClient::connect(&paths).await
        && client.is_unlocked(&vault).await.unwrap_or(false)
    {
        return report(ctx, &mut client, &vault, true).await;
    }

    let secrets = unlock::password_unlock(&ctx.global, &account)?;
    let mut client = ensure_running(&paths, &default_agent_bin())
        .await
        .map_err(start_failure)?;
    client
        .unlock(&vault, &secrets.private_key, &secrets.derived)
        .await
        .context("the agent did not take the key")?;
    drop(secrets);
    report(ctx, &mut client, &vault, false).await
}

async fn report(
    ctx: &Context,
    client: &mut AgentClient,
    vault: &str,
    already: bool,
) -> Result<ExitStatus> {
    let status = client
        .status()
        .await
        .context("the agent did not report its status")?;
    let entry = status.vaults.iter().find(|v| v.vault == vault);
    if ctx.global.json {
        ctx.printer.json(&json!({
            "vault": vault,
            "pid": status.pid,
            "already_unlocked": already,
            "idle_left_secs": entry.map(|e| e.idle_left.as_secs()),
            "hard_cap_left_secs": entry.map(|e| e.hard_cap_left.as_secs()),
        }))?;
    }
    let (idle, cap) = entry.map_or((status.idle_timeout, status.max_lifetime), |e| {
        (e.idle_left, e.hard_cap_left)
    });
    ctx.printer.info(&format!(
        "{} (agent pid {}): the key is wiped after {} unused, and in {} at the latest; `klef lock` wipes it now",
        if already { "already unlocked" } else { "unlocked" },
        status.pid,
        format_duration(idle),
        format_duration(cap),
    ));
    Ok(ExitStatus::SUCCESS)
}
