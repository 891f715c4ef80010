//! `cargo xtask fuzz [--seconds N] [--asan] [--write-docs] [TARGET…]`: builds the cargo-fuzz
//! crate in `fuzz/` and runs each target (all of them by default) for `N` seconds (default 30),
//! then prints one line and one markdown table row per target, writes
//! `target/fuzz-summary.json`, and fails when any target crashed.
//!
//! # Fuzzing on the stable toolchain
//!
//! `rust-toolchain.toml` pins stable 1.95 and no nightly can be fetched here. cargo-fuzz only
//! needs nightly for the sanitizers (`-Zsanitizer=…`) and `-Zbuild-std`; with
//! `--sanitizer none` it passes nothing but stable flags — `-Cpasses=sancov-module`,
//! `-Cllvm-args=-sanitizer-coverage-{level=4,inline-8bit-counters,pc-table,trace-compares,
//! stack-depth}`, `-Cllvm-args=-simplifycfg-branch-fold-threshold=0`, `--cfg fuzzing`,
//! `-Cdebug-assertions` and `-Coverflow-checks` — and `libfuzzer-sys` compiles libFuzzer
//! itself from C++ with the machine's g++. So the default run is fully coverage-guided on plain
//! stable, with debug assertions and overflow checks on; Klef's own crates forbid `unsafe`, so
//! `AddressSanitizer` would only watch dependencies. `--asan` adds it anyway: it sets
//! `RUSTC_BOOTSTRAP=1` (the stable compiler then accepts `-Zsanitizer=address`; the `ASan`
//! runtime ships with the stable standard library) and builds into `target/fuzz-asan`, about
//! three times slower to build and four times slower to run.
//!
//! # Corpora
//!
//! Each target reads its committed seeds from `fuzz/corpus/<target>/` (never written) and keeps
//! what it discovers in `target/fuzz/corpus/<target>/`, so later local runs start where the
//! last one stopped while the repository only holds the hand-picked seeds and regression inputs.
//! libFuzzer runs every seed before mutating, so a crash input committed there is re-checked on
//! every run. Crash inputs are written to `fuzz/artifacts/<target>/` (ignored by git).

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{cargo, quick_install, step};

/// The cargo-fuzz release whose stable-compatible flags are described above.
const CARGO_FUZZ: &str = "cargo-fuzz@0.13.2";
/// Seconds per target when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 30;
/// libFuzzer's per-input time limit: an input slower than this is reported as a hang.
const INPUT_TIMEOUT_SECONDS: u64 = 20;
/// Markers around the generated results in `docs/security.md`.
const DOC_START: &str = "<!-- fuzz-results:start (written by `cargo xtask fuzz --write-docs`) -->";
/// See [`DOC_START`].
const DOC_END: &str = "<!-- fuzz-results:end -->";

/// Parsed command line.
struct Options {
    seconds: u64,
    asan: bool,
    write_docs: bool,
    targets: Vec<String>,
}

/// How one target's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Ran for the whole time without a failure.
    Clean,
    /// libFuzzer found a crashing, panicking, hanging or memory-hungry input.
    Crash { artifact: Option<String> },
    /// The run failed without naming an input (could not start, killed, …).
    Failed { status: String },
}

