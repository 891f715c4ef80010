//! `cargo xtask flood [--requests N]`: the sign-up and sign-in flood of issue #17 against the
//! real `klef-server` binary on a fresh `SQLite` file (nothing shared is touched, `PostgreSQL`
//! included), in bounded time.
//!
//! 1. The server starts with invitation-only sign-up and `--stats-file`; one owner signs up and
//!    signs in once per core (the warm-up: every password worker has run once); the idle
//!    memory figure is taken then.
//! 2. N sign-ups at once for emails nobody invited (refused before any Argon2 work).
//! 3. N sign-ins at once with wrong passwords against the owner's account.
//!
//! It fails when a request goes unanswered (a dropped connection, a timeout), when an answer is
//! a 5xx other than 503 or a status that does not belong to the phase, when the server's
//! resident memory (`VmRSS`, sampled every 20 ms) rises more than 100 MiB above its idle figure,
//! or when more passwords were hashed or checked than the limits allow: the server counts the
//! Argon2 work it actually ran (its `PasswordGate`) and writes the counts to the stats file when
//! it stops (SIGTERM). Summary: `target/flood-summary.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use klef_core::crypto::account::create_with_params;
use klef_core::ids::{AccountId, WorkspaceId};
use klef_core::model::{AccountKeys, Blob, KdfAlgorithm, KdfParams, Workspace};
use klef_core::secrecy::SecretString;
use serde_json::{Value, json};

use crate::{cargo, step};

/// Memory the flood may add to the idle server.
const MAX_GROWTH_KIB: u64 = 100 * 1024;
/// Failed sign-ins allowed per email (the server's default limit).
const SIGN_IN_LIMIT: u64 = 5;
/// How long any one request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_mins(1);
const OWNER_EMAIL: &str = "owner@flood.example.com";
const OWNER_PASSWORD: &str = "flood owner password";

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let requests = match args {
        [] => 500,
        [flag, n] if flag == "--requests" => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=5000).contains(n))
            .context("--requests takes a number from 1 to 5000")?,
        _ => bail!("usage: cargo xtask flood [--requests N]"),
    };
    let mut build = cargo(&["build", "--workspace", "--bins", "--locked"]);
    build.env_remove("RUSTFLAGS");
    step("cargo build --bins", build)?;
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), Into::into);
    let work = tempfile::Builder::new()
        .prefix("klef-flood-")
        .tempdir()
        .context("failed to create a temporary directory")?;
    let stats = work.path().join("stats.json");
    let mut server = Server::start(&target.join("debug"), work.path(), &stats)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let flooded = runtime.block_on(flood(&server, requests));
    let stopped = server.stop();
    let mut report = flooded?;
    stopped?;
    let counts: Value = serde_json::from_slice(
        &std::fs::read(&stats)
            .with_context(|| format!("the server wrote no {}", stats.display()))?,
    )
    .context("the stats file is not JSON")?;
    let hashes = counts["hashes"].as_u64().unwrap_or(u64::MAX);
    let verifications = counts["verifications"].as_u64().unwrap_or(u64::MAX);
    if hashes > 1 {
        report.failures.push(format!(
            "{hashes} passwords hashed: only the owner's sign-up may hash one"
        ));
    }
    let warm_up =
        u64::try_from(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
            .unwrap_or(u64::MAX);
    let verifications = verifications.saturating_sub(warm_up);
    if verifications > SIGN_IN_LIMIT {
        report.failures.push(format!(
            "{verifications} passwords checked against a limit of {SIGN_IN_LIMIT}"
        ));
    }
    let line = format!(
        "flood: {requests} refused sign-ups {:?} in {:.1} s, {requests} wrong sign-ins {:?} in {:.1} s; \
         Argon2 hashes {hashes}, checks {verifications} (limit {SIGN_IN_LIMIT}), busy 503s {}; \
         VmRSS idle {} KiB, peak {} KiB (+{} KiB, limit +{MAX_GROWTH_KIB})",
        report.signups,
        report.signup_secs,
        report.logins,
        report.login_secs,
        counts["refused_busy"],
        report.idle_kib,
        report.peak_kib,
        report.peak_kib.saturating_sub(report.idle_kib),
    );
    let summary = json!({
        "requests": requests,
        "signups": report.signups,
        "signup_secs": report.signup_secs,
        "logins": report.logins,
        "login_secs": report.login_secs,
        "gate": counts,
        "vm_rss_kib": {"idle": report.idle_kib, "peak": report.peak_kib},
        "failures": report.failures,
    });
    let path = target.join("flood-summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")
        .with_context(|| format!("failed to write {}", path.display()))?;
    println!("{line}");
    eprintln!("xtask: wrote {}", path.display());
    if report.failures.is_empty() {
        Ok(())
    } else {
        bail!("flood failed:\n  {}", report.failures.join("\n  "))
    }
}

