//! `klef diff [-e A] B [--show] [--raw] [--all]` and `klef diff --at WHEN`: compares two
//! environments' values, or one environment with its own past.
//!
//! * `klef diff B` compares the current environment (`-e A`, else the usual choice) with `B`,
//!   another environment of the same project, or `project/env` of another project the caller
//!   can read. "from" is A, "to" is B: a name only B has is *added*.
//! * `klef diff --revision N` compares the environment at its signed revision `N` (`klef
//!   history` lists them; `klef -v` names the current one) with it now: the names and versions
//!   that revision's manifest lists, proven by the hash chain up to the verified head, each
//!   value checked against the hash the manifest signed. Unlike a time, nothing the server
//!   says about when a version was written is trusted.
//! * `klef diff --at WHEN` compares the environment as it was at `WHEN` ("from") with it now
//!   ("to"). `WHEN` is an RFC 3339 time (`2026-12-05T13:00:00Z`, as `klef history` prints it)
//!   or a Unix time in seconds. The value of a name at `WHEN` is its latest version created at
//!   or before `WHEN` (a time given in whole seconds covers that whole second, so a time copied
//!   from `klef history` includes the version it names); a name whose latest version by then is
//!   a delete, or that had none yet, was absent. Versions sealed under a key that was rotated
//!   since cannot be read and fail the command naming them.
//!
//! Both sides are read and verified as every read is (`crate::signed`); the command unlocks to
//! compare values. By default values are compared with their references resolved (as `get` and
//! `run` see them; with `--at`, references within the environment resolve against its past
//! values, references to other environments against their current ones); `--raw` compares the
//! stored text. Values are masked (`****`) unless `--show`.
//!
//! Exit status: 0 when equal, 1 when different, as `diff(1)`. Errors keep their codes (2 to 7);
//! an error other commands report with 1 ("other error") is reported with 2 here, so 1 always
//! means "different" (`crate::diagnostics::never_one`).
//!
//! Human output (stdout): one line per name, `+ NAME` added, `- NAME` removed, `~ NAME`
//! changed, `  NAME` unchanged (with `--all`); with `--show` the values follow (`= value`,
//! `: old → new`). A summary goes to stderr. JSON: `{"from", "to", "added": [{"name"}],
//! "removed": [{"name"}], "changed": [{"name"}], "unchanged": N, "equal"}`, with `"value"` in
//! added and removed entries and `"from"`/`"to"` in changed ones under `--show`, and
//! `"unchanged_names"` under `--all`.

use std::collections::BTreeMap;

use anyhow::Result;
use klef_core::backend::Backend as _;
use klef_core::dotenv::Entry;
use klef_core::trust::manifest::ValueRef;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::backend::AnyBackend;
use crate::context::{Context, Target};
use crate::diagnostics::{ExitStatus, Failure};
use crate::references::References;
use crate::signed::Purpose;
use crate::{secrets, table};

/// Compare two environments, or one with its past; exit 0 when equal, 1 when different
///
/// Values are masked (`****`) unless `--show`; references are resolved unless `--raw`. `B` is
/// an environment of this project (`staging`) or of another (`billing/production`).
#[derive(Debug, clap::Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent command-line flags, as clap parses them"
)]
pub(crate) struct Args {
    /// The environment to compare with: `SLUG`, or `PROJECT/SLUG`
    #[arg(
        value_name = "B",
        required_unless_present_any = ["at", "revision", "personal"],
        conflicts_with_all = ["at", "revision", "personal"]
    )]
    pub(crate) other: Option<String>,

    /// Compare the environment with itself as it was at this time (RFC 3339, or Unix seconds)
    #[arg(long, value_name = "TIME", conflicts_with_all = ["personal", "revision"])]
    pub(crate) at: Option<String>,

    /// Compare the environment with itself at this signed revision (`klef history` lists them)
    #[arg(long, value_name = "N", conflicts_with = "personal")]
    pub(crate) revision: Option<u64>,

    /// Compare the shared environment with what you see in it (your personal overrides)
    #[arg(long)]
    pub(crate) personal: bool,

    /// Show the values instead of `****`
    #[arg(long)]
    pub(crate) show: bool,

    /// Compare the stored text, without resolving references
    #[arg(long)]
    pub(crate) raw: bool,

    /// Also list the unchanged names
    #[arg(long)]
    pub(crate) all: bool,
}

