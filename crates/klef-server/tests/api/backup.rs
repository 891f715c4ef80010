//! Backups through the server: `GET /v1/workspaces/{id}/export` and `POST /v1/import`, on
//! `SQLite` and `PostgreSQL`. Export → refusals (nothing written) → restore over the same
//! workspace with `force` → restore into a second server where the same account exists.

use klef_core::backup::{self, ArchiveSource, FORMAT_VERSION};
use klef_core::crypto::{Aad, wrap_key};
use klef_core::ids::WorkspaceId;
use klef_core::model::Blob;
use serde_json::{Value, json};

use crate::common::{
    Answer, Api, Person, Server, Target, count, dump, open_value, put, team_project, with_postgres,
    with_sqlite,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backups() {
    with_sqlite(|a| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        backups(a, Target::Sqlite(dir.path().join("b.db"))).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backups() {
    with_postgres(|a| async move {
        with_postgres(|b| async move { backups(a, b).await }).await;
    })
    .await;
}

/// `GET path` answering raw bytes (status, body).
pub(crate) async fn get_bytes(base: &str, path: &str, token: &str) -> (u16, Vec<u8>, String) {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, resp.bytes().await.expect("body").to_vec(), ct)
}

/// `POST /v1/import` with raw bytes.
pub(crate) async fn import(base: &str, token: &str, bytes: &[u8], force: bool) -> Answer {
    let resp = reqwest::Client::new()
        .post(format!(
            "{base}/v1/import{}",
            if force { "?force=true" } else { "" }
        ))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert!(status < 500, "import answered {status}: {text}");
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        retry_after: None,
    }
}

pub(crate) fn names_and_values(
    listed: &Value,
    env: &klef_core::ids::EnvironmentId,
    key: &klef_core::crypto::SymmetricKey,
) -> Vec<(String, i64, String)> {
    let mut out: Vec<(String, i64, String)> = listed["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_owned(),
                s["version"].as_i64().expect("version"),
                open_value(env, key, s),
            )
        })
        .collect();
    out.sort();
    out
}