struct Report {
    signups: BTreeMap<String, usize>,
    signup_secs: f64,
    logins: BTreeMap<String, usize>,
    login_secs: f64,
    idle_kib: u64,
    peak_kib: u64,
    failures: Vec<String>,
}

async fn flood(server: &Server, requests: usize) -> Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
        .context("failed to build the HTTP client")?;
    let keys = Arc::new(account_keys()?);
    // The owner: the first account, allowed without an invitation.
    let owner = signup_body(&keys, OWNER_EMAIL, OWNER_PASSWORD);
    let answer = http
        .post(format!("{}/v1/signup", server.url))
        .json(&owner)
        .send()
        .await
        .context("the owner's sign-up got no answer")?;
    ensure!(
        answer.status().as_u16() == 201,
        "the owner's sign-up answered {}",
        answer.status()
    );
    // Warm-up: as many right sign-ins at once as the server has password workers, so each
    // worker thread has run Argon2 once and holds its 19 MiB block, as a server that has
    // served anyone does. The idle figure is taken after that.
    let warm_up = burst(
        &http,
        &format!("{}/v1/login", server.url),
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        |_| json!({"email": OWNER_EMAIL, "password": OWNER_PASSWORD}),
    )
    .await;
    ensure!(
        warm_up.keys().all(|s| s == "200"),
        "the warm-up sign-ins answered {warm_up:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = vm_rss_kib(server.pid).context("cannot read the server's VmRSS")?;

    let peak = Arc::new(AtomicU64::new(idle_kib));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), server.pid);
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kib) = vm_rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let started = Instant::now();
    let signups = burst(&http, &format!("{}/v1/signup", server.url), requests, |i| {
        signup_body(
            &keys,
            &format!("stranger{i}@flood.example.com"),
            "a password nobody invited",
        )
    })
    .await;
    let signup_secs = started.elapsed().as_secs_f64();
    let after_signups_kib = peak.load(Ordering::Relaxed);
    let started = Instant::now();
    let logins = burst(
        &http,
        &format!("{}/v1/login", server.url),
        requests,
        |i| json!({"email": OWNER_EMAIL, "password": format!("wrong password {i}")}),
    )
    .await;
    let login_secs = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let peak_kib = peak.load(Ordering::Relaxed);

    eprintln!(
        "xtask: VmRSS idle {idle_kib} KiB, peak {after_signups_kib} KiB after the sign-ups, {peak_kib} KiB after the sign-ins"
    );
    let mut failures = Vec::new();
    check_statuses(&mut failures, "sign-up", &signups, &["403", "429", "503"]);
    check_statuses(&mut failures, "sign-in", &logins, &["401", "429", "503"]);
    if peak_kib.saturating_sub(idle_kib) > MAX_GROWTH_KIB {
        failures.push(format!(
            "server memory rose from {idle_kib} KiB idle to {peak_kib} KiB"
        ));
    }
    Ok(Report {
        signups,
        signup_secs,
        logins,
        login_secs,
        idle_kib,
        peak_kib,
        failures,
    })
}

