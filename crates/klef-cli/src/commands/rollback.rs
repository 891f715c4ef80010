//! `klef rollback KEY VERSION`: writes a new version with VERSION's value. The old version must
//! open under the environment's verified key (the server's history is not covered by the signed
//! manifest); it is sealed again for its new version, so it needs the environment key not to
//! have been rotated since VERSION was written.

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::model::SecretWrite;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::secrets;
use crate::signed::Purpose;

/// Make an earlier version of a secret the current one
///
/// This adds a new version with the old value; history is never rewritten.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key name
    pub(crate) key: String,
    /// The version to restore (see `klef history KEY`)
    #[arg(id = "target_version", value_name = "VERSION")]
    pub(crate) version: i64,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    secrets::check_name(&args.key)?;
    let b = ctx.backend().await?;
    let t = ctx.target(&b).await?;
    let history = b.secret_history(&t.env.id, &args.key).await?;
    let Some(old) = history.iter().find(|s| s.version == args.version) else {
        return Err(Failure::not_found(format!(
            "version {} of {} not found in {}",
            args.version,
            args.key,
            t.describe()
        ))
        .hint(format!("`klef history {}` lists its versions", args.key))
        .into());
    };
    if old.ciphertext.is_none() {
        return Err(Failure::usage(format!(
            "version {} of {} is a deletion",
            args.version, args.key
        ))
        .hint(format!("use `klef unset {}` to delete it again", args.key))
        .into());
    }
    if old.key_version != t.env.key_version {
        return Err(Failure::other(format!(
            "version {} of {} was encrypted with an earlier key of {} (rotated since)",
            args.version,
            args.key,
            t.describe()
        ))
        .into());
    }
    let latest = history.last();
    if let Some(l) = latest
        && l.version == old.version
    {
        ctx.printer.info(&format!(
            "version {} of {} is already the current one",
            args.version, args.key
        ));
        return Ok(ExitStatus::SUCCESS);
    }
    // The old version comes from the server's history, which no manifest covers any more:
    // it must open under the environment's verified key before this writer signs it as the
    // current value (a server cannot make a value that does).
    let mut opened = ctx.open_environment(&b, &t, Purpose::Write).await?;
    let value = secrets::decrypt(&opened.key, &t, old).map_err(|e| {
        e.context(Failure::other(format!(
            "version {} of {} does not open with the key of {}: it was altered; nothing was written",
            args.version,
            args.key,
            t.describe()
        )))
    })?;
    let expected = latest.map(|l| l.version);
    // Sealed again for the version it becomes (a value is bound to its version).
    let ciphertext = secrets::encrypt(
        &opened.key,
        &t,
        &args.key,
        &value,
        opened.next_place(&t, &args.key),
    );
    let mut writes = [SecretWrite {
        name: args.key.clone(),
        expected_version: expected,
        ciphertext: Some(ciphertext),
    }];
    let written = opened
        .write(ctx, &b, &t, &mut writes)
        .await
        .with_context(|| format!("failed to write to {}", t.describe()))?;
    let new_version = written.first().map_or(0, |s| s.version);
    ctx.printer.info(&format!(
        "restored version {} of {} as version {new_version} in {}",
        args.version,
        args.key,
        t.describe()
    ));
    Ok(ExitStatus::SUCCESS)
}
