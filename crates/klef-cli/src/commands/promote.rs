//! `klef promote --from A --to B [KEY…] [--yes] [--dry-run]`: copies values (all of A's, or
//! the listed names) from one environment of the project to another, in one transaction.
//!
//! Both environments are read and verified (`crate::signed`); the target is opened for writing.
//! The change is shown first, masked, as `klef diff` shows it (names added to B and changed in
//! B; names only B has are kept), then confirmed at a terminal (`--yes` for scripts; without a
//! terminal and without `--yes` the command refuses with exit 2 before writing). Each value is
//! decrypted from A and encrypted anew for B, bound to B, its name and its next version: no
//! ciphertext is copied. Every write goes in one `Opened::write` (one request, one signed
//! manifest): a concurrent change of B makes it fail with exit 7 and nothing is written.
//!
//! The stored text is copied, so references (`${KEY}`, `${env.KEY}`) stay references and
//! resolve in B's context (`${KEY}` then names B's `KEY`); `--resolved` copies the values as
//! `klef get` shows them in A instead.
//!
//! Names listed that A does not have fail the command, naming all of them; nothing is written.
//! On a server the write is audited as any write of values (`secrets.write` on B).
//!
//! JSON: `{"from", "to", "added": [names], "changed": [names], "unchanged": [names],
//! "dry_run", "written"}`.

use anyhow::{Context as _, Result};
use klef_core::dotenv::Entry;
use klef_core::model::SecretWrite;
use serde_json::json;

use crate::commands::diff::{Comparison, address};
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::references::References;
use crate::signed::Purpose;
use crate::{confirm, secrets};

/// Copy values from one environment to another, in one transaction
///
/// Copies every value of `--from` (or only the KEYs named) into `--to`, after showing what
/// changes (masked) and asking (`--yes` for scripts). Names only `--to` has are kept. The
/// stored text is copied, so references stay references (`--resolved` copies resolved
/// values).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The environment to copy from
    #[arg(long, value_name = "SLUG")]
    pub(crate) from: String,

    /// The environment to copy to (same project)
    #[arg(long, value_name = "SLUG")]
    pub(crate) to: String,

    /// Only these names (default: every value of `--from`)
    #[arg(value_name = "KEY")]
    pub(crate) keys: Vec<String>,

    /// Show what would change, and write nothing
    #[arg(long, short = 'n')]
    pub(crate) dry_run: bool,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,

    /// Copy the values with their references resolved in `--from`, instead of the stored text
    #[arg(long)]
    pub(crate) resolved: bool,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    for k in &args.keys {
        secrets::check_name(k)?;
    }
    for (flag, slug) in [("--from", &args.from), ("--to", &args.to)] {
        if slug.contains('/') {
            return Err(Failure::usage(format!(
                "{flag} {slug}: promote copies within one project; give an environment SLUG"
            ))
            .hint("pick the project with -p PROJECT")
            .into());
        }
    }
    if args.from == args.to {
        return Err(Failure::usage(format!(
            "--from and --to are both \"{}\": there is nothing to copy",
            args.from
        ))
        .into());
    }
    let b = ctx.backend_and_agent().await?;
    let pt = ctx.project(&b).await?;
    let from = ctx.other_target(&b, &pt.project, &args.from).await?;
    let to = ctx.other_target(&b, &pt.project, &args.to).await?;

    // The source, verified; the values to copy.
    let source = ctx.open_environment(&b, &from, Purpose::Read).await?;
    let mut values = secrets::decrypt_all(&source.key, &from, &source.secrets)?;
    drop(source);
    if args.resolved {
        values = References::new(ctx, &b, &from, &values)
            .all(&values)
            .await?;
    }
    if !args.keys.is_empty() {
        let missing: Vec<&str> = args
            .keys
            .iter()
            .filter(|k| !values.iter().any(|e| &e.name == *k))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Failure::not_found(format!(
                "{} not in {}; nothing was written",
                missing.join(", "),
                from.describe()
            ))
            .hint(format!(
                "`klef list -e {}` shows its keys; drop the names it lacks",
                from.env.slug
            ))
            .into());
        }
        values.retain(|e| args.keys.contains(&e.name));
    }

    // The target, opened for writing: what it holds now.
    let mut target = ctx.open_environment(&b, &to, Purpose::Write).await?;
    let current = secrets::decrypt_all(&target.key, &to, &target.secrets)?;
    let current: Vec<Entry> = current
        .into_iter()
        .filter(|e| values.iter().any(|v| v.name == e.name))
        .collect();
    let c = Comparison::of(&current, &values);
    let added: Vec<&str> = c.added.iter().map(|e| e.name.as_str()).collect();
    let changed: Vec<&str> = c.changed.iter().map(|(n, _, _)| n.as_str()).collect();
    let (from_label, to_label) = (address(&from), address(&to));

    let report = |written: bool| -> Result<()> {
        if ctx.global.json {
            ctx.printer.json(&json!({
                "from": from_label, "to": to_label, "added": added, "changed": changed,
                "unchanged": c.unchanged, "dry_run": args.dry_run, "written": written,
            }))?;
        }
        Ok(())
    };
    if c.equal() {
        report(false)?;
        ctx.printer.info(&format!(
            "nothing to promote: {to_label} already has the same {} as {from_label}",
            confirm::count(c.unchanged.len(), "value", "values")
        ));
        return Ok(ExitStatus::SUCCESS);
    }
    let what = summary(&from_label, &to_label, &added, &changed, c.unchanged.len());
    if args.dry_run {
        report(false)?;
        ctx.printer.info(&what);
        ctx.printer.info("dry run, nothing written");
        return Ok(ExitStatus::SUCCESS);
    }
    confirm::confirm_or(
        ctx,
        &what,
        &format!("copy them to {to_label}?"),
        args.yes,
        "promote cancelled; nothing was written",
    )?;

    let mut writes: Vec<SecretWrite> = Vec::with_capacity(added.len() + changed.len());
    for e in &values {
        if c.unchanged.contains(&e.name) {
            continue;
        }
        // No expected version: `Opened::write` pins each to the version read (a delete
        // included), so a concurrent change is a conflict.
        writes.push(SecretWrite {
            name: e.name.clone(),
            expected_version: None,
            ciphertext: Some(secrets::encrypt(
                &target.key,
                &to,
                &e.name,
                &e.value,
                target.next_place(&to, &e.name),
            )),
        });
    }
    {
        let _progress = ctx
            .printer
            .progress(format!("writing {} values", writes.len()));
        target
            .write_from(ctx, &b, &to, &mut writes, Some(&from.env.id))
            .await
            .with_context(|| {
                format!(
                    "failed to promote to {}; nothing was written",
                    to.describe()
                )
            })?;
    }
    report(true)?;
    ctx.printer.info(&format!(
        "promoted {} from {from_label} to {to_label}: {} added, {} changed, {} unchanged",
        confirm::count(writes.len(), "value", "values"),
        added.len(),
        changed.len(),
        c.unchanged.len()
    ));
    Ok(ExitStatus::SUCCESS)
}

/// What the promotion changes, names only.
fn summary(from: &str, to: &str, added: &[&str], changed: &[&str], unchanged: usize) -> String {
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("add {}", added.join(", ")));
    }
    if !changed.is_empty() {
        parts.push(format!("change {}", changed.join(", ")));
    }
    if unchanged > 0 {
        parts.push(format!("keep {unchanged} unchanged"));
    }
    format!(
        "promoting {from} → {to} would {} (values ****)",
        parts.join("; ")
    )
}
