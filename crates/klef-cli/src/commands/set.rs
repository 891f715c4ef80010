//! `klef set`: three forms.
//!
//! * `klef set KEY VALUE`
//! * `klef set KEY=VALUE [KEY=VALUE…]`
//! * `klef set KEY` reads the value from stdin, so it stays out of shell history and `ps`.
//!   Piped input is taken byte for byte (`klef get --plain A | klef set B` copies exactly);
//!   on a terminal the value is asked with a hidden prompt, twice.
//!
//! All writes go in one transaction. With `--password-stdin`, the first line of stdin is the
//! password and the rest is the value.

use std::io::{IsTerminal as _, Read as _};

use anyhow::{Context as _, Result};
use klef_core::model::SecretWrite;
use klef_core::names::MAX_VALUE_LEN;
use serde_json::json;
use zeroize::Zeroizing;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::secrets;
use crate::signed::Purpose;

/// Set one or more secrets
///
/// Forms: `klef set KEY VALUE`, `klef set KEY=VALUE [KEY=VALUE…]`, or `klef set KEY` to read
/// the value from stdin (piped input is stored byte for byte; on a terminal it is asked with a
/// hidden prompt, twice). Names match `[A-Za-z_][A-Za-z0-9_]*`; values are UTF-8, up to 1 MiB.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// `KEY VALUE`, `KEY=VALUE…`, or `KEY` alone to read the value from stdin
    #[arg(required = true, value_name = "KEY[=VALUE]")]
    pub(crate) args: Vec<String>,

    /// Keep the values for you alone (personal overrides): sealed so only you can read them,
    /// used instead of the shared values in what you read; the shared values stay unchanged
    #[arg(long)]
    pub(crate) personal: bool,
}

/// A parsed request: names with their values (`None` = read from stdin).
type Pairs = Vec<(String, Option<Zeroizing<String>>)>;

fn parse(args: Vec<String>) -> Result<Pairs> {
    let mut args = args.into_iter().map(Zeroizing::new).collect::<Vec<_>>();
    let first_has_eq = args.first().is_some_and(|a| a.contains('='));
    if first_has_eq {
        let mut out = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            let Some((k, v)) = a.split_once('=') else {
                // A bare word may be a value typed by mistake: name it only if it is a name.
                let what = if klef_core::names::validate_key_name(a).is_ok() {
                    format!("got the bare name {}", a.as_str())
                } else {
                    format!("argument {} is not KEY=VALUE", i + 1)
                };
                return Err(Failure::usage(format!("expected KEY=VALUE, {what}"))
                    .hint("mix no forms: use `klef set KEY=VALUE…`, or `klef set KEY VALUE`; `klef set KEY` alone reads the value from stdin")
                    .into());
            };
            out.push((k.to_owned(), Some(Zeroizing::new(v.to_owned()))));
        }
        return Ok(out);
    }
    match args.len() {
        1 => Ok(vec![(args.remove(0).to_string(), None)]),
        2 => {
            let value = Zeroizing::new(std::mem::take(&mut *args[1]));
            Ok(vec![(args[0].to_string(), Some(value))])
        }
        _ => Err(Failure::usage("too many arguments for `klef set KEY VALUE`")
            .hint("set several keys with `klef set KEY=VALUE KEY2=VALUE2`; quote values that contain spaces")
            .into()),
    }
}

