//! `PUT /v1/me/keys` (issue #21, DESIGN §9.4): only a session, only with the account password
//! re-entered (missing 400, wrong 403, counted with failed sign-ins and audited), and every
//! replaced seal is kept (`GET /v1/me/keys`, newest first, at most ten) so a bad write can be
//! undone with the recovery code.

use klef_core::model::{AccountKeys, Blob};
use serde_json::{Value, json};

use crate::common::{Api, Person, Server, Target, count, with_postgres, with_sqlite};
use crate::matrix::user_key;

#[tokio::test]
async fn sqlite_replacing_keys_needs_a_session_and_the_account_password() {
    with_sqlite(replacing_keys_needs_a_session_and_the_account_password).await;
}

#[tokio::test]
async fn postgres_replacing_keys_needs_a_session_and_the_account_password() {
    with_postgres(replacing_keys_needs_a_session_and_the_account_password).await;
}

#[tokio::test]
async fn sqlite_replaced_seals_are_kept_newest_ten() {
    with_sqlite(replaced_seals_are_kept_newest_ten).await;
}

#[tokio::test]
async fn postgres_replaced_seals_are_kept_newest_ten() {
    with_postgres(replaced_seals_are_kept_newest_ten).await;
}

#[tokio::test]
async fn sqlite_wrong_account_passwords_are_rate_limited_with_sign_ins() {
    with_sqlite(wrong_account_passwords_are_rate_limited_with_sign_ins).await;
}

/// `keys` with a different (fake) password seal: what a password change sends.
fn resealed(keys: &AccountKeys, byte: u8) -> AccountKeys {
    let mut new = keys.clone();
    new.master_key_by_password = Blob(vec![byte; 60]);
    new
}

/// The caller's current sealed keys, as `GET /v1/me` answers them.
async fn current_keys(api: &Api, token: &str) -> Value {
    api.get("/v1/me", token).await.ok(200)["account"]["keys"].clone()
}

async fn replacing_keys_needs_a_session_and_the_account_password(target: Target) {
    let server = Server::start(&target, false).await;
    let api = Api::new(&server.base);
    let alice = Person::new("alice");
    let token = alice.signup(&api).await;
    let (user_token, _, body) = user_key("laptop");
    api.post("/v1/api-keys", Some(&token), &body).await.ok(201);
    let before = current_keys(&api, &token).await;
    let attacker = resealed(&alice.keys, 7);

    // A user key acts as the person, but cannot replace (or read) the sealed keys, even with the
    // right password.
    let refused = api
        .send(
            "PUT",
            "/v1/me/keys",
            &user_token,
            &json!({"keys": attacker, "account_password": alice.account_password}),
        )
        .await
        .err(403, "forbidden");
    assert!(
        refused.message().contains("API key"),
        "{}",
        refused.message()
    );
    assert!(
        refused.message().contains("klef login"),
        "{}",
        refused.message()
    );
    api.get("/v1/me/keys", &user_token)
        .await
        .err(403, "forbidden");

    // A session without the account password: 400, naming what is missing.
    let missing = api
        .send("PUT", "/v1/me/keys", &token, &json!({"keys": attacker}))
        .await
        .err(400, "invalid_request");
    assert!(
        missing.message().contains("account_password"),
        "{}",
        missing.message()
    );

    // A wrong one: 403, audited, counted as a failed sign-in.
    let wrong = api
        .send(
            "PUT",
            "/v1/me/keys",
            &token,
            &json!({"keys": attacker, "account_password": "not-the-password"}),
        )
        .await
        .err(403, "forbidden");
    assert!(
        wrong.message().contains("account password is wrong"),
        "{}",
        wrong.message()
    );
    assert!(!wrong.message().contains("not-the-password"));
    assert_eq!(current_keys(&api, &token).await, before, "nothing changed");
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'account.keys.refused'",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM login_attempts WHERE subject = $1",
            &["login:alice@example.com"]
        )
        .await,
        1,
        "the wrong password counts against the account like a failed sign-in"
    );
    let history = api.get("/v1/me/keys", &token).await.ok(200);
    assert_eq!(history["previous"], json!([]), "nothing was replaced");

    // The right one: replaced, audited, the old seal kept.
    let new = resealed(&alice.keys, 9);
    api.send(
        "PUT",
        "/v1/me/keys",
        &token,
        &json!({"keys": new, "account_password": alice.account_password}),
    )
    .await
    .ok(204);
    let after = current_keys(&api, &token).await;
    assert_eq!(after, serde_json::to_value(&new).unwrap());
    let history = api.get("/v1/me/keys", &token).await.ok(200);
    let previous = history["previous"].as_array().expect("previous");
    assert_eq!(previous.len(), 1);
    assert_eq!(previous[0]["kdf"], before["kdf"]);
    assert_eq!(
        previous[0]["master_key_by_password"],
        before["master_key_by_password"]
    );
    assert_eq!(
        previous[0]["master_key_by_recovery"],
        before["master_key_by_recovery"]
    );
    assert!(previous[0]["replaced_at"].as_i64().unwrap() > 0);
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'account.keys.replace'",
            &[]
        )
        .await,
        1
    );
    server.stop().await;
}

