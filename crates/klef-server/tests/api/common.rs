//! The test harness: servers started in process on 127.0.0.1:0 (`SQLite` in a temp dir, or a
//! fresh `PostgreSQL` schema), an HTTP client that records every body it sends and receives, and
//! real client-side crypto fixtures (accounts, project and environment keys, sealed values).

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use klef_core::crypto::account::{UnlockedAccount, create_with_params};
use klef_core::crypto::{Aad, PrivateKey, PublicKey, SymmetricKey, seal_key, wrap_key};
use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    AccountKeys, Blob, Environment, KdfAlgorithm, KdfParams, NewEnvironment, NewProject, Project,
    Workspace,
};
use klef_core::secrecy::SecretString;
use klef_server::{Config, ServerError};
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;
use tokio::sync::oneshot;

pub(crate) const T0: i64 = 1_764_000_000_000;

/// Where a test's database lives.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

impl Target {
    pub(crate) fn url(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("sqlite://{}", path.display()),
            Target::Postgres { url, .. } => url.clone(),
        }
    }
}

/// Runs `f` against a fresh `SQLite` database in a temp dir.
pub(crate) async fn with_sqlite<F, Fut>(f: F)
where
    F: FnOnce(Target) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    f(Target::Sqlite(dir.path().join("server.db"))).await;
}