/// Sends `n` POSTs at once; the count of each status (or `unanswered: …`).
async fn burst(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    body: impl Fn(usize) -> Value,
) -> BTreeMap<String, usize> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let request = http.post(url).json(&body(i));
            tokio::spawn(async move {
                match request.send().await {
                    Ok(r) => {
                        let status = r.status().as_u16().to_string();
                        // The whole answer must arrive, not only its head.
                        match r.bytes().await {
                            Ok(_) => status,
                            Err(e) => format!("unanswered: {e}"),
                        }
                    }
                    Err(e) => format!("unanswered: {e}"),
                }
            })
        })
        .collect();
    let mut counts = BTreeMap::new();
    for t in tasks {
        let key = t
            .await
            .unwrap_or_else(|e| format!("unanswered: task failed: {e}"));
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

fn check_statuses(
    failures: &mut Vec<String>,
    phase: &str,
    counts: &BTreeMap<String, usize>,
    allowed: &[&str],
) {
    for (status, n) in counts {
        if !allowed.contains(&status.as_str()) {
            failures.push(format!("{phase}: {n} answered {status}"));
        }
    }
}

/// Valid key material (the server checks its shape before anything else); one set serves
/// every request, with cheap KDF parameters at the server's floor.
fn account_keys() -> Result<AccountKeys> {
    let mut salt = vec![0u8; 16];
    klef_core::crypto::fill_random(&mut salt);
    let kdf = KdfParams {
        algorithm: KdfAlgorithm::Argon2id,
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
        salt: Blob(salt),
    };
    let (keys, _recovery, _unlocked) = create_with_params(
        &AccountId::random(),
        &SecretString::from("flood encryption password".to_owned()),
        kdf,
    )
    .map_err(|e| anyhow::anyhow!("cannot make account keys: {e}"))?;
    Ok(keys)
}

fn signup_body(keys: &AccountKeys, email: &str, password: &str) -> Value {
    json!({
        "email": email,
        "password": password,
        "account_id": AccountId::random(),
        "keys": keys,
        "personal_workspace": Workspace {
            id: WorkspaceId::random(),
            name: "personal".into(),
            personal: true,
            created_at: 0,
        },
    })
}

/// A `klef-server` child on loopback with a `SQLite` file in `work`.
struct Server {
    child: Child,
    pid: u32,
    url: String,
}

impl Server {
    fn start(bin_dir: &Path, work: &Path, stats: &Path) -> Result<Self> {
        let mut cmd = Command::new(bin_dir.join("klef-server"));
        klef_testkit::scrub_inherited(&mut cmd);
        let db = format!("sqlite://{}", work.join("server.db").display());
        cmd.args(["--listen", "127.0.0.1:0", "--database-url", &db])
            .args(
                std::env::var("FLOOD_SERVER_ARGS")
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .arg("--stats-file")
            .arg(stats)
            .env("RUST_LOG", "warn,klef_server=info")
            .env("KLEF_HOME", work.join("server"))
            .current_dir(work);
        // Waits for the readiness line (decision 0015); the log stays next to the database.
        let started = klef_testkit::spawn_until_ready_logging(
            cmd,
            Duration::from_secs(30),
            Some(&work.join("flood-server.log")),
        )
        .map_err(|e| anyhow::anyhow!("klef-server did not start: {e}"))?;
        let addr = started.addr();
        let child = started.child;
        let server = Self {
            pid: child.id(),
            child,
            url: format!("http://{addr}"),
        };
        ensure!(
            addr.ip().is_loopback(),
            "klef-server announced {addr}, not a loopback address"
        );
        Ok(server)
    }

    /// SIGTERM, then waits (at most 20 s) for the server to finish and write its stats.
    fn stop(&mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("failed to wait for klef-server")?
            {
                ensure!(status.success(), "klef-server exited with {status}");
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("klef-server did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
