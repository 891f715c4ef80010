//! The verdict: every key's history checked against what the clients were acknowledged, and
//! the summary (one line, `target/soak-summary.json`, the list of failures).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Result, ensure};
use klef_core::wire::{SecretList, routes};
use serde_json::{Value, json};

use super::client::{ClientReport, Shared};
use super::{AFTER, BEFORE, KEYS_PER_CLIENT, Options, PHASES, Summary};

/// Every key's history: versions 1..n once each, acknowledged bytes intact, nothing else than
/// the client's own unacknowledged attempts.
pub(super) async fn verify_histories(shared: &Shared, reports: &[ClientReport]) -> Vec<String> {
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
            manifests: Vec::new(),
            deleted: Vec::new(),
            personal: None,
        });
    }
    ensure!(resp.status().is_success(), "answered {}", resp.status());
    Ok(resp.json().await?)
}

pub(super) fn summarize(
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
