//! `klef projects list`: projects of the current workspace.
//!
//! JSON: `[{"id", "name", "workspace_id", "created_at"}]` (`created_at` in RFC 3339).

use anyhow::Result;
use klef_core::backend::Backend as _;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::table;

/// List the projects of the current workspace
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let ws = ctx.current_workspace(&b).await?;
    let mut projects = b.projects(&ws.id).await?;
    projects.sort_by(|a, c| a.name.cmp(&c.name));
    if ctx.global.json {
        let v: Vec<_> = projects
            .iter()
            .map(|p| json!({"id": p.id, "name": p.name, "workspace_id": p.workspace_id, "created_at": table::time(p.created_at)}))
            .collect();
        ctx.printer.json(&v)?;
    } else {
        let rows: Vec<Vec<String>> = projects
            .iter()
            .map(|p| vec![p.name.clone(), p.id.to_string(), table::time(p.created_at)])
            .collect();
        ctx.printer
            .data(&table::render(&["NAME", "ID", "CREATED"], &rows))?;
        if projects.is_empty() {
            ctx.printer.hint(&format!(
                "workspace \"{}\" has no projects yet; `klef init` creates one",
                ws.name
            ));
        }
    }
    Ok(ExitStatus::SUCCESS)
}
