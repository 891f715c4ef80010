//! Output discipline (STYLE.md rule 11): stdout carries data only; messages, warnings and
//! errors go to stderr. `-q` silences messages (not data, not errors), `-v` is for logs (see
//! `logging`). Colour only on a terminal, never with `NO_COLOR` or `--no-color`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, IsTerminal as _, Write as _};

use crate::cli::GlobalArgs;

/// Where the CLI writes.
#[derive(Debug, Clone)]
pub(crate) struct Printer {
    quiet: bool,
    color: bool,
}

impl Printer {
    /// A printer honouring `-q`, `--no-color` and `NO_COLOR`.
    pub(crate) fn new(global: &GlobalArgs) -> Self {
        let no_color_env =
            std::env::var_os(klef_core::env::EnvVars::NO_COLOR).is_some_and(|v| !v.is_empty());
        let color = !global.no_color && !no_color_env && io::stderr().is_terminal();
        Self {
            quiet: global.quiet > 0,
            color,
        }
    }

    /// Whether stderr gets ANSI colours.
    pub(crate) fn color_stderr(&self) -> bool {
        self.color
    }

    /// Writes data to stdout (a broken pipe is not an error worth reporting).
    pub(crate) fn data(&self, text: &str) -> anyhow::Result<()> {
        self.data_bytes(text.as_bytes())
    }

    /// Writes raw data bytes to stdout.
    #[allow(clippy::unused_self)] // a method so all output goes through the printer
    pub(crate) fn data_bytes(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let mut out = io::stdout().lock();
        match out.write_all(bytes).and_then(|()| out.flush()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                Err(anyhow::Error::new(e).context("failed to write to stdout"))
            }
            _ => Ok(()),
        }
    }

    /// Writes a value as pretty JSON plus a newline to stdout.
    pub(crate) fn json<T: serde::Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let mut s = serde_json::to_string_pretty(value)?;
        s.push('\n');
        self.data(&s)
    }

    /// A progress or success message on stderr (silenced by `-q`).
    pub(crate) fn info(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{}", sanitize(msg));
        }
    }

    /// A message on stderr that `-q` does not silence (a prompt's context, the recovery code).
    #[allow(clippy::unused_self)] // a method so all output goes through the printer
    pub(crate) fn always(&self, msg: &str) {
        eprintln!("{}", sanitize(msg));
    }

    /// A `warning: …` line on stderr (silenced by `-q`).
    pub(crate) fn warn(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{}: {}", self.paint("warning", "33;1"), sanitize(msg));
        }
    }

    /// A `hint: …` line on stderr (silenced by `-q`).
    pub(crate) fn hint(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{}: {}", self.paint("hint", "36;1"), sanitize(msg));
        }
    }

    /// The rendered lines of an error (`error:`, `caused by:`, `hint:`), never silenced.
    pub(crate) fn error_lines(&self, lines: &[(&'static str, String)]) {
        let mut err = io::stderr().lock();
        for (label, text) in lines {
            let code = match *label {
                "error" => "31;1",
                "hint" => "36;1",
                _ => "2",
            };
            let _ = writeln!(err, "{}: {}", self.paint(label, code), sanitize(text));
        }
    }

    fn paint(&self, label: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{label}\x1b[0m")
        } else {
            label.to_owned()
        }
    }
}

/// `msg` with every control character but newline and tab escaped (`\u{1b}`): messages carry
/// names and texts a server chose, and a terminal escape in them must not reach the terminal.
pub(crate) fn sanitize(msg: &str) -> std::borrow::Cow<'_, str> {
    if !msg
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return std::borrow::Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for c in msg.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}
