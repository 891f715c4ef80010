//! `klef env rename OLD NEW [--name NAME]`: gives an environment a new slug (and display name).
//!
//! Values stay as they are: they are bound to the environment's id, not its slug. Admins only
//! on a server (audited). The nearest `.klef`, when it names OLD as the team default, and your
//! own `klef env use` choices follow the new slug; other checkouts' `.klef` files change when
//! the updated one is committed.

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::names::{validate_display_name, validate_slug};
use serde_json::json;

use crate::context::{self, Context, Target};
use crate::diagnostics::{ExitStatus, Failure};
use crate::signed::Purpose;
use crate::{env_choice, fsutil};

/// Rename an environment (admins)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The environment's current slug
    pub(crate) old: String,

    /// Its new slug
    pub(crate) new: String,

    /// Also change its display name (default: kept, or the new slug when the name was the old
    /// slug)
    #[arg(long)]
    pub(crate) name: Option<String>,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    validate_slug(&args.new)?;
    if let Some(name) = &args.name {
        validate_display_name("environment name", name)?;
    }
    let b = ctx.backend().await?;
    let pt = ctx.project(&b).await?;
    let envs = Context::environments(&b, &pt.project).await?;
    let env = context::find_env(&envs, &args.old, &pt.project)?;
    if args.new != args.old && envs.iter().any(|e| e.slug == args.new) {
        return Err(Failure::other(format!(
            "environment \"{}\" already exists in project \"{}\"",
            args.new, pt.project.name
        ))
        .hint("pick another slug, or delete that environment first (`klef env delete`)")
        .into());
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None if env.name == env.slug => args.new.clone(),
        None => env.name.clone(),
    };
    // The new slug goes into the environment's signed state: readers check that what they asked
    // for is what an admin named it.
    let t = Target {
        project: pt.project.clone(),
        env: env.clone(),
    };
    let mut opened = ctx.open_environment(&b, &t, Purpose::Write).await?;
    let manifest = opened.renamed_manifest(&t, None, Some(&args.new))?;
    b.rename_environment(&env.id, &args.new, &name, manifest.as_ref())
        .await
        .with_context(|| format!("failed to rename environment \"{}\"", args.old))?;
    if let Some(m) = &manifest {
        opened.written(&t, m).await?;
    }
    let renamed = klef_core::model::Environment {
        slug: args.new.clone(),
        name,
        ..env
    };
    ctx.printer.info(&format!(
        "renamed environment \"{}\" of project \"{}\" to \"{}\"",
        args.old, pt.project.name, renamed.slug
    ));
    if let Some(mut located) = pt.klef
        && located.file.environment == args.old
    {
        located.file.environment.clone_from(&renamed.slug);
        fsutil::write_atomic(&located.path, located.file.render().as_bytes(), 0o644)?;
        ctx.printer.info(&format!(
            "{} now names \"{}\" as the team default: commit it",
            located.path.display(),
            renamed.slug
        ));
    }
    env_choice::environment_changed(&ctx.dirs, &pt.project.id, &args.old, Some(&renamed.slug))?;
    if ctx.global.json {
        ctx.printer.json(&json!({
            "id": renamed.id, "slug": renamed.slug, "name": renamed.name, "previous_slug": args.old,
        }))?;
    }
    Ok(ExitStatus::SUCCESS)
}
