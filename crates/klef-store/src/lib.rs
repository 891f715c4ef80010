//! Klef's storage layer: `SQLite` (the embedded local vault and the default server database) and
//! `PostgreSQL`, behind one [`Store`] API. It stores metadata and sealed bytes only: it never sees
//! a password, an unwrapped key or a plaintext value (DESIGN.md §1).
//!
//! - [`Store`] is a connection pool over either backend. [`Store::open_local`] opens (or creates)
//!   a vault file; [`Store::connect`] takes a `sqlite://` or `postgres://` URL. Both refuse a
//!   file or database that is not a Klef vault ([`StoreError::NotAVault`]) or was written by a
//!   newer Klef ([`StoreError::NewerVersion`]) without modifying it, then run the migrations.
//! - Queries take the acting [`AccountId`](klef_core::ids::AccountId) explicitly
//!   (`store.projects_for(account, ws)`), so the server can reuse them per request.
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

/// Runs `$body` (an expression yielding `Result<T, StoreError>`) inside a write transaction with
/// `$tx` bound to it and `$dialect` to the backend's [`store::Dialect`]; commits on `Ok` and
/// rolls back on `Err`. `SQLite` starts with `BEGIN IMMEDIATE`, taking the database write lock up
/// front, so concurrent writers (in any process) queue on `busy_timeout` instead of failing on
/// a lock upgrade; `PostgreSQL` writers lock the rows they depend on with `FOR UPDATE`.
macro_rules! write_tx {
    ($store:expr, |$tx:ident, $dialect:ident| $body:expr) => {
        match $store {
            #[cfg(feature = "sqlite")]
            $crate::Store::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let $dialect = $crate::store::Dialect::Sqlite;
                let result: Result<_, $crate::StoreError> = async { $body }.await;
                $crate::store::finish($tx, result).await
            }
            #[cfg(feature = "postgres")]
            $crate::Store::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let $dialect = $crate::store::Dialect::Postgres;
                let result: Result<_, $crate::StoreError> = async { $body }.await;
                $crate::store::finish($tx, result).await
            }
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

/// Binds the seven columns that seal an account's master key, in this order: `kdf_algorithm`,
/// `kdf_m_cost_kib`, `kdf_t_cost`, `kdf_p_cost`, `kdf_salt`, `master_key_by_password`,
/// `master_key_by_recovery`, from `$keys` (`&AccountKeys`). Shared by [`insert_account!`] and
/// `Store::replace_account_keys` (a password change or recovery rewrites exactly these).
macro_rules! bind_master_key_seal {
    ($query:expr, $keys:expr) => {{
        let keys: &klef_core::model::AccountKeys = $keys;
        $query
            .bind($crate::rows::kdf_algorithm_name(keys.kdf.algorithm))
            .bind(i64::from(keys.kdf.m_cost_kib))
            .bind(i64::from(keys.kdf.t_cost))
            .bind(i64::from(keys.kdf.p_cost))
            .bind(keys.kdf.salt.as_bytes())
            .bind(keys.master_key_by_password.as_bytes())
            .bind(keys.master_key_by_recovery.as_bytes())
    }};
}

/// Inserts an [`Account`](klef_core::model::Account) on `$conn` with a sign-in password hash (`Option<&str>`: `None` for
/// a local vault's owner and for accounts restored from a backup); evaluates to
/// `Result<_, sqlx::Error>`. The one place that knows the column order of `accounts`.
macro_rules! insert_account {
    ($conn:expr, $account:expr, $password_hash:expr) => {{
        let account: &klef_core::model::Account = $account;
        let password_hash: Option<&str> = $password_hash;
        let keys = &account.keys;
        let query = sqlx::query(
            "INSERT INTO accounts (id, email, password_hash, kdf_algorithm, kdf_m_cost_kib, \
             kdf_t_cost, kdf_p_cost, kdf_salt, master_key_by_password, master_key_by_recovery, \
             public_key, private_key_sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(account.id.to_string())
        .bind(account.email.as_deref())
        .bind(password_hash);
        bind_master_key_seal!(query, keys)
            .bind(keys.public_key.as_bytes())
            .bind(keys.private_key_sealed.as_bytes())
            .bind(account.created_at)
            .execute($conn)
            .await
    }};
}

/// Inserts `$versions` (`&[SecretVersion]`) into `secrets` on the transaction `$tx` of dialect
/// `$dialect`, 500 rows per statement (`queries::insert_secrets_sql`); evaluates to
/// `Result<(), sqlx::Error>`. The one place that binds the columns of `secrets`, for
/// `write_secrets` and both backup imports.
macro_rules! insert_secret_versions {
    ($tx:expr, $dialect:expr, $versions:expr) => {{
        let versions: &[klef_core::model::SecretVersion] = $versions;
        let mut inserted: Result<(), sqlx::Error> = Ok(());
        for chunk in versions.chunks($crate::queries::WRITE_CHUNK) {
            let sql = $crate::queries::insert_secrets_sql($dialect, chunk.len());
            let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in chunk {
                insert = insert
                    .bind(v.environment_id.to_string())
                    .bind(&v.name)
                    .bind(v.version)
                    .bind(v.ciphertext.as_ref().map(klef_core::model::Blob::as_bytes))
                    .bind(v.key_version)
                    .bind(v.created_at)
                    .bind(v.author.as_deref());
            }
            if let Err(e) = insert.execute(&mut *$tx).await {
                inserted = Err(e);
                break;
            }
        }
        inserted
    }};
}

mod backup;
#[cfg(feature = "sqlite")]
mod blocking;
pub mod error;
mod local;
#[macro_use]
pub mod server;
mod queries;
mod reads;
mod rows;
mod store;

pub use backup::{Contents, ImportMode, ImportSummary, ServerImport};
pub use error::StoreError;
pub use local::{LOCAL_AUTHOR, LocalVault};
pub use store::{FORMAT_VERSION, SQLITE_APPLICATION_ID, Store};