/// Runs `f` against a fresh `PostgreSQL` schema, dropped afterwards. Skips (with a note) when
/// `KLEF_TEST_DATABASE_URL` is unset, but fails when `CI=true`.
pub(crate) async fn with_postgres<F, Fut>(f: F)
where
    F: FnOnce(Target) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Ok(base) = std::env::var("KLEF_TEST_DATABASE_URL") else {
        assert!(
            !ci,
            "CI=true but KLEF_TEST_DATABASE_URL is not set: the PostgreSQL server tests must run in CI"
        );
        eprintln!(
            "SKIPPED PostgreSQL server test: set KLEF_TEST_DATABASE_URL=postgres://… to run it"
        );
        return;
    };
    let admin = sqlx::PgPool::connect(&base).await.unwrap_or_else(|e| {
        panic!("KLEF_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}")
    });
    let schema = format!(
        "klef_srv_{}",
        AccountId::random().to_string().replace('-', "")
    );
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let result = tokio::spawn(f(Target::Postgres {
        url,
        schema: schema.clone(),
    }))
    .await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .expect("drop test schema");
    admin.close().await;
    if let Err(e) = result {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

/// A server running in this process.
pub(crate) struct Server {
    pub(crate) base: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl Server {
    pub(crate) async fn start(target: &Target, open_signup: bool) -> Server {
        let mut config = Config::new(target.url());
        config.open_signup = open_signup;
        Self::start_with(config).await
    }

    pub(crate) async fn start_with(config: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let mut handle = tokio::spawn(klef_server::launch_with_listener(listener, config, async {
            let _ = rx.await;
        }));
        let base = format!("http://{addr}");
        // Ready once it answers its health check: a server that failed to start (its database
        // refused it, a migration failed) panics here with its own error, instead of surfacing
        // later as a refused connection in the middle of a test.
        let health = format!("{base}/v1/health");
        let http = reqwest::Client::new();
        loop {
            tokio::select! {
                ended = &mut handle => match ended {
                    Ok(Ok(())) => panic!("the server stopped before it was ready"),
                    Ok(Err(e)) => panic!("the server failed to start: {e:?}"),
                    Err(e) => panic!("the server task failed: {e}"),
                },
                answer = http.get(&health).send() => {
                    if answer.is_ok_and(|r| r.status().is_success()) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
        Server {
            base,
            shutdown: Some(tx),
            handle,
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.handle)
            .await
            .expect("server task")
            .expect("server ran cleanly");
    }
}

/// One recorded exchange.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    pub(crate) path: String,
    pub(crate) request: String,
    pub(crate) response: String,
}

/// An HTTP client that records every body.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) log: Arc<Mutex<Vec<Exchange>>>,
}

/// A response: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) retry_after: Option<String>,
}

impl Answer {
    pub(crate) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub(crate) fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub(crate) fn ok(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {:?}", self.body);
        self.body
    }

    #[track_caller]
    pub(crate) fn err(self, status: u16, code: &str) -> Answer {
        assert_eq!(self.status, status, "unexpected answer: {:?}", self.body);
        assert_eq!(self.code(), code, "unexpected answer: {:?}", self.body);
        assert!(!self.message().is_empty());
        self
    }
}

impl Api {
    pub(crate) fn new(base: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_mins(1))
                .build()
                .expect("client"),
            base: base.to_owned(),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Another server's base URL, sharing the log.
    pub(crate) fn at(&self, base: &str) -> Api {
        Api {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    /// Sends `method path` with an optional bearer token and raw body (sent as JSON).
    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        content_type: Option<&str>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let sent = body.clone().unwrap_or_default();
        if let Some(b) = body {
            req = req
                .header("content-type", content_type.unwrap_or("application/json"))
                .body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let binary = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes() == b"application/octet-stream");
        let bytes = resp.bytes().await.expect("response body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if text.is_empty() || binary {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| {
                panic!("non-JSON answer ({status}) to {path}: {e}: {text:.200}")
            })
        };
        assert!(status < 500, "{path} answered {status}: {body}");
        self.log.lock().expect("log").push(Exchange {
            path: path.to_owned(),
            request: if sent.len() > 100_000 {
                String::new()
            } else {
                sent
            },
            response: text,
        });
        Answer {
            status,
            body,
            retry_after,
        }
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Answer {
        self.raw("GET", path, Some(token), None, None).await
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.raw("POST", path, token, Some(body.to_string()), None)
            .await
    }

    pub(crate) async fn send(&self, method: &str, path: &str, token: &str, body: &Value) -> Answer {
        self.raw(method, path, Some(token), Some(body.to_string()), None)
            .await
    }
}

/// A person with real keys made client-side.
pub(crate) struct Person {
    pub(crate) email: String,
    pub(crate) account_password: String,
    pub(crate) encryption_password: String,
    pub(crate) id: AccountId,
    pub(crate) keys: AccountKeys,
    pub(crate) unlocked: UnlockedAccount,
    pub(crate) personal: Workspace,
}

/// Cheap but valid KDF parameters (the server only checks the floor).
fn test_kdf() -> KdfParams {
    let mut salt = vec![0u8; 16];
    klef_core::crypto::fill_random(&mut salt);
    KdfParams {
        algorithm: KdfAlgorithm::Argon2id,
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
        salt: Blob(salt),
    }
}

impl Person {
    pub(crate) fn new(name: &str) -> Person {
        let id = AccountId::random();
        let encryption_password = format!("enc-{name}-{}", ProjectId::random());
        let (keys, _recovery, unlocked) = create_with_params(
            &id,
            &SecretString::from(encryption_password.clone()),
            test_kdf(),
        )
        .expect("create account keys");
        Person {
            email: format!("{name}@example.com"),
            account_password: format!("acct-{name}-{}", ProjectId::random()),
            encryption_password,
            id,
            keys,
            unlocked,
            personal: Workspace {
                id: WorkspaceId::random(),
                name: format!("{name} (personal)"),
                personal: true,
                created_at: T0,
            },
        }
    }

    pub(crate) fn public_key(&self) -> PublicKey {
        PublicKey::from_slice(self.keys.public_key.as_bytes()).expect("public key")
    }

    pub(crate) fn private_key(&self) -> &PrivateKey {
        &self.unlocked.private_key
    }

    pub(crate) fn signup_body(&self) -> Value {
        json!({
            "email": self.email,
            "password": self.account_password,
            "account_id": self.id,
            "keys": self.keys,
            "personal_workspace": self.personal,
        })
    }

    /// Signs up and returns the session token.
    pub(crate) async fn signup(&self, api: &Api) -> String {
        let body = api
            .post("/v1/signup", None, &self.signup_body())
            .await
            .ok(201);
        body["token"].as_str().expect("token").to_owned()
    }

    pub(crate) async fn login(&self, api: &Api) -> String {
        let body = api
            .post(
                "/v1/login",
                None,
                &json!({"email": self.email, "password": self.account_password}),
            )
            .await
            .ok(200);
        body["token"].as_str().expect("token").to_owned()
    }
}

/// A project made client-side: its key and its environments' keys.
pub(crate) struct ProjectFixture {
    pub(crate) project: Project,
    pub(crate) key: SymmetricKey,
    pub(crate) envs: Vec<(Environment, SymmetricKey)>,
}

impl ProjectFixture {
    pub(crate) fn new(ws: WorkspaceId, name: &str, slugs: &[&str]) -> ProjectFixture {
        let project = Project {
            id: ProjectId::random(),
            workspace_id: ws,
            name: name.into(),
            created_at: T0,
        };
        let envs = slugs
            .iter()
            .map(|slug| {
                (
                    Environment {
                        id: EnvironmentId::random(),
                        project_id: project.id,
                        slug: (*slug).into(),
                        name: (*slug).into(),
                        key_version: 1,
                        created_at: T0,
                    },
                    SymmetricKey::generate(),
                )
            })
            .collect();
        ProjectFixture {
            project,
            key: SymmetricKey::generate(),
            envs,
        }
    }

    pub(crate) fn new_project(&self, owner: &PublicKey) -> NewProject {
        NewProject {
            project: self.project.clone(),
            project_key: Blob::from(wrap_key(
                owner,
                &self.key,
                &Aad::ProjectKey(&self.project.id),
            )),
            environments: self
                .envs
                .iter()
                .map(|(env, key)| NewEnvironment {
                    environment: env.clone(),
                    sealed_key: Blob::from(seal_key(&self.key, key, &Aad::EnvironmentKey(&env.id))),
                    manifest: None,
                })
                .collect(),
        }
    }

    pub(crate) fn env(&self, slug: &str) -> &(Environment, SymmetricKey) {
        self.envs
            .iter()
            .find(|(e, _)| e.slug == slug)
            .expect("environment")
    }
}

/// A sealed write of `value` to `name`.
pub(crate) fn put(
    env: &EnvironmentId,
    key: &SymmetricKey,
    name: &str,
    expected: Option<i64>,
    value: &str,
) -> Value {
    let ct = klef_core::crypto::encrypt_value(key, env, name, value.as_bytes());
    json!({"name": name, "expected_version": expected, "ciphertext": Blob::from(ct)})
}

/// Decrypts a secret version from a JSON answer.
pub(crate) fn open_value(env: &EnvironmentId, key: &SymmetricKey, secret: &Value) -> String {
    let blob: Blob = serde_json::from_value(secret["ciphertext"].clone()).expect("ciphertext");
    let name = secret["name"].as_str().expect("name");
    let pt = klef_core::crypto::decrypt_value(key, env, name, &blob.into()).expect("decrypt");
    String::from_utf8(pt.to_vec()).expect("utf-8")
}

/// Every row of every table (`PostgreSQL`: `row_to_json`), or the `SQLite` files' bytes, as bytes.
///
/// `PostgreSQL` returns tables and rows in no promised order (an autovacuum elsewhere rewrites
/// `pg_class` rows, so the catalog's order changes between two reads), hence both are sorted.
pub(crate) async fn dump(target: &Target) -> Vec<u8> {
    match target {
        Target::Sqlite(path) => {
            let mut out = Vec::new();
            let dir = path.parent().expect("parent");
            for entry in std::fs::read_dir(dir).expect("read dir") {
                let p = entry.expect("entry").path();
                out.extend(std::fs::read(&p).expect("read db file"));
            }
            out
        }
        Target::Postgres { url, schema } => {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
                 ORDER BY table_name",
            )
            .bind(schema)
            .fetch_all(&pool)
            .await
            .expect("tables");
            assert!(tables.len() >= 12, "{tables:?}");
            let mut out = Vec::new();
            for t in tables {
                out.extend(format!("# {t}\n").into_bytes());
                let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT row_to_json(t)::text AS r FROM {schema}.{t} t ORDER BY r"
                )))
                .fetch_all(&pool)
                .await
                .expect("rows");
                for r in rows {
                    out.extend(r.into_bytes());
                    out.push(b'\n');
                }
            }
            pool.close().await;
            out
        }
    }
}

