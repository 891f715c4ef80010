//! `klef list [--reveal]`: names, versions and last update (values only with `--reveal`),
//! checked against the environment's signed state whenever the keys are at hand without asking.
//!
//! JSON: `[{"name", "version", "updated_at", "author", "value"?}]`, sorted by name.

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
    if ctx.global.json {
        let v: Vec<_> = current
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut o = json!({"name": s.name, "version": s.version, "updated_at": table::time(s.created_at), "author": s.author});
                if let Some(vals) = &values {
                    o["value"] = json!(vals[i].as_str());
                }
                o
            })
            .collect();
        ctx.printer.json(&v)?;
    } else {
        let mut header = vec!["NAME", "VERSION", "UPDATED"];
        if values.is_some() {
            header.push("VALUE");
        }
        let rows: Vec<Vec<String>> = current
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut row = vec![
                    s.name.clone(),
                    s.version.to_string(),
                    table::time(s.created_at),
                ];
                if let Some(vals) = &values {
                    row.push(secrets::one_line_value(&vals[i]));
                }
                row
            })
            .collect();
        ctx.printer.data(&table::render(&header, &rows))?;
        if current.is_empty() {
            ctx.printer.hint(&format!(
                "{} has no secrets yet; `klef set KEY VALUE` adds one",
                t.describe()
            ));
        }
    }
    Ok(ExitStatus::SUCCESS)
}
