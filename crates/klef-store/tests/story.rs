//! The store story: one scenario run against both backends (`SQLite` always; `PostgreSQL` when
//! `KLEF_TEST_DATABASE_URL` is set, and required when `CI=true`), plus the vault-identity,
//! file-permission and concurrency checks. Each `PostgreSQL` test works in its own schema and
//! drops it at the end.

use std::future::Future;
use std::path::{Path, PathBuf};

use klef_core::backend::{Backend, BackendError};
use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    Account, AccountKeys, Blob, Environment, EnvironmentKeyAccess, KdfAlgorithm, KdfParams,
    NewEnvironment, NewProject, Project, SecretWrite, Workspace,
};
use klef_store::{LOCAL_AUTHOR, LocalVault, Store, StoreError};
use sqlx::{AssertSqlSafe, Connection as _};

const T0: i64 = 1_764_000_000_000;

// ---------------------------------------------------------------------------------------------
// Targets

/// Where a test's store lives; `open` gives a new, independent pool (like another process).
#[derive(Clone)]
enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    async fn open(&self) -> Store {
        match self {
            Target::Sqlite(path) => Store::open_local(path).await.expect("open sqlite vault"),
            Target::Postgres(url) => Store::connect(url).await.expect("connect to postgres"),
        }
    }
}

/// Runs `f` against a fresh `SQLite` vault in a temp dir.
async fn with_sqlite<F, Fut>(f: F)
where
    F: FnOnce(Target) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    f(Target::Sqlite(dir.path().join("vault.db"))).await;
}

/// A throwaway schema in the test `PostgreSQL`.
struct PgSchema {
    admin: sqlx::PgPool,
    schema: String,
    url: String,
}

impl PgSchema {
    /// `None` (after a visible note) when `KLEF_TEST_DATABASE_URL` is unset outside CI; panics
    /// when it is unset in CI or the server cannot be reached.
    async fn create() -> Option<PgSchema> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let Ok(base) = std::env::var("KLEF_TEST_DATABASE_URL") else {
            assert!(
                !ci,
                "CI=true but KLEF_TEST_DATABASE_URL is not set: the PostgreSQL store tests must \
                 run in CI (set it to e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            eprintln!(
                "SKIPPED PostgreSQL store test: set KLEF_TEST_DATABASE_URL=postgres://… to run it"
            );
            return None;
        };
        let admin = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!("KLEF_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}")
            });
        let schema = format!(
            "klef_t_{}",
            AccountId::random().to_string().replace('-', "")
        );
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        Some(PgSchema { admin, schema, url })
    }

    async fn drop_schema(self) {
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&self.admin)
        .await
        .expect("drop test schema");
        self.admin.close().await;
    }
}