/// What differs between two sets of values, by name (sorted).
pub(crate) struct Comparison {
    /// Names only "to" has, with their values.
    pub(crate) added: Vec<Entry>,
    /// Names only "from" has, with their values.
    pub(crate) removed: Vec<Entry>,
    /// Names both have with different values: `(name, from, to)`.
    pub(crate) changed: Vec<(String, Zeroizing<String>, Zeroizing<String>)>,
    /// Names both have with the same value.
    pub(crate) unchanged: Vec<String>,
}

impl Comparison {
    /// Compares `from` with `to`.
    pub(crate) fn of(from: &[Entry], to: &[Entry]) -> Self {
        let from: BTreeMap<&str, &Zeroizing<String>> =
            from.iter().map(|e| (e.name.as_str(), &e.value)).collect();
        let to: BTreeMap<&str, &Zeroizing<String>> =
            to.iter().map(|e| (e.name.as_str(), &e.value)).collect();
        let mut c = Self {
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            unchanged: Vec::new(),
        };
        for (name, new) in &to {
            match from.get(name) {
                None => c.added.push(Entry {
                    name: (*name).to_owned(),
                    value: (*new).clone(),
                }),
                Some(old) if old.as_str() == new.as_str() => c.unchanged.push((*name).to_owned()),
                Some(old) => c
                    .changed
                    .push(((*name).to_owned(), (*old).clone(), (*new).clone())),
            }
        }
        for (name, old) in &from {
            if !to.contains_key(name) {
                c.removed.push(Entry {
                    name: (*name).to_owned(),
                    value: (*old).clone(),
                });
            }
        }
        c
    }

