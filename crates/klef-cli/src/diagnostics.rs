//! Exit codes and error rendering, in one place (CLI.md, STYLE.md rules 15–16).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other error |
//! | 2 | usage error (bad flags or arguments, invalid names) |
//! | 3 | authentication: wrong password, locked with no way to ask, invalid key |
//! | 4 | permission denied |
//! | 5 | not found: project, environment, key |
//! | 6 | server unreachable |
//! | 7 | conflict: a stale write |
//! | 126 | `klef run`: the command exists but cannot be executed |
//! | 127 | `klef run`: the command does not exist |
//!
//! `klef run` otherwise exits with its child's code (128+N when the child died of signal N).
//!
//! Errors are rendered as `error: <top>`, one `caused by: <source>` line per cause, then the
//! `hint: …` lines gathered from every [`Failure`] in the chain and from known typed errors.
//! Every line is a single line: embedded newlines are folded into spaces.

use std::fmt;

use klef_core::backend::{BackendError, BackendErrorKind};
use klef_core::crypto::CryptoError;
use klef_core::names::InvalidName;

use crate::printer::Printer;

/// A process exit status with the documented meanings above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus(u8);

impl ExitStatus {
    /// 0: success.
    pub const SUCCESS: Self = Self(0);
    /// 1: any other error.
    pub const FAILURE: Self = Self(1);
    /// 2: usage error.
    pub const USAGE: Self = Self(2);
    /// 3: authentication (wrong password, locked, invalid key).
    pub const AUTH: Self = Self(3);
    /// 4: permission denied.
    pub const PERMISSION: Self = Self(4);
    /// 5: not found.
    pub const NOT_FOUND: Self = Self(5);
    /// 6: server unreachable.
    pub const UNREACHABLE: Self = Self(6);
    /// 7: conflict (a stale write).
    pub const CONFLICT: Self = Self(7);
    /// 126: `klef run` could not execute the command.
    pub const NOT_EXECUTABLE: Self = Self(126);
    /// 127: `klef run` could not find the command.
    pub const COMMAND_NOT_FOUND: Self = Self(127);

    /// A child process's exit code, passed through unchanged (truncated to 0–255 as the OS
    /// would).
    #[must_use]
    pub fn from_code(code: i32) -> Self {
        Self(u8::try_from(code & 0xff).unwrap_or(1))
    }

    /// The numeric code.
    #[must_use]
    pub fn code(self) -> u8 {
        self.0
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.0)
    }
}

/// An error the CLI raises itself, carrying its exit status and fix suggestions.
#[derive(Debug, thiserror::Error)]
pub(crate) struct Failure {
    status: ExitStatus,
    message: String,
    hints: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Failure {
    /// A failure with an explicit status.
    pub(crate) fn new(status: ExitStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// Exit 1.
    pub(crate) fn other(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::FAILURE, message)
    }

    /// Exit 2.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::USAGE, message)
    }

    /// Exit 3.
    pub(crate) fn auth(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::AUTH, message)
    }

    /// Exit 4.
    pub(crate) fn permission(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::PERMISSION, message)
    }

    /// Exit 5.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::NOT_FOUND, message)
    }

    /// Adds a `hint:` line.
    #[must_use]
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// The same failure with its message rewritten by `f`.
    pub(crate) fn map_message(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }
}

/// The exit status for an error: the first error in the chain that has a defined meaning.
pub(crate) fn exit_status(err: &anyhow::Error) -> ExitStatus {
    if let Some(r) = err.downcast_ref::<Restatus>() {
        return r.status;
    }
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.status;
        }
        if let Some(b) = cause.downcast_ref::<BackendError>() {
            return match b.kind() {
                BackendErrorKind::NotFound => ExitStatus::NOT_FOUND,
                BackendErrorKind::Conflict => ExitStatus::CONFLICT,
                BackendErrorKind::Unauthenticated | BackendErrorKind::NotSignedIn => {
                    ExitStatus::AUTH
                }
                BackendErrorKind::PermissionDenied => ExitStatus::PERMISSION,
                BackendErrorKind::Unreachable | BackendErrorKind::TimedOut => {
                    ExitStatus::UNREACHABLE
                }
                _ => ExitStatus::FAILURE,
            };
        }
        if let Some(c) = cause.downcast_ref::<CryptoError>() {
            return match c {
                CryptoError::WrongPassword => ExitStatus::AUTH,
                _ => ExitStatus::FAILURE,
            };
        }
        if cause.downcast_ref::<InvalidName>().is_some() {
            return ExitStatus::USAGE;
        }
    }
    ExitStatus::FAILURE
}

