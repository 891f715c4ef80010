//! Personal overrides (issue #19 item 4): a member's own values for some names of a shared
//! environment, sealed so that only they can read them (`klef_core::trust::personal`), layered
//! over the shared values in what they read, and invisible to teammates and system keys.
//!
//! * `klef set --personal KEY VALUE` (the forms of `klef set`) and `klef unset --personal KEY`
//!   replace this account's one sealed record of the environment: no manifest is signed and no
//!   shared value is touched.
//! * Every read of values goes through `crate::signed::open`, which opens the record served
//!   with the environment's state (refusing one older than this account has seen) and
//!   [`remember`]s it; [`layer`] is the one place the overrides are put over the decrypted
//!   shared values, called by `get`, `run`, `pull` (every output format), `inject`, and by
//!   references (`${KEY}` resolves to this member's value, in this environment and in the
//!   environments references read).
//! * `klef list` marks overridden names and lists names only this member has; `klef diff
//!   --personal` compares the shared environment with what this member sees.
//!
//! A system key (`KLEF_TOKEN`) has no overrides: its reads are the shared values, and
//! `--personal` is an error.

use std::collections::HashMap;

use anyhow::Result;
use klef_core::dotenv::Entry;
use klef_core::ids::EnvironmentId;
use klef_core::trust::personal::Overrides;
use serde_json::json;
use zeroize::Zeroizing;

use crate::context::{Context, Target};
use crate::diagnostics::{ExitStatus, Failure};
use crate::references::References;
use crate::secrets;
use crate::signed::{Opened, Purpose};

/// This account's overrides of one environment, as opened, with the revision of the record.
#[derive(Debug, Default, Clone)]
pub(crate) struct Personal {
    /// The record's revision (0: none yet); for a record set aside by `unset --personal --all`,
    /// the highest revision this account has seen.
    pub(crate) revision: u64,
    /// The revision stored now (a write swaps it).
    pub(crate) stored: u64,
    /// The overrides.
    pub(crate) overrides: Overrides,
    /// The stored record was missing, older than seen or unreadable, and set aside.
    pub(crate) lost: bool,
}

/// The overrides of every environment a command opened, by environment (the context keeps
/// them, so [`layer`] finds them wherever the values were read), whether this command starts
/// them again (`klef unset --personal --all`), and whether it shows values as this member sees
/// them (it called [`layer`]: references to other environments are then layered too).
#[derive(Debug, Default)]
pub(crate) struct Remembered(
    std::sync::Mutex<HashMap<EnvironmentId, Overrides>>,
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicBool,
);

/// Whether this command starts this account's overrides again, setting aside a record that is
/// lost (`klef unset --personal --all`).
pub(crate) fn starting_over(ctx: &Context) -> bool {
    ctx.personal.1.load(std::sync::atomic::Ordering::Relaxed)
}

/// Keeps the overrides `crate::signed::open` opened for `t`'s environment for [`layer`]
/// (`None`: a system key, which has none).
pub(crate) fn remember(ctx: &Context, t: &Target, personal: Option<&Personal>) {
    let mut map = ctx
        .personal
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match personal {
        Some(p) if !p.overrides.is_empty() => {
            map.insert(t.env.id, p.overrides.clone());
        }
        _ => {
            map.remove(&t.env.id);
        }
    }
}

/// The values this member sees in `t`'s environment: the decrypted shared `entries` with this
/// account's overrides (opened by `crate::signed::open` in this command) put over them, and
/// the names only this member has added; sorted by name. The one place overrides are layered.
///
/// Calling it marks the command as one that shows values as this member sees them, so the
/// environments its references read are layered too ([`layer_referenced`]); commands that
/// write shared values (`promote`, `push`) or compare shared ones (`diff A B`) never call it,
/// so no personal value reaches them through a reference either.
pub(crate) fn layer(ctx: &Context, t: &Target, entries: Vec<Entry>) -> Vec<Entry> {
    ctx.personal
        .2
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let map = ctx
        .personal
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    apply(map.get(&t.env.id), entries)
}

