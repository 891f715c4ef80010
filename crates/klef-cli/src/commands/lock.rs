//! `klef lock` (also `klef agent lock`): wipes every key the agent holds; the agent keeps
//! running, and the next command asks for the password again.
//!
//! With no agent running there is nothing to wipe: success, with a note. An agent of another
//! protocol version cannot be asked to lock, so it is stopped instead (which wipes its keys).
//!
//! With `KLEF_NO_AGENT=1` it contacts nothing and fails (exit 1), saying so.
//!
//! JSON: `{"running", "pid", "wiped"}` (`wiped` is true when an agent was told to drop its keys).

use anyhow::{Context as _, Result};
use klef_agent::client::{AgentClient, ClientError};
use serde_json::json;

use crate::commands::agent::{self, terminate_and_wait};
use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::unlock;

/// Wipe every key the agent holds (the agent keeps running)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    agent::require_agent("lock")?;
    let paths = unlock::agent_paths(&ctx.global)?;
    let (running, pid) = match AgentClient::connect(&paths).await {
        Ok(mut client) => {
            let pid = client.pid();
            client
                .lock()
                .await
                .context("the agent did not confirm the lock")?;
            ctx.printer.info(&format!(
                "locked: the agent (pid {pid}) wiped every key and keeps running; the next command asks for the password"
            ));
            (true, Some(pid))
        }
        Err(ClientError::NotRunning { .. }) => {
            ctx.printer
                .info("the agent is not running, so no key is unlocked: nothing to lock");
            (false, None)
        }
        Err(ClientError::VersionMismatch { agent, pid, .. }) => {
            terminate_and_wait(pid, &paths).await?;
            ctx.printer.info(&format!(
                "the agent (pid {pid}) spoke protocol version {agent}, so it was stopped instead, which wiped its keys"
            ));
            (false, Some(pid))
        }
        Err(e) => return Err(agent::unusable("lock", &e)),
    };
    if ctx.global.json {
        ctx.printer
            .json(&json!({"running": running, "pid": pid, "wiped": pid.is_some()}))?;
    }
    Ok(ExitStatus::SUCCESS)
}
