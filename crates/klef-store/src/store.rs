//! [`Store`]: the pool over `SQLite` or `PostgreSQL`, how it is opened, and the checks that keep
//! Klef from touching a file or database that is not a Klef vault or is newer than this build.

use std::collections::HashSet;
use std::fmt;
use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::StoreError;

/// The vault format this build reads and writes. A vault whose `klef_meta.format_version` is
/// higher was written by a newer Klef and is refused with [`StoreError::NewerVersion`].
pub const FORMAT_VERSION: i64 = 1;

/// `PRAGMA application_id` of every Klef `SQLite` vault: `0x4B4C4546`, "KLEF" in ASCII.
pub const SQLITE_APPLICATION_ID: i64 = 0x4B4C_4546;

/// How long a `SQLite` connection waits for another writer (in any process) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for a pooled connection (and for the first one when connecting, so an
/// unreachable server is reported within this time).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// `SQLite` allows one writer at a time; a few connections serve concurrent readers (WAL).
const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// Per server process; several processes may share one `PostgreSQL`.
#[cfg(feature = "postgres")]
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

#[cfg(feature = "sqlite")]
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

#[cfg(feature = "postgres")]
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// A connection pool over one Klef database. Cheap to clone (the pool is shared).
///
/// The variants are public so a caller with its own needs (such as server-only tables added by
/// later migrations in this crate) can reach the pool, but every query in this crate runs the
/// same SQL on both.
#[derive(Clone)]
#[non_exhaustive]
pub enum Store {
    /// A `SQLite` file: the local vault or a single-node server.
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// A `PostgreSQL` database (the schema is the connection's `search_path`).
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
}

impl fmt::Debug for Store {
    // Written by hand: a pool's Debug would print its connect options, password included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.backend_name())
    }
}

/// Which SQL dialect a transaction body runs on, for the few statements that must differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "one variant is unused when a backend feature is off"
)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The statement for this dialect.
    pub(crate) fn pick(self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// Commits on `Ok`, rolls back on `Err` (used by `write_tx!`).
pub(crate) async fn finish<DB: sqlx::Database, T>(
    tx: sqlx::Transaction<'static, DB>,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %StoreError::from(rollback), "rollback failed");
            }
            Err(e)
        }
    }
}

impl Store {
    /// Opens the local vault at `path`, creating it when missing: the parent directory is
    /// created with mode 0700 and the file with mode 0600 before any data is written. The
    /// connection uses WAL, a busy timeout of 10 s and foreign keys, then the migrations run.
    ///
    /// A file that is not a Klef vault gives [`StoreError::NotAVault`], one written by a newer
    /// Klef [`StoreError::NewerVersion`]; neither is modified.
    #[cfg(feature = "sqlite")]
    pub async fn open_local(path: &Path) -> Result<Store, StoreError> {
        let location = path.display().to_string();
        let fresh = prepare_vault_file(path)?;
        if !fresh {
            inspect_sqlite(path, &location).await?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect { source })?;
        if let Err(first) = SQLITE_MIGRATOR.run(&pool).await {
            // Another process may have initialised the same fresh vault at this moment: look
            // again, and migrate once more if it is (now) a vault this build can open.
            tracing::debug!(error = %first, "migration failed, checking the vault again");
            inspect_sqlite(path, &location).await?;
            SQLITE_MIGRATOR.run(&pool).await?;
        }
        tracing::debug!(path = %location, "opened local vault");
        Ok(Store::Sqlite(pool))
    }

    /// Connects to `sqlite://PATH` (as [`Store::open_local`]) or `postgres://…` and runs the
    /// migrations after the same vault checks. `PostgreSQL` tables live in the first schema of the
    /// connection's `search_path` (set it with `?options=-c%20search_path%3DNAME`).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            return connect_sqlite_url(rest).await;
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return connect_postgres_url(url).await;
        }
        // The URL itself is not echoed: it may hold a password.
        Err(StoreError::UnsupportedUrl {
            reason: "expected a sqlite:// or postgres:// URL".into(),
        })
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => "postgres",
        }
    }

    /// Checks that the database answers (for health checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned. On `SQLite` this also
    /// checkpoints the write-ahead log into the vault file.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }
}

