//! `klef list [--reveal]`: names, versions and last update (values only with `--reveal`),
//! checked against the environment's signed state whenever the keys are at hand without asking.
//!
//! JSON: `[{"name", "version", "updated_at", "author", "value"?, "personal"?}]`, sorted by name.
//! With the keys at hand, this member's personal overrides (`crate::personal`) are marked:
//! a `PERSONAL` column (`overridden`, `yours only`) and `"personal": true`; `--reveal` shows the
//! value this member sees; names only they have are listed with no version.

use anyhow::Result;
use klef_core::backend::Backend as _;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::signed::Purpose;
use crate::{secrets, table};

/// List the environment's secrets
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Also show the values (asks for the password)
    #[arg(long)]
    pub(crate) reveal: bool,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend_and_agent().await?;
    // The names are checked against the environment's signed state (a server could otherwise
    // drop or add one unseen) whenever the keys can be had without asking: verifying needs
    // them. Names alone need no password, so without keys they are listed as stored, and said
    // to be unverified.
    let verify = args.reveal || crate::signed::keys_at_hand(ctx, &b).await?;
    let (t, opened) = if verify {
        let current = crate::snapshot::current(ctx, &b, Purpose::Read).await?;
        (current.target.clone(), Some(current))
    } else {
        (ctx.target(&b).await?, None)
    };
    let stored = if opened.is_some() {
        Vec::new()
    } else {
        ctx.printer.info(&format!(
            "note: the names of {} are listed as stored, not verified against its signed state (unlock to verify: `klef unlock`)",
            t.describe()
        ));
        b.secrets(&t.env.id).await?
    };
    let mut current: Vec<_> = opened
        .as_ref()
        .map_or(&stored, |o| &o.secrets)
        .iter()
        .filter(|s| s.ciphertext.is_some())
        .collect();
    current.sort_by(|a, c| a.name.cmp(&c.name));
    let values = match (&opened, args.reveal) {
        (Some(o), true) => Some(
            current
                .iter()
                .map(|sv| secrets::decrypt(&o.key, &t, sv))
                .collect::<Result<Vec<_>>>()?,
        ),
        _ => None,
    };
    // This member's personal overrides (only when the environment was opened: they are
    // sealed): overridden names are marked, names only they have are listed too.
    let names: Vec<&str> = current.iter().map(|s| s.name.as_str()).collect();
    let personal = crate::personal::marks(opened.as_ref(), &names);
    let mark = |i: usize| personal.as_ref().map(|(m, _)| m[i]);
    let shown = |i: usize| -> &str {
        match (&values, &opened) {
            (Some(vals), Some(o)) if mark(i) == Some(crate::personal::Mark::Overridden) => o
                .personal
                .as_ref()
                .and_then(|p| p.overrides.get(&current[i].name))
                .map_or(vals[i].as_str(), |v| v.as_str()),
            (Some(vals), _) => vals[i].as_str(),
            _ => "",
        }
    };
    let only = personal.as_ref().map_or(&[][..], |(_, o)| o.as_slice());
    if ctx.global.json {
        let mut v: Vec<_> = current
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut o = json!({"name": s.name, "version": s.version, "updated_at": table::time(s.created_at), "author": s.author});
                if values.is_some() {
                    o["value"] = json!(shown(i));
                }
                if mark(i) == Some(crate::personal::Mark::Overridden) {
                    o["personal"] = json!(true);
                }
                o
            })
            .collect();
        for (name, value) in only {
            let mut o = json!({"name": name, "version": null, "updated_at": null, "author": null, "personal": true});
            if values.is_some() {
                o["value"] = json!(value.as_str());
            }
            v.push(o);
        }
        v.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        ctx.printer.json(&v)?;
    } else {
        let mut header = vec!["NAME", "VERSION", "UPDATED"];
        if values.is_some() {
            header.push("VALUE");
        }
        if personal.is_some() {
            header.push("PERSONAL");
        }
        let mut rows: Vec<Vec<String>> = current
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut row = vec![
                    s.name.clone(),
                    s.version.to_string(),
                    table::time(s.created_at),
                ];
                if values.is_some() {
                    row.push(secrets::one_line_value(shown(i)));
                }
                if let Some(m) = mark(i) {
                    row.push(m.column().to_owned());
                }
                row
            })
            .collect();
        for (name, value) in only {
            let mut row = vec![(*name).to_owned(), "-".to_owned(), "-".to_owned()];
            if values.is_some() {
                row.push(secrets::one_line_value(value));
            }
            row.push(crate::personal::Mark::Only.column().to_owned());
            rows.push(row);
        }
        rows.sort_by(|a, b| a[0].cmp(&b[0]));
        ctx.printer.data(&table::render(&header, &rows))?;
        if rows.is_empty() {
            ctx.printer.hint(&format!(
                "{} has no secrets yet; `klef set KEY VALUE` adds one",
                t.describe()
            ));
        }
    }
    Ok(ExitStatus::SUCCESS)
}
