//! Step 4's timer: whole commands timed with hyperfine, or a built-in repeated-run timer
//! where hyperfine cannot be installed, and the statistics and shell quoting it needs.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::peers::{apt_install, read_json, version_of};
use super::sandbox::{Sandbox, run_capture};
use super::{CaseResult, PASSWORD, Plan, Report, Stats};
use crate::test::which;

/// Times commands with hyperfine, or with a built-in repeated-run timer where hyperfine cannot
/// be installed.
pub(super) struct Runner {
    hyperfine: Option<PathBuf>,
    out: PathBuf,
    plan: Plan,
}

/// One timed command.
pub(super) struct Case<'a> {
    pub(super) id: &'static str,
    pub(super) tool: &'static str,
    pub(super) label: &'static str,
    pub(super) argv: Vec<String>,
    pub(super) cwd: &'a Path,
    pub(super) envs: Vec<(&'static str, String)>,
    /// Pipe the vault password to the command's stdin.
    pub(super) password_stdin: bool,
    /// A command run before each timed run (not timed).
    pub(super) prepare: Option<Vec<String>>,
    /// The vault password in the environment as `KLEF_BENCH_PASSWORD`, for the prepare command
    /// (never in argv or a file), without piping it to the timed command.
    pub(super) prepare_password: bool,
    pub(super) slow: bool,
}

impl<'a> Case<'a> {
    pub(super) fn new(
        id: &'static str,
        tool: &'static str,
        label: &'static str,
        argv: Vec<String>,
        cwd: &'a Path,
    ) -> Self {
        Self {
            id,
            tool,
            label,
            argv,
            cwd,
            envs: Vec::new(),
            password_stdin: false,
            prepare: None,
            prepare_password: false,
            slow: false,
        }
    }
}

impl Runner {
    pub(super) fn new(out: &Path, plan: Plan, report: &mut Report) -> Result<Self> {
        let hyperfine = if which("hyperfine") || apt_install(&["hyperfine"]) {
            Some(PathBuf::from("hyperfine"))
        } else {
            report.notes.push(
                "hyperfine could not be installed (`apt-get install -y hyperfine` failed); whole \
                 commands were timed by xtask's built-in repeated-run timer instead"
                    .into(),
            );
            None
        };
        if let Some(v) = hyperfine
            .as_ref()
            .and_then(|h| version_of(h, &["--version"]))
        {
            report.tools.insert("hyperfine".into(), v);
        }
        let dir = out.join("hyperfine");
        fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
        Ok(Self {
            hyperfine,
            out: dir,
            plan,
        })
    }

    pub(super) fn measure(
        &self,
        sandbox: &Sandbox,
        case: &Case<'_>,
        report: &mut Report,
    ) -> Result<()> {
        let runs = if case.slow {
            self.plan.slow_runs
        } else {
            self.plan.fast_runs
        };
        let warmup = if case.slow {
            self.plan.warmup.min(1)
        } else {
            self.plan.warmup
        };
        let mut shown = String::new();
        for (k, v) in &case.envs {
            let _ = write!(shown, "{k}={} ", shell_quote(v));
        }
        let line = if case.password_stdin {
            format!(
                "printf '%s\\n' \"$KLEF_BENCH_PASSWORD\" | {}",
                shell_join(&case.argv)
            )
        } else {
            shell_join(&case.argv)
        };
        eprintln!("xtask: timing {} ({runs} runs)", case.label);
        let times = if let Some(hyperfine) = &self.hyperfine {
            let json = self.out.join(format!("{}.json", case.id));
            let mut cmd = sandbox.command(hyperfine, case.cwd);
            cmd.args(["--style", "basic", "--export-json"])
                .arg(&json)
                .args(["--warmup", &warmup.to_string(), "--runs", &runs.to_string()]);
            let mut display = format!(
                "{shown}hyperfine --export-json target/bench/hyperfine/{}.json --warmup {warmup} \
                 --runs {runs}",
                case.id
            );
            if !case.password_stdin {
                cmd.arg("-N");
                display.push_str(" -N");
            }
            if let Some(prepare) = &case.prepare {
                cmd.args(["--prepare", &shell_join(prepare)]);
                let _ = write!(display, " --prepare {}", shell_quote(&shell_join(prepare)));
            }
            cmd.args(["--command-name", case.id]).arg(&line);
            let _ = write!(display, " {}", shell_quote(&line));
            for (k, v) in &case.envs {
                cmd.env(k, v);
            }
            if case.password_stdin || case.prepare_password {
                cmd.env("KLEF_BENCH_PASSWORD", PASSWORD);
            }
            cmd.stdin(Stdio::null());
            let status = cmd.status().context("failed to start hyperfine")?;
            if !status.success() {
                bail!("hyperfine failed on {} ({status})", case.label);
            }
            report
                .commands
                .push(format!("(in {}) {display}", case.cwd.display()));
            let v = read_json(&json)?;
            v["results"][0]["times"]
                .as_array()
                .context("hyperfine's JSON has no times")?
                .iter()
                .filter_map(Value::as_f64)
                .collect::<Vec<_>>()
        } else {
            report.commands.push(format!(
                "(in {}) {shown}{line}   # built-in timer: {warmup} warm-up + {runs} runs",
                case.cwd.display()
            ));
            Self::builtin(sandbox, case, warmup, runs)?
        };
        let stats =
            Stats::from_seconds(&times).with_context(|| format!("no runs of {}", case.label))?;
        report.cases.push(CaseResult {
            id: case.id,
            tool: case.tool,
            label: case.label.to_owned(),
            command: format!("{shown}{line}"),
            stats: Some(stats),
            skipped: None,
        });
        Ok(())
    }