/// An error reported with another status than its kind's (see [`never_one`]); its text is
/// the error's own, so rendering shows it once.
#[derive(Debug)]
struct Restatus {
    status: ExitStatus,
    text: String,
}

impl fmt::Display for Restatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// For commands whose exit code 1 is an answer (`klef diff`: "different"), as in `diff(1)`: an
/// error that would exit 1 ("other error") exits 2 instead; other errors keep their codes.
pub(crate) fn never_one(err: anyhow::Error) -> anyhow::Error {
    if exit_status(&err) != ExitStatus::FAILURE {
        return err;
    }
    let text = err.to_string();
    err.context(Restatus {
        status: ExitStatus::USAGE,
        text,
    })
}

/// The `hint:` lines for an error: those of every [`Failure`] in its chain (said where the
/// failure is raised, since they name its context) and, for typed errors, [`typed_hint`].
pub(crate) fn hints(err: &anyhow::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // A `Failure` given as context (`e.context(Failure::…)`) is not a chain element anyhow
    // lets us downcast; the error itself is.
    if let Some(f) = err.downcast_ref::<Failure>() {
        out.extend(f.hints.iter().cloned());
    }
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            out.extend(f.hints.iter().cloned());
        } else if let Some(h) = typed_hint(cause) {
            out.push(h.to_owned());
        }
    }
    // Each hint once, in order (a root `Failure` is seen both ways above).
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| seen.insert(h.clone()));
    out
}

/// The one place where typed errors get their fix suggestion, decided by kind.
fn typed_hint(cause: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    if let Some(b) = cause.downcast_ref::<BackendError>() {
        return match b.kind() {
            BackendErrorKind::Conflict => Some(
                "someone changed this key since klef read it; run the command again to write over the new version",
            ),
            BackendErrorKind::NotSignedIn => Some("run `klef login` to sign in (again)"),
            BackendErrorKind::Unreachable => Some(
                "check the server URL (--server, KLEF_SERVER or the server field of .klef) and that the server is running",
            ),
            BackendErrorKind::TimedOut => Some(
                "check that the server is running and reachable; if it is only slow, raise KLEF_TIMEOUT (seconds)",
            ),
            BackendErrorKind::Incompatible => {
                Some("upgrade klef, or point KLEF_HOME at another directory")
            }
            _ => None,
        };
    }
    match cause.downcast_ref::<CryptoError>() {
        Some(CryptoError::WrongPassword) => Some(
            "this is the encryption password chosen at `klef init`; if it is lost, `klef recover` resets it with the recovery code",
        ),
        Some(CryptoError::Tampered { .. }) => {
            Some("restore the vault from a backup; do not trust this value")
        }
        _ => None,
    }
}

