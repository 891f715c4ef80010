//! `klef agent …`: start, stop, inspect and lock the key agent (see `docs/agent.md`), plus the
//! helpers that `klef unlock` and `klef lock` share with these commands.

pub(crate) mod lock;
pub(crate) mod start;
pub(crate) mod status;
pub(crate) mod stop;

use std::time::Duration;

use anyhow::Result;
use klef_agent::client::ClientError;
use klef_agent::lifecycle;
pub(crate) use klef_agent::lifecycle::lock_holder;
use klef_agent::paths::AgentPaths;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::unlock;

/// How long `klef agent stop` waits for the process to exit and the socket to go.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Start, stop and inspect the key agent
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// Start the agent if it is not running (does nothing when it is)
    Start(start::Args),
    /// Wipe every key and stop the agent
    Stop(stop::Args),
    /// Show whether the agent runs, and which vaults it holds unlocked for how long
    Status(status::Args),
    /// Wipe every key the agent holds (the same as `klef lock`)
    Lock(lock::Args),
}

pub(crate) async fn run(cmd: Command, ctx: &Context) -> Result<ExitStatus> {
    match cmd {
        Command::Start(args) => start::run(&args, ctx).await,
        Command::Stop(args) => stop::run(&args, ctx).await,
        Command::Status(args) => status::run(&args, ctx).await,
        Command::Lock(args) => lock::run(&args, ctx).await,
    }
}

/// Fails when `KLEF_NO_AGENT` turns the agent off, naming the command that cannot work then
/// (exit 1). Checked before anything else: with it set no socket is ever opened.
pub(crate) fn require_agent(command: &str) -> Result<()> {
    if unlock::agent_disabled() {
        let hint = match command {
            "unlock" | "start" => "unset KLEF_NO_AGENT to unlock once per session; with it set, every command asks for the password".to_owned(),
            other => format!(
                "to reach an agent started earlier, run it without the variable: `env -u KLEF_NO_AGENT klef agent {other}`"
            ),
        };
        return Err(Failure::other(format!(
            "there is no agent to {command}: KLEF_NO_AGENT is set, so klef neither starts nor contacts one"
        ))
        .hint(hint)
        .into());
    }
    Ok(())
}

/// The error for an agent that could not be started or reached after starting it.
pub(crate) fn start_failure(e: ClientError) -> anyhow::Error {
    explain_start_failure(e, klef_agent::cache::Timeouts::from_env().err())
}

/// [`start_failure`], given what is wrong with the agent's timeout variables (the agent reads
/// them at start and refuses values it cannot use): the hint is chosen by the typed error.
fn explain_start_failure(
    e: ClientError,
    timeouts: Option<klef_agent::cache::TimeoutError>,
) -> anyhow::Error {
    use klef_agent::cache::TimeoutError;
    if let Some(te) = timeouts {
        let hint = match &te {
            TimeoutError::Unparseable { var, .. } => format!(
                "write {var} as a duration such as 90s, 15m or 1h, or unset it for the default"
            ),
            TimeoutError::Zero { var, .. } => {
                format!("set {var} to a duration longer than zero, e.g. 15m")
            }
            TimeoutError::AboveMaximum { var, max, .. } => format!(
                "timeouts can only be shortened: set {var} to {max} or less, or unset it for the default"
            ),
            _ => "unset KLEF_AGENT_IDLE_TIMEOUT and KLEF_AGENT_MAX_LIFETIME for the defaults"
                .to_owned(),
        };
        return Failure::other(format!("the agent could not start: {te}"))
            .hint(hint)
            .into();
    }
    match e {
        ClientError::StartFailed { bin, message } => {
            Failure::other(format!("the agent could not start: {message}"))
                .hint(format!(
                    "klef ran {}; install klef-agent next to klef, or point KLEF_AGENT_BIN at it",
                    bin.display()
                ))
                .into()
        }
        ClientError::Broken { .. } | ClientError::VersionMismatch { .. } => unusable("start", &e),
        other => anyhow::Error::new(other).context("failed to start the agent"),
    }
}

/// The error for an agent that runs but cannot be used for `action`.
pub(crate) fn unusable(action: &str, e: &ClientError) -> anyhow::Error {
    Failure::other(format!("cannot {action} the agent: {e}"))
        .hint(unlock::RESTART_HINT)
        .into()
}

/// A duration rounded to whole seconds, humanely (`59m 58s`).
pub(crate) fn format_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Waits (bounded) until process `pid` is gone. The agent removes its socket and lock file
/// before it exits, so they are gone too unless it was killed (then the next agent replaces
/// them).
pub(crate) async fn wait_gone(pid: u32, paths: &AgentPaths) -> Result<()> {
    if !lifecycle::wait_gone(pid, STOP_TIMEOUT).await {
        return Err(Failure::other(format!(
            "the agent (pid {pid}) did not stop within {}s",
            STOP_TIMEOUT.as_secs()
        ))
        .hint(format!("stop it by hand with `kill {pid}`"))
        .into());
    }
    if paths.socket().symlink_metadata().is_ok() {
        tracing::debug!("the agent left its socket behind; the next agent replaces it");
    }
    Ok(())
}

/// Sends SIGTERM to `pid` (the agent wipes its keys and exits) and waits until it is gone.
pub(crate) async fn terminate_and_wait(pid: u32, paths: &AgentPaths) -> Result<()> {
    lifecycle::terminate(pid);
    wait_gone(pid, paths).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_shown_in_whole_seconds() {
        assert_eq!(format_duration(Duration::from_millis(3_599_400)), "59m 59s");
        assert_eq!(format_duration(Duration::from_hours(8)), "8h");
    }

    #[test]
    fn start_failures_name_the_agents_message_and_a_fitting_hint() {
        let failed = || ClientError::StartFailed {
            bin: "/x/klef-agent".into(),
            message: "exited".into(),
        };
        let parse = |idle| klef_agent::cache::Timeouts::parse(Some(idle), None).err();
        let timeout = explain_start_failure(failed(), parse("2h"));
        let lines = crate::diagnostics::render(&timeout);
        assert!(lines[0].1.contains("KLEF_AGENT_IDLE_TIMEOUT=\"2h\""));
        assert!(
            lines
                .iter()
                .any(|(l, t)| *l == "hint" && t.contains("shortened"))
        );
        let banana = crate::diagnostics::render(&explain_start_failure(failed(), parse("banana")));
        assert!(
            banana.iter().any(|(l, t)| *l == "hint"
                && t.contains("90s, 15m or 1h")
                && !t.contains("shortened")),
            "{banana:?}"
        );
        let missing = explain_start_failure(
            ClientError::StartFailed {
                bin: "/x/klef-agent".into(),
                message: "No such file or directory".into(),
            },
            None,
        );
        let lines = crate::diagnostics::render(&missing);
        assert!(
            lines
                .iter()
                .any(|(l, t)| *l == "hint" && t.contains("KLEF_AGENT_BIN"))
        );
        assert_eq!(
            crate::diagnostics::exit_status(&missing),
            ExitStatus::FAILURE
        );
    }
}
