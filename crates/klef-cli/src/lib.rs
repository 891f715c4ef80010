//! The `klef` command-line interface as a library.
//!
//! The binary in `main.rs` only calls [`main`]; tests and `cargo xtask` call [`command`] and
//! [`man_page`] directly. Module map:
//!
//! * `cli`: the clap tree (`Cli { global, command }`), help text from doc comments;
//! * `commands/`: one module per subcommand, groups in folders, `mod.rs` only dispatches;
//! * `context`: paths, the backend, `.klef` discovery and project/environment resolution;
//! * `unlock`/`password`: how a command obtains keys (agent seam, password sources);
//! * `diagnostics`: exit codes and error rendering, in one place;
//! * `printer`: stdout for data, stderr for everything else.
//!
//! ```
//! let man = klef_cli::man_page();
//! assert!(man.contains("klef"));
//! ```
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod backend;
mod cli;
mod commands;
mod config;
mod confirm;
mod context;
mod diagnostics;
mod dirs;
mod env_choice;
mod env_policy;
mod fsutil;
mod help;
mod import;
mod logging;
mod mask;
mod password;
mod personal;
mod printer;
mod recipients;
mod references;
mod remote;
mod secrets;
mod signed;
mod snapshot;
mod table;
mod trust;
mod unlock;

use std::process::ExitCode;

pub use diagnostics::ExitStatus;

/// The complete clap command tree of `klef` (for completions, docs and tests).
#[must_use]
pub fn command() -> clap::Command {
    cli::Cli::command()
}

/// The `klef(1)` man page, rendered from the clap tree (roff).
#[must_use]
pub fn man_page() -> String {
    let mut out = Vec::new();
    // Rendering into a Vec cannot fail on I/O; an error would be a clap_mangen bug.
    if clap_mangen::Man::new(command()).render(&mut out).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `klef` with the process's arguments and returns its exit code.
#[must_use]
pub fn main() -> ExitCode {
    main_with_args(std::env::args_os())
}

/// Runs `klef` with the given arguments (the first one is the program name). Meant to run once
/// per process, as [`main`] does: it sets the process's umask and leaves the parsed command
/// tree for the OS to reclaim at exit.
#[must_use]
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString>,
{
    // Files we create (vault, config, `.env`) must never be group- or world-readable, even
    // before we set their mode explicitly.
    #[cfg(unix)]
    {
        use rustix::fs::Mode;
        rustix::process::umask(Mode::from_bits_truncate(0o077));
    }

    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let matches = match parse(&args) {
        Ok(m) => m,
        Err(err) => return diagnostics::clap_error(&err),
    };
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(err) => return diagnostics::clap_error(&err),
    };

    let printer = printer::Printer::new(&cli.global);
    logging::init(&cli.global, printer.color_stderr());

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            let err = anyhow::Error::new(err).context("failed to start the async runtime");
            return diagnostics::report(&printer, &err).into();
        }
    };
    let status = runtime.block_on(commands::run(cli, printer.clone()));
    match status {
        Ok(status) => status.into(),
        Err(err) => diagnostics::report(&printer, &err).into(),
    }
}

/// Parses the command line with the subcommands it names ([`cli::Cli::command_for`]), and
/// again with the whole tree when that gives anything but a result or the version: help and
/// usage errors list and suggest subcommands.
fn parse(args: &[std::ffi::OsString]) -> Result<clap::ArgMatches, clap::Error> {
    match parse_with(cli::Cli::command_for(args), args) {
        Ok(matches) => Ok(matches),
        Err(err) if err.kind() == clap::error::ErrorKind::DisplayVersion => Err(err),
        Err(_) => parse_with(command(), args),
    }
}

/// Parses `args` with `tree`, then forgets the tree: it (every subcommand, argument and help
/// text) is not used after parsing and the process ends soon, so freeing its allocations one
/// by one costs more than the OS reclaiming them at exit.
fn parse_with(
    mut tree: clap::Command,
    args: &[std::ffi::OsString],
) -> Result<clap::ArgMatches, clap::Error> {
    let parsed = tree.try_get_matches_from_mut(args);
    std::mem::forget(tree);
    parsed
}
