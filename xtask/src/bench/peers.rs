//! Step 5: the peers on the same secrets (`dotenvx`, `pass`), their installation (npm, apt),
//! and the notes written when one is skipped.

use std::fs;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::cases::{dotenv_text, expected_value, write_file};
use super::runner::{Case, Runner};
use super::sandbox::{Sandbox, run_capture};
use super::{CaseResult, PROBE, Report, SECRETS};
use crate::test::which;

fn skip(report: &mut Report, id: &'static str, tool: &'static str, label: &str, why: &str) {
    eprintln!("xtask: note: skipping {label}: {why}");
    report.notes.push(format!("{label}: skipped: {why}"));
    report.cases.push(CaseResult {
        id,
        tool,
        label: label.to_owned(),
        command: String::new(),
        stats: None,
        skipped: Some(why.to_owned()),
    });
}

pub(super) fn dotenvx(
    root: &Path,
    sandbox: &Sandbox,
    runner: &Runner,
    report: &mut Report,
) -> Result<()> {
    let ids = [
        ("dotenvx_get", "dotenvx get KEY (encrypted .env)"),
        ("dotenvx_run_true", "dotenvx run -- true (encrypted .env)"),
    ];
    let bin = root.join("bench/node_modules/.bin/dotenvx");
    let installed = (which("npm") || apt_install(&["nodejs", "npm"]))
        && Command::new("npm")
            .args(["ci", "--prefix"])
            .arg(root.join("bench"))
            .args(["--no-audit", "--no-fund", "--silent"])
            .status()
            .is_ok_and(|s| s.success())
        && bin.is_file();
    if !installed {
        for (id, label) in ids {
            skip(
                report,
                id,
                "dotenvx",
                label,
                "`npm ci --prefix bench` failed or npm is missing",
            );
        }
        return Ok(());
    }
    report
        .commands
        .push("npm ci --prefix bench --no-audit --no-fund".into());
    if let Some(v) = version_of(&bin, &["--version"]) {
        report.tools.insert("dotenvx".into(), v);
    }
    if let Some(v) = version_of(Path::new("node"), &["--version"]) {
        report.tools.insert("node".into(), v);
    }
    let dir = sandbox.path("dotenvx");
    write_file(&dir.join(".env"), &dotenv_text(SECRETS))?;
    run_capture(
        sandbox.command(&bin, &dir).arg("encrypt"),
        "dotenvx encrypt",
        None,
    )?;
    report
        .commands
        .push("(in $BENCH/dotenvx, the same 100 secrets in .env) dotenvx encrypt".into());
    let got = run_capture(
        sandbox.command(&bin, &dir).args(["get", PROBE]),
        "dotenvx get",
        None,
    )?;
    if got.trim_end() != expected_value(42) {
        bail!("`dotenvx get {PROBE}` returned an unexpected value");
    }
    let bin = bin.display().to_string();
    for (id, label) in ids {
        let args: &[&str] = if id == "dotenvx_get" {
            &["get", PROBE]
        } else {
            &["run", "--", "true"]
        };
        let case = Case {
            id,
            tool: "dotenvx",
            label,
            argv: std::iter::once(bin.clone())
                .chain(args.iter().map(|s| (*s).to_owned()))
                .collect(),
            cwd: &dir,
            envs: Vec::new(),
            password_stdin: false,
            prepare: None,
            prepare_password: false,
            slow: true,
        };
        runner.measure(sandbox, &case, report)?;
    }
    Ok(())
}

pub(super) fn pass(sandbox: &Sandbox, runner: &Runner, report: &mut Report) -> Result<()> {
    let label = "pass show KEY (warm gpg-agent)";
    if !((which("pass") && which("gpg")) || apt_install(&["pass", "gnupg"])) {
        skip(
            report,
            "pass_show",
            "pass",
            label,
            "`apt-get install -y pass gnupg` failed",
        );
        return Ok(());
    }
    for (tool, bin) in [("pass", "pass"), ("gpg", "gpg")] {
        if let Some(v) = version_of(Path::new(bin), &["--version"]) {
            report.tools.insert(tool.into(), v);
        }
    }
    let cwd = sandbox.path("app");
    fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&sandbox.gnupghome)
        .context("failed to create GNUPGHOME")?;
    let mut keygen = sandbox.command("gpg", &cwd);
    keygen.args([
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--quick-gen-key",
        "klef-bench@example.invalid",
        "default",
        "default",
        "never",
    ]);
    run_capture(&mut keygen, "gpg --quick-gen-key", None)?;
    let mut list = sandbox.command("gpg", &cwd);
    list.args(["--list-keys", "--with-colons", "klef-bench@example.invalid"]);
    let listing = run_capture(&mut list, "gpg --list-keys", None)?;
    let fpr = listing
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .and_then(|l| l.split(':').find(|f| !f.is_empty()))
        .context("gpg printed no fingerprint for the generated key")?
        .to_owned();
    let mut init = sandbox.command("pass", &cwd);
    init.args(["init", &fpr]);
    run_capture(&mut init, "pass init", None)?;
    eprintln!("xtask: inserting {SECRETS} secrets into pass");
    for i in 0..SECRETS {
        let mut insert = sandbox.command("pass", &cwd);
        insert.args(["insert", "-m", &format!("KEY_{i:04}")]);
        run_capture(
            &mut insert,
            "pass insert",
            Some(&format!("{}\n", expected_value(i))),
        )?;
    }
    report.commands.push(
        "GNUPGHOME=$BENCH/gnupg gpg --batch --pinentry-mode loopback --passphrase '' \
         --quick-gen-key klef-bench@example.invalid default default never; pass init FPR; \
         pass insert -m KEY_NNNN (×100, value on stdin)"
            .into(),
    );
    let got = run_capture(
        sandbox.command("pass", &cwd).args(["show", PROBE]),
        "pass show",
        None,
    )?;
    if got.trim_end() != expected_value(42) {
        bail!("`pass show {PROBE}` returned an unexpected value");
    }
    let case = Case {
        id: "pass_show",
        tool: "pass",
        label,
        argv: vec!["pass".into(), "show".into(), PROBE.into()],
        cwd: &cwd,
        envs: Vec::new(),
        password_stdin: false,
        prepare: None,
        prepare_password: false,
        slow: false,
    };
    runner.measure(sandbox, &case, report)
}

/// `apt-get install -y PKGS`, running `apt-get update` once first if the install fails.
pub(super) fn apt_install(packages: &[&str]) -> bool {
    if !which("apt-get") {
        return false;
    }
    let install = || {
        eprintln!("xtask: running apt-get install -y {}", packages.join(" "));
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    install()
        || (Command::new("apt-get")
            .args(["update", "-q"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
            && install())
}

pub(super) fn version_of(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        // `pass --version` draws a banner: `=   v1.7.4   =`.
        .map(|l| l.trim_matches(|c: char| c == '=' || c.is_whitespace()))
        .find(|l| !l.is_empty() && l.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_owned)
}

pub(super) fn read_json(path: &Path) -> Result<Value> {
    let text =
        fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("failed to parse {}", path.display()))
}
