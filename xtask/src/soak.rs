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

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use klef_core::ids::EnvironmentId;
use klef_core::model::{Blob, SecretWrite};
use klef_core::wire::{
    EnvironmentList, ErrorBody, LoginRequest, ProjectList, SecretList, SecretText, SessionResponse,
    WorkspaceList, WriteSecretsRequest, WriteSecretsResponse, routes,
};
use serde_json::{Value, json};

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

/// What one client saw.
#[derive(Default)]
struct ClientReport {
    /// Answers by phase and status (0 = no answer: timeout or connection error).
    statuses: [HashMap<u16, u64>; 3],
    reads: u64,
    writes_acked: u64,
    /// Writes whose outcome is unknown (5xx or no answer).
    writes_unknown: u64,
    writes_acked_after_outage: u64,
    /// Acknowledged writes per key name: version → bytes.
    acked: HashMap<String, HashMap<i64, Vec<u8>>>,
    /// Bytes of unacknowledged attempts per key name.
    unknown: HashMap<String, Vec<Vec<u8>>>,
    /// Protocol violations (wrong version acknowledged, stale read, odd status).
    violations: Vec<String>,
}

struct Shared {
    http: reqwest::Client,
    base: String,
    token: String,
    env_id: EnvironmentId,
    phase: AtomicU8,
    deadline: Instant,
}

impl Shared {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }
}

