//! `klef history KEY`: every version of a key, oldest first, deletions included. Metadata only:
//! no password needed; when the keys are at hand, its current version is checked against the
//! environment's signed state (older versions are not covered by it).
//!
//! JSON: `[{"name", "version", "deleted", "created_at", "author", "key_version"}]`.

use anyhow::Result;
use klef_core::backend::Backend as _;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::{secrets, table};

/// Show the earlier versions of a secret
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key name
    pub(crate) key: String,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    secrets::check_name(&args.key)?;
    let b = ctx.backend().await?;
    let t = ctx.target(&b).await?;
    let versions = b.secret_history(&t.env.id, &args.key).await?;
    // Its current version is checked against the signed state when the keys are at hand.
    if crate::signed::keys_at_hand(ctx, &b).await? {
        let opened = ctx
            .open_environment(&b, &t, crate::signed::Purpose::Read)
            .await?;
        opened.check_history(&t, &args.key, &versions)?;
    } else {
        ctx.printer.info(&format!(
            "note: the history of {} is shown as stored, not checked against the signed state (unlock to check: `klef unlock`)",
            args.key
        ));
    }
    if versions.is_empty() {
        return Err(
            Failure::not_found(format!("{} has no history in {}", args.key, t.describe())).into(),
        );
    }
    if ctx.global.json {
        let v: Vec<_> = versions
            .iter()
            .map(|s| {
                json!({"name": s.name, "version": s.version, "deleted": s.ciphertext.is_none(),
                       "created_at": table::time(s.created_at), "author": s.author, "key_version": s.key_version})
            })
            .collect();
        ctx.printer.json(&v)?;
    } else {
        let rows: Vec<Vec<String>> = versions
            .iter()
            .map(|s| {
                vec![
                    s.version.to_string(),
                    if s.ciphertext.is_some() {
                        "set".into()
                    } else {
                        "deleted".into()
                    },
                    table::time(s.created_at),
                    s.author.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        ctx.printer.data(&table::render(
            &["VERSION", "CHANGE", "WHEN", "AUTHOR"],
            &rows,
        ))?;
    }
    Ok(ExitStatus::SUCCESS)
}
