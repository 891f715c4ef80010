//! `klef projects rename PROJECT NEW`: gives a project a new name (unique in its workspace).
//! `.klef` files name projects by id, so every checkout keeps working. Admins only on a server
//! (audited).

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::names::validate_display_name;
use serde_json::json;

use crate::context::{Context, Target};
use crate::diagnostics::{ExitStatus, Failure};
use crate::signed::Purpose;
use klef_core::model::EnvironmentManifest;

/// Rename a project (admins)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The project, by name or id
    #[arg(value_name = "PROJECT")]
    pub(crate) target: String,

    /// Its new name
    pub(crate) new: String,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    validate_display_name("project name", &args.new)?;
    let b = ctx.backend().await?;
    let project = ctx.find_project(&b, &args.target).await?;
    if args.new != project.name
        && b.projects(&project.workspace_id)
            .await?
            .iter()
            .any(|p| p.name == args.new)
    {
        return Err(Failure::other(format!(
            "a project named \"{}\" already exists in this workspace",
            args.new
        ))
        .hint("pick another name")
        .into());
    }
    // The new name goes into every environment's signed state, in the same request: readers
    // check that the project they asked for is the one an admin named.
    let keys = ctx.keys(&b).await?;
    let mut opened = Vec::new();
    for env in Context::environments(&b, &project).await? {
        let t = Target {
            project: project.clone(),
            env,
        };
        let o =
            crate::signed::open_with(ctx, &b, &t, Purpose::Write, &ctx.global, Some(&keys)).await?;
        if let Some(manifest) = o.renamed_manifest(&t, Some(&args.new), None)? {
            opened.push((t, o, manifest));
        }
    }
    let manifests: Vec<EnvironmentManifest> = opened
        .iter()
        .map(|(t, _, m)| EnvironmentManifest {
            environment_id: t.env.id,
            manifest: m.clone(),
        })
        .collect();
    b.rename_project(&project.id, &args.new, &manifests)
        .await
        .with_context(|| format!("failed to rename project \"{}\"", project.name))?;
    for (t, mut o, m) in opened {
        o.written(&t, &m).await?;
    }
    let renamed = klef_core::model::Project {
        name: args.new.clone(),
        ..project.clone()
    };
    ctx.printer.info(&format!(
        "renamed project \"{}\" to \"{}\"",
        project.name, renamed.name
    ));
    if ctx.global.json {
        ctx.printer.json(&json!({
            "id": renamed.id, "name": renamed.name, "previous_name": project.name,
        }))?;
    }
    Ok(ExitStatus::SUCCESS)
}
