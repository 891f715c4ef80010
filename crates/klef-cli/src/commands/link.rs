//! `klef link [PROJECT]`: writes `.klef` in the current directory for an existing project.

use std::io::{BufRead as _, Write as _};

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::klef_file::{self, KlefFile};
use klef_core::model::Project;

use crate::context::{self, Context, DEFAULT_ENV};
use crate::diagnostics::{ExitStatus, Failure};
use crate::{fsutil, password};

/// Write `.klef` here for an existing project
///
/// With no PROJECT on a terminal, klef lists the current workspace's projects to pick from.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The project, by id or name
    #[arg(id = "link_project", value_name = "PROJECT")]
    pub(crate) project: Option<String>,

    /// Replace an existing `.klef` in this directory
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    let path = cwd.join(klef_file::FILE_NAME);
    if path.exists() && !args.force {
        return Err(Failure::other(format!("{} already exists", path.display()))
            .hint("pass --force to replace it")
            .into());
    }
    let b = ctx.backend().await?;
    let project = if let Some(needle) = args.project.as_deref().or(ctx.global.project.as_deref()) {
        ctx.find_project(&b, needle).await?
    } else {
        let ws = ctx.current_workspace(&b).await?;
        let mut projects = b.projects(&ws.id).await?;
        projects.sort_by(|a, c| a.name.cmp(&c.name));
        pick(ctx, projects)?
    };
    let envs = Context::environments(&b, &project).await?;
    let env = match ctx.global.env.as_deref() {
        Some(slug) => context::find_env(&envs, slug, &project)?,
        None => envs
            .iter()
            .find(|e| e.slug == DEFAULT_ENV)
            .or_else(|| envs.first())
            .cloned()
            .ok_or_else(|| {
                Failure::not_found(format!("project \"{}\" has no environments", project.name))
            })?,
    };
    let file = KlefFile::new(project.id, env.slug.clone(), b.server().map(str::to_owned));
    fsutil::write_atomic(&path, file.render().as_bytes(), 0o644)?;
    ctx.printer.info(&format!(
        "linked {} to project \"{}\" (default environment: {})",
        path.display(),
        project.name,
        env.slug
    ));
    Ok(ExitStatus::SUCCESS)
}

/// Asks which project to link on a terminal; without one, explains how to name it.
fn pick(ctx: &Context, projects: Vec<Project>) -> Result<Project> {
    if projects.is_empty() {
        return Err(Failure::not_found("the current workspace has no projects")
            .hint("run `klef init` to create one")
            .into());
    }
    if !password::interactive() || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let names: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
        return Err(Failure::usage("name the project to link")
            .hint(format!(
                "projects of the current workspace: {}",
                names.join(", ")
            ))
            .into());
    }
    for (i, p) in projects.iter().enumerate() {
        ctx.printer.always(&format!("  {}) {}", i + 1, p.name));
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "project to link [1-{}]: ", projects.len());
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the answer")?;
    let n: usize = line
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=projects.len()).contains(n))
        .ok_or_else(|| {
            Failure::usage(format!("{:?} is not one of the numbers shown", line.trim()))
        })?;
    projects
        .into_iter()
        .nth(n - 1)
        .ok_or_else(|| Failure::usage("no such project").into())
}
