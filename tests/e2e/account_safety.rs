//! Account safety, end to end: the recovery code (`klef init --recovery-file`, `klef recover`),
//! `klef password change`, and encrypted backups (`klef backup export` / `import`).

use std::path::Path;

use klef_e2e::{PASSWORD, Run, TestContext};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// Values set in every test vault; none may ever appear in a backup or an error.
const VALUES: &[(&str, &str, &str)] = &[
    ("development", "API_KEY", "sk-live-0f8fad5b-d9cb"),
    (
        "development",
        "DATABASE_URL",
        "postgres://app:hunter2@db/app",
    ),
    ("development", "MULTI", "line one\nline two ünïcödé"),
    ("staging", "API_KEY", "sk-staging-6f1e2d3c"),
    ("production", "TOKEN", "prod-token-a5a5a5a5a5"),
];

/// Runs `klef ARGS` with `password` on `--password-stdin`.
fn run_with(ctx: &TestContext, password: &str, args: &[&str]) -> Run {
    let mut cmd = ctx.command("klef");
    cmd.arg("--password-stdin").args(args);
    klef_e2e::run_with_stdin(cmd, Some(format!("{password}\n").as_bytes()))
}

/// An initialised vault with the recovery code in `code.txt`, the [`VALUES`], some history
/// and a delete. Returns the context and the code file.
fn vault_with_values() -> (TestContext, std::path::PathBuf) {
    let ctx = TestContext::new();
    let code = ctx.root().join("code.txt");
    ctx.run_pw([
        "init",
        "my-app",
        "--recovery-file",
        code.to_str().expect("utf-8 path"),
    ])
    .success();
    for (env, key, value) in VALUES {
        ctx.run_pw(["set", "-e", env, &format!("{key}={value}")])
            .success();
    }
    // History and a tombstone, so backups must carry every version.
    ctx.run_pw(["set", "OLD=first"]).success();
    ctx.run_pw(["set", "OLD=second"]).success();
    ctx.run_pw(["set", "GONE=soon"]).success();
    ctx.run_pw(["unset", "GONE"]).success();
    (ctx, code)
}

/// `SELECT …` on the vault, every column as hex or text, one line per row (python3's sqlite3).
fn query(vault: &Path, sql: &str) -> Vec<String> {
    let script = "import sqlite3, sys\n\
        con = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
        for row in con.execute(sys.argv[2]):\n\
        \x20   print('|'.join(c.hex() if isinstance(c, bytes) else repr(c) for c in row))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(vault)
        .arg(sql)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

const SECRETS_SQL: &str =
    "SELECT environment_id, name, version, ciphertext FROM secrets ORDER BY 1, 2, 3";
const ACCOUNT_SQL: &str = "SELECT kdf_m_cost_kib, kdf_t_cost, kdf_p_cost, kdf_salt, \
     master_key_by_password, master_key_by_recovery, public_key, private_key_sealed FROM accounts";

/// `klef list --reveal --json` of every environment, with `password`.
fn listing(ctx: &TestContext, password: &str) -> Vec<String> {
    ["development", "staging", "production"]
        .iter()
        .map(|env| {
            run_with(ctx, password, &["--json", "list", "--reveal", "-e", env])
                .success()
                .stdout()
        })
        .collect()
}

fn assert_values_readable(ctx: &TestContext, password: &str) {
    for (env, key, value) in VALUES {
        let got = run_with(ctx, password, &["get", "-e", env, key])
            .success()
            .stdout();
        assert_eq!(
            got.strip_suffix('\n').unwrap_or(&got),
            *value,
            "{env}/{key}"
        );
    }
}

/// The recovery code as written by `--recovery-file` (its last line).
fn code_text(file: &Path) -> String {
    let raw = std::fs::read_to_string(file).expect("code file");
    raw.lines().last().expect("a code line").trim().to_owned()
}

fn recover(ctx: &TestContext, code_file: &Path, new_password: &str) -> Run {
    let mut cmd = ctx.klef(["recover", "--code-file", code_file.to_str().expect("utf-8")]);
    cmd.env("KLEF_NEW_PASSWORD", new_password);
    klef_e2e::run_with_stdin(cmd, None)
}

#[test]
fn recovery_file_is_private_and_never_overwritten() {
    let ctx = TestContext::new();
    let code = ctx.root().join("code.txt");
    std::fs::write(&code, "precious").expect("write");
    ctx.run_pw([
        "init",
        "my-app",
        "--recovery-file",
        code.to_str().expect("utf-8"),
    ])
    .clean_error(&[PASSWORD])
    .stderr_has("already exists");
    assert_eq!(std::fs::read_to_string(&code).expect("read"), "precious");
    assert!(!ctx.vault_path().exists(), "nothing was created");

    let fresh = ctx.root().join("fresh.txt");
    ctx.run_pw([
        "init",
        "my-app",
        "--recovery-file",
        fresh.to_str().expect("utf-8"),
    ])
    .success();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&fresh)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = code_text(&fresh);
    assert_eq!(text.split('-').count(), 13, "{text}");
}

