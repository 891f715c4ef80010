//! `klef agent status [--json]`: whether the agent runs, its pid and version, its timeouts, and
//! for each vault whether it is unlocked and how long until its key is wiped. Exit 0 whether or
//! not the agent runs. With `KLEF_NO_AGENT=1` the agent is not contacted: `running` is false
//! and `disabled` true (exit 0).
//!
//! JSON (stable field names, documented in `docs/agent.md`):
//! `{"running", "healthy", "problem", "disabled", "socket", "pid", "version", "protocol",
//! "idle_timeout_secs", "max_lifetime_secs", "locked", "vaults": [{"vault", "current",
//! "unlocked", "idle_left_secs", "hard_cap_left_secs", "cached_environments"}]}`.

use anyhow::Result;
use klef_agent::client::{AgentClient, ClientError};
use klef_agent::protocol::AgentStatus;
use klef_core::backend::Backend as _;
use serde_json::{Value, json};

use crate::backend::AnyBackend;
use crate::commands::agent::format_duration;
use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::{table, unlock};

/// Show whether the agent runs, and which vaults it holds unlocked for how long
///
/// Not running is not an error (exit 0). `--json` prints stable fields, listed in
/// docs/agent.md: whether the agent runs, its pid, version and timeouts, and per vault whether
/// it is unlocked and the seconds left before its key is wiped.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// One row of the vault table.
struct VaultRow {
    vault: String,
    current: bool,
    left: Option<(u64, u64)>,
    /// Environments the agent keeps for the vault (`crate::snapshot`).
    environments: u32,
}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let paths = unlock::agent_paths(&ctx.global)?;
    let current = current_vault(ctx).await;
    // With `KLEF_NO_AGENT=1` the socket is not even opened: reported as not running, disabled.
    let (status, problem) = if unlock::agent_disabled() {
        (None, None)
    } else {
        match AgentClient::connect(&paths).await {
            Ok(mut client) => match client.status().await {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            },
            Err(ClientError::NotRunning { .. }) => (None, None),
            Err(e) => (None, Some(e)),
        }
    };
    let running = status.is_some() || problem.is_some();
    let rows = vault_rows(status.as_ref(), current.as_deref());
    let problem = problem.map(|e| unlock::broken_note(&e));

    if ctx.global.json {
        let vaults: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "vault": r.vault,
                    "current": r.current,
                    "unlocked": r.left.is_some(),
                    "idle_left_secs": r.left.map(|l| l.0),
                    "hard_cap_left_secs": r.left.map(|l| l.1),
                    "cached_environments": r.environments,
                })
            })
            .collect();
        ctx.printer.json(&json!({
            "running": running,
            "healthy": status.is_some(),
            "problem": problem,
            "disabled": unlock::agent_disabled(),
            "socket": paths.socket(),
            "pid": status.as_ref().map(|s| s.pid),
            "version": status.as_ref().map(|s| s.version.clone()),
            "protocol": status.as_ref().map(|s| s.protocol),
            "idle_timeout_secs": status.as_ref().map(|s| s.idle_timeout.as_secs()),
            "max_lifetime_secs": status.as_ref().map(|s| s.max_lifetime.as_secs()),
            "locked": rows.iter().all(|r| r.left.is_none()),
            "vaults": vaults,
        }))?;
        return Ok(ExitStatus::SUCCESS);
    }

    let mut head: Vec<Vec<String>> = Vec::new();
    let state = match (&status, &problem) {
        (Some(s), _) => format!(
            "running (pid {}, klef-agent {}, protocol {})",
            s.pid, s.version, s.protocol
        ),
        (None, Some(_)) => "running, but not usable".to_owned(),
        (None, None) if unlock::agent_disabled() => {
            "not contacted: KLEF_NO_AGENT is set, so klef neither starts nor contacts one"
                .to_owned()
        }
        (None, None) => "not running".to_owned(),
    };
    head.push(vec!["agent".into(), state]);
    head.push(vec!["socket".into(), paths.socket().display().to_string()]);
    if let Some(s) = &status {
        head.push(vec![
            "expiry".into(),
            format!(
                "after {} unused, {} after unlock at the latest",
                format_duration(s.idle_timeout),
                format_duration(s.max_lifetime)
            ),
        ]);
    }
    let mut out = table::render(&["", ""], &head);
    // The header row of the key/value block is empty: drop it.
    out = out.trim_start_matches('\n').to_owned();
    if !rows.is_empty() {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let name = if r.current {
                    format!("{} (this vault)", r.vault)
                } else {
                    r.vault.clone()
                };
                match r.left {
                    Some((idle, cap)) => vec![
                        name,
                        "unlocked".into(),
                        format_duration(std::time::Duration::from_secs(idle)),
                        format_duration(std::time::Duration::from_secs(cap)),
                        r.environments.to_string(),
                    ],
                    None => vec![name, "locked".into(), "-".into(), "-".into(), "0".into()],
                }
            })
            .collect();
        out.push('\n');
        out.push_str(&table::render(
            &[
                "VAULT",
                "STATE",
                "IDLE LEFT",
                "HARD CAP LEFT",
                "CACHED ENVS",
            ],
            &cells,
        ));
    }
    ctx.printer.data(&out)?;
    if let Some(p) = &problem {
        ctx.printer.warn(p);
    }
    Ok(ExitStatus::SUCCESS)
}

