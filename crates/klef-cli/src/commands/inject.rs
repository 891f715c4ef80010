//! `klef inject -i TEMPLATE [-o FILE]`: renders a template's `{{klef:REF}}` placeholders
//! (`klef_core::template`; REF is `KEY`, `env.KEY` or `project/env.KEY`) with resolved values.
//!
//! Every placeholder is resolved before anything is written: unknown names are listed together
//! in one error and nothing is written. FILE is written atomically with mode 0600; `-o -` (the
//! default) prints to stdout and `-i -` reads the template from stdin. `--json` with a file
//! prints `{"path", "placeholders", "project", "environment"}`.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use klef_core::refs::{RefError, Reference};
use klef_core::template::{self, Part};
use serde_json::json;
use zeroize::Zeroizing;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::references::{self, References};
use crate::{fsutil, secrets};

/// The largest template read (16 MiB).
const MAX_TEMPLATE: u64 = 16 * 1024 * 1024;

/// Render a template's `{{klef:KEY}}` placeholders into a file
///
/// A placeholder is `{{klef:KEY}}`, `{{klef:staging.KEY}}` or `{{klef:project/env.KEY}}` (spaces
/// inside the braces allowed); every other `{{ … }}` (Go templates, Helm, Jinja, Handlebars) is
/// left as it is. Values are inserted as stored, their references resolved. Unknown names are
/// all reported and nothing is written.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The template (`-` for stdin)
    #[arg(short = 'i', long = "input", value_name = "TEMPLATE")]
    pub(crate) input: PathBuf,

    /// Where to write (`-` for stdout); created with mode 0600, replaced atomically
    #[arg(short = 'o', long = "output", value_name = "FILE", default_value = "-")]
    pub(crate) output: PathBuf,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let text = read_template(&args.input)?;
    let parts = template::parse(&text).map_err(|e| {
        Failure::usage(format!(
            "invalid placeholder in {}: {e}",
            shown(&args.input)
        ))
        .hint("placeholders are {{klef:KEY}}, {{klef:env.KEY}} or {{klef:project/env.KEY}}")
    })?;
    let mut wanted: Vec<&Reference> = Vec::new();
    for p in &parts {
        if let Part::Placeholder { reference, .. } = p
            && !wanted.contains(&reference)
        {
            wanted.push(reference);
        }
    }
    let b = ctx.backend_and_agent().await?;
    let crate::snapshot::Current {
        target: t,
        key,
        secrets: current,
        ..
    } = crate::snapshot::current(ctx, &b, crate::signed::Purpose::Read).await?;
    let entries = secrets::decrypt_all(&key, &t, &current)?;
    drop(key);
    let entries = crate::personal::layer(ctx, &t, entries);
    let mut refs = References::new(ctx, &b, &t, &entries);
    let mut values: Vec<(&Reference, Zeroizing<String>)> = Vec::with_capacity(wanted.len());
    let mut unknown = Vec::new();
    for r in wanted {
        match refs.reference(r).await? {
            Ok(v) => values.push((r, v)),
            // The placeholder's own name is missing: gathered, to list them all at once.
            Err(RefError::NotFound { chain }) if chain.0.len() == 1 => {
                unknown.push(chain.to_string());
            }
            Err(e) => return Err(references::failure(&e)),
        }
    }
    if !unknown.is_empty() {
        return Err(Failure::not_found(format!(
            "{} names {} not in {}: {}; nothing written",
            shown(&args.input),
            if unknown.len() == 1 { "a key" } else { "keys" },
            t.describe(),
            unknown.join(", ")
        ))
        .hint("`klef list` shows the keys; `-e SLUG` renders with another environment")
        .into());
    }
    let rendered = template::render(&parts, |r| {
        values
            .iter()
            .find(|(w, _)| *w == r)
            .map_or("", |(_, v)| v.as_str())
    });
    if args.output.as_os_str() == "-" {
        ctx.printer.data(&rendered)?;
        return Ok(ExitStatus::SUCCESS);
    }
    fsutil::write_atomic(&args.output, rendered.as_bytes(), 0o600)?;
    ctx.printer.info(&format!(
        "wrote {} from {} with {} placeholder{} of {}",
        args.output.display(),
        shown(&args.input),
        values.len(),
        if values.len() == 1 { "" } else { "s" },
        t.describe()
    ));
    if ctx.global.json {
        ctx.printer.json(&json!({
            "path": args.output,
            "placeholders": values.len(),
            "project": t.project.name,
            "environment": t.env.slug,
        }))?;
    }
    Ok(ExitStatus::SUCCESS)
}

/// The template's name for messages.
fn shown(input: &std::path::Path) -> String {
    if input.as_os_str() == "-" {
        "the template on stdin".to_owned()
    } else {
        input.display().to_string()
    }
}

/// Reads the template (stdin for `-`): UTF-8, at most [`MAX_TEMPLATE`] bytes.
fn read_template(input: &std::path::Path) -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new(Vec::new());
    if input.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_TEMPLATE + 1)
            .read_to_end(&mut bytes)
            .context("failed to read the template from stdin")?;
    } else {
        fs_err::File::open(input)
            .map_err(|e| {
                let status = if e.kind() == std::io::ErrorKind::NotFound {
                    ExitStatus::NOT_FOUND
                } else {
                    ExitStatus::FAILURE
                };
                Failure::new(
                    status,
                    format!(
                        "cannot read the template {}: {}",
                        input.display(),
                        io_reason(&e)
                    ),
                )
                .hint("-i FILE names the template; -i - reads it from stdin")
            })?
            .take(MAX_TEMPLATE + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("failed to read {}", input.display()))?;
    }
    if bytes.len() as u64 > MAX_TEMPLATE {
        return Err(Failure::usage(format!("{} is larger than 16 MiB", shown(input))).into());
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        Failure::usage(format!(
            "{} is not UTF-8 text (byte {})",
            shown(input),
            e.valid_up_to()
        ))
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The reason of an I/O error without the path fs-err adds.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::IsADirectory => "it is a directory".to_owned(),
        _ => e.kind().to_string(),
    }
}
