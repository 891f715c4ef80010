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
    SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::StoreError;

/// The vault format this build reads and writes. A vault whose `klef_meta.format_version` is
/// higher was written by a newer Klef and is refused with [`StoreError::NewerVersion`].
pub const FORMAT_VERSION: i64 = 1;

/// `PRAGMA application_id` of every Klef `SQLite` vault: `0x4B4C4546`, "KLEF" in ASCII.
pub const SQLITE_APPLICATION_ID: i64 = 0x4B4C_4546;

/// How long a `SQLite` connection waits for another writer (in any process) before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for a pooled connection (and for the first one when connecting, so an
/// unreachable server is reported within this time).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// `SQLite` allows one writer at a time; a few connections serve a server's concurrent readers
/// (WAL).
const SQLITE_MAX_CONNECTIONS: u32 = 4;

/// The local vault runs one query at a time (one CLI command), so one connection serves it and
/// the file is opened once per command.
const LOCAL_MAX_CONNECTIONS: u32 = 1;

/// Per server process; several processes may share one `PostgreSQL`.
#[cfg(feature = "postgres")]
const POSTGRES_MAX_CONNECTIONS: u32 = 10;

#[cfg(feature = "sqlite")]
pub(crate) static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

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
    /// command ([`Store::leave_open`]), a checkpoint that syncs, so a command that exited
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

    /// Ends a command's use of the local vault just before the process exits: folds the
    /// write-ahead log into the vault file when the log holds anything, then lets the process
    /// exit without closing the connection (the local vault's pool holds one). Meant for the
    /// end of every command, whether it read or wrote.
    ///
    /// Folding (`wal_checkpoint(TRUNCATE)`) matters for every later command: the first
    /// connection of a process rebuilds the log's shared-memory index by reading the whole log,
    /// so an unfolded log (a 10,000-secret `push` leaves ≈ 1.7 MB) made every later `klef get`
    /// read it again. Folded, the log is empty and the vault file alone is the whole database.
    /// A command that only read finds the log empty and pays one `stat`; one that finds a log
    /// left by a writer that was killed folds it. When another process is writing, the fold
    /// waits for it like any writer would (the busy timeout), and a fold that cannot finish is
    /// only logged: the data is committed either way.
    ///
    /// Not closing: closing the last connection would delete the log and its index, which the
    /// next command then creates and sizes again; a process that exits without closing leaves
    /// the database as a killed reader would, which `SQLite` is built for.
    pub async fn leave_open(self) {
        match &self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => {
                // Waits for the connection the last query used: it goes back to the pool in a
                // task of its own, and a connection dropped with the runtime would be closed.
                if let Ok(mut conn) = pool.acquire().await {
                    fold_log(pool, &mut conn).await;
                    std::mem::forget(conn);
                }
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => {
                if let Ok(conn) = pool.acquire().await {
                    std::mem::forget(conn);
                }
            }
        }
        std::mem::forget(self);
    }
}

/// Folds the `SQLite` write-ahead log into the database file and empties it, when it holds
/// anything (see [`Store::leave_open`]). Failures are logged, never returned: the log is
/// only an optimisation's concern at this point.
#[cfg(feature = "sqlite")]
async fn fold_log(pool: &SqlitePool, conn: &mut SqliteConnection) {
    if !log_holds_anything(Some(pool.connect_options().get_filename())) {
        return;
    }
    let folded: Result<(i64, i64, i64), sqlx::Error> =
        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await;
    log_folded(
        folded
            .map(|(busy, pages, _)| (busy, pages))
            .map_err(StoreError::from),
    );
}

/// Whether the write-ahead log of the vault at `path` (`<path>-wal`) holds anything.
#[cfg(feature = "sqlite")]
pub(crate) fn log_holds_anything(path: Option<&Path>) -> bool {
    let Some(path) = path else { return false };
    let mut log = path.as_os_str().to_owned();
    log.push("-wal");
    std::fs::metadata(&log).is_ok_and(|meta| meta.len() > 0)
}

