//! `klef run [--preserve-env] -- CMD [ARGS…]`: runs CMD with the environment's secrets added
//! to its environment. klef replaces itself with CMD (`execve`), so CMD keeps klef's process id,
//! its stdin, stdout, stderr and controlling terminal, receives every signal sent to that
//! process directly, and its exit status is klef's: its exit code, or death by the same signal
//! (which a shell reports as 128+N). 127 when CMD does not exist and 126 when it cannot be
//! executed, both with a one-line error from klef. Values go only into CMD's environment, never
//! into any argv; no file descriptor of klef's (the vault, the agent's socket) is inherited.
//! Every argument after CMD is CMD's, even one that looks like a klef flag: put
//! `--password-stdin` before `run`. Why `execve` rather than a child process:
//! docs/decisions/0010-run-execs-the-command.md.

use std::ffi::{OsStr, OsString};

use anyhow::Result;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::secrets;

/// Run a command with the environment's secrets in its environment
///
/// Secrets replace variables of the same name unless `--preserve-env` is given. klef becomes
/// the command (same process id, signals and exit status).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Keep variables already set in the environment instead of overriding them with secrets
    #[arg(long)]
    pub(crate) preserve_env: bool,

    /// The command and its arguments (put them after `--`)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub(crate) command: Vec<OsString>,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Failure::usage("no command given")
            .hint("usage: klef run -- CMD [ARGS…]")
            .into());
    };
    let b = ctx.backend_and_agent().await?;
    let t = ctx.target(&b).await?;
    let (current, key) = ctx.current_secrets_and_key(&b, &t).await?;
    let entries = secrets::decrypt_all(&key, &t, &current)?;
    drop(key);

    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    let mut injected = 0usize;
    for e in &entries {
        if args.preserve_env && std::env::var_os(&e.name).is_some() {
            continue;
        }
        cmd.env(&e.name, e.value.as_str());
        injected += 1;
    }
    drop(entries);
    tracing::debug!(injected, "starting the command");
    Err(exec(cmd, program))
}

/// Replaces this process with `cmd`; returns only when that fails. Nothing is written to the
/// vault by `run`, so nothing needs closing: every descriptor klef opened is close-on-exec
/// (Rust's standard library and `SQLite` open them so), and the vault is left as after any
/// reader, its write-ahead log intact.
#[cfg(unix)]
fn exec(mut cmd: std::process::Command, program: &OsStr) -> anyhow::Error {
    use std::io::Write as _;
    use std::os::unix::process::CommandExt as _;

    // Nothing of klef's may be left in a buffer that `execve` would discard.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let err = cmd.exec();
    spawn_error(&err, program)
}

/// Without `execve`: runs `cmd` as a child and exits with its code (klef is Unix-only today,
/// docs/decisions/0008; this keeps the crate building elsewhere).
#[cfg(not(unix))]
#[allow(
    clippy::exit,
    reason = "the child's exit code is klef's, as execve would make it"
)]
fn exec(mut cmd: std::process::Command, program: &OsStr) -> anyhow::Error {
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => return spawn_error(&e, program),
    };
    std::process::exit(status.code().unwrap_or(1))
}

fn spawn_error(e: &std::io::Error, program: &OsStr) -> anyhow::Error {
    let name = program.to_string_lossy();
    match e.kind() {
        std::io::ErrorKind::NotFound => Failure::new(
            ExitStatus::COMMAND_NOT_FOUND,
            format!("command not found: {name}"),
        )
        .hint("check the spelling, or give the full path of the program")
        .into(),
        std::io::ErrorKind::PermissionDenied => Failure::new(
            ExitStatus::NOT_EXECUTABLE,
            format!("cannot execute {name}: permission denied"),
        )
        .hint("is it a directory, or missing its executable bit?")
        .into(),
        _ => Failure::new(
            ExitStatus::NOT_EXECUTABLE,
            format!("cannot execute {name}: {e}"),
        )
        .into(),
    }
}
