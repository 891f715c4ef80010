//! `klef audit [--limit N] [--json]`: the current workspace's audit log on the server, newest
//! first: who did what, when, with which key. Admins only (the server answers 403 otherwise).

use anyhow::{Context as _, Result};
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::table;

/// Show the workspace's audit log (who did what, when, with which key)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many entries to show, newest first
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(crate) limit: u32,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("audit")?;
    let ws = ctx.current_workspace(&b).await?;
    let list = remote
        .audit(&ws.id, args.limit)
        .await
        .with_context(|| format!("failed to read the audit log of workspace \"{}\"", ws.name))?;
    let actor = |e: &klef_core::wire::AuditEntry| {
        e.actor
            .label
            .clone()
            .or_else(|| e.actor.id.clone())
            .unwrap_or_else(|| e.actor.kind.clone())
    };
    if ctx.global.json {
        let v: Vec<_> = list
            .entries
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "time": table::time(e.created_at),
                    "actor": {"kind": e.actor.kind, "id": e.actor.id, "label": e.actor.label},
                    "action": e.action,
                    "target": e.target,
                })
            })
            .collect();
        ctx.printer.json(&v)?;
        return Ok(ExitStatus::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .entries
        .iter()
        .map(|e| {
            vec![
                table::time(e.created_at),
                actor(e),
                e.action.clone(),
                e.target.clone(),
            ]
        })
        .collect();
    ctx.printer.data(&table::render(
        &["TIME", "ACTOR", "ACTION", "TARGET"],
        &rows,
    ))?;
    Ok(ExitStatus::SUCCESS)
}
