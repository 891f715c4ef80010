//! [`Store`]: the pool over `SQLite` or `PostgreSQL`, and how it is opened: a file or database
//! is checked ([`super::identity`]) before anything is written to it, then migrated.

use std::fmt;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::time::Duration;

#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

#[cfg(feature = "postgres")]
use super::identity::{POSTGRES_MIGRATOR, check_vault, postgres_facts};
#[cfg(feature = "sqlite")]
use super::identity::{
    SQLITE_MIGRATOR, Schema, check_sqlite_header, inspect_sqlite, is_not_a_database,
    prepare_vault_file,
};
use crate::StoreError;

/// How long a `SQLite` connection waits for another writer (in any process) before giving up.
#[cfg(feature = "sqlite")]
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for a pooled connection (and for the first one when connecting, so an
/// unreachable server is reported within this time).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// `SQLite` allows one writer at a time; a few connections serve a server's concurrent readers
/// (WAL).
#[cfg(feature = "sqlite")]
const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// The local vault runs one query at a time (one CLI command), so one connection serves it and
/// the file is opened once per command.
#[cfg(feature = "sqlite")]
const LOCAL_MAX_CONNECTIONS: u32 = 1;

/// Per server process; several processes may share one `PostgreSQL`.
#[cfg(feature = "postgres")]
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

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

impl Store {
    /// Opens the local vault at `path`, creating it when missing: the parent directory is
    /// created with mode 0700 and the file with mode 0600 before any data is written.
    ///
    /// The local vault serves one command at a time, so the pool holds a single connection: the
    /// vault checks, the migrations (only when the file's applied migrations differ from this
    /// build's) and every query run on it, and the file is opened once per command. The
    /// connection uses WAL with `synchronous = NORMAL`, a busy timeout of 10 s and foreign keys.
    /// WAL with `NORMAL` is `SQLite`'s recommended setting: a committed transaction survives the
    /// process being killed at any point, and the file is never corrupted; after a power loss or
    /// an OS crash the last transactions committed before it may be rolled back (the WAL is
    /// synced at checkpoints, not at every commit). The CLI folds the log at the end of every
    /// command ([`Store::release_at_exit`]), a checkpoint that syncs, so a command that exited
    /// normally has its writes on disk (unless another process held the vault at that moment,
    /// in which case the next command's fold does it).
    ///
    /// A file that is not a Klef vault gives [`StoreError::NotAVault`], one written by a newer
    /// Klef [`StoreError::NewerVersion`]; neither is modified.
    #[cfg(feature = "sqlite")]
    pub async fn open_local(path: &Path) -> Result<Store, StoreError> {
        open_sqlite(path, LOCAL_MAX_CONNECTIONS).await
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
    open_sqlite(Path::new(path), SQLITE_MAX_CONNECTIONS).await
}

/// Opens (creating it when missing) the `SQLite` vault at `path` with a pool of at most
/// `max_connections`; see [`Store::open_local`].
///
/// The first connection checks the file before anything is written to it: the connect options
/// hold only per-connection settings, and `journal_mode = WAL`, the one setting stored in the
/// file, is set on that connection once the file is known to be a Klef vault (or empty).
#[cfg(feature = "sqlite")]
async fn open_sqlite(path: &Path, max_connections: u32) -> Result<Store, StoreError> {
    let location = path.display().to_string();
    let wal = if prepare_vault_file(path)? {
        false
    } else {
        check_sqlite_header(path, &location)?
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A connection to a local file does not go stale; a ping before each query would only
        // add a round trip to the connection's thread.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|e| {
            if is_not_a_database(&e) {
                StoreError::NotAVault {
                    location: location.clone(),
                }
            } else {
                StoreError::Connect { source: e }
            }
        })?;
    match prepare_sqlite(&pool, &location, wal).await {
        Ok(()) => {
            tracing::debug!(path = %location, "opened the sqlite vault");
            Ok(Store::Sqlite(pool))
        }
        Err(e) => {
            pool.close().await;
            Err(e)
        }
    }
}

/// Checks the file on the pool's first connection, switches it to WAL unless its header says
/// it is already (`wal`), and migrates it when its applied migrations are not exactly this
/// build's.
#[cfg(feature = "sqlite")]
async fn prepare_sqlite(pool: &SqlitePool, location: &str, wal: bool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    let schema = inspect_sqlite(&mut conn, location).await?;
    if !wal {
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut *conn)
            .await?;
    }
    // Back to the pool: the migrator takes it (the local vault's pool has only this one).
    drop(conn);
    if schema == Schema::Current {
        return Ok(());
    }
    // Another process may be migrating the same file at this moment (two servers starting on
    // one fresh database, two commands opening a vault after an upgrade): each migration is
    // one transaction, so a failure here means the other process applied that step first.
    // Look again and carry on from where it got; every retry follows someone's progress, so
    // one attempt per migration is enough.
    let mut attempts = SQLITE_MIGRATOR.iter().count() + 1;
    loop {
        let Err(failed) = SQLITE_MIGRATOR.run(pool).await else {
            return Ok(());
        };
        attempts -= 1;
        let mut conn = pool.acquire().await?;
        let schema = inspect_sqlite(&mut conn, location).await?;
        drop(conn);
        if schema == Schema::Current {
            return Ok(());
        }
        if attempts == 0 || schema != Schema::Migrate {
            return Err(failed.into());
        }
        tracing::debug!(error = %failed, "migration failed, checking the vault again");
    }
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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::io::Read as _;

    use sqlx::sqlite::SqliteConnection;

    use super::*;
    use crate::store::identity::{AppliedMigration, schema_state};

    #[tokio::test]
    async fn the_local_vault_is_one_wal_connection_with_normal_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vault.db");
        for _ in 0..2 {
            // Created, then reopened without the migrator.
            let store = Store::open_local(&path).await.expect("open");
            let Store::Sqlite(pool) = &store else {
                panic!("a sqlite store")
            };
            assert_eq!(pool.options().get_max_connections(), 1);
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .expect("journal_mode");
            assert_eq!(mode, "wal");
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .expect("synchronous");
            assert_eq!(sync, 1, "NORMAL");
            let applied: Vec<AppliedMigration> =
                sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
                    .fetch_all(pool)
                    .await
                    .expect("migrations");
            assert_eq!(schema_state(&applied, &SQLITE_MIGRATOR), Schema::Current);
            assert_eq!(pool.size(), 1, "every query ran on the one connection");
            store.close().await;
        }
    }

    #[tokio::test]
    async fn a_vault_out_of_wal_mode_is_switched_back() {
        use sqlx::Connection as _;

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vault.db");
        Store::open_local(&path)
            .await
            .expect("create")
            .close()
            .await;
        let options = SqliteConnectOptions::new().filename(&path);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("connect");
        sqlx::query("PRAGMA journal_mode = DELETE")
            .execute(&mut conn)
            .await
            .expect("leave WAL");
        conn.close().await.expect("close");
        let mut header = [0u8; 100];
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_exact(&mut header))
            .expect("header");
        assert_eq!((header[18], header[19]), (1, 1), "rollback journal");

        let store = Store::open_local(&path).await.expect("reopen");
        let Store::Sqlite(pool) = &store else {
            panic!("a sqlite store")
        };
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        store.close().await;
    }
}