/// The rendered lines (without colour) of an error: `error:`, `caused by:` and `hint:`.
pub(crate) fn render(err: &anyhow::Error) -> Vec<(&'static str, String)> {
    let mut lines: Vec<(&'static str, String)> = Vec::new();
    let mut last: Option<String> = None;
    for cause in err.chain() {
        let text = one_line(&cause.to_string());
        if last.as_deref() == Some(text.as_str()) || text.is_empty() {
            continue;
        }
        // The first line said is the `error:` line, even when the outermost error has no
        // words (a server's empty error message): a failure never goes without one.
        lines.push((
            if lines.is_empty() {
                "error"
            } else {
                "caused by"
            },
            text.clone(),
        ));
        last = Some(text);
    }
    if lines.is_empty() {
        lines.push((
            "error",
            "the command failed without saying why (run it again with -v to see what it did)"
                .to_owned(),
        ));
    }
    for h in hints(err) {
        lines.push(("hint", one_line(&h)));
    }
    lines
}

/// Prints the error on stderr and returns its exit status.
pub(crate) fn report(printer: &Printer, err: &anyhow::Error) -> ExitStatus {
    tracing::debug!(error = ?err, "command failed");
    printer.error_lines(&render(err));
    exit_status(err)
}

/// Handles a clap parse result that is not a normal invocation: `--help`/`--version` (exit 0,
/// on stdout) or a usage error (exit 2, on stderr).
pub(crate) fn clap_error(err: &clap::Error) -> std::process::ExitCode {
    // clap prints help/version to stdout and errors to stderr itself, with its own styling.
    let _ = err.print();
    if err.use_stderr() {
        ExitStatus::USAGE.into()
    } else {
        ExitStatus::SUCCESS.into()
    }
}

fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_chain() {
        let e = anyhow::Error::new(BackendError::NotFound {
            what: "project \"x\"".into(),
        })
        .context("failed to load the project");
        assert_eq!(exit_status(&e), ExitStatus::NOT_FOUND);
        let e = anyhow::Error::new(CryptoError::WrongPassword).context("failed to unlock");
        assert_eq!(exit_status(&e), ExitStatus::AUTH);
        let e =
            anyhow::Error::new(Failure::auth("the vault is locked").hint("use --password-stdin"));
        assert_eq!(exit_status(&e), ExitStatus::AUTH);
        assert_eq!(hints(&e), vec!["use --password-stdin".to_owned()]);
        let e = anyhow::anyhow!("plain");
        assert_eq!(exit_status(&e), ExitStatus::FAILURE);
        let conflict = BackendError::Conflict {
            name: "A".into(),
            expected: 1,
            actual: 2,
            changed_by: "someone else".into(),
        };
        assert_eq!(
            exit_status(&anyhow::Error::new(conflict)),
            ExitStatus::CONFLICT
        );
    }

    #[test]
    fn renders_one_line_per_cause() {
        let e =
            anyhow::Error::new(Failure::not_found("key \"A\"\nnot found").hint("try `klef list`"))
                .context("failed to read A");
        let lines = render(&e);
        assert_eq!(
            lines,
            vec![
                ("error", "failed to read A".to_owned()),
                ("caused by", "key \"A\" not found".to_owned()),
                ("hint", "try `klef list`".to_owned()),
            ]
        );
    }

    #[test]
    fn an_error_without_words_still_has_an_error_line() {
        // A server's empty error message, under context that says something.
        let e = anyhow::Error::new(BackendError::Invalid(String::new()));
        let lines = render(&e);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].0, "error");
        assert!(lines[0].1.contains("without saying why"), "{lines:?}");
        let e =
            anyhow::Error::new(BackendError::Invalid(" \n ".into())).context("failed to read A");
        assert_eq!(render(&e), vec![("error", "failed to read A".to_owned())]);
        // Words only below an empty outer error: the first said is the error line.
        let e = anyhow::Error::new(BackendError::Invalid("the server said no".into())).context("");
        assert_eq!(render(&e), vec![("error", "the server said no".to_owned())]);
    }

    #[test]
    fn never_one_keeps_kinds_and_moves_other_errors_to_two() {
        let e = never_one(anyhow::anyhow!("a cycle"));
        assert_eq!(exit_status(&e), ExitStatus::USAGE);
        assert_eq!(render(&e), vec![("error", "a cycle".to_owned())]);
        let e = never_one(Failure::permission("no access").into());
        assert_eq!(exit_status(&e), ExitStatus::PERMISSION);
    }

    #[test]
    fn child_codes_pass_through() {
        assert_eq!(ExitStatus::from_code(42).code(), 42);
        assert_eq!(ExitStatus::from_code(256 + 3).code(), 3);
    }
}
