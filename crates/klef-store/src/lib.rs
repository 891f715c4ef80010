//! Klef's storage layer: `SQLite` (the embedded local vault and the default server database) and
//! `PostgreSQL`, behind one [`Store`] API. It stores metadata and sealed bytes only: it never sees
//! a password, an unwrapped key or a plaintext value (DESIGN.md §1).
//!
//! - [`Store`] is a connection pool over either backend. [`Store::open_local`] opens (or creates)
//!   a vault file; [`Store::connect`] takes a `sqlite://` or `postgres://` URL. Both refuse a
//!   file or database that is not a Klef vault ([`StoreError::NotAVault`]) or was written by a
//!   newer Klef ([`StoreError::NewerVersion`]) without modifying it, then run the migrations.
//! - Queries take the acting [`AccountId`](klef_core::ids::AccountId) explicitly
//!   (`store.projects_visible_to(account, ws)`), so the server can reuse them per request.
//! - [`LocalVault`] wraps a [`Store`] as the single-account embedded vault and implements
//!   [`Backend`](klef_core::backend::Backend).
//!
//! ```no_run
//! # async fn demo() -> Result<(), klef_store::StoreError> {
//! use klef_core::backend::Backend as _;
//! let vault = klef_store::LocalVault::open(std::path::Path::new("/tmp/klef/vault.db")).await?;
//! let account = vault.account().await; // Ok(None) on a fresh vault
//! # let _ = account;
//! # Ok(())
//! # }
//! ```

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("klef-store needs at least one of its `sqlite` and `postgres` features");

/// Runs `$body` with `$pool` bound to the backend's pool (`&SqlitePool` or `&PgPool`). The body
/// is compiled once per backend, so the same SQL text (with `$N` placeholders, which `SQLite` also
/// accepts) serves both. See docs/decisions/0002-store-backends.md.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            #[cfg(feature = "sqlite")]
            $crate::Store::Sqlite($pool) => $body,
            #[cfg(feature = "postgres")]
            $crate::Store::Postgres($pool) => $body,
        }
    };
}

/// Declares a row struct read by column name, from one field list: `#[derive(sqlx::FromRow)]`
/// for the pools and `blocking::FromRow` for the CLI's blocking reads of the local vault
/// (`blocking::Reader`). Every field is a column of the same name.
macro_rules! row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $($fvis:vis $field:ident: $ty:ty,)* }
    ) => {
        $(#[$meta])*
        #[derive(sqlx::FromRow)]
        $vis struct $name { $($fvis $field: $ty,)* }

        #[cfg(feature = "sqlite")]
        impl $crate::blocking::FromRow for $name {
            fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(Self { $($field: row.get(stringify!($field))?,)* })
            }
        }
    };
}

/// The condition, on `secrets s`, that `s` is the newest version of its name (a delete
/// included). The one definition of "newest", for [`live_secrets!`] and `write_secrets`.
macro_rules! newest_version {
    () => {
        "s.version = (SELECT MAX(v.version) FROM secrets v \
                      WHERE v.environment_id = s.environment_id AND v.name = s.name)"
    };
}

/// The `WHERE` condition, on `secrets s`, selecting the latest version of every live name of
/// environment `$1` (a name whose latest version is a delete is left out).
macro_rules! live_secrets {
    () => {
        concat!(
            "s.environment_id = $1 AND s.ciphertext IS NOT NULL AND ",
            newest_version!()
        )
    };
}

mod audit;
mod backup;
#[cfg(feature = "sqlite")]
mod blocking;
mod environments;
pub mod error;
mod lifecycle;
mod local;
mod manifests;
mod personal;
mod queries;
mod reads;
mod roster;
mod rotate;
mod rows;
#[cfg(feature = "server")]
pub mod server;
mod store;
mod tables;
mod tx;

use std::time::{SystemTime, UNIX_EPOCH};

use klef_core::model::Timestamp;

pub use audit::{Actor, ActorKind, Audit};
pub use backup::{Contents, ImportMode, ImportSummary};
pub use environments::EnvironmentCreation;
pub use error::StoreError;
pub use local::{LOCAL_AUTHOR, LocalVault};
pub use rotate::RotateOutcome;
pub use store::{FORMAT_VERSION, SQLITE_APPLICATION_ID, Store};

/// Milliseconds since the Unix epoch, now: the time every row the store stamps itself gets.
#[must_use]
pub fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// [`StoreError::Invalid`] with `reason`.
pub(crate) fn invalid(reason: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid {
        reason: reason.to_string(),
    }
}

/// [`StoreError::NotFound`] for `what`.
pub(crate) fn not_found(what: impl Into<String>) -> StoreError {
    StoreError::NotFound { what: what.into() }
}
