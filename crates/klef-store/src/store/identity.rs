//! What a database says about itself, and what this build may do with it: use it as it is,
//! migrate it, or refuse it (not a Klef vault, or written by a newer Klef) without modifying it.

use std::collections::HashSet;
#[cfg(feature = "sqlite")]
use std::io::Read as _;
#[cfg(feature = "sqlite")]
use std::path::Path;

use sqlx::migrate::Migrator;
#[cfg(feature = "postgres")]
use sqlx::postgres::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqliteConnection;

use crate::StoreError;

/// higher was written by a newer Klef and is refused with [`StoreError::NewerVersion`].
pub const FORMAT_VERSION: i64 = 1;

/// `PRAGMA application_id` of every Klef `SQLite` vault: `0x4B4C4546`, "KLEF" in ASCII.
pub const SQLITE_APPLICATION_ID: i64 = 0x4B4C_4546;

#[cfg(feature = "sqlite")]
pub(crate) static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

#[cfg(feature = "postgres")]
pub(crate) static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

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
pub(crate) fn schema_state(applied: &[AppliedMigration], migrator: &Migrator) -> Schema {
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
pub(crate) fn check_vault(
    location: &str,
    facts: &VaultFacts,
    migrator: &Migrator,
) -> Result<(), StoreError> {
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
pub(crate) fn prepare_vault_file(path: &Path) -> Result<bool, StoreError> {
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
pub(crate) async fn inspect_sqlite(
    conn: &mut SqliteConnection,
    location: &str,
) -> Result<Schema, StoreError> {
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
pub(crate) fn schema_of(look: &SqliteIdentity, location: &str) -> Result<Schema, StoreError> {
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
pub(crate) fn is_not_a_database(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("26"))
}

/// What a `SQLite` file says about itself.
#[cfg(feature = "sqlite")]
pub(crate) struct SqliteIdentity {
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
async fn sqlite_facts(conn: &mut SqliteConnection) -> Result<SqliteIdentity, StoreError> {
    if let Some(look) = vault_identity(conn).await {
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
async fn facts_one_by_one(conn: &mut SqliteConnection) -> Result<SqliteIdentity, StoreError> {
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
    Ok(SqliteIdentity {
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
/// damaged file). Read by [`vault_identity`] and by the blocking reader (`crate::blocking`).
#[cfg(feature = "sqlite")]
pub(crate) const VAULT_IDENTITY: &str = "SELECT a.application_id, \
        (SELECT value FROM klef_meta WHERE key = 'format_version') AS format_version, \
        m.version, m.checksum, m.success \
     FROM pragma_application_id() a LEFT JOIN _sqlx_migrations m ON 1 = 1";

#[cfg(feature = "sqlite")]
row! {
    /// One row of [`VAULT_IDENTITY`].
    pub(crate) struct IdentityRow {
        application_id: i64,
        format_version: Option<String>,
        version: Option<i64>,
        checksum: Option<Vec<u8>>,
        success: Option<bool>,
    }
}

/// The look [`VAULT_IDENTITY`]'s rows give; `None` when there are none or the application id is
/// not Klef's.
#[cfg(feature = "sqlite")]
pub(crate) fn identity_from(rows: Vec<IdentityRow>) -> Option<SqliteIdentity> {
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
    Some(SqliteIdentity {
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

/// [`VAULT_IDENTITY`] on `conn`: `None` when the statement cannot run (see there, or an I/O
/// error) or the application id is not Klef's; [`sqlite_facts`] then looks fact by fact, and
/// reports any error itself.
#[cfg(feature = "sqlite")]
async fn vault_identity(conn: &mut SqliteConnection) -> Option<SqliteIdentity> {
    let rows: Vec<IdentityRow> = sqlx::query_as(VAULT_IDENTITY)
        .fetch_all(&mut *conn)
        .await
        .ok()?;
    identity_from(rows)
}

#[cfg(feature = "postgres")]
pub(crate) async fn postgres_facts(pool: &PgPool) -> Result<VaultFacts, StoreError> {
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
    use sqlx::sqlite::SqliteConnectOptions;

    use super::*;
    use crate::Store;

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
    async fn the_one_statement_look_agrees_with_the_fact_by_fact_look() {
        use sqlx::Connection as _;

        type Summary = (i64, bool, Option<String>, Vec<(i64, Vec<u8>, bool)>);
        fn summary(look: &SqliteIdentity) -> Summary {
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
        assert!(vault_identity(&mut conn).await.is_none(), "empty file");
        conn.close().await.expect("close");

        Store::open_local(&path)
            .await
            .expect("create")
            .close()
            .await;
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("connect");
        let fast = vault_identity(&mut conn).await.expect("a vault");
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
            vault_identity(&mut conn).await.is_none(),
            "foreign application id"
        );
        conn.close().await.expect("close");
    }
}
