//! Secret hygiene: where secrets must never show up, checked on the real binaries.
//!
//! * While `klef run` executes, no secret is in any `/proc/*/cmdline`; the command's environment
//!   holds them, and the command runs in klef's own process (no klef is left beside it).
//! * Logs at `-vvv` and at `RUST_LOG=trace` of set/get/run/pull/push (locally and through a
//!   server) hold no secret value, no password and no session token.
//! * The errors of a batch of bad inputs hold no secret.
//! * Every file Klef creates that holds secrets or state is 0600, and its directories 0700.
//!
//! The agent's own hardening (not dumpable, `RLIMIT_CORE` 0) is tested in `agent.rs`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use klef_e2e::{ACCOUNT_PASSWORD, PASSWORD, Run, Server, TestContext};

/// Secret values set in the test vaults; each is unique enough to search for.
const SECRETS: [(&str, &str); 3] = [
    ("API_KEY", "sk-live-hygiene-4f9c2e"),
    ("DB_PASSWORD", "pg-hygiene-secret-81d07a"),
    ("MULTILINE", "line-one-hygiene-aa\nline-two-hygiene-bb"),
];

/// Every string that must not leak: the values (and each line of a multi-line one), the
/// encryption password and the account password.
fn forbidden() -> Vec<&'static str> {
    let mut v: Vec<&str> = SECRETS.iter().flat_map(|(_, s)| s.lines()).collect();
    v.extend([PASSWORD, ACCOUNT_PASSWORD]);
    v
}

/// Panics when `text` contains a secret, a password or a session token.
#[track_caller]
fn assert_clean(text: &str, what: &str) {
    for s in forbidden() {
        assert!(!text.contains(s), "{what} contains {s:?}");
    }
    assert!(
        !text.contains("klef_sess_"),
        "{what} contains a session token"
    );
}

/// A vault with the test secrets.
fn vault() -> TestContext {
    let ctx = TestContext::new();
    ctx.init();
    set_secrets(&ctx);
    ctx
}

fn set_secrets(ctx: &TestContext) {
    for (name, value) in SECRETS {
        // `klef set KEY` reads the value from stdin, so it is in no argv; the password comes
        // from the environment.
        let mut cmd = ctx.klef(["set", name]);
        cmd.env("KLEF_PASSWORD", PASSWORD);
        klef_e2e::run_with_stdin(cmd, Some(value.as_bytes())).success();
    }
}

#[test]
fn klef_run_keeps_secrets_out_of_argv_and_leaves_no_process_behind() {
    let ctx = vault();
    let fifo = ctx.root().join("go");
    let ok = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfifo failed");

    // The child announces its pid, then blocks on the FIFO until the test has looked.
    let mut cmd = ctx.klef([
        "--password-stdin",
        "run",
        "--",
        "sh",
        "-c",
        "echo ready $$; read x < \"$1\"",
        "sh",
    ]);
    cmd.arg(&fifo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut klef = cmd.spawn().expect("start klef run");
    let mut stdin = klef.stdin.take().expect("stdin");
    writeln!(stdin, "{PASSWORD}").expect("write the password");
    drop(stdin);
    let mut line = String::new();
    BufReader::new(klef.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the child's pid");
    let child_pid: u32 = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from the child: {line:?}"));

    // The child's environment has the secrets: the test can see what it looks for.
    let child_env = std::fs::read(format!("/proc/{child_pid}/environ")).expect("child environ");
    let child_env = String::from_utf8_lossy(&child_env);
    for (name, value) in SECRETS {
        assert!(
            child_env.contains(&format!("{name}={value}")),
            "the child lacks {name}"
        );
    }
    // klef replaced itself with the command (docs/decisions/0010): no klef process is left
    // beside it, holding the decrypted values in its memory for as long as the command runs.
    assert_eq!(child_pid, klef.id(), "the command runs in klef's process");
    // No command line on the machine does.
    let mut seen = 0;
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // Processes come and go; one that is gone has nothing to leak.
        // Only this test's own values: other tests running meanwhile may pass theirs.
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            seen += 1;
            let cmdline = String::from_utf8_lossy(&cmdline);
            for value in SECRETS.iter().flat_map(|(_, v)| v.lines()) {
                assert!(
                    !cmdline.contains(value),
                    "/proc/{}/cmdline contains a secret",
                    name.to_string_lossy()
                );
            }
        }
    }
    assert!(seen > 2, "only {seen} command lines were readable");
    // Files klef holds open meanwhile (the vault and its -wal/-shm) are private too.
    assert_private_tree(&ctx.klef_home());

    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .and_then(|mut f| f.write_all(b"go\n"))
        .expect("release the child");
    let out = klef.wait_with_output().expect("wait for klef run");
    assert!(out.status.success(), "klef run failed: {out:?}");
    assert_clean(&String::from_utf8_lossy(&out.stderr), "klef run's stderr");
}

