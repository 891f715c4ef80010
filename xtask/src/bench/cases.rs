//! Steps 4 and 6: the Klef cases (whole commands on the hermetic vault, `push`/`pull` of the
//! 10,000-secret environment, the agent's memory) and the `.env` fixtures they share.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use super::peers::{dotenvx, pass};
use super::runner::{Case, Runner, shell_quote};
use super::sandbox::{Sandbox, agent_pid, vm_rss_kib};
use super::{BIG_SECRETS, PROBE, Report, SECRETS};

/// A `.env` with `n` secrets `KEY_0000…`, the values of which are predictable test strings.
pub(super) fn dotenv_text(n: usize) -> String {
    let mut text = String::with_capacity(n * 48);
    for i in 0..n {
        let _ = writeln!(text, "KEY_{i:04}=value-{i}-{}", "x".repeat(24));
    }
    text
}

pub(super) fn expected_value(i: usize) -> String {
    format!("value-{i}-{}", "x".repeat(24))
}

pub(super) fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))
}

/// Bytes of output pushed through `klef run --mask` by [`mask_cases`].
pub(super) const MASK_BYTES: u64 = 100_000_000;

/// `klef run --mask` with 100 MB of output, every line holding a secret (the matcher's dense
/// case), and the same command without `--mask` (klef execs it: the producer's own cost).
pub(super) fn mask_cases(
    sandbox: &Sandbox,
    runner: &Runner,
    report: &mut Report,
    app: &Path,
) -> Result<()> {
    let klef = sandbox.klef.display().to_string();
    let producer =
        format!("yes \"log line: token=${PROBE} and some more text\" | head -c {MASK_BYTES}");
    for (id, label, flag) in [
        (
            "klef_run_100mb",
            "klef run -- (100 MB of output, unmasked)",
            None,
        ),
        (
            "klef_run_mask_100mb",
            "klef run --mask -- (100 MB of output)",
            Some("--mask"),
        ),
    ] {
        let mut argv = vec![klef.clone(), "run".to_owned()];
        argv.extend(flag.map(str::to_owned));
        argv.extend(["--".into(), "sh".into(), "-c".into(), producer.clone()]);
        let mut case = Case::new(id, "klef", label, argv, app);
        case.slow = true;
        runner.measure(sandbox, &case, report)?;
    }
    Ok(())
}

