//! Encrypted backups with a team server, end to end: `klef backup export` from a server →
//! `klef backup import` into an empty local vault, and → a second server where the same
//! account was made with `klef signup --from-backup`; readable there with the same password and
//! with the recovery code. Refusals (a workspace that exists without `--force`, another
//! account, damaged, newer and foreign files) are clear and write nothing.

use std::path::{Path, PathBuf};

use klef_e2e::{ACCOUNT_PASSWORD, PASSWORD, Run, Server, TestContext};
use serde_json::Value;

const OWNER: &str = "owner@example.com";
const ENVS: [&str; 3] = ["development", "staging", "production"];

/// Values set on the first server; none may appear in a backup or an error.
const VALUES: &[(&str, &str, &str)] = &[
    ("development", "API_KEY", "sk-srv-0f8fad5b-d9cb"),
    ("development", "MULTI", "line one\nline two ünïcödé"),
    ("staging", "DB_URL", "postgres://app:s3cr3t-staging@db/app"),
    ("production", "TOKEN", "prod-token-7c7c7c7c7c"),
];

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `klef list --reveal --json` of every environment of `my-app`.
fn snapshot(ctx: &TestContext) -> Vec<Value> {
    ENVS.iter()
        .map(|env| {
            json(
                &ctx.run_pw(["-p", "my-app", "list", "--reveal", "--json", "-e", env])
                    .success(),
            )
        })
        .collect()
}

/// The owner on a fresh server: signed up (recovery code in `code.txt`), project `my-app`
/// with the [`VALUES`], history and a delete.
fn owner_on_server() -> (TestContext, PathBuf) {
    let mut ctx = TestContext::new();
    ctx.server = Some(Server::sqlite(&ctx.root().join("server")));
    let url = ctx.server.as_ref().expect("server").url.clone();
    let code = ctx.root().join("code.txt");
    let mut cmd = ctx.command("klef");
    cmd.args([
        "--password-stdin",
        "signup",
        "--server",
        &url,
        "--email",
        OWNER,
        "--recovery-file",
        path(&code),
    ])
    .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    klef_e2e::run_with_stdin(cmd, Some(format!("{PASSWORD}\n").as_bytes())).success();
    ctx.init();
    for (env, key, value) in VALUES {
        ctx.run_pw(["set", "-e", env, &format!("{key}={value}")])
            .success();
    }
    ctx.run_pw(["set", "OLD=first"]).success();
    ctx.run_pw(["set", "OLD=second"]).success();
    ctx.run_pw(["set", "GONE=soon"]).success();
    ctx.run_pw(["unset", "GONE"]).success();
    (ctx, code)
}

/// A second context with its own server, where the owner signs up with the backup's keys.
fn second_server_from_backup(archive: &Path) -> (TestContext, Run) {
    let mut ctx = TestContext::new();
    ctx.server = Some(Server::sqlite(&ctx.root().join("server")));
    let url = ctx.server.as_ref().expect("server").url.clone();
    let mut cmd = ctx.command("klef");
    cmd.args([
        "--password-stdin",
        "signup",
        "--server",
        &url,
        "--email",
        OWNER,
        "--from-backup",
        path(archive),
    ])
    .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    let run = klef_e2e::run_with_stdin(cmd, Some(format!("{PASSWORD}\n").as_bytes()));
    (ctx, run)
}

