//! `klef workspace list`.
//!
//! JSON: `[{"id", "name", "personal", "current", "created_at"}]`.

use anyhow::Result;
use klef_core::backend::Backend as _;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::table;

/// List your workspaces
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let current = ctx.current_workspace(&b).await?;
    let mut all = b.workspaces().await?;
    all.sort_by(|a, c| (!a.personal, &a.name).cmp(&(!c.personal, &c.name)));
    if ctx.global.json {
        let v: Vec<_> = all
            .iter()
            .map(|w| {
                json!({"id": w.id, "name": w.name, "personal": w.personal, "current": w.id == current.id, "created_at": table::time(w.created_at)})
            })
            .collect();
        ctx.printer.json(&v)?;
    } else {
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|w| {
                vec![
                    if w.id == current.id {
                        "*".into()
                    } else {
                        String::new()
                    },
                    w.name.clone(),
                    w.id.to_string(),
                    if w.personal {
                        "personal".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        ctx.printer
            .data(&table::render(&["", "NAME", "ID", "KIND"], &rows))?;
    }
    Ok(ExitStatus::SUCCESS)
}