/// Runs `klef ARGS` with the password from stdin, at `-vvv` and then at `RUST_LOG=trace`, and
/// checks both logs; returns the `-vvv` run.
fn traced(ctx: &TestContext, args: &[&str], stdin: Option<&str>) -> Run {
    let mut runs = Vec::new();
    for trace_env in [false, true] {
        let mut cmd = ctx.command("klef");
        if trace_env {
            cmd.env("RUST_LOG", "trace");
        } else {
            cmd.arg("-vvv");
        }
        cmd.env("KLEF_PASSWORD", PASSWORD).args(args);
        let run = klef_e2e::run_with_stdin(cmd, stdin.map(str::as_bytes));
        let what = format!(
            "the log of `klef {}` at {}",
            args.join(" "),
            if trace_env { "RUST_LOG=trace" } else { "-vvv" }
        );
        // Logging is on: a log that stays silent proves nothing.
        assert!(
            run.stderr().contains("DEBUG") || run.stderr().contains("TRACE"),
            "{what} has no debug line: {}",
            run.stderr()
        );
        assert_clean(&run.stderr(), &what);
        runs.push(run);
    }
    runs.swap_remove(0)
}

/// set/get/run/pull/push at full verbosity leak nothing into the logs.
fn assert_quiet_logs(ctx: &TestContext) {
    traced(ctx, &["set", "VERBOSE_KEY"], Some(SECRETS[0].1)).success();
    traced(ctx, &["set", &format!("OTHER={}", SECRETS[1].1)], None).success();
    let got = traced(ctx, &["get", "VERBOSE_KEY", "--plain"], None).success();
    assert_eq!(
        got.stdout().trim_end(),
        SECRETS[0].1,
        "get prints the value"
    );
    traced(ctx, &["run", "--", "true"], None).success();
    traced(ctx, &["pull", "-o", "pulled.env"], None).success();
    let pulled = std::fs::read_to_string(ctx.cwd.join("pulled.env")).expect("read pulled.env");
    assert!(pulled.contains(SECRETS[1].1), "pull wrote the values");
    std::fs::write(
        ctx.cwd.join(".env"),
        format!(
            "PUSHED=\"{}\"\nAPI_KEY=changed-{}\n",
            SECRETS[1].1, SECRETS[0].1
        ),
    )
    .expect("write .env");
    traced(ctx, &["push"], None).success();
    traced(ctx, &["pull", "-o", "-"], None).success();
}

#[test]
fn verbose_and_trace_logs_hold_no_secret_locally() {
    let ctx = vault();
    assert_quiet_logs(&ctx);
    assert_private_tree(&ctx.klef_home());
}

#[test]
fn verbose_and_trace_logs_hold_no_secret_or_token_through_a_server() {
    let mut ctx = TestContext::new();
    ctx.set_env("KLEF_TOKEN_STORE", "file");
    ctx.server = Some(Server::sqlite(&ctx.root().join("server")));
    let url = ctx.server.as_ref().expect("server").url.clone();
    ctx.signup(&url, "hygiene@example.com");
    ctx.init();
    set_secrets(&ctx);
    assert_quiet_logs(&ctx);
    traced(&ctx, &["whoami"], None).success();
    // The token file exists (forced file store) and, like everything in KLEF_HOME, is private.
    let files = walk(&ctx.klef_home());
    assert!(
        files
            .iter()
            .any(|p| p.to_string_lossy().contains("credentials")),
        "no token file under {}: {files:?}",
        ctx.klef_home().display()
    );
    assert_private_tree(&ctx.klef_home());
    let log = ctx.server.as_ref().expect("server").log();
    assert_clean(&log, "the server's log");
}

