//! The load phase: the HTTP session, N clients running until the deadline, the `PostgreSQL`
//! restart half-way, the memory sampler, then verification and the summary.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use klef_core::ids::EnvironmentId;
use klef_core::wire::{
    EnvironmentList, LoginRequest, ProjectList, SecretText, SessionResponse, WorkspaceList, routes,
};

use super::check::{summarize, verify_histories};
use super::client::{Shared, client};
use super::server::{ServerProcess, postgres_reachable, vm_rss_kib};
use super::{ACCOUNT_PASSWORD, AFTER, BEFORE, EMAIL, OUTAGE, Options, REQUEST_TIMEOUT, Summary};

pub(super) async fn load(opts: &Options, server: &ServerProcess, cluster: &str) -> Result<Summary> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .context("failed to build the HTTP client")?;
    let base = server.url.clone();
    let token = login(&http, &base).await?;
    let env_id = load_env(&http, &base, &token).await?;

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

/// A new environment `load` of project `soak` made through the API without signed state (as
/// a client from before manifests would): the soak measures the server under concurrent
/// writers and an outage, and its clients send shaped random bytes, which no manifest could
/// vouch for. Its key is random bytes in the shape of a sealed key: nothing is ever opened.
async fn load_env(http: &reqwest::Client, base: &str, token: &str) -> Result<EnvironmentId> {
    let development = development_env(http, base, token).await?;
    let project = {
        let resp = http
            .get(format!("{base}{}", routes::environment_key(&development)))
            .bearer_auth(token)
            .send()
            .await
            .context("failed to read the soak environment")?;
        ensure!(resp.status().is_success(), "GET key: {}", resp.status());
        resp.json::<klef_core::wire::EnvironmentKeyResponse>()
            .await
            .context("bad key answer")?
            .environment
            .project_id
    };
    let mut sealed = vec![0u8; 61];
    klef_core::crypto::fill_random(&mut sealed);
    sealed[0] = klef_core::crypto::SUITE_AES256GCM;
    let env = klef_core::model::Environment {
        id: EnvironmentId::random(),
        project_id: project,
        slug: "load".into(),
        name: "load".into(),
        key_version: 1,
        created_at: 0,
    };
    let resp = http
        .post(format!("{base}{}", routes::environments(&project)))
        .bearer_auth(token)
        .json(&klef_core::wire::CreateEnvironmentRequest {
            environment: klef_core::model::NewEnvironment {
                environment: env.clone(),
                sealed_key: klef_core::model::Blob(sealed),
                manifest: None,
            },
            api_key_grants: Vec::new(),
        })
        .send()
        .await
        .context("failed to create the load environment")?;
    ensure!(
        resp.status().is_success(),
        "creating the load environment: {}",
        resp.status()
    );
    Ok(env.id)
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
