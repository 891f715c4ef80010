//! `cargo xtask bench [--quick]`: one benchmark harness that measures Klef side by side with
//! the tools people would otherwise pick, in the same run on the same machine and the same
//! secrets, then writes `docs/performance.md` (for people) and `target/bench/results.json` (for
//! scripts).
//!
//! What it does, in order:
//! 1. `cargo build --release --bins` once; records the binaries' sizes (the release profile
//!    strips symbols).
//! 2. Criterion micro-benchmarks of klef-core (`crates/klef-core/benches/core.rs`), read back
//!    from `target/criterion/<id>/new/estimates.json`.
//! 3. The agent round trip (`crates/klef-agent/benches/roundtrip.rs`, an optimised client
//!    against the real `klef-agent` binary): p50/p99 of `is_unlocked` and `unwrap_key`.
//! 4. Whole commands with `hyperfine` (installed with apt when missing; a built-in repeated-run
//!    timer otherwise) on a hermetic vault: its own `HOME`, `KLEF_HOME` and agent in a temporary
//!    directory, 100 secrets, plus a 10,000-secret environment for `push`/`pull`.
//! 5. The peers on the same secrets: `dotenvx` (npm, pinned in `bench/package.json`, installed
//!    with `npm ci`) on an encrypted `.env`, and `pass` with a throwaway `GNUPGHOME` and a
//!    passphrase-less key. A peer that cannot be installed is skipped with a note printed here
//!    and written into the report, never silently.
//! 6. The agent's resident memory after all of the above.
//! 7. The team server under load (`bench/server.rs`): `wrk` against a 100-secret environment's
//!    `GET` on the release `klef-server` over SQLite and over PostgreSQL, and against a trivial
//!    axum server (`crates/klef-server/benches/ceiling.rs`) as the ceiling.
//!
//! `--mask-only` builds the release `klef` and `klef-agent` and times only `klef run --mask`
//! over 100 MB of output (and the same run unmasked), printing the throughput without touching
//! the report, for work on the masking.
//!
//! 8. The remote section (`bench/remote.rs`): warm agent-served `klef get`/`klef run -- true`,
//!    the cold (`KLEF_NO_CACHE=1`) commands and revalidation of a 10,000-secret environment
//!    against a release `klef-server`, directly on loopback and through a delaying proxy
//!    (`bench/proxy.rs`, 25 ms each way), beside the local-vault rows of step 4.
//!
//! `--remote-only` runs step 8 alone, with the local `get`/`run` rows it compares with measured
//! again, and replaces only the section between `<!-- remote:begin -->` and
//! `<!-- remote:end -->` of `docs/performance.md`.
//!
//! `--server-only` runs step 7 alone (after the build) and writes `target/bench/server.json`
//! without touching the report, for work on the server.
//!
//! Hand-written analysis of missed targets lives in `bench/findings.md` and is copied into the
//! report verbatim, so the numbers are always generated and the reasoning is reviewed text.

mod cases;
mod machine;
mod micro;
mod peers;
mod proxy;
mod remote;
mod report;
mod runner;
mod sandbox;
mod server;
mod targets;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use self::cases::commands;
use self::machine::utc_now;
use self::micro::{agent_round_trip, micro_benchmarks};
use self::report::{ms, render_markdown};
use self::runner::Runner;
use self::sandbox::{Cleanup, Sandbox};
use self::targets::targets;
use crate::{cargo, step};

/// The throwaway encryption password of the benchmark vault (it protects nothing).
const PASSWORD: &str = "klef bench throwaway password";
/// Secrets in the everyday environment.
const SECRETS: usize = 100;
/// Secrets in the large environment.
const BIG_SECRETS: usize = 10_000;
/// The key every `get`/`show` case reads.
const PROBE: &str = "KEY_0042";

/// The micro-benchmarks read back from criterion, with what each measures.
const MICRO: &[(&str, &str)] = &[
    (
        "kdf/argon2id_default",
        "`derive_kek`: Argon2id at the default parameters (m = 64 MiB, t = 3, p = 4)",
    ),
    ("value/encrypt_1KiB", "`encrypt_value` of a 1 KiB value"),
    ("value/decrypt_1KiB", "`decrypt_value` of a 1 KiB value"),
    ("value/encrypt_1MiB", "`encrypt_value` of a 1 MiB value"),
    ("value/decrypt_1MiB", "`decrypt_value` of a 1 MiB value"),
    (
        "key/unwrap",
        "`unwrap_key`: HPKE (X25519) unwrap of an environment key",
    ),
    (
        "dotenv/parse_10k",
        "`dotenv::parse` of a 10,000-line `.env`",
    ),
    (
        "dotenv/render_10k",
        "`dotenv::render` (dotenv format) of 10,000 entries",
    ),
];

