//! Step 7 of `cargo xtask bench`: `klef-server` under load.
//!
//! Three cases, each a real process on loopback driven by `wrk` on the same machine:
//!
//! * the ceiling: `crates/klef-server/benches/ceiling.rs`, a trivial axum `hello` server with
//!   `klef-server`'s runtime, so the other two rows read as a fraction of what axum itself can
//!   do here;
//! * `GET /v1/environments/{id}/secrets` of a 100-secret environment on the release
//!   `klef-server` over `SQLite` (a fresh file in a temporary directory);
//! * the same on `PostgreSQL` (`KLEF_TEST_DATABASE_URL`, else
//!   `postgres://postgres@127.0.0.1:5432/test`), in a fresh schema dropped afterwards;
//! * both again with `--secret-cache-mib 0`: every request reads and encodes the 100 rows, as
//!   the first read after each write does (the cached rows still authorize every request and
//!   check the environment's revision in the database).
//!
//! Each server is set up the way a person would: `klef signup`, `klef init`, `klef push` of a
//! 100-line `.env` with the release `klef` in a private `KLEF_HOME` (file token store, no
//! agent); the session token is read back from `<KLEF_HOME>/config/credentials/session-token`
//! and the environment id from `klef env list --json`. One request is checked (200, 100
//! secrets) before the load; a run with any non-2xx answer or socket error is refused.
//!
//! The token reaches `wrk` through its environment (`KLEF_BENCH_TOKEN`, read by the Lua script),
//! never its argv or a file of ours.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use klef_core::wire::SecretText;
use serde_json::Value;

use super::cases::{dotenv_text, write_file};
use super::peers::{apt_install, version_of};
use super::runner::shell_quote;
use super::sandbox::{run_capture, vm_rss_kib};
use super::{Report, SECRETS, ServerRow};
use crate::cargo;
use crate::test::which;

/// The machine's `PostgreSQL` (trust authentication on loopback, database `test`).
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The throwaway sign-in password of the benchmark account (it protects nothing).
pub(super) const ACCOUNT_PASSWORD: &str = "klef bench sign-in password";
/// How long a server may take to print its address (migrations included).
const START_TIMEOUT: Duration = Duration::from_mins(1);
/// Open connections `wrk` keeps busy: as many in-flight requests as a busy team's CI fleet, and
/// enough to keep two cores saturated without queueing dominating the latency.
const CONNECTIONS: u32 = 32;
/// `wrk` threads: one, so the load generator takes at most one of the two cores.
const WRK_THREADS: u32 = 1;
/// The case labels, in report order.
pub(super) const CEILING: &str = "trivial axum endpoint (ceiling)";
pub(super) const SQLITE: &str = "GET a 100-secret environment, SQLite";
pub(super) const POSTGRES: &str = "GET a 100-secret environment, PostgreSQL";
pub(super) const SQLITE_UNCACHED: &str =
    "GET a 100-secret environment, SQLite, secret-list cache off";
pub(super) const POSTGRES_UNCACHED: &str =
    "GET a 100-secret environment, PostgreSQL, secret-list cache off";
/// Every case, in report order.
const CASES: [&str; 5] = [
    SQLITE,
    SQLITE_UNCACHED,
    POSTGRES,
    POSTGRES_UNCACHED,
    CEILING,
];

/// The Lua script `wrk` runs: the bearer token from the environment, and one JSON line of
/// results at the end (latencies in microseconds).
const WRK_SCRIPT: &str = r#"-- cargo xtask bench (xtask/src/bench/server.rs): the bearer token comes from the
-- environment, never from argv or this file; `done` prints one JSON line.
local token = os.getenv("KLEF_BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"#;

/// How long each case runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct LoadPlan {
    /// Untimed seconds of load before the measured run (connections, caches, pools).
    pub(super) warmup_secs: u32,
    /// Measured seconds.
    pub(super) secs: u32,
}

impl LoadPlan {
    pub(super) fn new(quick: bool) -> Self {
        if quick {
            Self {
                warmup_secs: 2,
                secs: 5,
            }
        } else {
            Self {
                warmup_secs: 5,
                secs: 20,
            }
        }
    }
}

