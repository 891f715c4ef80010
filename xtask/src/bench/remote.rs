//! The remote section of `cargo xtask bench` (issue #20): Klef against a `klef-server`, side by
//! side with the local vault in the same run.
//!
//! One release `klef-server` on a fresh `SQLite` file, reached two ways: directly on loopback,
//! and through [`Proxy`], which holds each direction 25 ms (a server 50 ms away; this machine's
//! kernel has no netem qdisc). Each way has its own account in its own `KLEF_HOME` (the `.klef`
//! file and the session name their server URL), set up with the release `klef` as a person
//! would: `signup`, `init`, `push` of a 100-line `.env`, an environment `big` with 10,000
//! secrets, `unlock`. A second device of the same account (`login`, `link`, another
//! `KLEF_HOME`, so another agent) makes the one change per run of the revalidation case.
//!
//! The cases, each at 0 ms and 50 ms added delay:
//! * warm `klef get KEY` and `klef run -- true` at the default freshness: answered by the agent
//!   from its verified copy, no server request while the copy is fresh;
//! * the same with `KLEF_NO_CACHE=1`: the full verified read every command does without copies
//!   (the "cold" command);
//! * `KLEF_CACHE_FRESH=0 klef --env big get KEY` of the 10,000-secret environment, with no
//!   change (one conditional request, a 304) and with one value changed by the second device
//!   before each run (the changed row only, merged and verified).
//!
//! The cold command's round trips are counted by the proxy for one `KLEF_NO_CACHE=1 klef get`,
//! and cross-checked from the timings as (cold at 50 ms − cold at 0 ms) / 50 ms.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use serde::Serialize;

use super::cases::{dotenv_text, expected_value, write_file};
use super::proxy::Proxy;
use super::runner::{Case, Runner, shell_quote};
use super::sandbox::{Cleanup, Sandbox, run_capture};
use super::server::{ACCOUNT_PASSWORD, Server, temp_dir};
use super::{BIG_SECRETS, PASSWORD, PROBE, Report, SECRETS};

/// What the proxy adds each way.
pub(super) const ONE_WAY: Duration = Duration::from_millis(25);
/// The ids of the local-vault rows this section compares with (measured in `cases.rs`).
pub(super) const LOCAL_GET: &str = "klef_get_warm";
pub(super) const LOCAL_RUN: &str = "klef_run_true";

/// The case ids, per added delay: `[0 ms, 50 ms]`.
pub(super) const GET: [&str; 2] = ["remote_get_0", "remote_get_50"];
pub(super) const RUN: [&str; 2] = ["remote_run_0", "remote_run_50"];
pub(super) const GET_COLD: [&str; 2] = ["remote_get_cold_0", "remote_get_cold_50"];
pub(super) const RUN_COLD: [&str; 2] = ["remote_run_cold_0", "remote_run_cold_50"];
pub(super) const REVALIDATE: [&str; 2] = ["remote_reval_10k_0", "remote_reval_10k_50"];
pub(super) const REVALIDATE_CHANGED: [&str; 2] =
    ["remote_reval_10k_changed_0", "remote_reval_10k_changed_50"];

/// What the proxy counted for one cold command at 50 ms.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RoundTrips {
    /// The command counted.
    pub(super) command: String,
    /// TCP connections it opened to the server.
    pub(super) connections: u64,
    /// HTTP requests (client→server turns).
    pub(super) requests: usize,
    /// Sequential rounds of requests: what the command waited for.
    pub(super) rounds: usize,
}

/// One account: its `KLEF_HOME`, its project directory and the server URL it names.
struct Account {
    home: PathBuf,
    dir: PathBuf,
}

