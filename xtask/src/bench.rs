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
//! `--server-only` runs step 7 alone (after the build) and writes `target/bench/server.json`
//! without touching the report, for work on the server.
//!
//! Hand-written analysis of missed targets lives in `bench/findings.md` and is copied into the
//! report verbatim, so the numbers are always generated and the reasoning is reviewed text.

mod server;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

use crate::test::which;
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
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            "--server-only" => server_only = true,
            other => bail!(
                "unknown bench option `{other}`; usage: cargo xtask bench [--quick] \
                 [--server-only]"
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

    // 7. Server.
    server::measure(root, &release, &out, quick, &mut report);

    report.targets = targets(&report);
    report.total_seconds = started.elapsed().as_secs_f64();
    let sandbox_dir = sandbox.dir.path().display().to_string();
    for cmd in &mut report.commands {
        *cmd = cmd
            .replace(&sandbox_dir, "$BENCH")
            .replace(&format!("{}/", root.display()), "");
    }
    for case in &mut report.cases {
        case.command = case
            .command
            .replace(&sandbox_dir, "$BENCH")
            .replace(&format!("{}/", root.display()), "");
    }

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

// ---------------------------------------------------------------------------------------------
// Micro-benchmarks and the agent round trip.

fn micro_benchmarks(target: &Path, plan: &Plan, report: &mut Report) -> Result<()> {
    let secs = plan.criterion_seconds.to_string();
    let args = [
        "bench",
        "-p",
        "klef-core",
        "--bench",
        "core",
        "--locked",
        "--",
        "--measurement-time",
        &secs,
        "--warm-up-time",
        "1",
    ];
    step("cargo bench -p klef-core (criterion)", cargo(&args))?;
    report.commands.push(format!("cargo {}", args.join(" ")));
    let criterion = target.join("criterion");
    for (id, what) in MICRO {
        let dir = criterion.join(id).join("new");
        let estimates = read_json(&dir.join("estimates.json"))?;
        let num = |path: &[&str]| -> Result<f64> {
            let mut v = &estimates;
            for p in path {
                v = &v[*p];
            }
            v.as_f64()
                .with_context(|| format!("{id}: no {} in estimates.json", path.join(".")))
        };
        let throughput_bytes = read_json(&dir.join("benchmark.json"))
            .ok()
            .and_then(|b| b["throughput"]["Bytes"].as_u64());
        report.micro.push(Micro {
            id: (*id).to_owned(),
            what: (*what).to_owned(),
            median_ns: num(&["median", "point_estimate"])?,
            median_abs_dev_ns: num(&["median_abs_dev", "point_estimate"])?,
            mean_ns: num(&["mean", "point_estimate"])?,
            mean_ci_low_ns: num(&["mean", "confidence_interval", "lower_bound"])?,
            mean_ci_high_ns: num(&["mean", "confidence_interval", "upper_bound"])?,
            throughput_bytes,
        });
    }
    Ok(())
}

fn agent_round_trip(release: &Path, plan: &Plan, report: &mut Report) -> Result<()> {
    let args = [
        "bench",
        "-p",
        "klef-agent",
        "--bench",
        "roundtrip",
        "--locked",
    ];
    let mut cmd = cargo(&args);
    cmd.env("KLEF_AGENT_BIN", release.join("klef-agent"))
        .env("KLEF_BENCH_ITERATIONS", plan.agent_iterations.to_string())
        .stdout(Stdio::piped());
    eprintln!("xtask: running cargo bench -p klef-agent (agent round trip)");
    let output = cmd
        .spawn()
        .and_then(std::process::Child::wait_with_output)
        .context("failed to start cargo bench -p klef-agent")?;
    if !output.status.success() {
        bail!("the agent round-trip benchmark failed ({})", output.status);
    }
    report.commands.push(format!(
        "KLEF_AGENT_BIN=target/release/klef-agent KLEF_BENCH_ITERATIONS={} cargo {}",
        plan.agent_iterations,
        args.join(" ")
    ));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("the agent round-trip benchmark printed no result")?;
    let v: Value = serde_json::from_str(line).context("unreadable agent round-trip result")?;
    let latency = |key: &str| -> Result<Latency> {
        let get = |f: &str| {
            v[key][f]
                .as_u64()
                .with_context(|| format!("agent round trip: no {key}.{f}"))
        };
        Ok(Latency {
            p50: get("p50")?,
            p99: get("p99")?,
            mean: get("mean")?,
            min: get("min")?,
            max: get("max")?,
        })
    };
    report.agent_round_trip = Some(AgentRoundTrip {
        iterations: v["iterations"].as_u64().unwrap_or_default(),
        is_unlocked: latency("is_unlocked")?,
        unwrap_key: latency("unwrap_key")?,
        rss_kib: v["agent_rss_kib"].as_u64(),
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The hermetic sandbox and clean-up.

/// A temporary home for every tool: `HOME`, `XDG_*`, `KLEF_HOME`, `GNUPGHOME` and the password
/// store all live inside it, so nothing touches the developer's real files.
struct Sandbox {
    dir: tempfile::TempDir,
    home: PathBuf,
    klef_home: PathBuf,
    gnupghome: PathBuf,
    klef: PathBuf,
    agent: PathBuf,
}

impl Sandbox {
    fn new(release: &Path) -> Result<Self> {
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

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command with the sandbox's environment, run in `cwd`.
    ///
    /// `LD_LIBRARY_PATH` is removed: `cargo xtask` runs under `cargo run`, which points it at
    /// four build and toolchain directories, and the dynamic loader of every timed process
    /// then looked for each shared library in all of them first (`true`: 42 `openat` instead
    /// of 2; `klef`, three libraries, more), time no user's shell adds.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>, cwd: &Path) -> Command {
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
    fn klef(&self, cwd: &Path, args: &[&str], password: bool, agent: bool) -> Result<String> {
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
fn run_capture(cmd: &mut Command, what: &str, stdin: Option<&str>) -> Result<String> {
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
struct Cleanup {
    agent_dirs: Vec<PathBuf>,
    gnupghome: PathBuf,
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
fn agent_pid(run_dir: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(run_dir.join("agent.lock"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Whole-command timing.

/// Times commands with hyperfine, or with a built-in repeated-run timer where hyperfine cannot
/// be installed.
struct Runner {
    hyperfine: Option<PathBuf>,
    out: PathBuf,
    plan: Plan,
}

/// One timed command.
struct Case<'a> {
    id: &'static str,
    tool: &'static str,
    label: &'static str,
    argv: Vec<String>,
    cwd: &'a Path,
    envs: Vec<(&'static str, String)>,
    /// Pipe the vault password to the command's stdin.
    password_stdin: bool,
    /// A command run before each timed run (not timed).
    prepare: Option<Vec<String>>,
    slow: bool,
}

impl<'a> Case<'a> {
    fn new(
        id: &'static str,
        tool: &'static str,
        label: &'static str,
        argv: Vec<String>,
        cwd: &'a Path,
    ) -> Self {
        Self {
            id,
            tool,
            label,
            argv,
            cwd,
            envs: Vec::new(),
            password_stdin: false,
            prepare: None,
            slow: false,
        }
    }
}

impl Runner {
    fn new(out: &Path, plan: Plan, report: &mut Report) -> Result<Self> {
        let hyperfine = if which("hyperfine") || apt_install(&["hyperfine"]) {
            Some(PathBuf::from("hyperfine"))
        } else {
            report.notes.push(
                "hyperfine could not be installed (`apt-get install -y hyperfine` failed); whole \
                 commands were timed by xtask's built-in repeated-run timer instead"
                    .into(),
            );
            None
        };
        if let Some(v) = hyperfine
            .as_ref()
            .and_then(|h| version_of(h, &["--version"]))
        {
            report.tools.insert("hyperfine".into(), v);
        }
        let dir = out.join("hyperfine");
        fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
        Ok(Self {
            hyperfine,
            out: dir,
            plan,
        })
    }

    fn measure(&self, sandbox: &Sandbox, case: &Case<'_>, report: &mut Report) -> Result<()> {
        let runs = if case.slow {
            self.plan.slow_runs
        } else {
            self.plan.fast_runs
        };
        let warmup = if case.slow {
            self.plan.warmup.min(1)
        } else {
            self.plan.warmup
        };
        let mut shown = String::new();
        for (k, v) in &case.envs {
            let _ = write!(shown, "{k}={} ", shell_quote(v));
        }
        let line = if case.password_stdin {
            format!(
                "printf '%s\\n' \"$KLEF_BENCH_PASSWORD\" | {}",
                shell_join(&case.argv)
            )
        } else {
            shell_join(&case.argv)
        };
        eprintln!("xtask: timing {} ({runs} runs)", case.label);
        let times = if let Some(hyperfine) = &self.hyperfine {
            let json = self.out.join(format!("{}.json", case.id));
            let mut cmd = sandbox.command(hyperfine, case.cwd);
            cmd.args(["--style", "basic", "--export-json"])
                .arg(&json)
                .args(["--warmup", &warmup.to_string(), "--runs", &runs.to_string()]);
            let mut display = format!(
                "{shown}hyperfine --export-json target/bench/hyperfine/{}.json --warmup {warmup} \
                 --runs {runs}",
                case.id
            );
            if !case.password_stdin {
                cmd.arg("-N");
                display.push_str(" -N");
            }
            if let Some(prepare) = &case.prepare {
                cmd.args(["--prepare", &shell_join(prepare)]);
                let _ = write!(display, " --prepare {}", shell_quote(&shell_join(prepare)));
            }
            cmd.args(["--command-name", case.id]).arg(&line);
            let _ = write!(display, " {}", shell_quote(&line));
            for (k, v) in &case.envs {
                cmd.env(k, v);
            }
            if case.password_stdin {
                cmd.env("KLEF_BENCH_PASSWORD", PASSWORD);
            }
            cmd.stdin(Stdio::null());
            let status = cmd.status().context("failed to start hyperfine")?;
            if !status.success() {
                bail!("hyperfine failed on {} ({status})", case.label);
            }
            report
                .commands
                .push(format!("(in {}) {display}", case.cwd.display()));
            let v = read_json(&json)?;
            v["results"][0]["times"]
                .as_array()
                .context("hyperfine's JSON has no times")?
                .iter()
                .filter_map(Value::as_f64)
                .collect::<Vec<_>>()
        } else {
            report.commands.push(format!(
                "(in {}) {shown}{line}   # built-in timer: {warmup} warm-up + {runs} runs",
                case.cwd.display()
            ));
            Self::builtin(sandbox, case, warmup, runs)?
        };
        let stats =
            Stats::from_seconds(&times).with_context(|| format!("no runs of {}", case.label))?;
        report.cases.push(CaseResult {
            id: case.id,
            tool: case.tool,
            label: case.label.to_owned(),
            command: format!("{shown}{line}"),
            stats: Some(stats),
            skipped: None,
        });
        Ok(())
    }

    /// The fallback timer: spawn, wait, repeat; the command's output is discarded.
    fn builtin(sandbox: &Sandbox, case: &Case<'_>, warmup: u32, runs: u32) -> Result<Vec<f64>> {
        let mut times = Vec::with_capacity(runs as usize);
        for i in 0..warmup + runs {
            if let Some(prepare) = &case.prepare {
                let mut p = sandbox.command(&prepare[0], case.cwd);
                p.args(&prepare[1..]);
                run_capture(&mut p, "the prepare command", None)?;
            }
            let mut cmd = sandbox.command(&case.argv[0], case.cwd);
            cmd.args(&case.argv[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .stdin(if case.password_stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                });
            for (k, v) in &case.envs {
                cmd.env(k, v);
            }
            let start = Instant::now();
            let mut child = cmd
                .spawn()
                .with_context(|| format!("failed to start {}", case.label))?;
            if let Some(mut pipe) = child.stdin.take() {
                pipe.write_all(format!("{PASSWORD}\n").as_bytes())
                    .context("failed to pipe the password")?;
            }
            let status = child.wait().context("failed to wait for the command")?;
            let elapsed = start.elapsed();
            if !status.success() {
                bail!("{} failed ({status})", case.label);
            }
            if i >= warmup {
                times.push(elapsed.as_secs_f64());
            }
        }
        Ok(times)
    }
}

impl Stats {
    fn from_seconds(times: &[f64]) -> Option<Self> {
        if times.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = times.iter().map(|t| t * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let n = count_f64(ms.len());
        let mean = ms.iter().sum::<f64>() / n;
        let var = if ms.len() > 1 {
            ms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Self {
            runs: ms.len(),
            median_ms: quantile(&ms, 0.5),
            mean_ms: mean,
            stddev_ms: var.sqrt(),
            p25_ms: quantile(&ms, 0.25),
            p75_ms: quantile(&ms, 0.75),
            min_ms: ms[0],
            max_ms: ms[ms.len() - 1],
        })
    }
}

/// Linear-interpolated quantile of sorted data.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * count_f64(sorted.len() - 1);
    let lo = pos.floor();
    let frac = pos - lo;
    #[expect(
        clippy::cast_sign_loss,
        clippy::cast_possible_truncation,
        reason = "pos is in 0..len"
    )]
    let lo = lo as usize;
    match sorted.get(lo + 1) {
        Some(hi) => sorted[lo] + (hi - sorted[lo]) * frac,
        None => sorted[lo],
    }
}

#[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
fn count_f64(n: usize) -> f64 {
    n as f64
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// A `.env` with `n` secrets `KEY_0000…`, the values of which are predictable test strings.
fn dotenv_text(n: usize) -> String {
    let mut text = String::with_capacity(n * 48);
    for i in 0..n {
        let _ = writeln!(text, "KEY_{i:04}=value-{i}-{}", "x".repeat(24));
    }
    text
}

fn expected_value(i: usize) -> String {
    format!("value-{i}-{}", "x".repeat(24))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))
}

fn commands(root: &Path, sandbox: &Sandbox, runner: &Runner, report: &mut Report) -> Result<()> {
    let klef = sandbox.klef.display().to_string();
    let app = sandbox.path("app");
    let big = sandbox.path("big");
    write_file(&app.join(".env"), &dotenv_text(SECRETS))?;
    write_file(&big.join(".env"), &dotenv_text(BIG_SECRETS))?;

    // The vault: 100 secrets in `app`'s development environment, 10,000 in `big`'s `big`.
    eprintln!("xtask: preparing the benchmark vault ({SECRETS} and {BIG_SECRETS} secrets)");
    sandbox.klef(&app, &["init", "bench-app"], true, false)?;
    sandbox.klef(&app, &["push", ".env"], true, false)?;
    sandbox.klef(&big, &["init", "bench-big"], true, false)?;
    sandbox.klef(&big, &["env", "create", "big"], true, false)?;
    sandbox.klef(&big, &["push", "--env", "big", ".env"], true, false)?;
    report.commands.extend([
        "(in $BENCH/app) klef --password-stdin init bench-app; klef --password-stdin push .env"
            .to_owned(),
        "(in $BENCH/big) klef --password-stdin init bench-big; klef --password-stdin env create \
         big; klef --password-stdin push --env big .env"
            .to_owned(),
    ]);

    // Warm the agent: `klef unlock` where it exists, else any keyed command with the password
    // (after a password unlock the CLI hands the key to the agent).
    let has_unlock = sandbox
        .command(&sandbox.klef, &app)
        .args(["unlock", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_unlock {
        sandbox.klef(&app, &["unlock"], true, true)?;
        report.commands.push("klef --password-stdin unlock".into());
    } else {
        sandbox.klef(&app, &["get", "KEY_0000"], true, true)?;
        report
            .commands
            .push("klef --password-stdin get KEY_0000   # warms the agent".into());
    }
    let got = sandbox.klef(&app, &["get", PROBE], false, true)?;
    if got.trim_end() != expected_value(42) {
        bail!("`klef get {PROBE}` through the agent returned an unexpected value");
    }

    let argv = |args: &[&str]| -> Vec<String> {
        std::iter::once(klef.clone())
            .chain(args.iter().map(|s| (*s).to_owned()))
            .collect()
    };
    runner.measure(
        sandbox,
        &Case::new(
            "klef_version",
            "klef",
            "klef --version",
            argv(&["--version"]),
            &app,
        ),
        report,
    )?;
    let bare = Case::new("true", "baseline", "bare true", vec!["true".into()], &app);
    runner.measure(sandbox, &bare, report)?;
    runner.measure(
        sandbox,
        &Case::new(
            "klef_run_true",
            "klef",
            "klef run -- true (warm agent)",
            argv(&["run", "--", "true"]),
            &app,
        ),
        report,
    )?;
    runner.measure(
        sandbox,
        &Case::new(
            "klef_get_warm",
            "klef",
            "klef get KEY (warm agent)",
            argv(&["get", PROBE]),
            &app,
        ),
        report,
    )?;
    runner.measure(
        sandbox,
        &Case::new(
            "klef_pull_100",
            "klef",
            "klef pull -o - (100 secrets)",
            argv(&["pull", "-o", "-"]),
            &app,
        ),
        report,
    )?;
    runner.measure(
        sandbox,
        &Case::new(
            "klef_list_json_100",
            "klef",
            "klef list --json (100 secrets)",
            argv(&["list", "--json"]),
            &app,
        ),
        report,
    )?;
    let mut no_agent = Case::new(
        "klef_get_no_agent",
        "klef",
        "KLEF_NO_AGENT=1 klef --password-stdin get KEY (password piped)",
        argv(&["--password-stdin", "get", PROBE]),
        &app,
    );
    no_agent.envs.push(("KLEF_NO_AGENT", "1".into()));
    no_agent.password_stdin = true;
    no_agent.slow = true;
    runner.measure(sandbox, &no_agent, report)?;

    let mut pull_big = Case::new(
        "klef_pull_10k",
        "klef",
        "klef pull -o - (10,000 secrets)",
        argv(&["pull", "--env", "big", "-o", "-"]),
        &big,
    );
    pull_big.slow = true;
    runner.measure(sandbox, &pull_big, report)?;

    // A fresh environment for every timed push.
    let prepare = sandbox.path("prepare-push.sh");
    write_file(
        &prepare,
        &format!(
            "#!/bin/sh\n# A fresh environment for each timed `klef push` (cargo xtask bench).\nset -e\n\
             n=$(( $(cat \"$0.count\" 2>/dev/null || echo 0) + 1 ))\necho \"$n\" > \"$0.count\"\n\
             {k} env create \"push-$n\" >/dev/null\n{k} env use \"push-$n\" >/dev/null\n",
            k = shell_quote(&klef)
        ),
    )?;
    let mut push_big = Case::new(
        "klef_push_10k",
        "klef",
        "klef push (10,000-line .env, fresh environment)",
        argv(&["push", ".env"]),
        &big,
    );
    push_big.prepare = Some(vec!["sh".into(), prepare.display().to_string()]);
    push_big.slow = true;
    runner.measure(sandbox, &push_big, report)?;
    let pushed = sandbox.klef(&big, &["get", PROBE], false, true)?;
    if pushed.trim_end() != expected_value(42) {
        bail!("after the timed pushes, `klef get {PROBE}` returned an unexpected value");
    }

    // The agent after all of the above.
    report.agent_rss_kib = agent_pid(&sandbox.klef_home.join("run")).and_then(vm_rss_kib);
    if report.agent_rss_kib.is_none() {
        report
            .notes
            .push("the klef agent's resident memory could not be read".into());
    }

    dotenvx(root, sandbox, runner, report)?;
    pass(sandbox, runner, report)?;
    Ok(())
}

fn skip(report: &mut Report, id: &'static str, tool: &'static str, label: &str, why: &str) {
    eprintln!("xtask: note: skipping {label}: {why}");
    report.notes.push(format!("{label}: skipped: {why}"));
    report.cases.push(CaseResult {
        id,
        tool,
        label: label.to_owned(),
        command: String::new(),
        stats: None,
        skipped: Some(why.to_owned()),
    });
}

fn dotenvx(root: &Path, sandbox: &Sandbox, runner: &Runner, report: &mut Report) -> Result<()> {
    let ids = [
        ("dotenvx_get", "dotenvx get KEY (encrypted .env)"),
        ("dotenvx_run_true", "dotenvx run -- true (encrypted .env)"),
    ];
    let bin = root.join("bench/node_modules/.bin/dotenvx");
    let installed = (which("npm") || apt_install(&["nodejs", "npm"]))
        && Command::new("npm")
            .args(["ci", "--prefix"])
            .arg(root.join("bench"))
            .args(["--no-audit", "--no-fund", "--silent"])
            .status()
            .is_ok_and(|s| s.success())
        && bin.is_file();
    if !installed {
        for (id, label) in ids {
            skip(
                report,
                id,
                "dotenvx",
                label,
                "`npm ci --prefix bench` failed or npm is missing",
            );
        }
        return Ok(());
    }
    report
        .commands
        .push("npm ci --prefix bench --no-audit --no-fund".into());
    if let Some(v) = version_of(&bin, &["--version"]) {
        report.tools.insert("dotenvx".into(), v);
    }
    if let Some(v) = version_of(Path::new("node"), &["--version"]) {
        report.tools.insert("node".into(), v);
    }
    let dir = sandbox.path("dotenvx");
    write_file(&dir.join(".env"), &dotenv_text(SECRETS))?;
    run_capture(
        sandbox.command(&bin, &dir).arg("encrypt"),
        "dotenvx encrypt",
        None,
    )?;
    report
        .commands
        .push("(in $BENCH/dotenvx, the same 100 secrets in .env) dotenvx encrypt".into());
    let got = run_capture(
        sandbox.command(&bin, &dir).args(["get", PROBE]),
        "dotenvx get",
        None,
    )?;
    if got.trim_end() != expected_value(42) {
        bail!("`dotenvx get {PROBE}` returned an unexpected value");
    }
    let bin = bin.display().to_string();
    for (id, label) in ids {
        let args: &[&str] = if id == "dotenvx_get" {
            &["get", PROBE]
        } else {
            &["run", "--", "true"]
        };
        let case = Case {
            id,
            tool: "dotenvx",
            label,
            argv: std::iter::once(bin.clone())
                .chain(args.iter().map(|s| (*s).to_owned()))
                .collect(),
            cwd: &dir,
            envs: Vec::new(),
            password_stdin: false,
            prepare: None,
            slow: true,
        };
        runner.measure(sandbox, &case, report)?;
    }
    Ok(())
}

fn pass(sandbox: &Sandbox, runner: &Runner, report: &mut Report) -> Result<()> {
    let label = "pass show KEY (warm gpg-agent)";
    if !((which("pass") && which("gpg")) || apt_install(&["pass", "gnupg"])) {
        skip(
            report,
            "pass_show",
            "pass",
            label,
            "`apt-get install -y pass gnupg` failed",
        );
        return Ok(());
    }
    for (tool, bin) in [("pass", "pass"), ("gpg", "gpg")] {
        if let Some(v) = version_of(Path::new(bin), &["--version"]) {
            report.tools.insert(tool.into(), v);
        }
    }
    let cwd = sandbox.path("app");
    fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&sandbox.gnupghome)
        .context("failed to create GNUPGHOME")?;
    let mut keygen = sandbox.command("gpg", &cwd);
    keygen.args([
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--quick-gen-key",
        "klef-bench@example.invalid",
        "default",
        "default",
        "never",
    ]);
    run_capture(&mut keygen, "gpg --quick-gen-key", None)?;
    let mut list = sandbox.command("gpg", &cwd);
    list.args(["--list-keys", "--with-colons", "klef-bench@example.invalid"]);
    let listing = run_capture(&mut list, "gpg --list-keys", None)?;
    let fpr = listing
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|l| l.split(':').find(|f| !f.is_empty()))
        .context("gpg printed no fingerprint for the generated key")?
        .to_owned();
    let mut init = sandbox.command("pass", &cwd);
    init.args(["init", &fpr]);
    run_capture(&mut init, "pass init", None)?;
    eprintln!("xtask: inserting {SECRETS} secrets into pass");
    for i in 0..SECRETS {
        let mut insert = sandbox.command("pass", &cwd);
        insert.args(["insert", "-m", &format!("KEY_{i:04}")]);
        run_capture(
            &mut insert,
            "pass insert",
            Some(&format!("{}\n", expected_value(i))),
        )?;
    }
    report.commands.push(
        "GNUPGHOME=$BENCH/gnupg gpg --batch --pinentry-mode loopback --passphrase '' \
         --quick-gen-key klef-bench@example.invalid default default never; pass init FPR; \
         pass insert -m KEY_NNNN (×100, value on stdin)"
            .into(),
    );
    let got = run_capture(
        sandbox.command("pass", &cwd).args(["show", PROBE]),
        "pass show",
        None,
    )?;
    if got.trim_end() != expected_value(42) {
        bail!("`pass show {PROBE}` returned an unexpected value");
    }
    let case = Case {
        id: "pass_show",
        tool: "pass",
        label,
        argv: vec!["pass".into(), "show".into(), PROBE.into()],
        cwd: &cwd,
        envs: Vec::new(),
        password_stdin: false,
        prepare: None,
        slow: false,
    };
    runner.measure(sandbox, &case, report)
}

/// `apt-get install -y PKGS`, running `apt-get update` once first if the install fails.
fn apt_install(packages: &[&str]) -> bool {
    if !which("apt-get") {
        return false;
    }
    let install = || {
        eprintln!("xtask: running apt-get install -y {}", packages.join(" "));
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    install()
        || (Command::new("apt-get")
            .args(["update", "-q"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && install())
}

fn version_of(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        // `pass --version` draws a banner: `=   v1.7.4   =`.
        .map(|l| l.trim_matches(|c: char| c == '=' || c.is_whitespace()))
        .find(|l| !l.is_empty() && l.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_owned)
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("failed to parse {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Server, targets, machine.

fn targets(report: &Report) -> Vec<TargetRow> {
    let median = |id: &str| {
        report
            .cases
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.stats.as_ref())
            .map(|s| s.median_ms)
    };
    let mut rows = Vec::new();
    let mut row = |target: &str, goal: &str, measured: Option<(String, bool)>| {
        let (measured, pass) =
            measured.map_or(("not measured".to_owned(), None), |(m, p)| (m, Some(p)));
        rows.push(TargetRow {
            target: target.into(),
            goal: goal.into(),
            measured,
            pass,
        });
    };
    let get = median("klef_get_warm");
    row(
        "`klef get` (warm agent)",
        "≤ 5 ms",
        get.map(|m| (ms(m), m <= 5.0)),
    );
    row(
        "`klef get` warm vs `pass show`",
        "≤ 0.5×",
        get.zip(median("pass_show")).map(|(k, p)| {
            (
                format!("{:.2}× ({} vs {})", k / p, ms(k), ms(p)),
                k / p <= 0.5,
            )
        }),
    );
    let run = median("klef_run_true");
    let overhead = run.zip(median("true")).map(|(r, t)| r - t);
    row(
        "`klef run -- true` over bare `true`",
        "≤ 5 ms",
        overhead.map(|o| (format!("+{}", ms(o)), o <= 5.0)),
    );
    row(
        "`klef run -- true` vs `dotenvx run -- true`",
        "≤ 0.1×",
        run.zip(median("dotenvx_run_true")).map(|(k, d)| {
            (
                format!("{:.3}× ({} vs {})", k / d, ms(k), ms(d)),
                k / d <= 0.1,
            )
        }),
    );
    let push = median("klef_push_10k");
    row(
        "`klef push`, 10,000 secrets",
        "≤ 1 s",
        push.map(|m| (ms(m), m <= 1000.0)),
    );
    let pull = median("klef_pull_10k");
    row(
        "`klef pull`, 10,000 secrets",
        "≤ 200 ms",
        pull.map(|m| (ms(m), m <= 200.0)),
    );
    let version = median("klef_version");
    row(
        "`klef --version`",
        "≤ 2 ms",
        version.map(|m| (ms(m), m <= 2.0)),
    );
    row(
        "agent resident memory (after the whole run)",
        "≤ 10 MiB",
        report
            .agent_rss_kib
            .map(|k| (format!("{:.1} MiB", kib_to_mib(k)), k <= 10 * 1024)),
    );
    let klef_size = report
        .binaries
        .iter()
        .find(|b| b.name == "klef")
        .map(|b| b.bytes);
    row(
        "`klef` binary, stripped",
        "≤ 20 MiB",
        klef_size.map(|b| (format!("{:.1} MiB", bytes_to_mib(b)), b <= 20 * 1024 * 1024)),
    );
    row(
        "agent round trip p50 (`unwrap_key`)",
        "≤ 100 µs",
        report.agent_round_trip.as_ref().map(|a| {
            (
                format!(
                    "{} (`is_unlocked` {})",
                    ns(a.unwrap_key.p50),
                    ns(a.is_unlocked.p50)
                ),
                a.unwrap_key.p50 <= 100_000,
            )
        }),
    );
    let rps_p99 = |case: &str| {
        report
            .server
            .iter()
            .find(|s| s.case == case)
            .and_then(|s| s.requests_per_second.zip(s.p99_ms))
    };
    // Judged on the server as it runs (secret-list cache on); the cache-off figure, what the
    // first read after each write costs, is shown beside it.
    let server = |case: &str, uncached: &str, min_rps: f64| {
        rps_p99(case).map(|(rps, p99)| {
            let off = rps_p99(uncached).map_or_else(String::new, |(r, p)| {
                format!(" (cache off: {r:.0} req/s, p99 {})", ms(p))
            });
            (
                format!("{rps:.0} req/s, p99 {}{off}", ms(p99)),
                rps >= min_rps && p99 <= 20.0,
            )
        })
    };
    row(
        "server `GET` 100 secrets, SQLite",
        "≥ 5,000 req/s, p99 ≤ 20 ms",
        server(server::SQLITE, server::SQLITE_UNCACHED, 5000.0),
    );
    row(
        "server `GET` 100 secrets, PostgreSQL",
        "≥ 3,000 req/s, p99 ≤ 20 ms",
        server(server::POSTGRES, server::POSTGRES_UNCACHED, 3000.0),
    );
    rows
}

#[expect(clippy::cast_precision_loss, reason = "sizes are far below 2^52")]
fn kib_to_mib(k: u64) -> f64 {
    k as f64 / 1024.0
}

#[expect(clippy::cast_precision_loss, reason = "sizes are far below 2^52")]
fn bytes_to_mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Milliseconds, with precision that suits the magnitude.
fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// Nanoseconds, in the unit that suits the magnitude.
#[expect(
    clippy::cast_precision_loss,
    reason = "durations are far below 2^52 ns"
)]
fn ns(v: u64) -> String {
    ns_f(v as f64)
}

fn ns_f(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

impl Machine {
    fn probe() -> Self {
        let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let field = |text: &str, key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':').or_else(|| l.split_once('=')))
                .map(|(_, v)| v.trim().trim_matches('"').to_owned())
                .unwrap_or_default()
        };
        let mem_kib: u64 = field(&read("/proc/meminfo"), "MemTotal")
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cpu_model: field(&cpuinfo, "model name"),
            memory: format!("{:.1} GiB", kib_to_mib(mem_kib) / 1024.0),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            os: field(&read("/etc/os-release"), "PRETTY_NAME"),
            rustc: version_of(Path::new("rustc"), &["--version"]).unwrap_or_default(),
            load_average_at_start: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` from the system clock.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or_default();
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

// ---------------------------------------------------------------------------------------------
// The report.

fn render_markdown(r: &Report, findings: Option<&str>) -> String {
    let mut md = String::new();
    let kind = if r.quick {
        "a **quick** run (`cargo xtask bench --quick`: few runs, wider error bars)"
    } else {
        "a full run"
    };
    let _ = writeln!(
        md,
        "# Performance\n\n\
         <!-- Generated by `cargo xtask bench`; do not edit by hand. Analysis goes in \
         bench/findings.md, which is copied below. -->\n\n\
         Produced by `cargo xtask bench` on {date}, {kind}, in {secs:.0} s. Every number on this \
         page comes from that one run on the machine below; the peers ran in the same run on \
         the same secrets. Machine-readable results: `target/bench/results.json`. Re-run with \
         `cargo xtask bench` (a few minutes once the release build is done) or `cargo xtask bench --quick`.\n",
        date = r.date,
        secs = r.total_seconds
    );

    md.push_str("## Targets\n\n| target | goal | measured | result |\n|---|---|---|---|\n");
    for t in &r.targets {
        let verdict = match t.pass {
            Some(true) => "pass",
            Some(false) => "**miss**",
            None => "not measured yet",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {verdict} |",
            t.target, t.goal, t.measured
        );
    }

    if !r.notes.is_empty() {
        md.push_str("\n## Skipped and substituted\n\n");
        for n in &r.notes {
            let _ = writeln!(md, "- **{n}**");
        }
    }

    let m = &r.machine;
    let _ = writeln!(
        md,
        "\n## Machine\n\n\
         | | |\n|---|---|\n\
         | CPU | {} × {} |\n| memory | {} |\n| OS | {} |\n| kernel | {} |\n| rustc | {} |\n\
         | load average at start | {} |",
        m.cpus, m.cpu_model, m.memory, m.os, m.kernel, m.rustc, m.load_average_at_start
    );
    for (tool, v) in &r.tools {
        let _ = writeln!(md, "| {tool} | {v} |");
    }

    md.push_str("\n## Whole commands\n\n");
    md.push_str(
        "Wall-clock time of the whole process, from spawn to exit, on a hermetic vault (its own \
         `HOME`, `KLEF_HOME` and agent in a temporary directory) holding 100 secrets, plus a \
         10,000-secret environment. \"Warm agent\" means the agent already holds the vault's key, \
         as after `klef unlock`. Spread: the middle half of the runs (p25–p75) and the extremes.\n\n\
         | case | tool | median | p25–p75 | min–max | runs |\n|---|---|---|---|---|---|\n",
    );
    for c in &r.cases {
        match (&c.stats, &c.skipped) {
            (Some(s), _) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | **{}** | {}–{} | {}–{} | {} |",
                    c.label,
                    c.tool,
                    ms(s.median_ms),
                    ms(s.p25_ms),
                    ms(s.p75_ms),
                    ms(s.min_ms),
                    ms(s.max_ms),
                    s.runs
                );
            }
            (None, why) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | **skipped**: {} | | | |",
                    c.label,
                    c.tool,
                    why.as_deref().unwrap_or("not measured")
                );
            }
        }
    }
    let median = |id: &str| {
        r.cases
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.stats.as_ref())
            .map(|s| s.median_ms)
    };
    md.push_str("\nRatios, medians from this run:\n\n");
    let ratio = |a: Option<f64>, b: Option<f64>| {
        a.zip(b).map_or_else(
            || "not measured".to_owned(),
            |(a, b)| format!("{:.3}×", a / b),
        )
    };
    let _ = writeln!(
        md,
        "- `klef get` (warm) / `pass show`: {}\n\
         - `klef get` (warm) / `dotenvx get`: {}\n\
         - `klef run -- true` / `dotenvx run -- true`: {}\n\
         - `klef run -- true` − bare `true`: {}\n\
         - `KLEF_NO_AGENT=1` get / warm-agent get (what the agent saves): {}",
        ratio(median("klef_get_warm"), median("pass_show")),
        ratio(median("klef_get_warm"), median("dotenvx_get")),
        ratio(median("klef_run_true"), median("dotenvx_run_true")),
        median("klef_run_true").zip(median("true")).map_or_else(
            || "not measured".to_owned(),
            |(a, b)| format!("+{}", ms(a - b))
        ),
        ratio(median("klef_get_no_agent"), median("klef_get_warm")),
    );

    md.push_str(
        "\n## Micro-benchmarks (criterion)\n\n\
         `crates/klef-core/benches/core.rs`, release profile. Spread: median absolute deviation; \
         the mean's 95 % confidence interval alongside.\n\n\
         | benchmark | what | median | MAD | mean (95 % CI) | throughput |\n|---|---|---|---|---|---|\n",
    );
    for b in &r.micro {
        let throughput = b.throughput_bytes.map_or_else(String::new, |bytes| {
            #[expect(clippy::cast_precision_loss, reason = "sizes are far below 2^52")]
            let mib_s = bytes as f64 / (1024.0 * 1024.0) / (b.median_ns / 1e9);
            format!("{mib_s:.0} MiB/s")
        });
        let _ = writeln!(
            md,
            "| `{}` | {} | **{}** | {} | {} ({}–{}) | {throughput} |",
            b.id,
            b.what,
            ns_f(b.median_ns),
            ns_f(b.median_abs_dev_ns),
            ns_f(b.mean_ns),
            ns_f(b.mean_ci_low_ns),
            ns_f(b.mean_ci_high_ns)
        );
    }

    md.push_str("\n## Agent\n\n");
    if let Some(a) = &r.agent_round_trip {
        let _ = writeln!(
            md,
            "Round trip over the agent's Unix socket (`crates/klef-agent/benches/roundtrip.rs`: an \
             optimised `klef_agent::client::AgentClient` against the real `klef-agent` binary, \
             one connection, {} sequential requests of each kind after 200 warm-up ones).\n\n\
             | request | p50 | p99 | mean | min | max |\n|---|---|---|---|---|---|",
            a.iterations
        );
        for (name, l) in [
            ("`is_unlocked`", &a.is_unlocked),
            ("`unwrap_key`", &a.unwrap_key),
        ] {
            let _ = writeln!(
                md,
                "| {name} | **{}** | {} | {} | {} | {} |",
                ns(l.p50),
                ns(l.p99),
                ns(l.mean),
                ns(l.min),
                ns(l.max)
            );
        }
        if let Some(k) = a.rss_kib {
            let _ = writeln!(
                md,
                "\nThat agent's resident memory after the loop: {:.1} MiB.",
                kib_to_mib(k)
            );
        }
    }
    let _ = writeln!(
        md,
        "\nResident memory (`VmRSS`) of the agent the CLI started, after every klef case above: \
         **{}**.",
        r.agent_rss_kib.map_or_else(
            || "not measured".to_owned(),
            |k| format!("{:.1} MiB", kib_to_mib(k))
        )
    );

    md.push_str("\n## Binaries\n\nRelease profile (`strip = \"symbols\"`, thin LTO).\n\n| binary | size |\n|---|---|\n");
    for b in &r.binaries {
        let _ = writeln!(
            md,
            "| `{}` | {:.1} MiB ({} bytes) |",
            b.name,
            bytes_to_mib(b.bytes),
            b.bytes
        );
    }

    md.push_str(
        "\n## Server\n\n\
         `wrk` (closed loop: each connection sends its next request when the previous answer \
         arrives) on loopback against real processes: the release `klef-server` answering \
         `GET /v1/environments/{id}/secrets` for a 100-secret environment (about 25 KiB of \
         JSON) with a session token, set up with the release `klef` (`signup`, `init`, `push`); \
         on a fresh SQLite file and on a fresh schema of the machine's PostgreSQL. The ceiling is \
         `crates/klef-server/benches/ceiling.rs`: axum answering `hello` on the same tokio \
         runtime, no database, no authentication. **The load generator runs on the same \
         machine and shares its cores with the server** (one `wrk` thread; PostgreSQL, when \
         measured, shares them too), so every number here is a lower bound of what the server \
         does on cores of its own. \"vs ceiling\" is req/s divided by the ceiling's.\n\n\
         | case | req/s | p50 | p90 | p99 | max | vs ceiling | server RSS | requests | setting |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let dash = || "–".to_owned();
    for s in &r.server {
        if s.requests_per_second.is_none() {
            let _ = writeln!(md, "| {} | **{}** | | | | | | | | |", s.case, s.note);
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | **{}** | {} | {} | **{}** | {} | {} | {} | {} | {} |",
            s.case,
            s.requests_per_second
                .map_or_else(dash, |v| format!("{v:.0}")),
            s.p50_ms.map_or_else(dash, ms),
            s.p90_ms.map_or_else(dash, ms),
            s.p99_ms.map_or_else(dash, ms),
            s.max_ms.map_or_else(dash, ms),
            s.of_ceiling.map_or_else(dash, |v| format!("{v:.2}×")),
            s.server_rss_kib
                .map_or_else(dash, |k| format!("{:.1} MiB", kib_to_mib(k))),
            s.requests.map_or_else(dash, |n| n.to_string()),
            s.note
        );
    }

    if let Some(f) = findings {
        md.push_str("\n## Findings\n\n");
        // The file's own top-level heading is replaced by ours.
        let body = f
            .trim_start()
            .strip_prefix("# Findings")
            .unwrap_or(f)
            .trim();
        md.push_str(body);
        md.push('\n');
    }

    md.push_str(
        "\n## Exact commands\n\n`$BENCH` is the run's temporary directory; `klef` is \
         `target/release/klef`.\n\n```sh\n",
    );
    for c in &r.commands {
        md.push_str(c);
        md.push('\n');
    }
    md.push_str("```\n");
    md
}