#[test]
fn recovery_round_trip() {
    let (ctx, code) = vault_with_values();
    let before = listing(&ctx, PASSWORD);
    recover(&ctx, &code, NEW_PASSWORD).success();

    // The old password is rejected with exit 3; the new one reads everything.
    run_with(&ctx, PASSWORD, &["get", "API_KEY"])
        .code_is(3)
        .clean_error(&[PASSWORD, NEW_PASSWORD])
        .stderr_has("wrong password");
    assert_values_readable(&ctx, NEW_PASSWORD);
    assert_eq!(listing(&ctx, NEW_PASSWORD), before);

    // The recovery code keeps working, also when typed in another form.
    let relaxed = ctx.root().join("relaxed.txt");
    std::fs::write(
        &relaxed,
        format!("  {}\n", code_text(&code).to_lowercase().replace('-', " ")),
    )
    .expect("write");
    recover(&ctx, &relaxed, "third password here").success();
    assert_values_readable(&ctx, "third password here");
    run_with(&ctx, NEW_PASSWORD, &["get", "API_KEY"]).code_is(3);
}

#[test]
fn a_mistyped_recovery_code_names_its_group_and_changes_nothing() {
    let (ctx, code) = vault_with_values();
    let account_before = query(&ctx.vault_path(), ACCOUNT_SQL);
    let text = code_text(&code);
    // Change one character of group 3 (characters 12..17 of `AAAAA-BBBBB-CCCCC-…`).
    let mut chars: Vec<char> = text.chars().collect();
    chars[13] = if chars[13] == 'X' { 'Y' } else { 'X' };
    let typo: String = chars.into_iter().collect();
    let bad = ctx.root().join("typo.txt");
    std::fs::write(&bad, format!("klef recovery code\n{typo}\n")).expect("write");

    recover(&ctx, &bad, NEW_PASSWORD)
        .code_is(3)
        .clean_error(&[&typo, &text, NEW_PASSWORD])
        .stderr_has("group 3");
    assert_eq!(query(&ctx.vault_path(), ACCOUNT_SQL), account_before);
    assert_values_readable(&ctx, PASSWORD);
    run_with(&ctx, NEW_PASSWORD, &["get", "API_KEY"]).code_is(3);

    // A well-formed code of another vault passes the checksum but opens nothing.
    let (_other, other_code) = vault_with_values();
    recover(&ctx, &other_code, NEW_PASSWORD)
        .code_is(3)
        .clean_error(&[NEW_PASSWORD])
        .stderr_has("does not open");
    assert_eq!(query(&ctx.vault_path(), ACCOUNT_SQL), account_before);

    // No code and no terminal: a clear refusal, not a hang.
    ctx.run(["recover"])
        .code_is(3)
        .clean_error(&[])
        .stderr_has("--code-file");
}

