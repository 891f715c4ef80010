//! `klef env create SLUG [--name NAME]`: a new environment with a fresh random key sealed
//! under the project key (which needs the password).

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::{self, Aad, SymmetricKey};
use klef_core::ids::EnvironmentId;
use klef_core::model::{Environment, NewEnvironment};
use klef_core::names::{validate_display_name, validate_slug};

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::secrets::now;

/// Add an environment to the project
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Short lower-case identifier, e.g. `qa` or `prod-eu`
    pub(crate) slug: String,

    /// Display name (default: the slug)
    #[arg(long)]
    pub(crate) name: Option<String>,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    validate_slug(&args.slug)?;
    let display = args.name.unwrap_or_else(|| args.slug.clone());
    validate_display_name("environment name", &display)?;
    let b = ctx.backend().await?;
    let pt = ctx.project(&b).await?;
    let envs = Context::environments(&b, &pt.project).await?;
    if envs.iter().any(|e| e.slug == args.slug) {
        return Err(Failure::other(format!(
            "environment \"{}\" already exists in project \"{}\"",
            args.slug, pt.project.name
        ))
        .into());
    }
    let Some(any_env) = envs.first() else {
        return Err(Failure::permission(format!(
            "project \"{}\" has no environment to reach its key through",
            pt.project.name
        ))
        .into());
    };
    let keys = ctx.keys(&b).await?;
    let access = b.environment_key(&any_env.id).await?;
    let project_key = keys.project_key(&pt.project, &access).await?;
    let env = Environment {
        id: EnvironmentId::random(),
        project_id: pt.project.id,
        slug: args.slug.clone(),
        name: display,
        key_version: 1,
        created_at: now(),
    };
    let env_key = SymmetricKey::generate();
    let sealed = crypto::seal_key(&project_key, &env_key, &Aad::EnvironmentKey(&env.id));
    crate::commands::keys::create_environment(
        &b,
        &NewEnvironment {
            environment: env,
            sealed_key: sealed.into(),
        },
        &env_key,
    )
    .await
    .with_context(|| format!("failed to create environment \"{}\"", args.slug))?;
    ctx.printer.info(&format!(
        "created environment \"{}\" in project \"{}\"",
        args.slug, pt.project.name
    ));
    Ok(ExitStatus::SUCCESS)
}
