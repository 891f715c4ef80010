//! `klef push [FILE] [--replace] [--yes] [--dry-run] [--format dotenv|json|yaml]`: imports a
//! file of names and values in one transaction.
//!
//! The format is `--format`, else the file's extension (`.json`, `.yaml`/`.yml`), else its
//! first line (`{` is JSON, `---` or a quoted key is YAML), else dotenv (see `crate::import`).
//! The whole file is parsed and checked before anything is written; a bad line is reported
//! with its number. Each write carries the version klef read, so a concurrent change makes the
//! push fail with exit code 7 instead of overwriting it. The summary (added / changed /
//! unchanged / removed) goes to stderr; `--json` prints the names per group on stdout, with
//! `"dry_run"`. `--dry-run` computes the same summary and writes nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use klef_core::dotenv;
use klef_core::model::{SecretVersion, SecretWrite};
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::import::{self, Format};
use crate::signed::Purpose;
use crate::{password, secrets};

/// Import a dotenv, JSON or YAML file into the environment in one transaction
///
/// Keys absent from the file are kept unless `--replace` is given, which removes them after a
/// confirmation (`--yes` skips it; without a terminal `--yes` is required). JSON is one object
/// and YAML one mapping, of string values only: a nested, numeric, boolean or null value is
/// refused, naming its key, so nothing is imported as a different text than you see.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The file to import
    #[arg(default_value = ".env")]
    pub(crate) file: PathBuf,

    /// The file's format (default: from its extension, else its content, else dotenv)
    #[arg(long, value_enum)]
    pub(crate) format: Option<FormatArg>,

    /// Show what would be added, changed and removed, and write nothing
    #[arg(long, short = 'n')]
    pub(crate) dry_run: bool,

    /// Also remove keys that are not in the file
    #[arg(long)]
    pub(crate) replace: bool,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FormatArg {
    /// `KEY=value` lines (the grammar of node `dotenv`; see docs/dotenv.md)
    Dotenv,
    /// One JSON object of string values
    Json,
    /// One YAML mapping of string values
    Yaml,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Dotenv => Format::Dotenv,
            FormatArg::Json => Format::Json,
            FormatArg::Yaml => Format::Yaml,
        }
    }
}

