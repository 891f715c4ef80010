//! `klef env delete SLUG [--yes]`: deletes an environment with all its values and their
//! history, for everyone. Admins only on a server (audited).
//!
//! Refused for the project's last environment (delete the project instead) and for the one
//! the nearest `.klef` names as the team default (choose another with `klef env use OTHER
//! --save` first, so this checkout keeps working). The confirmation names how many values are
//! lost; `--yes` skips it, and without a terminal `--yes` is required. Your own `klef env use`
//! choices of it are forgotten. The agent holds no environment key (only your account's
//! private key), so nothing of it stays cached there.

use anyhow::{Context as _, Result};
use klef_core::backend::{Backend as _, BackendError};
use serde_json::json;

use crate::confirm::{confirm, count};
use crate::context::{self, Context};
use crate::diagnostics::{ExitStatus, Failure};
use crate::env_choice;

/// Delete an environment and all its values (admins)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The environment's slug
    pub(crate) slug: String,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let pt = ctx.project(&b).await?;
    let envs = Context::environments(&b, &pt.project).await?;
    let env = context::find_env(&envs, &args.slug, &pt.project)?;
    if envs.len() == 1 {
        return Err(Failure::other(format!(
            "environment \"{}\" is the last one of project \"{}\"",
            env.slug, pt.project.name
        ))
        .hint(format!(
            "delete the project instead (`klef projects delete {}`), or create another environment first",
            pt.project.name
        ))
        .into());
    }
    if let Some(located) = &pt.klef
        && located.file.environment == env.slug
    {
        let other = envs
            .iter()
            .find(|e| e.id != env.id)
            .map_or("SLUG", |e| e.slug.as_str());
        return Err(Failure::other(format!(
            "environment \"{}\" is the team default in {}",
            env.slug,
            located.path.display()
        ))
        .hint(format!(
            "choose another first (`klef env use {other} --save`, then commit .klef), then delete it"
        ))
        .into());
    }
    // How many values are lost; a caller who cannot read them learns that from the server's
    // answer to the delete itself.
    let values = match b.secrets(&env.id).await {
        Ok(list) => Some(list.iter().filter(|s| s.ciphertext.is_some()).count()),
        Err(BackendError::PermissionDenied(_) | BackendError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let what = format!(
        "deleting environment \"{}\" of project \"{}\" deletes {} and their history, for everyone; this cannot be undone",
        env.slug,
        pt.project.name,
        values.map_or_else(
            || "its secrets".to_owned(),
            |n| count(n, "secret", "secrets")
        )
    );
    confirm(ctx, &what, "delete it?", args.yes)?;
    b.delete_environment(&env.id)
        .await
        .with_context(|| format!("failed to delete environment \"{}\"", env.slug))?;
    env_choice::environment_changed(&ctx.dirs, &pt.project.id, &env.slug, None)?;
    ctx.printer.info(&format!(
        "deleted environment \"{}\" of project \"{}\" and {}",
        env.slug,
        pt.project.name,
        values.map_or_else(
            || "its secrets".to_owned(),
            |n| count(n, "secret", "secrets")
        )
    ));
    if ctx.global.json {
        ctx.printer
            .json(&json!({"id": env.id, "slug": env.slug, "secrets": values}))?;
    }
    Ok(ExitStatus::SUCCESS)
}
