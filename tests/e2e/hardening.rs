//! Issue #17 through the real binaries: `klef run` passes no credential and no stored
//! loader variable (`PATH`, `LD_PRELOAD`, …) unless allowed; the agent keeps no credential in
//! its environment; values no program could receive are refused (NUL) or flagged (over
//! 128 KiB); CI and scripts without a terminal start no agent; `KLEF_NO_AGENT=1` never touches
//! one.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use klef_e2e::{ACCOUNT_PASSWORD, PASSWORD, Server, TestContext, run_with_stdin};
use serde_json::Value;

const CREDENTIALS: [&str; 4] = [
    "KLEF_PASSWORD",
    "KLEF_ACCOUNT_PASSWORD",
    "KLEF_NEW_PASSWORD",
    "KLEF_TOKEN",
];

/// A vault with `APP_SECRET`, `KLEF_PASSWORD` in the environment.
fn vault() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "APP_SECRET", "app-secret-value"])
        .success();
    ctx.set_env("KLEF_PASSWORD", PASSWORD);
    ctx
}

/// `NAME=value` lines of the command's environment, as `env` prints them.
fn child_env(ctx: &TestContext, flags: &[&str]) -> Vec<String> {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend(["--", "env"]);
    ctx.run(args)
        .success()
        .stdout()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_no_credential(env: &[String], secrets: &[&str], what: &str) {
    for name in CREDENTIALS {
        assert!(
            !env.iter().any(|l| l.starts_with(&format!("{name}="))),
            "{what} has {name}"
        );
    }
    for secret in secrets {
        assert!(
            !env.iter().any(|l| l.contains(secret)),
            "{what} holds a credential's value"
        );
    }
}

#[test]
fn run_passes_no_password_to_the_command() {
    let mut ctx = vault();
    ctx.set_env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    ctx.set_env("KLEF_NEW_PASSWORD", "new-password-probe-71");
    let env = child_env(&ctx, &[]);
    assert!(env.contains(&"APP_SECRET=app-secret-value".to_owned()));
    // Other klef settings are not credentials and stay.
    assert!(env.iter().any(|l| l.starts_with("KLEF_HOME=")), "{env:?}");
    assert_no_credential(
        &env,
        &[PASSWORD, ACCOUNT_PASSWORD, "new-password-probe-71"],
        "the command's environment",
    );
    // --preserve-env keeps the parent's variables, never its credentials.
    let env = child_env(&ctx, &["--preserve-env"]);
    assert_no_credential(&env, &[PASSWORD, ACCOUNT_PASSWORD], "with --preserve-env");
}

#[test]
fn run_with_a_ci_key_passes_no_key_to_the_command() {
    let mut owner = TestContext::new();
    owner.server = Some(Server::sqlite(&owner.root().join("server")));
    let url = owner.server.as_ref().expect("server").url.clone();
    owner.signup(&url, "owner@example.com");
    owner.init();
    owner
        .run_pw(["set", "DB", "prod-value", "-e", "production"])
        .success();
    let out = owner
        .run_pw([
            "keys",
            "create",
            "--type",
            "system",
            "--label",
            "ci",
            "--scope",
            "my-app:production",
            "--permission",
            "read",
        ])
        .success()
        .stdout();
    let key = out.trim().to_owned();
    assert!(key.starts_with("klef_sys_"), "{out}");
    let mut ci = TestContext::new();
    ci.set_env("KLEF_TOKEN", &key);
    ci.set_env("KLEF_SERVER", &url);
    let env = child_env(&ci, &[]);
    assert!(env.contains(&"DB=prod-value".to_owned()), "{env:?}");
    assert_no_credential(&env, &[&key], "the command's environment");
}

/// Stops the context's agent when the test ends, however it ends.
struct AgentGuard(Option<std::process::Command>);

impl AgentGuard {
    fn new(ctx: &TestContext) -> Self {
        let mut stop = ctx.klef(["agent", "stop"]);
        stop.env_remove("KLEF_NO_AGENT");
        Self(Some(stop))
    }
}

impl Drop for AgentGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = run_with_stdin(stop, None);
        }
    }
}

fn agent_status(ctx: &TestContext) -> Value {
    let mut cmd = ctx.klef(["agent", "status", "--json"]);
    cmd.env_remove("KLEF_NO_AGENT");
    serde_json::from_str(&run_with_stdin(cmd, None).success().stdout()).expect("status json")
}

