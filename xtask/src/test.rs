//! `cargo xtask test`: prepares what the suite needs (node's `dotenv` for the differential test,
//! a PostgreSQL database), builds the binaries once, then runs every test with nextest (or
//! `cargo test` where nextest is missing).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::{cargo, step};

/// The PostgreSQL the machine provides (trust auth, database `test`).
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub(crate) fn run(root: &Path, extra: &[String]) -> Result<()> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");

    // node's dotenv, for the differential .env test.
    if root.join("tests/node/package-lock.json").exists() {
        if which("npm") {
            let mut npm = Command::new("npm");
            npm.args([
                "ci",
                "--prefix",
                "tests/node",
                "--no-audit",
                "--no-fund",
                "--silent",
            ]);
            step("npm ci --prefix tests/node", npm)?;
        } else if ci {
            bail!("npm is required for the dotenv differential test; install Node.js");
        } else {
            eprintln!("xtask: note: npm not found; the node dotenv differential test will skip");
        }
    }

    // PostgreSQL: use KLEF_TEST_DATABASE_URL, else the machine's server; start it if it is down.
    let pg_url = std::env::var("KLEF_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
    let pg_up = postgres_reachable() || (try_start_postgres() && postgres_reachable());
    if !pg_up {
        if ci {
            bail!(
                "PostgreSQL is unreachable at 127.0.0.1:5432; the PostgreSQL tests must run in CI"
            );
        }
        eprintln!("xtask: note: PostgreSQL unreachable; PostgreSQL tests will be skipped");
    }

    let mut build = cargo(&["build", "--workspace", "--bins", "--locked"]);
    build.env_remove("RUSTFLAGS");
    step("cargo build --bins", build)?;

    let bin_dir = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| root.join("target"), Into::into)
        .join("debug");
    let mut cmd = if which("cargo-nextest") {
        let mut c = cargo(&[
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ]);
        if ci {
            c.args(["--profile", "ci"]);
        }
        c
    } else {
        cargo(&["test", "--workspace", "--locked", "--no-fail-fast"])
    };
    cmd.args(extra);
    cmd.env("KLEF_TEST_BIN_DIR", &bin_dir);
    if pg_up {
        cmd.env("KLEF_TEST_DATABASE_URL", &pg_url);
    }
    step("the test suite", cmd)?;
    // Doc tests: nextest does not run them.
    if which("cargo-nextest") {
        step(
            "doc tests",
            cargo(&["test", "--workspace", "--doc", "--locked"]),
        )?;
    }
    Ok(())
}

fn postgres_reachable() -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], 5432));
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// Starts the machine's PostgreSQL cluster if one is installed but stopped.
fn try_start_postgres() -> bool {
    let Ok(entries) = std::fs::read_dir("/etc/postgresql") else {
        return false;
    };
    for version in entries.flatten() {
        let v = version.file_name();
        let ok = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect"])
            .arg(&v)
            .args(["main", "start"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            std::thread::sleep(Duration::from_secs(1));
            return true;
        }
    }
    false
}

pub(crate) fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
