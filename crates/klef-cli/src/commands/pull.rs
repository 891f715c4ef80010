//! `klef pull [-o FILE] [--format …]`: writes the environment's secrets to `.env` (or FILE)
//! atomically with mode 0600; `-o -` prints them.

use std::path::PathBuf;

use anyhow::Result;
use klef_core::dotenv::{self, Format, Portability};

use crate::context::Context;
use crate::diagnostics::ExitStatus;
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

    /// The output format
    #[arg(long, value_enum, default_value_t = FormatArg::Dotenv)]
    pub(crate) format: FormatArg,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend_and_agent().await?;
    let t = ctx.target(&b).await?;
    let (current, key) = ctx.current_secrets_and_key(&b, &t).await?;
    let entries = secrets::decrypt_all(&key, &t, &current)?;
    let rendered = dotenv::render(&entries, args.format.into());
    if args.format == FormatArg::Dotenv {
        warn_unportable(ctx, &entries);
    }
    if args.output.as_os_str() == "-" {
        ctx.printer.data(&rendered)?;
    } else {
        fsutil::write_atomic(&args.output, rendered.as_bytes(), 0o600)?;
        ctx.printer.info(&format!(
            "wrote {} secret{} from {} to {}",
            entries.len(),
            if entries.len() == 1 { "" } else { "s" },
            t.describe(),
            args.output.display()
        ));
    }
    Ok(ExitStatus::SUCCESS)
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
