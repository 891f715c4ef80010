//! The targets table: each goal of the design against what this run measured.

use super::report::{bytes_to_mib, kib_to_mib, ms, ns};
use super::server;
use super::{Report, TargetRow};

pub(super) fn targets(report: &Report) -> Vec<TargetRow> {
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
    let mask = median("klef_run_mask_100mb");
    #[allow(clippy::cast_precision_loss, reason = "100 MB is exact in an f64")]
    let megabytes = super::cases::MASK_BYTES as f64 / 1e6;
    row(
        "`klef run --mask`, 100 MB of output",
        "≥ 100 MB/s",
        mask.map(|m| {
            let rate = megabytes / (m / 1000.0);
            let plain = median("klef_run_100mb")
                .map_or_else(String::new, |p| format!("; {} unmasked", ms(p)));
            (format!("{rate:.0} MB/s ({}{plain})", ms(m)), rate >= 100.0)
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
    remote_targets(report, &median, &mut row);
    rows
}

/// What a target row measured and whether it passed; `None` when not measured.
type Measured = Option<(String, bool)>;

/// Issue #20: agent-served `get`/`run` against a server ≤ 1.5× the local vault's, at 0 and
/// 50 ms added delay; the cold command at 50 ms in ≤ 4 round trips (counted by the proxy).
fn remote_targets(
    report: &Report,
    median: &dyn Fn(&str) -> Option<f64>,
    row: &mut dyn FnMut(&str, &str, Measured),
) {
    use super::remote::{GET, GET_COLD, LOCAL_GET, LOCAL_RUN, RUN};
    for (what, local, ids) in [("get", LOCAL_GET, GET), ("run -- true", LOCAL_RUN, RUN)] {
        for (id, at) in ids.into_iter().zip(["loopback", "50 ms"]) {
            row(
                &format!("`klef {what}` agent-served from a server ({at}) vs local vault"),
                "≤ 1.5×",
                median(id).zip(median(local)).map(|(r, l)| {
                    (
                        format!("{:.2}× ({} vs {})", r / l, ms(r), ms(l)),
                        r / l <= 1.5,
                    )
                }),
            );
        }
    }
    let cross = median(GET_COLD[1])
        .zip(median(GET_COLD[0]))
        .map_or_else(String::new, |(f, z)| {
            format!("; timings: {:.1}", (f - z) / 50.0)
        });
    row(
        "cold `klef get` from a server at 50 ms, round trips",
        "≤ 4",
        report.remote_round_trips.as_ref().map(|t| {
            (
                format!(
                    "{} counted ({} requests, {} connections{cross})",
                    t.rounds, t.requests, t.connections
                ),
                t.rounds <= 4,
            )
        }),
    );
}