/// One target's figures.
#[derive(Debug, Clone)]
struct TargetReport {
    name: String,
    executions: u64,
    wall_seconds: f64,
    coverage: Option<u64>,
    new_units: Option<u64>,
    exec_per_sec: Option<u64>,
    seeds: usize,
    outcome: Outcome,
    log: PathBuf,
}

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let opts = parse_args(args)?;
    let all = discover_targets(root)?;
    let targets = if opts.targets.is_empty() {
        all
    } else {
        for t in &opts.targets {
            if !all.contains(t) {
                bail!(
                    "unknown fuzz target `{t}`; the targets are: {}",
                    all.join(", ")
                );
            }
        }
        opts.targets.clone()
    };

    ensure_cargo_fuzz()?;

    let (sanitizer, target_dir) = if opts.asan {
        ("address", root.join("target/fuzz-asan"))
    } else {
        ("none", root.join("target/fuzz"))
    };
    let target_dir_str = target_dir.to_string_lossy().into_owned();
    let fuzz_cmd = |sub: &str| {
        let mut cmd = cargo(&[
            "fuzz",
            sub,
            "--sanitizer",
            sanitizer,
            "--target-dir",
            &target_dir_str,
        ]);
        if opts.asan {
            cmd.env("RUSTC_BOOTSTRAP", "1");
        }
        cmd
    };

    let build_started = Instant::now();
    let mut build = fuzz_cmd("build");
    if targets.len() == 1 {
        build.arg(&targets[0]);
    }
    step(&format!("cargo fuzz build --sanitizer {sanitizer}"), build)?;
    eprintln!(
        "xtask: fuzz targets built in {:.0} s",
        build_started.elapsed().as_secs_f64()
    );

    let logs = target_dir.join("logs");
    std::fs::create_dir_all(&logs)
        .with_context(|| format!("failed to create {}", logs.display()))?;
    let mut reports = Vec::new();
    for name in &targets {
        let scratch = target_dir.join("corpus").join(name);
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("failed to create {}", scratch.display()))?;
        let seeds_dir = root.join("fuzz/corpus").join(name);
        let seeds = count_files(&seeds_dir);
        let log = logs.join(format!("{name}.log"));
        let out =
            File::create(&log).with_context(|| format!("failed to create {}", log.display()))?;
        let err = out
            .try_clone()
            .context("failed to duplicate the log file handle")?;

        let mut cmd = fuzz_cmd("run");
        cmd.arg(name).arg(&scratch);
        if seeds > 0 {
            cmd.arg(&seeds_dir);
        }
        cmd.arg("--").args([
            format!("-max_total_time={}", opts.seconds),
            format!("-timeout={INPUT_TIMEOUT_SECONDS}"),
            "-print_final_stats=1".to_owned(),
        ]);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);

        eprintln!(
            "xtask: fuzzing {name} for {} s ({seeds} seeds, log {})",
            opts.seconds,
            log.display()
        );
        let started = Instant::now();
        let exit = cmd
            .status()
            .with_context(|| format!("failed to start cargo fuzz run {name}"))?;
        let wall_seconds = started.elapsed().as_secs_f64();
        let text = std::fs::read_to_string(&log)
            .with_context(|| format!("failed to read {}", log.display()))?;
        let stats = parse_log(&text);
        let outcome = if exit.success() {
            Outcome::Clean
        } else if stats.crashed {
            Outcome::Crash {
                artifact: stats.artifact.clone(),
            }
        } else {
            Outcome::Failed {
                status: exit.to_string(),
            }
        };
        let report = TargetReport {
            name: name.clone(),
            executions: stats.executions.unwrap_or(0),
            wall_seconds,
            coverage: stats.coverage,
            new_units: stats.new_units,
            exec_per_sec: stats.exec_per_sec,
            seeds,
            outcome,
            log,
        };
        print_report_line(&report, &text, sanitizer, &target_dir_str);
        reports.push(report);
    }

    let summary_path = root.join("target/fuzz-summary.json");
    std::fs::write(
        &summary_path,
        summary_json(&reports, opts.seconds, sanitizer),
    )
    .with_context(|| format!("failed to write {}", summary_path.display()))?;
    eprintln!("xtask: wrote {}", summary_path.display());

    let table = markdown_table(&reports, opts.seconds, sanitizer);
    println!("{table}");
    if opts.write_docs {
        write_docs(root, &table)?;
    }

    let bad: Vec<&str> = reports
        .iter()
        .filter(|r| r.outcome != Outcome::Clean)
        .map(|r| r.name.as_str())
        .collect();
    if !bad.is_empty() {
        bail!("fuzzing failed for: {}", bad.join(", "));
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        seconds: DEFAULT_SECONDS,
        asan: false,
        write_docs: false,
        targets: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let v = it.next().context("--seconds needs a value")?;
                opts.seconds = parse_seconds(v)?;
            }
            s if s.starts_with("--seconds=") => {
                opts.seconds = parse_seconds(&s["--seconds=".len()..])?;
            }
            "--asan" => opts.asan = true,
            "--write-docs" => opts.write_docs = true,
            "-h" | "--help" => {
                eprintln!(
                    "usage: cargo xtask fuzz [--seconds N] [--asan] [--write-docs] [TARGET…]\n\
                     runs each fuzz target (default: all) for N seconds (default {DEFAULT_SECONDS})"
                );
                bail!("no fuzzing done");
            }
            s if s.starts_with('-') => bail!("unknown option `{s}` for `cargo xtask fuzz`"),
            t => opts.targets.push(t.to_owned()),
        }
    }
    Ok(opts)
}

