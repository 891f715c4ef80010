//! `klef run [--preserve-env] -- CMD [ARGS…]`: runs CMD with the environment's secrets added
//! to its environment. Arguments are passed untouched; stdin, stdout and stderr are inherited;
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the child; klef exits with the child's
//! code (128+N when it died of signal N, 127 when CMD does not exist, 126 when it cannot be
//! executed). Values go only into the child's environment, never into any argv. Every argument
//! after CMD is CMD's, even one that looks like a klef flag: put `--password-stdin` before
//! `run`.

use std::ffi::OsString;

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::secrets;

/// Run a command with the environment's secrets in its environment
///
/// Secrets replace variables of the same name unless `--preserve-env` is given. klef exits with
/// the command's exit code.
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
    let b = ctx.backend().await?;
    let t = ctx.target(&b).await?;
    let current = b.secrets(&t.env.id).await?;
    let key = ctx.environment_key(&b, &t).await?;
    let entries = secrets::decrypt_all(&key, &t, &current)?;
    drop(key);

    let Some((program, rest)) = args.command.split_first() else {
        return Err(Failure::usage("no command given")
            .hint("usage: klef run -- CMD [ARGS…]")
            .into());
    };
    let mut cmd = tokio::process::Command::new(program);
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

    spawn_and_wait(cmd, program).await
}

#[cfg(unix)]
async fn spawn_and_wait(
    mut cmd: tokio::process::Command,
    program: &std::ffi::OsStr,
) -> Result<ExitStatus> {
    use std::os::unix::process::ExitStatusExt as _;

    use rustix::process::{Pid, Signal, kill_process};
    use tokio::signal::unix::{SignalKind, signal};

    // Install the handlers before the child exists so no signal slips through unforwarded;
    // from here on these signals no longer stop klef itself, they reach the child.
    let mut sigint = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    let mut sighup = signal(SignalKind::hangup()).context("failed to handle SIGHUP")?;
    let mut sigquit = signal(SignalKind::quit()).context("failed to handle SIGQUIT")?;

    let mut child = cmd.spawn().map_err(|e| spawn_error(&e, program))?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    let forward = |sig: Signal| {
        if let Some(pid) = pid {
            // The child may already be gone; nothing to do then.
            let _ = kill_process(pid, sig);
        }
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("failed to wait for the command")?,
            _ = sigint.recv() => forward(Signal::INT),
            _ = sigterm.recv() => forward(Signal::TERM),
            _ = sighup.recv() => forward(Signal::HUP),
            _ = sigquit.recv() => forward(Signal::QUIT),
        }
    };
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::from_code(code),
        (None, Some(sig)) => ExitStatus::from_code(128 + sig),
        (None, None) => ExitStatus::FAILURE,
    })
}

#[cfg(not(unix))]
async fn spawn_and_wait(
    mut cmd: tokio::process::Command,
    program: &std::ffi::OsStr,
) -> Result<ExitStatus> {
    let mut child = cmd.spawn().map_err(|e| spawn_error(&e, program))?;
    let status = child
        .wait()
        .await
        .context("failed to wait for the command")?;
    Ok(status
        .code()
        .map_or(ExitStatus::FAILURE, ExitStatus::from_code))
}

fn spawn_error(e: &std::io::Error, program: &std::ffi::OsStr) -> anyhow::Error {
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
