//! `klef projects delete PROJECT [--yes]`: deletes a project with its environments, their
//! values and history, for everyone. Admins only on a server (audited). The confirmation names
//! how many environments and values are lost; `--yes` skips it, and without a terminal `--yes`
//! is required. Your own `klef env use` choices in it are forgotten; a `.klef` naming it is
//! left in place (with a note), as it is a committed file.

use anyhow::{Context as _, Result};
use klef_core::backend::{Backend as _, BackendError};
use klef_core::model::Project;
use serde_json::json;

use crate::backend::AnyBackend;
use crate::confirm::{confirm, count};
use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::env_choice;

/// Delete a project with its environments and values (admins)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The project, by name or id
    #[arg(value_name = "PROJECT")]
    pub(crate) target: String,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

/// What deleting a project loses: its environments, and the values the caller can count
/// (`None` when some environment's values are out of the caller's reach).
pub(crate) struct Loss {
    pub(crate) environments: usize,
    pub(crate) secrets: Option<usize>,
}

impl Loss {
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} with {}",
            count(self.environments, "environment", "environments"),
            self.secrets.map_or_else(
                || "their secrets".to_owned(),
                |n| count(n, "secret", "secrets")
            )
        )
    }
}

/// Counts what deleting `project` loses.
pub(crate) async fn loss(b: &AnyBackend, project: &Project) -> Result<Loss> {
    let envs = b.environments(&project.id).await?;
    let mut secrets = Some(0);
    for env in &envs {
        match b.secrets(&env.id).await {
            Ok(list) => {
                secrets =
                    secrets.map(|n| n + list.iter().filter(|s| s.ciphertext.is_some()).count());
            }
            Err(BackendError::PermissionDenied(_) | BackendError::NotFound { .. }) => {
                secrets = None;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Loss {
        environments: envs.len(),
        secrets,
    })
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let project = ctx.find_project(&b, &args.target).await?;
    let loss = loss(&b, &project).await?;
    let what = format!(
        "deleting project \"{}\" deletes its {} and their history, for everyone; this cannot be undone",
        project.name,
        loss.describe()
    );
    confirm(ctx, &what, "delete it?", args.yes)?;
    b.delete_project(&project.id)
        .await
        .with_context(|| format!("failed to delete project \"{}\"", project.name))?;
    env_choice::project_deleted(&ctx.dirs, &project.id)?;
    ctx.printer.info(&format!(
        "deleted project \"{}\" and its {}",
        project.name,
        loss.describe()
    ));
    if let Some(located) = Context::find_klef_file()?
        && located.file.project == project.id
    {
        ctx.printer.info(&format!(
            "{} names the deleted project: `klef link PROJECT --force` points it elsewhere, or remove it",
            located.path.display()
        ));
    }
    if ctx.global.json {
        ctx.printer.json(&json!({
            "id": project.id, "name": project.name,
            "environments": loss.environments, "secrets": loss.secrets,
        }))?;
    }
    Ok(ExitStatus::SUCCESS)
}