/// What one `wrk` run measured.
#[derive(Debug)]
struct WrkResult {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Measures the three cases into `report.server` (and notes, commands, tools).
pub(super) fn measure(root: &Path, release: &Path, out: &Path, quick: bool, report: &mut Report) {
    let plan = LoadPlan::new(quick);
    let mut rows = Vec::new();
    if let Err(why) = prepare_wrk() {
        for case in CASES {
            rows.push(ServerRow::skipped(case, &why));
        }
        report.notes.push(format!(
            "server load: skipped: {why} (the load generator is wrk)"
        ));
        report.server = rows;
        return;
    }
    if let Some(v) = wrk_version() {
        report.tools.insert("wrk".into(), v);
    }
    let script = out.join("server").join("wrk-auth.lua");
    if let Err(e) = write_file(&script, WRK_SCRIPT) {
        let why = format!("{e:#}");
        for case in CASES {
            rows.push(ServerRow::skipped(case, &why));
        }
        report.server = rows;
        return;
    }
    let load = Load {
        script,
        plan,
        log_dir: out.join("server"),
    };

    let ceiling = match ceiling_case(root, &load, report) {
        Ok(r) => Some(r),
        Err(e) => {
            fail(report, &mut rows, CEILING, &e);
            None
        }
    };
    let ceiling_rps = ceiling.as_ref().map(|r| r.rps);
    for (case, cache) in [(SQLITE, true), (SQLITE_UNCACHED, false)] {
        match sqlite_case(release, &load, cache, report) {
            Ok((r, rss)) => rows.push(ServerRow::measured(case, &r, ceiling_rps, rss, &load)),
            Err(e) => fail(report, &mut rows, case, &e),
        }
    }
    for (case, cache) in [(POSTGRES, true), (POSTGRES_UNCACHED, false)] {
        match postgres_case(release, &load, cache, report) {
            Ok(Some((r, rss))) => {
                rows.push(ServerRow::measured(case, &r, ceiling_rps, rss, &load));
            }
            Ok(None) => {
                let why = "PostgreSQL is not reachable on 127.0.0.1:5432, or psql is missing";
                report.notes.push(format!("{case}: skipped: {why}"));
                rows.push(ServerRow::skipped(case, why));
            }
            Err(e) => fail(report, &mut rows, case, &e),
        }
    }
    if let Some(r) = ceiling {
        rows.push(ServerRow::measured(CEILING, &r, ceiling_rps, None, &load));
    }
    report.server = rows;
}

/// Records a case that failed: a row saying so and a note (the rest of the report still gets
/// written).
fn fail(report: &mut Report, rows: &mut Vec<ServerRow>, case: &str, e: &anyhow::Error) {
    let why = format!("failed: {e:#}");
    eprintln!("xtask: error: server load case `{case}` {why}");
    report.notes.push(format!("{case}: {why}"));
    rows.push(ServerRow::skipped(case, &why));
}

impl ServerRow {
    fn skipped(case: &str, why: &str) -> Self {
        Self {
            case: case.to_owned(),
            requests_per_second: None,
            p50_ms: None,
            p90_ms: None,
            p99_ms: None,
            max_ms: None,
            requests: None,
            of_ceiling: None,
            server_rss_kib: None,
            note: why.to_owned(),
        }
    }

