//! `klef unset KEY…`: deletes keys in one transaction (each delete is a new, empty version, so
//! history and rollback still work). Every key must exist, or nothing is deleted.

use anyhow::{Context as _, Result};
use klef_core::model::SecretWrite;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::secrets;
use crate::signed::Purpose;

/// Delete secrets (their history is kept)
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key names
    #[arg(required_unless_present = "all")]
    pub(crate) keys: Vec<String>,

    /// Remove your personal overrides of these keys instead (you see the shared values again)
    #[arg(long)]
    pub(crate) personal: bool,

    /// With --personal: remove all your personal overrides of the environment; also starts
    /// them again, empty, when they were lost (a restored backup)
    #[arg(long, requires = "personal", conflicts_with = "keys")]
    pub(crate) all: bool,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    for k in &args.keys {
        secrets::check_name(k)?;
    }
    if args.personal {
        return crate::personal::unset(ctx, &args.keys, args.all).await;
    }
    let b = ctx.backend().await?;
    let t = ctx.target(&b).await?;
    // Deleting signs the environment's next state, so it unlocks like a write.
    let mut opened = ctx.open_environment(&b, &t, Purpose::Write).await?;
    let current = &opened.secrets;
    let mut writes: Vec<SecretWrite> = Vec::new();
    for k in &args.keys {
        if writes.iter().any(|w| &w.name == k) {
            continue;
        }
        let Some(sv) = current
            .iter()
            .find(|s| &s.name == k && s.ciphertext.is_some())
        else {
            return Err(
                Failure::not_found(format!("{k} not found in {}", t.describe()))
                    .hint("nothing was deleted")
                    .into(),
            );
        };
        writes.push(SecretWrite {
            name: k.clone(),
            expected_version: Some(sv.version),
            ciphertext: None,
        });
    }
    opened
        .write(ctx, &b, &t, &mut writes)
        .await
        .with_context(|| format!("failed to write to {}", t.describe()))?;
    let names: Vec<&str> = writes.iter().map(|w| w.name.as_str()).collect();
    ctx.printer.info(&format!(
        "deleted {} from {}",
        names.join(", "),
        t.describe()
    ));
    Ok(ExitStatus::SUCCESS)
}
