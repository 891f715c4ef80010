//! `klef env list`.
//!
//! JSON: `[{"id", "slug", "name", "key_version", "current", "source", "team_default",
//! "created_at"}]`; `current` marks the environment commands use here, `source` says why (on
//! the current one; null on the others): `flag` (`-e`), `env_var` (`KLEF_ENV`), `user` (`klef
//! env use`), `klef_file` (the team default), `key_scope` or `default`; `team_default` marks
//! the one `.klef` names.

use anyhow::Result;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::table;

/// List the project's environments, marking the one in use and why
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let pt = ctx.project(&b).await?;
    let envs = Context::environments(&b, &pt.project).await?;
    let choice = ctx.env_choice(&b, &pt).await?;
    let team = pt.klef.as_ref().map(|k| k.file.environment.as_str());
    if ctx.global.json {
        let v: Vec<_> = envs
            .iter()
            .map(|e| {
                let current = e.slug == choice.slug;
                json!({"id": e.id, "slug": e.slug, "name": e.name, "key_version": e.key_version,
                       "current": current,
                       "source": current.then(|| choice.source.as_str()),
                       "team_default": team == Some(e.slug.as_str()),
                       "created_at": table::time(e.created_at)})
            })
            .collect();
        ctx.printer.json(&v)?;
        return Ok(ExitStatus::SUCCESS);
    }
    let rows: Vec<Vec<String>> = envs
        .iter()
        .map(|e| {
            vec![
                if e.slug == choice.slug {
                    "*".into()
                } else {
                    String::new()
                },
                e.slug.clone(),
                e.name.clone(),
                if team == Some(e.slug.as_str()) {
                    "team default".into()
                } else {
                    String::new()
                },
                e.id.to_string(),
            ]
        })
        .collect();
    ctx.printer.data(&table::render(
        &["", "SLUG", "NAME", "DEFAULT", "ID"],
        &rows,
    ))?;
    ctx.printer.info(&format!(
        "* in use: \"{}\", from {}",
        choice.slug,
        choice.source.describe()
    ));
    Ok(ExitStatus::SUCCESS)
}
