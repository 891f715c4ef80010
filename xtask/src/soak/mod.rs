//! `cargo xtask soak [--seconds N] [--clients N]`: a bounded soak test of `klef-server` on
//! `PostgreSQL`, with the database restarted in the middle.
//!
//! A `klef-server` on a fresh schema of the machine's `PostgreSQL` listens on loopback only. One
//! account and project are made with the real `klef` CLI; then N clients (default 32) mix reads
//! and writes through the `/v1` HTTP API for S seconds (default 60). Half-way, `PostgreSQL` is
//! restarted (`pg_ctlcluster … restart`: the machine's shared server, so the soak never runs
//! alongside the test suite). Each client owns a few key names and tracks every write the
//! server acknowledged, with the version it got.
//!
//! It fails on:
//! * any 5xx answer outside the database outage (counted by phase: before, outage, after);
//! * a lost or duplicated write: at the end every key's history must be versions 1..n, each
//!   once, every acknowledged version holding exactly the bytes written, and every other version
//!   one of the client's unacknowledged (failed or timed-out) attempts;
//! * a read that shows an older version than the client already had acknowledged;
//! * server memory that grows: `VmRSS` at the end above 2× the start + 20 MiB;
//! * a server that did not recover by itself (no write acknowledged after the outage).
//!
//! Prints one summary line and writes `target/soak-summary.json`.

mod check;
mod client;
mod load;
mod server;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use self::load::load;
use self::server::{ServerProcess, hex_id, pg_cluster_version, postgres_reachable, psql};
use crate::{cargo, step};

/// The machine's `PostgreSQL` (trust authentication, database `test`).
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const EMAIL: &str = "soak@example.com";
const ACCOUNT_PASSWORD: &str = "soak sign-in password";
const ENCRYPTION_PASSWORD: &str = "soak encryption password";
/// Key names per client.
const KEYS_PER_CLIENT: usize = 4;
/// Bounds on one client, whatever the duration.
const MAX_REQUESTS_PER_CLIENT: u64 = 200_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to start (a debug build migrating `PostgreSQL`).
const START_TIMEOUT: Duration = Duration::from_mins(1);

/// Phases of the run, by the database's state.
const BEFORE: u8 = 0;
const OUTAGE: u8 = 1;
const AFTER: u8 = 2;
const PHASES: [&str; 3] = ["before", "outage", "after"];

struct Options {
    seconds: u64,
    clients: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut opts = Self {
            seconds: 60,
            clients: 32,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| -> Result<u64> {
                it.next()
                    .with_context(|| format!("{name} needs a value"))?
                    .parse()
                    .with_context(|| format!("{name} takes a whole number"))
            };
            match arg.as_str() {
                "--seconds" => opts.seconds = value("--seconds")?,
                "--clients" => opts.clients = usize::try_from(value("--clients")?)?,
                other => bail!("unknown soak option `{other}`; use --seconds N --clients N"),
            }
        }
        ensure!(
            (6..=3600).contains(&opts.seconds),
            "--seconds must be between 6 and 3600"
        );
        ensure!(
            (1..=256).contains(&opts.clients),
            "--clients must be between 1 and 256"
        );
        Ok(opts)
    }
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let pg_url = std::env::var("KLEF_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
    ensure!(
        postgres_reachable(),
        "PostgreSQL is unreachable at 127.0.0.1:5432 (the soak needs the machine's server)"
    );
    let cluster = pg_cluster_version()?;

    // The whole workspace's binaries, as `cargo xtask test` builds them: `-p klef-cli -p
    // klef-server` alone unifies the dependencies' features differently, and rebuilt three
    // crates (23 s of CI) that the test step had just built.
    let mut build = cargo(&["build", "--workspace", "--bins", "--locked"]);
    build.env_remove("RUSTFLAGS");
    step("cargo build --bins", build)?;
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), Into::into);
    let bin_dir = target.join("debug");

    let work = tempfile::Builder::new()
        .prefix("klef-soak-")
        .tempdir()
        .context("failed to create a temporary directory")?;
    let schema = format!("klef_soak_{}", hex_id());
    psql(&pg_url, &format!("CREATE SCHEMA {schema}"))?;
    let sep = if pg_url.contains('?') { '&' } else { '?' };
    let server_db = format!("{pg_url}{sep}options=-c%20search_path%3D{schema}");

    let outcome = (|| {
        let server = ServerProcess::start(&bin_dir, &server_db, work.path(), &target)?;
        let result = soak(&opts, &bin_dir, work.path(), &server, &cluster);
        drop(server);
        result
    })();
    // Drop the schema whatever happened; `PostgreSQL` was restarted, so retry briefly.
    let dropped = (0..20).any(|_| {
        psql(&pg_url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).is_ok() || {
            std::thread::sleep(Duration::from_millis(250));
            false
        }
    });
    if !dropped {
        eprintln!("xtask: warning: could not drop schema {schema}");
    }
    let summary = outcome?;
    let path = target.join("soak-summary.json");
    std::fs::create_dir_all(&target).context("failed to create target/")?;
    std::fs::write(&path, serde_json::to_string_pretty(&summary.json)? + "\n")
        .with_context(|| format!("failed to write {}", path.display()))?;
    println!("{}", summary.line);
    eprintln!("xtask: wrote {}", path.display());
    if summary.failures.is_empty() {
        Ok(())
    } else {
        bail!("soak failed:\n  {}", summary.failures.join("\n  "))
    }
}

struct Summary {
    line: String,
    json: Value,
    failures: Vec<String>,
}

/// Sets up the account, runs the load with the restart, verifies, and reports.
fn soak(
    opts: &Options,
    bin_dir: &Path,
    work: &Path,
    server: &ServerProcess,
    cluster: &str,
) -> Result<Summary> {
    setup_with_cli(bin_dir, work, &server.url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(load(opts, server, cluster))
}

/// `klef signup` and `klef init soak` against the server, in a private HOME.
fn setup_with_cli(bin_dir: &Path, work: &Path, url: &str) -> Result<()> {
    let home = work.join("home");
    let app = work.join("app");
    std::fs::create_dir_all(&home).context("failed to create the client's home")?;
    std::fs::create_dir_all(&app).context("failed to create the client's project directory")?;
    let hermetic = klef_testkit::Hermetic::new(&home);
    let klef = |args: &[&str]| -> Result<()> {
        let mut cmd = Command::new(bin_dir.join("klef"));
        hermetic.apply(&mut cmd);
        cmd.arg("--password-stdin")
            .args(args)
            .env("KLEF_HOME", work.join("klef-home"))
            .env("KLEF_NO_AGENT", "1")
            .env("KLEF_TOKEN_STORE", "file")
            .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD)
            .current_dir(&app)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("failed to start klef")?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{ENCRYPTION_PASSWORD}").context("failed to write to klef")?;
        }
        let out = child
            .wait_with_output()
            .context("failed to wait for klef")?;
        ensure!(
            out.status.success(),
            "klef {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    klef(&["signup", "--server", url, "--email", EMAIL])?;
    klef(&["init", "soak"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_bound() {
        let o = Options::parse(&[]).unwrap();
        assert_eq!((o.seconds, o.clients), (60, 32));
        let args: Vec<String> = ["--seconds", "30", "--clients", "16"]
            .map(String::from)
            .into();
        let o = Options::parse(&args).unwrap();
        assert_eq!((o.seconds, o.clients), (30, 16));
        assert!(Options::parse(&["--seconds".into(), "0".into()]).is_err());
        assert!(Options::parse(&["--clients".into(), "9999".into()]).is_err());
        assert!(Options::parse(&["--nope".into()]).is_err());
    }
}
