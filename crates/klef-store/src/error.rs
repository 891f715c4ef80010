//! [`StoreError`]: everything the store can report, and its mapping onto
//! [`BackendError`]. No message ever contains a blob, a bound
//! value or a database password. A lower-level cause (I/O, sqlx, rusqlite) stays the error's
//! `source()`, through the mapping too; it is never flattened into the message.

use klef_core::backend::{BackendError, BackendErrorKind};

/// An error from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file or database exists but was not created by Klef (random bytes, another
    /// application's `SQLite` database or migrations). It is left untouched.
    #[error("{location} is not a Klef vault")]
    NotAVault {
        /// The path or redacted database location.
        location: String,
    },
    /// The vault was written by a newer Klef: its format version, or a migration applied to it,
    /// is unknown to this binary. It is left untouched.
    #[error("{location} was written by a newer version of Klef ({detail})")]
    NewerVersion {
        /// The path or redacted database location.
        location: String,
        /// What is newer, e.g. `format version 3, this build reads up to 1`.
        detail: String,
    },
    /// The named thing does not exist or is not visible to the account.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `project 0f8f…`.
        what: String,
    },
    /// Something with that name or id already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What collided, e.g. `project "api"`.
        what: String,
    },
    /// A write carried a stale expected version; the whole batch was rolled back.
    #[error("{name} was changed by {changed_by} (now version {actual}, you expected {expected})")]
    Conflict {
        /// The key name.
        name: String,
        /// The version the writer expected.
        expected: i64,
        /// The current version.
        actual: i64,
        /// Who wrote the current version (`someone else` when unknown).
        changed_by: String,
    },
    /// The request is invalid (a bad name, a project id that does not match, a changed key pair).
    #[error("{reason}")]
    Invalid {
        /// Why, as a lower-case phrase.
        reason: String,
    },
    /// A database URL this build cannot use.
    #[error("unsupported database URL: {reason}")]
    UnsupportedUrl {
        /// Why, e.g. `expected sqlite:// or postgres://`.
        reason: String,
    },
    /// A stored row holds a value this binary cannot read (a malformed id, an unknown KDF).
    #[error("corrupt vault data: {what}")]
    Corrupt {
        /// What could not be read (never its content when it is sealed data).
        what: String,
    },
    /// A file-system operation on the vault path failed.
    #[error("failed to {action} {path}")]
    Io {
        /// What was being done, e.g. `create directory`.
        action: &'static str,
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database server could not be reached.
    #[error("could not connect to the database")]
    Connect {
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed.
    #[error("failed to migrate the database")]
    Migrate {
        /// The cause.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// Any other database error. The message never contains bound values.
    #[error("database error")]
    Database {
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// A database error on the CLI's blocking read connection (`crate::blocking`). The message
    /// never contains bound values (`SQLite`'s messages do not quote them).
    #[cfg(feature = "sqlite")]
    #[error("database error")]
    Sqlite {
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for StoreError {
    fn from(source: rusqlite::Error) -> Self {
        StoreError::Sqlite { source }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(source: sqlx::Error) -> Self {
        if is_unavailable(&source) {
            StoreError::Connect { source }
        } else {
            StoreError::Database { source }
        }
    }
}

/// Whether an error means the database cannot be reached right now (a dropped connection, an
/// exhausted or closed pool, `PostgreSQL` shutting down or starting up), as opposed to a problem
/// with the request: callers answer "unavailable, retry" instead of "internal error".
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08 (connection exception) and 57P01–57P03 (admin shutdown, crash
        // shutdown, cannot connect now).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(source: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate { source }
    }
}

impl StoreError {
    /// Wraps a sqlx error, turning a unique-constraint violation into
    /// [`StoreError::AlreadyExists`] for `what`.
    pub(crate) fn exists_or(e: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::AlreadyExists { what: what() }
            }
            _ => StoreError::Database { source: e },
        }
    }
}

impl From<StoreError> for BackendError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotAVault { location } => BackendError::Incompatible(format!(
                "{location} is not a Klef vault; move it aside or point Klef at another path"
            )),
            StoreError::NewerVersion { location, detail } => BackendError::Incompatible(format!(
                "{location} was written by a newer version of Klef ({detail}); upgrade klef to open it"
            )),
            StoreError::NotFound { what } => BackendError::NotFound { what },
            StoreError::AlreadyExists { what } => BackendError::AlreadyExists { what },
            StoreError::Conflict {
                name,
                expected,
                actual,
                changed_by,
            } => BackendError::Conflict {
                name,
                expected,
                actual,
                changed_by,
            },
            StoreError::Invalid { reason } => BackendError::Invalid(reason),
            StoreError::Connect { source } => BackendError::caused(
                BackendErrorKind::Unreachable,
                "could not connect to the database",
                source,
            ),
            StoreError::Io {
                action,
                path,
                source,
            } => BackendError::caused(
                BackendErrorKind::Other,
                format!("failed to {action} {path}"),
                source,
            ),
            StoreError::Migrate { source } => BackendError::caused(
                BackendErrorKind::Other,
                "failed to migrate the database",
                source,
            ),
            StoreError::Database { source } => {
                BackendError::caused(BackendErrorKind::Other, "database error", source)
            }
            #[cfg(feature = "sqlite")]
            StoreError::Sqlite { source } => {
                BackendError::caused(BackendErrorKind::Other, "database error", source)
            }
            other @ (StoreError::UnsupportedUrl { .. } | StoreError::Corrupt { .. }) => {
                BackendError::Other(other.to_string())
            }
        }
    }
}

/// An error and its causes on one line, `outer: inner: innermost`, for logs (the server logs
/// a store failure this way; the CLI renders causes as `caused by:` lines instead).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_kept_not_flattened() {
        let e = StoreError::Io {
            action: "open",
            path: "/v/vault.db".into(),
            source: std::io::Error::other("permission denied"),
        };
        assert_eq!(
            Chain(&e).to_string(),
            "failed to open /v/vault.db: permission denied"
        );
        let b = BackendError::from(e);
        assert_eq!(b.to_string(), "failed to open /v/vault.db");
        assert_eq!(b.kind(), BackendErrorKind::Other);
        let cause = std::error::Error::source(&b).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("permission denied"));
        let b = BackendError::from(StoreError::Connect {
            source: sqlx::Error::PoolTimedOut,
        });
        assert_eq!(b.kind(), BackendErrorKind::Unreachable);
        assert!(std::error::Error::source(&b).is_some());
    }
}