/// How much work one run does.
#[derive(Debug, Clone, Copy, Serialize)]
struct Plan {
    quick: bool,
    /// hyperfine runs for commands that take milliseconds.
    fast_runs: u32,
    /// hyperfine runs for commands that take a large fraction of a second or more.
    slow_runs: u32,
    /// Untimed runs before each case.
    warmup: u32,
    /// criterion `--measurement-time`, seconds.
    criterion_seconds: u32,
    /// Agent round trips of each kind.
    agent_iterations: u32,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                fast_runs: 10,
                slow_runs: 3,
                warmup: 1,
                criterion_seconds: 1,
                agent_iterations: 500,
            }
        } else {
            Self {
                quick,
                fast_runs: 50,
                slow_runs: 10,
                warmup: 3,
                criterion_seconds: 3,
                agent_iterations: 2000,
            }
        }
    }
}

/// Everything one run measured; serialised as `target/bench/results.json`.
#[derive(Debug, Default, Serialize)]
struct Report {
    /// UTC date and time of the run.
    date: String,
    quick: bool,
    machine: Machine,
    tools: BTreeMap<String, String>,
    binaries: Vec<Binary>,
    micro: Vec<Micro>,
    agent_round_trip: Option<AgentRoundTrip>,
    agent_rss_kib: Option<u64>,
    cases: Vec<CaseResult>,
    server: Vec<ServerRow>,
    /// What the delaying proxy counted for one cold remote command (`bench/remote.rs`).
    remote_round_trips: Option<remote::RoundTrips>,
    targets: Vec<TargetRow>,
    /// Peers or cases that were skipped, and why.
    notes: Vec<String>,
    /// The exact commands used, with the temporary directory written as `$BENCH`.
    commands: Vec<String>,
    /// Wall-clock seconds the whole run took.
    total_seconds: f64,
}

#[derive(Debug, Default, Serialize)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory: String,
    kernel: String,
    os: String,
    rustc: String,
    load_average_at_start: String,
}

#[derive(Debug, Serialize)]
struct Binary {
    name: String,
    bytes: u64,
}

#[derive(Debug, Serialize)]
struct Micro {
    id: String,
    what: String,
    median_ns: f64,
    median_abs_dev_ns: f64,
    mean_ns: f64,
    mean_ci_low_ns: f64,
    mean_ci_high_ns: f64,
    throughput_bytes: Option<u64>,
}

/// Round-trip latency percentiles, in nanoseconds.
#[derive(Debug, Serialize)]
struct Latency {
    p50: u64,
    p99: u64,
    mean: u64,
    min: u64,
    max: u64,
}

#[derive(Debug, Serialize)]
struct AgentRoundTrip {
    iterations: u64,
    is_unlocked: Latency,
    unwrap_key: Latency,
    rss_kib: Option<u64>,
}

/// Summary of repeated whole-command runs, in milliseconds.
#[derive(Debug, Clone, Serialize)]
struct Stats {
    runs: usize,
    median_ms: f64,
    mean_ms: f64,
    stddev_ms: f64,
    p25_ms: f64,
    p75_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Serialize)]
struct CaseResult {
    id: &'static str,
    tool: &'static str,
    label: String,
    command: String,
    stats: Option<Stats>,
    skipped: Option<String>,
}

/// One server load case; every field but `case` and `note` is `None` when it was not measured.
#[derive(Debug, Serialize)]
struct ServerRow {
    case: String,
    requests_per_second: Option<f64>,
    p50_ms: Option<f64>,
    p90_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    /// Requests completed in the measured run.
    requests: Option<u64>,
    /// Requests per second as a fraction of the ceiling's.
    of_ceiling: Option<f64>,
    /// The server's `VmRSS` right after the measured run.
    server_rss_kib: Option<u64>,
    note: String,
}

