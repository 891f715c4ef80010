//! `klef password …`: the encryption password. Also the helpers `klef recover` and
//! `klef backup import` share with it: asking for a new password and wiping the agent's cached
//! keys after the account's key material changed.

pub(crate) mod change;

use anyhow::Result;
use klef_agent::client::AgentClient;
use klef_agent::paths::AgentPaths;
use klef_core::env::EnvVars;
use secrecy::{ExposeSecret as _, SecretString};

use crate::cli::GlobalArgs;
use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::password;

/// Manage the encryption password
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// Choose a new encryption password (secrets are not re-encrypted)
    ///
    /// The current password is read as usual (`--password-stdin`, `KLEF_PASSWORD` or a
    /// prompt); the new one from `KLEF_NEW_PASSWORD` or a prompt asked twice. Only the sealed
    /// copy of your master key changes, and the key-derivation cost is raised to the current
    /// default if it was lower. Keys cached by the agent for this vault are wiped.
    Change(change::Args),
}

pub(crate) async fn run(cmd: Command, ctx: &Context) -> Result<ExitStatus> {
    match cmd {
        Command::Change(args) => change::run(&args, ctx).await,
    }
}

/// The new encryption password: from stdin when `stdin` (and `--password-stdin` was given),
/// else `KLEF_NEW_PASSWORD`, else asked twice on the terminal. Warns when it is short.
pub(crate) fn new_password(ctx: &Context, stdin: bool) -> Result<SecretString> {
    let global = GlobalArgs {
        password_stdin: stdin && ctx.global.password_stdin,
        ..ctx.global.clone()
    };
    let pw = password::new_password(&global, EnvVars::KLEF_NEW_PASSWORD)?;
    if pw.expose_secret().chars().count() < 12 {
        ctx.printer
            .warn("this password is short; everything in the vault is as strong as it is");
    }
    Ok(pw)
}

/// Whether `KLEF_NO_AGENT` turns the agent off (`1`, `true` or `yes`).
fn agent_disabled() -> bool {
    std::env::var(EnvVars::KLEF_NO_AGENT)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Wipes the keys a running agent caches for `vault` (the account id), so nothing unlocked
/// with the old key material stays usable. Never starts an agent; with none running there is
/// nothing to wipe. A running agent that cannot be told is reported, with the fix.
pub(crate) async fn forget_in_agent(ctx: &Context, vault: &str) {
    if agent_disabled() {
        return;
    }
    let Ok(paths) = AgentPaths::from_env() else {
        return;
    };
    let mut client = match AgentClient::connect(&paths).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "no agent to wipe keys from");
            return;
        }
    };
    if let Err(e) = client.lock_vault(vault).await {
        tracing::debug!(error = %e, "the agent did not wipe the vault's keys");
        ctx.printer
            .warn("the agent may still hold this vault's old keys; run `klef lock` to wipe them");
    }
}