#[cfg(feature = "sqlite")]
async fn connect_sqlite_url(rest: &str) -> Result<Store, StoreError> {
    let path = rest.strip_prefix("//").unwrap_or(rest);
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Err(StoreError::UnsupportedUrl {
            reason: "a sqlite:// URL needs a file path (in-memory databases are not supported)"
                .into(),
        });
    }
    Store::open_local(Path::new(path)).await
}

#[cfg(not(feature = "sqlite"))]
async fn connect_sqlite_url(_rest: &str) -> Result<Store, StoreError> {
    Err(StoreError::UnsupportedUrl {
        reason: "sqlite:// URL but Klef was built without the `sqlite` feature".into(),
    })
}

#[cfg(feature = "postgres")]
async fn connect_postgres_url(url: &str) -> Result<Store, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(|_| StoreError::UnsupportedUrl {
        reason: "the postgres:// URL could not be parsed".into(),
    })?;
    let location = format!(
        "database {:?} on {}",
        options.get_database().unwrap_or("postgres"),
        options.get_host()
    );
    let pool = PgPoolOptions::new()
        .max_connections(POSTGRES_MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect { source })?;
    let facts = postgres_facts(&pool).await?;
    check_vault(&location, &facts, &POSTGRES_MIGRATOR)?;
    POSTGRES_MIGRATOR.run(&pool).await?;
    tracing::debug!(%location, "connected to postgres");
    Ok(Store::Postgres(pool))
}

#[cfg(not(feature = "postgres"))]
#[expect(
    clippy::unused_async,
    reason = "same signature as the postgres-enabled function"
)]
async fn connect_postgres_url(_url: &str) -> Result<Store, StoreError> {
    Err(StoreError::UnsupportedUrl {
        reason: "postgres:// URL but Klef was built without the `postgres` feature".into(),
    })
}

/// What a database says about itself, read without modifying it.
#[derive(Debug, Default)]
struct VaultFacts {
    /// Whether the `klef_meta` table exists.
    has_meta: bool,
    /// `klef_meta.format_version`, when present.
    format_version: Option<String>,
    /// The versions recorded in `_sqlx_migrations`.
    applied: Vec<i64>,
}

/// Decides whether a database may be migrated and used by this build.
fn check_vault(location: &str, facts: &VaultFacts, migrator: &Migrator) -> Result<(), StoreError> {
    if !facts.has_meta {
        // Empty, or only an empty migrations table left by an interrupted first start: fresh.
        // Migrations recorded without klef_meta belong to another application.
        return if facts.applied.is_empty() {
            Ok(())
        } else {
            Err(StoreError::NotAVault {
                location: location.to_owned(),
            })
        };
    }
    let Some(raw) = facts.format_version.as_deref() else {
        return Err(StoreError::Corrupt {
            what: "klef_meta has no format_version".into(),
        });
    };
    let format: i64 = raw.trim().parse().map_err(|_| StoreError::Corrupt {
        what: "klef_meta.format_version is not a number".into(),
    })?;
    if format > FORMAT_VERSION {
        return Err(StoreError::NewerVersion {
            location: location.to_owned(),
            detail: format!("format version {format}, this build reads up to {FORMAT_VERSION}"),
        });
    }
    let known: HashSet<i64> = migrator.iter().map(|m| m.version).collect();
    if let Some(unknown) = facts
        .applied
        .iter()
        .copied()
        .filter(|v| !known.contains(v))
        .max()
    {
        return Err(StoreError::NewerVersion {
            location: location.to_owned(),
            detail: format!("schema migration {unknown} is unknown to this build"),
        });
    }
    Ok(())
}

/// Creates the parent directory (0700) and an empty vault file (0600) when missing. Returns
/// whether the file is empty, i.e. a new vault to initialise.
#[cfg(feature = "sqlite")]
fn prepare_vault_file(path: &Path) -> Result<bool, StoreError> {
    let io = |action: &'static str, p: &Path| {
        let path = p.display().to_string();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(parent)
            .map_err(io("create directory", parent))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => {
            tracing::debug!(path = %path.display(), "created vault file");
            return Ok(true);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("create", path)(e)),
    }
    let meta = std::fs::metadata(path).map_err(io("read metadata of", path))?;
    if !meta.is_file() {
        return Err(StoreError::NotAVault {
            location: path.display().to_string(),
        });
    }
    Ok(meta.len() == 0)
}

