//! Team changes the audit log records, on `SQLite` and `PostgreSQL`: cancelling an invitation
//! (an admin cancels one nobody has accepted: its sign-up and acceptance stop working, the
//! email can be invited again; nobody else can; an accepted invitation is not cancelled this
//! way, removing the member is), and a promotion (`secrets.promote`, naming its source only
//! when the caller can read it).

use klef_core::ids::{EnvironmentId, WorkspaceId};
use serde_json::{Value, json};

use crate::common::{
    Api, Person, Server, Target, count, put, team_project, with_postgres, with_sqlite,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cancel_invitation() {
    with_sqlite(cancel_invitation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cancel_invitation() {
    with_postgres(cancel_invitation).await;
}

async fn invite(api: &Api, token: &str, ws: WorkspaceId, email: &str) -> Value {
    api.post(
        &format!("/v1/workspaces/{ws}/invitations"),
        Some(token),
        &json!({"email": email, "role": "member"}),
    )
    .await
    .ok(201)
}

async fn cancel(
    api: &Api,
    token: &str,
    ws: WorkspaceId,
    invitation: &Value,
) -> crate::common::Answer {
    let id = invitation["id"].as_str().expect("invitation id");
    api.raw(
        "DELETE",
        &format!("/v1/workspaces/{ws}/invitations/{id}"),
        Some(token),
        None,
        None,
    )
    .await
}

async fn cancel_invitation(target: Target) {
    let server = Server::start(&target, false).await;
    let api = Api::new(&server.base);
    let alice = Person::new("alice");
    let bob = Person::new("bob");
    let carol = Person::new("carol");
    let alice_token = alice.signup(&api).await;
    let (acme, _) = team_project(&api, &alice, &alice_token, &["staging"]).await;

    // Bob accepted but is not confirmed: he is no member, so the workspace is hidden from him
    // (a confirmed member's 403 is in the permission matrix).
    let to_bob = invite(&api, &alice_token, acme, &bob.email).await;
    let bob_token = bob.signup(&api).await;
    let accept = |id: &Value, token: &str| {
        let path = format!("/v1/invitations/{}/accept", id["id"].as_str().expect("id"));
        let token = token.to_owned();
        let api = &api;
        async move { api.post(&path, Some(&token), &json!({})).await }
    };
    accept(&to_bob, &bob_token).await.ok(200);
    let to_carol = invite(&api, &alice_token, acme, &carol.email).await;
    cancel(&api, &bob_token, acme, &to_carol)
        .await
        .err(404, "not_found");

    // The admin cancels it: carol can no longer sign up with it, nor be invited twice over.
    cancel(&api, &alice_token, acme, &to_carol).await.ok(204);
    cancel(&api, &alice_token, acme, &to_carol)
        .await
        .err(404, "not_found");
    api.post("/v1/signup", None, &carol.signup_body())
        .await
        .err(403, "signup_closed");
    let audit = api
        .get(&format!("/v1/workspaces/{acme}/audit"), &alice_token)
        .await
        .ok(200);
    assert!(audit.to_string().contains("invitation.cancel"), "{audit}");

    // Invited again: a new invitation, which works, and the cancelled one stays closed.
    let again = invite(&api, &alice_token, acme, &carol.email).await;
    assert_ne!(again["id"], to_carol["id"]);
    let carol_token = carol.signup(&api).await;
    accept(&to_carol, &carol_token).await.err(404, "not_found");
    accept(&again, &carol_token).await.ok(200);
    assert_eq!(
        count(
            &target,
            "SELECT COUNT(*) FROM invitations WHERE closed_at IS NULL AND accepted_by IS NOT NULL",
            &[],
        )
        .await,
        2
    );

    // An accepted invitation is not cancelled this way (the member is removed instead), and
    // another workspace's invitation is not reachable through this one.
    cancel(&api, &alice_token, acme, &again)
        .await
        .err(404, "not_found");
    let personal = alice.personal.id;
    let dave_invite = invite(&api, &alice_token, acme, "dave@example.com").await;
    cancel(&api, &alice_token, personal, &dave_invite)
        .await
        .err(403, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_promotion_audit() {
    with_sqlite(promotion_audit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_promotion_audit() {
    with_postgres(promotion_audit).await;
}

/// A write that says it promotes from another environment is audited as
/// `secrets.promote` naming it, only if the caller can read that environment: naming one
/// the caller cannot see is refused before anything is written.
async fn promotion_audit(target: Target) {
    let server = Server::start(&target, false).await;
    let api = Api::new(&server.base);
    let alice = Person::new("alice");
    let token = alice.signup(&api).await;
    let (acme, fx) = team_project(&api, &alice, &token, &["staging", "production"]).await;
    let (staging, _) = fx.env("staging");
    let (production, production_key) = fx.env("production");
    let write = |from: Value| {
        json!({"writes": [put(&production.id, production_key, "API_KEY", None, "promoted-value")],
               "promoted_from": from})
    };
    let path = format!("/v1/environments/{}/secrets", production.id);

    api.post(&path, Some(&token), &write(json!(EnvironmentId::random())))
        .await
        .err(404, "not_found");
    assert_eq!(count(&target, "SELECT COUNT(*) FROM secrets", &[]).await, 0);
    api.post(&path, Some(&token), &write(json!(staging.id)))
        .await
        .ok(200);
    let audit = api
        .get(&format!("/v1/workspaces/{acme}/audit"), &token)
        .await
        .ok(200)
        .to_string();
    assert!(audit.contains("secrets.promote"), "{audit}");
    assert!(
        audit.contains(&format!("from environment {} (staging)", staging.id)),
        "{audit}"
    );
    assert!(!audit.contains("promoted-value"), "{audit}");
}