    /// The fallback timer: spawn, wait, repeat; the command's output is discarded.
    fn builtin(sandbox: &Sandbox, case: &Case<'_>, warmup: u32, runs: u32) -> Result<Vec<f64>> {
        let mut times = Vec::with_capacity(runs as usize);
        for i in 0..warmup + runs {
            if let Some(prepare) = &case.prepare {
                let mut p = sandbox.command(&prepare[0], case.cwd);
                p.args(&prepare[1..]);
                for (k, v) in &case.envs {
                    p.env(k, v);
                }
                if case.prepare_password {
                    p.env("KLEF_BENCH_PASSWORD", PASSWORD);
                }
                run_capture(&mut p, "the prepare command", None)?;
            }
            let mut cmd = sandbox.command(&case.argv[0], case.cwd);
            cmd.args(&case.argv[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .stdin(if case.password_stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                });
            for (k, v) in &case.envs {
                cmd.env(k, v);
            }
            let start = Instant::now();
            let mut child = cmd
                .spawn()
                .with_context(|| format!("failed to start {}", case.label))?;
            if let Some(mut pipe) = child.stdin.take() {
                pipe.write_all(format!("{PASSWORD}\n").as_bytes())
                    .context("failed to pipe the password")?;
            }
            let status = child.wait().context("failed to wait for the command")?;
            let elapsed = start.elapsed();
            if !status.success() {
                bail!("{} failed ({status})", case.label);
            }
            if i >= warmup {
                times.push(elapsed.as_secs_f64());
            }
        }
        Ok(times)
    }
}

impl Stats {
    fn from_seconds(times: &[f64]) -> Option<Self> {
        if times.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = times.iter().map(|t| t * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let n = count_f64(ms.len());
        let mean = ms.iter().sum::<f64>() / n;
        let var = if ms.len() > 1 {
            ms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Some(Self {
            runs: ms.len(),
            median_ms: quantile(&ms, 0.5),
            mean_ms: mean,
            stddev_ms: var.sqrt(),
            p25_ms: quantile(&ms, 0.25),
            p75_ms: quantile(&ms, 0.75),
            min_ms: ms[0],
            max_ms: ms[ms.len() - 1],
        })
    }
}

/// Linear-interpolated quantile of sorted data.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * count_f64(sorted.len() - 1);
    let lo = pos.floor();
    let frac = pos - lo;
    #[expect(
        clippy::cast_sign_loss,
        clippy::cast_possible_truncation,
        reason = "pos is in 0..len"
    )]
    let lo = lo as usize;
    match sorted.get(lo + 1) {
        Some(hi) => sorted[lo] + (hi - sorted[lo]) * frac,
        None => sorted[lo],
    }
}

#[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
fn count_f64(n: usize) -> f64 {
    n as f64
}

pub(super) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}