    fn measured(
        case: &str,
        r: &WrkResult,
        ceiling_rps: Option<f64>,
        rss: Option<u64>,
        load: &Load,
    ) -> Self {
        Self {
            case: case.to_owned(),
            requests_per_second: Some(r.rps),
            p50_ms: Some(r.p50_ms),
            p90_ms: Some(r.p90_ms),
            p99_ms: Some(r.p99_ms),
            max_ms: Some(r.max_ms),
            requests: Some(r.requests),
            of_ceiling: ceiling_rps.filter(|c| *c > 0.0).map(|c| r.rps / c),
            server_rss_kib: rss,
            note: format!(
                "{CONNECTIONS} connections, {WRK_THREADS} wrk thread, {} s after {} s warm-up",
                load.plan.secs, load.plan.warmup_secs
            ),
        }
    }
}

/// `wrk` on `PATH`, installed with apt when missing.
fn prepare_wrk() -> Result<(), String> {
    if which("wrk") || apt_install(&["wrk"]) {
        Ok(())
    } else {
        Err("`apt-get install -y wrk` failed".into())
    }
}

/// `wrk -v` prints `wrk 4.1.0 [epoll] Copyright …` on its first line (and exits 1).
fn wrk_version() -> Option<String> {
    let out = Command::new("wrk").arg("-v").output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let first = text.lines().next()?.trim();
    Some(first.split(" Copyright").next().unwrap_or(first).to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| version_of(Path::new("wrk"), &["-v"]))
}

/// The load generator's settings for every case.
struct Load {
    script: PathBuf,
    plan: LoadPlan,
    log_dir: PathBuf,
}

impl Load {
    /// A warm-up run, then the measured run; refuses a run with errors or non-2xx answers.
    fn run(&self, url: &str, token: Option<&SecretText>, report: &mut Report) -> Result<WrkResult> {
        self.wrk(url, token, self.plan.warmup_secs)?;
        let r = self.wrk(url, token, self.plan.secs)?;
        let path = url
            .split_once("//")
            .map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
        report.commands.push(format!(
            "{}wrk -t {WRK_THREADS} -c {CONNECTIONS} -d {}s -s target/bench/server/wrk-auth.lua \
             http://127.0.0.1:PORT{}   # after a {} s warm-up run",
            if token.is_some() {
                "KLEF_BENCH_TOKEN=<session token> "
            } else {
                ""
            },
            self.plan.secs,
            shell_quote(path),
            self.plan.warmup_secs
        ));
        Ok(r)
    }

    fn wrk(&self, url: &str, token: Option<&SecretText>, secs: u32) -> Result<WrkResult> {
        let mut cmd = Command::new("wrk");
        cmd.args([
            "-t",
            &WRK_THREADS.to_string(),
            "-c",
            &CONNECTIONS.to_string(),
            "-d",
            &format!("{secs}s"),
            "--timeout",
            "5s",
            "-s",
        ])
        .arg(&self.script)
        .arg(url)
        .env_remove("KLEF_BENCH_TOKEN");
        if let Some(t) = token {
            cmd.env("KLEF_BENCH_TOKEN", t.expose());
        }
        eprintln!("xtask: wrk -c {CONNECTIONS} -d {secs}s {url}");
        let stdout = run_capture(&mut cmd, "wrk", None)?;
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .context("wrk printed no result line (the Lua `done` hook did not run)")?;
        let v: Value = serde_json::from_str(line).context("unreadable wrk result line")?;
        let n = |k: &str| {
            v[k].as_f64()
                .with_context(|| format!("wrk result has no {k}"))
        };
        let errors = [
            "connect_errors",
            "read_errors",
            "write_errors",
            "status_errors",
            "timeouts",
        ]
        .iter()
        .map(|k| n(k).map(|x| (*k, x)))
        .collect::<Result<Vec<_>>>()?;
        let bad: Vec<String> = errors
            .iter()
            .filter(|(_, x)| *x > 0.0)
            .map(|(k, x)| format!("{x:.0} {}", k.replace('_', " ")))
            .collect();
        ensure!(
            bad.is_empty(),
            "wrk against {url} saw {} (of {:.0} requests)",
            bad.join(", "),
            n("requests")?
        );
        let requests = n("requests")?;
        let duration = n("duration_us")? / 1e6;
        ensure!(
            requests > 0.0 && duration > 0.0,
            "wrk against {url} completed no requests"
        );
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a request count from wrk, far below 2^53"
        )]
        let count = requests as u64;
        Ok(WrkResult {
            requests: count,
            rps: requests / duration,
            p50_ms: n("p50_us")? / 1000.0,
            p90_ms: n("p90_us")? / 1000.0,
            p99_ms: n("p99_us")? / 1000.0,
            max_ms: n("max_us")? / 1000.0,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The cases.

fn ceiling_case(root: &Path, load: &Load, report: &mut Report) -> Result<WrkResult> {
    let bin = build_ceiling(root)?;
    report
        .commands
        .push("cargo bench -p klef-server --bench ceiling --no-run --locked".into());
    let server = Server::start(Command::new(&bin), &load.log_dir.join("ceiling.log"))?;
    let url = format!("http://{}/", server.addr);
    check_ceiling(&url)?;
    load.run(&url, None, report)
}

fn sqlite_case(
    release: &Path,
    load: &Load,
    cache: bool,
    report: &mut Report,
) -> Result<(WrkResult, Option<u64>)> {
    let work = temp_dir("klef-bench-sqlite-")?;
    let db = work.path().join("server.db");
    let url = format!("sqlite://{}", db.display());
    let (r, rss) = klef_server_case(release, &url, work.path(), load, "sqlite", cache, report)?;
    report.commands.push(format!(
        "klef-server --listen 127.0.0.1:0 --database-url sqlite://$BENCH_SERVER/server.db{}",
        cache_flag(cache)
    ));
    Ok((r, rss))
}

/// The flag of the cache-off cases, as it appears in the report's commands.
fn cache_flag(cache: bool) -> &'static str {
    if cache { "" } else { " --secret-cache-mib 0" }
}

/// `None` when there is no `PostgreSQL` to measure.
fn postgres_case(
    release: &Path,
    load: &Load,
    cache: bool,
    report: &mut Report,
) -> Result<Option<(WrkResult, Option<u64>)>> {
    let pg_url = std::env::var("KLEF_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
    let reachable = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], 5432)),
        Duration::from_secs(1),
    )
    .is_ok();
    if !reachable || !which("psql") {
        return Ok(None);
    }
    let mut id = [0u8; 6];
    klef_core::crypto::fill_random(&mut id);
    let schema = format!(
        "klef_bench_{}",
        id.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    );
    psql(&pg_url, &format!("CREATE SCHEMA {schema}"))?;
    let sep = if pg_url.contains('?') { '&' } else { '?' };
    let server_db = format!("{pg_url}{sep}options=-c%20search_path%3D{schema}");
    let work = temp_dir("klef-bench-pg-");
    let outcome = work.and_then(|w| {
        klef_server_case(
            release,
            &server_db,
            w.path(),
            load,
            "postgres",
            cache,
            report,
        )
    });
    let dropped = psql(&pg_url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    report.commands.push(format!(
        "psql {pg_url} -c 'CREATE SCHEMA klef_bench_XXXX'; klef-server --listen 127.0.0.1:0 \
         --database-url '{pg_url}{sep}options=-c%20search_path%3Dklef_bench_XXXX'{}; …; \
         psql {pg_url} -c 'DROP SCHEMA klef_bench_XXXX CASCADE'",
        cache_flag(cache)
    ));
    let result = outcome?;
    dropped.with_context(|| format!("the benchmark schema {schema} could not be dropped"))?;
    Ok(Some(result))
}