/// Reads the value from stdin (at most 1 MiB): on a terminal from a hidden prompt, asked twice;
/// piped, byte for byte.
fn read_stdin_value(name: &str) -> Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return crate::password::prompt_value_twice(name);
    }
    let mut buf = Zeroizing::new(Vec::new());
    stdin
        .lock()
        .take(MAX_VALUE_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("failed to read the value of {name} from stdin"))?;
    if buf.len() > MAX_VALUE_LEN {
        return Err(
            Failure::usage(format!("the value of {name} on stdin is larger than 1 MiB")).into(),
        );
    }
    let text = std::str::from_utf8(&buf)
        .map_err(|_| Failure::usage(format!("the value of {name} on stdin is not valid UTF-8")))?;
    Ok(Zeroizing::new(text.to_owned()))
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let personal = args.personal;
    let pairs = parse(args.args)?;
    for (name, value) in &pairs {
        secrets::check_name(name)?;
        if let Some(v) = value {
            secrets::check_value(name, v)?;
        }
    }
    if personal {
        return crate::personal::set(ctx, pairs, read_stdin_value).await;
    }
    let b = ctx.backend().await?;
    let t = ctx.target(&b).await?;
    let mut opened = ctx.open_environment(&b, &t, Purpose::Write).await?;
    let key = &opened.key;

    // Later duplicates win, as in a .env file.
    let mut writes: Vec<SecretWrite> = Vec::with_capacity(pairs.len());
    let mut warnings = Vec::new();
    for (name, value) in pairs {
        let value = match value {
            Some(v) => v,
            None => read_stdin_value(&name)?,
        };
        if secrets::check_value(&name, &value)? == secrets::ValueFit::TooLongForRun {
            warnings.push(crate::env_policy::too_long_warning(&name, &value));
        }
        if let Some(warning) = reference_warning(&name, &value) {
            warnings.push(warning);
        }
        writes.retain(|w| w.name != name);
        let ciphertext = secrets::encrypt(key, &t, &name, &value, opened.next_place(&t, &name));
        writes.push(SecretWrite {
            name,
            expected_version: None,
            ciphertext: Some(ciphertext),
        });
    }
    let written = opened
        .write(ctx, &b, &t, &mut writes)
        .await
        .with_context(|| format!("failed to write to {}", t.describe()))?;
    if ctx.global.json {
        let v: Vec<_> = written
            .iter()
            .map(|s| json!({"name": s.name, "version": s.version}))
            .collect();
        ctx.printer.json(&v)?;
    }
    let names: Vec<&str> = writes.iter().map(|w| w.name.as_str()).collect();
    ctx.printer
        .info(&format!("set {} in {}", names.join(", "), t.describe()));
    for warning in &warnings {
        ctx.printer.warn(warning);
    }
    Ok(ExitStatus::SUCCESS)
}

/// A value with a `${` that is no reference is stored as given (some values are templates of
/// their own), but every read that resolves references would refuse it: say so now, naming
/// the problem, not the value.
fn reference_warning(name: &str, value: &str) -> Option<String> {
    if !klef_core::refs::has_references(value) {
        return None;
    }
    let err = klef_core::refs::parse(value).err()?;
    Some(format!(
        "{name} holds an invalid reference ({err}): `klef get`, `run` and `pull` will refuse it; write `$${{` for a literal `${{` (`--raw` reads the stored text)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &Pairs) -> Vec<(&str, Option<&str>)> {
        p.iter()
            .map(|(k, v)| (k.as_str(), v.as_ref().map(|v| v.as_str())))
            .collect()
    }

    #[test]
    fn the_three_forms() {
        let p = parse(vec!["K".into(), "a=b".into()]).unwrap();
        assert_eq!(names(&p), vec![("K", Some("a=b"))]);
        let p = parse(vec!["A=1".into(), "B=x=y".into(), "C=".into()]).unwrap();
        assert_eq!(
            names(&p),
            vec![("A", Some("1")), ("B", Some("x=y")), ("C", Some(""))]
        );
        let p = parse(vec!["K".into()]).unwrap();
        assert_eq!(names(&p), vec![("K", None)]);
        assert!(parse(vec!["A=1".into(), "B".into()]).is_err());
        assert!(parse(vec!["A".into(), "1".into(), "2".into()]).is_err());
    }

    #[test]
    fn only_a_broken_reference_is_warned_about() {
        assert_eq!(reference_warning("K", "plain"), None);
        assert_eq!(reference_warning("K", "${OTHER}"), None);
        assert_eq!(reference_warning("K", "$${literal"), None);
        let w = reference_warning("K", "pre ${secret-text").expect("a warning");
        assert!(w.starts_with("K holds an invalid reference"), "{w}");
        assert!(!w.contains("secret-text"), "{w}");
    }
}
