//! The hermetic sandbox every tool runs in (its own `HOME`, `KLEF_HOME`, `GNUPGHOME`), the
//! clean-up of what a run started, and process helpers (`run_capture`, agent pid, `VmRSS`).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::PASSWORD;

/// A temporary home for every tool: `HOME`, `XDG_*`, `KLEF_HOME`, `GNUPGHOME` and the password
/// store all live inside it, so nothing touches the developer's real files.
pub(super) struct Sandbox {
    pub(super) dir: tempfile::TempDir,
    home: PathBuf,
    pub(super) klef_home: PathBuf,
    pub(super) gnupghome: PathBuf,
    pub(super) klef: PathBuf,
    agent: PathBuf,
}

impl Sandbox {
    pub(super) fn new(release: &Path) -> Result<Self> {
        // A short path: gpg-agent's socket path must fit in sun_path.
        let dir = tempfile::Builder::new()
            .prefix("klef-bench-")
            .tempdir_in("/tmp")
            .or_else(|_| tempfile::Builder::new().prefix("klef-bench-").tempdir())
            .context("failed to create a temporary directory")?;
        let home = dir.path().join("home");
        fs::create_dir_all(&home).context("failed to create the sandbox home")?;
        Ok(Self {
            home,
            klef_home: dir.path().join("klef-home"),
            gnupghome: dir.path().join("gnupg"),
            klef: release.join("klef"),
            agent: release.join("klef-agent"),
            dir,
        })
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command with the sandbox's environment, run in `cwd`.
    ///
    /// `LD_LIBRARY_PATH` is removed: `cargo xtask` runs under `cargo run`, which points it at
    /// four build and toolchain directories, and the dynamic loader of every timed process
    /// then looked for each shared library in all of them first (`true`: 42 `openat` instead
    /// of 2; `klef`, three libraries, more), time no user's shell adds.
    pub(super) fn command(&self, program: impl AsRef<std::ffi::OsStr>, cwd: &Path) -> Command {
        let mut cmd = Command::new(program);
        // HOME and XDG_* in the sandbox, no KLEF_*, XDG_*, NO_COLOR, RUST_LOG nor session bus
        // of the caller (the session keyring); then what the other tools read.
        klef_testkit::Hermetic::new(&self.home).apply(&mut cmd);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("DOTENV_")
                || matches!(&*k, "GNUPGHOME" | "PASSWORD_STORE_DIR" | "LD_LIBRARY_PATH")
            {
                cmd.env_remove(&*k);
            }
        }
        cmd.env("KLEF_HOME", &self.klef_home)
            .env("KLEF_AGENT_BIN", &self.agent)
            .env("GNUPGHOME", &self.gnupghome)
            .env("PASSWORD_STORE_DIR", self.path("password-store"))
            .current_dir(cwd);
        cmd
    }

    /// Runs `klef ARGS` in `cwd` to completion; returns stdout. With `password`, the password is
    /// piped to `--password-stdin`; without `agent`, `KLEF_NO_AGENT=1`.
    pub(super) fn klef(
        &self,
        cwd: &Path,
        args: &[&str],
        password: bool,
        agent: bool,
    ) -> Result<String> {
        let mut cmd = self.command(&self.klef, cwd);
        if password {
            cmd.arg("--password-stdin");
        }
        cmd.args(args);
        if !agent {
            cmd.env("KLEF_NO_AGENT", "1");
        }
        let input = password.then(|| format!("{PASSWORD}\n"));
        run_capture(
            &mut cmd,
            &format!("klef {}", args.join(" ")),
            input.as_deref(),
        )
    }
}

/// Runs a command with optional stdin; fails with its stderr when it fails.
pub(super) fn run_capture(cmd: &mut Command, what: &str, stdin: Option<&str>) -> Result<String> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("failed to start {what}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .with_context(|| format!("failed to write to {what}"))?;
    }
    let output = child
        .wait_with_output()
        .with_context(|| format!("failed to wait for {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Stops what the run started (the sandbox's klef agent, its gpg-agent) even on an error.
pub(super) struct Cleanup {
    pub(super) agent_dirs: Vec<PathBuf>,
    pub(super) gnupghome: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for dir in &self.agent_dirs {
            if let Some(pid) = agent_pid(dir) {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if self.gnupghome.is_dir() {
            let _ = Command::new("gpgconf")
                .args(["--kill", "gpg-agent"])
                .env("GNUPGHOME", &self.gnupghome)
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The pid in an agent runtime directory's lock file, if that agent is alive.
pub(super) fn agent_pid(run_dir: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(run_dir.join("agent.lock"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

pub(super) fn vm_rss_kib(pid: u32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