#[derive(Debug, Serialize)]
struct TargetRow {
    target: String,
    goal: String,
    measured: String,
    /// `Some(true)` pass, `Some(false)` miss, `None` not measured.
    pass: Option<bool>,
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut quick = false;
    let mut server_only = false;
    let mut mask_only = false;
    let mut remote_only = false;
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            "--server-only" => server_only = true,
            "--mask-only" => mask_only = true,
            "--remote-only" => remote_only = true,
            other => bail!(
                "unknown bench option `{other}`; usage: cargo xtask bench [--quick] \
                 [--server-only] [--mask-only] [--remote-only]"
            ),
        }
    }
    let started = Instant::now();
    let plan = Plan::new(quick);
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let out = target.join("bench");
    fs::create_dir_all(&out).with_context(|| format!("failed to create {}", out.display()))?;
    let release = target.join("release");

    let mut report = Report {
        date: utc_now(),
        quick,
        machine: Machine::probe(),
        ..Report::default()
    };

    if mask_only {
        return mask_only_run(&release, &out, quick, report);
    }

    // 1. Release binaries.
    let build = ["build", "--release", "--bins", "--locked"];
    step("cargo build --release --bins", cargo(&build))?;
    report.commands.push(format!("cargo {}", build.join(" ")));
    for name in ["klef", "klef-agent", "klef-server"] {
        if let Ok(meta) = fs::metadata(release.join(name)) {
            report.binaries.push(Binary {
                name: name.to_owned(),
                bytes: meta.len(),
            });
        }
    }

    if server_only {
        return server_only_run(root, &release, &out, quick, report);
    }
    if remote_only {
        return remote_only_run(root, &release, &out, plan, report, started);
    }

    // 2. Micro-benchmarks.
    micro_benchmarks(&target, &plan, &mut report)?;

    // 3. Agent round trip.
    agent_round_trip(&release, &plan, &mut report)?;

    // 4–6. Whole commands, peers, agent memory.
    let runner = Runner::new(&out, plan, &mut report)?;
    let sandbox = Sandbox::new(&release)?;
    let cleanup = Cleanup {
        agent_dirs: vec![sandbox.klef_home.join("run")],
        gnupghome: sandbox.gnupghome.clone(),
    };
    commands(root, &sandbox, &runner, &mut report)?;
    drop(cleanup);

    // The remote section, beside the local get/run rows just measured.
    if let Err(e) = remote::measure(&release, &out, &runner, false, &mut report) {
        eprintln!("xtask: error: the remote section failed: {e:#}");
        report.notes.push(format!("remote section: failed: {e:#}"));
    }

    // 7. Server.
    server::measure(root, &release, &out, quick, &mut report);

    report.targets = targets(&report);
    report.total_seconds = started.elapsed().as_secs_f64();
    anonymise_paths(root, &mut report);

    let json = serde_json::to_string_pretty(&report).context("failed to serialise the results")?;
    let json_path = out.join("results.json");
    fs::write(&json_path, json + "\n")
        .with_context(|| format!("failed to write {}", json_path.display()))?;
    let findings = fs::read_to_string(root.join("bench/findings.md")).ok();
    let md = render_markdown(&report, findings.as_deref());
    let md_path = root.join("docs/performance.md");
    fs::write(&md_path, md).with_context(|| format!("failed to write {}", md_path.display()))?;

    eprintln!();
    eprintln!("xtask: bench targets:");
    print_targets(&report.targets);
    for note in &report.notes {
        eprintln!("xtask: note: {note}");
    }
    eprintln!(
        "xtask: wrote docs/performance.md and {} in {:.0} s",
        json_path.display(),
        report.total_seconds
    );
    Ok(())
}

/// Writes every temporary directory of the run as `$BENCH` and the repository's paths relative,
/// in the commands and the cases.
fn anonymise_paths(root: &Path, report: &mut Report) {
    // Sandboxes are `<temp>/klef-bench-XXXXXX` (tempfile's random suffix), in /tmp or, where
    // that fails, the system's temporary directory; the remote section's server dir is
    // `klef-bench-remote-XXXXXX`.
    let prefixes = [
        "/tmp/klef-bench-".to_owned(),
        format!("{}/klef-bench-", std::env::temp_dir().display()),
    ];
    let tmp = |s: &str| -> String {
        let mut s = s.replace(&format!("{}/", root.display()), "");
        for prefix in &prefixes {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(i) = rest.find(prefix.as_str()) {
                out.push_str(&rest[..i]);
                out.push_str("$BENCH");
                let tail = &rest[i + prefix.len()..];
                let end = tail
                    .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                    .unwrap_or(tail.len());
                rest = &tail[end..];
            }
            out.push_str(rest);
            s = out;
        }
        s
    };
    for cmd in &mut report.commands {
        *cmd = tmp(cmd);
    }
    for case in &mut report.cases {
        case.command = tmp(&case.command);
    }
}

