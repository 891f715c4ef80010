//! Replacing an account's sealed master key on a server (issue #21, DESIGN §9.4), through the
//! real binaries: `password change` and `recover` need a session (an API key is refused) and the
//! account password re-entered (missing or wrong: refused, nothing changed); the server keeps
//! the replaced seals, so after a bad write `klef recover` restores one the recovery code opens.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;

use klef_e2e::{ACCOUNT_PASSWORD, PASSWORD, Run, Server, TestContext};
use serde_json::{Value, json};

const OWNER: &str = "owner@example.com";
const NEW_PASSWORD: &str = "a brand new passphrase";
const VALUE: &str = "value-0f8fad5b";

/// An owner on a fresh server (recovery code in `code.txt`) with `A` set in `my-app`.
fn owner() -> (TestContext, PathBuf) {
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
        code.to_str().expect("utf-8"),
    ])
    .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    klef_e2e::run_with_stdin(cmd, Some(format!("{PASSWORD}\n").as_bytes())).success();
    ctx.init();
    ctx.run_pw(["set", "A", VALUE]).success();
    (ctx, code)
}

/// `klef get A` with `password` on stdin.
fn get_with(ctx: &TestContext, password: &str) -> Run {
    let cmd = ctx.klef(["--password-stdin", "get", "A", "--plain"]);
    klef_e2e::run_with_stdin(cmd, Some(format!("{password}\n").as_bytes()))
}

/// Whether `password` opens the account (and the value is intact).
fn opens_with(ctx: &TestContext, password: &str) -> bool {
    let run = get_with(ctx, password);
    if run.code() != 0 {
        return false;
    }
    assert_eq!(run.stdout().trim_end(), VALUE);
    true
}

/// `klef password change`, the current password on stdin, the new one from the environment,
/// the account password as given (`None`: not set).
fn password_change(ctx: &TestContext, account_password: Option<&str>, token: Option<&str>) -> Run {
    let mut cmd = ctx.klef(["--password-stdin", "password", "change"]);
    cmd.env("KLEF_NEW_PASSWORD", NEW_PASSWORD)
        .env_remove("KLEF_ACCOUNT_PASSWORD");
    if let Some(pw) = account_password {
        cmd.env("KLEF_ACCOUNT_PASSWORD", pw);
    }
    if let Some(token) = token {
        cmd.env("KLEF_TOKEN", token);
    }
    klef_e2e::run_with_stdin(cmd, Some(format!("{PASSWORD}\n").as_bytes()))
}

/// One HTTP request to the server at `url`; the status and the JSON body (`null` if none).
fn http(url: &str, method: &str, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let addr = url.strip_prefix("http://").expect("http url");
    let mut stream = TcpStream::connect(addr).expect("connect");
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    assert!(
        !head.to_ascii_lowercase().contains("chunked"),
        "a chunked answer: {head}"
    );
    let json = serde_json::from_str(rest).unwrap_or(Value::Null);
    (status, json)
}

#[test]
fn an_api_key_cannot_replace_the_account_keys() {
    let (ctx, _) = owner();
    let user_key = ctx
        .run_pw(["keys", "create", "--type", "user", "--label", "laptop"])
        .success()
        .stdout()
        .trim()
        .to_owned();
    assert!(user_key.starts_with("klef_user_"), "{user_key}");
    // Even with every password right, a user key may not re-seal the master key.
    password_change(&ctx, Some(ACCOUNT_PASSWORD), Some(&user_key))
        .code_is(4)
        .stderr_has("API key")
        .stderr_has("klef login")
        .clean_error(&[&user_key, PASSWORD, ACCOUNT_PASSWORD, NEW_PASSWORD]);
    assert!(opens_with(&ctx, PASSWORD), "nothing changed");
    assert!(!opens_with(&ctx, NEW_PASSWORD));
}

#[test]
fn the_account_password_approves_a_password_change() {
    let (ctx, _) = owner();
    // Not given, and no terminal to ask on: refused before anything is sent.
    password_change(&ctx, None, None)
        .code_is(3)
        .stderr_has("account password is needed")
        .stderr_has("KLEF_ACCOUNT_PASSWORD")
        .clean_error(&[PASSWORD, NEW_PASSWORD]);
    assert!(opens_with(&ctx, PASSWORD), "nothing changed");

    // Wrong: the server refuses (403), nothing changes.
    password_change(&ctx, Some("not the account password"), None)
        .code_is(4)
        .stderr_has("account password is wrong")
        .clean_error(&[PASSWORD, NEW_PASSWORD, "not the account password"]);
    assert!(opens_with(&ctx, PASSWORD), "nothing changed");
    assert!(!opens_with(&ctx, NEW_PASSWORD));

    // Right: changed.
    password_change(&ctx, Some(ACCOUNT_PASSWORD), None).success();
    assert!(opens_with(&ctx, NEW_PASSWORD));
    assert!(!opens_with(&ctx, PASSWORD));
}