#[test]
fn a_server_backup_restores_locally_and_on_another_server() {
    let (a, code) = owner_on_server();
    let expected = snapshot(&a);
    assert!(
        expected[0].to_string().contains("sk-srv-0f8fad5b-d9cb"),
        "{expected:?}"
    );
    let archive = a.root().join("acme.klefbackup");
    let exported = a
        .run(["backup", "export", path(&archive), "--json"])
        .success();
    assert_eq!(
        json(&exported)["secret_versions"],
        8,
        "history and the delete"
    );
    let bytes = std::fs::read(&archive).expect("archive");
    for (_, _, value) in VALUES {
        for part in value.split('\n') {
            assert!(
                !bytes.windows(part.len()).any(|w| w == part.as_bytes()),
                "plaintext {part:?} in the backup"
            );
        }
    }
    for p in ["first", "second", "soon"] {
        assert!(!bytes.windows(p.len()).any(|w| w == p.as_bytes()));
    }

    // Into an empty local vault: every environment reads the same.
    let local = TestContext::new();
    local.run(["backup", "import", path(&archive)]).success();
    assert_eq!(snapshot(&local), expected);

    // Into a second server, signing up with the backup's keys: same password, same values.
    let (b, signup) = second_server_from_backup(&archive);
    let signup = signup.success();
    assert!(
        signup.stderr().contains("restored workspace"),
        "{}",
        signup.stderr()
    );
    assert_eq!(snapshot(&b), expected);

    // Refused, and nothing written: the workspace exists (no --force), damaged, newer and
    // foreign files.
    // (Importing checks the archive's signed state first, so it unlocks.)
    let again = b
        .run_pw(["backup", "import", path(&archive)])
        .code_is(1)
        .clean_error(&[PASSWORD])
        .stderr_has("already exists")
        .stderr_has("--force");
    let _ = again;
    let damaged = |name: &str, bytes: Vec<u8>| {
        let p = b.root().join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let mut newer = bytes.clone();
    newer[13] = 0x7f;
    for (file, needle) in [
        (damaged("flipped", flipped), "checksum"),
        (
            damaged("truncated", bytes[..bytes.len() / 3].to_vec()),
            "truncated",
        ),
        (damaged("newer", newer), "newer version"),
        (
            damaged("foreign", b"KEY=value\n".to_vec()),
            "not a Klef backup",
        ),
    ] {
        b.run(["backup", "import", "--force", path(&file)])
            .code_is(1)
            .clean_error(&[PASSWORD])
            .stderr_has(needle);
    }
    assert_eq!(snapshot(&b), expected);

    // --force replaces what changed on the server since.
    b.run_pw(["-p", "my-app", "set", "LATER=x"]).success();
    b.run_pw(["-p", "my-app", "set", "OLD=third"]).success();
    // Going back to the backup is a rollback of what this account has seen: refused unless
    // asked for with --allow-older.
    b.run_pw(["backup", "import", "--force", path(&archive)])
        .code_is(1)
        .clean_error(&[PASSWORD])
        .stderr_has("older than revision")
        .stderr_has("--allow-older");
    let forced = b
        .run_pw([
            "backup",
            "import",
            "--force",
            "--allow-older",
            path(&archive),
            "--json",
        ])
        .success();
    assert_eq!(json(&forced)["replaced"], true);
    assert_eq!(snapshot(&b), expected);

    // Another account on that server cannot restore the owner's backup (exit 4).
    b.run_pw(["workspace", "create", "Team"]).success();
    b.run(["workspace", "use", "Team"]).success();
    b.run_pw(["workspace", "invite", "mallory@example.com"])
        .success();
    let mallory = TestContext::new();
    mallory.signup(
        &b.server.as_ref().expect("server").url,
        "mallory@example.com",
    );
    mallory
        .run(["backup", "import", "--force", path(&archive)])
        .code_is(4)
        .clean_error(&[PASSWORD])
        .stderr_has(OWNER);
    b.run(["workspace", "use", "Personal"]).success();
    assert_eq!(snapshot(&b), expected);

    // The recovery code from the first server opens the account on the second.
    let mut cmd = b.klef(["recover", "--code-file", path(&code)]);
    cmd.env("KLEF_NEW_PASSWORD", "a brand new passphrase")
        .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    klef_e2e::run_with_stdin(cmd, None).success();
    let mut cmd = b.command("klef");
    cmd.args([
        "--password-stdin",
        "-p",
        "my-app",
        "get",
        "TOKEN",
        "-e",
        "production",
        "--plain",
    ]);
    let got = klef_e2e::run_with_stdin(cmd, Some(b"a brand new passphrase\n")).success();
    assert_eq!(got.stdout().trim_end(), "prod-token-7c7c7c7c7c");
}

#[test]
fn signup_from_backup_needs_the_right_password_and_a_local_backup_moves_to_a_server() {
    // A local vault's backup: `signup --from-backup` brings its account to a fresh server.
    let local = TestContext::new();
    local.init();
    for (env, key, value) in VALUES {
        local
            .run_pw(["set", "-e", env, &format!("{key}={value}")])
            .success();
    }
    let expected = snapshot(&local);
    let archive = local.root().join("local.klefbackup");
    local.run(["backup", "export", path(&archive)]).success();

    // A wrong encryption password creates nothing.
    let mut wrong = TestContext::new();
    wrong.server = Some(Server::sqlite(&wrong.root().join("server")));
    let url = wrong.server.as_ref().expect("server").url.clone();
    let mut cmd = wrong.command("klef");
    cmd.args([
        "--password-stdin",
        "signup",
        "--server",
        &url,
        "--email",
        OWNER,
        "--from-backup",
        path(&archive),
    ])
    .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    klef_e2e::run_with_stdin(cmd, Some(b"not the password\n"))
        .code_is(3)
        .clean_error(&["not the password", ACCOUNT_PASSWORD]);
    wrong.signup(&url, OWNER);

    let (server, signup) = second_server_from_backup(&archive);
    signup.success();
    assert_eq!(snapshot(&server), expected);
    // The account on the server is the local vault's: the archive's body (JSON between the
    // 22-byte header and the 32-byte checksum) names it.
    let bytes = std::fs::read(&archive).expect("archive");
    let body: Value = serde_json::from_slice(&bytes[22..bytes.len() - 32]).expect("body");
    let whoami = json(&server.run(["whoami", "--json"]).success());
    assert_eq!(
        whoami["account_id"], body["accounts"][0]["id"],
        "same account, same keys"
    );
}
