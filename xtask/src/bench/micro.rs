//! Steps 2 and 3: the criterion micro-benchmarks of klef-core, read back from
//! `target/criterion`, and the agent round trip against the real `klef-agent`.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::peers::read_json;
use super::{AgentRoundTrip, Latency, MICRO, Micro, Plan, Report};
use crate::{cargo, step};

pub(super) fn micro_benchmarks(target: &Path, plan: &Plan, report: &mut Report) -> Result<()> {
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

pub(super) fn agent_round_trip(release: &Path, plan: &Plan, report: &mut Report) -> Result<()> {
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
