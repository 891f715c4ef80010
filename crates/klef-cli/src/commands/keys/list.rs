//! `klef keys list [--json]`: `PREFIX TYPE LABEL EMAIL PERMISSION SCOPES CREATED`. EMAIL is the
//! creator's (`-` when unknown); a user key's permission is `full` and its scope `*`.
//!
//! JSON: `[{"prefix", "id", "type", "label", "email", "permission", "scopes": ["proj:env"],
//! "created_at"}]` with the full prefix.

use anyhow::Result;
use serde_json::json;

use super::{list_keys, remote, short_prefix};
use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::table;

/// List API keys
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let r = remote(&b, "list")?;
    let keys = list_keys(r).await?;
    let scopes = |k: &klef_core::wire::ApiKeyInfo| -> Vec<String> {
        if k.scopes.is_empty() {
            vec!["*".to_owned()]
        } else {
            k.scopes.iter().map(ToString::to_string).collect()
        }
    };
    let permission = |k: &klef_core::wire::ApiKeyInfo| k.permission.map_or("full", |p| p.as_str());
    if ctx.global.json {
        let rows: Vec<_> = keys
            .iter()
            .map(|k| {
                json!({
                    "prefix": k.prefix,
                    "id": k.id,
                    "type": k.kind.as_str(),
                    "label": k.label,
                    "email": k.created_by_email,
                    "permission": permission(k),
                    "scopes": scopes(k),
                    "created_at": table::time(k.created_at),
                })
            })
            .collect();
        ctx.printer.json(&rows)?;
        return Ok(ExitStatus::SUCCESS);
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                short_prefix(&k.prefix),
                k.kind.as_str().to_owned(),
                k.label.clone(),
                k.created_by_email.clone().unwrap_or_else(|| "-".into()),
                permission(k).to_owned(),
                scopes(k).join(","),
                table::time(k.created_at),
            ]
        })
        .collect();
    ctx.printer.data(&table::render(
        &[
            "PREFIX",
            "TYPE",
            "LABEL",
            "EMAIL",
            "PERMISSION",
            "SCOPES",
            "CREATED",
        ],
        &rows,
    ))?;
    Ok(ExitStatus::SUCCESS)
}