fn agent_pid(ctx: &TestContext) -> Option<u32> {
    agent_status(ctx)["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
}

fn environ(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("read the agent's environ");
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[test]
fn the_agent_keeps_no_credential_in_its_environment() {
    let mut ctx = vault();
    ctx.remove_env("KLEF_NO_AGENT");
    ctx.set_env("KLEF_AGENT_AUTOSTART", "1");
    ctx.set_env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    ctx.set_env("KLEF_NEW_PASSWORD", "new-password-probe-72");
    ctx.set_env("KLEF_AGENT_IDLE_TIMEOUT", "30m");
    let _guard = AgentGuard::new(&ctx);
    // A keyed command unlocks with KLEF_PASSWORD and starts the agent.
    assert_eq!(
        ctx.run(["get", "APP_SECRET", "--plain"]).success().stdout(),
        "app-secret-value"
    );
    let pid = agent_pid(&ctx).expect("the keyed command started the agent");
    let env = environ(pid);
    // What it reads is there (so the check reads the right process)…
    assert!(
        env.contains(&"KLEF_AGENT_IDLE_TIMEOUT=30m".to_owned()),
        "{env:?}"
    );
    assert!(env.iter().any(|l| l.starts_with("KLEF_HOME=")));
    // …and no credential.
    assert_no_credential(
        &env,
        &[PASSWORD, ACCOUNT_PASSWORD, "new-password-probe-72"],
        "the agent's environment",
    );
    ctx.run(["agent", "stop"]).success();

    // `klef agent start` with a CI key in the environment.
    ctx.set_env("KLEF_TOKEN", "klef_sys_probe_token_73");
    ctx.run(["agent", "start"]).success();
    let pid = agent_pid(&ctx).expect("agent start started it");
    assert_no_credential(
        &environ(pid),
        &[PASSWORD, "klef_sys_probe_token_73"],
        "the agent's environment",
    );
}

/// A directory with executables named `sh`, `npm` and `klef-probe-tool` that only print who
/// they are.
fn evil_dir(root: &Path) -> String {
    let dir = root.join("evil-bin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for name in ["sh", "npm", "klef-probe-tool"] {
        let file = dir.join(name);
        std::fs::write(&file, format!("#!/bin/sh\necho fake-{name}\n")).expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir.display().to_string()
}

#[test]
fn stored_loader_variables_are_withheld_unless_allowed() {
    let ctx = vault();
    let evil = evil_dir(ctx.root());
    let stored_path = format!("{evil}:/usr/bin:/bin");
    ctx.run(["set", &format!("PATH={stored_path}")]).success();
    ctx.run([
        "set",
        "NODE_OPTIONS=--require=/tmp/evil.js",
        "LD_PRELOAD=/tmp/evil.so",
    ])
    .success();
    let show = "printf '%s|%s|%s\\n' \"$PATH\" \"$NODE_OPTIONS\" \"$LD_PRELOAD\"";

    // Not applied: the real sh runs, with the parent's PATH, where the fake tools are not.
    let script = format!("{show}; klef-probe-tool 2>/dev/null; true");
    let out = ctx.run(["run", "--", "sh", "-c", &script]).success();
    let stdout = out.stdout();
    assert!(!stdout.contains("fake-"), "{stdout}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(!first.contains(&evil), "{first}");
    assert!(first.ends_with("||"), "{first}");
    let stderr = out.stderr();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    for name in ["LD_PRELOAD", "NODE_OPTIONS", "PATH"] {
        assert!(warnings[0].contains(name), "{stderr}");
    }
    assert!(stderr.contains("--allow-loader-vars"), "{stderr}");

    // Allowed: the stored PATH reaches the command (which then finds the fake npm), but the
    // command itself is still found with klef's own PATH: the real sh, not the fake one.
    let script = format!("{show}; npm");
    let out = ctx
        .run([
            "run",
            "--allow-loader-vars",
            "PATH",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .success();
    let stdout = out.stdout();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(format!("{stored_path}||").as_str()));
    assert_eq!(lines.next(), Some("fake-npm"));
    assert!(!out.stderr().contains("PATH,"), "{}", out.stderr());
    // A program only the stored PATH has is not found.
    ctx.run(["run", "--allow-all-loader-vars", "--", "klef-probe-tool"])
        .code_is(127)
        .stderr_has("command not found: klef-probe-tool");
}

#[test]
fn nul_is_refused_at_set_and_push() {
    let ctx = vault();
    ctx.run_stdin(["set", "NUL_KEY"], b"a\0b")
        .code_is(2)
        .stderr_has("NUL_KEY")
        .stderr_has("NUL byte");
    std::fs::write(ctx.cwd().join(".env"), b"GOOD=1\nNUL_PUSH=\"a\0b\"\n").expect("write");
    ctx.run(["push", ".env"])
        .code_is(2)
        .stderr_has("NUL_PUSH")
        .stderr_has("NUL byte");
    // Nothing of either was written, not even the good line of the pushed file.
    let listed = ctx.run(["list", "--json"]).success().stdout();
    assert!(!listed.contains("NUL_KEY"), "{listed}");
    assert!(!listed.contains("NUL_PUSH"), "{listed}");
    assert!(!listed.contains("\"GOOD\""), "{listed}");
}

#[test]
fn a_200_kib_value_is_stored_with_a_warning_and_run_names_it() {
    let ctx = vault();
    let big = "v".repeat(200 * 1024);
    let out = ctx
        .run_stdin(["set", "BIG_VALUE"], big.as_bytes())
        .success();
    let warning = out.stderr();
    assert!(
        warning.contains("warning:") && warning.contains("BIG_VALUE"),
        "{warning}"
    );
    assert!(warning.contains("klef run"), "{warning}");
    assert_eq!(
        ctx.run(["get", "BIG_VALUE", "--plain"]).success().stdout(),
        big
    );
    ctx.run(["run", "--", "true"])
        .code_is(1)
        .stderr_has("BIG_VALUE (200 KiB)")
        .stderr_has("klef pull")
        .clean_error(&[&big[..64]]);
    // push warns the same way.
    std::fs::write(
        ctx.cwd().join("big.env"),
        format!("BIG_PUSHED={big}\n").as_bytes(),
    )
    .expect("write");
    let out = ctx.run(["push", "big.env"]).success();
    assert!(out.stderr().contains("BIG_PUSHED"), "{}", out.stderr());
}

#[test]
fn ci_and_scripts_start_no_agent_unless_asked() {
    let mut ctx = vault();
    ctx.remove_env("KLEF_NO_AGENT");
    let _guard = AgentGuard::new(&ctx);
    // CI=1: a keyed command unlocks with KLEF_PASSWORD and leaves nothing behind.
    ctx.set_env("CI", "1");
    ctx.run(["get", "APP_SECRET"]).success();
    assert_eq!(agent_status(&ctx)["running"], Value::Bool(false));
    // No CI, but no terminal on stdin (a script): the same.
    ctx.set_env("CI", "false");
    ctx.run(["get", "APP_SECRET"]).success();
    assert_eq!(agent_status(&ctx)["running"], Value::Bool(false));
    // Asked for: KLEF_AGENT_AUTOSTART=1 …
    ctx.set_env("CI", "1");
    ctx.set_env("KLEF_AGENT_AUTOSTART", "1");
    ctx.run(["get", "APP_SECRET"]).success();
    assert_eq!(agent_status(&ctx)["running"], Value::Bool(true));
    ctx.run(["agent", "stop"]).success();
    // … or `klef unlock`, in CI too.
    ctx.remove_env("KLEF_AGENT_AUTOSTART");
    ctx.run(["unlock"]).success();
    assert_eq!(agent_status(&ctx)["running"], Value::Bool(true));
}

#[test]
fn no_agent_mode_never_contacts_a_running_agent() {
    let mut ctx = vault();
    ctx.remove_env("KLEF_NO_AGENT");
    let _guard = AgentGuard::new(&ctx);
    ctx.run(["unlock"]).success();
    let pid = agent_pid(&ctx).expect("unlock started the agent");
    ctx.set_env("KLEF_NO_AGENT", "1");
    for args in [&["agent", "stop"][..], &["lock"], &["agent", "lock"]] {
        ctx.run(args)
            .code_is(1)
            .stderr_has("KLEF_NO_AGENT is set")
            .stderr_has("hint:");
    }
    let status: Value =
        serde_json::from_str(&ctx.run(["agent", "status", "--json"]).success().stdout())
            .expect("json");
    assert_eq!(status["disabled"], Value::Bool(true));
    assert_eq!(status["running"], Value::Bool(false));
    // The agent was not contacted: still running, still holding the key.
    ctx.remove_env("KLEF_NO_AGENT");
    ctx.remove_env("KLEF_PASSWORD");
    assert_eq!(agent_pid(&ctx), Some(pid));
    ctx.run(["get", "APP_SECRET"]).success();
}