#[test]
fn errors_of_bad_inputs_hold_no_secret() {
    let ctx = vault();
    let secret = SECRETS[0].1;
    let huge = format!("{secret}{}", "x".repeat(1024 * 1024));
    let cases: Vec<(&str, Vec<String>, Option<String>)> = vec![
        (
            "invalid name, secret value",
            vec!["set".into(), format!("1BAD={secret}")],
            None,
        ),
        (
            "name with a dash",
            vec!["set".into(), "BAD-NAME".into(), secret.into()],
            None,
        ),
        (
            "value over 1 MiB from stdin",
            vec!["set".into(), "HUGE".into()],
            Some(huge),
        ),
        (
            "unknown environment",
            vec![
                "set".into(),
                "X".into(),
                secret.into(),
                "-e".into(),
                "nope".into(),
            ],
            None,
        ),
        (
            "missing key",
            vec!["get".into(), "NO_SUCH_KEY".into()],
            None,
        ),
        (
            "rollback to a missing version",
            vec!["rollback".into(), "API_KEY".into(), "99".into()],
            None,
        ),
        (
            "missing command",
            vec!["run".into(), "--".into(), "no-such-command-xyz".into()],
            None,
        ),
        (
            "pull into a missing directory",
            vec!["pull".into(), "-o".into(), "no/such/dir/.env".into()],
            None,
        ),
        (
            "push of a missing file",
            vec!["push".into(), "missing.env".into()],
            None,
        ),
    ];
    let mut checked = 0;
    for (what, args, stdin) in &cases {
        let mut cmd = ctx.klef(args);
        cmd.env("KLEF_PASSWORD", PASSWORD);
        let run = klef_e2e::run_with_stdin(cmd, stdin.as_deref().map(str::as_bytes));
        assert!(run.code() != 0, "{what}: expected a failure");
        assert!(
            run.stderr().starts_with("error: "),
            "{what}: {}",
            run.stderr()
        );
        assert_clean(&run.stderr(), what);
        assert_clean(&run.stdout(), what);
        checked += 1;
    }

    // A malformed .env whose bad line and neighbours hold secrets: the error names the line only.
    std::fs::write(
        ctx.cwd.join(".env"),
        format!("GOOD=\"{secret}\"\nthis line {} is bad\n", SECRETS[1].1),
    )
    .expect("write .env");
    let mut cmd = ctx.klef(["push"]);
    cmd.env("KLEF_PASSWORD", PASSWORD);
    let run = klef_e2e::run_with_stdin(cmd, None)
        .clean_error(&forbidden())
        .stderr_has("line 2");
    assert_clean(&run.stderr(), "a malformed .env");
    checked += 1;

    // A wrong password is not echoed, nor is the right one.
    let mut cmd = ctx.klef(["get", "API_KEY"]);
    cmd.env("KLEF_PASSWORD", "wrong-password-hygiene");
    klef_e2e::run_with_stdin(cmd, None)
        .code_is(3)
        .clean_error(&["wrong-password-hygiene", secret, PASSWORD]);
    checked += 1;
    eprintln!("errors_of_bad_inputs_hold_no_secret: {checked} cases, no secret in any message");
}