/// Measures the section into `report.cases` and `report.remote_round_trips`. With
/// `measure_local`, the local-vault `get`/`run` rows are measured here too (`--remote-only`).
pub(super) fn measure(
    release: &Path,
    out: &Path,
    runner: &Runner,
    measure_local: bool,
    report: &mut Report,
) -> Result<()> {
    let sandbox = Sandbox::new(release)?;
    let mut cleanup = Cleanup {
        agent_dirs: vec![sandbox.klef_home.join("run")],
        gnupghome: sandbox.gnupghome.clone(),
    };
    if measure_local {
        local_rows(&sandbox, runner, report)?;
    }

    let work = temp_dir("klef-bench-remote-")?;
    let mut cmd = Command::new(release.join("klef-server"));
    klef_testkit::scrub_inherited(&mut cmd);
    // Two accounts (one per way of reaching it): sign-up is open.
    cmd.args(["--listen", "127.0.0.1:0", "--open-signup", "--database-url"])
        .arg(format!(
            "sqlite://{}",
            work.path().join("server.db").display()
        ))
        .env("RUST_LOG", "info")
        .env("KLEF_HOME", work.path().join("server-home"))
        .current_dir(work.path());
    let server = Server::start(cmd, &out.join("server").join("klef-server-remote.log"))?;
    let proxy = Proxy::start(server.addr, ONE_WAY)?;
    report.commands.push(
        "klef-server --listen 127.0.0.1:0 --open-signup --database-url \
         sqlite://$BENCH_SERVER/server.db   # \
         the remote section; the 50 ms rows go through xtask's delaying proxy (25 ms each way)"
            .into(),
    );

    for (i, addr) in [server.addr, proxy.addr].into_iter().enumerate() {
        let tag = ["direct", "proxied"][i];
        let base = format!("http://{addr}");
        let (account, device2) = set_up(&sandbox, tag, &base)?;
        cleanup.agent_dirs.push(account.home.join("run"));
        cleanup.agent_dirs.push(device2.home.join("run"));
        report.commands.push(format!(
            "(KLEF_HOME=$BENCH/klef-home-{tag}, in $BENCH/remote-{tag}) klef --password-stdin \
             signup --server {base} --email bench-{tag}@example.com; klef --password-stdin init \
             bench-remote-{tag}; klef --password-stdin push .env; klef --password-stdin env \
             create big; klef --password-stdin push --env big big.env; klef --password-stdin \
             unlock   # KLEF_ACCOUNT_PASSWORD in the environment"
        ));
        report.commands.push(format!(
            "(KLEF_HOME=$BENCH/klef-home-{tag}-2, in $BENCH/remote-{tag}-2) klef login --server \
             {base} --email bench-{tag}@example.com; klef link bench-remote-{tag}   # the second \
             device"
        ));
        timed_cases(&sandbox, runner, report, i, &account, &device2)?;
        if i == 1 {
            // One cold command, counted by the proxy.
            let _ = proxy.take();
            let mut cmd = account_cmd(&sandbox, &account);
            cmd.args(["get", PROBE]).env("KLEF_NO_CACHE", "1");
            let got = run_capture(&mut cmd, "KLEF_NO_CACHE=1 klef get (counted)", None)?;
            ensure!(
                got.trim_end() == expected_value(42),
                "the counted cold `klef get {PROBE}` returned an unexpected value"
            );
            let c = proxy.take();
            report.remote_round_trips = Some(RoundTrips {
                command: format!("KLEF_NO_CACHE=1 klef get {PROBE}"),
                connections: c.connections,
                requests: c.turns.len(),
                rounds: c.rounds(ONE_WAY),
            });
        }
    }
    drop(cleanup);
    Ok(())
}

/// The local vault's warm `get` and `run -- true`, as `cases.rs` measures them.
fn local_rows(sandbox: &Sandbox, runner: &Runner, report: &mut Report) -> Result<()> {
    let app = sandbox.path("app");
    write_file(&app.join(".env"), &dotenv_text(SECRETS))?;
    sandbox.klef(&app, &["init", "bench-app"], true, false)?;
    sandbox.klef(&app, &["push", ".env"], true, false)?;
    sandbox.klef(&app, &["unlock"], true, true)?;
    report.commands.push(
        "(in $BENCH/app) klef --password-stdin init bench-app; klef --password-stdin push .env; \
         klef --password-stdin unlock"
            .into(),
    );
    let klef = sandbox.klef.display().to_string();
    runner.measure(
        sandbox,
        &Case::new(
            LOCAL_RUN,
            "klef",
            "klef run -- true (warm agent)",
            vec![klef.clone(), "run".into(), "--".into(), "true".into()],
            &app,
        ),
        report,
    )?;
    runner.measure(
        sandbox,
        &Case::new(
            LOCAL_GET,
            "klef",
            "klef get KEY (warm agent)",
            vec![klef, "get".into(), PROBE.into()],
            &app,
        ),
        report,
    )
}