async fn load(opts: &Options, server: &ServerProcess, cluster: &str) -> Result<Summary> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .context("failed to build the HTTP client")?;
    let base = server.url.clone();
    let token = login(&http, &base).await?;
    let env_id = development_env(&http, &base, &token).await?;

    let duration = Duration::from_secs(opts.seconds);
    let started = Instant::now();
    let shared = Arc::new(Shared {
        http,
        base,
        token,
        env_id,
        phase: AtomicU8::new(BEFORE),
        deadline: started + duration,
    });

    // Memory: `VmRSS` every 250 ms while the load runs.
    let rss_samples = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let sampling = Arc::new(AtomicU64::new(1));
    let sampler = {
        let samples = Arc::clone(&rss_samples);
        let on = Arc::clone(&sampling);
        let pid = server.pid;
        tokio::spawn(async move {
            while on.load(Ordering::SeqCst) == 1 {
                if let Some(kib) = vm_rss_kib(pid)
                    && let Ok(mut s) = samples.lock()
                {
                    s.push(kib);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let clients: Vec<_> = (0..opts.clients)
        .map(|i| tokio::spawn(client(Arc::clone(&shared), i)))
        .collect();

    // Half-way: restart `PostgreSQL` under the running load.
    tokio::time::sleep(duration / 2).await;
    shared.phase.store(OUTAGE, Ordering::SeqCst);
    let outage_started = started.elapsed();
    let cluster_owned = cluster.to_owned();
    let restart = tokio::task::spawn_blocking(move || {
        Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &cluster_owned,
                "main",
                "restart",
            ])
            .stdout(Stdio::null())
            .status()
    })
    .await
    .context("the restart task failed")?
    .context("failed to run pg_ctlcluster")?;
    ensure!(
        restart.success(),
        "pg_ctlcluster restart failed ({restart})"
    );
    // The outage ends when `PostgreSQL` accepts connections again.
    let wait_until = Instant::now() + Duration::from_secs(30);
    while !postgres_reachable() {
        ensure!(Instant::now() < wait_until, "PostgreSQL did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shared.phase.store(AFTER, Ordering::SeqCst);
    let outage = started.elapsed().saturating_sub(outage_started);

    let mut reports = Vec::new();
    for c in clients {
        reports.push(c.await.context("a client task panicked")?);
    }
    let load_time = started.elapsed();
    sampling.store(0, Ordering::SeqCst);
    sampler.await.context("the memory sampler panicked")?;

    let history_failures = verify_histories(&shared, &reports).await;
    Ok(summarize(
        opts,
        &reports,
        &rss_samples.lock().map(|s| s.clone()).unwrap_or_default(),
        history_failures,
        load_time,
        outage,
    ))
}

/// Signs in over HTTP (a session of its own; the CLI's stays in its token file).
async fn login(http: &reqwest::Client, base: &str) -> Result<String> {
    let resp = http
        .post(format!("{base}{}", routes::LOGIN))
        .json(&LoginRequest {
            email: EMAIL.into(),
            password: SecretText::new(ACCOUNT_PASSWORD),
        })
        .send()
        .await
        .context("failed to sign in")?;
    ensure!(
        resp.status().is_success(),
        "sign-in failed: {}",
        resp.status()
    );
    let session: SessionResponse = resp.json().await.context("bad sign-in answer")?;
    Ok(session.token.expose().to_owned())
}

/// The id of the `development` environment of project `soak` in the personal workspace.
async fn development_env(http: &reqwest::Client, base: &str, token: &str) -> Result<EnvironmentId> {
    async fn get<T: serde::de::DeserializeOwned>(
        http: &reqwest::Client,
        base: &str,
        token: &str,
        path: &str,
    ) -> Result<T> {
        let resp = http
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("GET {path} failed"))?;
        ensure!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json::<T>()
            .await
            .with_context(|| format!("GET {path}: bad JSON"))
    }
    let workspaces: WorkspaceList = get(http, base, token, routes::WORKSPACES).await?;
    for ws in workspaces.workspaces {
        let projects: ProjectList = get(http, base, token, &routes::projects(&ws.id)).await?;
        for p in projects.projects.into_iter().filter(|p| p.name == "soak") {
            let envs: EnvironmentList =
                get(http, base, token, &routes::environments(&p.id)).await?;
            if let Some(e) = envs.environments.iter().find(|e| e.slug == "development") {
                return Ok(e.id);
            }
        }
    }
    bail!("project `soak` with a `development` environment not found on the server")
}

/// One client: reads (70 %) and writes (30 %) of its own keys until the deadline.
async fn client(shared: Arc<Shared>, index: usize) -> ClientReport {
    let mut report = ClientReport::default();
    let names: Vec<String> = (0..KEYS_PER_CLIENT)
        .map(|k| format!("SOAK_C{index:03}_K{k}"))
        .collect();
    // The version this client believes each key is at.
    let mut version: HashMap<String, i64> = names.iter().map(|n| (n.clone(), 0)).collect();
    let mut rng = (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let secrets_url = format!("{}{}", shared.base, routes::secrets(&shared.env_id));
    let mut sent = 0u64;
    while Instant::now() < shared.deadline && sent < MAX_REQUESTS_PER_CLIENT {
        sent += 1;
        rng = xorshift(rng);
        let start_phase = shared.phase();
        if rng % 10 < 3 {
            let name = &names[(rng >> 8) as usize % names.len()];
            let expected = version[name];
            // Random bytes in the shape of a sealed value (suite 0x01, nonce, ciphertext, tag):
            // the server refuses anything else, and it never opens them.
            let mut bytes = vec![0u8; 48];
            klef_core::crypto::fill_random(&mut bytes);
            bytes[0] = klef_core::crypto::SUITE_AES256GCM;
            let body = WriteSecretsRequest {
                writes: vec![SecretWrite {
                    name: name.clone(),
                    expected_version: Some(expected),
                    ciphertext: Some(Blob(bytes.clone())),
                }],
            };
            let resp = shared
                .http
                .post(&secrets_url)
                .bearer_auth(&shared.token)
                .json(&body)
                .send()
                .await;
            let phase = phase_of(start_phase, shared.phase());
            let status = resp.as_ref().map_or(0, |r| r.status().as_u16());
            *report.statuses[phase].entry(status).or_default() += 1;
            match resp {
                Ok(r) if r.status().is_success() => match r.json::<WriteSecretsResponse>().await {
                    Ok(w) if w.written.len() == 1 && w.written[0].version == expected + 1 => {
                        report.writes_acked += 1;
                        if phase == usize::from(AFTER) {
                            report.writes_acked_after_outage += 1;
                        }
                        report
                            .acked
                            .entry(name.clone())
                            .or_default()
                            .insert(expected + 1, bytes);
                        version.insert(name.clone(), expected + 1);
                    }
                    Ok(w) => report.violations.push(format!(
                        "{name}: wrote on version {expected}, acknowledged as {:?}",
                        w.written.iter().map(|s| s.version).collect::<Vec<_>>()
                    )),
                    Err(e) => report
                        .violations
                        .push(format!("{name}: unreadable write answer: {e}")),
                },
                Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                    // An earlier attempt whose answer was lost did land: catch up.
                    match r
                        .json::<ErrorBody>()
                        .await
                        .ok()
                        .and_then(|b| b.error.conflict)
                    {
                        Some(c) if c.actual > expected => {
                            version.insert(name.clone(), c.actual);
                        }
                        other => report
                            .violations
                            .push(format!("{name}: conflict on version {expected}: {other:?}")),
                    }
                }
                Ok(r) if r.status().is_server_error() => {
                    report.writes_unknown += 1;
                    report.unknown.entry(name.clone()).or_default().push(bytes);
                }
                Ok(r) => report
                    .violations
                    .push(format!("{name}: write answered {}", r.status())),
                Err(_) => {
                    report.writes_unknown += 1;
                    report.unknown.entry(name.clone()).or_default().push(bytes);
                }
            }
        } else {
            let resp = shared
                .http
                .get(&secrets_url)
                .bearer_auth(&shared.token)
                .send()
                .await;
            let phase = phase_of(start_phase, shared.phase());
            let status = resp.as_ref().map_or(0, |r| r.status().as_u16());
            *report.statuses[phase].entry(status).or_default() += 1;
            if let Ok(r) = resp
                && r.status().is_success()
            {
                match r.json::<SecretList>().await {
                    Ok(list) => {
                        report.reads += 1;
                        for s in list
                            .secrets
                            .iter()
                            .filter(|s| version.contains_key(&s.name))
                        {
                            let acked = report
                                .acked
                                .get(&s.name)
                                .and_then(|m| m.keys().max().copied())
                                .unwrap_or(0);
                            if s.version < acked {
                                report.violations.push(format!(
                                    "{}: read version {} after version {acked} was acknowledged",
                                    s.name, s.version
                                ));
                            }
                        }
                    }
                    Err(e) => report.violations.push(format!("unreadable list: {e}")),
                }
            }
        }
        // Pacing: 0–15 ms between requests, so 2 cores serve every client.
        tokio::time::sleep(Duration::from_millis((rng >> 16) % 16)).await;
    }
    report
}

/// The phase a request belongs to: the outage if it overlapped it.
fn phase_of(start: u8, end: u8) -> usize {
    if start <= OUTAGE && end >= OUTAGE {
        usize::from(OUTAGE)
    } else {
        usize::from(start)
    }
}

/// Every key's history: versions 1..n once each, acknowledged bytes intact, nothing else than
/// the client's own unacknowledged attempts.
async fn verify_histories(shared: &Shared, reports: &[ClientReport]) -> Vec<String> {
    let mut failures = Vec::new();
    for (i, report) in reports.iter().enumerate() {
        for k in 0..KEYS_PER_CLIENT {
            let name = format!("SOAK_C{i:03}_K{k}");
            let url = format!(
                "{}{}",
                shared.base,
                routes::secret_history(&shared.env_id, &name)
            );
            let list = match history(shared, &url).await {
                Ok(l) => l,
                Err(e) => {
                    failures.push(format!("{name}: history unreadable: {e:#}"));
                    continue;
                }
            };
            let acked = report.acked.get(&name);
            let unknown = report.unknown.get(&name);
            for (pos, s) in list.secrets.iter().enumerate() {
                let want = i64::try_from(pos).unwrap_or(i64::MAX) + 1;
                if s.version != want {
                    failures.push(format!(
                        "{name}: history has version {} at position {want} (duplicated or missing)",
                        s.version
                    ));
                    break;
                }
                let bytes = s.ciphertext.as_ref().map(|b| b.0.as_slice());
                let ok = match acked.and_then(|m| m.get(&s.version)) {
                    Some(expected) => bytes == Some(expected.as_slice()),
                    None => unknown.is_some_and(|u| u.iter().any(|x| Some(x.as_slice()) == bytes)),
                };
                if !ok {
                    failures.push(format!(
                        "{name}: version {} holds bytes this client never wrote there",
                        s.version
                    ));
                }
            }
            for v in acked.into_iter().flat_map(HashMap::keys) {
                if !list.secrets.iter().any(|s| s.version == *v) {
                    failures.push(format!("{name}: acknowledged version {v} is lost"));
                }
            }
            // The same bytes twice would be a write applied twice.
            let mut seen = std::collections::HashSet::new();
            for s in &list.secrets {
                if let Some(b) = &s.ciphertext
                    && !seen.insert(b.0.clone())
                {
                    failures.push(format!("{name}: one write appears twice"));
                }
            }
        }
    }
    failures
}

async fn history(shared: &Shared, url: &str) -> Result<SecretList> {
    let resp = shared
        .http
        .get(url)
        .bearer_auth(&shared.token)
        .send()
        .await?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        // A key this client never managed to write.
        return Ok(SecretList {
            secrets: Vec::new(),
        });
    }
    ensure!(resp.status().is_success(), "answered {}", resp.status());
    Ok(resp.json().await?)
}

fn summarize(
    opts: &Options,
    reports: &[ClientReport],
    rss: &[u64],
    mut failures: Vec<String>,
    load_time: Duration,
    outage: Duration,
) -> Summary {
    let mut by_phase: Vec<HashMap<u16, u64>> = vec![HashMap::new(); 3];
    for r in reports {
        for (phase, statuses) in r.statuses.iter().enumerate() {
            for (status, n) in statuses {
                *by_phase[phase].entry(*status).or_default() += n;
            }
        }
        failures.extend(r.violations.iter().cloned());
    }
    let count = |phase: usize, pred: &dyn Fn(u16) -> bool| -> u64 {
        by_phase[phase]
            .iter()
            .filter(|(s, _)| pred(**s))
            .map(|(_, n)| n)
            .sum()
    };
    for phase in [BEFORE, AFTER].map(usize::from) {
        let errors = count(phase, &|s| s >= 500 || s == 0);
        if errors > 0 {
            failures.push(format!(
                "{errors} server errors or unanswered requests {} the outage",
                PHASES[phase]
            ));
        }
    }
    let total: u64 = by_phase.iter().flat_map(HashMap::values).sum();
    let reads: u64 = reports.iter().map(|r| r.reads).sum();
    let acked: u64 = reports.iter().map(|r| r.writes_acked).sum();
    let unknown: u64 = reports.iter().map(|r| r.writes_unknown).sum();
    let after: u64 = reports.iter().map(|r| r.writes_acked_after_outage).sum();
    if after == 0 {
        failures
            .push("no write was acknowledged after the restart: the server did not recover".into());
    }

    // Start: the first sample after a warm-up of a tenth of the run (pools and caches filled).
    let warm = (rss.len() / 10).min(rss.len().saturating_sub(1));
    let (start, peak, end) = (
        rss.get(warm).copied().unwrap_or(0),
        rss.iter().copied().max().unwrap_or(0),
        rss.last().copied().unwrap_or(0),
    );
    if rss.is_empty() {
        failures.push("no memory sample of the server".into());
    } else if end > 2 * start + 20 * 1024 {
        failures.push(format!(
            "server memory grew: VmRSS {start} KiB after warm-up, {end} KiB at the end"
        ));
    }

    let phase_json: serde_json::Map<String, Value> = PHASES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut statuses: Vec<_> = by_phase[i].iter().collect();
            statuses.sort();
            let map: serde_json::Map<String, Value> = statuses
                .into_iter()
                .map(|(s, n)| {
                    let key = if *s == 0 {
                        "no_answer".into()
                    } else {
                        s.to_string()
                    };
                    (key, json!(n))
                })
                .collect();
            ((*name).to_owned(), Value::Object(map))
        })
        .collect();
    let e5 = |phase: usize| count(phase, &|s| s >= 500);
    let line = format!(
        "soak: {} {} clients × {} s: {total} requests ({reads} reads, {acked} writes acknowledged, {unknown} unknown), \
         5xx before/outage/after {}/{}/{} (outage {:.1} s), VmRSS start/peak/end {}/{}/{} MiB, {}",
        if failures.is_empty() { "ok" } else { "FAILED" },
        opts.clients,
        opts.seconds,
        e5(0),
        e5(1),
        e5(2),
        outage.as_secs_f64(),
        start / 1024,
        peak / 1024,
        end / 1024,
        if failures.is_empty() {
            "no lost or duplicated write".to_owned()
        } else {
            format!("{} failures", failures.len())
        }
    );
    let json = json!({
        "ok": failures.is_empty(),
        "seconds": opts.seconds,
        "clients": opts.clients,
        "load_seconds": load_time.as_secs_f64(),
        "outage_seconds": outage.as_secs_f64(),
        "requests": total,
        "reads": reads,
        "writes_acknowledged": acked,
        "writes_acknowledged_after_outage": after,
        "writes_unknown_outcome": unknown,
        "statuses_by_phase": phase_json,
        "vm_rss_kib": {"start": start, "peak": peak, "end": end, "samples": rss.len()},
        "failures": failures,
    });
    Summary {
        line,
        json,
        failures,
    }
}