fn parse_seconds(v: &str) -> Result<u64> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("--seconds expects a positive whole number, got `{v}`"),
    }
}

/// The fuzz targets: every `fuzz/fuzz_targets/*.rs`, sorted.
fn discover_targets(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("fuzz/fuzz_targets");
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("failed to list {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            out.push(stem.to_owned());
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("no fuzz targets in {}", dir.display());
    }
    Ok(out)
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .count()
    })
}

/// Installs cargo-fuzz when `cargo fuzz` is not available.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = cargo(&["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    eprintln!(
        "xtask: cargo-fuzz is missing; installing it with `cargo install --locked {CARGO_FUZZ}` \
         (about a minute)"
    );
    step(
        &format!("cargo install --locked {CARGO_FUZZ}"),
        quick_install(CARGO_FUZZ),
    )
}

/// What a libFuzzer log says.
#[derive(Debug, Default, PartialEq, Eq)]
struct LogStats {
    executions: Option<u64>,
    coverage: Option<u64>,
    new_units: Option<u64>,
    exec_per_sec: Option<u64>,
    crashed: bool,
    artifact: Option<String>,
}

/// Reads the figures out of libFuzzer's output: the final `stat::number_of_executed_units`
/// (from `-print_final_stats=1`), else `Done N runs`, else the last `#N` status line (a crash
/// stops libFuzzer before its final statistics).
fn parse_log(text: &str) -> LogStats {
    let mut stats = LogStats::default();
    let mut last_status: Option<u64> = None;
    let mut done: Option<u64> = None;
    let mut final_units: Option<u64> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("stat::number_of_executed_units:") {
            final_units = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("stat::new_units_added:") {
            stats.new_units = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("stat::average_exec_per_sec:") {
            stats.exec_per_sec = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("Done ") {
            done = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if let Some(rest) = line.strip_prefix('#') {
            // `#1040994	DONE   cov: 327 ft: 899 …` or `#4096	pulse  cov: …`
            let mut words = rest.split_whitespace();
            if let Some(n) = words.next().and_then(|n| n.parse().ok()) {
                last_status = Some(n);
            }
            let mut words = line.split_whitespace();
            while let Some(w) = words.next() {
                if w == "cov:" {
                    if let Some(c) = words.next().and_then(|c| c.parse().ok()) {
                        stats.coverage = Some(c);
                    }
                    break;
                }
            }
        } else if line.contains("ERROR: libFuzzer:")
            || (line.starts_with("==") && line.contains("ERROR:"))
            || line.contains("panicked at")
        {
            stats.crashed = true;
        } else if let Some(rest) = line.split("Test unit written to ").nth(1) {
            stats.crashed = true;
            stats.artifact = Some(rest.trim().to_owned());
        }
    }
    stats.executions = final_units.or(done).or(last_status);
    stats
}

fn print_report_line(report: &TargetReport, log: &str, sanitizer: &str, target_dir: &str) {
    let base = format!(
        "xtask: fuzz {}: {} executions in {:.0} s",
        report.name, report.executions, report.wall_seconds
    );
    match &report.outcome {
        Outcome::Clean => eprintln!("{base}, no crash"),
        Outcome::Crash { artifact } => {
            eprintln!("{base}, CRASH");
            eprintln!("---- from {} ----", report.log.display());
            for line in crash_excerpt(log) {
                eprintln!("{line}");
            }
            eprintln!("----");
            if let Some(path) = artifact {
                eprintln!(
                    "xtask: reproduce with `cargo fuzz run --sanitizer {sanitizer} \
                     --target-dir {target_dir} {} {path}`, then add the input as a regression \
                     test (or to fuzz/corpus/{})",
                    report.name, report.name
                );
            }
        }
        Outcome::Failed { status } => {
            eprintln!(
                "{base}, FAILED ({status}) without a crash input; see {}",
                report.log.display()
            );
        }
    }
}

/// The part of a crashed run's log worth showing: from the first panic or sanitizer report,
/// at most 40 lines, plus the line naming the saved input (else the log's last 40 lines).
fn crash_excerpt(log: &str) -> Vec<&str> {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines
        .iter()
        .position(|l| {
            l.contains("panicked at")
                || l.contains("ERROR: libFuzzer:")
                || (l.starts_with("==") && l.contains("ERROR:"))
        })
        .unwrap_or_else(|| lines.len().saturating_sub(40));
    let mut out: Vec<&str> = lines[start..].iter().take(40).copied().collect();
    if let Some(written) = lines[start..]
        .iter()
        .skip(40)
        .find(|l| l.contains("Test unit written to"))
    {
        out.push(written);
    }
    out
}

fn outcome_word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Clean => "none",
        Outcome::Crash { .. } => "CRASH",
        Outcome::Failed { .. } => "FAILED",
    }
}

/// The results as a markdown table (what `--write-docs` puts in `docs/security.md`).
fn markdown_table(reports: &[TargetReport], seconds: u64, sanitizer: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Latest `cargo xtask fuzz --seconds {seconds}` run (sanitizer: {sanitizer}, libFuzzer \
         on stable Rust, 2-core machine):\n"
    );
    out.push_str("| target | seeds | executions | exec/s | coverage (edges) | crashes |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: | --- |\n");
    for r in reports {
        let rate = if let Some(rate) = r.exec_per_sec {
            rate.to_string()
        } else if r.wall_seconds > 0.0 {
            #[expect(
                clippy::cast_precision_loss,
                reason = "an execution count far below 2^52, shown rounded"
            )]
            let executions = r.executions as f64;
            format!("{:.0}", executions / r.wall_seconds)
        } else {
            "-".to_owned()
        };
        let cov = r.coverage.map_or_else(|| "-".to_owned(), |c| c.to_string());
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            r.name,
            r.seeds,
            r.executions,
            rate,
            cov,
            outcome_word(&r.outcome)
        );
    }
    out
}

