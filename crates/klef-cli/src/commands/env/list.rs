//! `klef env list`.
//!
//! JSON: `[{"id", "slug", "name", "key_version", "current", "created_at"}]`; `current` marks
//! the environment commands use here (`-e`/`KLEF_ENV`, else `.klef`).

use anyhow::Result;
use serde_json::json;

use crate::context::{Context, DEFAULT_ENV};
use crate::diagnostics::ExitStatus;
use crate::table;

/// List the project's environments
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let pt = ctx.project(&b).await?;
    let envs = Context::environments(&b, &pt.project).await?;
    let current = ctx
        .global
        .env
        .clone()
        .or_else(|| pt.klef.as_ref().map(|k| k.file.environment.clone()))
        .unwrap_or_else(|| DEFAULT_ENV.to_owned());
    if ctx.global.json {
        let v: Vec<_> = envs
            .iter()
            .map(|e| {
                json!({"id": e.id, "slug": e.slug, "name": e.name, "key_version": e.key_version,
                       "current": e.slug == current, "created_at": table::time(e.created_at)})
            })
            .collect();
        ctx.printer.json(&v)?;
    } else {
        let rows: Vec<Vec<String>> = envs
            .iter()
            .map(|e| {
                vec![
                    if e.slug == current {
                        "*".into()
                    } else {
                        String::new()
                    },
                    e.slug.clone(),
                    e.name.clone(),
                    e.id.to_string(),
                ]
            })
            .collect();
        ctx.printer
            .data(&table::render(&["", "SLUG", "NAME", "ID"], &rows))?;
    }
    Ok(ExitStatus::SUCCESS)
}