#[test]
fn password_change_reseals_only_the_master_key() {
    let (ctx, code) = vault_with_values();
    let vault = ctx.vault_path();
    let secrets_before = query(&vault, SECRETS_SQL);
    let account_before = query(&vault, ACCOUNT_SQL);
    let envs_before = query(
        &vault,
        "SELECT id, sealed_key FROM environments ORDER BY id",
    );
    let keys_before = query(&vault, "SELECT project_id, wrapped_key FROM project_keys");
    let listing_before = listing(&ctx, PASSWORD);
    assert!(
        secrets_before.len() >= VALUES.len() + 4,
        "{secrets_before:?}"
    );

    let mut cmd = ctx.klef(["--password-stdin", "password", "change"]);
    cmd.env("KLEF_NEW_PASSWORD", NEW_PASSWORD);
    klef_e2e::run_with_stdin(cmd, Some(format!("{PASSWORD}\n").as_bytes())).success();

    // Every ciphertext row, environment key and project key is byte-identical.
    assert_eq!(query(&vault, SECRETS_SQL), secrets_before);
    assert_eq!(
        query(
            &vault,
            "SELECT id, sealed_key FROM environments ORDER BY id"
        ),
        envs_before
    );
    assert_eq!(
        query(&vault, "SELECT project_id, wrapped_key FROM project_keys"),
        keys_before
    );
    // Only the password copy of the master key and the KDF salt changed; the parameters are
    // the defaults (m = 64 MiB, t = 3, p = 4); the key pair and recovery copy are untouched.
    let after = query(&vault, ACCOUNT_SQL);
    let (b, a): (Vec<&str>, Vec<&str>) = (
        account_before[0].split('|').collect(),
        after[0].split('|').collect(),
    );
    assert_eq!(&a[..3], &["65536", "3", "4"]);
    assert_ne!(a[3], b[3], "fresh salt");
    assert_ne!(a[4], b[4], "master key re-sealed");
    assert_eq!(&a[5..], &b[5..], "recovery copy and key pair unchanged");

    run_with(&ctx, PASSWORD, &["list", "--reveal"])
        .code_is(3)
        .clean_error(&[PASSWORD, NEW_PASSWORD]);
    assert_eq!(listing(&ctx, NEW_PASSWORD), listing_before);
    assert_values_readable(&ctx, NEW_PASSWORD);

    // A wrong current password changes nothing.
    let mut cmd = ctx.klef(["--password-stdin", "password", "change"]);
    cmd.env("KLEF_NEW_PASSWORD", "never used");
    klef_e2e::run_with_stdin(cmd, Some(b"not the password\n"))
        .code_is(3)
        .clean_error(&["never used"]);
    assert_eq!(query(&vault, ACCOUNT_SQL), after);

    // The recovery code still works after a password change.
    recover(&ctx, &code, "after the change").success();
    assert_values_readable(&ctx, "after the change");
}

#[test]
fn backup_restores_an_identical_vault() {
    let (ctx, code) = vault_with_values();
    let archive = ctx.root().join("vault.kbak");
    ctx.run(["backup", "export", archive.to_str().expect("utf-8")])
        .success();
    let before = listing(&ctx, PASSWORD);
    let history_before = run_with(&ctx, PASSWORD, &["--json", "history", "OLD"])
        .success()
        .stdout();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&archive)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let bytes = std::fs::read(&archive).expect("archive");
    assert!(bytes.starts_with(b"\x89KLEFBAK\r\n\x1a\n"));
    for value in VALUES
        .iter()
        .map(|(_, _, v)| *v)
        .chain(["first", "second", "soon", PASSWORD])
    {
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "plaintext {value:?} found in the backup"
        );
    }

    // A brand-new home (the laptop was lost); the project directory's .klef comes from git.
    let restored = TestContext::new();
    std::fs::copy(ctx.cwd.join(".klef"), restored.cwd.join(".klef")).expect("copy .klef");
    restored
        .run(["backup", "import", archive.to_str().expect("utf-8")])
        .success();
    assert_eq!(listing(&restored, PASSWORD), before);
    assert_eq!(
        run_with(&restored, PASSWORD, &["--json", "history", "OLD"])
            .success()
            .stdout(),
        history_before
    );
    assert_eq!(
        query(&restored.vault_path(), SECRETS_SQL),
        query(&ctx.vault_path(), SECRETS_SQL)
    );
    // The recovery code opens the restored vault too.
    recover(&restored, &code, NEW_PASSWORD).success();
    assert_eq!(listing(&restored, NEW_PASSWORD), before);

    // Importing into a vault with data is refused without --force, and nothing changes.
    let other = TestContext::new();
    other.init();
    other.run_pw(["set", "MINE=keep"]).success();
    let other_rows = query(&other.vault_path(), SECRETS_SQL);
    other
        .run(["backup", "import", archive.to_str().expect("utf-8")])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("--force");
    assert_eq!(query(&other.vault_path(), SECRETS_SQL), other_rows);
    // With --force the vault is replaced by the backup.
    std::fs::copy(ctx.cwd.join(".klef"), other.cwd.join(".klef")).expect("copy .klef");
    other
        .run([
            "backup",
            "import",
            "--force",
            archive.to_str().expect("utf-8"),
        ])
        .success();
    assert_eq!(listing(&other, PASSWORD), before);
}