#[test]
fn recover_undoes_a_bad_write_to_the_sealed_keys() {
    let (ctx, code) = owner();
    let url = ctx.server.as_ref().expect("server").url.clone();
    // Someone holding a session and the account password (stolen, or a buggy client) writes
    // seals that nothing opens.
    let (status, session) = http(
        &url,
        "POST",
        "/v1/login",
        None,
        &json!({"email": OWNER, "password": ACCOUNT_PASSWORD}),
    );
    assert_eq!(status, 200, "{session}");
    let token = session["token"].as_str().expect("token").to_owned();
    // The two seals swapped: well-formed, but each bound to the other's use, so neither opens.
    let mut keys = session["account"]["keys"].clone();
    let by_password = keys["master_key_by_password"].clone();
    keys["master_key_by_password"] = keys["master_key_by_recovery"].clone();
    keys["master_key_by_recovery"] = by_password;
    // The server itself refuses the write without the account password, or with a wrong one.
    let (status, answer) = http(
        &url,
        "PUT",
        "/v1/me/keys",
        Some(&token),
        &json!({"keys": keys}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("account_password"), "{answer}");
    let (status, answer) = http(
        &url,
        "PUT",
        "/v1/me/keys",
        Some(&token),
        &json!({"keys": keys, "account_password": "a guess"}),
    );
    assert_eq!(status, 403, "{answer}");
    assert!(opens_with(&ctx, PASSWORD), "nothing changed");
    let (status, answer) = http(
        &url,
        "PUT",
        "/v1/me/keys",
        Some(&token),
        &json!({"keys": keys, "account_password": ACCOUNT_PASSWORD}),
    );
    assert_eq!(status, 204, "{answer}");
    get_with(&ctx, PASSWORD)
        .code_is(3)
        .stderr_has("wrong password");

    // The recovery code opens the seal that write replaced: klef says so and restores it.
    let mut cmd = ctx.klef(["recover", "--code-file", code.to_str().expect("utf-8")]);
    cmd.env("KLEF_NEW_PASSWORD", NEW_PASSWORD)
        .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    klef_e2e::run_with_stdin(cmd, None)
        .success()
        .stderr_has("does not open with this recovery code")
        .stderr_has("restores it");
    assert!(opens_with(&ctx, NEW_PASSWORD));
    // The restored recovery copy is the real one: the code opens the current seal again.
    let mut cmd = ctx.klef([
        "--json",
        "recover",
        "--code-file",
        code.to_str().expect("utf-8"),
    ]);
    cmd.env("KLEF_NEW_PASSWORD", "yet another passphrase")
        .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    let again = klef_e2e::run_with_stdin(cmd, None).success();
    let out: Value = serde_json::from_str(&again.stdout()).expect("json");
    assert_eq!(out["recovered"], true);
    assert_eq!(out["restored_earlier_seal"], false);
    assert!(opens_with(&ctx, "yet another passphrase"));
}

#[test]
fn recover_with_a_wrong_account_password_changes_nothing() {
    let (ctx, code) = owner();
    let mut cmd = ctx.klef(["recover", "--code-file", code.to_str().expect("utf-8")]);
    cmd.env("KLEF_NEW_PASSWORD", NEW_PASSWORD)
        .env("KLEF_ACCOUNT_PASSWORD", "wrong account password");
    klef_e2e::run_with_stdin(cmd, None)
        .code_is(4)
        .stderr_has("account password is wrong")
        .clean_error(&[NEW_PASSWORD, "wrong account password"]);
    assert!(opens_with(&ctx, PASSWORD), "nothing changed");
}

#[test]
fn at_a_terminal_the_account_password_is_asked_hidden() {
    let (ctx, _) = owner();
    let mut t = ctx.terminal(["password", "change"]);
    t.expect("account password (the one you sign in with, to approve this change): ")
        .type_hidden(ACCOUNT_PASSWORD);
    t.expect("current encryption password: ")
        .type_hidden(PASSWORD);
    t.expect("new encryption password: ")
        .type_hidden(NEW_PASSWORD);
    t.expect("repeat the new encryption password: ")
        .type_hidden(NEW_PASSWORD);
    let (code, screen) = t.finish();
    assert_eq!(code, 0, "{screen}");
    for typed in [ACCOUNT_PASSWORD, PASSWORD, NEW_PASSWORD] {
        assert!(!screen.contains(typed), "echoed:\n{screen}");
    }
    assert!(opens_with(&ctx, NEW_PASSWORD));
}
