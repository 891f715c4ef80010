//! `klef pull [-o FILE] [--format …] [--force]`: writes the environment's secrets to `.env`
//! (or FILE) atomically with mode 0600; `-o -` prints them.
//!
//! The format is `--format`, else the output's extension (`.json`, `.yaml`/`.yml`), else
//! dotenv; `-o - --json` prints JSON. Before overwriting an existing file, the names it holds
//! are read (in the format its name and content say, as `klef push` reads them): a name the
//! environment does not have would be lost, so the pull is refused, listing them, unless
//! `--force`. A file klef cannot read is not overwritten either. In a git work tree, a target
//! that `git check-ignore` does not report as ignored gets a warning (as dotenvx does).
//! `--json` with a file prints a summary on stdout:
//! `{"path", "format", "count", "project", "environment", "git_ignored"}` (`git_ignored` is
//! null outside a git work tree).
//!
//! Values are written with their references (`${KEY}`, `${env.KEY}`, `${project/env.KEY}`)
//! resolved, in every format; `--raw` writes the stored text (what `klef push` should read back
//! to keep the references).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Result;
use klef_core::dotenv::{self, Format, Portability};
use serde_json::json;

use crate::context::{Context, Target};
use crate::diagnostics::{ExitStatus, Failure};
use crate::import;
use crate::references::References;
use crate::{fsutil, secrets};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FormatArg {
    /// `KEY="value"` lines, read back exactly by node `dotenv` and `dotenvy`
    Dotenv,
    /// One JSON object
    Json,
    /// One YAML mapping
    Yaml,
    /// `export KEY='value'` lines, safe to `eval` in POSIX shells
    Shell,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Dotenv => Format::Dotenv,
            FormatArg::Json => Format::Json,
            FormatArg::Yaml => Format::Yaml,
            FormatArg::Shell => Format::Shell,
        }
    }
}

/// Write the environment's secrets to a file (`.env` by default)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to write (`-` for stdout)
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        default_value = ".env"
    )]
    pub(crate) output: PathBuf,

    /// The output format (default: from the file's extension, else dotenv; JSON for `-o -`
    /// with `--json`)
    #[arg(long, value_enum)]
    pub(crate) format: Option<FormatArg>,

    /// Overwrite FILE even if it holds names the environment does not have (they are lost)
    #[arg(long, short = 'f')]
    pub(crate) force: bool,

    /// Write the stored text of values, without resolving their references (`${KEY}`,
    /// `${env.KEY}`, `${project/env.KEY}`): what `klef push` should read back to keep them
    #[arg(long)]
    pub(crate) raw: bool,
}

impl FormatArg {
    fn name(self) -> &'static str {
        match self {
            Self::Dotenv => "dotenv",
            Self::Json => "json",
            Self::Yaml => "yaml",
            Self::Shell => "shell",
        }
    }
}

/// The format to write: `--format`, `--json` for stdout, the file's extension, or dotenv.
fn output_format(args: &Args, json: bool, to_stdout: bool) -> Result<FormatArg> {
    if to_stdout && json {
        return match args.format {
            None | Some(FormatArg::Json) => Ok(FormatArg::Json),
            Some(other) => Err(Failure::usage(format!(
                "--json prints JSON, and --format asks for {}",
                other.name()
            ))
            .hint("drop --json or --format")
            .into()),
        };
    }
    Ok(args
        .format
        .unwrap_or_else(|| match import::Format::from_extension(&args.output) {
            Some(import::Format::Json) => FormatArg::Json,
            Some(import::Format::Yaml) => FormatArg::Yaml,
            _ => FormatArg::Dotenv,
        }))
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let to_stdout = args.output.as_os_str() == "-";
    let format = output_format(&args, ctx.global.json, to_stdout)?;
    let b = ctx.backend_and_agent().await?;
    // Reading a large environment from a distant server is the slow part.
    let reading = ctx
        .printer
        .progress("reading environment values".to_owned());
    let crate::snapshot::Current {
        target: t,
        key,
        secrets: current,
        ..
    } = crate::snapshot::current(ctx, &b, crate::signed::Purpose::Read).await?;
    drop(reading);
    if !to_stdout && !args.force {
        let mine = crate::personal::names(ctx, &t);
        let names: HashSet<&str> = current
            .iter()
            .filter(|s| s.ciphertext.is_some())
            .map(|s| s.name.as_str())
            .chain(mine.iter().map(String::as_str))
            .collect();
        check_overwrite(&args.output, &names, &t)?;
    }
    let progress = ctx
        .printer
        .progress(format!("decrypting {} values", current.len()));
    let entries = secrets::decrypt_all(&key, &t, &current)?;
    drop(key);
    let entries = crate::personal::layer(ctx, &t, entries);
    let entries = if args.raw {
        entries
    } else {
        References::new(ctx, &b, &t, &entries).all(&entries).await?
    };
    drop(progress);
    let rendered = dotenv::render(&entries, format.into());
    if format == FormatArg::Dotenv {
        warn_unportable(ctx, &entries);
    }
    if to_stdout {
        ctx.printer.data(&rendered)?;
        return Ok(ExitStatus::SUCCESS);
    }
    fsutil::write_atomic(&args.output, rendered.as_bytes(), 0o600)?;
    ctx.printer.info(&format!(
        "wrote {} secret{} from {} to {}",
        entries.len(),
        if entries.len() == 1 { "" } else { "s" },
        t.describe(),
        args.output.display()
    ));
    let ignored = git_ignored(&args.output);
    if ignored == Some(false) {
        let name = args
            .output
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        ctx.printer.warn(&format!(
            "{} is not ignored by git: a commit could publish these secrets",
            args.output.display()
        ));
        ctx.printer.hint(&format!(
            "add `{name}` to .gitignore (and `git rm --cached {name}` if it is already committed)"
        ));
    }
    if ctx.global.json {
        ctx.printer.json(&json!({
            "path": args.output,
            "format": format.name(),
            "count": entries.len(),
            "project": t.project.name,
            "environment": t.env.slug,
            "git_ignored": ignored,
        }))?;
    }
    Ok(ExitStatus::SUCCESS)
}

