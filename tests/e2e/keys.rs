//! API keys with the real binaries on a real `klef-server` (`SQLite`): CI reads with a read key
//! and writes with a readwrite key through `KLEF_TOKEN`, with no password and no agent; a read
//! key is refused on `set` (exit 4); `revoke` makes the very next request fail; malformed or
//! unknown scopes, `put` on a user key, unknown prefixes and the local vault give clear errors
//! and change nothing.

use klef_e2e::{PASSWORD, Server, TestContext};
use serde_json::Value;

const OWNER: &str = "owner@example.com";

/// The owner on a fresh server: project `my-app` with a value in staging and production.
fn owner() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.server = Some(Server::sqlite(&ctx.root().join("server")));
    let url = url(&ctx);
    ctx.signup(&url, OWNER);
    ctx.init();
    ctx.run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    ctx.run_pw(["set", "DB", "prod-value", "-e", "production"])
        .success();
    ctx
}

fn url(ctx: &TestContext) -> String {
    ctx.server.as_ref().expect("a server").url.clone()
}

/// `klef keys create …` as the owner: stdout is exactly the key.
fn create(owner: &TestContext, args: &[&str]) -> String {
    let mut all = vec!["keys", "create"];
    all.extend_from_slice(args);
    let out = owner.run_pw(all).success().stdout();
    let key = out.trim_end_matches('\n');
    assert!(!key.contains('\n'), "only the key on stdout: {out:?}");
    assert!(key.starts_with("klef_"), "{out:?}");
    key.to_owned()
}

/// A CI machine: no session, no `.klef`, no agent; only `KLEF_TOKEN` and `KLEF_SERVER`.
fn ci(owner: &TestContext, key: &str) -> TestContext {
    let mut ci = TestContext::new();
    ci.set_env("KLEF_TOKEN", key);
    ci.set_env("KLEF_SERVER", &url(owner));
    ci
}

fn listing(owner: &TestContext) -> Value {
    serde_json::from_str(&owner.run(["keys", "list", "--json"]).success().stdout())
        .expect("keys list --json")
}

#[test]
fn ci_reads_with_a_read_key_and_writes_with_a_readwrite_key() {
    let owner = owner();
    let read = create(
        &owner,
        &[
            "--type",
            "system",
            "--label",
            "gh-actions",
            "--scope",
            "my-app:production",
            "--permission",
            "read",
        ],
    );
    assert!(read.starts_with("klef_sys_"));

    // The listing: exactly the documented columns, EMAIL is the creator's.
    let table = owner.run(["keys", "list"]).success().stdout();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "PREFIX",
            "TYPE",
            "LABEL",
            "EMAIL",
            "PERMISSION",
            "SCOPES",
            "CREATED"
        ]
    );
    assert!(table.contains(OWNER), "{table}");
    assert!(table.contains("my-app:production"), "{table}");
    assert!(!table.contains(&read), "the key is never shown again");

    // CI with the read key: get, pull and run decrypt production; no password is asked.
    let reader = ci(&owner, &read);
    let got = reader.run(["get", "DB"]).success().stdout();
    assert_eq!(got, "prod-value\n");
    let pulled = reader.run(["pull", "-o", "-"]).success().stdout();
    assert!(
        pulled.contains("DB=") && pulled.contains("prod-value"),
        "{pulled}"
    );
    let ran = reader
        .run(["run", "--", "sh", "-c", "printf '%s' \"$DB\""])
        .success()
        .stdout();
    assert_eq!(ran, "prod-value");
    // Out of scope: staging is not the key's.
    reader
        .run(["get", "DB", "-e", "staging"])
        .code_is(4)
        .clean_error(&[&read, PASSWORD]);
    // A read key cannot write.
    reader
        .run(["set", "NEW=1"])
        .code_is(4)
        .stderr_has("read")
        .clean_error(&[&read]);

    // A readwrite key writes with set and push; the owner reads it back.
    let rw = create(
        &owner,
        &[
            "--type",
            "system",
            "--label",
            "deployer",
            "--scope",
            "my-app:production",
            "--permission",
            "readwrite",
        ],
    );
    let writer = ci(&owner, &rw);
    writer.run(["set", "FROM_CI=built-42"]).success();
    std::fs::write(writer.cwd.join(".env"), "PUSHED=yes\n").expect("write .env");
    writer.run(["push", ".env"]).success();
    let seen = owner
        .run_pw(["get", "FROM_CI", "-e", "production"])
        .success()
        .stdout();
    assert_eq!(seen, "built-42\n");
    let seen = owner
        .run_pw(["get", "PUSHED", "-e", "production"])
        .success()
        .stdout();
    assert_eq!(seen, "yes\n");
}

#[test]
fn revoke_fails_the_very_next_request() {
    let owner = owner();
    let key = create(
        &owner,
        &[
            "--type",
            "system",
            "--label",
            "loop",
            "--scope",
            "my-app:*",
            "--permission",
            "read",
        ],
    );
    let ci = ci(&owner, &key);
    let script = [
        "run",
        "-e",
        "production",
        "--",
        "sh",
        "-c",
        "printf '%s' \"$DB\"",
    ];
    for _ in 0..3 {
        assert_eq!(ci.run(script).success().stdout(), "prod-value");
    }
    let prefix = &key[..key.rfind('_').unwrap()][..17];
    owner.run(["keys", "revoke", prefix]).success();
    ci.run(script)
        .code_is(3)
        .stderr_has("revoked")
        .clean_error(&[&key]);
    assert_eq!(listing(&owner).as_array().unwrap().len(), 0);
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let owner = owner();
    let user = create(&owner, &["--type", "user", "--label", "laptop"]);
    assert!(user.starts_with("klef_user_"));
    let before = listing(&owner);
    for scope in ["my-app", ":production", "my-app:production:x", "README.md"] {
        owner
            .run_pw([
                "keys",
                "create",
                "--type",
                "system",
                "--label",
                "x",
                "--scope",
                scope,
                "--permission",
                "read",
            ])
            .code_is(2)
            .stderr_has("invalid scope");
    }
    for (scope, code) in [("nope:production", 5), ("my-app:nope", 5)] {
        owner
            .run_pw([
                "keys",
                "create",
                "--type",
                "system",
                "--label",
                "x",
                "--scope",
                scope,
                "--permission",
                "read",
            ])
            .code_is(code)
            .stderr_has("not found");
    }
    owner
        .run([
            "keys",
            "create",
            "--type",
            "system",
            "--label",
            "x",
            "--permission",
            "read",
        ])
        .code_is(2)
        .stderr_has("--scope");
    owner
        .run([
            "keys", "create", "--type", "user", "--label", "x", "--scope", "my-app:*",
        ])
        .code_is(2);
    let user_prefix = &user[..user.rfind('_').unwrap()];
    owner
        .run_pw([
            "keys",
            "put",
            user_prefix,
            "--scope",
            "my-app:production",
            "--permission",
            "read",
        ])
        .code_is(2)
        .stderr_has("user key");
    owner
        .run(["keys", "revoke", "klef_sys_zzzzzzzz"])
        .code_is(5)
        .stderr_has("no API key matches");
    assert_eq!(listing(&owner), before, "nothing changed");

    // The local vault has no API keys; KLEF_TOKEN without a server is refused.
    let local = TestContext::new();
    local.init();
    local
        .run(["keys", "list"])
        .code_is(2)
        .stderr_has("API keys need a server");
    let mut stray = TestContext::new();
    stray.set_env("KLEF_TOKEN", &user);
    stray
        .run(["get", "DB"])
        .code_is(3)
        .stderr_has("need a Klef server")
        .clean_error(&[&user]);
}