/// Starts the release `klef-server` on `database_url`, sets it up with the CLI, checks one
/// request and runs the load; returns the result and the server's `VmRSS` after it.
fn klef_server_case(
    release: &Path,
    database_url: &str,
    work: &Path,
    load: &Load,
    name: &str,
    cache: bool,
    report: &mut Report,
) -> Result<(WrkResult, Option<u64>)> {
    let mut cmd = Command::new(release.join("klef-server"));
    klef_testkit::scrub_inherited(&mut cmd);
    cmd.args(["--listen", "127.0.0.1:0", "--database-url", database_url]);
    if !cache {
        cmd.args(["--secret-cache-mib", "0"]);
    }
    cmd.env("RUST_LOG", "info")
        .env("KLEF_HOME", work.join("server-home"))
        .current_dir(work);
    let server = Server::start(
        cmd,
        &load.log_dir.join(format!(
            "klef-server-{name}{}.log",
            if cache { "" } else { "-uncached" }
        )),
    )?;
    let base = format!("http://{}", server.addr);
    let (token, env_id) = set_up_with_cli(release, work, &base)?;
    let url = format!("{base}/v1/environments/{env_id}/secrets");
    check_secrets(&url, &token)?;
    let r = load.run(&url, Some(&token), report)?;
    let rss = vm_rss_kib(server.child.id());
    Ok((r, rss))
}