/// Runs one query returning a count on the target's database.
pub(crate) async fn count(target: &Target, sql: &str, binds: &[&str]) -> i64 {
    match target {
        Target::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("connect");
            let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_owned()));
            for b in binds {
                q = q.bind(*b);
            }
            let n = q.fetch_one(&pool).await.expect("count");
            pool.close().await;
            n
        }
        Target::Postgres { url, .. } => {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.to_owned()));
            for b in binds {
                q = q.bind(*b);
            }
            let n = q.fetch_one(&pool).await.expect("count");
            pool.close().await;
            n
        }
    }
}

/// Runs one statement on the target's database.
pub(crate) async fn exec(target: &Target, sql: &str) {
    match target {
        Target::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("connect");
            sqlx::query(AssertSqlSafe(sql.to_owned()))
                .execute(&pool)
                .await
                .expect("exec");
            pool.close().await;
        }
        Target::Postgres { url, .. } => {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            sqlx::query(AssertSqlSafe(sql.to_owned()))
                .execute(&pool)
                .await
                .expect("exec");
            pool.close().await;
        }
    }
}

/// Team workspace "Acme", owned by `owner` (signed in with `token`), holding project "api"
/// with environments `slugs` (no manifests); answers both.
pub(crate) async fn team_project(
    api: &Api,
    owner: &Person,
    token: &str,
    slugs: &[&str],
) -> (WorkspaceId, ProjectFixture) {
    let ws = WorkspaceId::random();
    api.post(
        "/v1/workspaces",
        Some(token),
        &json!({"workspace": {"id": ws, "name": "Acme", "personal": false, "created_at": T0}}),
    )
    .await
    .ok(201);
    let fx = ProjectFixture::new(ws, "api", slugs);
    api.post(
        &format!("/v1/workspaces/{ws}/projects"),
        Some(token),
        &json!({"project": fx.new_project(&owner.public_key())}),
    )
    .await
    .ok(201);
    (ws, fx)
}
