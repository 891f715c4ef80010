//! `klef env use SLUG`: rewrites the default environment in the nearest `.klef` atomically.

use anyhow::Result;

use crate::context::{self, Context};
use crate::diagnostics::{ExitStatus, Failure};
use crate::fsutil;

/// Change the default environment in `.klef`
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The environment slug
    pub(crate) slug: String,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let pt = ctx.project(&b).await?;
    let Some(mut located) = pt.klef else {
        return Err(Failure::not_found(
            "no .klef file for this project here or in a parent directory",
        )
        .hint("run `klef link PROJECT` first")
        .into());
    };
    let envs = Context::environments(&b, &pt.project).await?;
    let env = context::find_env(&envs, &args.slug, &pt.project)?;
    located.file.environment.clone_from(&env.slug);
    fsutil::write_atomic(&located.path, located.file.render().as_bytes(), 0o644)?;
    ctx.printer.info(&format!(
        "default environment is now \"{}\" ({})",
        env.slug,
        located.path.display()
    ));
    Ok(ExitStatus::SUCCESS)
}