async fn backups(a: Target, b: Target) {
    let server = Server::start(&a, true).await;
    let api = Api::new(&server.base);
    let alice = Person::new("alice");
    let bob = Person::new("bob");
    let mallory = Person::new("mallory");
    let alice_token = alice.signup(&api).await;
    let bob_token = bob.signup(&api).await;
    let mallory_token = mallory.signup(&api).await;

    // A team workspace: alice owns it, bob is a member with a grant to staging.
    let (acme, fx) = team_project(&api, &alice, &alice_token, &["staging", "production"]).await;
    let (staging, staging_key) = fx.env("staging");
    let (production, production_key) = fx.env("production");
    let secrets = |env: &klef_core::ids::EnvironmentId| format!("/v1/environments/{env}/secrets");
    let mut plaintexts = Vec::new();
    for (env, key) in [(staging, staging_key), (production, production_key)] {
        let value = format!("plaintext-{}-{}", env.slug, WorkspaceId::random());
        plaintexts.push(value.clone());
        api.post(
            &secrets(&env.id),
            Some(&alice_token),
            &json!({"writes": [put(&env.id, key, "DB_URL", Some(0), &value), put(&env.id, key, "GONE", Some(0), "plaintext-gone")]}),
        )
        .await
        .ok(200);
        api.post(
            &secrets(&env.id),
            Some(&alice_token),
            &json!({"writes": [{"name": "GONE", "expected_version": 1, "ciphertext": null}]}),
        )
        .await
        .ok(200);
    }
    let invitation = api
        .post(
            &format!("/v1/workspaces/{acme}/invitations"),
            Some(&alice_token),
            &json!({"email": "bob@example.com", "role": "member", "environments": [staging.id]}),
        )
        .await
        .ok(201);
    api.post(
        &format!(
            "/v1/invitations/{}/accept",
            invitation["id"].as_str().expect("id")
        ),
        Some(&bob_token),
        &json!({}),
    )
    .await
    .ok(200);
    let grant = Blob::from(wrap_key(
        &bob.public_key(),
        staging_key,
        &Aad::EnvironmentKey(&staging.id),
    ));
    api.post(&format!("/v1/workspaces/{acme}/members/{}/confirm", bob.id), Some(&alice_token), &json!({"environment_keys": [{"environment_id": staging.id, "key_version": 1, "wrapped_key": grant}]}))
        .await
        .ok(200);
    let before_staging = names_and_values(
        &api.get(&secrets(&staging.id), &alice_token).await.ok(200),
        &staging.id,
        staging_key,
    );

    // Alice and bob each keep personal overrides of staging (sealed to them; opaque here).
    for (token, fill) in [(&alice_token, 0xa1u8), (&bob_token, 0xb0)] {
        let mut sealed = vec![fill; 40];
        sealed[0] = 1;
        api.send(
            "PUT",
            &format!("/v1/environments/{}/personal", staging.id),
            token,
            &json!({"sealed": Blob::from(sealed), "expected_revision": 0}),
        )
        .await
        .ok(200);
    }
    let personal_rows = "SELECT COUNT(*) FROM personal_overrides";

    // Export: admins only. Bob (a member) and mallory (a stranger) are refused.
    let export = format!("/v1/workspaces/{acme}/export");
    assert_eq!(get_bytes(&server.base, &export, &bob_token).await.0, 403);
    assert_eq!(
        get_bytes(&server.base, &export, &mallory_token).await.0,
        404
    );
    let (status, bytes, ct) = get_bytes(&server.base, &export, &alice_token).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "application/octet-stream");
    assert_eq!(&bytes[..12], &backup::MAGIC);
    let archive = backup::decode(&bytes).expect("a valid archive");
    assert!(matches!(archive.source, ArchiveSource::Server { .. }));
    assert_eq!(archive.workspaces[0].id, acme);
    assert_eq!(archive.secrets.len(), 6, "history and deletes are kept");
    assert_eq!(archive.members.len(), 2);
    assert_eq!(archive.personal.len(), 2, "both members' overrides");
    assert!(archive.personal.iter().all(|p| p.record.revision == 1));
    // Only the exporter's sealed key material; bob appears with his public key only.
    let bob_entry = archive
        .accounts
        .iter()
        .find(|x| x.id == bob.id)
        .expect("bob");
    assert_eq!(bob_entry.keys.public_key, bob.keys.public_key);
    assert!(bob_entry.keys.master_key_by_password.as_bytes().is_empty());
    assert!(bob_entry.keys.private_key_sealed.as_bytes().is_empty());
    let alice_entry = archive
        .accounts
        .iter()
        .find(|x| x.id == alice.id)
        .expect("alice");
    assert_eq!(alice_entry.keys, alice.keys);
    // No plaintext anywhere in the file.
    for p in plaintexts
        .iter()
        .map(String::as_str)
        .chain(["plaintext-gone"])
    {
        assert!(
            !bytes.windows(p.len()).any(|w| w == p.as_bytes()),
            "the archive holds the plaintext {p}"
        );
    }
    let audit = api
        .get(&format!("/v1/workspaces/{acme}/audit"), &alice_token)
        .await
        .ok(200);
    assert_eq!(audit["entries"][0]["action"], "backup.export");

    // Refusals write nothing: the workspace exists (no force), another account's backup,
    // a flipped bit, a truncated file, a newer format, a foreign file.
    let untouched = dump(&a).await;
    import(&server.base, &alice_token, &bytes, false)
        .await
        .err(409, "already_exists");
    let refused = import(&server.base, &mallory_token, &bytes, true)
        .await
        .err(403, "forbidden");
    assert!(
        refused.message().contains("alice@example.com"),
        "{}",
        refused.message()
    );
    import(&server.base, &bob_token, &bytes, true)
        .await
        .err(403, "forbidden");
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    let answer = import(&server.base, &alice_token, &flipped, true)
        .await
        .err(400, "invalid_request");
    assert!(
        answer.message().contains("checksum"),
        "{}",
        answer.message()
    );
    let answer = import(&server.base, &alice_token, &bytes[..bytes.len() - 7], true)
        .await
        .err(400, "invalid_request");
    assert!(
        answer.message().contains("truncated"),
        "{}",
        answer.message()
    );
    let mut newer = bytes.clone();
    newer[12..14].copy_from_slice(&(FORMAT_VERSION + 1).to_be_bytes());
    let answer = import(&server.base, &alice_token, &newer, true)
        .await
        .err(400, "invalid_request");
    assert!(
        answer.message().contains("newer version"),
        "{}",
        answer.message()
    );
    import(&server.base, &alice_token, b"SQLite format 3\0", true)
        .await
        .err(400, "invalid_request");
    assert!(
        dump(&a).await == untouched,
        "a refused import wrote something"
    );

    // Later changes, then a forced restore: the workspace is exactly the backup again.
    api.post(
        &secrets(&staging.id),
        Some(&alice_token),
        &json!({"writes": [put(&staging.id, staging_key, "DB_URL", Some(1), "plaintext-later"), put(&staging.id, staging_key, "LATER", Some(0), "x")]}),
    )
    .await
    .ok(200);
    let restored = import(&server.base, &alice_token, &bytes, true)
        .await
        .ok(200);
    assert_eq!(restored["replaced"], true);
    assert_eq!(
        restored["members"], 2,
        "bob is still a member here: {restored}"
    );
    assert_eq!(restored["secret_versions"], 6);
    assert_eq!(restored["notes"], json!([]));
    assert_eq!(
        count(&a, personal_rows, &[]).await,
        2,
        "both members' overrides came back"
    );
    let after = names_and_values(
        &api.get(&secrets(&staging.id), &alice_token).await.ok(200),
        &staging.id,
        staging_key,
    );
    assert_eq!(after, before_staging);
    // Bob's grant came back with him: he reads staging again.
    let bob_view = api.get(&secrets(&staging.id), &bob_token).await.ok(200);
    assert_eq!(
        names_and_values(&bob_view, &staging.id, staging_key),
        before_staging
    );
    let (_, again, _) = get_bytes(&server.base, &export, &alice_token).await;
    let mut again = backup::decode(&again).expect("archive");
    let mut first = archive.clone();
    again.created_at = 0;
    first.created_at = 0;
    assert_eq!(again, first, "restored exactly");
    // The audit log survived the restore and records it; secrets are append-only again.
    let audit = api
        .get(&format!("/v1/workspaces/{acme}/audit"), &alice_token)
        .await
        .ok(200);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions[1], "backup.import", "{actions:?}");
    assert!(actions.contains(&"workspace.create"), "{actions:?}");
    assert_eq!(
        count(&a, "SELECT COUNT(*) FROM secrets WHERE name = 'LATER'", &[]).await,
        0
    );
    let delete_refused = match &a {
        Target::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("connect");
            let r = sqlx::query("DELETE FROM secrets")
                .execute(&pool)
                .await
                .is_err();
            pool.close().await;
            r
        }
        Target::Postgres { url, .. } => {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            let r = sqlx::query("DELETE FROM secrets")
                .execute(&pool)
                .await
                .is_err();
            pool.close().await;
            r
        }
    };
    assert!(delete_refused, "the append-only guard is back");

    // Server B: alice's account exists there with the same keys (signed up with them); bob
    // does not. The workspace is created, bob is skipped with a note, values read the same.
    let server_b = Server::start(&b, true).await;
    let api_b = api.at(&server_b.base);
    let alice_b = api_b
        .post("/v1/signup", None, &{
            let mut body = alice.signup_body();
            body["personal_workspace"]["id"] = json!(WorkspaceId::random());
            body
        })
        .await
        .ok(201)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let answer = import(&server_b.base, &alice_b, &bytes, false)
        .await
        .ok(200);
    assert_eq!(answer["replaced"], false);
    assert_eq!(answer["members"], 1);
    let notes = answer["notes"].as_array().expect("notes");
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("bob@example.com"))),
        "{notes:?}"
    );
    let on_b = names_and_values(
        &api_b.get(&secrets(&production.id), &alice_b).await.ok(200),
        &production.id,
        production_key,
    );
    let on_a = names_and_values(
        &api.get(&secrets(&production.id), &alice_token)
            .await
            .ok(200),
        &production.id,
        production_key,
    );
    assert_eq!(on_b, on_a);
    assert_eq!(
        count(
            &b,
            "SELECT COUNT(*) FROM personal_overrides WHERE account_id = $1",
            &[&alice.id.to_string()]
        )
        .await,
        1,
        "alice's overrides came with her"
    );
    assert_eq!(
        count(&b, personal_rows, &[]).await,
        1,
        "bob was skipped, and his overrides with him"
    );
    assert_eq!(
        count(&b, "SELECT COUNT(*) FROM accounts", &[]).await,
        1,
        "no account is ever created by an import"
    );
    server_b.stop().await;
    server.stop().await;
}
