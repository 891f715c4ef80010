//! `klef get KEY [--plain] [--raw]`: prints a value (with a newline; `--plain` prints the exact
//! bytes), its references (`${KEY}`, `${env.KEY}`, `${project/env.KEY}`) resolved unless
//! `--raw`. A value with a reference needs the rest of its environment, which is then read and
//! decrypted as `klef run` reads it (`crate::references`).
//!
//! JSON: `{"name", "value", "version", "updated_at"}`.

use anyhow::Result;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::references::References;
use crate::signed::Purpose;
use crate::{secrets, table};

/// Print a secret's value
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key name
    pub(crate) key: String,

    /// Print the exact value, without a trailing newline
    #[arg(long)]
    pub(crate) plain: bool,

    /// Print the stored text, without resolving its references (`${KEY}`, `${env.KEY}`,
    /// `${project/env.KEY}`)
    #[arg(long)]
    pub(crate) raw: bool,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    secrets::check_name(&args.key)?;
    let b = ctx.backend_and_agent().await?;
    // The environment's values as its signed state lists them: a name the manifest does not
    // list is not there, whatever the server's history says (or the agent's copy of them).
    let opened = crate::snapshot::current(ctx, &b, Purpose::Read).await?;
    let t = &opened.target;
    if let Some(status) = crate::personal::get(ctx, &b, t, &opened, &args).await? {
        return Ok(status);
    }
    let Some(sv) = opened
        .secrets
        .iter()
        .find(|s| s.name == args.key && s.ciphertext.is_some())
    else {
        return Err(
            Failure::not_found(format!("{} not found in {}", args.key, t.describe()))
                .hint("`klef list` shows the keys of this environment; `-e SLUG` picks another")
                .into(),
        );
    };
    let mut value = secrets::decrypt(&opened.key, t, sv)?;
    if !args.raw && klef_core::refs::has_references(&value) {
        // The rest of the environment, already read and verified with it.
        let entries = secrets::decrypt_all(&opened.key, t, &opened.secrets)?;
        let entries = crate::personal::layer(ctx, t, entries);
        value = References::new(ctx, &b, t, &entries).key(&args.key).await?;
    }
    if ctx.global.json {
        ctx.printer.json(&json!({
            "name": sv.name, "value": value.as_str(), "version": sv.version,
            "updated_at": table::time(sv.created_at),
        }))?;
    } else if args.plain {
        ctx.printer.data(&value)?;
    } else {
        let mut line = zeroize::Zeroizing::new(String::with_capacity(value.len() + 1));
        line.push_str(&value);
        line.push('\n');
        ctx.printer.data(&line)?;
    }
    Ok(ExitStatus::SUCCESS)
}
