//! `klef agent stop`: the agent wipes every key and exits; klef waits (at most 5 s) until the
//! process is gone, and with it the socket. With no agent running it only says so.
//!
//! An agent of another protocol version, or one that holds the lock but answers garbage, is
//! sent SIGTERM instead (it wipes its keys on that signal too).
//!
//! With `KLEF_NO_AGENT=1` it contacts nothing and fails (exit 1), saying so.
//!
//! JSON: `{"stopped", "pid"}`.

use anyhow::{Context as _, Result};
use klef_agent::client::{AgentClient, ClientError};
use serde_json::json;

use crate::commands::agent::{lock_holder, require_agent, terminate_and_wait, unusable, wait_gone};
use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::unlock;

/// Wipe every key and stop the agent
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    require_agent("stop")?;
    let paths = unlock::agent_paths(&ctx.global)?;
    let pid = match AgentClient::connect(&paths).await {
        Ok(client) => {
            let pid = client.pid();
            client
                .stop()
                .await
                .context("the agent did not confirm the stop")?;
            wait_gone(pid, &paths).await?;
            Some(pid)
        }
        Err(ClientError::NotRunning { .. }) => None,
        Err(ClientError::VersionMismatch { pid, .. }) => {
            terminate_and_wait(pid, &paths).await?;
            Some(pid)
        }
        Err(e @ ClientError::Broken { .. }) => match lock_holder(&paths) {
            Some(pid) => {
                tracing::debug!(error = %e, pid, "the agent does not answer; sending SIGTERM");
                terminate_and_wait(pid, &paths).await?;
                Some(pid)
            }
            None => return Err(unusable("stop", &e)),
        },
        Err(e) => return Err(anyhow::Error::new(e).context("failed to reach the agent")),
    };
    if ctx.global.json {
        ctx.printer
            .json(&json!({"stopped": pid.is_some(), "pid": pid}))?;
    }
    ctx.printer.info(&match pid {
        Some(pid) => format!("stopped the agent (pid {pid}); every key it held is wiped"),
        None => "the agent is not running".to_owned(),
    });
    Ok(ExitStatus::SUCCESS)
}
