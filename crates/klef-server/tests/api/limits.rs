//! Floods against sign-in and sign-up (issue #17): attempts are reserved in the database before
//! any password work, so N parallel wrong passwords check at most the limit, across replicas
//! too; one account's failures do not lock out another behind the same address; refused
//! sign-ups hash nothing; a full password gate answers 503 with `Retry-After`. The password
//! checks that ran are counted by the server's own `PasswordGate`.

use std::sync::Arc;

use klef_server::Config;
use klef_server::password::PasswordGate;
use serde_json::json;

use crate::common::{Api, Person, Server, Target, count, with_postgres, with_sqlite};

#[tokio::test]
async fn sqlite_parallel_wrong_passwords_check_at_most_the_limit() {
    with_sqlite(parallel_wrong_passwords_check_at_most_the_limit).await;
}

#[tokio::test]
async fn postgres_parallel_wrong_passwords_check_at_most_the_limit() {
    with_postgres(parallel_wrong_passwords_check_at_most_the_limit).await;
}

#[tokio::test]
async fn sqlite_one_accounts_failures_do_not_lock_out_another() {
    with_sqlite(one_accounts_failures_do_not_lock_out_another).await;
}

#[tokio::test]
async fn postgres_one_accounts_failures_do_not_lock_out_another() {
    with_postgres(one_accounts_failures_do_not_lock_out_another).await;
}

#[tokio::test]
async fn sqlite_refused_signups_hash_nothing() {
    with_sqlite(refused_signups_hash_nothing).await;
}

#[tokio::test]
async fn postgres_refused_signups_hash_nothing() {
    with_postgres(refused_signups_hash_nothing).await;
}

#[tokio::test]
async fn sqlite_a_full_password_gate_answers_503() {
    with_sqlite(a_full_password_gate_answers_503).await;
}

/// A server whose password gate the test can read (`workers` at once, a queue long enough that
/// nothing is refused as busy unless `queue` says otherwise).
async fn server(target: &Target, workers: usize, queue: usize) -> (Server, Arc<PasswordGate>) {
    let mut config = Config::new(target.url());
    let gate = Arc::new(PasswordGate::new(workers, queue));
    config.password_gate = gate.clone();
    (Server::start_with(config).await, gate)
}

/// Sends `n` sign-ins with a wrong password for `email` at once, spread over `apis`; returns
/// the statuses.
async fn wrong_passwords(apis: &[Api], email: &str, n: usize) -> Vec<u16> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let api = apis[i % apis.len()].clone();
            let body = json!({"email": email, "password": format!("wrong password {i}")});
            tokio::spawn(async move { api.post("/v1/login", None, &body).await.status })
        })
        .collect();
    let mut statuses = Vec::with_capacity(n);
    for t in tasks {
        statuses.push(t.await.expect("request task"));
    }
    statuses
}

async fn parallel_wrong_passwords_check_at_most_the_limit(target: Target) {
    let limit = 5;
    // Two replicas on one database, each with its own gate: the limit is the database's.
    let (one, gate_one) = server(&target, 2, 1000).await;
    let (two, gate_two) = server(&target, 2, 1000).await;
    let apis = [Api::new(&one.base), Api::new(&two.base)];
    let alice = Person::new("alice");
    alice.signup(&apis[0]).await;

    let statuses = wrong_passwords(&apis, &alice.email, 120).await;
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(refused + checked, 120, "only 401 and 429: {statuses:?}");
    assert_eq!(checked, limit, "{statuses:?}");
    let verifications = gate_one.counts().verifications + gate_two.counts().verifications;
    assert_eq!(
        verifications,
        u64::try_from(limit).unwrap(),
        "password checks that ran"
    );
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM login_attempts WHERE scope = 'account' AND subject = $1",
            &[&format!("login:{}", alice.email)],
        )
        .await,
        i64::try_from(limit).unwrap()
    );
    two.stop().await;
    one.stop().await;
}

async fn one_accounts_failures_do_not_lock_out_another(target: Target) {
    let mut config = Config::new(target.url());
    config.open_signup = true;
    let srv = Server::start_with(config).await;
    let api = Api::new(&srv.base);
    let alice = Person::new("alice");
    let bob = Person::new("bob");
    alice.signup(&api).await;
    bob.signup(&api).await;
    let body = json!({"email": bob.email, "password": bob.account_password});
    lockout_checks(&api, &alice, &bob, &body).await;
    srv.stop().await;
}

async fn lockout_checks(api: &Api, alice: &Person, bob: &Person, bob_login: &serde_json::Value) {
    let statuses = wrong_passwords(std::slice::from_ref(api), &alice.email, 8).await;
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5);
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429));
    // Alice is locked out, even with her right password…
    api.post(
        "/v1/login",
        None,
        &json!({"email": alice.email, "password": alice.account_password}),
    )
    .await
    .err(429, "rate_limited");
    // …bob, behind the same address, is not: his right password works, a wrong one is a
    // plain 401.
    api.post(
        "/v1/login",
        None,
        &json!({"email": bob.email, "password": "not bob's password"}),
    )
    .await
    .err(401, "invalid_credentials");
    let answer = api.post("/v1/login", None, bob_login).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(bob.email != alice.email);
}

async fn refused_signups_hash_nothing(target: Target) {
    let (srv, gate) = server(&target, 2, 1000).await;
    let api = Api::new(&srv.base);
    Person::new("owner").signup(&api).await;
    assert_eq!(gate.counts().hashes, 1, "the owner's sign-up");
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let api = api.clone();
            let body = Person::new(&format!("stranger{i}")).signup_body();
            tokio::spawn(async move { api.post("/v1/signup", None, &body).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").err(403, "signup_closed");
    }
    assert_eq!(
        gate.counts().hashes,
        1,
        "a refused sign-up hashed a password"
    );
    srv.stop().await;
}

/// A POST that, unlike `Api`, accepts a 503: `(status, Retry-After, body)`.
async fn post_any(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> (u16, Option<String>, serde_json::Value) {
    let resp = http.post(url).json(body).send().await.expect("request");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json().await.expect("a JSON answer");
    (status, retry_after, body)
}

async fn a_full_password_gate_answers_503(target: Target) {
    let (srv, gate) = server(&target, 1, 0).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/login", srv.base);
    // Different emails, so only the gate refuses (the address allows 50 failures).
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let http = http.clone();
            let url = url.clone();
            let body =
                json!({"email": format!("user{i}@example.com"), "password": "wrong password"});
            tokio::spawn(async move { post_any(&http, &url, &body).await })
        })
        .collect();
    let mut busy = 0u64;
    for t in tasks {
        let (status, retry_after, body) = t.await.expect("task");
        match status {
            401 => {}
            503 => {
                assert_eq!(retry_after.as_deref(), Some("1"));
                assert_eq!(body["error"]["code"], "unavailable");
                busy += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let counts = gate.counts();
    assert!(
        busy > 0,
        "one worker and no queue must refuse some of 20 at once"
    );
    assert_eq!(counts.refused_busy, busy);
    assert_eq!(counts.verifications + busy, 20);
    // A refused attempt is given back: only checked ones count.
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM login_attempts WHERE scope = 'account'",
            &[]
        )
        .await,
        i64::try_from(counts.verifications).unwrap()
    );
    srv.stop().await;
}
