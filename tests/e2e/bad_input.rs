//! Bad input: each case gets a clear one-line error, exit ≠ 0, no panic, no secret in the
//! message, and nothing changed.

use klef_e2e::{PASSWORD, TestContext};

fn ready() -> TestContext {
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "API_KEY", "sk-live-abcdef"]).success();
    ctx
}

fn list_json(ctx: &TestContext) -> String {
    ctx.run_pw(["list", "--reveal", "--json"])
        .success()
        .stdout()
}

/// Runs Python against the vault with `c` bound to a sqlite3 connection, as an attacker with
/// write access to the file would (python3 is on every machine). Triggers that guard the
/// append-only history are dropped first: an attacker is not bound by them.
fn vault_python(ctx: &TestContext, body: &str) {
    let script = format!(
        "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\n\
         for (t,) in c.execute(\"SELECT name FROM sqlite_master WHERE type='trigger'\").fetchall():\n    c.execute('DROP TRIGGER ' + t)\n\
         {body}\nc.commit()\nc.close()"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .arg(ctx.vault_path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs SQL statements against the vault.
fn vault_sql(ctx: &TestContext, sql: &str) {
    vault_python(ctx, &format!("c.executescript({sql:?})"));
}

#[test]
fn wrong_password() {
    let ctx = ready();
    let mut cmd = ctx.klef(["get", "API_KEY", "--password-stdin"]);
    cmd.env_remove("KLEF_PASSWORD");
    klef_e2e::run_with_stdin(cmd, Some(b"not the password\n"))
        .code_is(3)
        .clean_error(&["sk-live-abcdef", "not the password"])
        .stderr_has("wrong password");
    let mut cmd = ctx.klef(["set", "API_KEY", "changed"]);
    cmd.env("KLEF_PASSWORD", "nope");
    klef_e2e::run_with_stdin(cmd, None)
        .code_is(3)
        .clean_error(&["nope"]);
    assert!(
        list_json(&ctx).contains("sk-live-abcdef"),
        "nothing changed"
    );
}

#[test]
fn locked_without_any_password_source() {
    let ctx = ready();
    ctx.run(["get", "API_KEY"])
        .code_is(3)
        .clean_error(&["sk-live-abcdef"])
        .stderr_has("password");
}

#[test]
fn no_klef_file_found() {
    let ctx = ready();
    let elsewhere = ctx.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let mut cmd = ctx.klef(["get", "API_KEY", "--password-stdin"]);
    cmd.current_dir(&elsewhere);
    klef_e2e::run_with_stdin(cmd, Some(format!("{PASSWORD}\n").as_bytes()))
        .clean_error(&["sk-live-abcdef"])
        .stderr_has(".klef");
}

#[test]
fn unknown_environment_and_project() {
    let ctx = ready();
    ctx.run_pw(["get", "API_KEY", "-e", "nope"])
        .code_is(5)
        .clean_error(&[])
        .stderr_has("nope");
    ctx.run_pw(["set", "X", "1", "-e", "nope"])
        .code_is(5)
        .clean_error(&[]);
    let elsewhere = ctx.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let mut cmd = ctx.klef(["list", "-p", "no-such-project"]);
    cmd.current_dir(&elsewhere);
    klef_e2e::run_with_stdin(cmd, None)
        .code_is(5)
        .clean_error(&[])
        .stderr_has("no-such-project");
    ctx.run(["env", "use", "nope"]).code_is(5).clean_error(&[]);
    assert!(list_json(&ctx).contains("sk-live-abcdef"));
}

#[test]
fn invalid_key_names() {
    let ctx = ready();
    for bad in ["1ABC", "A-B", "A B", "É", ""] {
        ctx.run_pw(["set", bad, "value"]).clean_error(&[]);
    }
    ctx.run_pw(["set", "GOOD=1", "BAD-NAME=2"]).clean_error(&[]);
    let list = list_json(&ctx);
    assert!(
        !list.contains("GOOD"),
        "a batch with one bad name writes nothing: {list}"
    );
}

#[test]
fn malformed_env_file_names_the_line() {
    let ctx = ready();
    std::fs::write(
        ctx.cwd.join("bad.env"),
        "GOOD=1\nALSO_GOOD=2\nthis line is wrong\nLAST=3\n",
    )
    .expect("write");
    ctx.run_pw(["push", "bad.env"])
        .clean_error(&[])
        .stderr_has("line 3");
    std::fs::write(
        ctx.cwd.join("bad2.env"),
        "OK=1\nQUOTE=\"never closed\nX=2\n",
    )
    .expect("write");
    ctx.run_pw(["push", "bad2.env"])
        .clean_error(&["never closed"])
        .stderr_has("line 2");
    ctx.run_pw(["push", "missing.env"])
        .clean_error(&[])
        .stderr_has("missing.env");
    let list = list_json(&ctx);
    assert!(
        !list.contains("GOOD") && !list.contains("OK"),
        "nothing written: {list}"
    );
}

#[test]
fn value_over_one_mebibyte() {
    let ctx = ready();
    let big = "x".repeat(1024 * 1024 + 1);
    let mut cmd = ctx.klef(["set", "BIG"]);
    cmd.env("KLEF_PASSWORD", PASSWORD);
    klef_e2e::run_with_stdin(cmd, Some(big.as_bytes()))
        .clean_error(&[])
        .stderr_has("1 MiB");
    let exact = "y".repeat(1024 * 1024);
    let mut cmd = ctx.klef(["set", "EXACT"]);
    cmd.env("KLEF_PASSWORD", PASSWORD);
    klef_e2e::run_with_stdin(cmd, Some(exact.as_bytes())).success();
    assert!(!list_json(&ctx).contains("\"BIG\""));
}

#[test]
fn vault_that_is_not_a_vault() {
    let ctx = ready();
    std::fs::write(ctx.vault_path(), b"this is not a database, just text").expect("write");
    let _ = std::fs::remove_file(ctx.vault_path().with_extension("db-wal"));
    let _ = std::fs::remove_file(ctx.vault_path().with_extension("db-shm"));
    ctx.run_pw(["get", "API_KEY"])
        .clean_error(&[])
        .stderr_has("not a klef vault");
    assert_eq!(
        std::fs::read(ctx.vault_path()).expect("read"),
        b"this is not a database, just text",
        "left untouched"
    );
}

#[test]
fn vault_from_another_sqlite_app() {
    let ctx = ready();
    std::fs::remove_file(ctx.vault_path()).expect("rm");
    let _ = std::fs::remove_file(ctx.vault_path().with_extension("db-wal"));
    let _ = std::fs::remove_file(ctx.vault_path().with_extension("db-shm"));
    vault_sql(
        &ctx,
        "CREATE TABLE photos(id INTEGER PRIMARY KEY, path TEXT);",
    );
    ctx.run_pw(["get", "API_KEY"])
        .clean_error(&[])
        .stderr_has("not a klef vault");
}

#[test]
fn tampered_ciphertext_is_tampering_not_wrong_password() {
    let ctx = ready();
    // Flip one bit of the last byte (inside the GCM tag) of the stored value.
    vault_python(
        &ctx,
        "for (env, ver, ct) in c.execute(\"SELECT environment_id, version, ciphertext FROM secrets WHERE name='API_KEY'\").fetchall():\n    \
         c.execute(\"UPDATE secrets SET ciphertext=? WHERE environment_id=? AND name='API_KEY' AND version=?\", (ct[:-1] + bytes([ct[-1] ^ 1]), env, ver))",
    );
    // The signed state lists the value's hash: the edit is caught before decryption.
    ctx.run_pw(["get", "API_KEY"])
        .clean_error(&["sk-live-abcdef"])
        .stderr_has("altered")
        .stderr_has("API_KEY");
}

#[test]
fn ciphertext_moved_to_another_name_is_tampering() {
    let ctx = ready();
    ctx.run_pw(["set", "OTHER", "harmless"]).success();
    vault_sql(
        &ctx,
        "UPDATE secrets SET ciphertext = (SELECT ciphertext FROM secrets WHERE name = 'API_KEY') WHERE name = 'OTHER';",
    );
    ctx.run_pw(["get", "OTHER"])
        .clean_error(&["sk-live-abcdef"])
        .stderr_has("OTHER: the value does not match the signed manifest");
    // The run of the whole environment refuses too, rather than injecting a moved value.
    ctx.run_pw(["run", "--", "true"])
        .clean_error(&["sk-live-abcdef"])
        .stderr_has("altered");
}

#[test]
fn an_unreadable_value_is_named_and_run_can_start_without_it() {
    let ctx = ready();
    ctx.run_pw(["set", "OTHER", "harmless"]).success();
    // A value no client can open (a one-byte envelope), as a broken client or an edited vault
    // file would leave it.
    vault_sql(
        &ctx,
        "UPDATE secrets SET ciphertext = X'01' WHERE name = 'OTHER';",
    );
    ctx.run_pw(["run", "--", "true"])
        .code_is(1)
        .clean_error(&["sk-live-abcdef", "harmless"])
        .stderr_has("OTHER: the value does not match the signed manifest")
        .stderr_has("--skip-unreadable");
    let started = ctx
        .run_pw([
            "run",
            "--skip-unreadable",
            "--",
            "sh",
            "-c",
            "echo ${API_KEY:+api-key-set} ${OTHER:-other-unset}",
        ])
        .success();
    assert_eq!(started.stdout().trim(), "api-key-set other-unset");
    assert!(
        started.stderr().contains("started without OTHER"),
        "{}",
        started.stderr()
    );
    // A write signs on top of the state it read: refused while a value does not match it (the
    // vault file is restored from a backup instead).
    ctx.run_pw(["set", "OTHER", "fixed"])
        .code_is(1)
        .clean_error(&["sk-live-abcdef", "harmless"])
        .stderr_has("OTHER");
}

#[test]
fn run_of_missing_command() {
    let ctx = ready();
    ctx.run_pw(["run", "--", "no-such-binary-xyz"])
        .code_is(127)
        .clean_error(&["sk-live-abcdef"]);
}

#[test]
fn vault_from_a_newer_klef() {
    let ctx = ready();
    vault_sql(
        &ctx,
        "UPDATE klef_meta SET value = '99' WHERE key = 'format_version';",
    );
    let before = std::fs::read(ctx.vault_path()).expect("read");
    ctx.run_pw(["get", "API_KEY"])
        .clean_error(&["sk-live-abcdef"])
        .stderr_has("newer");
    ctx.run_pw(["set", "X", "1"]).clean_error(&[]);
    assert_eq!(
        std::fs::read(ctx.vault_path()).expect("read"),
        before,
        "a newer vault is never modified"
    );
}