/// Logs how `PRAGMA wal_checkpoint(TRUNCATE)` went: its busy flag and the log's size in pages.
#[cfg(feature = "sqlite")]
pub(crate) fn log_folded(folded: Result<(i64, i64), StoreError>) {
    match folded {
        Ok((0, pages)) => tracing::debug!(pages, "folded the write-ahead log"),
        Ok((_, pages)) => tracing::debug!(
            pages,
            "the write-ahead log was not folded: another process is using the vault"
        ),
        Err(e) => tracing::debug!(error = %e, "the write-ahead log was not folded"),
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

/// What a database says about itself, read without modifying it.
#[derive(Debug, Default)]
pub(crate) struct VaultFacts {
    /// Whether the `klef_meta` table exists.
    pub(crate) has_meta: bool,
    /// `klef_meta.format_version`, when present.
    pub(crate) format_version: Option<String>,
    /// The versions recorded in `_sqlx_migrations`.
    pub(crate) applied: Vec<i64>,
}

/// Whether a database that passed [`check_vault`] still needs the migrator.
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schema {
    /// Every migration of this build, and only those, is applied with its exact checksum.
    Current,
    /// Empty, behind, or in a state only the migrator can judge (a failed migration, a
    /// changed checksum): run it.
    Migrate,
}

/// One row of `_sqlx_migrations`.
#[cfg(feature = "sqlite")]
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AppliedMigration {
    pub(crate) version: i64,
    pub(crate) checksum: Vec<u8>,
    pub(crate) success: bool,
}

/// Whether `applied` is exactly the up-migrations of `migrator`, all successful, with the same
/// checksums: then running the migrator would change nothing and is skipped.
#[cfg(feature = "sqlite")]
fn schema_state(applied: &[AppliedMigration], migrator: &Migrator) -> Schema {
    let mut embedded: Vec<(i64, &[u8])> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, &*m.checksum))
        .collect();
    embedded.sort_unstable();
    let mut recorded: Vec<(i64, &[u8])> = applied
        .iter()
        .filter(|m| m.success)
        .map(|m| (m.version, m.checksum.as_slice()))
        .collect();
    recorded.sort_unstable();
    if recorded.len() == applied.len() && recorded == embedded {
        Schema::Current
    } else {
        Schema::Migrate
    }
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

/// Checks the first 100 bytes of an existing, non-empty file for the `SQLite` header, so a file
/// that is not a database at all is refused without `SQLite` ever opening it. Returns whether
/// the file is in WAL mode (header bytes 18 and 19, the read and write versions, are 2).
#[cfg(feature = "sqlite")]
pub(crate) fn check_sqlite_header(path: &Path, location: &str) -> Result<bool, StoreError> {
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
    if &header[..16] != b"SQLite format 3\0" {
        return Err(not_a_vault());
    }
    Ok(header[18] == 2 && header[19] == 2)
}

/// Reads what the database on `conn` says about itself (without writing to it) and decides
/// whether this build may use it: the application id, `klef_meta` and the applied migrations.
#[cfg(feature = "sqlite")]
async fn inspect_sqlite(conn: &mut SqliteConnection, location: &str) -> Result<Schema, StoreError> {
    let not_a_vault = || StoreError::NotAVault {
        location: location.to_owned(),
    };
    let look = sqlite_facts(conn).await.map_err(|e| match e {
        StoreError::Database { ref source } if is_not_a_database(source) => not_a_vault(),
        other => other,
    })?;
    schema_of(&look, location)
}

/// What this build may do with a `SQLite` file that says `look` about itself: use it as it is,
/// migrate it, or refuse it. Shared by [`inspect_sqlite`] and the blocking reader's open.
#[cfg(feature = "sqlite")]
pub(crate) fn schema_of(look: &SqliteLook, location: &str) -> Result<Schema, StoreError> {
    if look.application_id != SQLITE_APPLICATION_ID {
        // A SQLite file with no tables (or only the empty migrations table of an interrupted
        // first start) may become a vault; anything else belongs to someone else.
        let empty = look.application_id == 0 && !look.other_tables && look.facts.applied.is_empty();
        return if empty {
            Ok(Schema::Migrate)
        } else {
            Err(StoreError::NotAVault {
                location: location.to_owned(),
            })
        };
    }
    check_vault(location, &look.facts, &SQLITE_MIGRATOR)?;
    Ok(schema_state(&look.migrations, &SQLITE_MIGRATOR))
}

/// `SQLite`'s "file is not a database" (`SQLITE_NOTADB`).
#[cfg(feature = "sqlite")]
fn is_not_a_database(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("26"))
}

/// What a `SQLite` file says about itself.
#[cfg(feature = "sqlite")]
pub(crate) struct SqliteLook {
    /// `PRAGMA application_id`.
    pub(crate) application_id: i64,
    /// Whether it has tables other than `_sqlx_migrations`.
    pub(crate) other_tables: bool,
    /// The Klef-specific facts (read only from files stamped with Klef's application id, and
    /// the migrations list when that is the only table).
    pub(crate) facts: VaultFacts,
    /// The rows of `_sqlx_migrations` with their checksums (files stamped with Klef's
    /// application id only).
    pub(crate) migrations: Vec<AppliedMigration>,
}

