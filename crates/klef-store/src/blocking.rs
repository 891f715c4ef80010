//! [`Reader`]: the local vault's read statements on a plain, blocking `SQLite` connection, for
//! the CLI's one-shot commands (docs/decisions/0012-blocking-vault-reads.md).
//!
//! sqlx runs each `SQLite` connection on a worker thread of its own and hands every statement
//! and every row to it through channels; for a command that opens the vault, reads a handful
//! of rows and exits, that set-up and the hand-offs were most of `klef get`'s time. The reader
//! runs the very same statements ([`crate::reads`]) on the calling thread through rusqlite,
//! which links the same `libsqlite3-sys` (one copy of `SQLite` in the process, so its
//! per-file locks are shared with sqlx's connection when a command also writes).
//!
//! It opens only a vault this build can use as it is (a Klef vault in WAL mode whose applied
//! migrations are exactly this build's); anything else (a new, foreign, older or newer file)
//! goes through [`crate::Store::open_local`], which reports, switches or migrates it.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;
use crate::store;

/// A row type the reader can build from a result row (by column name). Declared with
/// `row!` (lib.rs), which derives `sqlx::FromRow` from the same field list.
pub(crate) trait FromRow: Sized {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

/// A blocking, read-only use of an up-to-date local vault; see the module documentation.
#[derive(Debug)]
pub(crate) struct Reader {
    conn: Mutex<Connection>,
}

impl Reader {
    /// Opens the vault at `path` for reading when it is a Klef vault this build can use as it
    /// is; `None` when it is not (missing, empty, not in WAL mode, foreign, damaged, to be
    /// migrated or newer) or cannot be opened here, so the caller opens it through
    /// [`crate::Store::open_local`], which says what is wrong or fixes what it may.
    pub(crate) fn open(path: &Path) -> Option<Self> {
        let location = path.display().to_string();
        // A missing or empty file is a vault to create; not in WAL mode, one to switch.
        if !store::check_sqlite_header(path, &location).ok()? {
            return None;
        }
        // Never creates the file; read-write so the log can be folded (`checkpoint_wal`).
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).ok()?;
        conn.busy_timeout(store::BUSY_TIMEOUT).ok()?;
        let look = store::identity_from(all(&conn, store::VAULT_IDENTITY, &[]).ok()?)?;
        if !matches!(
            store::schema_of(&look, &location),
            Ok(store::Schema::Current)
        ) {
            return None;
        }
        Some(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A connection is not left half-used by a panic: each call runs whole statements.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every row `sql` returns with `binds[N - 1]` bound to each `$N`.
    pub(crate) fn all<R: FromRow>(&self, sql: &str, binds: &[&str]) -> Result<Vec<R>, StoreError> {
        Ok(all(&self.conn(), sql, binds)?)
    }

    /// The first row `sql` returns, if any.
    pub(crate) fn optional<R: FromRow>(
        &self,
        sql: &str,
        binds: &[&str],
    ) -> Result<Option<R>, StoreError> {
        let conn = self.conn();
        let mut stmt = prepare(&conn, sql, binds)?;
        let mut rows = stmt.raw_query();
        rows.next()?
            .map(R::from_row)
            .transpose()
            .map_err(Into::into)
    }

    /// [`crate::Store::release_at_exit`] for a command that only read: folds a write-ahead log that
    /// a writer killed before it left (when the log holds anything), then forgets the
    /// connection so the process exits without closing it.
    pub(crate) fn release_at_exit(self) {
        let conn = self
            .conn
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if store::log_holds_anything(conn.path().map(Path::new)) {
            let folded = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            });
            store::log_folded(folded.map_err(StoreError::from));
        }
        std::mem::forget(conn);
    }
}

fn all<R: FromRow>(conn: &Connection, sql: &str, binds: &[&str]) -> rusqlite::Result<Vec<R>> {
    let mut stmt = prepare(conn, sql, binds)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(R::from_row(row)?);
    }
    Ok(out)
}

/// Prepares `sql` and binds `binds[N - 1]` to each `$N`, as sqlx does. By name, not position:
/// `SQLite` numbers parameters in order of first appearance, and a statement may use `$2`
/// before `$1`.
fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    binds: &[&str],
) -> rusqlite::Result<rusqlite::Statement<'c>> {
    let mut stmt = conn.prepare(sql)?;
    for index in 1..=stmt.parameter_count() {
        let value = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| binds.get(n.checked_sub(1)?))
            .ok_or(rusqlite::Error::InvalidParameterCount(
                stmt.parameter_count(),
                binds.len(),
            ))?;
        stmt.raw_bind_parameter(index, *value)?;
    }
    Ok(stmt)
}