/// A `klef` command as `account`: its `KLEF_HOME`, in its project directory.
fn account_cmd(sandbox: &Sandbox, account: &Account) -> Command {
    let mut cmd = sandbox.command(&sandbox.klef, &account.dir);
    cmd.env("KLEF_HOME", &account.home)
        .env("KLEF_TOKEN_STORE", "file")
        .env("KLEF_AGENT_AUTOSTART", "1");
    cmd
}

/// Runs `klef ARGS` as `account`, the vault password piped when `password`.
fn klef_as(sandbox: &Sandbox, account: &Account, args: &[&str], password: bool) -> Result<String> {
    let mut cmd = account_cmd(sandbox, account);
    if password {
        cmd.arg("--password-stdin");
    }
    cmd.args(args)
        .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    let input = password.then(|| format!("{PASSWORD}\n"));
    run_capture(
        &mut cmd,
        &format!("klef {}", args.join(" ")),
        input.as_deref(),
    )
}

/// The account reached at `base` (100 + 10,000 secrets, agent unlocked, the big environment's
/// copy loaded) and its second device.
fn set_up(sandbox: &Sandbox, tag: &str, base: &str) -> Result<(Account, Account)> {
    let account = Account {
        home: sandbox.path(&format!("klef-home-{tag}")),
        dir: sandbox.path(&format!("remote-{tag}")),
    };
    let device2 = Account {
        home: sandbox.path(&format!("klef-home-{tag}-2")),
        dir: sandbox.path(&format!("remote-{tag}-2")),
    };
    write_file(&account.dir.join(".env"), &dotenv_text(SECRETS))?;
    write_file(&account.dir.join("big.env"), &dotenv_text(BIG_SECRETS))?;
    std::fs::create_dir_all(&device2.dir).context("failed to create the second device's dir")?;
    let email = format!("bench-{tag}@example.com");
    let project = format!("bench-remote-{tag}");
    eprintln!(
        "xtask: setting up the {tag} account at {base} ({SECRETS} and {BIG_SECRETS} secrets)"
    );
    klef_as(
        sandbox,
        &account,
        &["signup", "--server", base, "--email", &email],
        true,
    )?;
    klef_as(sandbox, &account, &["init", &project], true)?;
    klef_as(sandbox, &account, &["push", ".env"], true)?;
    klef_as(sandbox, &account, &["env", "create", "big"], true)?;
    klef_as(
        sandbox,
        &account,
        &["push", "--env", "big", "big.env"],
        true,
    )?;
    klef_as(sandbox, &account, &["unlock"], true)?;
    klef_as(
        sandbox,
        &device2,
        &["login", "--server", base, "--email", &email],
        false,
    )?;
    klef_as(sandbox, &device2, &["link", &project], false)?;
    for env in [None, Some("big")] {
        let mut args = Vec::new();
        if let Some(e) = env {
            args.extend(["--env", e]);
        }
        args.extend(["get", PROBE]);
        let got = klef_as(sandbox, &account, &args, false)?;
        ensure!(
            got.trim_end() == expected_value(42),
            "`klef get {PROBE}` from the {tag} account returned an unexpected value"
        );
    }
    Ok((account, device2))
}

