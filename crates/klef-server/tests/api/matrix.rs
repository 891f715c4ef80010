//! The permission matrix, on `SQLite` and `PostgreSQL`: every route × every kind of caller
//! (sessions, a member without the environment, user and system API keys in and out of scope,
//! a `proj:*` key on an environment created after it, a revoked key, an expired session, a
//! malformed token, no token) → the expected status. Allowed reads are also decrypted end to end
//! with the caller's own keys (a system key's key pair derived from its token).
//!
//! The same table is rendered into `docs/security.md` ("Permission matrix");
//! [`matrix_doc_is_current`] fails when the doc is stale (regenerate with
//! `KLEF_UPDATE_DOCS=1 cargo test -p klef-server --test api matrix_doc`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use klef_core::crypto::token::{ApiToken, TokenKind};
use klef_core::crypto::{
    Aad, PrivateKey, PublicKey, SymmetricKey, open_key, sha256_hex, unwrap_key, wrap_key,
};
use klef_core::ids::{AccountId, ApiKeyId, EnvironmentId, InviteId, ProjectId, WorkspaceId};
use klef_core::model::{Blob, Environment, EnvironmentKeyAccess, NewEnvironment};
use klef_core::secrecy::ExposeSecret as _;
use klef_core::wire::routes::Endpoint;
use serde_json::{Value, json};

use crate::common::{
    Answer, Api, Person, ProjectFixture, Server, T0, Target, exec, open_value, put, with_postgres,
    with_sqlite,
};

/// The callers, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    Owner,
    Member,
    MemberNoEnv,
    UserKey,
    SysRead,
    SysReadWrite,
    SysOutOfScope,
    SysWildcardNewEnv,
    RevokedKey,
    ExpiredSession,
    Malformed,
    NoToken,
}

pub(crate) const WHO: [Who; 12] = [
    Who::Owner,
    Who::Member,
    Who::MemberNoEnv,
    Who::UserKey,
    Who::SysRead,
    Who::SysReadWrite,
    Who::SysOutOfScope,
    Who::SysWildcardNewEnv,
    Who::RevokedKey,
    Who::ExpiredSession,
    Who::Malformed,
    Who::NoToken,
];

impl Who {
    fn short(self) -> &'static str {
        match self {
            Who::Owner => "owner",
            Who::Member => "member",
            Who::MemberNoEnv => "member w/o env",
            Who::UserKey => "user key",
            Who::SysRead => "sys read",
            Who::SysReadWrite => "sys rw",
            Who::SysOutOfScope => "sys out of scope",
            Who::SysWildcardNewEnv => "sys `api:*`, new env",
            Who::RevokedKey => "revoked key",
            Who::ExpiredSession => "expired session",
            Who::Malformed => "malformed token",
            Who::NoToken => "no token",
        }
    }

    fn long(self) -> &'static str {
        match self {
            Who::Owner => "a session of the workspace owner (alice)",
            Who::Member => "a session of a member with access to every environment (bob)",
            Who::MemberNoEnv => {
                "a session of a member restricted to `staging`, asking about `production` (carol)"
            }
            Who::UserKey => "alice's user key (`klef_user_…`): acts as alice",
            Who::SysRead => "a system key, `read`, scope `api:production`",
            Who::SysReadWrite => "a system key, `readwrite`, scope `api:production`",
            Who::SysOutOfScope => {
                "a system key, `readwrite`, scope `web:production` (another project)"
            }
            Who::SysWildcardNewEnv => {
                "a system key, `readwrite`, scope `api:*`, asking about `preview`, an environment \
                 created after the key"
            }
            Who::RevokedKey => "a revoked system key (it was `read` on `api:production`)",
            Who::ExpiredSession => "an expired session of bob",
            Who::Malformed => "`klef_sys_notakey`",
            Who::NoToken => "no `Authorization` header",
        }
    }
}

/// `U` = the four columns that always get 401 (revoked key, expired session, malformed token,
/// no token).
const U: u16 = 401;