/// Reads and parses the file; nothing of it reaches an error message but names and lines.
fn read_entries(path: &Path, format: Option<FormatArg>) -> Result<Vec<dotenv::Entry>> {
    let bytes = zeroize::Zeroizing::new(
        fs_err::read(path).with_context(|| format!("failed to read {}", path.display()))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Failure::other(format!("{} is not valid UTF-8", path.display())))?;
    let format = format.map_or_else(|| Format::detect(path, text), Format::from);
    import::parse(text, format).map_err(|e| {
        let mut failure = Failure::other(format!(
            "failed to parse {} as {}: {e}",
            path.display(),
            format.name()
        ));
        if format == Format::Dotenv
            && let Some(hint) = import::other_format_hint(text)
        {
            failure = failure.hint(hint);
        }
        failure.into()
    })
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let path = &args.file;
    let entries = read_entries(path, args.format)?;
    // Later duplicates win.
    let mut wanted: BTreeMap<String, zeroize::Zeroizing<String>> = BTreeMap::new();
    let mut too_long = Vec::new();
    for e in entries {
        secrets::check_name(&e.name)
            .with_context(|| format!("failed to parse {}", path.display()))?;
        if secrets::check_value(&e.name, &e.value)? == secrets::ValueFit::TooLongForRun {
            too_long.push(crate::env_policy::too_long_warning(&e.name, &e.value));
        }
        wanted.insert(e.name, e.value);
    }

    let b = ctx.backend().await?;
    let t = ctx.target(&b).await?;
    let mut opened = ctx.open_environment(&b, &t, Purpose::Write).await?;
    crate::personal::keep_out_of_push(ctx, &t, &opened, &mut wanted)?;
    let current: Vec<SecretVersion> = opened
        .secrets
        .iter()
        .filter(|s| s.ciphertext.is_some())
        .cloned()
        .collect();
    let key = opened.key.clone();
    // By name: a linear search per line made a 10,000-line push over 10,000 stored names
    // quadratic (40 % of its time in memcmp).
    let by_name: HashMap<&str, &SecretVersion> =
        current.iter().map(|s| (s.name.as_str(), s)).collect();

    let (mut added, mut changed, mut unchanged, mut removed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut writes: Vec<SecretWrite> = Vec::new();
    for (name, value) in &wanted {
        match by_name.get(name.as_str()) {
            None => {
                added.push(name.clone());
                writes.push(SecretWrite {
                    name: name.clone(),
                    expected_version: Some(0),
                    ciphertext: Some(secrets::encrypt(
                        &key,
                        &t,
                        name,
                        value,
                        opened.next_place(&t, name),
                    )),
                });
            }
            Some(sv) => {
                let old = secrets::decrypt(&key, &t, sv)?;
                if old.as_str() == value.as_str() {
                    unchanged.push(name.clone());
                } else {
                    changed.push(name.clone());
                    writes.push(SecretWrite {
                        name: name.clone(),
                        expected_version: Some(sv.version),
                        ciphertext: Some(secrets::encrypt(
                            &key,
                            &t,
                            name,
                            value,
                            opened.next_place(&t, name),
                        )),
                    });
                }
            }
        }
    }
    if args.replace {
        for sv in current.iter().filter(|s| !wanted.contains_key(&s.name)) {
            removed.push(sv.name.clone());
            writes.push(SecretWrite {
                name: sv.name.clone(),
                expected_version: Some(sv.version),
                ciphertext: None,
            });
        }
        removed.sort();
        if !removed.is_empty() && !args.yes && !args.dry_run {
            confirm_removal(ctx, &removed, &args.file, &t.describe())?;
        }
    }

    if !writes.is_empty() && !args.dry_run {
        let _progress = ctx
            .printer
            .progress(format!("writing {} values", writes.len()));
        opened
            .write(ctx, &b, &t, &mut writes)
            .await
            .with_context(|| format!("failed to write to {}", t.describe()))?;
    }
    if ctx.global.json {
        ctx.printer.json(
            &json!({"added": added, "changed": changed, "unchanged": unchanged,
                                 "removed": removed, "dry_run": args.dry_run}),
        )?;
    }
    if args.dry_run {
        for (label, names) in [("add", &added), ("change", &changed), ("remove", &removed)] {
            if !names.is_empty() {
                ctx.printer
                    .info(&format!("would {label}: {}", names.join(", ")));
            }
        }
        ctx.printer.info(&format!(
            "dry run, nothing written: pushing {} to {} would add {}, change {}, keep {} unchanged and remove {}",
            path.display(),
            t.describe(),
            added.len(),
            changed.len(),
            unchanged.len(),
            removed.len()
        ));
        return Ok(ExitStatus::SUCCESS);
    }
    ctx.printer.info(&format!(
        "pushed {} to {}: {} added, {} changed, {} unchanged, {} removed",
        path.display(),
        t.describe(),
        added.len(),
        changed.len(),
        unchanged.len(),
        removed.len()
    ));
    for warning in &too_long {
        ctx.printer.warn(warning);
    }
    Ok(ExitStatus::SUCCESS)
}

fn confirm_removal(
    ctx: &Context,
    removed: &[String],
    file: &std::path::Path,
    target: &str,
) -> Result<()> {
    let what = format!(
        "--replace would remove {} key{} absent from {}: {}",
        removed.len(),
        if removed.len() == 1 { "" } else { "s" },
        file.display(),
        removed.join(", ")
    );
    let stdin_tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if !password::interactive() || !stdin_tty {
        return Err(
            Failure::other(format!("{what}; refusing without confirmation"))
                .hint("pass --yes to confirm, or drop --replace to keep them")
                .into(),
        );
    }
    ctx.printer.always(&what);
    if crate::confirm::ask_yes_no(&format!("remove them from {target}?"))? {
        Ok(())
    } else {
        Err(Failure::other("push cancelled; nothing was written").into())
    }
}