/// The timed cases of one account; `delay` is 0 (direct) or 1 (through the proxy).
fn timed_cases(
    sandbox: &Sandbox,
    runner: &Runner,
    report: &mut Report,
    delay: usize,
    account: &Account,
    device2: &Account,
) -> Result<()> {
    let klef = sandbox.klef.display().to_string();
    let argv = |args: &[&str]| -> Vec<String> {
        std::iter::once(klef.clone())
            .chain(args.iter().map(|s| (*s).to_owned()))
            .collect()
    };
    let at = ["loopback", "50 ms"][delay];
    let home = account.home.display().to_string();
    let case = |id: &'static str, label: &'static str, args: &[&str]| {
        let mut c = Case::new(id, "klef", label, argv(args), &account.dir);
        c.envs.push(("KLEF_HOME", home.clone()));
        c.envs.push(("KLEF_TOKEN_STORE", "file".into()));
        c
    };
    let labels: [[&'static str; 2]; 6] = [
        [
            "klef get KEY (server, loopback, agent-served)",
            "klef get KEY (server, 50 ms, agent-served)",
        ],
        [
            "klef run -- true (server, loopback, agent-served)",
            "klef run -- true (server, 50 ms, agent-served)",
        ],
        [
            "KLEF_NO_CACHE=1 klef get KEY (server, loopback, cold)",
            "KLEF_NO_CACHE=1 klef get KEY (server, 50 ms, cold)",
        ],
        [
            "KLEF_NO_CACHE=1 klef run -- true (server, loopback, cold)",
            "KLEF_NO_CACHE=1 klef run -- true (server, 50 ms, cold)",
        ],
        [
            "KLEF_CACHE_FRESH=0 klef get, 10,000 secrets, unchanged (server, loopback)",
            "KLEF_CACHE_FRESH=0 klef get, 10,000 secrets, unchanged (server, 50 ms)",
        ],
        [
            "KLEF_CACHE_FRESH=0 klef get, 10,000 secrets, one change (server, loopback)",
            "KLEF_CACHE_FRESH=0 klef get, 10,000 secrets, one change (server, 50 ms)",
        ],
    ];
    eprintln!("xtask: remote cases at {at}");
    // Warm: the copies are loaded by the set-up's reads.
    runner.measure(
        sandbox,
        &case(GET[delay], labels[0][delay], &["get", PROBE]),
        report,
    )?;
    runner.measure(
        sandbox,
        &case(RUN[delay], labels[1][delay], &["run", "--", "true"]),
        report,
    )?;
    let mut cold = case(GET_COLD[delay], labels[2][delay], &["get", PROBE]);
    cold.envs.push(("KLEF_NO_CACHE", "1".into()));
    runner.measure(sandbox, &cold, report)?;
    let mut cold = case(RUN_COLD[delay], labels[3][delay], &["run", "--", "true"]);
    cold.envs.push(("KLEF_NO_CACHE", "1".into()));
    runner.measure(sandbox, &cold, report)?;

    // Reload the big environment's copy, then revalidate it on every run.
    klef_as(sandbox, account, &["--env", "big", "get", PROBE], false)?;
    let big = ["--env", "big", "get", PROBE];
    let mut reval = case(REVALIDATE[delay], labels[4][delay], &big);
    reval.envs.push(("KLEF_CACHE_FRESH", "0".into()));
    runner.measure(sandbox, &reval, report)?;

    // One value changed by the second device (another agent) before each run, not timed.
    let prepare = sandbox.path(&format!("prepare-change-{delay}.sh"));
    write_file(
        &prepare,
        &format!(
            "#!/bin/sh\n# The second device changes one value of `big` before each timed \
             revalidation (cargo xtask bench).\nset -e\n\
             n=$(( $(cat \"$0.count\" 2>/dev/null || echo 0) + 1 ))\necho \"$n\" > \"$0.count\"\n\
             cd {dir}\n\
             printf '%s\\n' \"$KLEF_BENCH_PASSWORD\" | KLEF_HOME={home2} {k} --password-stdin \
             --env big set \"KEY_0001=changed-$n\" >/dev/null\n",
            dir = shell_quote(&device2.dir.display().to_string()),
            home2 = shell_quote(&device2.home.display().to_string()),
            k = shell_quote(&klef)
        ),
    )?;
    let mut changed = case(REVALIDATE_CHANGED[delay], labels[5][delay], &big);
    changed.envs.push(("KLEF_CACHE_FRESH", "0".into()));
    changed.prepare = Some(vec!["sh".into(), prepare.display().to_string()]);
    changed.prepare_password = true;
    runner.measure(sandbox, &changed, report)?;
    let got = klef_as(
        sandbox,
        account,
        &["--env", "big", "get", "KEY_0001"],
        false,
    )?;
    ensure!(
        got.trim_end().starts_with("changed-"),
        "after the timed changes, the {at} account reads KEY_0001 = {:?}, not the second \
         device's last change",
        got.trim_end()
    );
    Ok(())
}