/// Checks an existing, non-empty file without writing to it: the `SQLite` header, then (through
/// a read-only connection) the application id, `klef_meta` and the applied migrations.
#[cfg(feature = "sqlite")]
async fn inspect_sqlite(path: &Path, location: &str) -> Result<(), StoreError> {
    use sqlx::Connection as _;

    let not_a_vault = || StoreError::NotAVault {
        location: location.to_owned(),
    };
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path).map_err(|source| StoreError::Io {
        action: "open",
        path: location.to_owned(),
        source,
    })?;
    match file.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(not_a_vault()),
        Err(source) => {
            return Err(StoreError::Io {
                action: "read",
                path: location.to_owned(),
                source,
            });
        }
    }
    drop(file);
    if &header[..16] != b"SQLite format 3\0" {
        return Err(not_a_vault());
    }

    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(BUSY_TIMEOUT);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| {
            if is_not_a_database(&e) {
                not_a_vault()
            } else {
                StoreError::Connect { source: e }
            }
        })?;
    let look = sqlite_facts(&mut conn).await;
    if let Err(e) = conn.close().await {
        tracing::debug!(error = %StoreError::from(e), "closing the inspection connection failed");
    }
    let look = look.map_err(|e| match e {
        StoreError::Database { ref source } if is_not_a_database(source) => not_a_vault(),
        other => other,
    })?;
    if look.application_id != SQLITE_APPLICATION_ID {
        // A SQLite file with no tables (or only the empty migrations table of an interrupted
        // first start) may become a vault; anything else belongs to someone else.
        let empty = look.application_id == 0 && !look.other_tables && look.facts.applied.is_empty();
        return if empty { Ok(()) } else { Err(not_a_vault()) };
    }
    check_vault(location, &look.facts, &SQLITE_MIGRATOR)
}

/// `SQLite`'s "file is not a database" (`SQLITE_NOTADB`).
#[cfg(feature = "sqlite")]
fn is_not_a_database(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("26"))
}

/// What a `SQLite` file says about itself.
#[cfg(feature = "sqlite")]
struct SqliteLook {
    /// `PRAGMA application_id`.
    application_id: i64,
    /// Whether it has tables other than `_sqlx_migrations`.
    other_tables: bool,
    /// The Klef-specific facts (read only from files stamped with Klef's application id, and
    /// the migrations list when that is the only table).
    facts: VaultFacts,
}

#[cfg(feature = "sqlite")]
async fn sqlite_facts(conn: &mut SqliteConnection) -> Result<SqliteLook, StoreError> {
    let application_id: i64 = sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut *conn)
        .await?;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut *conn)
            .await?;
    let has = |name: &str| tables.iter().any(|t| t == name);
    let other_tables = tables.iter().any(|t| t != "_sqlx_migrations");
    let ours = application_id == SQLITE_APPLICATION_ID;
    let mut facts = VaultFacts {
        has_meta: ours && has("klef_meta"),
        ..VaultFacts::default()
    };
    if facts.has_meta {
        facts.format_version =
            sqlx::query_scalar("SELECT value FROM klef_meta WHERE key = 'format_version'")
                .fetch_optional(&mut *conn)
                .await?;
    }
    if has("_sqlx_migrations") && (ours || !other_tables) {
        facts.applied = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await?;
    }
    Ok(SqliteLook {
        application_id,
        other_tables,
        facts,
    })
}

#[cfg(feature = "postgres")]
async fn postgres_facts(pool: &PgPool) -> Result<VaultFacts, StoreError> {
    let (has_meta, has_migrations): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('klef_meta') IS NOT NULL, to_regclass('_sqlx_migrations') IS NOT NULL",
    )
    .fetch_one(pool)
    .await?;
    let mut facts = VaultFacts {
        has_meta,
        ..VaultFacts::default()
    };
    if has_meta {
        facts.format_version =
            sqlx::query_scalar("SELECT value FROM klef_meta WHERE key = 'format_version'")
                .fetch_optional(pool)
                .await?;
    }
    if has_migrations {
        facts.applied = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(pool)
            .await?;
    }
    Ok(facts)
}
