//! The `klef-agent` program: hardening, configuration, single-instance start-up, logging,
//! signal handling and clean shutdown around [`crate::server::serve`].
//!
//! The agent never forks. `klef` starts it through [`crate::client::ensure_running`]: it runs
//! `klef-agent` (the launcher), which starts `klef-agent --detached` (the agent proper) in a new
//! session with stdin at `/dev/null` and stdout/stderr on pipes, relays its readiness or its
//! error, and exits, so the agent is left with no parent but init (or a subreaper): not
//! `klef`, nor the command `klef run` replaces itself with. The agent writes its readiness line
//! ([`ReadyLine`], on stdout) once its socket is bound, or a message on stderr and exits non-zero
//! when it cannot start; the launcher passes on the same. After that the agent only writes to
//! its log file.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use klef_core::ready::ReadyLine;
use tracing_subscriber::EnvFilter;

use crate::cache::Timeouts;
use crate::client::AgentClient;
use crate::hardening::harden_process;
use crate::instance::{Instance, InstanceError};
use crate::paths::AgentPaths;
use crate::server::{AgentState, serve};

/// The readiness line of agents before the JSON [`ReadyLine`] (still accepted from an older
/// agent binary).
pub const LEGACY_READY_LINE: &str = "ready";

/// Rotate the log at start-up once it grows beyond this.
const MAX_LOG_BYTES: u64 = 1 << 20;

const USAGE: &str = "\
usage: klef-agent [--foreground] [--runtime-dir DIR]