#[cfg(feature = "sqlite")]
async fn sqlite_facts(conn: &mut SqliteConnection) -> Result<SqliteLook, StoreError> {
    if let Some(look) = vault_look(conn).await {
        return Ok(look);
    }
    // One read transaction, so every statement sees the same snapshot: another process may be
    // creating this vault right now, and the application id read before its first migration
    // committed with the migration list read after it (id 0, migration 1 applied) looked like
    // another application's database (store test `sqlite_simultaneous_first_opens`).
    let mut snapshot = sqlx::Connection::begin(&mut *conn).await?;
    let look = facts_one_by_one(&mut snapshot).await;
    // Read only: nothing to commit.
    snapshot.rollback().await?;
    look
}

/// [`sqlite_facts`] for any file: one statement per fact, each asked only when the previous
/// ones say the table exists.
#[cfg(feature = "sqlite")]
async fn facts_one_by_one(conn: &mut SqliteConnection) -> Result<SqliteLook, StoreError> {
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
    let mut migrations = Vec::new();
    if has("_sqlx_migrations") && ours {
        migrations = sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await?;
        facts.applied = migrations
            .iter()
            .map(|m: &AppliedMigration| m.version)
            .collect();
    } else if has("_sqlx_migrations") && !other_tables {
        facts.applied = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await?;
    }
    Ok(SqliteLook {
        application_id,
        other_tables,
        facts,
        migrations,
    })
}

/// The facts of a file that already is a Klef vault, in one statement instead of four (every
/// command opens the vault, and each statement is a round trip to sqlx's `SQLite` thread): the
/// application id, the format version and the applied migrations, one row per migration.
/// It fails on a file without a `klef_meta` or `_sqlx_migrations` table (a new, foreign or
/// damaged file). Read by [`vault_look`] and by the blocking reader (`crate::blocking`).
#[cfg(feature = "sqlite")]
pub(crate) const VAULT_LOOK: &str = "SELECT a.application_id, \
        (SELECT value FROM klef_meta WHERE key = 'format_version') AS format_version, \
        m.version, m.checksum, m.success \
     FROM pragma_application_id() a LEFT JOIN _sqlx_migrations m ON 1 = 1";

#[cfg(feature = "sqlite")]
row! {
    /// One row of [`VAULT_LOOK`].
    pub(crate) struct LookRow {
        application_id: i64,
        format_version: Option<String>,
        version: Option<i64>,
        checksum: Option<Vec<u8>>,
        success: Option<bool>,
    }
}

/// The look [`VAULT_LOOK`]'s rows give; `None` when there are none or the application id is
/// not Klef's.
#[cfg(feature = "sqlite")]
pub(crate) fn look_from(rows: Vec<LookRow>) -> Option<SqliteLook> {
    let application_id = rows.first()?.application_id;
    if application_id != SQLITE_APPLICATION_ID {
        return None;
    }
    let format_version = rows.first()?.format_version.clone();
    let migrations: Vec<AppliedMigration> = rows
        .into_iter()
        .filter_map(|r| {
            Some(AppliedMigration {
                version: r.version?,
                checksum: r.checksum?,
                success: r.success?,
            })
        })
        .collect();
    Some(SqliteLook {
        application_id,
        // `klef_meta` exists: the statement read it.
        other_tables: true,
        facts: VaultFacts {
            has_meta: true,
            format_version,
            applied: migrations.iter().map(|m| m.version).collect(),
        },
        migrations,
    })
}

/// [`VAULT_LOOK`] on `conn`: `None` when the statement cannot run (see there, or an I/O
/// error) or the application id is not Klef's; [`sqlite_facts`] then looks fact by fact, and
/// reports any error itself.
#[cfg(feature = "sqlite")]
async fn vault_look(conn: &mut SqliteConnection) -> Option<SqliteLook> {
    let rows: Vec<LookRow> = sqlx::query_as(VAULT_LOOK)
        .fetch_all(&mut *conn)
        .await
        .ok()?;
    look_from(rows)
}

