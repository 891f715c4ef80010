//! Two servers on one database, 8 concurrent writers × 75 writes to one name in one
//! environment, each retrying on 409 with a fresh read: no lost update, every version once.
//! (75 each: every write races seven others, so 600 writes already mean thousands of
//! conflicting attempts; at 200 each the PostgreSQL case alone took 96 s of CI's test time.)

use std::collections::BTreeSet;

use serde_json::json;

use crate::common::{
    Api, Person, ProjectFixture, Server, Target, open_value, put, with_postgres, with_sqlite,
};

const WRITERS: usize = 8;
const WRITES: usize = 75;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_servers_concurrent_writers() {
    with_postgres(concurrent_writers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_servers_concurrent_writers() {
    with_sqlite(concurrent_writers).await;
}

async fn concurrent_writers(target: Target) {
    let one = Server::start(&target, false).await;
    let two = Server::start(&target, false).await;
    let api = Api::new(&one.base);
    let alice = Person::new("alice");
    let token = alice.signup(&api).await;
    let ws = alice.personal.id;
    let fx = ProjectFixture::new(ws, "api", &["prod"]);
    api.post(
        &format!("/v1/workspaces/{ws}/projects"),
        Some(&token),
        &json!({"project": fx.new_project(&alice.public_key())}),
    )
    .await
    .ok(201);
    let (env, key) = fx.env("prod");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let api = if w % 2 == 0 {
            api.at(&one.base)
        } else {
            api.at(&two.base)
        };
        let token = token.clone();
        let env_id = env.id;
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/v1/environments/{env_id}/secrets");
            let mut conflicts = 0usize;
            for i in 0..WRITES {
                loop {
                    let current = api.get(&path, &token).await.ok(200);
                    let version = current["secrets"].as_array().unwrap().first().map_or(0, |s| s["version"].as_i64().unwrap());
                    let body = json!({"writes": [put(&env_id, &key, "COUNTER", Some(version), &format!("w{w}-{i}"))]});
                    let answer = api.post(&path, Some(&token), &body).await;
                    if answer.status == 200 {
                        assert_eq!(answer.body["written"][0]["version"].as_i64(), Some(version + 1));
                        break;
                    }
                    answer.err(409, "conflict");
                    conflicts += 1;
                }
            }
            api.log.lock().unwrap().clear();
            conflicts
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.expect("writer");
    }
    let history = api
        .get(
            &format!("/v1/environments/{}/secrets/COUNTER/history", env.id),
            &token,
        )
        .await
        .ok(200);
    let versions: Vec<i64> = history["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["version"].as_i64().unwrap())
        .collect();
    let total = i64::try_from(WRITERS * WRITES).unwrap();
    assert_eq!(
        versions,
        (1..=total).collect::<Vec<_>>(),
        "every version exactly once"
    );
    let values: BTreeSet<String> = history["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| open_value(&env.id, key, s))
        .collect();
    assert_eq!(
        values.len(),
        WRITERS * WRITES,
        "no write was lost or duplicated"
    );
    eprintln!("{} writes, {conflicts} conflicts retried", WRITERS * WRITES);
    one.stop().await;
    two.stop().await;
}