/// How many of the names a refused pull would lose are listed.
const SHOWN: usize = 20;

/// Refuses to overwrite `path` when it holds names that `names` (the environment's) lacks, or
/// when klef cannot tell which names it holds. A missing file is fine.
fn check_overwrite(path: &Path, names: &HashSet<&str>, t: &Target) -> Result<()> {
    let refuse = |what: String| -> anyhow::Error {
        Failure::other(format!("{what}; refusing to overwrite it"))
            .hint(format!(
                "`klef push {}` first keeps them, --force overwrites the file, -o FILE writes elsewhere",
                path.display()
            ))
            .into()
    };
    let bytes = match fs_err::read(path) {
        Ok(bytes) => zeroize::Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // A directory or an unreadable file: the write reports it.
        Err(_) => return Ok(()),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Err(refuse(format!(
            "{} exists and is not a text file",
            path.display()
        )));
    };
    let format = import::Format::detect(path, text);
    let existing: Vec<String> = match import::parse(text, format) {
        Ok(entries) => entries.into_iter().map(|e| e.name).collect(),
        // A file `--format shell` wrote, with a `'` in a value.
        Err(e) => import::shell_names(text).ok_or_else(|| {
            refuse(format!(
                "{} exists and klef cannot tell which names it holds ({} {e})",
                path.display(),
                format.name()
            ))
        })?,
    };
    let mut extra: Vec<&str> = existing
        .iter()
        .map(String::as_str)
        .filter(|n| !names.contains(n))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    extra.sort_unstable();
    extra.dedup();
    let mut list = extra
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if extra.len() > SHOWN {
        let _ = write!(list, " and {} more", extra.len() - SHOWN);
    }
    Err(refuse(format!(
        "{} holds {} name{} that {} does not have: {list}",
        path.display(),
        extra.len(),
        if extra.len() == 1 { "" } else { "s" },
        t.describe()
    )))
}

/// Whether git ignores `path`: `Some(true)`/`Some(false)` inside a git work tree, `None`
/// outside one or without git (`git check-ignore`'s exit codes 0, 1 and 128).
fn git_ignored(path: &Path) -> Option<bool> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name()?;
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["check-ignore", "-q", "--"])
        .arg(name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    match status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        _ => None,
    }
}

/// Names the values that other `.env` readers cannot read back exactly (see docs/dotenv.md), so
/// nobody is surprised when node `dotenv` or `dotenvy` sees something else. Values are never
/// printed, only key names.
fn warn_unportable(ctx: &Context, entries: &[dotenv::Entry]) {
    let mut node_only = Vec::new();
    let mut klef_only = Vec::new();
    for e in entries {
        match dotenv::portability(&e.value) {
            Portability::Portable => {}
            Portability::NodeOnly => node_only.push(e.name.as_str()),
            Portability::KlefOnly => klef_only.push(e.name.as_str()),
        }
    }
    if !node_only.is_empty() {
        ctx.printer.warn(&format!(
            "dotenvy (Rust) cannot read these values back exactly: {}",
            node_only.join(", ")
        ));
    }
    if !klef_only.is_empty() {
        ctx.printer.warn(&format!(
            "no .env quoting carries these values to node dotenv exactly (klef reads them back): {}",
            klef_only.join(", ")
        ));
        ctx.printer
            .hint("use `klef run` or `--format json` for values like these");
    }
}