pub(super) fn commands(
    root: &Path,
    sandbox: &Sandbox,
    runner: &Runner,
    report: &mut Report,
) -> Result<()> {
    let klef = sandbox.klef.display().to_string();
    let app = sandbox.path("app");
    let big = sandbox.path("big");
    write_file(&app.join(".env"), &dotenv_text(SECRETS))?;
    write_file(&big.join(".env"), &dotenv_text(BIG_SECRETS))?;

    // The vault: 100 secrets in `app`'s development environment, 10,000 in `big`'s `big`.
    eprintln!("xtask: preparing the benchmark vault ({SECRETS} and {BIG_SECRETS} secrets)");
    sandbox.klef(&app, &["init", "bench-app"], true, false)?;
    sandbox.klef(&app, &["push", ".env"], true, false)?;
    sandbox.klef(&big, &["init", "bench-big"], true, false)?;
    sandbox.klef(&big, &["env", "create", "big"], true, false)?;
    sandbox.klef(&big, &["push", "--env", "big", ".env"], true, false)?;
    report.commands.extend([
        "(in $BENCH/app) klef --password-stdin init bench-app; klef --password-stdin push .env"
            .to_owned(),
        "(in $BENCH/big) klef --password-stdin init bench-big; klef --password-stdin env create \
         big; klef --password-stdin push --env big .env"
            .to_owned(),
    ]);

    // Warm the agent: `klef unlock` where it exists, else any keyed command with the password
    // (after a password unlock the CLI hands the key to the agent).
    let has_unlock = sandbox
        .command(&sandbox.klef, &app)
        .args(["unlock", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_unlock {
        sandbox.klef(&app, &["unlock"], true, true)?;
        report.commands.push("klef --password-stdin unlock".into());
    } else {
        sandbox.klef(&app, &["get", "KEY_0000"], true, true)?;
        report
            .commands
            .push("klef --password-stdin get KEY_0000   # warms the agent".into());
    }
    let got = sandbox.klef(&app, &["get", PROBE], false, true)?;
    if got.trim_end() != expected_value(42) {
        bail!("`klef get {PROBE}` through the agent returned an unexpected value");
    }

    let argv = |args: &[&str]| -> Vec<String> {
        std::iter::once(klef.clone())
            .chain(args.iter().map(|s| (*s).to_owned()))
            .collect()
    };
    runner.measure(
        sandbox,
        &Case::new(
            "klef_version",
            "klef",
            "klef --version",
            argv(&["--version"]),
            &app,
        ),
        report,
    )?;
    let bare = Case::new("true", "baseline", "bare true", vec!["true".into()], &app);
    runner.measure(sandbox, &bare, report)?;
    runner.measure(
        sandbox,
        &Case::new(
            "klef_run_true",
            "klef",
            "klef run -- true (warm agent)",
            argv(&["run", "--", "true"]),
            &app,
        ),
        report,
    )?;
    mask_cases(sandbox, runner, report, &app)?;
    runner.measure(
        sandbox,
        &Case::new(
            "klef_get_warm",
            "klef",
            "klef get KEY (warm agent)",
            argv(&["get", PROBE]),
            &app,
        ),
        report,
    )?;
    runner.measure(
        sandbox,
        &Case::new(
            "klef_pull_100",
            "klef",
            "klef pull -o - (100 secrets)",
            argv(&["pull", "-o", "-"]),
            &app,
        ),
        report,
    )?;
    runner.measure(
        sandbox,
        &Case::new(
            "klef_list_json_100",
            "klef",
            "klef list --json (100 secrets)",
            argv(&["list", "--json"]),
            &app,
        ),
        report,
    )?;
    let mut no_agent = Case::new(
        "klef_get_no_agent",
        "klef",
        "KLEF_NO_AGENT=1 klef --password-stdin get KEY (password piped)",
        argv(&["--password-stdin", "get", PROBE]),
        &app,
    );
    no_agent.envs.push(("KLEF_NO_AGENT", "1".into()));
    no_agent.password_stdin = true;
    no_agent.slow = true;
    runner.measure(sandbox, &no_agent, report)?;

    let mut pull_big = Case::new(
        "klef_pull_10k",
        "klef",
        "klef pull -o - (10,000 secrets)",
        argv(&["pull", "--env", "big", "-o", "-"]),
        &big,
    );
    pull_big.slow = true;
    runner.measure(sandbox, &pull_big, report)?;

    // A fresh environment for every timed push.
    let prepare = sandbox.path("prepare-push.sh");
    write_file(
        &prepare,
        &format!(
            "#!/bin/sh\n# A fresh environment for each timed `klef push` (cargo xtask bench).\nset -e\n\
             n=$(( $(cat \"$0.count\" 2>/dev/null || echo 0) + 1 ))\necho \"$n\" > \"$0.count\"\n\
             {k} env create \"push-$n\" >/dev/null\n{k} env use \"push-$n\" >/dev/null\n",
            k = shell_quote(&klef)
        ),
    )?;
    let mut push_big = Case::new(
        "klef_push_10k",
        "klef",
        "klef push (10,000-line .env, fresh environment)",
        argv(&["push", ".env"]),
        &big,
    );
    push_big.prepare = Some(vec!["sh".into(), prepare.display().to_string()]);
    push_big.slow = true;
    runner.measure(sandbox, &push_big, report)?;
    let pushed = sandbox.klef(&big, &["get", PROBE], false, true)?;
    if pushed.trim_end() != expected_value(42) {
        bail!("after the timed pushes, `klef get {PROBE}` returned an unexpected value");
    }

    // The agent after all of the above.
    report.agent_rss_kib = agent_pid(&sandbox.klef_home.join("run")).and_then(vm_rss_kib);
    if report.agent_rss_kib.is_none() {
        report
            .notes
            .push("the klef agent's resident memory could not be read".into());
    }

    dotenvx(root, sandbox, runner, report)?;
    pass(sandbox, runner, report)?;
    Ok(())
}