/// Runs `f` against a fresh `PostgreSQL` schema (or skips, see [`PgSchema::create`]). The schema
/// is dropped even when `f` panics; the panic is then re-raised.
async fn with_postgres<F, Fut>(f: F)
where
    F: FnOnce(Target, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(pg) = PgSchema::create().await else {
        return;
    };
    let result = tokio::spawn(f(Target::Postgres(pg.url.clone()), pg.schema.clone())).await;
    pg.drop_schema().await;
    if let Err(e) = result {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn keys(tag: u8) -> AccountKeys {
    AccountKeys {
        kdf: KdfParams {
            algorithm: KdfAlgorithm::Argon2id,
            m_cost_kib: 65_536,
            t_cost: 3,
            p_cost: 4,
            salt: Blob(vec![tag; 16]),
        },
        master_key_by_password: Blob(vec![tag; 60]),
        master_key_by_recovery: Blob(vec![tag.wrapping_add(1); 60]),
        public_key: Blob(vec![0x50; 32]),
        private_key_sealed: Blob(vec![0x51; 60]),
    }
}

fn new_account() -> Account {
    Account {
        id: AccountId::random(),
        email: None,
        keys: keys(1),
        identity_key: None,
        created_at: T0,
    }
}

fn workspace(name: &str, personal: bool, created_at: i64) -> Workspace {
    Workspace {
        id: WorkspaceId::random(),
        name: name.into(),
        personal,
        created_at,
    }
}

fn new_environment(project: ProjectId, slug: &str, created_at: i64) -> NewEnvironment {
    NewEnvironment {
        manifest: None,
        environment: Environment {
            id: EnvironmentId::random(),
            project_id: project,
            slug: slug.into(),
            name: slug.to_uppercase(),
            key_version: 1,
            created_at,
        },
        sealed_key: Blob(format!("sealed-{slug}").into_bytes()),
    }
}

fn new_project(ws: WorkspaceId, name: &str, slugs: &[&str]) -> NewProject {
    let project = Project {
        id: ProjectId::random(),
        workspace_id: ws,
        name: name.into(),
        created_at: T0,
    };
    let environments = slugs
        .iter()
        .enumerate()
        .map(|(i, s)| new_environment(project.id, s, T0 + i64::try_from(i).unwrap_or(0)))
        .collect();
    NewProject {
        project,
        project_key: Blob(vec![0xAA; 80]),
        environments,
    }
}

fn put(name: &str, expected: Option<i64>, value: &str) -> SecretWrite {
    SecretWrite {
        name: name.into(),
        expected_version: expected,
        ciphertext: Some(Blob(value.as_bytes().to_vec())),
    }
}

fn delete(name: &str, expected: Option<i64>) -> SecretWrite {
    SecretWrite {
        name: name.into(),
        expected_version: expected,
        ciphertext: None,
    }
}

fn bytes(b: Option<&Blob>) -> Option<&[u8]> {
    b.map(Blob::as_bytes)
}

/// A vault with an account and one project: returns the vault, the project and its envs.
async fn seeded(store: Store, slugs: &[&str]) -> (LocalVault, NewProject) {
    let vault = LocalVault::new(store);
    let personal = workspace("Personal", true, T0);
    vault
        .create_account(&new_account(), &personal)
        .await
        .expect("create account");
    let project = new_project(personal.id, "app", slugs);
    vault
        .create_project(&project)
        .await
        .expect("create project");
    (vault, project)
}

// ---------------------------------------------------------------------------------------------
// The story

async fn story(target: Target) {
    let vault = LocalVault::new(target.open().await);

    // A fresh vault has no account, and account-bound calls say so.
    assert_eq!(vault.account().await.expect("account"), None);
    assert!(matches!(
        vault.workspaces().await,
        Err(BackendError::NotFound { .. })
    ));

    // Account + personal workspace.
    let account = new_account();
    let personal = workspace("Personal", true, T0);
    vault
        .create_account(&account, &personal)
        .await
        .expect("create account");
    assert_eq!(
        vault.account().await.expect("account"),
        Some(account.clone())
    );
    let second = new_account();
    let err = vault
        .create_account(&second, &workspace("Other", true, T0))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::AlreadyExists { .. }), "{err:?}");

    // Password change: new KDF salt and sealed master keys; the key pair may not change.
    let mut changed = keys(9);
    changed.kdf.t_cost = 4;
    vault
        .replace_account_keys(&changed)
        .await
        .expect("replace keys");
    let stored = vault
        .account()
        .await
        .expect("account")
        .expect("some account");
    assert_eq!(stored.keys, changed);
    let mut other_pair = keys(10);
    other_pair.public_key = Blob(vec![0x99; 32]);
    let err = vault.replace_account_keys(&other_pair).await.unwrap_err();
    assert!(matches!(err, BackendError::Invalid(_)), "{err:?}");
    assert_eq!(
        vault.account().await.expect("account").expect("some").keys,
        changed
    );
    // The replaced seal is kept (a refused write keeps nothing), so recovery can undo a bad
    // write (DESIGN §9.4).
    let history = vault.account_key_history().await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].with_key_pair(&changed), account.keys);

    // Workspaces.
    let acme = workspace("Acme Inc", false, T0 + 10);
    vault
        .create_workspace(&acme)
        .await
        .expect("create workspace");
    assert_eq!(
        vault.workspaces().await.expect("workspaces"),
        vec![personal.clone(), acme.clone()]
    );
    let err = vault
        .create_workspace(&workspace("Acme Inc", false, T0 + 11))
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::AlreadyExists { .. }), "{err:?}");

    // A project with three environments, in one transaction.
    let project = new_project(
        personal.id,
        "api",
        &["development", "staging", "production"],
    );
    vault
        .create_project(&project)
        .await
        .expect("create project");
    assert_eq!(
        vault.projects(&personal.id).await.expect("projects"),
        vec![project.project.clone()]
    );
    assert_eq!(vault.projects(&acme.id).await.expect("projects"), vec![]);
    assert_eq!(
        vault.project(&project.project.id).await.expect("project"),
        project.project
    );
    let envs = vault
        .environments(&project.project.id)
        .await
        .expect("environments");
    let slugs: Vec<&str> = envs.iter().map(|e| e.slug.as_str()).collect();
    assert_eq!(slugs, ["development", "staging", "production"]);
    assert_eq!(envs[0], project.environments[0].environment);

    // Duplicate project name in the workspace: refused, and none of its parts written.
    let dup = new_project(personal.id, "api", &["development"]);
    let err = vault.create_project(&dup).await.unwrap_err();
    assert_eq!(
        err,
        BackendError::AlreadyExists {
            what: "project \"api\"".into()
        }
    );
    assert!(matches!(
        vault.project(&dup.project.id).await,
        Err(BackendError::NotFound { .. })
    ));
    assert_eq!(
        vault.projects(&personal.id).await.expect("projects").len(),
        1
    );
    // The same name in another workspace is fine; an unknown workspace is not found.
    vault
        .create_project(&new_project(acme.id, "api", &[]))
        .await
        .expect("same name elsewhere");
    let err = vault
        .create_project(&new_project(WorkspaceId::random(), "x", &[]))
        .await;
    assert!(matches!(err, Err(BackendError::NotFound { .. })), "{err:?}");
    // Repeated slug within one new project: nothing written.
    let twice = new_project(personal.id, "twice", &["dev", "dev"]);
    let err = vault.create_project(&twice).await.unwrap_err();
    assert!(matches!(err, BackendError::AlreadyExists { .. }), "{err:?}");
    assert!(vault.project(&twice.project.id).await.is_err());

    // Environments.
    let preview = new_environment(project.project.id, "preview", T0 + 100);
    vault
        .create_environment(&preview, &[])
        .await
        .expect("create environment");
    let err = vault
        .create_environment(
            &new_environment(project.project.id, "preview", T0 + 101),
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        BackendError::AlreadyExists {
            what: "environment \"preview\"".into()
        }
    );
    assert_eq!(
        vault
            .environments(&project.project.id)
            .await
            .expect("envs")
            .len(),
        4
    );
    let bad_slug = new_environment(project.project.id, "Not A Slug", T0);
    assert!(matches!(
        vault.create_environment(&bad_slug, &[]).await,
        Err(BackendError::Invalid(_))
    ));

    // Keys: through the project key.
    let dev = project.environments[0].environment.id;
    let staging = project.environments[1].environment.id;
    assert_eq!(
        vault.environment_key(&dev).await.expect("env key"),
        EnvironmentKeyAccess::ViaProject {
            project_key: project.project_key.clone(),
            environment_key: project.environments[0].sealed_key.clone(),
        }
    );
    let missing = EnvironmentId::random();
    assert!(matches!(
        vault.environment_key(&missing).await,
        Err(BackendError::NotFound { .. })
    ));

    // Write, read, overwrite, delete, history.
    let first = vault
        .write_secrets(
            &dev,
            &[
                put("API_KEY", Some(0), "ct-a1"),
                put("DB_URL", None, "ct-b1"),
            ],
            None,
        )
        .await
        .expect("first write");
    assert_eq!(first.iter().map(|s| s.version).collect::<Vec<_>>(), [1, 1]);
    assert!(
        first
            .iter()
            .all(|s| s.author.as_deref() == Some(LOCAL_AUTHOR) && s.key_version == 1)
    );
    let live = vault.secrets(&dev).await.expect("secrets");
    assert_eq!(
        live.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["API_KEY", "DB_URL"]
    );
    assert_eq!(bytes(live[0].ciphertext.as_ref()), Some(&b"ct-a1"[..]));

    let over = vault
        .write_secrets(&dev, &[put("API_KEY", Some(1), "ct-a2")], None)
        .await
        .expect("over");
    assert_eq!(over[0].version, 2);
    let gone = vault
        .write_secrets(&dev, &[delete("DB_URL", Some(1))], None)
        .await
        .expect("delete");
    assert_eq!((gone[0].version, gone[0].ciphertext.is_none()), (2, true));
    let live = vault.secrets(&dev).await.expect("secrets");
    assert_eq!(live.len(), 1);
    assert_eq!((live[0].name.as_str(), live[0].version), ("API_KEY", 2));
    assert_eq!(bytes(live[0].ciphertext.as_ref()), Some(&b"ct-a2"[..]));
    let history = vault.secret_history(&dev, "DB_URL").await.expect("history");
    assert_eq!(
        history.iter().map(|s| s.version).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(bytes(history[0].ciphertext.as_ref()), Some(&b"ct-b1"[..]));
    assert_eq!(history[1].ciphertext, None);
    // A deleted name may be created again with expected version 0.
    let again = vault
        .write_secrets(&dev, &[put("DB_URL", Some(0), "ct-b3")], None)
        .await
        .expect("again");
    assert_eq!(again[0].version, 3);

    // Stale expected version: Conflict, nothing written.
    let err = vault
        .write_secrets(&dev, &[put("API_KEY", Some(1), "stale")], None)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        BackendError::Conflict {
            name: "API_KEY".into(),
            expected: 1,
            actual: 2,
            changed_by: LOCAL_AUTHOR.into(),
        }
    );
    assert_eq!(
        vault
            .secret_history(&dev, "API_KEY")
            .await
            .expect("history")
            .len(),
        2
    );
    // A new name expected to be absent, but present: Conflict too.
    let err = vault
        .write_secrets(&dev, &[put("API_KEY", Some(0), "x")], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackendError::Conflict { actual: 2, .. }),
        "{err:?}"
    );

    // Batch atomicity: the second write conflicts, so the first is not applied.
    let err = vault
        .write_secrets(
            &dev,
            &[
                put("NEW_ONE", Some(0), "n1"),
                put("API_KEY", Some(1), "stale"),
            ],
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Conflict { ref name, .. } if name == "API_KEY"));
    assert_eq!(
        vault
            .secret_history(&dev, "NEW_ONE")
            .await
            .expect("history"),
        vec![]
    );
    let names: Vec<String> = vault
        .secrets(&dev)
        .await
        .expect("secrets")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["API_KEY", "DB_URL"]);

    // Environments are isolated; bad input and unknown environments are reported.
    assert_eq!(vault.secrets(&staging).await.expect("staging"), vec![]);
    assert!(matches!(
        vault.secrets(&missing).await,
        Err(BackendError::NotFound { .. })
    ));
    assert!(matches!(
        vault
            .write_secrets(&missing, &[put("A", None, "x")], None)
            .await,
        Err(BackendError::NotFound { .. })
    ));
    assert!(matches!(
        vault
            .write_secrets(&dev, &[put("1BAD", None, "x")], None)
            .await,
        Err(BackendError::Invalid(_))
    ));

    // Append-only is enforced by the database itself.
    let store = vault.store().await.expect("store");
    let update = "UPDATE secrets SET ciphertext = NULL WHERE name = 'API_KEY'";
    let delete_all = "DELETE FROM secrets";
    for sql in [update, delete_all] {
        let refused = match store {
            Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.is_err(),
            Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.is_err(),
            _ => panic!("unknown backend"),
        };
        assert!(refused, "{sql} must be refused");
    }

    // Everything is still there through a new, independent connection pool.
    store.close().await;
    let reopened = LocalVault::new(target.open().await);
    assert_eq!(
        reopened.account().await.expect("account").map(|a| a.id),
        Some(account.id)
    );
    assert_eq!(
        reopened
            .secret_history(&dev, "API_KEY")
            .await
            .expect("history")
            .len(),
        2
    );
    reopened
        .store()
        .await
        .expect("store")
        .ping()
        .await
        .expect("ping");
    reopened.store().await.expect("store").close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_story() {
    with_sqlite(story).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_story() {
    with_postgres(|target, _| story(target)).await;
}

// ---------------------------------------------------------------------------------------------
// Concurrent writers

const WRITERS: usize = 8;
const WRITES_EACH: usize = 50;

/// Several independent pools (as separate processes would have) append to one name with
/// expected versions, retrying on conflict; and write another name unconditionally. Every
/// version must exist exactly once, with no gaps, and every write must land exactly once.
async fn concurrent_writers(target: Target) {
    let (vault, project) = seeded(target.open().await, &["development"]).await;
    let env = project.environments[0].environment.id;
    vault.store().await.expect("store").close().await;

    let mut tasks = Vec::new();
    for t in 0..WRITERS {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let store = target.open().await;
            let author = format!("writer-{t}");
            let mut expected = 0;
            let mut conflicts = 0_usize;
            for i in 0..WRITES_EACH {
                loop {
                    let write = put("COUNTER", Some(expected), &format!("{t}-{i}"));
                    match store
                        .write_secrets(&env, &[write], None, Some(&author), None)
                        .await
                    {
                        Ok(done) => {
                            expected = done[0].version;
                            break;
                        }
                        Err(StoreError::Conflict { actual, .. }) => {
                            conflicts += 1;
                            expected = actual;
                        }
                        Err(e) => panic!("writer {t}: {e}"),
                    }
                }
                if i % 5 == 0 {
                    let free = put("FREE", None, &format!("{t}-{i}"));
                    store
                        .write_secrets(&env, &[free], None, Some(&author), None)
                        .await
                        .expect("free write");
                }
            }
            store.close().await;
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.expect("writer task");
    }

    let store = target.open().await;
    for (name, per_writer) in [("COUNTER", WRITES_EACH), ("FREE", WRITES_EACH.div_ceil(5))] {
        let history = store.secret_history(&env, name).await.expect("history");
        let total = WRITERS * per_writer;
        let versions: Vec<i64> = history.iter().map(|s| s.version).collect();
        let want: Vec<i64> = (1..=i64::try_from(total).expect("fits")).collect();
        assert_eq!(
            versions, want,
            "{name}: every version exactly once, no gaps"
        );
        let mut payloads: Vec<&[u8]> = history
            .iter()
            .map(|s| s.ciphertext.as_ref().expect("value").as_bytes())
            .collect();
        payloads.sort_unstable();
        payloads.dedup();
        assert_eq!(
            payloads.len(),
            total,
            "{name}: every write landed exactly once"
        );
    }
    eprintln!(
        "concurrent writers on {}: {conflicts} conflicts retried",
        store.backend_name()
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_writers() {
    with_sqlite(concurrent_writers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_writers() {
    with_postgres(|target, _| concurrent_writers(target)).await;
}

// ---------------------------------------------------------------------------------------------
// Vault identity and versioning

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read file")
}

fn assert_not_a_vault(result: Result<Store, StoreError>) {
    let err = result.expect_err("must refuse");
    assert!(matches!(err, StoreError::NotAVault { .. }), "{err:?}");
    assert!(err.to_string().ends_with("is not a Klef vault"), "{err}");
    let BackendError::Incompatible(message) = BackendError::from(err) else {
        panic!("not-a-vault must map to Incompatible");
    };
    assert!(
        message.contains("is not a Klef vault") && !message.contains('\n'),
        "{message}"
    );
}

fn assert_newer(result: Result<Store, StoreError>, detail: &str) {
    let err = result.expect_err("must refuse");
    assert!(matches!(err, StoreError::NewerVersion { .. }), "{err:?}");
    assert!(err.to_string().contains(detail), "{err}");
    let BackendError::Incompatible(message) = BackendError::from(err) else {
        panic!("newer-version must map to Incompatible");
    };
    assert!(
        message.contains("upgrade klef") && !message.contains('\n'),
        "{message}"
    );
}

#[tokio::test]
async fn sqlite_refuses_files_that_are_not_vaults() {
    let dir = tempfile::tempdir().expect("tempdir");

    // Random bytes.
    let random = dir.path().join("random.db");
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    std::fs::write(&random, &junk).expect("write junk");
    assert_not_a_vault(Store::open_local(&random).await);
    assert_eq!(file_bytes(&random), junk);

    // A SQLite header followed by garbage.
    let fake = dir.path().join("fake.db");
    let mut fake_bytes = b"SQLite format 3\0".to_vec();
    fake_bytes.extend_from_slice(&junk);
    std::fs::write(&fake, &fake_bytes).expect("write fake");
    assert_not_a_vault(Store::open_local(&fake).await);
    assert_eq!(file_bytes(&fake), fake_bytes);

    // Too short to be anything.
    let short = dir.path().join("short.db");
    std::fs::write(&short, b"hello").expect("write short");
    assert_not_a_vault(Store::open_local(&short).await);

    // Another application's SQLite database, through both constructors.
    let other = dir.path().join("other.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&other)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("create other db");
    sqlx::raw_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('hi');")
        .execute(&mut conn)
        .await
        .expect("fill other db");
    conn.close().await.expect("close");
    let before = file_bytes(&other);
    assert_not_a_vault(Store::open_local(&other).await);
    assert_not_a_vault(Store::connect(&format!("sqlite://{}", other.display())).await);
    assert_eq!(
        file_bytes(&other),
        before,
        "a foreign file must not be modified"
    );

    // A directory where the vault file should be.
    let a_dir = dir.path().join("dir.db");
    std::fs::create_dir(&a_dir).expect("mkdir");
    assert_not_a_vault(Store::open_local(&a_dir).await);

    // An empty file becomes a vault.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("write empty");
    Store::open_local(&empty)
        .await
        .expect("empty file is initialised")
        .close()
        .await;
}

#[tokio::test]
async fn sqlite_refuses_newer_vaults_without_touching_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vault.db");
    let (vault, _) = seeded(Store::open_local(&path).await.expect("open"), &["dev"]).await;
    vault.store().await.expect("store").close().await;

    let tamper = |sql: &'static str| {
        let path = path.clone();
        async move {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("connect");
            sqlx::raw_sql(sql).execute(&mut conn).await.expect("tamper");
            conn.close().await.expect("close");
        }
    };

    // A newer format version.
    tamper("UPDATE klef_meta SET value = '999' WHERE key = 'format_version'").await;
    let before = file_bytes(&path);
    assert_newer(Store::open_local(&path).await, "format version 999");
    assert_eq!(
        file_bytes(&path),
        before,
        "a newer vault must not be modified"
    );

    // A migration this build does not know.
    tamper(
        "UPDATE klef_meta SET value = '1' WHERE key = 'format_version'; \
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', 1, x'00', 0);",
    )
    .await;
    let before = file_bytes(&path);
    assert_newer(Store::open_local(&path).await, "migration 99990101000000");
    assert_eq!(
        file_bytes(&path),
        before,
        "a newer vault must not be modified"
    );

    // Back to known versions: it opens again, data intact.
    tamper("DELETE FROM _sqlx_migrations WHERE version = 99990101000000").await;
    let vault = LocalVault::open(&path).await.expect("reopen");
    assert!(vault.account().await.expect("account").is_some());
    vault.store().await.expect("store").close().await;
}

#[tokio::test]
async fn postgres_refuses_newer_and_foreign_databases() {
    with_postgres(|target, schema| async move {
        let Target::Postgres(url) = &target else { unreachable!("postgres target") };
        let store = target.open().await;
        let Store::Postgres(pool) = &store else { panic!("postgres store") };
        sqlx::query("UPDATE klef_meta SET value = '7' WHERE key = 'format_version'")
            .execute(pool)
            .await
            .expect("tamper");
        assert_newer(Store::connect(url).await, "format version 7");
        sqlx::raw_sql(
            "UPDATE klef_meta SET value = '1' WHERE key = 'format_version'; \
             INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', true, '\\x00', 0);",
        )
        .execute(pool)
        .await
        .expect("tamper");
        assert_newer(Store::connect(url).await, "migration 99990101000000");
        // Another sqlx application's migrations, without klef_meta: not a vault, left alone.
        sqlx::raw_sql(
            "DROP TABLE secrets, environment_grants, environments, project_keys, projects, \
             workspace_members, workspaces, accounts, klef_meta CASCADE",
        )
        .execute(pool)
        .await
        .expect("drop tables");
        assert_not_a_vault(Store::connect(url).await);
        let meta: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT to_regclass('{schema}.klef_meta')::text"
        )))
        .fetch_one(pool)
        .await
        .expect("look");
        assert_eq!(meta, None, "a foreign database must not be migrated");
        store.close().await;
    })
    .await;
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_vault_is_private() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().expect("tempdir");
    let parent = dir.path().join("data").join("klef");
    let path = parent.join("vault.db");
    let (vault, project) = seeded(Store::open_local(&path).await.expect("open"), &["dev"]).await;
    let env = project.environments[0].environment.id;
    vault
        .write_secrets(&env, &[put("A", None, "x")], None)
        .await
        .expect("write");

    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&parent), 0o700, "vault directory");
    assert_eq!(mode(&path), 0o600, "vault file");
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            assert_eq!(mode(&side), 0o600, "{suffix} file");
        }
    }
    vault.store().await.expect("store").close().await;
}