/// The values of an environment a reference reads (`crate::references`): layered as [`layer`]
/// does when this command shows values as this member sees them, else the shared values.
pub(crate) fn layer_referenced(ctx: &Context, t: &Target, entries: Vec<Entry>) -> Vec<Entry> {
    if ctx.personal.2.load(std::sync::atomic::Ordering::Relaxed) {
        layer(ctx, t, entries)
    } else {
        entries
    }
}

/// `overrides` over `entries`, sorted by name.
fn apply(overrides: Option<&Overrides>, mut entries: Vec<Entry>) -> Vec<Entry> {
    let Some(overrides) = overrides else {
        return entries;
    };
    for (name, value) in overrides.iter() {
        match entries.iter_mut().find(|e| e.name == name) {
            Some(e) => e.value.clone_from(value),
            None => entries.push(Entry {
                name: name.to_owned(),
                value: value.clone(),
            }),
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

/// The names this member overrides (or has alone) in `t`'s environment, as opened in this
/// command: `klef pull` counts them as the environment's when it checks the file it replaces.
pub(crate) fn names(ctx: &Context, t: &Target) -> Vec<String> {
    let map = ctx
        .personal
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.get(&t.env.id)
        .map(|o| o.iter().map(|(n, _)| n.to_owned()).collect())
        .unwrap_or_default()
}

/// For `klef push`: a file written by `klef pull` holds this member's personal values, which
/// must never become shared ones. A name whose value in the file is this member's override is
/// left as the environment has it (unchanged when shared, not added when only theirs); the
/// names are listed in a warning. A value edited in the file (no longer the override) is
/// pushed as usual.
pub(crate) fn keep_out_of_push(
    ctx: &Context,
    t: &Target,
    opened: &Opened<'_>,
    wanted: &mut std::collections::BTreeMap<String, Zeroizing<String>>,
) -> Result<()> {
    let Some(personal) = &opened.personal else {
        return Ok(());
    };
    let mut kept = Vec::new();
    for (name, mine) in personal.overrides.iter() {
        if wanted.get(name).is_none_or(|v| v.as_str() != mine.as_str()) {
            continue;
        }
        match opened
            .secrets
            .iter()
            .find(|s| s.name == name && s.ciphertext.is_some())
        {
            Some(sv) => {
                wanted.insert(name.to_owned(), secrets::decrypt(&opened.key, t, sv)?);
            }
            None => {
                wanted.remove(name);
            }
        }
        kept.push(name);
    }
    if !kept.is_empty() {
        ctx.printer.warn(&format!(
            "not pushed: {} (your personal values; `klef set NAME` shares a value)",
            kept.join(", ")
        ));
    }
    Ok(())
}

/// A system key asked for personal overrides.
pub(crate) fn not_for_system_keys() -> anyhow::Error {
    Failure::usage(
        "personal overrides belong to members: KLEF_TOKEN holds a system key, which has none",
    )
    .hint("unset KLEF_TOKEN and sign in as yourself (`klef login`) to keep personal values")
    .into()
}

/// Refuses `--personal` under a system key, before anything is read.
fn members_only() -> Result<()> {
    if crate::commands::keys::ci::system_token()?.is_some() {
        return Err(not_for_system_keys());
    }
    Ok(())
}

/// `klef set --personal`: `pairs` as `klef set` parsed and checked them (`None`: read the
/// value with `read_value`, as `klef set` does).
pub(crate) async fn set(
    ctx: &Context,
    pairs: Vec<(String, Option<Zeroizing<String>>)>,
    read_value: fn(&str) -> Result<Zeroizing<String>>,
) -> Result<ExitStatus> {
    members_only()?;
    let b = ctx.backend().await?;
    let t = ctx.target(&b).await?;
    let mut opened = ctx.open_environment(&b, &t, Purpose::Read).await?;
    let mut overrides = opened
        .personal
        .as_ref()
        .map(|p| p.overrides.clone())
        .unwrap_or_default();
    let mut names = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        let value = match value {
            Some(v) => v,
            None => read_value(&name)?,
        };
        if secrets::check_value(&name, &value)? == secrets::ValueFit::TooLongForRun {
            ctx.printer
                .warn(&crate::env_policy::too_long_warning(&name, &value));
        }
        overrides.set(&name, value)?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let revision = opened.write_personal(&b, &t, &overrides).await?;
    remember(ctx, &t, opened.personal.as_ref());
    if ctx.global.json {
        ctx.printer.json(&json!({
            "personal": names, "revision": revision,
        }))?;
    }
    ctx.printer.info(&format!(
        "set {} for you alone in {} (personal overrides; the shared values are unchanged)",
        names.join(", "),
        t.describe()
    ));
    Ok(ExitStatus::SUCCESS)
}

/// `klef unset --personal KEY…`: every key must be overridden, or nothing changes. With `all`
/// (`--all`), every override goes, and a record that was lost (missing, older than seen or
/// unreadable: a restored backup, or a server withholding it) is set aside: this account
/// starts again, empty, above every revision it has seen.
pub(crate) async fn unset(ctx: &Context, keys: &[String], all: bool) -> Result<ExitStatus> {
    members_only()?;
    let b = ctx.backend().await?;
    let t = ctx.target(&b).await?;
    if all {
        ctx.personal
            .1
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let mut opened = ctx.open_environment(&b, &t, Purpose::Read).await?;
    if all {
        let (count, lost) = opened
            .personal
            .as_ref()
            .map_or((0, false), |p| (p.overrides.len(), p.lost));
        let revision = opened.write_personal(&b, &t, &Overrides::new()).await?;
        remember(ctx, &t, None);
        if ctx.global.json {
            ctx.printer.json(&json!({
                "removed": count, "revision": revision, "started_over": lost,
            }))?;
        }
        ctx.printer.info(&if lost {
            format!(
                "started your personal overrides of {} again, empty: the stored copy was missing, older than this account had seen, or unreadable",
                t.describe()
            )
        } else {
            format!(
                "removed your {} of {}; you see the shared values again",
                crate::confirm::count(count, "personal override", "personal overrides"),
                t.describe()
            )
        });
        return Ok(ExitStatus::SUCCESS);
    }
    let mut overrides = opened
        .personal
        .as_ref()
        .map(|p| p.overrides.clone())
        .unwrap_or_default();
    let mut names: Vec<&str> = Vec::with_capacity(keys.len());
    for k in keys {
        if names.contains(&k.as_str()) {
            continue;
        }
        if !overrides.remove(k) {
            return Err(Failure::not_found(format!(
                "{k} has no personal override in {}",
                t.describe()
            ))
            .hint("nothing was changed; `klef list` marks your personal overrides")
            .into());
        }
        names.push(k);
    }
    let revision = opened.write_personal(&b, &t, &overrides).await?;
    remember(ctx, &t, opened.personal.as_ref());
    if ctx.global.json {
        ctx.printer.json(&json!({
            "removed": names, "revision": revision,
        }))?;
    }
    ctx.printer.info(&format!(
        "removed your personal override{} of {} in {}; you see the shared value{} again",
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        t.describe(),
        if names.len() == 1 { "" } else { "s" },
    ));
    Ok(ExitStatus::SUCCESS)
}

/// `klef get` of a name this member overrides (or has alone): prints it as `klef get` prints
/// values and returns `Some`; `None` when the name is not overridden (the shared value is
/// read as usual).
pub(crate) async fn get(
    ctx: &Context,
    b: &crate::backend::AnyBackend,
    t: &Target,
    opened: &crate::snapshot::Current,
    args: &crate::commands::get::Args,
) -> Result<Option<ExitStatus>> {
    let Some(personal) = &opened.personal else {
        return Ok(None);
    };
    let Some(value) = personal.overrides.get(&args.key) else {
        return Ok(None);
    };
    let mut value = value.clone();
    if !args.raw && klef_core::refs::has_references(&value) {
        let shared = secrets::decrypt_all(&opened.key, t, &opened.secrets)?;
        let entries = layer(ctx, t, shared);
        value = References::new(ctx, b, t, &entries).key(&args.key).await?;
    }
    if ctx.global.json {
        ctx.printer.json(&json!({
            "name": args.key, "value": value.as_str(), "version": null, "updated_at": null,
            "personal": true, "revision": personal.revision,
        }))?;
    } else if args.plain {
        ctx.printer.data(&value)?;
    } else {
        let mut line = Zeroizing::new(String::with_capacity(value.len() + 1));
        line.push_str(&value);
        line.push('\n');
        ctx.printer.data(&line)?;
    }
    Ok(Some(ExitStatus::SUCCESS))
}

/// How `klef list` shows a name with respect to this member's overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// A shared name without an override.
    Shared,
    /// A shared name this member overrides.
    Overridden,
    /// A name only this member has.
    Only,
}

impl Mark {
    /// The `PERSONAL` column of `klef list`.
    pub(crate) fn column(self) -> &'static str {
        match self {
            Mark::Shared => "",
            Mark::Overridden => "overridden",
            Mark::Only => "yours only",
        }
    }
}

/// Names only this member has, with their values (for `klef list`).
pub(crate) type Only<'o> = Vec<(&'o str, &'o Zeroizing<String>)>;

/// For `klef list`: the mark of each shared name (in the order given), then the names only
/// this member has with their values, sorted; `None` when the environment was not opened (no
/// keys at hand: the overrides are sealed) or the caller has no overrides.
pub(crate) fn marks<'o>(
    opened: Option<&'o crate::snapshot::Current>,
    shared: &[&str],
) -> Option<(Vec<Mark>, Only<'o>)> {
    let overrides = &opened?.personal.as_ref()?.overrides;
    if overrides.is_empty() {
        return None;
    }
    let marks = shared
        .iter()
        .map(|n| {
            if overrides.get(n).is_some() {
                Mark::Overridden
            } else {
                Mark::Shared
            }
        })
        .collect();
    let only = overrides
        .iter()
        .filter(|(n, _)| !shared.contains(n))
        .collect();
    Some((marks, only))
}

/// `klef diff --personal`: the shared environment ("from") against what this member sees
/// ("to"), with references resolved unless `--raw`; masked unless `--show`; exit 0 when this
/// member sees the shared values, 1 otherwise.
pub(crate) async fn diff(ctx: &Context, args: &crate::commands::diff::Args) -> Result<ExitStatus> {
    members_only()?;
    let b = ctx.backend_and_agent().await?;
    let t = ctx.target(&b).await?;
    let opened = ctx.open_environment(&b, &t, Purpose::Read).await?;
    let shared = secrets::decrypt_all(&opened.key, &t, &opened.secrets)?;
    drop(opened);
    let mine = layer(ctx, &t, shared.clone());
    let (shared, mine) = if args.raw {
        (shared, mine)
    } else {
        // The shared side resolves without this member's overrides, the other with them.
        let resolved_mine = References::new(ctx, &b, &t, &mine).all(&mine).await?;
        remember(ctx, &t, None);
        let resolved_shared = References::new(ctx, &b, &t, &shared).all(&shared).await?;
        (resolved_shared, resolved_mine)
    };
    let from = crate::commands::diff::address(&t);
    let to = format!("{from} (personal)");
    let c = crate::commands::diff::Comparison::of(&shared, &mine);
    crate::commands::diff::print(ctx, args, &from, &to, &c)?;
    Ok(if c.equal() {
        ExitStatus::SUCCESS
    } else {
        ExitStatus::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::secrets::entries;

    #[test]
    fn overrides_win_and_names_only_personal_are_added_in_order() {
        let mut o = Overrides::new();
        o.set("B", Zeroizing::new("mine".into())).unwrap();
        o.set("AA", Zeroizing::new("only mine".into())).unwrap();
        let layered = apply(Some(&o), entries(&[("A", "1"), ("B", "2"), ("C", "3")]));
        let got: Vec<(&str, &str)> = layered
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [("A", "1"), ("AA", "only mine"), ("B", "mine"), ("C", "3")]
        );
        assert_eq!(apply(None, entries(&[("B", "2")]))[0].value.as_str(), "2");
    }
}
