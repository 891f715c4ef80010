//! Hermetic test context for the end-to-end suite (STYLE.md rule 39).
//!
//! Every test gets a temporary `HOME`, `KLEF_HOME` and working directory, every `XDG_*` pointed
//! inside it, and no inherited `KLEF_*` variable, so it never touches the developer's real vault.
//! The binaries come from `KLEF_TEST_BIN_DIR` (set by `cargo xtask test`), else from the
//! workspace's `target/debug`.

// Reason: the assertion helpers return the run for chaining and callers often drop it.
#![allow(clippy::must_use_candidate, clippy::return_self_not_must_use)]

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod server;
mod terminal;

pub use server::{Database, Server};
pub use terminal::Terminal;

/// The encryption password every test vault uses.
pub const PASSWORD: &str = "correct horse battery staple";

/// The account (sign-in) password of every test account on a Klef server.
pub const ACCOUNT_PASSWORD: &str = "sign-in password 42";

/// Where the built binaries are.
#[must_use]
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KLEF_TEST_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("debug")
}

/// The path of one of the workspace's binaries; panics with instructions when it is missing.
#[must_use]
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask test` (or `cargo build --bins` first)",
        path.display()
    );
    path
}

/// A hermetic environment: temporary home and working directory.
pub struct TestContext {
    root: tempfile::TempDir,
    /// The working directory commands run in (a fresh project directory).
    pub cwd: PathBuf,
    /// Extra environment variables for every command.
    pub envs: Vec<(String, String)>,
    /// The Klef server this context uses in server mode (killed when the context drops).
    pub server: Option<Server>,
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl TestContext {
    /// A fresh context with `KLEF_NO_AGENT=1` (tests that exercise the agent remove it).
    #[must_use]
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("klef-e2e-")
            .tempdir()
            .expect("tempdir");
        let cwd = root.path().join("my-app");
        std::fs::create_dir_all(&cwd).expect("create project dir");
        std::fs::create_dir_all(root.path().join("home")).expect("create home");
        Self {
            root,
            cwd,
            envs: vec![("KLEF_NO_AGENT".into(), "1".into())],
            server: None,
        }
    }

    /// The temporary root (holds `home/`, `klef-home/`, `my-app/`).
    #[must_use]
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The directory commands run in (`my-app/` under the root).
    #[must_use]
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// `KLEF_HOME` of this context.
    #[must_use]
    pub fn klef_home(&self) -> PathBuf {
        self.root.path().join("klef-home")
    }

    /// The local vault file.
    #[must_use]
    pub fn vault_path(&self) -> PathBuf {
        self.klef_home().join("data/vault.db")
    }

    /// Sets (or replaces) an environment variable for later commands.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.envs.retain(|(k, _)| k != key);
        self.envs.push((key.into(), value.into()));
    }

    /// Removes an environment variable for later commands.
    pub fn remove_env(&mut self, key: &str) {
        self.envs.retain(|(k, _)| k != key);
    }

    /// A hermetic command for a binary of the workspace.
    #[must_use]
    pub fn command(&self, binary: &str) -> Command {
        let mut cmd = Command::new(bin(binary));
        klef_testkit::Hermetic::new(self.root.path().join("home")).apply(&mut cmd);
        cmd.env("KLEF_HOME", self.klef_home())
            .env("KLEF_AGENT_BIN", bin_dir().join("klef-agent"))
            .current_dir(&self.cwd);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    /// A `klef` command with the given arguments.
    #[must_use]
    pub fn klef<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command("klef");
        cmd.args(args);
        cmd
    }

    /// Runs `klef ARGS` with stdin closed.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_with_stdin(self.klef(args), None)
    }

    /// Runs `klef ARGS` with `input` on stdin.
    pub fn run_stdin<I, S>(&self, args: I, input: &[u8]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_with_stdin(self.klef(args), Some(input))
    }

    /// Runs `klef ARGS` with the test password piped to `--password-stdin`.
    pub fn run_pw<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        // The flag goes first so it can never become part of `klef run`'s child command.
        let mut cmd = self.command("klef");
        cmd.arg("--password-stdin").args(args);
        run_with_stdin(cmd, Some(format!("{PASSWORD}\n").as_bytes()))
    }

    /// `klef init my-app` with the test password; asserts success.
    pub fn init(&self) -> Run {
        self.run_pw(["init", "my-app"]).success()
    }

    /// `klef signup --server URL --email EMAIL` with the test passwords; asserts success.
    pub fn signup(&self, server_url: &str, email: &str) -> Run {
        let mut cmd = self.command("klef");
        cmd.args([
            "--password-stdin",
            "signup",
            "--server",
            server_url,
            "--email",
            email,
        ])
        .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
        run_with_stdin(cmd, Some(format!("{PASSWORD}\n").as_bytes())).success()
    }
}

impl Drop for TestContext {
    fn drop(&mut self) {
        // Stop the server before its files (in `root`) disappear.
        drop(self.server.take());
    }
}

/// Runs a command to completion, feeding `stdin` (or closing it).
pub fn run_with_stdin(mut cmd: Command, stdin: Option<&[u8]>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {desc}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let output = child.wait_with_output().expect("wait for child");
    Run { desc, output }
}

/// A finished command with assertion helpers.
pub struct Run {
    desc: String,
    /// The raw output.
    pub output: Output,
}

impl Run {
    /// Standard output, lossily decoded.
    #[must_use]
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Standard error, lossily decoded.
    #[must_use]
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The exit code (-1 when killed by a signal).
    #[must_use]
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(
            self.code(),
            0,
            "{} failed:\nstdout: {}\nstderr: {}",
            self.desc,
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code_is(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "{}: wrong exit code\nstdout: {}\nstderr: {}",
            self.desc,
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts stderr contains `needle` (case-insensitive).
    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(
            self.stderr()
                .to_lowercase()
                .contains(&needle.to_lowercase()),
            "{}: stderr lacks {needle:?}\nstderr: {}",
            self.desc,
            self.stderr()
        );
        self
    }

    /// Asserts an error is reported as one `error:` line (plus optional `caused by:`/`hint:`
    /// lines), without a panic, and that none of `secrets` appears in stdout or stderr.
    #[track_caller]
    pub fn clean_error(self, secrets: &[&str]) -> Self {
        let err = self.stderr();
        assert!(
            self.code() != 0,
            "{}: expected failure, got success",
            self.desc
        );
        assert!(!err.contains("panicked"), "{}: panicked:\n{err}", self.desc);
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        assert!(
            first.starts_with("error: "),
            "{}: first stderr line is not `error: …`:\n{err}",
            self.desc
        );
        for s in secrets {
            assert!(
                !err.contains(s) && !self.stdout().contains(s),
                "{}: secret leaked in output:\n{err}",
                self.desc
            );
        }
        self
    }
}
