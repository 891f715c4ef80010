//! `klef env seal [SLUG]`: signs the first state of an environment made before signed
//! manifests (DESIGN.md §9.3), so readers can check every value from then on. Owners and
//! admins only: the values as they are now become the signed state, so look at them first
//! (`klef list --reveal`). Environments created, rotated or written by an owner or admin since
//! are sealed already; the local vault seals its own on first use.

use anyhow::Result;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::signed::Purpose;

/// Sign the current state of an environment made before signed manifests (admins)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The environment (default: `-e`, `KLEF_ENV`, then `.klef`'s default)
    pub(crate) slug: Option<String>,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend_and_agent().await?;
    let t = ctx.target_or_slug(&b, args.slug.as_deref()).await?;
    let mut opened = ctx.open_environment(&b, &t, Purpose::Write).await?;
    let before = opened.revision();
    let revision = opened.seal(&b, &t).await?;
    let values = opened
        .secrets
        .iter()
        .filter(|s| s.ciphertext.is_some())
        .count();
    if ctx.global.json {
        ctx.printer.json(&json!({
            "environment": t.env.slug,
            "revision": revision,
            "sealed_now": before.is_none(),
            "values": values,
        }))?;
    }
    match before {
        Some(r) => ctx.printer.info(&format!(
            "{} has signed state already (revision {r})",
            t.describe()
        )),
        None => ctx.printer.info(&format!(
            "sealed {}: signed its {values} value(s) as revision {revision}",
            t.describe()
        )),
    }
    Ok(ExitStatus::SUCCESS)
}