Caches Klef's unlocked keys for this user; `klef` starts it on demand. Without --foreground it
starts the agent in the background, prints its readiness line once it serves
({\"event\":\"ready\",\"socket\":PATH}), and exits.

options:
  --foreground        log to stderr instead of the runtime directory's agent.log
  --runtime-dir DIR   use DIR for the socket, lock and log (default: from the environment)
  -V, --version       print the version
  -h, --help          print this help

environment:
  KLEF_AGENT_IDLE_TIMEOUT  wipe keys unused this long (at most and by default 1h)
  KLEF_AGENT_MAX_LIFETIME  wipe keys this long after unlock (at most and by default 8h)
  KLEF_HOME, KLEF_PROFILE  where the socket lives (see docs/agent.md)";

/// Runs the agent with the process's arguments and environment.
#[must_use]
pub fn main() -> ExitCode {
    // Before anything else, and before any key can exist.
    let hardening = harden_process();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut foreground = false;
    let mut detached = false;
    let mut runtime_dir = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--foreground") => foreground = true,
            // The agent proper, started by the launcher below (not in the usage: internal).
            Some("--detached") => detached = true,
            Some("--runtime-dir") => match args.next() {
                Some(dir) if !dir.is_empty() => runtime_dir = Some(PathBuf::from(dir)),
                _ => {
                    let _ = writeln!(
                        io::stderr(),
                        "klef-agent: error: --runtime-dir needs a directory"
                    );
                    return ExitCode::from(2);
                }
            },
            Some("-V" | "--version") => {
                return print_out(&format!("klef-agent {}", env!("CARGO_PKG_VERSION")));
            }
            Some("-h" | "--help") => return print_out(USAGE),
            _ => {
                let _ = writeln!(
                    io::stderr(),
                    "klef-agent: error: unexpected argument {}\n\n{USAGE}",
                    arg.display()
                );
                return ExitCode::from(2);
            }
        }
    }
    if !foreground && !detached {
        return launch(runtime_dir.as_deref());
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match run(foreground, runtime_dir, &hardening) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "klef-agent failed");
            let _ = writeln!(io::stderr(), "klef-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The launcher: starts the agent proper (`--detached`, in a new session), waits until it
/// serves, passes on its readiness line or its error, and exits. See the module's doc.
fn launch(runtime_dir: Option<&Path>) -> ExitCode {
    let fail = |message: &str| {
        let _ = writeln!(io::stderr(), "klef-agent: error: {message}");
        ExitCode::FAILURE
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail(&format!("cannot find its own executable: {e}")),
    };
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("--detached");
    if let Some(dir) = runtime_dir {
        cmd.arg("--runtime-dir").arg(dir);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(crate::client::spawn_until_ready(
        cmd,
        crate::client::Ready::ThenServes,
    )) {
        // Pass on the agent's own line; when another agent won the race to start, describe
        // that one's socket.
        Ok(Some(line)) => print_out(&line),
        Ok(None) => {
            let paths = match runtime_dir {
                Some(dir) => Ok(AgentPaths::in_dir(dir)),
                None => AgentPaths::from_env(),
            };
            match paths {
                Ok(paths) => print_out(&ReadyLine::socket(&paths.socket()).to_line()),
                Err(e) => fail(&e.to_string()),
            }
        }
        Err(message) => fail(&message),
    }
}

fn print_out(text: &str) -> ExitCode {
    if writeln!(io::stdout(), "{text}").is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn run(
    foreground: bool,
    runtime_dir: Option<PathBuf>,
    hardening: &crate::hardening::HardeningReport,
) -> anyhow::Result<ExitCode> {
    let timeouts = Timeouts::from_env()?;
    let paths = match runtime_dir {
        Some(dir) => AgentPaths::in_dir(dir),
        None => AgentPaths::from_env()?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;

    let mut instance = match Instance::acquire(&paths) {
        Ok(i) => i,
        Err(InstanceError::AlreadyRunning { lock, pid }) => {
            return runtime.block_on(already_running(&paths, &lock, pid));
        }
        Err(e) => return Err(e.into()),
    };
    init_logging(foreground, &paths.log_file())?;
    if let Some(e) = &hardening.dumpable {
        tracing::warn!(error = %e, "cannot disable dumping/ptrace (PR_SET_DUMPABLE)");
    }
    if let Some(e) = &hardening.core_limit {
        tracing::warn!(error = %e, "cannot disable core dumps (RLIMIT_CORE)");
    }
    let std_listener = instance
        .take_listener()
        .context("the listener was already taken")?;
    tracing::info!(
        pid = std::process::id(),
        socket = %paths.socket().display(),
        idle = %humantime::format_duration(timeouts.idle),
        max_lifetime = %humantime::format_duration(timeouts.max_lifetime),
        "klef-agent {} started",
        env!("CARGO_PKG_VERSION"),
    );

    let result = runtime.block_on(async {
        let listener = tokio::net::UnixListener::from_std(std_listener)
            .context("cannot register the socket with the runtime")?;
        let shutdown = shutdown_signal()?;
        if !foreground {
            // The readiness signal for `ensure_running`; stdout is not written again.
            let mut out = io::stdout().lock();
            writeln!(out, "{}", ReadyLine::socket(&paths.socket()).to_line())
                .and_then(|()| out.flush())
                .context("cannot signal readiness")?;
        }
        let state = AgentState::new(timeouts);
        serve(listener, state, shutdown)
            .await
            .context("the agent's socket failed")
    });
    drop(instance);
    tracing::info!("klef-agent stopped");
    result.map(|()| ExitCode::SUCCESS)
}

async fn already_running(
    paths: &AgentPaths,
    lock: &Path,
    pid: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let healthy = tokio::time::timeout(Duration::from_secs(2), AgentClient::connect(paths)).await;
    if let Ok(Ok(client)) = healthy {
        let _ = writeln!(
            io::stderr(),
            "klef-agent: another agent is already running (pid {})",
            client.pid()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let pid = pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
    anyhow::bail!(
        "another klef-agent (pid {pid}) holds {} but does not answer on {}",
        lock.display(),
        paths.socket().display()
    )
}

fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        };
        tracing::info!(signal = name, "signal received");
    })
}

fn init_logging(foreground: bool, log_file: &Path) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if foreground {
        builder.with_writer(io::stderr).init();
        return Ok(());
    }
    if fs::metadata(log_file).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        let _ = fs::rename(log_file, log_file.with_extension("log.1"));
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_file)
        .with_context(|| format!("cannot open the log file {}", log_file.display()))?;
    builder
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .init();
    Ok(())
}