/// The vaults to show: the agent's unlocked ones, plus this vault (locked) when it is not among
/// them. This vault comes first.
fn vault_rows(status: Option<&AgentStatus>, current: Option<&str>) -> Vec<VaultRow> {
    let mut rows: Vec<VaultRow> = status
        .map(|s| {
            s.vaults
                .iter()
                .map(|v| VaultRow {
                    vault: v.vault.clone(),
                    current: Some(v.vault.as_str()) == current,
                    left: Some((v.idle_left.as_secs(), v.hard_cap_left.as_secs())),
                    environments: v.environments,
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(c) = current
        && !rows.iter().any(|r| r.current)
    {
        rows.push(VaultRow {
            vault: c.to_owned(),
            current: true,
            left: None,
            environments: 0,
        });
    }
    rows.sort_by_key(|r| !r.current);
    rows
}

/// The account id of the local vault, when one exists (never creates it).
async fn current_vault(ctx: &Context) -> Option<String> {
    let path = ctx.dirs.vault();
    if !path.is_file() {
        return None;
    }
    let b = match AnyBackend::open_local(&path).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "cannot open the local vault for the status");
            return None;
        }
    };
    match b.account().await {
        Ok(account) => account.map(|a| a.id.to_string()),
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the account for the status");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use klef_agent::protocol::VaultStatus;

    use super::*;

    fn status(vaults: &[&str]) -> AgentStatus {
        AgentStatus {
            pid: 1,
            version: "0".into(),
            protocol: 1,
            idle_timeout: Duration::from_mins(1),
            max_lifetime: Duration::from_mins(2),
            vaults: vaults
                .iter()
                .map(|v| VaultStatus {
                    vault: (*v).to_owned(),
                    idle_left: Duration::from_secs(30),
                    hard_cap_left: Duration::from_secs(90),
                    environments: 0,
                })
                .collect(),
        }
    }

    fn summary(rows: &[VaultRow]) -> Vec<(&str, bool, bool)> {
        rows.iter()
            .map(|r| (r.vault.as_str(), r.current, r.left.is_some()))
            .collect()
    }

    #[test]
    fn this_vault_is_listed_first_locked_or_not() {
        let s = status(&["a", "b"]);
        assert_eq!(
            summary(&vault_rows(Some(&s), Some("b"))),
            [("b", true, true), ("a", false, true)]
        );
        assert_eq!(
            summary(&vault_rows(Some(&s), Some("c"))),
            [("c", true, false), ("a", false, true), ("b", false, true)]
        );
        assert_eq!(summary(&vault_rows(None, Some("c"))), [("c", true, false)]);
        assert!(vault_rows(None, None).is_empty());
        assert_eq!(vault_rows(Some(&s), None)[1].left, Some((30, 90)));
    }
}