    /// Whether nothing differs.
    pub(crate) fn equal(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// A value as shown: `****` unless `show`.
fn shown(value: &str, show: bool) -> String {
    if show {
        secrets::one_line_value(value)
    } else {
        "****".to_owned()
    }
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    compare(args, ctx)
        .await
        .map_err(crate::diagnostics::never_one)
}

async fn compare(args: Args, ctx: &Context) -> Result<ExitStatus> {
    if args.personal {
        return crate::personal::diff(ctx, &args).await;
    }
    let at = args.at.as_deref().map(parse_time).transpose()?;
    let b = ctx.backend_and_agent().await?;
    let t = ctx.target(&b).await?;
    let past_point = match (at, args.revision) {
        (Some((at_ms, label)), _) => Some((Past::Time(at_ms), label)),
        (None, Some(revision)) => Some((Past::Revision(revision), format!("r{revision}"))),
        (None, None) => None,
    };
    let (from_label, to_label, from, to) = if let Some((point, label)) = past_point {
        let opened = ctx.open_environment(&b, &t, Purpose::Read).await?;
        let now = secrets::decrypt_all(&opened.key, &t, &opened.secrets)?;
        let past = match point {
            Past::Time(at_ms) => values_at(&b, &t, &opened, at_ms).await?,
            Past::Revision(revision) => values_at_revision(&b, &t, &opened, revision).await?,
        };
        let (past, now) = if args.raw {
            (past, now)
        } else {
            (
                References::new(ctx, &b, &t, &past).all(&past).await?,
                References::new(ctx, &b, &t, &now).all(&now).await?,
            )
        };
        (format!("{}@{label}", address(&t)), address(&t), past, now)
    } else {
        let spec = args.other.as_deref().unwrap_or_default();
        let other = ctx.other_target(&b, &t.project, spec).await?;
        if other.env.id == t.env.id {
            return Err(Failure::usage(format!(
                "both sides are {}: there is nothing to compare",
                t.describe()
            ))
            .hint("pick the other side with `-e A`, or compare with the past with `--at TIME`")
            .into());
        }
        let from = read(ctx, &b, &t, args.raw).await?;
        let to = read(ctx, &b, &other, args.raw).await?;
        (address(&t), address(&other), from, to)
    };
    let c = Comparison::of(&from, &to);
    print(ctx, &args, &from_label, &to_label, &c)?;
    Ok(if c.equal() {
        ExitStatus::SUCCESS
    } else {
        ExitStatus::FAILURE
    })
}

/// `project/env`, as the output names a side.
pub(crate) fn address(t: &Target) -> String {
    format!("{}/{}", t.project.name, t.env.slug)
}

/// The environment's current values, verified, resolved unless `raw`.
pub(crate) async fn read(
    ctx: &Context,
    b: &AnyBackend,
    t: &Target,
    raw: bool,
) -> Result<Vec<Entry>> {
    let opened = ctx.open_environment(b, t, Purpose::Read).await?;
    let entries = secrets::decrypt_all(&opened.key, t, &opened.secrets)?;
    if raw {
        return Ok(entries);
    }
    References::new(ctx, b, t, &entries).all(&entries).await
}

/// Parses `--at`: RFC 3339 or Unix seconds; returns the last millisecond it covers (a time in
/// whole seconds covers that second) and the label to show.
fn parse_time(s: &str) -> Result<(i64, String)> {
    let bad = || {
        Failure::usage(format!("--at {s}: not a time"))
            .hint("give an RFC 3339 time such as 2026-12-05T13:00:00Z (as `klef history` prints it), or Unix seconds such as 1796475600")
    };
    let s = s.trim();
    let ms = if let Ok(secs) = s.parse::<i64>() {
        secs.checked_mul(1000)
            .and_then(|ms| ms.checked_add(999))
            .ok_or_else(bad)?
    } else {
        let t = humantime::parse_rfc3339_weak(s).map_err(|_| bad())?;
        let d = t.duration_since(std::time::UNIX_EPOCH).map_err(|_| bad())?;
        let ms = i64::try_from(d.as_millis()).map_err(|_| bad())?;
        if d.subsec_nanos() == 0 { ms + 999 } else { ms }
    };
    Ok((ms, table::time(ms)))
}

/// A point in an environment's past.
enum Past {
    /// Milliseconds since the epoch.
    Time(i64),
    /// A signed revision.
    Revision(u64),
}

/// The environment's values at signed revision `revision`: the names and versions its
/// manifest lists (proven by the chain up to the verified head, `Opened::past`), each value
/// checked against the hash that manifest signed before it is decrypted.
async fn values_at_revision(
    b: &AnyBackend,
    t: &Target,
    opened: &crate::signed::Opened<'_>,
    revision: u64,
) -> Result<Vec<Entry>> {
    let bodies = opened.past(b, t, revision).await?;
    let Some(body) = bodies.first() else {
        return Err(
            Failure::other(format!("{}: no signed revision {revision}", t.describe())).into(),
        );
    };
    if i64::try_from(body.key_version).ok() != Some(opened.key_version(t)) {
        return Err(Failure::other(format!(
            "{}: revision {revision} is sealed under key version {}, which was rotated away since; klef cannot read it",
            t.describe(),
            body.key_version
        ))
        .hint("pick a revision after the last key rotation (`klef history` lists them)")
        .into());
    }
    let altered = |name: &str, what: &str| -> anyhow::Error {
        Failure::other(format!(
            "{}: version of {name} at revision {revision} {what}: the server altered or withheld it",
            t.describe()
        ))
        .into()
    };
    let mut out = Vec::with_capacity(body.values.len());
    for (name, listed) in &body.values {
        let history = b.secret_history(&t.env.id, name).await?;
        opened.check_history(t, name, &history)?;
        let sv = history
            .iter()
            .find(|h| u64::try_from(h.version).ok() == Some(listed.version))
            .ok_or_else(|| altered(name, "is missing from its history"))?;
        let ciphertext = sv
            .ciphertext
            .as_ref()
            .ok_or_else(|| altered(name, "is served as a delete"))?;
        if ValueRef::new(listed.version, ciphertext.as_bytes()) != *listed {
            return Err(altered(name, "does not match the signed state"));
        }
        out.push(Entry {
            name: name.clone(),
            value: secrets::decrypt(&opened.key, t, sv)?,
        });
    }
    Ok(out)
}

/// The environment's values as of `at` (milliseconds): for each name it ever had, its latest
/// version created at or before `at`, unless that is a delete. Each name's history is checked
/// against the verified state as `klef history` checks it.
async fn values_at(
    b: &AnyBackend,
    t: &Target,
    opened: &crate::signed::Opened<'_>,
    at: i64,
) -> Result<Vec<Entry>> {
    let mut names: Vec<&str> = opened.secrets.iter().map(|s| s.name.as_str()).collect();
    names.extend(opened.deleted_names());
    names.sort_unstable();
    names.dedup();
    let key_version = opened.key_version(t);
    let mut out = Vec::new();
    for name in names {
        let history = b.secret_history(&t.env.id, name).await?;
        opened.check_history(t, name, &history)?;
        let Some(sv) = history
            .iter()
            .filter(|s| s.created_at <= at)
            .max_by_key(|s| s.version)
        else {
            continue;
        };
        if sv.ciphertext.is_none() {
            continue;
        }
        if sv.key_version != key_version {
            return Err(Failure::other(format!(
                "{name}: version {} (the value at {}) is sealed under key version {}, which was rotated away since; klef cannot read it",
                sv.version,
                table::time(at),
                sv.key_version
            ))
            .hint("pick a time after the last key rotation (`klef history NAME` shows the versions)")
            .into());
        }
        out.push(Entry {
            name: name.to_owned(),
            value: secrets::decrypt(&opened.key, t, sv)?,
        });
    }
    Ok(out)
}

pub(crate) fn print(
    ctx: &Context,
    args: &Args,
    from: &str,
    to: &str,
    c: &Comparison,
) -> Result<()> {
    if ctx.global.json {
        let with_value = |e: &Entry| {
            if args.show {
                json!({"name": e.name, "value": e.value.as_str()})
            } else {
                json!({"name": e.name})
            }
        };
        let changed: Vec<Value> = c
            .changed
            .iter()
            .map(|(name, old, new)| {
                if args.show {
                    json!({"name": name, "from": old.as_str(), "to": new.as_str()})
                } else {
                    json!({"name": name})
                }
            })
            .collect();
        let mut out = json!({
            "from": from, "to": to,
            "added": c.added.iter().map(with_value).collect::<Vec<_>>(),
            "removed": c.removed.iter().map(with_value).collect::<Vec<_>>(),
            "changed": changed,
            "unchanged": c.unchanged.len(),
            "equal": c.equal(),
        });
        if args.all {
            out["unchanged_names"] = json!(c.unchanged);
        }
        ctx.printer.json(&out)?;
    } else {
        let mut lines = Zeroizing::new(String::new());
        let mut rows: Vec<(&str, String)> = Vec::new();
        for e in &c.added {
            rows.push((
                &e.name,
                format!("+ {} = {}", e.name, shown(&e.value, args.show)),
            ));
        }
        for e in &c.removed {
            rows.push((
                &e.name,
                format!("- {} = {}", e.name, shown(&e.value, args.show)),
            ));
        }
        for (name, old, new) in &c.changed {
            let line = if args.show {
                format!("~ {name}: {} → {}", shown(old, true), shown(new, true))
            } else {
                format!("~ {name}")
            };
            rows.push((name, line));
        }
        if args.all {
            for name in &c.unchanged {
                rows.push((name, format!("  {name}")));
            }
        }
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for (_, line) in rows {
            lines.push_str(&line);
            lines.push('\n');
        }
        ctx.printer.data(&lines)?;
    }
    ctx.printer.info(&if c.equal() {
        format!(
            "{from} and {to} are equal ({})",
            crate::confirm::count(c.unchanged.len(), "value", "values")
        )
    } else {
        format!(
            "{from} → {to}: {} added, {} removed, {} changed, {} unchanged",
            c.added.len(),
            c.removed.len(),
            c.changed.len(),
            c.unchanged.len()
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::secrets::entries;

    #[test]
    fn compares_by_name() {
        let c = Comparison::of(
            &entries(&[("A", "1"), ("B", "2"), ("C", "3")]),
            &entries(&[("B", "2"), ("C", "x"), ("D", "4")]),
        );
        assert_eq!(c.added[0].name, "D");
        assert_eq!(c.removed[0].name, "A");
        assert_eq!(c.changed[0].0, "C");
        assert_eq!(c.unchanged, ["B"]);
        assert!(!c.equal());
        assert!(Comparison::of(&entries(&[("A", "1")]), &entries(&[("A", "1")])).equal());
    }

    #[test]
    fn times_cover_their_second() {
        assert_eq!(parse_time("10").unwrap().0, 10_999);
        assert_eq!(parse_time("1970-01-01T00:00:10Z").unwrap().0, 10_999);
        assert_eq!(parse_time("1970-01-01T00:00:10.5Z").unwrap().0, 10_500);
        let err = parse_time("yesterday").unwrap_err();
        assert_eq!(crate::diagnostics::exit_status(&err), ExitStatus::USAGE);
    }
}
