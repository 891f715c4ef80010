//! Confirmation of destructive commands (`klef env delete`, `klef projects delete`, `klef
//! workspace delete`): the command says what will be lost, then asks `[y/N]` on the terminal.
//! `--yes` skips the question; without a terminal and without `--yes` the command refuses, so
//! a script never deletes by accident.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, Result};

use crate::context::Context;
use crate::diagnostics::Failure;

/// Prints `what` (what will be lost) and asks `question` (`delete it?`), unless `yes` (the
/// command then names what it deleted when it is done). A refusal or a missing terminal is an
/// error that names `what`; nothing has been done.
pub(crate) fn confirm(ctx: &Context, what: &str, question: &str, yes: bool) -> Result<()> {
    confirm_or(ctx, what, question, yes, "cancelled; nothing was deleted")
}

/// [`confirm`] with the message of a "no" (`cancelled`).
pub(crate) fn confirm_or(
    ctx: &Context,
    what: &str,
    question: &str,
    yes: bool,
    cancelled: &str,
) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(
            Failure::usage(format!("{what}; refusing without a confirmation"))
                .hint("run it at a terminal to be asked, or pass --yes to confirm")
                .into(),
        );
    }
    ctx.printer.always(what);
    if ask_yes_no(question)? {
        Ok(())
    } else {
        Err(Failure::other(cancelled.to_owned()).into())
    }
}

/// Asks `question` `[y/N]` on the terminal; whether the answer is yes. The caller checked that
/// stdin is a terminal.
pub(crate) fn ask_yes_no(question: &str) -> Result<bool> {
    let mut err = std::io::stderr();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the answer")?;
    Ok(matches!(
        line.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// `1 secret`, `2 secrets`.
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