#[test]
fn export_refuses_to_overwrite() {
    let (ctx, _) = vault_with_values();
    let archive = ctx.root().join("vault.kbak");
    std::fs::write(&archive, "an older backup").expect("write");
    ctx.run(["backup", "export", archive.to_str().expect("utf-8")])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("already exists");
    assert_eq!(
        std::fs::read_to_string(&archive).expect("read"),
        "an older backup"
    );
    ctx.run([
        "backup",
        "export",
        "--force",
        archive.to_str().expect("utf-8"),
    ])
    .success();
    assert!(
        std::fs::read(&archive)
            .expect("read")
            .starts_with(b"\x89KLEFBAK")
    );
    let leftovers: Vec<_> = std::fs::read_dir(ctx.root())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".klef-backup-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file is left behind");
}

#[test]
fn damaged_newer_and_foreign_backups_are_refused() {
    let (ctx, _) = vault_with_values();
    let archive = ctx.root().join("vault.kbak");
    ctx.run(["backup", "export", archive.to_str().expect("utf-8")])
        .success();
    let good = std::fs::read(&archive).expect("archive");

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x04;
    let mut newer = good.clone();
    newer[13] = 2;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 10].to_vec(), "truncated"),
        ("header-only", good[..16].to_vec(), "truncated"),
        ("flipped", flipped, "checksum"),
        ("newer", newer, "newer version"),
        (
            "foreign",
            b"SQLite format 3\0 not really".to_vec(),
            "not a klef backup",
        ),
        ("empty", Vec::new(), "not a klef backup"),
    ];
    let rows = query(&ctx.vault_path(), SECRETS_SQL);
    for (name, bytes, message) in cases {
        let path = ctx.root().join(format!("{name}.kbak"));
        std::fs::write(&path, &bytes).expect("write");
        // Into an empty home: nothing at all is created.
        let fresh = TestContext::new();
        let run = fresh
            .run(["backup", "import", path.to_str().expect("utf-8")])
            .code_is(1)
            .clean_error(&[])
            .stderr_has(message);
        assert_eq!(
            run.stderr()
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1,
            "{name}: one error line"
        );
        assert!(!fresh.vault_path().exists(), "{name}: no vault was created");
        // Even with --force over an existing vault: the vault is left as it was.
        ctx.run(["backup", "import", "--force", path.to_str().expect("utf-8")])
            .code_is(1)
            .stderr_has(message);
        assert_eq!(query(&ctx.vault_path(), SECRETS_SQL), rows, "{name}");
    }
    assert_values_readable(&ctx, PASSWORD);
}

/// Stops the test's agent when the test ends, failed or not: `klef agent stop`, then SIGKILL
/// by pid if it is still there.
struct AgentGuard<'a> {
    ctx: &'a TestContext,
    pid: Option<String>,
}

impl Drop for AgentGuard<'_> {
    fn drop(&mut self) {
        let _ = self.ctx.run(["agent", "stop"]);
        if let Some(pid) = &self.pid {
            let _ = std::process::Command::new("kill")
                .args(["-9", pid])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

#[test]
fn password_change_and_recovery_wipe_the_agents_keys() {
    let (mut ctx, code) = vault_with_values();
    ctx.remove_env("KLEF_NO_AGENT");
    let ctx = ctx;
    let mut guard = AgentGuard {
        ctx: &ctx,
        pid: None,
    };
    ctx.run_pw(["unlock"]).success();
    let status = ctx.run(["agent", "status", "--json"]).success().stdout();
    guard.pid = serde_json::from_str::<serde_json::Value>(&status)
        .ok()
        .and_then(|v| v["pid"].as_u64())
        .map(|p| p.to_string());
    assert!(guard.pid.is_some(), "agent status: {status}");
    // The agent serves the key: no password needed.
    ctx.run(["get", "API_KEY"]).success();

    let mut cmd = ctx.klef(["--password-stdin", "password", "change"]);
    cmd.env("KLEF_NEW_PASSWORD", NEW_PASSWORD);
    klef_e2e::run_with_stdin(cmd, Some(format!("{PASSWORD}\n").as_bytes())).success();
    // The cached key is gone: with no password source the vault is locked.
    ctx.run(["get", "API_KEY"]).code_is(3).clean_error(&[]);

    run_with(&ctx, NEW_PASSWORD, &["unlock"]).success();
    ctx.run(["get", "API_KEY"]).success();
    recover(&ctx, &code, "recovered password").success();
    ctx.run(["get", "API_KEY"]).code_is(3).clean_error(&[]);
    drop(guard);
}
