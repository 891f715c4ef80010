//! API keys on `SQLite` and `PostgreSQL`: the listing, `put` replacing scopes and grants,
//! instant revocation, `proj:*` keys and new environments, refusals that write nothing, the
//! audit trail, and that no token secret ever reaches the database.

use klef_core::ids::EnvironmentId;
use klef_core::model::Blob;
use serde_json::{Value, json};

use crate::common::{
    Api, Person, Server, Target, count, dump, exec, open_value, put, team_project, with_postgres,
    with_sqlite,
};
use crate::matrix::{SysKey, create_env_body, new_env, reach_key, user_key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keys() {
    with_sqlite(keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keys() {
    with_postgres(keys).await;
}

async fn key_rows(target: &Target) -> (i64, i64, i64) {
    (
        count(target, "SELECT COUNT(*) FROM api_keys", &[]).await,
        count(target, "SELECT COUNT(*) FROM api_key_scopes", &[]).await,
        count(
            target,
            "SELECT COUNT(*) FROM environment_grants WHERE grantee_kind = 'api_key'",
            &[],
        )
        .await,
    )
}

#[allow(clippy::too_many_lines)]
async fn keys(target: Target) {
    let server = Server::start(&target, false).await;
    let api = Api::new(&server.base);
    let alice = Person::new("alice");
    let token = alice.signup(&api).await;
    let (ws, fx) = team_project(&api, &alice, &token, &["staging", "production"]).await;
    let (staging, staging_key) = fx.env("staging");
    let (production, production_key) = fx.env("production");
    for (env, key) in [(staging, staging_key), (production, production_key)] {
        api.post(
            &format!("/v1/environments/{}/secrets", env.id),
            Some(&token),
            &json!({"writes": [put(&env.id, key, "DB_URL", Some(0), &format!("{}-db", env.slug))]}),
        )
        .await
        .ok(200);
    }

    // Refusals write nothing.
    let before = key_rows(&target).await;
    let k = SysKey::new();
    let prod_scope = [(fx.project.id, Some(production.id))];
    let cases: Vec<(Value, u16, &str)> = vec![
        (k.body("ci", "read", &prod_scope, &[]), 400, "production"),
        (
            k.body(
                "ci",
                "read",
                &[(fx.project.id, Some(EnvironmentId::random()))],
                &[],
            ),
            404,
            "not found",
        ),
        (
            k.body(
                "ci",
                "read",
                &[(fx.project.id, None), (fx.project.id, Some(production.id))],
                &[],
            ),
            400,
            "covered",
        ),
        (
            k.body(
                "ci",
                "read",
                &prod_scope,
                &[k.grant(&production.id, production_key, 2)],
            ),
            400,
            "key version",
        ),
        (
            k.body(
                "ci",
                "read",
                &prod_scope,
                &[
                    k.grant(&production.id, production_key, 1),
                    k.grant(&staging.id, staging_key, 1),
                ],
            ),
            400,
            "not in the key's scopes",
        ),
        (k.body("ci", "read", &[], &[]), 400, "scope"),
        (
            k.body(
                "",
                "read",
                &prod_scope,
                &[k.grant(&production.id, production_key, 1)],
            ),
            400,
            "empty",
        ),
    ];
    for (body, status, needle) in cases {
        let answer = api.post("/v1/api-keys", Some(&token), &body).await;
        assert_eq!(answer.status, status, "{}", answer.body);
        assert!(answer.message().contains(needle), "{}", answer.body);
    }
    let (_, _, mut user_body) = user_key("u");
    user_body["scopes"] = json!([{"project_id": fx.project.id, "environment_id": null}]);
    api.post("/v1/api-keys", Some(&token), &user_body)
        .await
        .err(400, "invalid_request");
    let mut bad_hash = k.body(
        "ci",
        "read",
        &prod_scope,
        &[k.grant(&production.id, production_key, 1)],
    );
    bad_hash["bearer_hash"] = json!("ABC");
    api.post("/v1/api-keys", Some(&token), &bad_hash)
        .await
        .err(400, "invalid_request");
    assert_eq!(key_rows(&target).await, before);

    // A read key on production: decrypts production end to end, nothing else.
    let read = SysKey::new();
    let created = api
        .post(
            "/v1/api-keys",
            Some(&token),
            &read.body(
                "github-actions",
                "read",
                &prod_scope,
                &[read.grant(&production.id, production_key, 1)],
            ),
        )
        .await
        .ok(201);
    assert!(created["prefix"].as_str().unwrap().starts_with("klef_sys_"));
    assert!(read.whole.starts_with(created["prefix"].as_str().unwrap()));
    // Only the bearer credential goes to the server; the public keys are the token's.
    assert!(read.token.starts_with("klef_bearer_sys_"));
    assert_eq!(created["public_key"], json!(Blob(read.public.0.to_vec())));
    let access = api
        .get(
            &format!("/v1/environments/{}/key", production.id),
            &read.token,
        )
        .await
        .ok(200);
    assert_eq!(access["access"]["kind"], "direct");
    let key = reach_key(&read.private, &production.id, &access);
    let listed = api
        .get(
            &format!("/v1/environments/{}/secrets", production.id),
            &read.token,
        )
        .await
        .ok(200);
    assert_eq!(
        open_value(&production.id, &key, &listed["secrets"][0]),
        "production-db"
    );
    let denied = api
        .get(&format!("/v1/environments/{}/key", staging.id), &read.token)
        .await
        .err(403, "forbidden");
    assert_eq!(denied.message(), "no access to api:staging");
    let me = api.get("/v1/me/api-key", &read.token).await.ok(200);
    assert_eq!(me["prefix"], created["prefix"]);
    assert_eq!(me["scopes"][0]["environment_slug"], "production");
    api.get("/v1/me", &read.token).await.err(403, "forbidden");

    // The listing: the columns klef keys list shows.
    let (user_token, _, body) = user_key("laptop");
    api.post("/v1/api-keys", Some(&token), &body).await.ok(201);
    let list = api.get("/v1/api-keys", &user_token).await.ok(200);
    let rows = list["keys"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["kind"], "system");
    assert_eq!(rows[0]["label"], "github-actions");
    assert_eq!(rows[0]["created_by_email"], "alice@example.com");
    assert_eq!(rows[0]["permission"], "read");
    assert_eq!(rows[0]["scopes"][0]["project_name"], "api");
    assert_eq!(rows[1]["kind"], "user");
    assert_eq!(rows[1]["permission"], Value::Null);
    let text = list.to_string();
    assert!(!text.contains(&read.hash), "no secret hash is listed");

    // put: staging in, production out; the production grant goes, staging needs its key.
    let key_path = format!("/v1/api-keys/{}", read.id);
    let staging_scope = json!([{"project_id": fx.project.id, "environment_id": staging.id}]);
    api.send(
        "PUT",
        &key_path,
        &token,
        &json!({"scopes": staging_scope, "permission": "readwrite"}),
    )
    .await
    .err(400, "invalid_request");
    let put_answer = api
        .send(
            "PUT",
            &key_path,
            &token,
            &json!({"scopes": staging_scope, "permission": "readwrite",
                    "environment_keys": [read.grant(&staging.id, staging_key, 1)]}),
        )
        .await
        .ok(200);
    assert_eq!(put_answer["permission"], "readwrite");
    api.get(
        &format!("/v1/environments/{}/key", production.id),
        &read.token,
    )
    .await
    .err(403, "forbidden");
    api.post(
        &format!("/v1/environments/{}/secrets", staging.id),
        Some(&read.token),
        &json!({"writes": [put(&staging.id, staging_key, "FROM_CI", None, "ci-wrote-this")]}),
    )
    .await
    .ok(200);
    let history = api
        .get(
            &format!("/v1/environments/{}/secrets/FROM_CI/history", staging.id),
            &token,
        )
        .await
        .ok(200);
    assert_eq!(
        history["secrets"][0]["author"],
        "github-actions (system key)"
    );
    let grants = count(
        &target,
        "SELECT COUNT(*) FROM environment_grants WHERE grantee_id = $1",
        &[&read.id.to_string()],
    )
    .await;
    assert_eq!(grants, 1, "only the staging grant is left");

    // A `proj:*` key: a new environment must be wrapped to it in the same request.
    let star = SysKey::new();
    let all: Vec<Value> = fx
        .envs
        .iter()
        .map(|(e, k)| star.grant(&e.id, k, 1))
        .collect();
    api.post(
        "/v1/api-keys",
        Some(&token),
        &star.body("deployer", "read", &[(fx.project.id, None)], &all),
    )
    .await
    .ok(201);
    let recipients = api
        .get(
            &format!("/v1/projects/{}/api-key-recipients", fx.project.id),
            &token,
        )
        .await
        .ok(200);
    assert_eq!(recipients["keys"][0]["api_key_id"], json!(star.id));
    let preview = new_env(&fx, "preview");
    let mut body = create_env_body(&fx, &preview, &star);
    body["api_key_grants"] = json!([]);
    let stale = api
        .post(
            &format!("/v1/projects/{}/environments", fx.project.id),
            Some(&token),
            &body,
        )
        .await
        .err(409, "stale");
    assert!(stale.message().contains("klef_sys_"), "{}", stale.body);
    api.post(
        &format!("/v1/projects/{}/environments", fx.project.id),
        Some(&token),
        &create_env_body(&fx, &preview, &star),
    )
    .await
    .ok(201);
    let access = api
        .get(
            &format!("/v1/environments/{}/key", preview.0.id),
            &star.token,
        )
        .await
        .ok(200);
    let k = reach_key(&star.private, &preview.0.id, &access);
    assert_eq!(k.expose(), preview.1.expose(), "the new key reaches CI");

    // Revocation is instant: the very next request is a 401 that says so; grants are gone.
    let revoked = api
        .raw("DELETE", &key_path, Some(&user_token), None, None)
        .await
        .ok(200);
    assert_eq!(revoked["label"], "github-actions");
    let refused = api
        .get(&format!("/v1/environments/{}/key", staging.id), &read.token)
        .await
        .err(401, "unauthenticated");
    assert!(refused.message().contains("revoked"), "{}", refused.body);
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM environment_grants WHERE grantee_id = $1",
            &[&read.id.to_string()],
        )
        .await,
        0
    );
    api.raw("DELETE", &key_path, Some(&token), None, None)
        .await
        .err(404, "not_found");
    // A wrong secret with a real id is refused like an unknown key.
    let forged = format!(
        "{}_{}",
        &star.token[..star.token.rfind('_').unwrap()],
        "0".repeat(52)
    );
    api.get("/v1/me/api-key", &forged)
        .await
        .err(401, "unauthenticated");

    // The audit log names the keys.
    let audit = api
        .get(&format!("/v1/workspaces/{ws}/audit"), &token)
        .await
        .ok(200);
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    for wanted in [
        ("api_key.create", "account"),
        ("api_key.put", "account"),
        ("api_key.revoke", "api_key"),
        ("secrets.write", "api_key"),
    ] {
        assert!(actions.contains(&wanted), "{wanted:?} in {actions:?}");
    }

    // Keys issued before split secrets (migration 0005 marks every older row 'whole-secret'):
    // refused on use with their own code, whatever credential is presented.
    let (old_bearer, old_id, body) = user_key("from before the split");
    api.post("/v1/api-keys", Some(&token), &body).await.ok(201);
    api.get("/v1/me/api-key", &old_bearer).await.ok(200);
    exec(
        &target,
        &format!("UPDATE api_keys SET format = 'whole-secret' WHERE id = '{old_id}'"),
    )
    .await;
    let refused = api
        .get("/v1/me/api-key", &old_bearer)
        .await
        .err(401, "api_key_outdated");
    assert!(
        refused.message().contains("klef keys create"),
        "{}",
        refused.body
    );
    // A client from before the split sends its whole (old-format) token: refused the same way.
    let (star_prefix, star_secret) = star.whole.rsplit_once('_').unwrap();
    let old_whole = format!("{star_prefix}_{}", &star_secret[1..]);
    api.get("/v1/me/api-key", &old_whole)
        .await
        .err(401, "api_key_outdated");
    // A whole key of this format is never sent by klef: refused as a leak.
    let leaked = api
        .get("/v1/me/api-key", &star.whole)
        .await
        .err(401, "unauthenticated");
    assert!(
        leaked.message().contains("whole API key"),
        "{}",
        leaked.body
    );

    // Zero knowledge: no token, no secret part of one and no bearer credential is stored.
    let stored = dump(&target).await;
    let haystack = String::from_utf8_lossy(&stored);
    for t in [
        &read.whole,
        &star.whole,
        &read.token,
        &star.token,
        &user_token,
    ] {
        let secret = &t[t.rfind('_').unwrap() + 1..];
        assert!(!haystack.contains(secret), "a token secret was stored");
    }
    server.stop().await;
}