/// One line per target on stderr: pass, MISS or not measured.
fn print_targets(targets: &[TargetRow]) {
    for t in targets {
        let verdict = match t.pass {
            Some(true) => "pass",
            Some(false) => "MISS",
            None => "not measured",
        };
        eprintln!("  {verdict:>12}  {} ({}): {}", t.target, t.goal, t.measured);
    }
}

/// `--mask-only`: the release `klef` and `klef-agent`, a vault of 100 secrets unlocked in the
/// agent, then the two `klef run` cases of 100 MB of output; prints the throughput.
fn mask_only_run(release: &Path, out: &Path, quick: bool, mut report: Report) -> Result<()> {
    let build = [
        "build",
        "--release",
        "--locked",
        "-p",
        "klef-cli",
        "-p",
        "klef-agent",
        "--bins",
    ];
    step("cargo build --release (klef, klef-agent)", cargo(&build))?;
    let runner = Runner::new(out, Plan::new(quick), &mut report)?;
    let sandbox = Sandbox::new(release)?;
    let cleanup = Cleanup {
        agent_dirs: vec![sandbox.klef_home.join("run")],
        gnupghome: sandbox.gnupghome.clone(),
    };
    let app = sandbox.path("app");
    cases::write_file(&app.join(".env"), &cases::dotenv_text(SECRETS))?;
    sandbox.klef(&app, &["init", "bench-app"], true, false)?;
    sandbox.klef(&app, &["push", ".env"], true, false)?;
    sandbox.klef(&app, &["unlock"], true, true)?;
    cases::mask_cases(&sandbox, &runner, &mut report, &app)?;
    drop(cleanup);
    let rows: Vec<TargetRow> = targets(&report)
        .into_iter()
        .filter(|t| t.target.contains("--mask"))
        .collect();
    print_targets(&rows);
    Ok(())
}

/// `--remote-only`: the remote section alone (with the local `get`/`run` rows it compares
/// with); writes `target/bench/remote.json` and replaces only the section between
/// `<!-- remote:begin -->` and `<!-- remote:end -->` of `docs/performance.md`.
fn remote_only_run(
    root: &Path,
    release: &Path,
    out: &Path,
    plan: Plan,
    mut report: Report,
    started: Instant,
) -> Result<()> {
    let runner = Runner::new(out, plan, &mut report)?;
    remote::measure(release, out, &runner, true, &mut report)?;
    report.targets = targets(&report)
        .into_iter()
        .filter(|t| t.target.contains("from a server"))
        .collect();
    report.total_seconds = started.elapsed().as_secs_f64();
    anonymise_paths(root, &mut report);
    let json = serde_json::to_string_pretty(&report).context("failed to serialise the results")?;
    let path = out.join("remote.json");
    fs::write(&path, json + "\n").with_context(|| format!("failed to write {}", path.display()))?;
    let md_path = root.join("docs/performance.md");
    let old = fs::read_to_string(&md_path)
        .with_context(|| format!("failed to read {}", md_path.display()))?;
    let md = report::replace_remote_section(&old, &report::render_remote(&report));
    fs::write(&md_path, md).with_context(|| format!("failed to write {}", md_path.display()))?;
    print_targets(&report.targets);
    eprintln!(
        "xtask: wrote the remote section of docs/performance.md and {} in {:.0} s",
        path.display(),
        report.total_seconds
    );
    Ok(())
}

/// `--server-only`: step 7 alone, for working on the server; prints the rows and writes
/// `target/bench/server.json`, leaving `docs/performance.md` and `results.json` alone.
fn server_only_run(
    root: &Path,
    release: &Path,
    out: &Path,
    quick: bool,
    mut report: Report,
) -> Result<()> {
    server::measure(root, release, out, quick, &mut report);
    report.targets = targets(&report)
        .into_iter()
        .filter(|t| t.target.starts_with("server"))
        .collect();
    let json =
        serde_json::to_string_pretty(&report.server).context("failed to serialise the results")?;
    let path = out.join("server.json");
    fs::write(&path, json + "\n").with_context(|| format!("failed to write {}", path.display()))?;
    for s in &report.server {
        eprintln!(
            "xtask: {}: {} req/s, p50 {}, p99 {}, {} of the ceiling ({})",
            s.case,
            s.requests_per_second
                .map_or_else(|| "–".to_owned(), |v| format!("{v:.0}")),
            s.p50_ms.map_or_else(|| "–".to_owned(), ms),
            s.p99_ms.map_or_else(|| "–".to_owned(), ms),
            s.of_ceiling
                .map_or_else(|| "–".to_owned(), |v| format!("{v:.2}×")),
            s.note
        );
    }
    print_targets(&report.targets);
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}
