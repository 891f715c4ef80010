//! The end of a command's use of the local vault: the write-ahead log is folded into the vault
//! file when it holds anything, and the process exits without closing the connection.

#[cfg(feature = "sqlite")]
use std::path::Path;

#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnection, SqlitePool};

use super::open::Store;
#[cfg(feature = "sqlite")]
use crate::StoreError;

impl Store {
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
    pub async fn release_at_exit(self) {
        match &self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => {
                // Waits for the connection the last query used: it goes back to the pool in a
                // task of its own, and a connection dropped with the runtime would be closed.
                if let Ok(mut conn) = pool.acquire().await {
                    checkpoint_wal(pool, &mut conn).await;
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
/// anything (see [`Store::release_at_exit`]). Failures are logged, never returned: the log is
/// only an optimisation's concern at this point.
#[cfg(feature = "sqlite")]
async fn checkpoint_wal(pool: &SqlitePool, conn: &mut SqliteConnection) {
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
