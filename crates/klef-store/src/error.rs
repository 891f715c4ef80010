//! [`StoreError`]: everything the store can report, and its mapping onto
//! [`BackendError`]. No message ever contains a blob, a bound
//! value or a database password.

use klef_core::backend::BackendError;

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
    #[error("could not connect to the database: {}", safe_sqlx_message(.source))]
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
    #[error("database error: {}", safe_sqlx_message(.source))]
    Database {
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// A database error on the CLI's blocking read connection (`crate::blocking`). The message
    /// never contains bound values (`SQLite`'s messages do not quote them).
    #[cfg(feature = "sqlite")]
    #[error("database error: {source}")]
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

/// The database's own message (no bound values: sqlx never formats them into errors), or the
/// error kind for non-database errors.
fn safe_sqlx_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
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
            StoreError::Connect { .. } => BackendError::Unreachable(e.to_string()),
            StoreError::Io { ref source, .. } => BackendError::Other(format!("{e}: {source}")),
            StoreError::Migrate { ref source } => BackendError::Other(format!("{e}: {source}")),
            other => BackendError::Other(other.to_string()),
        }
    }
}