#[cfg(feature = "postgres")]
async fn postgres_facts(pool: &PgPool) -> Result<VaultFacts, StoreError> {
    // Each statement sees what was committed when it ran, and another server may be creating
    // this database right now. So the migrations are read before `klef_meta`: migration 1
    // creates `klef_meta` and records itself in one transaction, so a migration seen here means
    // `klef_meta` is seen below. In the other order, `klef_meta` missing (read before that
    // commit) with migration 1 applied (read after it) looked like another application's
    // database (`NotAVault`), and a server starting beside another one refused to start.
    let has_migrations: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await?;
    let mut facts = VaultFacts::default();
    if has_migrations {
        facts.applied = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(pool)
            .await?;
    }
    facts.has_meta = sqlx::query_scalar("SELECT to_regclass('klef_meta') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if facts.has_meta {
        facts.format_version =
            sqlx::query_scalar("SELECT value FROM klef_meta WHERE key = 'format_version'")
                .fetch_optional(pool)
                .await?;
    }
    Ok(facts)
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    /// The rows a migrator records after applying every migration of `migrator`.
    fn applied_by(migrator: &Migrator) -> Vec<AppliedMigration> {
        migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| AppliedMigration {
                version: m.version,
                checksum: m.checksum.to_vec(),
                success: true,
            })
            .collect()
    }

    #[test]
    fn an_up_to_date_vault_skips_the_migrator() {
        let mut applied = applied_by(&SQLITE_MIGRATOR);
        assert!(applied.len() >= 2, "the test needs several migrations");
        assert_eq!(schema_state(&applied, &SQLITE_MIGRATOR), Schema::Current);
        applied.reverse();
        assert_eq!(
            schema_state(&applied, &SQLITE_MIGRATOR),
            Schema::Current,
            "row order does not matter"
        );
    }

    #[test]
    fn anything_but_an_exact_match_runs_the_migrator() {
        let all = applied_by(&SQLITE_MIGRATOR);

        assert_eq!(
            schema_state(&[], &SQLITE_MIGRATOR),
            Schema::Migrate,
            "empty"
        );

        let behind = &all[..all.len() - 1];
        assert_eq!(schema_state(behind, &SQLITE_MIGRATOR), Schema::Migrate);

        let mut failed = applied_by(&SQLITE_MIGRATOR);
        if let Some(last) = failed.last_mut() {
            last.success = false;
        }
        assert_eq!(schema_state(&failed, &SQLITE_MIGRATOR), Schema::Migrate);

        let mut changed = applied_by(&SQLITE_MIGRATOR);
        changed[0].checksum[0] ^= 1;
        assert_eq!(schema_state(&changed, &SQLITE_MIGRATOR), Schema::Migrate);

        let mut duplicated = applied_by(&SQLITE_MIGRATOR);
        let extra = AppliedMigration {
            version: duplicated[0].version,
            checksum: duplicated[0].checksum.clone(),
            success: true,
        };
        duplicated.push(extra);
        assert_eq!(schema_state(&duplicated, &SQLITE_MIGRATOR), Schema::Migrate);
    }

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
    async fn the_one_statement_look_agrees_with_the_fact_by_fact_look() {
        use sqlx::Connection as _;

        type Summary = (i64, bool, Option<String>, Vec<(i64, Vec<u8>, bool)>);
        fn summary(look: &SqliteLook) -> Summary {
            let mut migrations: Vec<_> = look
                .migrations
                .iter()
                .map(|m| (m.version, m.checksum.clone(), m.success))
                .collect();
            migrations.sort();
            (
                look.application_id,
                look.facts.has_meta,
                look.facts.format_version.clone(),
                migrations,
            )
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vault.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);

        // A new, empty file: not a vault yet, so only the fact-by-fact look answers.
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("connect");
        assert!(vault_look(&mut conn).await.is_none(), "empty file");
        conn.close().await.expect("close");

        Store::open_local(&path)
            .await
            .expect("create")
            .close()
            .await;
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("connect");
        let fast = vault_look(&mut conn).await.expect("a vault");
        let slow = facts_one_by_one(&mut conn).await.expect("facts");
        assert_eq!(summary(&fast), summary(&slow));
        assert_eq!(fast.facts.applied.len(), applied_by(&SQLITE_MIGRATOR).len());
        assert_eq!(
            schema_state(&fast.migrations, &SQLITE_MIGRATOR),
            Schema::Current
        );

        // Someone else's file with the same tables: not ours, so the fast path declines.
        sqlx::query("PRAGMA application_id = 7")
            .execute(&mut conn)
            .await
            .expect("application_id");
        assert!(
            vault_look(&mut conn).await.is_none(),
            "foreign application id"
        );
        conn.close().await.expect("close");
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