/// Replaces the text between the result markers in `docs/security.md`.
fn write_docs(root: &Path, table: &str) -> Result<()> {
    let path = root.join("docs/security.md");
    let doc = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let (Some(start), Some(end)) = (doc.find(DOC_START), doc.find(DOC_END)) else {
        bail!(
            "{} has no `{DOC_START}` … `{DOC_END}` markers to write between",
            path.display()
        );
    };
    if end < start {
        bail!(
            "{}: the fuzz result markers are out of order",
            path.display()
        );
    }
    let new = format!("{}{DOC_START}\n{table}{}", &doc[..start], &doc[end..]);
    std::fs::write(&path, new).with_context(|| format!("failed to write {}", path.display()))?;
    eprintln!("xtask: updated the fuzz results in {}", path.display());
    Ok(())
}

/// `target/fuzz-summary.json`, written with `serde_json` (strings escaped by it, never by hand).
fn summary_json(reports: &[TargetReport], seconds: u64, sanitizer: &str) -> String {
    let crashes = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Crash { .. }))
        .count();
    let failures = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
        .count();
    let targets: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            let (has_crash, artifact, failure) = match &r.outcome {
                Outcome::Clean => (false, None, None),
                Outcome::Crash { artifact } => (true, artifact.as_deref(), None),
                Outcome::Failed { status } => (false, None, Some(status.as_str())),
            };
            serde_json::json!({
                "name": r.name,
                "executions": r.executions,
                "wall_seconds": (r.wall_seconds * 10.0).round() / 10.0,
                "coverage": r.coverage,
                "new_units": r.new_units,
                "seeds": r.seeds,
                "crashed": has_crash,
                "artifact": artifact,
                "failure": failure,
                "log": r.log.to_string_lossy(),
            })
        })
        .collect();
    let summary = serde_json::json!({
        "seconds_per_target": seconds,
        "sanitizer": sanitizer,
        "crashes": crashes,
        "failures": failures,
        "targets": targets,
    });
    serde_json::to_string_pretty(&summary).expect("a JSON value serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_clean_run() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #1040994\tDONE   cov: 327 ft: 899 corp: 256/7510b lim: 4096 exec/s: 94635\n\
                   Done 1040994 runs in 11 second(s)\n\
                   stat::number_of_executed_units: 1040995\nstat::new_units_added:          514\n";
        assert_eq!(
            parse_log(log),
            LogStats {
                executions: Some(1_040_995),
                coverage: Some(327),
                new_units: Some(514),
                exec_per_sec: None,
                crashed: false,
                artifact: None,
            }
        );
    }

    #[test]
    fn parses_a_crash() {
        let log = "#1024\tpulse  cov: 50 ft: 60 corp: 3/9b\n#1500\tNEW    cov: 52 ft: 61\n\
                   thread '<unnamed>' panicked at fuzz_targets/x.rs:3:5:\nboom\n\
                   ==123== ERROR: libFuzzer: deadly signal\n\
                   artifact_prefix='/w/fuzz/artifacts/x/'; Test unit written to /w/fuzz/artifacts/x/crash-abc\n";
        let stats = parse_log(log);
        assert!(stats.crashed);
        assert_eq!(stats.executions, Some(1500));
        assert_eq!(stats.coverage, Some(52));
        assert_eq!(
            stats.artifact.as_deref(),
            Some("/w/fuzz/artifacts/x/crash-abc")
        );
    }

    #[test]
    fn crash_excerpt_starts_at_the_panic() {
        let mut log = String::from("#1\tINITED\n");
        log.push_str("thread '<unnamed>' panicked at fuzz_targets/x.rs:3:5:\nboom\n");
        for i in 0..60 {
            let _ = writeln!(log, "  {i}: frame");
        }
        log.push_str("Test unit written to a/crash-1\n");
        let excerpt = crash_excerpt(&log);
        assert!(excerpt[0].contains("panicked at"));
        assert_eq!(excerpt.len(), 41);
        assert_eq!(excerpt[40], "Test unit written to a/crash-1");
    }

    #[test]
    fn seconds_must_be_positive() {
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("x").is_err());
        assert_eq!(parse_seconds("15").unwrap(), 15);
        let opts = parse_args(&["--seconds=5".into(), "klef_file".into()]).unwrap();
        assert_eq!((opts.seconds, opts.targets.len()), (5, 1));
        assert!(parse_args(&["--bogus".into()]).is_err());
    }

    #[test]
    fn json_is_escaped_and_well_formed() {
        let mut reports = vec![TargetReport {
            name: "t\"\n\u{1}".into(),
            executions: 7,
            wall_seconds: 1.0,
            coverage: None,
            new_units: Some(1),
            exec_per_sec: None,
            seeds: 2,
            outcome: Outcome::Crash {
                artifact: Some("a/crash-1".into()),
            },
            log: PathBuf::from("l.log"),
        }];
        let json: serde_json::Value =
            serde_json::from_str(&summary_json(&reports, 3, "none")).unwrap();
        assert_eq!(json["crashes"], 1);
        assert_eq!(json["targets"][0]["name"], "t\"\n\u{1}");
        assert_eq!(json["targets"][0]["artifact"], "a/crash-1");
        assert!(json["targets"][0]["coverage"].is_null());
        reports[0].name = "t".into();
        let table = markdown_table(&reports, 3, "none");
        assert!(table.contains("| `t` | 2 | 7 | 7 | - | CRASH |"));
    }
}