async fn replaced_seals_are_kept_newest_ten(target: Target) {
    let server = Server::start(&target, true).await;
    let api = Api::new(&server.base);
    let alice = Person::new("alice");
    let bob = Person::new("bob");
    let token = alice.signup(&api).await;
    let bob_token = bob.signup(&api).await;
    for n in 1..=12u8 {
        api.send(
            "PUT",
            "/v1/me/keys",
            &token,
            &json!({"keys": resealed(&alice.keys, n), "account_password": alice.account_password}),
        )
        .await
        .ok(204);
    }
    let history = api.get("/v1/me/keys", &token).await.ok(200);
    let previous = history["previous"].as_array().expect("previous");
    assert_eq!(previous.len(), 10, "the newest ten are kept");
    // Newest first: the seal replaced last is the 11th written, the oldest kept the 2nd.
    let byte = |v: &Value| {
        serde_json::from_value::<Blob>(v["master_key_by_password"].clone())
            .unwrap()
            .0[0]
    };
    assert_eq!(byte(&previous[0]), 11);
    assert_eq!(byte(&previous[9]), 2);
    // One account's history is its own.
    let theirs = api.get("/v1/me/keys", &bob_token).await.ok(200);
    assert_eq!(theirs["previous"], json!([]));
    server.stop().await;
}

async fn wrong_account_passwords_are_rate_limited_with_sign_ins(target: Target) {
    let server = Server::start(&target, false).await;
    let api = Api::new(&server.base);
    let alice = Person::new("alice");
    let token = alice.signup(&api).await;
    let body = json!({"keys": resealed(&alice.keys, 3), "account_password": "guess"});
    // The default limit is five failures per account within the window.
    for _ in 0..5 {
        api.send("PUT", "/v1/me/keys", &token, &body)
            .await
            .err(403, "forbidden");
    }
    api.send("PUT", "/v1/me/keys", &token, &body)
        .await
        .err(429, "rate_limited");
    // Even the right password waits now: guesses cannot go on, and sign-in shares the limit.
    api.send(
        "PUT",
        "/v1/me/keys",
        &token,
        &json!({"keys": resealed(&alice.keys, 3), "account_password": alice.account_password}),
    )
    .await
    .err(429, "rate_limited");
    api.post(
        "/v1/login",
        None,
        &json!({"email": alice.email, "password": alice.account_password}),
    )
    .await
    .err(429, "rate_limited");
    let history = api.get("/v1/me/keys", &token).await.ok(200);
    assert_eq!(history["previous"], json!([]), "nothing was replaced");
    server.stop().await;
}
