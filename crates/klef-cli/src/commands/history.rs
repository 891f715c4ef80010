//! `klef history KEY`: every version of a key, oldest first, deletions included. Metadata only:
//! no password needed; when the keys are at hand, its current version is checked against the
//! environment's signed state (older versions are not covered by it).
//!
//! JSON: `[{"name", "version", "deleted", "created_at", "author", "key_version"}]`.
//!
//! `klef history` without a key: the environment's signed revisions, oldest first, each with
//! who signed it and which names it added, changed and removed. Everything shown comes from
//! the signed manifests, proven by the hash chain up to the head this read verified
//! (`Opened::past`), so it unlocks; a revision number is what `klef diff --revision N` takes.
//!
//! JSON: `[{"revision", "signed_by", "added", "changed", "removed", "key_version",
//! "environment"}]`.

use anyhow::Result;
use klef_core::backend::Backend as _;
use klef_core::trust::manifest::ManifestBody;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::signed::Purpose;
use crate::{secrets, table};

/// Show the earlier versions of a secret, or the environment's signed revisions
///
/// With KEY: every version of that key. Without: every signed revision of the environment,
/// who signed it and the names it added (+), changed (~) and removed (-); `klef diff
/// --revision N` compares the environment with one of them.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key name (without it: the environment's revisions)
    pub(crate) key: Option<String>,
}

/// Names shown per revision in the table (all of them in JSON).
const NAMES_SHOWN: usize = 8;

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let Some(key) = &args.key else {
        return revisions(ctx).await;
    };
    secrets::check_name(key)?;
    let b = ctx.backend().await?;
    let t = ctx.target(&b).await?;
    let versions = b.secret_history(&t.env.id, key).await?;
    // Its current version is checked against the signed state when the keys are at hand.
    if crate::signed::keys_at_hand(ctx, &b).await? {
        let opened = ctx
            .open_environment(&b, &t, crate::signed::Purpose::Read)
            .await?;
        opened.check_history(&t, key, &versions)?;
    } else {
        ctx.printer.info(&format!(
            "note: the history of {key} is shown as stored, not checked against the signed state (unlock to check: `klef unlock`)"
        ));
    }
    if versions.is_empty() {
        return Err(Failure::not_found(format!("{key} has no history in {}", t.describe())).into());
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

/// What one revision changed from the one before.
struct Change<'a> {
    added: Vec<&'a str>,
    changed: Vec<&'a str>,
    removed: Vec<&'a str>,
    notes: Vec<String>,
}

impl<'a> Change<'a> {
    fn of(before: Option<&'a ManifestBody>, body: &'a ManifestBody) -> Self {
        let mut c = Change {
            added: Vec::new(),
            changed: Vec::new(),
            removed: Vec::new(),
            notes: Vec::new(),
        };
        for (name, v) in &body.values {
            match before.and_then(|b| b.values.get(name)) {
                None => c.added.push(name),
                Some(o) if o.version != v.version => c.changed.push(name),
                Some(_) => {}
            }
        }
        if let Some(b) = before {
            c.removed = b
                .values
                .keys()
                .filter(|n| !body.values.contains_key(*n))
                .map(String::as_str)
                .collect();
        }
        match before {
            None if body.revision == 1 => c.notes.push("created".into()),
            None => {}
            Some(b) => {
                if b.key_version != body.key_version {
                    c.notes
                        .push(format!("key rotated (version {})", body.key_version));
                }
                if b.environment_name != body.environment_name {
                    c.notes
                        .push(format!("renamed to {}", body.environment_name));
                }
                if b.project_name != body.project_name {
                    c.notes
                        .push(format!("project renamed to {}", body.project_name));
                }
            }
        }
        c
    }

    fn describe(&self) -> String {
        let mut parts: Vec<String> = self.notes.clone();
        let names = self
            .added
            .iter()
            .map(|n| format!("+{n}"))
            .chain(self.changed.iter().map(|n| format!("~{n}")))
            .chain(self.removed.iter().map(|n| format!("-{n}")));
        let total = self.added.len() + self.changed.len() + self.removed.len();
        parts.extend(names.take(NAMES_SHOWN));
        if total > NAMES_SHOWN {
            parts.push(format!("… and {} more", total - NAMES_SHOWN));
        }
        if parts.is_empty() {
            parts.push("signed again, no change".into());
        }
        parts.join(" ")
    }
}

/// `klef history` without a key: the environment's signed revisions.
async fn revisions(ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let t = ctx.target(&b).await?;
    let opened = ctx.open_environment(&b, &t, Purpose::Read).await?;
    let bodies = opened.past(&b, &t, 1).await?;
    let changes: Vec<Change<'_>> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| Change::of(i.checked_sub(1).map(|p| &bodies[p]), body))
        .collect();
    if ctx.global.json {
        let v: Vec<_> = bodies
            .iter()
            .zip(&changes)
            .map(|(body, c)| {
                json!({"revision": body.revision, "signed_by": opened.signed_by(body),
                       "added": c.added, "changed": c.changed, "removed": c.removed,
                       "key_version": body.key_version, "environment": body.environment_name})
            })
            .collect();
        ctx.printer.json(&v)?;
    } else {
        let rows: Vec<Vec<String>> = bodies
            .iter()
            .zip(&changes)
            .map(|(body, c)| {
                vec![
                    body.revision.to_string(),
                    opened.signed_by(body),
                    c.describe(),
                ]
            })
            .collect();
        ctx.printer
            .data(&table::render(&["REVISION", "SIGNED BY", "CHANGES"], &rows))?;
    }
    Ok(ExitStatus::SUCCESS)
}
