//! `klef env use SLUG [--save]` / `klef env use --reset`.
//!
//! Without `--save`, the choice is the user's own, for this directory: kept under the config
//! directory (`env_choice`), so the committed `.klef` does not change and nobody else's
//! default moves. `--save` rewrites the team default in `.klef` atomically (and drops the
//! user's own choice here, so the new default is what this directory uses). `--reset` drops
//! the user's own choice: the directory follows `.klef` again.

use anyhow::Result;
use serde_json::json;

use crate::context::{self, Context};
use crate::diagnostics::{ExitStatus, Failure};
use crate::{env_choice, fsutil};

/// Choose the environment this directory uses (yours; `--save` for the team's default)
///
/// Precedence: `-e` > `KLEF_ENV` > your choice (this command) > the team default in `.klef`
/// (`--save`). `klef env list` shows which one is in use and why.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The environment slug
    #[arg(required_unless_present = "reset")]
    pub(crate) slug: Option<String>,

    /// Change the team default in `.klef` instead of your own choice
    #[arg(long, conflicts_with = "reset")]
    pub(crate) save: bool,

    /// Forget your own choice for this directory and follow `.klef` again
    #[arg(long, conflicts_with = "slug")]
    pub(crate) reset: bool,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let pt = ctx.project(&b).await?;
    let Some(mut located) = pt.klef else {
        return Err(Failure::not_found(
            "no .klef file for this project here or in a parent directory",
        )
        .hint("run `klef link PROJECT` first, or pass -e SLUG to each command")
        .into());
    };
    let choices = env_choice::file(&ctx.dirs);
    let Some(slug) = args.slug.as_deref() else {
        env_choice::set_user_choice(&ctx.dirs, &located, None)?;
        ctx.printer.info(&format!(
            "this directory follows the team default again: \"{}\" ({})",
            located.file.environment,
            located.path.display()
        ));
        return print_json(ctx, &located.file.environment, "klef_file");
    };
    let envs = Context::environments(&b, &pt.project).await?;
    let env = context::find_env(&envs, slug, &pt.project)?;
    if args.save {
        located.file.environment.clone_from(&env.slug);
        fsutil::write_atomic(&located.path, located.file.render().as_bytes(), 0o644)?;
        env_choice::set_user_choice(&ctx.dirs, &located, None)?;
        ctx.printer.info(&format!(
            "the team default is now \"{}\" ({}; commit it to share)",
            env.slug,
            located.path.display()
        ));
        return print_json(ctx, &env.slug, "klef_file");
    }
    env_choice::set_user_choice(&ctx.dirs, &located, Some(&env.slug))?;
    ctx.printer.info(&format!(
        "this directory now uses \"{}\" for you (kept in {}); the team default in {} stays \"{}\"",
        env.slug,
        choices.display(),
        located.path.display(),
        located.file.environment
    ));
    if ctx.global.env.is_some() {
        ctx.printer
            .warn("-e or KLEF_ENV is set and still wins over this choice");
    }
    print_json(ctx, &env.slug, "user")
}

fn print_json(ctx: &Context, slug: &str, source: &str) -> Result<ExitStatus> {
    if ctx.global.json {
        ctx.printer
            .json(&json!({"environment": slug, "source": source}))?;
    }
    Ok(ExitStatus::SUCCESS)
}
