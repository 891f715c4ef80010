//! The API story, on `SQLite` and `PostgreSQL`: sign-up, sign-in, a team with a member restricted
//! to one environment, conflicts, rotation, removal, the audit log, and a zero-knowledge check
//! of every stored byte and every body on the wire.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use klef_core::crypto::{Aad, SymmetricKey, open_key, seal_key, unwrap_key, wrap_key};
use klef_core::ids::{EnvironmentId, WorkspaceId};
use klef_core::model::{Blob, EnvironmentKeyAccess, NewEnvironment};
use serde_json::{Value, json};

use crate::common::{
    Api, Person, ProjectFixture, Server, T0, Target, count, dump, open_value, put, with_postgres,
    with_sqlite,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_story() {
    with_sqlite(story).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_story() {
    with_postgres(story).await;
}

/// Reaches an environment key through an access answer, as a client would.
fn env_key(person: &Person, env: &EnvironmentId, answer: &Value) -> SymmetricKey {
    let access: EnvironmentKeyAccess =
        serde_json::from_value(answer["access"].clone()).expect("access");
    match access {
        EnvironmentKeyAccess::Direct { environment_key } => unwrap_key(
            person.private_key(),
            &environment_key.into(),
            &Aad::EnvironmentKey(env),
            "env key",
        )
        .expect("unwrap direct key"),
        EnvironmentKeyAccess::ViaProject {
            project_key,
            environment_key,
        } => {
            let project: klef_core::ids::ProjectId =
                serde_json::from_value(answer["environment"]["project_id"].clone())
                    .expect("project id");
            let pk = unwrap_key(
                person.private_key(),
                &project_key.into(),
                &Aad::ProjectKey(&project),
                "pk",
            )
            .expect("unwrap project key");
            open_key(
                &pk,
                &environment_key.into(),
                &Aad::EnvironmentKey(env),
                "env key",
            )
            .expect("open env key")
        }
    }
}

async fn story(target: Target) {
    let server = Server::start(&target, false).await;
    let api = Api::new(&server.base);
    let alice = Person::new("alice");
    let bob = Person::new("bob");
    let mut plaintexts: Vec<String> = Vec::new();
    let mut keys: Vec<[u8; 32]> = Vec::new();

    // Health and sign-up: the first account owns the server.
    let health = api.raw("GET", "/v1/health", None, None, None).await.ok(200);
    assert_eq!(health["status"], "ok");
    let alice_token = alice.signup(&api).await;
    assert!(alice_token.starts_with("klef_sess_"));
    let me = api.get("/v1/me", &alice_token).await.ok(200);
    assert_eq!(me["account"]["email"], "alice@example.com");
    assert_eq!(me["account"]["id"], json!(alice.id));
    assert_eq!(me["server_owner"], true);
    assert_eq!(me["account"]["keys"], json!(alice.keys));

    // A second sign-up without an invitation is refused, and writes nothing.
    api.post("/v1/signup", None, &bob.signup_body())
        .await
        .err(403, "signup_closed");
    assert_eq!(
        count(&target, "SELECT COUNT(*) FROM accounts", &[]).await,
        1
    );

    // A team workspace, a project with staging and production, secrets in both.
    let acme = WorkspaceId::random();
    api.post(
        "/v1/workspaces",
        Some(&alice_token),
        &json!({"workspace": {"id": acme, "name": "Acme", "personal": false, "created_at": T0}}),
    )
    .await
    .ok(201);
    let workspaces = api.get("/v1/workspaces", &alice_token).await.ok(200);
    assert_eq!(workspaces["workspaces"].as_array().unwrap().len(), 2);
    assert_eq!(workspaces["workspaces"][0]["personal"], true);
    let fx = ProjectFixture::new(acme, "api", &["staging", "production"]);
    keys.push(*fx.key.expose());
    for (_, k) in &fx.envs {
        keys.push(*k.expose());
    }
    api.post(
        &format!("/v1/workspaces/{acme}/projects"),
        Some(&alice_token),
        &json!({"project": fx.new_project(&alice.public_key())}),
    )
    .await
    .ok(201);
    let (staging, staging_key) = fx.env("staging");
    let (production, production_key) = fx.env("production");
    for (env, key, prefix) in [
        (staging, staging_key, "stg"),
        (production, production_key, "prod"),
    ] {
        let writes: Vec<Value> = ["DATABASE_URL", "API_KEY"]
            .iter()
            .map(|name| {
                let value = format!("{prefix}-{name}-plaintext-{}", WorkspaceId::random());
                plaintexts.push(value.clone());
                put(&env.id, key, name, Some(0), &value)
            })
            .collect();
        let written = api
            .post(
                &format!("/v1/environments/{}/secrets", env.id),
                Some(&alice_token),
                &json!({"writes": writes}),
            )
            .await
            .ok(200);
        assert_eq!(written["written"][0]["version"], 1);
        assert_eq!(written["written"][0]["author"], "alice@example.com");
    }
    let listed = api
        .get(
            &format!("/v1/environments/{}/secrets", production.id),
            &alice_token,
        )
        .await
        .ok(200);
    let access = api
        .get(
            &format!("/v1/environments/{}/key", production.id),
            &alice_token,
        )
        .await
        .ok(200);
    assert_eq!(access["access"]["kind"], "via_project");
    let k = env_key(&alice, &production.id, &access);
    let values: Vec<String> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| open_value(&production.id, &k, s))
        .collect();
    assert!(values.iter().all(|v| v.starts_with("prod-")), "{values:?}");

    // A stale write is a 409 naming who changed it, and writes nothing.
    let conflict = api
        .post(
            &format!("/v1/environments/{}/secrets", production.id),
            Some(&alice_token),
            &json!({"writes": [put(&production.id, production_key, "NEW_ONE", Some(0), "x-new"), put(&production.id, production_key, "API_KEY", Some(0), "x-stale")]}),
        )
        .await
        .err(409, "conflict");
    assert_eq!(
        conflict.body["error"]["conflict"],
        json!({"name": "API_KEY", "expected": 0, "actual": 1, "changed_by": "alice@example.com"})
    );
    let history = api
        .get(
            &format!("/v1/environments/{}/secrets/NEW_ONE/history", production.id),
            &alice_token,
        )
        .await
        .ok(200);
    assert_eq!(history["secrets"], json!([]));

    // Invite bob, restricted to staging; he signs up, accepts, alice confirms with a grant.
    let invitation = api
        .post(
            &format!("/v1/workspaces/{acme}/invitations"),
            Some(&alice_token),
            &json!({"email": "Bob@Example.com", "role": "member", "environments": [staging.id]}),
        )
        .await
        .ok(201);
    assert_eq!(invitation["status"], "pending");
    assert_eq!(invitation["email"], "bob@example.com");
    let bob_token = bob.signup(&api).await;
    let me = api.get("/v1/me", &bob_token).await.ok(200);
    assert_eq!(me["server_owner"], false);
    let mine = api.get("/v1/invitations", &bob_token).await.ok(200);
    assert_eq!(mine["invitations"][0]["id"], invitation["id"]);
    assert_eq!(mine["invitations"][0]["workspace_name"], "Acme");
    // Not a member yet: the workspace is invisible to him.
    api.get(&format!("/v1/workspaces/{acme}/projects"), &bob_token)
        .await
        .err(404, "not_found");
    let accepted = api
        .post(
            &format!(
                "/v1/invitations/{}/accept",
                invitation["id"].as_str().unwrap()
            ),
            Some(&bob_token),
            &json!({}),
        )
        .await;
    let accepted = accepted.ok(200);
    assert_eq!(accepted["status"], "accepted");
    let members = api
        .get(&format!("/v1/workspaces/{acme}/members"), &alice_token)
        .await
        .ok(200);
    let bob_row = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "bob@example.com")
        .unwrap()
        .clone();
    assert_eq!(bob_row["status"], "accepted");
    assert_eq!(bob_row["account_id"], json!(bob.id));
    let shown: Blob = serde_json::from_value(bob_row["public_key"].clone()).unwrap();
    assert_eq!(shown, bob.keys.public_key, "the fingerprint shown is bob's");
    // Not a member yet, so no member list; a project key for a restricted member is refused.
    api.get(&format!("/v1/workspaces/{acme}/members"), &bob_token)
        .await
        .err(404, "not_found");
    let wrapped_pk = Blob::from(wrap_key(
        &bob.public_key(),
        &fx.key,
        &Aad::ProjectKey(&fx.project.id),
    ));
    api.post(
        &format!("/v1/workspaces/{acme}/members/{}/confirm", bob.id),
        Some(&alice_token),
        &json!({"project_keys": [{"project_id": fx.project.id, "wrapped_key": wrapped_pk}]}),
    )
    .await
    .err(400, "invalid_request");
    let grant = Blob::from(wrap_key(
        &bob.public_key(),
        staging_key,
        &Aad::EnvironmentKey(&staging.id),
    ));
    let confirmed = api
        .post(&format!("/v1/workspaces/{acme}/members/{}/confirm", bob.id), Some(&alice_token), &json!({"environment_keys": [{"environment_id": staging.id, "key_version": 1, "wrapped_key": grant}]}))
        .await
        .ok(200);
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["environments"], json!([staging.id]));

    // Bob reads staging end to end, but not production.
    let envs = api
        .get(
            &format!("/v1/projects/{}/environments", fx.project.id),
            &bob_token,
        )
        .await
        .ok(200);
    assert_eq!(envs["environments"].as_array().unwrap().len(), 1);
    assert_eq!(envs["environments"][0]["slug"], "staging");
    let access = api
        .get(&format!("/v1/environments/{}/key", staging.id), &bob_token)
        .await
        .ok(200);
    assert_eq!(access["access"]["kind"], "direct");
    let k = env_key(&bob, &staging.id, &access);
    let listed = api
        .get(
            &format!("/v1/environments/{}/secrets", staging.id),
            &bob_token,
        )
        .await
        .ok(200);
    for s in listed["secrets"].as_array().unwrap() {
        assert!(open_value(&staging.id, &k, s).starts_with("stg-"));
    }
    let denied = api
        .get(
            &format!("/v1/environments/{}/key", production.id),
            &bob_token,
        )
        .await
        .err(403, "forbidden");
    assert_eq!(denied.message(), "no access to production");
    api.get(
        &format!("/v1/environments/{}/secrets", production.id),
        &bob_token,
    )
    .await
    .err(403, "forbidden");
    api.post(
        &format!("/v1/environments/{}/secrets", production.id),
        Some(&bob_token),
        &json!({"writes": [put(&production.id, production_key, "X", None, "x-bob")]}),
    )
    .await
    .err(403, "forbidden");
    let bob_id = bob.id.to_string();
    let prod_id = production.id.to_string();
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM project_keys WHERE account_id = $1",
            &[&bob_id]
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM environment_grants WHERE grantee_id = $1 AND environment_id = $2",
            &[&bob_id, &prod_id]
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM environment_grants WHERE grantee_id = $1",
            &[&bob_id]
        )
        .await,
        1
    );
    // Bob may write staging, and members cannot create projects.
    let bob_value = format!("stg-bob-plaintext-{}", WorkspaceId::random());
    plaintexts.push(bob_value.clone());
    api.post(
        &format!("/v1/environments/{}/secrets", staging.id),
        Some(&bob_token),
        &json!({"writes": [put(&staging.id, &k, "BOB_KEY", Some(0), &bob_value)]}),
    )
    .await
    .ok(200);
    let other = ProjectFixture::new(acme, "web", &["dev"]);
    api.post(
        &format!("/v1/workspaces/{acme}/projects"),
        Some(&bob_token),
        &json!({"project": other.new_project(&bob.public_key())}),
    )
    .await
    .err(403, "forbidden");

    // Alice adds an environment.
    let qa = klef_core::model::Environment {
        id: EnvironmentId::random(),
        project_id: fx.project.id,
        slug: "qa".into(),
        name: "QA".into(),
        key_version: 1,
        created_at: T0,
    };
    let qa_key = SymmetricKey::generate();
    keys.push(*qa_key.expose());
    let new_env = NewEnvironment {
        environment: qa.clone(),
        sealed_key: Blob::from(seal_key(&fx.key, &qa_key, &Aad::EnvironmentKey(&qa.id))),
        manifest: None,
    };
    api.post(
        &format!("/v1/projects/{}/environments", fx.project.id),
        Some(&alice_token),
        &json!({"environment": new_env}),
    )
    .await
    .ok(201);

    // Rotation of staging: new key, values re-encrypted, bob's grant re-wrapped.
    let grants = api
        .get(
            &format!("/v1/environments/{}/grants", staging.id),
            &alice_token,
        )
        .await
        .ok(200);
    assert_eq!(
        grants["grants"][0]["grantee"],
        json!({"kind": "account", "id": bob.id})
    );
    let new_key = SymmetricKey::generate();
    keys.push(*new_key.expose());
    let live = api
        .get(
            &format!("/v1/environments/{}/secrets", staging.id),
            &alice_token,
        )
        .await
        .ok(200);
    let rotated: Vec<Value> = live["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let value = open_value(&staging.id, staging_key, s);
            let mut w = put(
                &staging.id,
                &new_key,
                s["name"].as_str().unwrap(),
                None,
                &value,
            );
            w["expected_version"] = s["version"].clone();
            w
        })
        .collect();
    let rotate_body = json!({
        "expected_key_version": 1,
        "sealed_key": Blob::from(seal_key(&fx.key, &new_key, &Aad::EnvironmentKey(&staging.id))),
        "secrets": rotated,
        "grants": [{"grantee": {"kind": "account", "id": bob.id}, "wrapped_key": Blob::from(wrap_key(&bob.public_key(), &new_key, &Aad::EnvironmentKey(&staging.id)))}],
    });
    api.post(
        &format!("/v1/environments/{}/rotate", staging.id),
        Some(&bob_token),
        &rotate_body,
    )
    .await
    .err(403, "forbidden");
    let mut stale = rotate_body.clone();
    stale["expected_key_version"] = json!(7);
    api.post(
        &format!("/v1/environments/{}/rotate", staging.id),
        Some(&alice_token),
        &stale,
    )
    .await
    .err(409, "stale");
    let mut missing = rotate_body.clone();
    missing["secrets"].as_array_mut().unwrap().pop();
    api.post(
        &format!("/v1/environments/{}/rotate", staging.id),
        Some(&alice_token),
        &missing,
    )
    .await
    .err(409, "stale");
    let done = api
        .post(
            &format!("/v1/environments/{}/rotate", staging.id),
            Some(&alice_token),
            &rotate_body,
        )
        .await
        .ok(200);
    assert_eq!(done["environment"]["key_version"], 2);
    assert_eq!(done["written"].as_array().unwrap().len(), 3);
    let access = api
        .get(&format!("/v1/environments/{}/key", staging.id), &bob_token)
        .await
        .ok(200);
    let k2 = env_key(&bob, &staging.id, &access);
    assert_eq!(k2.expose(), new_key.expose());
    let listed = api
        .get(
            &format!("/v1/environments/{}/secrets", staging.id),
            &bob_token,
        )
        .await
        .ok(200);
    let after: Vec<String> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| open_value(&staging.id, &k2, s))
        .collect();
    assert!(after.contains(&bob_value));
    assert!(
        listed["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["key_version"] == 2)
    );

    // Sessions: logout revokes; a fresh login works.
    api.raw("POST", "/v1/logout", Some(&alice_token), None, None)
        .await
        .ok(204);
    api.get("/v1/me", &alice_token)
        .await
        .err(401, "unauthenticated");
    let alice_token = alice.login(&api).await;
    api.post(
        "/v1/login",
        None,
        &json!({"email": alice.email, "password": "not-the-password"}),
    )
    .await
    .err(401, "invalid_credentials");

    // Password change: re-sealed master key accepted; a changed key pair refused.
    let mut new_keys = alice.keys.clone();
    new_keys.master_key_by_password = Blob(vec![1; 60]);
    api.send(
        "PUT",
        "/v1/me/keys",
        &alice_token,
        &json!({"keys": new_keys, "account_password": alice.account_password}),
    )
    .await
    .ok(204);
    let mut bad_keys = alice.keys.clone();
    bad_keys.public_key = bob.keys.public_key.clone();
    api.send(
        "PUT",
        "/v1/me/keys",
        &alice_token,
        &json!({"keys": bad_keys, "account_password": alice.account_password}),
    )
    .await
    .err(400, "invalid_request");

    // Removing bob deletes his keys and asks for rotation.
    let removed = api
        .raw(
            "DELETE",
            &format!("/v1/workspaces/{acme}/members/{}", bob.id),
            Some(&alice_token),
            None,
            None,
        )
        .await
        .ok(200);
    assert_eq!(removed["rotate"][0]["slug"], "staging");
    assert!(removed["message"].as_str().unwrap().contains("rotate"));
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM environment_grants WHERE grantee_id = $1",
            &[&bob_id]
        )
        .await,
        0
    );
    api.get(&format!("/v1/environments/{}/key", staging.id), &bob_token)
        .await
        .err(404, "not_found");

    // The audit log has every change, for admins only.
    let audit = api
        .get(&format!("/v1/workspaces/{acme}/audit"), &alice_token)
        .await
        .ok(200);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "workspace.create",
        "project.create",
        "secrets.write",
        "invitation.create",
        "invitation.accept",
        "member.confirm",
        "environment.create",
        "environment.rotate",
        "member.remove",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let entry = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "member.confirm")
        .unwrap();
    assert_eq!(entry["actor"]["label"], "alice@example.com");
    let paged = api
        .get(
            &format!("/v1/workspaces/{acme}/audit?limit=2"),
            &alice_token,
        )
        .await
        .ok(200);
    assert_eq!(paged["entries"].as_array().unwrap().len(), 2);
    api.get(&format!("/v1/workspaces/{acme}/audit"), &bob_token)
        .await
        .err(404, "not_found");

    server.stop().await;

    // Zero knowledge: no plaintext, password, private key or environment/project key anywhere
    // in the database, and none but the account password (sign-up/sign-in only) on the wire.
    let stored = dump(&target).await;
    let exchanges = api.log.lock().unwrap().clone();
    let mut secrets: Vec<Vec<u8>> = plaintexts.iter().map(|p| p.as_bytes().to_vec()).collect();
    for p in [&alice.encryption_password, &bob.encryption_password] {
        secrets.push(p.as_bytes().to_vec());
    }
    for k in keys.iter().chain([
        alice.private_key().expose(),
        bob.private_key().expose(),
        alice.unlocked.master_key.expose(),
        bob.unlocked.master_key.expose(),
    ]) {
        secrets.push(k.to_vec());
        secrets.push(hex::encode(k).into_bytes());
        secrets.push(STANDARD.encode(k).into_bytes());
    }
    let account_passwords = [
        alice.account_password.as_bytes().to_vec(),
        bob.account_password.as_bytes().to_vec(),
    ];
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for s in secrets.iter().chain(account_passwords.iter()) {
        assert!(
            !contains(&stored, s),
            "secret material found in the database"
        );
    }
    let hash = klef_core::crypto::sha256_hex(alice_token.as_bytes());
    assert!(
        contains(&stored, hash.as_bytes()),
        "sessions are stored as hashes"
    );
    assert!(
        !contains(&stored, alice_token.as_bytes()),
        "a session token found in the database"
    );
    assert!(exchanges.len() > 40);
    for ex in &exchanges {
        for s in &secrets {
            assert!(
                !contains(ex.request.as_bytes(), s) && !contains(ex.response.as_bytes(), s),
                "secret material on the wire ({})",
                ex.path
            );
        }
        for p in &account_passwords {
            assert!(
                !contains(ex.response.as_bytes(), p),
                "an account password in a response"
            );
            if contains(ex.request.as_bytes(), p) {
                // Re-entered to approve replacing the sealed keys (DESIGN §9.4).
                assert!(
                    ex.path == "/v1/signup" || ex.path == "/v1/login" || ex.path == "/v1/me/keys",
                    "account password sent to {}",
                    ex.path
                );
            }
        }
    }
}