/// `klef signup`, `klef init`, `klef push .env` (100 secrets) against `base`; returns the session
/// token from the file store and the `development` environment's id.
fn set_up_with_cli(release: &Path, work: &Path, base: &str) -> Result<(SecretText, String)> {
    let home = work.join("home");
    let klef_home = work.join("klef-home");
    let app = work.join("app");
    write_file(&app.join(".env"), &dotenv_text(SECRETS))?;
    std::fs::create_dir_all(&home).context("failed to create the client's home")?;
    let hermetic = klef_testkit::Hermetic::new(&home);
    let klef = |args: &[&str]| -> Result<String> {
        let mut cmd = Command::new(release.join("klef"));
        hermetic.apply(&mut cmd);
        cmd.args(args)
            .env("KLEF_HOME", &klef_home)
            .env("KLEF_NO_AGENT", "1")
            .env("KLEF_TOKEN_STORE", "file")
            .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD)
            .env("KLEF_PASSWORD", super::PASSWORD)
            .current_dir(&app);
        run_capture(&mut cmd, &format!("klef {}", args.join(" ")), None)
    };
    eprintln!("xtask: setting up the server with klef signup/init/push ({SECRETS} secrets)");
    klef(&["signup", "--server", base, "--email", "bench@example.com"])?;
    klef(&["init", "bench-server"])?;
    klef(&["push", ".env"])?;
    let envs: Value = serde_json::from_str(&klef(&["env", "list", "--json"])?)
        .context("`klef env list --json` printed no JSON")?;
    let env_id = envs
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["current"] == Value::Bool(true))
        .and_then(|e| e["id"].as_str())
        .context("`klef env list --json` shows no current environment")?
        .to_owned();
    let token_file = klef_home.join("config/credentials/session-token");
    let text = std::fs::read_to_string(&token_file)
        .with_context(|| format!("failed to read {}", token_file.display()))?;
    // The file holds the session's label, then the token.
    let token = text
        .lines()
        .nth(1)
        .map(str::trim)
        .filter(|t| t.starts_with("klef_sess_"))
        .map(SecretText::new)
        .with_context(|| format!("{} holds no session token", token_file.display()))?;
    Ok((token, env_id))
}

/// One request before the load: `200` and exactly the 100 pushed secrets.
fn check_secrets(url: &str, token: &SecretText) -> Result<()> {
    let body = http_get(url, Some(token))?;
    let v: Value = serde_json::from_str(&body).context("the secrets answer is not JSON")?;
    let n = v["secrets"].as_array().map_or(0, Vec::len);
    ensure!(
        n == SECRETS,
        "GET {url} returned {n} secrets, expected {SECRETS}"
    );
    Ok(())
}

fn check_ceiling(url: &str) -> Result<()> {
    let body = http_get(url, None)?;
    ensure!(body == "hello", "the ceiling server answered {body:?}");
    Ok(())
}

/// A plain GET; fails unless the answer is 200.
fn http_get(url: &str, token: Option<&SecretText>) -> Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .context("failed to build the HTTP client")?;
        let mut req = client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t.expose());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("GET {url} failed"))?;
        let status = resp.status();
        let body = resp.text().await.context("failed to read the answer")?;
        if !status.is_success() {
            bail!("GET {url}: {status}");
        }
        Ok(body)
    })
}

/// `cargo bench -p klef-server --bench ceiling --no-run`; returns the executable.
fn build_ceiling(root: &Path) -> Result<PathBuf> {
    let mut cmd = cargo(&[
        "bench",
        "-p",
        "klef-server",
        "--bench",
        "ceiling",
        "--no-run",
        "--locked",
        "--message-format=json",
    ]);
    cmd.current_dir(root);
    eprintln!("xtask: running cargo bench -p klef-server --bench ceiling --no-run");
    let stdout = run_capture(&mut cmd, "cargo bench --bench ceiling --no-run", None)?;
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "ceiling")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo built no `ceiling` bench executable")
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// A server process on loopback, killed (and reaped) on drop.
pub(super) struct Server {
    child: Child,
    pub(super) addr: SocketAddr,
}

impl Server {
    /// Spawns `cmd` and waits for its readiness line (`klef_testkit::spawn_until_ready`),
    /// which must name a loopback address, so the load only ever goes to loopback; its output
    /// goes to `log`.
    pub(super) fn start(cmd: Command, log: &Path) -> Result<Self> {
        let started = klef_testkit::spawn_until_ready_logging(cmd, START_TIMEOUT, Some(log))
            .map_err(|e| anyhow::anyhow!("the server did not start: {e}"))?;
        let addr = started.addr();
        let server = Self {
            child: started.child,
            addr,
        };
        ensure!(
            addr.ip().is_loopback() && addr.port() != 0,
            "the server announced {addr}, not a loopback address; see {}",
            log.display()
        );
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("failed to create a temporary directory")
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let mut cmd = Command::new("psql");
    cmd.args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]);
    run_capture(&mut cmd, &format!("psql -c {sql:?}"), None).map(drop)
}
