//! `klef agent start`: starts the agent when none runs; with one running it only says so
//! (idempotent). Refused with `KLEF_NO_AGENT=1`. A timeout variable above its maximum makes the
//! agent refuse to start, and its message is shown (exit 1).
//!
//! JSON: `{"pid", "started"}` (`started` is false when the agent was already running).

use anyhow::Result;
use klef_agent::client::{AgentClient, ClientError, default_agent_bin, ensure_running};
use serde_json::json;

use crate::commands::agent::{require_agent, start_failure, unusable};
use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::unlock;

/// Start the agent if it is not running (does nothing when it is)
///
/// `klef unlock` starts it too. `KLEF_AGENT_IDLE_TIMEOUT` and `KLEF_AGENT_MAX_LIFETIME` (read
/// when it starts) shorten how long it keeps keys.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    require_agent("start")?;
    let paths = unlock::agent_paths(&ctx.global)?;
    let (pid, started) = match AgentClient::connect(&paths).await {
        Ok(client) => (client.pid(), false),
        Err(ClientError::NotRunning { .. } | ClientError::VersionMismatch { .. }) => {
            // An agent of another protocol version is replaced by `ensure_running`.
            let client = ensure_running(&paths, &default_agent_bin())
                .await
                .map_err(start_failure)?;
            (client.pid(), true)
        }
        Err(e) => return Err(unusable("start", &e)),
    };
    if ctx.global.json {
        ctx.printer.json(&json!({"pid": pid, "started": started}))?;
    }
    ctx.printer.info(&if started {
        format!("started the agent (pid {pid})")
    } else {
        format!("the agent is already running (pid {pid})")
    });
    Ok(ExitStatus::SUCCESS)
}
