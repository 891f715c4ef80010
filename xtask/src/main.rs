//! Project automation, run as `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! * `ci` — everything CI runs: fmt check, clippy `-D warnings`, then `test`.
//! * `test` — the whole test suite (unit, property, end-to-end; PostgreSQL included).
//! * `install` — installs `klef`, `klef-agent` and `klef-server` into `~/.cargo/bin`.
//! * `man` — writes the man page to `docs/man/klef.1`.
//! * `codegen [--check]` — regenerates the reference docs (and checks for drift).
//! * `bench` — runs the benchmarks and writes `docs/performance.md`.
//! * `fuzz [--seconds N]` — runs every fuzz target for a bounded time.
//! * `flood [--requests N]` — N refused sign-ups, then N wrong sign-ins, at once against
//!   `klef-server` on `SQLite`: every request answered, memory bounded, Argon2 work within limits.
//! * `soak [--seconds N] [--clients N]` — a bounded load test of `klef-server` on `PostgreSQL`,
//!   with the database restarted half-way (run after the test suite, never alongside it).

mod bench;
mod codegen;
mod flood;
mod fuzz;
mod soak;
mod test;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let root = workspace_root();
    std::env::set_current_dir(&root).context("failed to enter the workspace root")?;
    let (task, rest) = args
        .split_first()
        .map_or(("help", &[][..]), |(t, r)| (t.as_str(), r));
    match task {
        "ci" => {
            step(
                "cargo fmt --all --check",
                cargo(&["fmt", "--all", "--", "--check"]),
            )?;
            step(
                "cargo clippy",
                cargo(&[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--locked",
                    "--",
                    "-D",
                    "warnings",
                ]),
            )?;
            codegen::run(&root, true)?;
            test::run(&root, rest)
        }
        "test" => test::run(&root, rest),
        "install" => {
            for krate in ["klef-cli", "klef-agent", "klef-server"] {
                let path = format!("crates/{krate}");
                step(
                    &format!("cargo install {krate}"),
                    cargo(&["install", "--locked", "--force", "--path", &path]),
                )?;
            }
            eprintln!("xtask: installed klef, klef-agent and klef-server; try `klef --help`");
            Ok(())
        }
        "bench" => bench::run(&root, rest),
        "fuzz" => fuzz::run(&root, rest),
        "soak" => soak::run(&root, rest),
        "flood" => flood::run(&root, rest),
        "man" => codegen::man(&root),
        "codegen" => codegen::run(&root, rest.iter().any(|a| a == "--check")),
        "help" | "--help" | "-h" => {
            eprintln!(
                "usage: cargo xtask <ci|test|install|man|codegen [--check]|bench|fuzz|flood|soak>"
            );
            Ok(())
        }
        other => bail!("unknown task `{other}`; run `cargo xtask help`"),
    }
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// A `cargo` command with the given arguments.
fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args);
    cmd
}

/// `cargo install --locked KRATE` for a tool the checks need (cargo-fuzz; .ci/run does the same
/// for cargo-deny): built without LTO at opt-level 1, whatever the tool's own release profile
/// asks. A tool run for seconds on this project's small inputs gains nothing from a
/// whole-program optimised build, which took minutes of CI's two cores.
fn quick_install(krate: &str) -> Command {
    let mut cmd = cargo(&["install", "--locked", krate]);
    cmd.env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1");
    cmd
}

/// Runs a command, echoing its name, and fails if it fails.
fn step(name: &str, mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {name}");
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}