/// A `klef-server` child on loopback, killed on drop; its log goes to `target/soak-server.log`.
struct ServerProcess {
    child: Child,
    pid: u32,
    url: String,
}

impl ServerProcess {
    fn start(bin_dir: &Path, database_url: &str, work: &Path, target: &Path) -> Result<Self> {
        let mut cmd = Command::new(bin_dir.join("klef-server"));
        klef_testkit::scrub_inherited(&mut cmd);
        cmd.args(["--listen", "127.0.0.1:0", "--database-url", database_url])
            .env("RUST_LOG", "info")
            .env("KLEF_HOME", work.join("server"))
            .current_dir(work);
        let log_path: PathBuf = target.join("soak-server.log");
        let started = klef_testkit::spawn_until_ready_logging(cmd, START_TIMEOUT, Some(&log_path))
            .map_err(|e| anyhow::anyhow!("klef-server did not start: {e}"))?;
        let addr = started.addr();
        let child = started.child;
        let server = Self {
            pid: child.id(),
            child,
            url: format!("http://{addr}"),
        };
        // The soak only ever talks to loopback (dropping `server` kills it).
        ensure!(
            addr.ip().is_loopback(),
            "klef-server announced {addr}, not a loopback address"
        );
        Ok(server)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn postgres_reachable() -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], 5432));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// The version of the machine's cluster `main` (`/etc/postgresql/<version>/main`).
fn pg_cluster_version() -> Result<String> {
    let entries = std::fs::read_dir("/etc/postgresql")
        .context("no /etc/postgresql: the soak restarts the machine's PostgreSQL cluster")?;
    entries
        .flatten()
        .filter(|e| e.path().join("main").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .context("no PostgreSQL cluster `main` under /etc/postgresql")
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .context("failed to run psql")?;
    ensure!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn hex_id() -> String {
    let mut b = [0u8; 6];
    klef_core::crypto::fill_random(&mut b);
    b.iter().fold(String::new(), |mut s, x| {
        use std::fmt::Write as _;
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
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

    #[test]
    fn a_request_overlapping_the_outage_belongs_to_it() {
        assert_eq!(phase_of(BEFORE, BEFORE), 0);
        assert_eq!(phase_of(BEFORE, OUTAGE), 1);
        assert_eq!(phase_of(BEFORE, AFTER), 1);
        assert_eq!(phase_of(OUTAGE, AFTER), 1);
        assert_eq!(phase_of(AFTER, AFTER), 2);
    }
}
