//! Agent round-trip latency, run by `cargo xtask bench` (a plain `harness = false` binary built
//! with the bench profile, so the client side is optimised like the real `klef`).
//!
//! Starts the real `klef-agent` binary (`KLEF_AGENT_BIN`, else `klef-agent` next to this
//! executable or on `PATH`) in a temporary runtime directory, hands it a throwaway private key,
//! then times `KLEF_BENCH_ITERATIONS` (default 2,000) sequential `is_unlocked` and `unwrap_key`
//! requests over one connection, and the agent's resident memory afterwards. Prints one JSON
//! object on stdout (latencies in nanoseconds) and stops the agent.
//!
//! `cargo bench -p klef-agent --bench roundtrip`

use std::process::ExitCode;
use std::time::{Duration, Instant};

use klef_agent::client::{AgentClient, ClientError, default_agent_bin, ensure_running};
use klef_agent::paths::AgentPaths;
use klef_core::crypto::{Aad, SymmetricKey, generate_keypair, wrap_key};
use klef_core::ids::EnvironmentId;

/// The vault name the throwaway key is registered under.
const VAULT: &str = "bench";
/// Requests of each kind sent before timing starts.
const WARM_UP: usize = 200;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; this harness takes no arguments of its own.
    let iterations = match std::env::var("KLEF_BENCH_ITERATIONS") {
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("roundtrip: KLEF_BENCH_ITERATIONS must be a positive integer");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => 2000,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roundtrip: cannot build the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = match tempfile::Builder::new().prefix("klef-rt-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("roundtrip: cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let paths = AgentPaths::in_dir(dir.path().join("run"));
    match runtime.block_on(measure(&paths, iterations)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roundtrip: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn measure(paths: &AgentPaths, iterations: usize) -> Result<String, ClientError> {
    let mut client = ensure_running(paths, &default_agent_bin()).await?;
    let result = timed(&mut client, iterations).await;
    let rss = vm_rss_kib(client.pid());
    // Stop the agent whatever happened, then report the first error.
    let stopped = client.stop().await;
    let (is_unlocked, unwrap) = result?;
    stopped?;
    Ok(format!(
        "{{\"iterations\":{iterations},\"is_unlocked\":{},\"unwrap_key\":{},\"agent_rss_kib\":{}}}",
        summary(is_unlocked),
        summary(unwrap),
        rss.map_or_else(|| "null".to_owned(), |k| k.to_string())
    ))
}

async fn timed(
    client: &mut AgentClient,
    iterations: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), ClientError> {
    let (private, public) = generate_keypair();
    let derived = klef_core::trust::secrets::DerivedSecrets::from_bytes(&[7; 32], &[9; 32]);
    client.unlock(VAULT, &private, &derived).await?;
    let env = EnvironmentId::random();
    let aad = Aad::EnvironmentKey(&env);
    let envelope = wrap_key(&public, &SymmetricKey::generate(), &aad);

    for _ in 0..WARM_UP {
        assert!(
            client.is_unlocked(VAULT).await?,
            "the vault was just unlocked"
        );
        client.unwrap_key(VAULT, &envelope, &aad).await?;
    }
    let mut is_unlocked = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let unlocked = client.is_unlocked(VAULT).await?;
        is_unlocked.push(start.elapsed());
        assert!(unlocked, "the vault was just unlocked");
    }
    let mut unwrap = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let key = client.unwrap_key(VAULT, &envelope, &aad).await?;
        unwrap.push(start.elapsed());
        drop(key);
    }
    Ok((is_unlocked, unwrap))
}

/// `{"p50":…,"p99":…,"mean":…,"min":…,"max":…}` in nanoseconds.
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let ns = |d: Duration| d.as_nanos();
    let at = |q: f64| {
        // Nearest-rank percentile.
        #[expect(
            clippy::cast_precision_loss,
            clippy::cast_sign_loss,
            reason = "sample counts are far below 2^52"
        )]
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        ns(samples[rank - 1])
    };
    let total: u128 = samples.iter().map(Duration::as_nanos).sum();
    format!(
        "{{\"p50\":{},\"p99\":{},\"mean\":{},\"min\":{},\"max\":{}}}",
        at(0.50),
        at(0.99),
        total / samples.len() as u128,
        ns(samples[0]),
        ns(samples[samples.len() - 1])
    )
}

/// `VmRSS` of a process, in KiB.
fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