/// One row: method, route, what is sent (when a route has several rows), and the expected
/// status per column of [`WHO`].
pub(crate) type Row = (&'static str, &'static str, &'static str, [u16; 12]);

/// The matrix. Columns: owner, member, member w/o env, user key, sys read, sys rw, sys out of
/// scope, sys `api:*` on a new env, revoked key, expired session, malformed, no token.
pub(crate) const MATRIX: &[Row] = &[
    ("GET", "/v1/health", "", [200; 12]),
    ("GET", "/v1/openapi.json", "", [200; 12]),
    (
        "POST",
        "/v1/signup",
        "an email with no invitation (no auth)",
        [403; 12],
    ),
    (
        "POST",
        "/v1/login",
        "dave's right password (no auth)",
        [200; 12],
    ),
    (
        "GET",
        "/v1/me",
        "",
        [200, 200, 200, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/me/keys",
        "the earlier seals: a session only",
        [200, 200, 200, 403, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "PUT",
        "/v1/me/keys",
        "the caller's own keys and account password: a session only",
        [204, 204, 204, 403, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "PUT",
        "/v1/me/identity",
        "the caller's identity key (first publication)",
        [204, 204, 204, 403, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/me/state",
        "",
        [200, 200, 200, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "PUT",
        "/v1/me/state",
        "sealed pins at the current revision",
        [200, 200, 200, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/workspaces",
        "",
        [200, 200, 200, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/workspaces",
        "",
        [201, 201, 201, 201, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/workspaces/{workspace_id}/projects",
        "",
        [200, 200, 200, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/workspaces/{workspace_id}/projects",
        "",
        [201, 403, 403, 201, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/projects/{project_id}",
        "",
        [200, 200, 200, 200, 200, 200, 403, 200, U, U, U, U],
    ),
    (
        "GET",
        "/v1/projects/{project_id}/environments",
        "",
        [200, 200, 200, 200, 200, 200, 403, 200, U, U, U, U],
    ),
    (
        "POST",
        "/v1/projects/{project_id}/environments",
        "key wrapped to the `api:*` key",
        [201, 403, 403, 201, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/projects/{project_id}/api-key-recipients",
        "",
        [200, 403, 403, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/environments/{environment_id}/key",
        "",
        [200, 200, 403, 200, 200, 200, 403, 200, U, U, U, U],
    ),
    (
        "GET",
        "/v1/environments/{environment_id}/secrets",
        "",
        [200, 200, 403, 200, 200, 200, 403, 200, U, U, U, U],
    ),
    (
        "POST",
        "/v1/environments/{environment_id}/secrets",
        "",
        [200, 200, 403, 200, 403, 200, 403, 200, U, U, U, U],
    ),
    (
        "GET",
        "/v1/environments/{environment_id}/secrets/{name}/history",
        "",
        [200, 200, 403, 200, 200, 200, 403, 200, U, U, U, U],
    ),
    (
        "PUT",
        "/v1/environments/{environment_id}/personal",
        "the caller's own record (alice's two columns write in turn)",
        [200, 200, 403, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/environments/{environment_id}/grants",
        "",
        [200, 403, 403, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/environments/{environment_id}/rotate",
        "a stale key version (409 = allowed)",
        [409, 403, 403, 409, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/projects/{project_id}/rotate",
        "no environments (409 = allowed)",
        [409, 403, 403, 409, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/workspaces/{workspace_id}/invitations",
        "",
        [201, 403, 403, 201, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/workspaces/{workspace_id}/invitations",
        "as `owner` (400: a second owner)",
        [400, 403, 403, 400, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "DELETE",
        "/v1/workspaces/{workspace_id}/invitations/{invitation_id}",
        "an unknown invitation",
        [404, 403, 403, 404, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/invitations",
        "",
        [200, 200, 200, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/invitations/{invitation_id}/accept",
        "an unknown invitation",
        [404, 404, 404, 404, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/workspaces/{workspace_id}/members",
        "",
        [200, 403, 403, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/workspaces/{workspace_id}/members/{account_id}/confirm",
        "an account with no invitation",
        [404, 403, 403, 404, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "DELETE",
        "/v1/workspaces/{workspace_id}/members/{account_id}",
        "an account that is no member",
        [404, 403, 403, 404, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "DELETE",
        "/v1/workspaces/{workspace_id}/members/{account_id}",
        "the caller's own account (400: not oneself)",
        [400, 403, 403, 400, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/workspaces/{workspace_id}/roster",
        "system keys: the workspace their scopes are in",
        [200, 200, 200, 200, 200, 200, 200, 200, U, U, U, U],
    ),
    (
        "POST",
        "/v1/workspaces/{workspace_id}/roster",
        "no entries (400 = allowed)",
        [400, 403, 403, 400, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/workspaces/{workspace_id}/audit",
        "",
        [200, 403, 403, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/api-keys",
        "",
        [200, 200, 200, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/api-keys",
        "a user key",
        [201, 201, 201, 201, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/api-keys",
        "a system key on `api:production`",
        [201, 403, 403, 201, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "PUT",
        "/v1/api-keys/{api_key_id}",
        "alice's system key, same scopes",
        [200, 404, 404, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "PUT",
        "/v1/api-keys/{api_key_id}",
        "alice's user key",
        [400, 404, 404, 400, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "DELETE",
        "/v1/api-keys/{api_key_id}",
        "a system key alice made",
        [200, 404, 404, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "GET",
        "/v1/me/api-key",
        "",
        [400, 400, 400, 200, 200, 200, 200, 200, U, U, U, U],
    ),
    (
        "GET",
        "/v1/workspaces/{workspace_id}/export",
        "",
        [200, 403, 403, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "POST",
        "/v1/import",
        "not a backup (`{}`)",
        [400, 400, 400, 400, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "PUT",
        "/v1/workspaces/{workspace_id}",
        "its own name again",
        [200, 403, 403, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "PUT",
        "/v1/projects/{project_id}",
        "a project made for the column, a new name",
        [200, 403, 403, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "PUT",
        "/v1/environments/{environment_id}",
        "an environment made for the column, a new slug",
        [200, 403, 403, 200, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "DELETE",
        "/v1/environments/{environment_id}",
        "an environment made for the column",
        [204, 403, 403, 204, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "DELETE",
        "/v1/projects/{project_id}",
        "a project made for the column",
        [204, 403, 403, 204, 403, 403, 403, 403, U, U, U, U],
    ),
    (
        "DELETE",
        "/v1/workspaces/{workspace_id}",
        "the workspace; alice's columns: one made for the column",
        [204, 403, 403, 204, 403, 403, 403, 403, U, U, U, U],
    ),
    // Last in each column: it ends the caller's session.
    (
        "POST",
        "/v1/logout",
        "",
        [204, 204, 204, 403, 403, 403, 403, 403, U, U, U, U],
    ),
];

/// Start and end markers of the generated section of `docs/security.md`.
const BEGIN: &str = "<!-- permission-matrix:begin (generated by crates/klef-server/tests/api/matrix.rs; KLEF_UPDATE_DOCS=1 to regenerate) -->";
const END: &str = "<!-- permission-matrix:end -->";

/// The markdown of the matrix.
pub(crate) fn render() -> String {
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push_str("\n\nColumns:\n\n");
    for w in WHO {
        let _ = writeln!(out, "- **{}**: {}", w.short(), w.long());
    }
    out.push_str(
        "\nEnvironment routes ask about `api:production`, except the `api:*` column, which asks \
         about `preview`. `409` on rotate means the caller got past authorization and the \
         deliberately stale body was refused; `404` on someone else's key hides that it \
         exists. Every allowed read of a key or a secret is decrypted in the test with the \
         caller's own private key.\n\n",
    );
    out.push_str("| route | sent |");
    for w in WHO {
        let _ = write!(out, " {} |", w.short());
    }
    out.push_str("\n|---|---|");
    for _ in WHO {
        out.push_str("---|");
    }
    out.push('\n');
    for (method, path, note, expect) in MATRIX {
        let _ = write!(out, "| `{method} {path}` | {note} |");
        for s in expect {
            let _ = write!(out, " {s} |");
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(END);
    out
}

fn doc_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/security.md")
}

#[test]
fn matrix_covers_every_route() {
    let routed: BTreeSet<(&str, &str)> = Endpoint::ALL
        .iter()
        .map(|e| (e.method().as_str(), e.path()))
        .collect();
    let tested: BTreeSet<(&str, &str)> = MATRIX.iter().map(|(m, p, _, _)| (*m, *p)).collect();
    assert_eq!(routed, tested, "every route has a row, and only routes do");
    assert!(MATRIX.len() * WHO.len() >= 150);
    let last = MATRIX.last().expect("rows");
    assert_eq!((last.0, last.1), ("POST", "/v1/logout"), "logout runs last");
}

#[test]
fn matrix_doc_is_current() {
    let path = doc_path();
    let doc = std::fs::read_to_string(&path).expect("read docs/security.md");
    let rendered = render();
    let (Some(start), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        if std::env::var("KLEF_UPDATE_DOCS").is_ok_and(|v| v == "1") {
            let updated = format!("{}\n\n## Permission matrix\n\n{rendered}\n", doc.trim_end());
            std::fs::write(&path, updated).expect("write docs/security.md");
            return;
        }
        panic!(
            "docs/security.md has no permission matrix section; run \
             KLEF_UPDATE_DOCS=1 cargo test -p klef-server --test api matrix_doc"
        );
    };
    let current = &doc[start..end + END.len()];
    if current != rendered {
        if std::env::var("KLEF_UPDATE_DOCS").is_ok_and(|v| v == "1") {
            let updated = format!("{}{rendered}{}", &doc[..start], &doc[end + END.len()..]);
            std::fs::write(&path, updated).expect("write docs/security.md");
            return;
        }
        panic!(
            "the permission matrix in docs/security.md is stale; run \
             KLEF_UPDATE_DOCS=1 cargo test -p klef-server --test api matrix_doc"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_permission_matrix() {
    with_sqlite(matrix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_permission_matrix() {
    with_postgres(matrix).await;
}

/// A system key generated client-side, as `klef keys create` makes one.
pub(crate) struct SysKey {
    /// The bearer credential sent in `Authorization` (never the token).
    pub(crate) token: String,
    /// The whole token, as `keys create` prints it (never sent).
    pub(crate) whole: String,
    pub(crate) id: ApiKeyId,
    pub(crate) private: PrivateKey,
    pub(crate) public: PublicKey,
    pub(crate) signing_key: [u8; 32],
    pub(crate) hash: String,
}

impl SysKey {
    pub(crate) fn new() -> SysKey {
        let token = ApiToken::generate(TokenKind::System);
        let (private, public) = token.keypair().expect("system key pair");
        SysKey {
            token: token.bearer_token().expose_secret().to_owned(),
            whole: token.display().expose_secret().to_owned(),
            id: token.id(),
            private,
            public,
            signing_key: token.signing_public_key().expect("system signing key"),
            hash: token.bearer_hash(),
        }
    }

    /// A grant of `env` (at `version`) wrapped to this key.
    pub(crate) fn grant(&self, env: &EnvironmentId, key: &SymmetricKey, version: i64) -> Value {
        json!({
            "environment_id": env,
            "key_version": version,
            "wrapped_key": Blob::from(wrap_key(&self.public, key, &Aad::EnvironmentKey(env))),
        })
    }

    /// The create body of this key.
    pub(crate) fn body(
        &self,
        label: &str,
        permission: &str,
        scopes: &[(ProjectId, Option<EnvironmentId>)],
        grants: &[Value],
    ) -> Value {
        let scopes: Vec<Value> = scopes
            .iter()
            .map(|(p, e)| json!({"project_id": p, "environment_id": e}))
            .collect();
        json!({
            "id": self.id,
            "kind": "system",
            "label": label,
            "bearer_hash": self.hash,
            "public_key": Blob(self.public.0.to_vec()),
            "signing_key": Blob(self.signing_key.to_vec()),
            "permission": permission,
            "scopes": scopes,
            "environment_keys": grants,
        })
    }
}

/// A user key's bearer credential and create body.
pub(crate) fn user_key(label: &str) -> (String, ApiKeyId, Value) {
    let token = ApiToken::generate(TokenKind::User);
    let body = json!({
        "id": token.id(),
        "kind": "user",
        "label": label,
        "bearer_hash": token.bearer_hash(),
    });
    (
        token.bearer_token().expose_secret().to_owned(),
        token.id(),
        body,
    )
}

/// The environment key reached through a key-access answer: with the person's private key, or
/// (for a direct grant) with `private`.
pub(crate) fn reach_key(private: &PrivateKey, env: &EnvironmentId, answer: &Value) -> SymmetricKey {
    let access: EnvironmentKeyAccess =
        serde_json::from_value(answer["access"].clone()).expect("access");
    match access {
        EnvironmentKeyAccess::Direct { environment_key } => unwrap_key(
            private,
            &environment_key.into(),
            &Aad::EnvironmentKey(env),
            "environment key",
        )
        .expect("unwrap the direct grant"),
        EnvironmentKeyAccess::ViaProject {
            project_key,
            environment_key,
        } => {
            let project: ProjectId =
                serde_json::from_value(answer["environment"]["project_id"].clone())
                    .expect("project id");
            let pk = unwrap_key(
                private,
                &project_key.into(),
                &Aad::ProjectKey(&project),
                "project key",
            )
            .expect("unwrap the project key");
            open_key(
                &pk,
                &environment_key.into(),
                &Aad::EnvironmentKey(env),
                "environment key",
            )
            .expect("open the environment key")
        }
    }
}

/// Invites `person` to `ws`, signs them up, accepts; answers their session token.
pub(crate) async fn join(
    api: &Api,
    admin: &str,
    ws: WorkspaceId,
    person: &Person,
    environments: Option<Vec<EnvironmentId>>,
) -> String {
    let inv = api
        .post(
            &format!("/v1/workspaces/{ws}/invitations"),
            Some(admin),
            &json!({"email": person.email, "role": "member", "environments": environments}),
        )
        .await
        .ok(201);
    let token = person.signup(api).await;
    api.post(
        &format!("/v1/invitations/{}/accept", inv["id"].as_str().expect("id")),
        Some(&token),
        &json!({}),
    )
    .await
    .ok(200);
    token
}

/// The world every column runs in.
struct World {
    alice: Person,
    bob: Person,
    carol: Person,
    dave: Person,
    ws: WorkspaceId,
    fx: ProjectFixture,
    preview: (Environment, SymmetricKey),
    star: SysKey,
    tokens: Vec<Option<String>>,
    /// The private key each column decrypts with.
    privates: Vec<Option<PrivateKey>>,
    put_target: SysKey,
    alice_user_key: ApiKeyId,
    victims: Vec<SysKey>,
    /// Per column: an environment of `api`, a project and a workspace of alice's that the
    /// rename and delete rows act on.
    doomed: Vec<(EnvironmentId, ProjectId, WorkspaceId)>,
}

const SECRET: &str = "API_KEY";

fn secret_value(env: &str) -> String {
    format!("{env}-value-seen-end-to-end")
}

async fn setup(api: &Api, target: &Target) -> World {
    let alice = Person::new("alice");
    let bob = Person::new("bob");
    let carol = Person::new("carol");
    let dave = Person::new("dave");
    let alice_token = alice.signup(api).await;
    let ws = WorkspaceId::random();
    api.post(
        "/v1/workspaces",
        Some(&alice_token),
        &json!({"workspace": {"id": ws, "name": "Acme", "personal": false, "created_at": T0}}),
    )
    .await
    .ok(201);
    let fx = ProjectFixture::new(ws, "api", &["staging", "production"]);
    let web = ProjectFixture::new(ws, "web", &["production"]);
    for p in [&fx, &web] {
        api.post(
            &format!("/v1/workspaces/{ws}/projects"),
            Some(&alice_token),
            &json!({"project": p.new_project(&alice.public_key())}),
        )
        .await
        .ok(201);
    }
    let bob_token = join(api, &alice_token, ws, &bob, None).await;
    let pk = Blob::from(wrap_key(
        &bob.public_key(),
        &fx.key,
        &Aad::ProjectKey(&fx.project.id),
    ));
    api.post(
        &format!("/v1/workspaces/{ws}/members/{}/confirm", bob.id),
        Some(&alice_token),
        &json!({"project_keys": [{"project_id": fx.project.id, "wrapped_key": pk}]}),
    )
    .await
    .ok(200);
    let (staging, staging_key) = fx.env("staging");
    let carol_token = join(api, &alice_token, ws, &carol, Some(vec![staging.id])).await;
    let grant = Blob::from(wrap_key(
        &carol.public_key(),
        staging_key,
        &Aad::EnvironmentKey(&staging.id),
    ));
    api.post(
        &format!("/v1/workspaces/{ws}/members/{}/confirm", carol.id),
        Some(&alice_token),
        &json!({"environment_keys": [{"environment_id": staging.id, "key_version": 1, "wrapped_key": grant}]}),
    )
    .await
    .ok(200);
    join(api, &alice_token, ws, &dave, None).await;

    let (production, production_key) = fx.env("production");
    let (web_prod, web_prod_key) = web.env("production");
    let prod = Some(production.id);
    // API keys.
    let (user_token, _, body) = user_key("alice laptop");
    api.post("/v1/api-keys", Some(&alice_token), &body)
        .await
        .ok(201);
    let mut sys = Vec::new();
    for (label, perm, scope, env, key) in [
        ("ci read", "read", fx.project.id, production, production_key),
        (
            "ci deploy",
            "readwrite",
            fx.project.id,
            production,
            production_key,
        ),
        (
            "web deploy",
            "readwrite",
            web.project.id,
            web_prod,
            web_prod_key,
        ),
        (
            "soon revoked",
            "read",
            fx.project.id,
            production,
            production_key,
        ),
    ] {
        let k = SysKey::new();
        let body = k.body(
            label,
            perm,
            &[(scope, Some(env.id))],
            &[k.grant(&env.id, key, 1)],
        );
        api.post("/v1/api-keys", Some(&alice_token), &body)
            .await
            .ok(201);
        sys.push(k);
    }
    let revoked = sys.pop().expect("revoked key");
    api.raw(
        "DELETE",
        &format!("/v1/api-keys/{}", revoked.id),
        Some(&alice_token),
        None,
        None,
    )
    .await
    .ok(200);
    // The `api:*` key, then an environment created after it, wrapped to it in the same request.
    let star = SysKey::new();
    let grants: Vec<Value> = fx
        .envs
        .iter()
        .map(|(e, k)| star.grant(&e.id, k, 1))
        .collect();
    api.post(
        "/v1/api-keys",
        Some(&alice_token),
        &star.body(
            "every api env",
            "readwrite",
            &[(fx.project.id, None)],
            &grants,
        ),
    )
    .await
    .ok(201);
    let preview = new_env(&fx, "preview");
    api.post(
        &format!("/v1/projects/{}/environments", fx.project.id),
        Some(&alice_token),
        &create_env_body(&fx, &preview, &star),
    )
    .await
    .ok(201);
    // The values every column reads.
    for (env, key) in [(production, production_key), (&preview.0, &preview.1)] {
        api.post(
            &format!("/v1/environments/{}/secrets", env.id),
            Some(&alice_token),
            &json!({"writes": [put(&env.id, key, SECRET, Some(0), &secret_value(&env.slug))]}),
        )
        .await
        .ok(200);
    }
    // The keys PUT and DELETE act on.
    let put_target = SysKey::new();
    api.post(
        "/v1/api-keys",
        Some(&alice_token),
        &put_target.body(
            "put target",
            "read",
            &[(fx.project.id, prod)],
            &[put_target.grant(&production.id, production_key, 1)],
        ),
    )
    .await
    .ok(201);
    let (_, alice_user_key, body) = user_key("spare");
    api.post("/v1/api-keys", Some(&alice_token), &body)
        .await
        .ok(201);
    let mut victims = Vec::new();
    for _ in WHO {
        let v = SysKey::new();
        api.post(
            "/v1/api-keys",
            Some(&alice_token),
            &v.body(
                "victim",
                "read",
                &[(fx.project.id, prod)],
                &[v.grant(&production.id, production_key, 1)],
            ),
        )
        .await
        .ok(201);
        victims.push(v);
    }
    // What the rename and delete rows act on, one of each per column.
    let mut doomed = Vec::new();
    for col in 0..WHO.len() {
        let env = new_env(&fx, &format!("doomed{col}"));
        api.post(
            &format!("/v1/projects/{}/environments", fx.project.id),
            Some(&alice_token),
            &create_env_body(&fx, &env, &star),
        )
        .await
        .ok(201);
        let p = ProjectFixture::new(ws, &format!("doomed{col}"), &["dev"]);
        api.post(
            &format!("/v1/workspaces/{ws}/projects"),
            Some(&alice_token),
            &json!({"project": p.new_project(&alice.public_key())}),
        )
        .await
        .ok(201);
        let own = WorkspaceId::random();
        api.post(
            "/v1/workspaces",
            Some(&alice_token),
            &json!({"workspace": {"id": own, "name": format!("doomed {col}"), "personal": false, "created_at": T0}}),
        )
        .await
        .ok(201);
        doomed.push((env.0.id, p.project.id, own));
    }
    // An expired session of bob.
    let expired = bob.login(api).await;
    exec(
        target,
        &format!(
            "UPDATE sessions SET expires_at = 1 WHERE id = '{}'",
            sha256_hex(expired.as_bytes())
        ),
    )
    .await;

    let [read, rw, out]: [SysKey; 3] = sys.try_into().unwrap_or_else(|_| panic!("three keys"));
    let tokens = vec![
        Some(alice_token),
        Some(bob_token),
        Some(carol_token),
        Some(user_token),
        Some(read.token.clone()),
        Some(rw.token.clone()),
        Some(out.token.clone()),
        Some(star.token.clone()),
        Some(revoked.token.clone()),
        Some(expired),
        Some("klef_sys_notakey".to_owned()),
        None,
    ];
    let privates = vec![
        Some(alice.private_key().clone()),
        Some(bob.private_key().clone()),
        Some(carol.private_key().clone()),
        Some(alice.private_key().clone()),
        Some(read.private.clone()),
        Some(rw.private.clone()),
        Some(out.private.clone()),
        Some(star.private.clone()),
        None,
        None,
        None,
        None,
    ];
    World {
        alice,
        bob,
        carol,
        dave,
        ws,
        fx,
        preview,
        star,
        tokens,
        privates,
        put_target,
        alice_user_key,
        victims,
        doomed,
    }
}

/// A new environment of `fx` with a fresh key.
pub(crate) fn new_env(fx: &ProjectFixture, slug: &str) -> (Environment, SymmetricKey) {
    (
        Environment {
            id: EnvironmentId::random(),
            project_id: fx.project.id,
            slug: slug.into(),
            name: slug.into(),
            key_version: 1,
            created_at: T0,
        },
        SymmetricKey::generate(),
    )
}

/// The create-environment body, its key sealed under the project key and wrapped to `star`.
pub(crate) fn create_env_body(
    fx: &ProjectFixture,
    env: &(Environment, SymmetricKey),
    star: &SysKey,
) -> Value {
    let new = NewEnvironment {
        environment: env.0.clone(),
        sealed_key: Blob::from(klef_core::crypto::seal_key(
            &fx.key,
            &env.1,
            &Aad::EnvironmentKey(&env.0.id),
        )),
        manifest: None,
    };
    json!({
        "environment": new,
        "api_key_grants": [{
            "api_key_id": star.id,
            "wrapped_key": Blob::from(wrap_key(&star.public, &env.1, &Aad::EnvironmentKey(&env.0.id))),
        }],
    })
}

/// The `{account_id}` of a members route: the caller's own account for the row about removing
/// oneself (alice's for the columns with no account of their own), else an unknown one.
fn member_target(w: &World, who: Who, note: &str) -> AccountId {
    if !note.contains("own account") {
        return AccountId::random();
    }
    match who {
        Who::Member | Who::ExpiredSession => w.bob.id,
        Who::MemberNoEnv => w.carol.id,
        _ => w.alice.id,
    }
}

/// The request of `row` for column `col`: the concrete path and body.
fn request(w: &World, row: usize, col: usize) -> (String, Option<Value>) {
    let (_, path, note, _) = MATRIX[row];
    let who = WHO[col];
    let (env, env_key) = if who == Who::SysWildcardNewEnv {
        (&w.preview.0, &w.preview.1)
    } else {
        let (e, k) = w.fx.env("production");
        (e, k)
    };
    let project = w.fx.project.id;
    let concrete = path
        .replace("{workspace_id}", &w.ws.to_string())
        .replace("{project_id}", &project.to_string())
        .replace("{environment_id}", &env.id.to_string())
        .replace("{name}", SECRET)
        .replace("{invitation_id}", &InviteId::random().to_string())
        .replace("{account_id}", &member_target(w, who, note).to_string());
    let body = match (MATRIX[row].0, path) {
        ("POST", "/v1/signup") => Some(Person::new("nobody").signup_body()),
        ("POST", "/v1/login") => {
            Some(json!({"email": w.dave.email, "password": w.dave.account_password}))
        }
        ("PUT", "/v1/me/keys") => {
            let person = match who {
                Who::Member | Who::ExpiredSession => &w.bob,
                Who::MemberNoEnv => &w.carol,
                _ => &w.alice,
            };
            Some(json!({"keys": person.keys, "account_password": person.account_password}))
        }
        ("PUT", "/v1/me/identity") => {
            let seed = [u8::try_from(col).expect("a column"); 32];
            let key = klef_core::trust::secrets::DerivedSecrets::from_bytes(&seed, &seed)
                .identity()
                .verifying_key();
            Some(json!({"identity_key": klef_core::model::Blob::from(key.to_bytes().to_vec())}))
        }
        // Alice's two columns write in turn: the user key's write follows the session's.
        ("PUT", "/v1/me/state") => Some(json!({"sealed": "AAAA",
            "expected_revision": u64::from(who == Who::UserKey)})),
        ("PUT", "/v1/environments/{environment_id}/personal") => {
            // The shape of a sealed record (suite 0x01, nonce, tag); the server never opens it.
            let mut sealed = vec![0u8; 40];
            sealed[0] = 1;
            Some(json!({"sealed": klef_core::model::Blob::from(sealed),
                "expected_revision": u64::from(who == Who::UserKey)}))
        }
        ("POST", "/v1/workspaces/{workspace_id}/roster") => Some(json!({"entries": []})),
        ("POST", "/v1/workspaces") => Some(json!({"workspace": {
            "id": WorkspaceId::random(), "name": format!("ws {col}"), "personal": false, "created_at": T0}})),
        ("POST", "/v1/workspaces/{workspace_id}/projects") => {
            let p = ProjectFixture::new(w.ws, &format!("p{col}-{row}"), &["dev"]);
            Some(json!({"project": p.new_project(&w.alice.public_key())}))
        }
        ("POST", "/v1/projects/{project_id}/environments") => {
            let e = new_env(&w.fx, &format!("e{col}"));
            Some(create_env_body(&w.fx, &e, &w.star))
        }
        ("POST", "/v1/environments/{environment_id}/secrets") => Some(json!({"writes": [
            put(&env.id, env_key, &format!("WRITTEN_BY_{col}"), None, "written-in-the-matrix")]})),
        ("POST", "/v1/projects/{project_id}/rotate") => {
            // Well-formed, but naming no environment: the stale view decides (409).
            let mut wrapped = vec![0u8; 81];
            wrapped[0] = 0x10;
            Some(json!({"environments": [], "project_keys": [{
                "account_id": w.alice.id, "wrapped_key": klef_core::model::Blob::from(wrapped)}]}))
        }
        ("POST", "/v1/environments/{environment_id}/rotate") => {
            // The shape of a sealed key (suite 0x01, 61 bytes), so the stale version decides.
            let mut sealed = vec![0u8; 61];
            sealed[0] = 1;
            Some(json!({
                "expected_key_version": 0, "sealed_key": klef_core::model::Blob::from(sealed),
                "secrets": [], "grants": []}))
        }
        ("POST", "/v1/workspaces/{workspace_id}/invitations") => Some(json!({
            "email": format!("invitee{col}-{row}@example.com"),
            "role": if note.contains("owner") { "owner" } else { "member" }})),
        ("POST", "/v1/api-keys") if note.starts_with("a user key") => Some(user_key("matrix").2),
        ("POST", "/v1/api-keys") => {
            let (production, production_key) = w.fx.env("production");
            let k = SysKey::new();
            Some(k.body(
                "matrix",
                "read",
                &[(project, Some(production.id))],
                &[k.grant(&production.id, production_key, 1)],
            ))
        }
        ("PUT", "/v1/api-keys/{api_key_id}") if note.contains("user key") => Some(json!({
            "scopes": [{"project_id": project, "environment_id": null}], "permission": "read"})),
        ("PUT", "/v1/api-keys/{api_key_id}") => {
            let production = &w.fx.env("production").0;
            Some(
                json!({"scopes": [{"project_id": project, "environment_id": production.id}], "permission": "read"}),
            )
        }
        ("POST", _) => Some(json!({})),
        _ => None,
    };
    let (doomed_env, doomed_project, doomed_ws) = w.doomed[col];
    let alices = matches!(who, Who::Owner | Who::UserKey);
    let concrete = match (MATRIX[row].0, path) {
        ("PUT" | "DELETE", "/v1/environments/{environment_id}") => {
            format!("/v1/environments/{doomed_env}")
        }
        ("PUT" | "DELETE", "/v1/projects/{project_id}") => format!("/v1/projects/{doomed_project}"),
        ("DELETE", "/v1/workspaces/{workspace_id}") if alices => {
            format!("/v1/workspaces/{doomed_ws}")
        }
        _ => concrete,
    };
    let body = match (MATRIX[row].0, path) {
        ("PUT", "/v1/workspaces/{workspace_id}") => Some(json!({"name": "Acme"})),
        ("PUT", "/v1/projects/{project_id}") => Some(json!({"name": format!("renamed {col}")})),
        ("PUT", "/v1/environments/{environment_id}") => {
            Some(json!({"slug": format!("renamed{col}"), "name": "Renamed"}))
        }
        _ => body,
    };
    let concrete = if path == "/v1/api-keys/{api_key_id}" {
        let id = match (MATRIX[row].0, note.contains("user key")) {
            ("DELETE", _) => w.victims[col].id,
            (_, true) => w.alice_user_key,
            _ => w.put_target.id,
        };
        concrete.replace("{api_key_id}", &id.to_string())
    } else {
        concrete
    };
    (concrete, body)
}

/// For an allowed read, decrypts what it returned with the caller's own key.
async fn check_end_to_end(w: &World, api: &Api, col: usize, row: usize, answer: &Answer) {
    let (method, path, _, _) = MATRIX[row];
    let Some(private) = &w.privates[col] else {
        return;
    };
    let token = w.tokens[col].as_deref().expect("token");
    let (env, _) = if WHO[col] == Who::SysWildcardNewEnv {
        (&w.preview.0, &w.preview.1)
    } else {
        let (e, k) = w.fx.env("production");
        (e, k)
    };
    match (method, path) {
        ("GET", "/v1/environments/{environment_id}/key") => {
            let _ = reach_key(private, &env.id, &answer.body);
        }
        (
            "GET",
            "/v1/environments/{environment_id}/secrets"
            | "/v1/environments/{environment_id}/secrets/{name}/history",
        ) => {
            let access = api
                .get(&format!("/v1/environments/{}/key", env.id), token)
                .await
                .ok(200);
            let key = reach_key(private, &env.id, &access);
            let secret = answer.body["secrets"]
                .as_array()
                .expect("secrets")
                .iter()
                .find(|s| s["name"] == SECRET)
                .unwrap_or_else(|| panic!("{SECRET} in {}", answer.body));
            assert_eq!(
                open_value(&env.id, &key, secret),
                secret_value(&env.slug),
                "{:?} decrypts {method} {path} end to end",
                WHO[col]
            );
        }
        ("GET", "/v1/projects/{project_id}/environments") => {
            let slugs: Vec<&str> = answer.body["environments"]
                .as_array()
                .expect("environments")
                .iter()
                .filter_map(|e| e["slug"].as_str())
                .collect();
            match WHO[col] {
                Who::SysRead | Who::SysReadWrite => assert_eq!(slugs, ["production"]),
                Who::MemberNoEnv => assert_eq!(slugs, ["staging"]),
                _ => assert!(slugs.contains(&"preview"), "{slugs:?}"),
            }
        }
        _ => {}
    }
}

async fn matrix(target: Target) {
    let server = Server::start(&target, false).await;
    let api = Api::new(&server.base);
    let world = setup(&api, &target).await;
    let mut failures = Vec::new();
    let mut cases = 0;
    for (col, who) in WHO.iter().enumerate() {
        for (row, &(method, path, note, expect)) in MATRIX.iter().enumerate() {
            let (concrete, body) = request(&world, row, col);
            let answer = api
                .raw(
                    method,
                    &concrete,
                    world.tokens[col].as_deref(),
                    body.map(|b| b.to_string()),
                    None,
                )
                .await;
            cases += 1;
            if answer.status == expect[col] {
                if answer.status < 300 {
                    check_end_to_end(&world, &api, col, row, &answer).await;
                }
                if answer.status == 401 {
                    assert_eq!(answer.code(), "unauthenticated", "{method} {path}");
                }
            } else {
                failures.push(format!(
                    "{method} {path} ({note}) as {who:?}: expected {}, got {} {}",
                    expect[col], answer.status, answer.body
                ));
            }
        }
    }
    assert!(cases >= 150);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.stop().await;
}
