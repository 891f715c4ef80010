//! The secret-list cache (docs/decisions/0009-secret-list-cache.md) never serves an answer the
//! database no longer holds: two servers on one database, each with its cache on, reads through
//! one after writes through the other, and a backup restore that brings the environment back to
//! the same number of secret rows with different contents.

use klef_core::ids::WorkspaceId;
use serde_json::json;

use crate::backup::{get_bytes, import, names_and_values};
use crate::common::{
    Api, Person, ProjectFixture, Server, T0, Target, put, with_postgres, with_sqlite,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cache_follows_the_database() {
    with_sqlite(cache_follows_the_database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cache_follows_the_database() {
    with_postgres(cache_follows_the_database).await;
}

fn one(name: &str, version: i64, value: &str) -> Vec<(String, i64, String)> {
    vec![(name.to_owned(), version, value.to_owned())]
}

async fn cache_follows_the_database(target: Target) {
    let one_server = Server::start(&target, true).await;
    let a = Api::new(&one_server.base);
    let alice = Person::new("alice");
    let token = alice.signup(&a).await;
    // The second server starts once the first has migrated the database.
    let two_server = Server::start(&target, true).await;
    let b = a.at(&two_server.base);
    let ws = WorkspaceId::random();
    a.post(
        "/v1/workspaces",
        Some(&token),
        &json!({"workspace": {"id": ws, "name": "Acme", "personal": false, "created_at": T0}}),
    )
    .await
    .ok(201);
    let fx = ProjectFixture::new(ws, "api", &["prod"]);
    a.post(
        &format!("/v1/workspaces/{ws}/projects"),
        Some(&token),
        &json!({"project": fx.new_project(&alice.public_key())}),
    )
    .await
    .ok(201);
    let (env, key) = fx.env("prod");
    let path = format!("/v1/environments/{}/secrets", env.id);
    let write = |api: Api, expected: i64, value: &'static str| {
        let body = json!({"writes": [put(&env.id, key, "DB_URL", Some(expected), value)]});
        let path = path.clone();
        let token = token.clone();
        async move { api.post(&path, Some(&token), &body).await.ok(200) }
    };

    // Empty, then one value; read twice through server one (the second read is its cached copy).
    assert!(names_and_values(&a.get(&path, &token).await.ok(200), &env.id, key).is_empty());
    write(a.clone(), 0, "plaintext-a").await;
    let first = a.get(&path, &token).await.ok(200);
    assert_eq!(first, a.get(&path, &token).await.ok(200));
    assert_eq!(
        names_and_values(&first, &env.id, key),
        one("DB_URL", 1, "plaintext-a")
    );

    // A write through server two is seen by the next read through server one.
    write(b.clone(), 1, "plaintext-b").await;
    assert_eq!(
        names_and_values(&a.get(&path, &token).await.ok(200), &env.id, key),
        one("DB_URL", 2, "plaintext-b")
    );

    // Back up at two rows, write a third ("c") and cache it on server one.
    let (status, archive, _) = get_bytes(
        &one_server.base,
        &format!("/v1/workspaces/{ws}/export"),
        &token,
    )
    .await;
    assert_eq!(status, 200);
    write(b.clone(), 2, "plaintext-c").await;
    assert_eq!(
        names_and_values(&a.get(&path, &token).await.ok(200), &env.id, key),
        one("DB_URL", 3, "plaintext-c")
    );
    // Restore through server two (two rows: "a", "b"), then write "d": three rows again, as when
    // "c" was cached on server one, but a different third row. Server one must read "d".
    import(&two_server.base, &token, &archive, true)
        .await
        .ok(200);
    assert_eq!(
        names_and_values(&a.get(&path, &token).await.ok(200), &env.id, key),
        one("DB_URL", 2, "plaintext-b")
    );
    write(b.clone(), 2, "plaintext-d").await;
    let after = a.get(&path, &token).await.ok(200);
    assert_eq!(
        names_and_values(&after, &env.id, key),
        one("DB_URL", 3, "plaintext-d")
    );
    assert_eq!(after, b.get(&path, &token).await.ok(200));

    // Authorization still runs first on a cached read: a stranger gets 404 and no secrets.
    let mallory = Person::new("mallory");
    let stranger = mallory.signup(&a).await;
    let refused = a.get(&path, &stranger).await;
    assert_eq!(refused.status, 404);
    assert!(refused.body.get("secrets").is_none());
}
