//! [`Tx`]: one transaction over either backend, with typed statements ([`Tx::execute`],
//! [`Tx::all`], [`Tx::optional`], [`Tx::one`]) whose parameters are [`Arg`]s. It is to writes
//! what `crate::reads::Source` is to reads: every statement is written once, with `$N`
//! placeholders (which `SQLite` also accepts), and runs on whichever backend the store is.
//! The insert of each table is a function over a `Tx` in [`crate::tables`].

use std::borrow::Cow;

use klef_core::model::Blob;
use sqlx::{Database, Encode, SqlSafeStr, SqlStr, Type};

use crate::{Store, StoreError};

/// Which SQL dialect a transaction runs on, for the few statements that must differ.
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

/// One statement parameter, bound to `$1`, `$2`, … in order.
pub(crate) enum Arg<'a> {
    /// Text (ids are bound as their text form).
    Text(Cow<'a, str>),
    /// Text or `NULL`.
    OptText(Option<Cow<'a, str>>),
    /// An integer (versions, times, counts).
    Int(i64),
    /// An integer or `NULL`.
    OptInt(Option<i64>),
    /// A boolean.
    Bool(bool),
    /// Bytes (sealed keys, ciphertext, public keys).
    Bytes(&'a [u8]),
    /// Bytes or `NULL`.
    OptBytes(Option<&'a [u8]>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Cow::Owned(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::OptText(v.map(Cow::Borrowed))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v.map(Cow::Owned))
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}

impl<'a> From<&'a Blob> for Arg<'a> {
    fn from(v: &'a Blob) -> Self {
        Arg::Bytes(v.as_bytes())
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}

impl<'a> From<Option<&'a [u8]>> for Arg<'a> {
    fn from(v: Option<&'a [u8]>) -> Self {
        Arg::OptBytes(v)
    }
}

/// A row type the pools can read (`#[derive(sqlx::FromRow)]`, or a tuple).
#[cfg(all(feature = "sqlite", feature = "postgres"))]
pub(crate) trait PoolRow:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
{
}
#[cfg(all(feature = "sqlite", feature = "postgres"))]
impl<R> PoolRow for R where
    R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

/// A row type the pool can read.
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
pub(crate) trait PoolRow:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin
{
}
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
impl<R> PoolRow for R where R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin {}

/// A row type the pool can read.
#[cfg(not(feature = "sqlite"))]
pub(crate) trait PoolRow:
    for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin
{
}
#[cfg(not(feature = "sqlite"))]
impl<R> PoolRow for R where R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin {}

/// `sql` with `args` bound, for backend `DB`.
fn statement<'q, DB>(sql: SqlStr, args: &[Arg<'_>]) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: Database,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a [u8]>: Encode<'a, DB> + Type<DB>,
{
    let mut query = sqlx::query::<DB>(sql);
    for arg in args {
        query = match arg {
            Arg::Text(v) => query.bind(v.as_ref()),
            Arg::OptText(v) => query.bind(v.as_deref()),
            Arg::Int(v) => query.bind(*v),
            Arg::OptInt(v) => query.bind(*v),
            Arg::Bool(v) => query.bind(*v),
            Arg::Bytes(v) => query.bind(*v),
            Arg::OptBytes(v) => query.bind(*v),
        };
    }
    query
}

/// One open transaction on either backend. Commit or roll back with [`Tx::finish`]; a `Tx`
/// dropped without it is rolled back by sqlx.
pub(crate) enum Tx {
    /// On a `SQLite` pool.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    /// On a `PostgreSQL` pool.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    /// A write transaction. `SQLite` starts with `BEGIN IMMEDIATE`, taking the database write
    /// lock up front, so concurrent writers (in any process) queue on `busy_timeout` instead of
    /// failing on a lock upgrade; `PostgreSQL` writers lock the rows they depend on with
    /// `FOR UPDATE` (see [`Dialect::pick`]).
    pub(crate) async fn write(store: &Store) -> Result<Tx, StoreError> {
        Ok(match store {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// A read-only transaction that sees one consistent snapshot: on `SQLite` a deferred
    /// transaction (one WAL snapshot), on `PostgreSQL` `REPEATABLE READ READ ONLY`. End it
    /// with [`Tx::finish`] (nothing is written either way).
    pub(crate) async fn snapshot(store: &Store) -> Result<Tx, StoreError> {
        Ok(match store {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => Tx::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            ),
        })
    }

    /// The SQL dialect, for the few statements that differ.
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `sql` with `args`; the number of rows it changed.
    pub(crate) async fn execute(
        &mut self,
        sql: impl SqlSafeStr,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error> {
        let sql = sql.into_sql_str();
        Ok(match self {
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => statement(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => statement(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    /// Every row `sql` returns with `args`.
    pub(crate) async fn all<R: PoolRow>(
        &mut self,
        sql: impl SqlSafeStr,
        args: &[Arg<'_>],
    ) -> Result<Vec<R>, sqlx::Error> {
        let sql = sql.into_sql_str();
        match self {
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => statement(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(R::from_row)
                .collect(),
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => statement(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(R::from_row)
                .collect(),
        }
    }

    /// The first row `sql` returns with `args`, if any.
    pub(crate) async fn optional<R: PoolRow>(
        &mut self,
        sql: impl SqlSafeStr,
        args: &[Arg<'_>],
    ) -> Result<Option<R>, sqlx::Error> {
        let sql = sql.into_sql_str();
        match self {
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => statement(sql, args)
                .fetch_optional(&mut **tx)
                .await?
                .as_ref()
                .map(R::from_row)
                .transpose(),
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => statement(sql, args)
                .fetch_optional(&mut **tx)
                .await?
                .as_ref()
                .map(R::from_row)
                .transpose(),
        }
    }

    /// The one row `sql` returns with `args` (an aggregate such as `COUNT(*)`); no row is an
    /// error.
    pub(crate) async fn one<R: PoolRow>(
        &mut self,
        sql: impl SqlSafeStr,
        args: &[Arg<'_>],
    ) -> Result<R, sqlx::Error> {
        self.optional(sql, args)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// `SELECT COUNT(*) …`: the count `sql` returns with `args`.
    pub(crate) async fn count(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<i64, sqlx::Error> {
        let (count,): (i64,) = self.one(sql, args).await?;
        Ok(count)
    }

    /// Commits on `Ok`, rolls back on `Err` (a failed rollback is only logged: the
    /// transaction's error is the one to report), and passes `result` on.
    pub(crate) async fn finish<T>(self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                match self {
                    #[cfg(feature = "sqlite")]
                    Tx::Sqlite(tx) => tx.commit().await?,
                    #[cfg(feature = "postgres")]
                    Tx::Postgres(tx) => tx.commit().await?,
                }
                Ok(value)
            }
            Err(e) => {
                let rolled_back = match self {
                    #[cfg(feature = "sqlite")]
                    Tx::Sqlite(tx) => tx.rollback().await,
                    #[cfg(feature = "postgres")]
                    Tx::Postgres(tx) => tx.rollback().await,
                };
                if let Err(rollback) = rolled_back {
                    tracing::warn!(error = %StoreError::from(rollback), "rollback failed");
                }
                Err(e)
            }
        }
    }

    /// Ends a read-only [`Tx::snapshot`] (a rollback: nothing was written).
    pub(crate) async fn close(self) -> Result<(), StoreError> {
        match self {
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => tx.rollback().await?,
            #[cfg(feature = "postgres")]
            Tx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}
