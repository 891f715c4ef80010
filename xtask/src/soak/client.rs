//! One soak client: its mix of reads and writes against its own keys, and what it saw
//! (`ClientReport`), with the phase bookkeeping each request is counted under.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use klef_core::ids::EnvironmentId;
use klef_core::model::{Blob, SecretWrite};
use klef_core::wire::{ErrorBody, SecretList, WriteSecretsRequest, WriteSecretsResponse, routes};

use super::{AFTER, KEYS_PER_CLIENT, MAX_REQUESTS_PER_CLIENT, OUTAGE};

/// What one client saw.
#[derive(Default)]
pub(super) struct ClientReport {
    /// Answers by phase and status (0 = no answer: timeout or connection error).
    pub(super) statuses: [HashMap<u16, u64>; 3],
    pub(super) reads: u64,
    pub(super) writes_acked: u64,
    /// Writes whose outcome is unknown (5xx or no answer).
    pub(super) writes_unknown: u64,
    pub(super) writes_acked_after_outage: u64,
    /// Acknowledged writes per key name: version → bytes.
    pub(super) acked: HashMap<String, HashMap<i64, Vec<u8>>>,
    /// Bytes of unacknowledged attempts per key name.
    pub(super) unknown: HashMap<String, Vec<Vec<u8>>>,
    /// Protocol violations (wrong version acknowledged, stale read, odd status).
    pub(super) violations: Vec<String>,
}

pub(super) struct Shared {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) token: String,
    pub(super) env_id: EnvironmentId,
    pub(super) phase: AtomicU8,
    pub(super) deadline: Instant,
}

impl Shared {
    fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }
}

/// One client: reads (70 %) and writes (30 %) of its own keys until the deadline.
pub(super) async fn client(shared: Arc<Shared>, index: usize) -> ClientReport {
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
                manifest: None,
                promoted_from: None,
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

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::BEFORE;

    #[test]
    fn a_request_overlapping_the_outage_belongs_to_it() {
        assert_eq!(phase_of(BEFORE, BEFORE), 0);
        assert_eq!(phase_of(BEFORE, OUTAGE), 1);
        assert_eq!(phase_of(BEFORE, AFTER), 1);
        assert_eq!(phase_of(OUTAGE, AFTER), 1);
        assert_eq!(phase_of(AFTER, AFTER), 2);
    }
}
