//! Bad input never becomes a 500 and never writes anything: malformed JSON, unknown fields,
//! oversized bodies, invalid ids, garbage, expired and revoked tokens, unknown routes; and the
//! sign-in rate limit.

use klef_core::ids::WorkspaceId;
use serde_json::json;

use crate::common::{
    Api, Person, ProjectFixture, Server, Target, count, exec, put, with_postgres, with_sqlite,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_bad_input() {
    with_sqlite(bad_input).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_bad_input() {
    with_postgres(bad_input).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_login_rate_limit() {
    with_sqlite(login_rate_limit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_login_rate_limit() {
    with_postgres(login_rate_limit).await;
}

async fn totals(target: &Target) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "accounts",
        "workspaces",
        "projects",
        "environments",
        "secrets",
        "invitations",
        "sessions",
    ] {
        out.push(count(target, &format!("SELECT COUNT(*) FROM {table}"), &[]).await);
    }
    out
}

async fn bad_input(target: Target) {
    let server = Server::start(&target, false).await;
    let api = Api::new(&server.base);
    let alice = Person::new("alice");
    let token = alice.signup(&api).await;
    let ws = alice.personal.id;
    let fx = ProjectFixture::new(ws, "api", &["dev"]);
    api.post(
        &format!("/v1/workspaces/{ws}/projects"),
        Some(&token),
        &json!({"project": fx.new_project(&alice.public_key())}),
    )
    .await
    .ok(201);
    let (dev, dev_key) = fx.env("dev");
    let secrets_path = format!("/v1/environments/{}/secrets", dev.id);
    let before = totals(&target).await;

    // Bodies.
    api.raw(
        "POST",
        &secrets_path,
        Some(&token),
        Some("{\"writes\": [".into()),
        None,
    )
    .await
    .err(400, "invalid_json");
    api.raw("POST", "/v1/signup", None, Some("not json".into()), None)
        .await
        .err(400, "invalid_json");
    let unknown = api
        .post(
            &secrets_path,
            Some(&token),
            &json!({"writes": [put(&dev.id, dev_key, "A", None, "x-a")], "force": true}),
        )
        .await
        .err(400, "invalid_request");
    assert!(
        unknown.message().contains("unknown field"),
        "{}",
        unknown.message()
    );
    api.post(&secrets_path, Some(&token), &json!({"writes": "nope"}))
        .await
        .err(400, "invalid_request");
    api.post(&secrets_path, Some(&token), &json!({"writes": []}))
        .await
        .err(400, "invalid_request");
    api.post(
        &secrets_path,
        Some(&token),
        &json!({"writes": [{"name": "1BAD", "expected_version": null, "ciphertext": "AAAA"}]}),
    )
    .await
    .err(400, "invalid_request");
    api.post(
        &secrets_path,
        Some(&token),
        &json!({"writes": [{"name": "A", "expected_version": null, "ciphertext": "***"}]}),
    )
    .await
    .err(400, "invalid_request");
    // Bytes no client could open (issue #22's poisoning: one member breaking every teammate's
    // `klef run`): refused, naming the key, and nothing is stored.
    for junk in ["AQ==", "EAAAAA==", "AA=="] {
        let answer = api
            .post(
                &secrets_path,
                Some(&token),
                &json!({"writes": [{"name": "JUNK", "expected_version": null, "ciphertext": junk}]}),
            )
            .await;
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("JUNK: not an encrypted value")),
            "{:?}",
            answer.body
        );
        answer.err(400, "invalid_request");
    }
    api.raw(
        "POST",
        &secrets_path,
        Some(&token),
        Some("{}".into()),
        Some("text/plain"),
    )
    .await
    .err(415, "unsupported_media_type");
    oversized_body_is_refused(&api, &secrets_path, &token).await;
    let mut signup = Person::new("mallory").signup_body();
    signup["is_admin"] = json!(true);
    api.post("/v1/signup", None, &signup)
        .await
        .err(400, "invalid_request");
    let mut weak = Person::new("eve").signup_body();
    weak["keys"]["public_key"] = json!("AAAA");
    api.post("/v1/signup", None, &weak)
        .await
        .err(400, "invalid_request");

    // Ids and routes.
    api.get("/v1/environments/not-an-id/secrets", &token)
        .await
        .err(400, "invalid_id");
    api.get("/v1/projects/0f8fad5b-d9cb-469f-a165-70867728950x", &token)
        .await
        .err(400, "invalid_id");
    api.get(
        &format!("/v1/workspaces/{}/projects", WorkspaceId::random()),
        &token,
    )
    .await
    .err(404, "not_found");
    api.get(
        &format!("/v1/environments/{}/secrets/lower-case!/history", dev.id),
        &token,
    )
    .await
    .err(400, "invalid_request");
    api.get("/v1/nowhere", &token).await.err(404, "no_route");
    api.raw("DELETE", "/v1/me", Some(&token), None, None)
        .await
        .err(405, "method_not_allowed");

    // Tokens.
    for bad in [
        "",
        "garbage",
        "klef_sess_",
        "klef_sess_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "klef_user_x_y",
    ] {
        api.get("/v1/me", bad).await.err(401, "unauthenticated");
        api.post(
            &secrets_path,
            Some(bad),
            &json!({"writes": [put(&dev.id, dev_key, "A", None, "x-a")]}),
        )
        .await
        .err(401, "unauthenticated");
    }
    api.raw("GET", "/v1/me", None, None, None)
        .await
        .err(401, "unauthenticated");
    let second = alice.login(&api).await;
    exec(&target, "UPDATE sessions SET expires_at = 0").await;
    api.get("/v1/me", &second).await.err(401, "unauthenticated");
    api.get("/v1/me", &token).await.err(401, "unauthenticated");

    assert_eq!(
        totals(&target).await[..6],
        before[..6],
        "bad input wrote something"
    );
    server.stop().await;
}

async fn login_rate_limit(target: Target) {
    let server = Server::start(&target, false).await;
    let api = Api::new(&server.base);
    let alice = Person::new("alice");
    alice.signup(&api).await;
    let wrong = json!({"email": alice.email, "password": "wrong password"});
    for _ in 0..5 {
        api.post("/v1/login", None, &wrong)
            .await
            .err(401, "invalid_credentials");
    }
    let limited = api
        .post("/v1/login", None, &wrong)
        .await
        .err(429, "rate_limited");
    let retry: u64 = limited
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&retry), "{retry}");
    // Even the right password waits now; another email from the same address does not
    // (limits::one_accounts_failures_do_not_lock_out_another covers that in full).
    api.post(
        "/v1/login",
        None,
        &json!({"email": alice.email, "password": alice.account_password}),
    )
    .await
    .err(429, "rate_limited");
    api.post(
        "/v1/login",
        None,
        &json!({"email": "nobody@example.com", "password": "whatever1"}),
    )
    .await
    .err(401, "invalid_credentials");
    // Five failures of alice and one of nobody, each counted per email and per address; the
    // first account's sign-up counts against the address's sign-ups.
    assert_eq!(
        count(&target, "SELECT COUNT(*) FROM login_attempts", &[]).await,
        14
    );
    // The counters live in the database: a second server sees them too.
    let other = Server::start(&target, false).await;
    api.at(&other.base)
        .post(
            "/v1/login",
            None,
            &json!({"email": alice.email, "password": alice.account_password}),
        )
        .await
        .err(429, "rate_limited");
    // Once the window has passed, the right password works again.
    exec(&target, "UPDATE login_attempts SET attempted_at = 0").await;
    alice.login(&api).await;
    other.stop().await;
    server.stop().await;
}

/// An oversized body gets 413 `payload_too_large` as soon as its `Content-Length` is read. The
/// request goes over a raw socket: the server answers before the body is sent, so an HTTP client
/// still writing 16 MiB would see a broken pipe instead of the answer.
async fn oversized_body_is_refused(api: &Api, path: &str, token: &str) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = api
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"writes\": [",
        klef_core::wire::MAX_BODY_BYTES + 1
    );
    sock.write_all(head.as_bytes()).await.expect("write head");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sock.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 413"),
        "expected 413, got: {text}"
    );
    assert!(
        text.contains("payload_too_large"),
        "expected a JSON error body: {text}"
    );
}