#[test]
fn files_holding_secrets_are_private() {
    let ctx = vault();
    let recovery = ctx.root().join("recovery.txt");
    // A second vault with a recovery file, so its mode is checked too.
    let other = TestContext::new();
    other
        .run_pw([
            "init",
            "other",
            "--recovery-file",
            recovery.to_str().expect("utf-8"),
        ])
        .success();
    assert_mode(&recovery, 0o600);

    ctx.run_pw(["pull"]).success();
    assert_mode(&ctx.cwd.join(".env"), 0o600);
    ctx.run_pw(["pull", "-o", "custom.env", "--format", "json"])
        .success();
    assert_mode(&ctx.cwd.join("custom.env"), 0o600);
    let archive = ctx.root().join("backup.klef");
    ctx.run(["backup", "export", archive.to_str().expect("utf-8")])
        .success();
    assert_mode(&archive, 0o600);

    let files = walk(&ctx.klef_home());
    assert!(
        files.iter().any(|p| p.ends_with("vault.db")),
        "no vault in {files:?}"
    );
    assert!(
        files
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "json")),
        "no config file in {files:?}"
    );
    assert_private_tree(&ctx.klef_home());
    assert_private_tree(&other.klef_home());
}

#[test]
fn commands_leave_the_vault_open_with_its_log_folded() {
    let ctx = vault();
    let beside = |suffix: &str| PathBuf::from(format!("{}{suffix}", ctx.vault_path().display()));
    let log_len = || std::fs::metadata(beside("-wal")).map_or(0, |m| m.len());
    let (name, value) = SECRETS[0];
    let out = ctx.run_pw(["get", name]).success();
    assert_eq!(out.stdout(), format!("{value}\n"));
    // Commands exit without closing the vault (Store::release_at_exit): SQLite's log and its index
    // stay for the next command, private like the vault.
    assert_mode(&beside("-shm"), 0o600);
    assert_mode(&beside("-wal"), 0o600);

    // A write is folded into the vault file before the command exits: the log is empty, so
    // the next command does not read it back to rebuild its index, and the vault file alone
    // holds every secret.
    let big: Vec<String> = (0..2000)
        .map(|i| format!("FOLD_{i:04}=value-number-{i}-of-a-push-large-enough-to-fill-the-log"))
        .collect();
    let big = big.join("\n");
    std::fs::write(ctx.cwd().join("big.env"), big).expect("write big.env");
    ctx.run_pw(["push", "big.env"]).success();
    assert_eq!(log_len(), 0, "the log was left unfolded after a push");
    ctx.run_pw(["set", "FOLDED", "written-after-a-reader"])
        .success();
    assert_eq!(log_len(), 0, "the log was left unfolded after a set");

    let copy = TestContext::new();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(copy.vault_path().parent().expect("data dir"))
        .expect("mkdir");
    std::fs::copy(ctx.vault_path(), copy.vault_path()).expect("copy the vault file alone");
    std::fs::create_dir_all(copy.cwd()).expect("project dir");
    std::fs::copy(ctx.cwd().join(".klef"), copy.cwd().join(".klef")).expect("copy .klef");
    let out = copy.run_pw(["get", "FOLDED"]).success();
    assert_eq!(out.stdout(), "written-after-a-reader\n");
    let out = copy.run_pw(["get", "FOLD_1999"]).success();
    assert_eq!(
        out.stdout(),
        "value-number-1999-of-a-push-large-enough-to-fill-the-log\n"
    );

    // The index a reader left behind does not hide or block a later write, nor the next
    // reader's view of it.
    let out = ctx.run_pw(["get", "FOLDED"]).success();
    assert_eq!(out.stdout(), "written-after-a-reader\n");
    assert_private_tree(&ctx.klef_home());
    assert_private_tree(&copy.klef_home());
}

/// Every file under `root`, recursively.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `root` and every directory under it are 0700, every file 0600 (sockets excepted: the
/// agent's are checked in `agent.rs`).
#[track_caller]
fn assert_private_tree(root: &Path) {
    assert_mode(root, 0o700);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        // A file that vanished between listing and checking (a -wal closed meanwhile) is fine.
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                assert_eq!(mode, 0o700, "{} is {mode:o}", e.path().display());
                stack.push(e.path());
            } else if meta.is_file() {
                assert_eq!(mode, 0o600, "{} is {mode:o}", e.path().display());
            }
        }
    }
}

#[track_caller]
fn assert_mode(path: &Path, mode: u32) {
    let actual = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(actual, mode, "{} is {actual:o}", path.display());
}