#[tokio::test]
async fn connect_rejects_unknown_urls_without_echoing_them() {
    let err = Store::connect("mysql://root:hunter2@localhost/db")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = Store::connect("sqlite::memory:").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Several processes opening one fresh database at once (servers starting side by side)

/// Eight stores connect to one fresh database at the same moment: every one of them must
/// succeed (each migrator waits for or follows the others), and the schema ends up whole.
async fn simultaneous_first_opens(target: Target) {
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move { target.open().await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.expect("every simultaneous open succeeds"));
    }
    let (vault, _) = seeded(stores[0].clone(), &["dev"]).await;
    assert!(vault.account().await.expect("read").is_some());
    for store in stores {
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_simultaneous_first_opens() {
    with_sqlite(simultaneous_first_opens).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_simultaneous_first_opens() {
    with_postgres(|target, _| simultaneous_first_opens(target)).await;
}

// ---------------------------------------------------------------------------------------------
// The CLI's blocking reads (docs/decisions/0012-blocking-vault-reads.md)

/// `LocalVault::open` on an up-to-date vault reads through a blocking connection; every read
/// must answer exactly as the pool does, errors included, and a write through it (which opens
/// the pool) must be seen by its next read.
#[tokio::test]
async fn blocking_reads_answer_as_the_pool_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vault.db");
    let (vault, project) = seeded(
        Store::open_local(&path).await.expect("open"),
        &["dev", "prod"],
    )
    .await;
    let dev = project.environments[0].environment.id;
    let prod = project.environments[1].environment.id;
    for (env, writes) in [
        (
            dev,
            vec![
                put("API_KEY", None, "a1"),
                put("DB_URL", None, "d1"),
                put("GONE", None, "g1"),
            ],
        ),
        (
            dev,
            vec![put("API_KEY", Some(1), "a2"), delete("GONE", Some(1))],
        ),
        (prod, vec![put("API_KEY", None, "p1")]),
    ] {
        vault
            .write_secrets(&env, &writes, None)
            .await
            .expect("write");
    }
    vault.store().await.expect("store").close().await;

    let pooled = LocalVault::new(Store::open_local(&path).await.expect("open"));
    let blocking = LocalVault::open(&path).await.expect("open for reading");
    assert!(
        blocking.reads_directly(),
        "an up-to-date vault is read directly"
    );
    let fresh = LocalVault::open(&dir.path().join("new.db"))
        .await
        .expect("create");
    assert!(
        !fresh.reads_directly(),
        "a new vault is created through the pool"
    );
    assert!(fresh.account().await.expect("read").is_none());
    assert!(!pooled.reads_directly());
    let ws = project.project.workspace_id;
    let unknown_env = EnvironmentId::random();
    let unknown_project = ProjectId::random();
    let unknown_ws = WorkspaceId::random();

    macro_rules! same {
        ($call:ident($($arg:expr),*)) => {{
            let want = pooled.$call($($arg),*).await;
            let got = blocking.$call($($arg),*).await;
            match (&want, &got) {
                (Ok(want), Ok(got)) => assert_eq!(got, want, "{}", stringify!($call)),
                (Err(want), Err(got)) => {
                    assert_eq!(got.to_string(), want.to_string(), "{}", stringify!($call))
                }
                _ => panic!("{}: pool {want:?}, blocking {got:?}", stringify!($call)),
            }
            want.is_ok()
        }};
    }
    assert!(same!(account()));
    assert!(same!(workspaces()));
    assert!(same!(projects(&ws)));
    assert!(!same!(projects(&unknown_ws)));
    assert!(same!(project(&project.project.id)));
    assert!(!same!(project(&unknown_project)));
    assert!(same!(environments(&project.project.id)));
    assert!(!same!(environments(&unknown_project)));
    for env in [dev, prod] {
        assert!(same!(environment_key(&env)));
        assert!(same!(secrets(&env)));
        for name in ["API_KEY", "DB_URL", "GONE", "NEVER_SET"] {
            assert!(same!(secret_history(&env, name)));
        }
    }
    assert!(!same!(environment_key(&unknown_env)));
    assert!(!same!(secrets(&unknown_env)));
    assert!(!same!(secret_history(&unknown_env, "API_KEY")));

    let live = blocking.secrets(&dev).await.expect("secrets");
    let names: Vec<_> = live.iter().map(|s| (s.name.as_str(), s.version)).collect();
    assert_eq!(
        names,
        [("API_KEY", 2), ("DB_URL", 1)],
        "latest live versions only"
    );
    assert_eq!(bytes(live[0].ciphertext.as_ref()), Some(&b"a2"[..]));

    // A write through the reading handle opens the pool; the next read sees it.
    blocking
        .write_secrets(&dev, &[put("DB_URL", Some(1), "d2")], None)
        .await
        .expect("write through the reading handle");
    let history = blocking
        .secret_history(&dev, "DB_URL")
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(bytes(history[1].ciphertext.as_ref()), Some(&b"d2"[..]));
    pooled.store().await.expect("store").close().await;
}

/// A command that only reads still folds a write-ahead log a killed writer left behind, through
/// its blocking connection, so the next command does not read the log back.
#[tokio::test]
async fn a_reading_command_folds_a_log_left_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vault.db");
    let (vault, project) = seeded(Store::open_local(&path).await.expect("open"), &["dev"]).await;
    vault.store().await.expect("store").close().await;
    let log = dir.path().join("vault.db-wal");
    let log_len = || std::fs::metadata(&log).map_or(0, |m| m.len());

    // A writer that never checkpoints and is never closed (as if killed): its log stays.
    let Store::Sqlite(writer) = Store::open_local(&path).await.expect("open") else {
        panic!("a local vault is SQLite");
    };
    let mut conn = writer.acquire().await.expect("connection");
    sqlx::query("PRAGMA wal_autocheckpoint = 0")
        .execute(&mut *conn)
        .await
        .expect("pragma");
    sqlx::query("INSERT INTO klef_meta (key, value) VALUES ('left_behind', 'by a test')")
        .execute(&mut *conn)
        .await
        .expect("write");
    std::mem::forget(conn);
    std::mem::forget(writer);
    assert!(log_len() > 0, "the writer left its log");

    let reader = LocalVault::open(&path).await.expect("open for reading");
    assert!(reader.reads_directly());
    let env = project.environments[0].environment.id;
    assert!(reader.secrets(&env).await.expect("read").is_empty());
    reader.release_at_exit().await;
    assert_eq!(log_len(), 0, "the reading command folded the log");
}

// ---------------------------------------------------------------------------------------------
// Large batches (a 10,000-line push is read and written a chunk of names per statement)

async fn large_batches(target: Target) {
    let (vault, project) = seeded(target.open().await, &["dev"]).await;
    let env = project.environments[0].environment.id;
    let n = 1_201; // more than two chunks of 500
    let names: Vec<String> = (0..n).map(|i| format!("KEY_{i:05}")).collect();

    // New names, plus one name written twice in the same batch: the second follows the first.
    let mut first: Vec<SecretWrite> = names.iter().map(|k| put(k, Some(0), "v1")).collect();
    first.push(put("KEY_00600", Some(1), "v1-again"));
    let written = vault
        .write_secrets(&env, &first, None)
        .await
        .expect("first batch");
    assert_eq!(written.len(), n + 1);
    assert_eq!(
        written[n].version, 2,
        "the repeated name's second write is version 2"
    );

    // A stale expected version far into a big batch rolls the whole batch back.
    let mut stale: Vec<SecretWrite> = names.iter().map(|k| put(k, Some(1), "v2")).collect();
    let err = vault
        .write_secrets(&env, &stale, None)
        .await
        .expect_err("KEY_00600 is at 2");
    assert!(
        matches!(&err, BackendError::Conflict { name, expected: 1, actual: 2, .. } if name == "KEY_00600"),
        "{err:?}"
    );
    let live = vault.secrets(&env).await.expect("secrets");
    assert_eq!(live.len(), n);
    assert!(
        live.iter()
            .all(|s| bytes(s.ciphertext.as_ref()) != Some(&b"v2"[..])),
        "nothing of the failed batch was written"
    );

    // Updates and deletes across chunks, with the right expected versions.
    stale[600] = put("KEY_00600", Some(2), "v3");
    stale[1_200] = delete("KEY_01200", Some(1));
    vault
        .write_secrets(&env, &stale, None)
        .await
        .expect("second batch");
    let live = vault.secrets(&env).await.expect("secrets");
    assert_eq!(live.len(), n - 1, "KEY_01200 was deleted");
    for s in &live {
        let (version, value) = if s.name == "KEY_00600" {
            (3, "v3")
        } else {
            (2, "v2")
        };
        assert_eq!(
            (s.version, bytes(s.ciphertext.as_ref())),
            (version, Some(value.as_bytes())),
            "{}",
            s.name
        );
    }
    // Re-creating the deleted name with expected 0.
    vault
        .write_secrets(&env, &[put("KEY_01200", Some(0), "back")], None)
        .await
        .expect("re-create");
    let history = vault
        .secret_history(&env, "KEY_01200")
        .await
        .expect("history");
    assert_eq!(
        history.iter().map(|s| s.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    vault.store().await.expect("store").close().await;
}

#[tokio::test]
async fn sqlite_large_batches() {
    with_sqlite(large_batches).await;
}

#[tokio::test]
async fn postgres_large_batches() {
    with_postgres(|target, _| large_batches(target)).await;
}

// ---------------------------------------------------------------------------------------------
// Personal overrides

/// One account's sealed record per environment: absent until written, compare-and-swap on the
/// revision (a stale writer gets a conflict and nothing changes), a client may start above the
/// stored revision but never at or below it, the local vault serves the owner's record with the
/// environment's state, and deleting the environment deletes it.
async fn personal_overrides(target: Target) {
    let (vault, project) = seeded(target.open().await, &["development", "staging"]).await;
    let store = vault.store().await.expect("store").clone();
    let owner = vault
        .account()
        .await
        .expect("account")
        .expect("an account")
        .id;
    let dev = project.environments[0].environment.id;
    let staging = project.environments[1].environment.id;
    let sealed = |n: u8| Blob(vec![1, n, n, n]);
    assert_eq!(store.personal(&dev, &owner).await.expect("read"), None);

    let first = store
        .put_personal(&dev, &owner, &sealed(1), 0, 1, None)
        .await
        .expect("first write");
    assert_eq!(first.revision, 1);
    let err = store
        .put_personal(&dev, &owner, &sealed(2), 0, 1, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                actual: 1,
                expected: 0,
                ..
            }
        ),
        "{err:?}"
    );
    for bad in [0, 1] {
        assert!(matches!(
            store
                .put_personal(&dev, &owner, &sealed(2), 1, bad, None)
                .await,
            Err(StoreError::Invalid { .. })
        ));
    }
    let jumped = store
        .put_personal(&dev, &owner, &sealed(3), 1, 7, None)
        .await
        .expect("a write above the stored revision");
    assert_eq!(jumped.revision, 7);
    let got = store
        .personal(&dev, &owner)
        .await
        .expect("read")
        .expect("a record");
    assert_eq!((got.revision, got.sealed), (7, sealed(3)));
    assert_eq!(store.personal(&staging, &owner).await.expect("read"), None);
    assert_eq!(
        store
            .personal(&dev, &AccountId::random())
            .await
            .expect("read"),
        None,
        "another account reads nothing of it"
    );

    let state = vault
        .environment_state(&dev, klef_core::model::ManifestsSince::Anchor)
        .await
        .expect("state");
    assert_eq!(state.personal.map(|p| p.revision), Some(7));
    let without = vault
        .environment_state(&dev, klef_core::model::ManifestsSince::Nothing)
        .await
        .expect("state");
    assert_eq!(without.personal, None);

    vault.delete_environment(&dev).await.expect("delete");
    assert_eq!(store.personal(&dev, &owner).await.expect("read"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_personal_overrides() {
    with_sqlite(personal_overrides).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_personal_overrides() {
    with_postgres(|target, _| personal_overrides(target)).await;
}
