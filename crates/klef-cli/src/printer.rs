//! Output discipline (STYLE.md rule 11): stdout carries data only; messages, warnings and
//! errors go to stderr. `-q` silences messages (not data, not errors), `-v` is for logs (see
//! `logging`). Colour only on a terminal, never with `NO_COLOR` or `--no-color`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::io::{self, IsTerminal as _};
use std::sync::mpsc;
use std::time::Duration;

use crate::cli::GlobalArgs;

/// Where the CLI writes.
#[derive(Debug, Clone)]
pub(crate) struct Printer {
    quiet: bool,
    color: bool,
    /// Whether a progress indicator may be drawn: stderr is a terminal and not `-q`.
    progress: bool,
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
            progress: global.quiet == 0 && io::stderr().is_terminal(),
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
        match io::Write::write_all(&mut out, bytes).and_then(|()| io::Write::flush(&mut out)) {
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

    /// A progress indicator for `message` on stderr, shown only if the work takes more than
    /// about a second, on a terminal, without `-q`; animated unless colour is off (`NO_COLOR`,
    /// `--no-color`). It disappears when the returned guard is dropped: drop it before asking
    /// anything or printing results.
    pub(crate) fn progress(&self, message: impl Into<String>) -> Progress {
        if !self.progress {
            return Progress::none();
        }
        Progress::start(
            Box::new(io::stderr()),
            sanitize(&message.into()).into_owned(),
            self.color,
            PROGRESS_DELAY,
        )
    }

    /// The recovery code, once, in a box on stderr (not silenced by `-q`: it is the only time
    /// it is shown), and where else it was written. The same after `init` and `signup`.
    pub(crate) fn recovery_code(&self, code: &str, file: Option<&std::path::Path>) {
        let lines = [
            "your recovery code: write this down and keep it somewhere safe".to_owned(),
            String::new(),
            format!("    {code}"),
            String::new(),
            "it is shown only once; with it, `klef recover` resets a forgotten password".to_owned(),
        ];
        let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        let rule = "─".repeat(width + 2);
        let mut boxed = format!("┌{rule}┐\n");
        for l in &lines {
            let pad = " ".repeat(width - l.chars().count());
            let _ = writeln!(boxed, "│ {l}{pad} │");
        }
        let _ = write!(boxed, "└{rule}┘");
        self.always(&boxed);
        if let Some(f) = file {
            self.always(&format!(
                "the recovery code was also written to {} (mode 0600)",
                f.display()
            ));
        }
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
            let _ = io::Write::write_fmt(
                &mut err,
                format_args!("{}: {}\n", self.paint(label, code), sanitize(text)),
            );
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

/// How long work may take before a progress indicator appears.
const PROGRESS_DELAY: Duration = Duration::from_secs(1);

/// A progress indicator drawn by a thread until dropped (see [`Printer::progress`]).
pub(crate) struct Progress {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn none() -> Self {
        Self {
            stop: None,
            thread: None,
        }
    }

    /// Draws `message` on `out` after `delay`, with a spinner when `animate`, until dropped;
    /// then clears the line.
    fn start(
        mut out: Box<dyn io::Write + Send>,
        message: String,
        animate: bool,
        delay: Duration,
    ) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if !matches!(
                stopped.recv_timeout(delay),
                Err(mpsc::RecvTimeoutError::Timeout)
            ) {
                return;
            }
            let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let width = message.chars().count() + 2;
            for i in 0.. {
                let line = if animate {
                    format!("\r{} {message}", frames[i % frames.len()])
                } else {
                    format!("\r{message}…")
                };
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
                let wait = if animate {
                    Duration::from_millis(100)
                } else {
                    Duration::MAX
                };
                if !matches!(
                    stopped.recv_timeout(wait),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ) {
                    break;
                }
            }
            let _ = out.write_all(format!("\r{}\r", " ".repeat(width)).as_bytes());
            let _ = out.flush();
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(
                &self
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
            .into_owned()
        }
    }

    #[test]
    fn quick_work_shows_no_progress() {
        let out = Shared::default();
        drop(Progress::start(
            Box::new(out.clone()),
            "pulling".into(),
            true,
            Duration::from_secs(5),
        ));
        assert_eq!(out.text(), "");
    }

    #[test]
    fn slow_work_shows_progress_then_clears_the_line() {
        for animate in [true, false] {
            let out = Shared::default();
            let p = Progress::start(
                Box::new(out.clone()),
                "pulling 3000 secrets".into(),
                animate,
                Duration::ZERO,
            );
            std::thread::sleep(Duration::from_millis(250));
            drop(p);
            let text = out.text();
            assert!(text.contains("pulling 3000 secrets"), "{text:?}");
            assert!(text.ends_with('\r'), "the line is cleared: {text:?}");
            assert_eq!(text.contains('⠋'), animate, "{text:?}");
            assert!(!text.contains('\u{1b}'), "no escape codes: {text:?}");
        }
    }

    #[test]
    fn messages_cannot_carry_terminal_escapes() {
        assert_eq!(sanitize("a\u{1b}[2Jb\nc\td"), "a\\u{1b}[2Jb\nc\td");
        assert_eq!(sanitize("plain"), "plain");
    }
}
