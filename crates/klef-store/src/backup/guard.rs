//! The one guarded path around the append-only `secrets` table: a restore that replaces data
//! lifts the delete guard for its own transaction only, and puts it back exactly as stored.

use crate::StoreError;
use crate::tx::Dialect;
use crate::tx::{Arg, Tx};

/// Runs `statements` (deletes of secret rows, among others) with `args` inside `tx` with the
/// secrets table's delete guard lifted, then puts the guard back, all in `tx`. `SQLite`: the
/// trigger `secrets_no_delete` is dropped and re-created from its stored definition inside the
/// `BEGIN IMMEDIATE` transaction. `PostgreSQL`: `ALTER TABLE … DISABLE TRIGGER` and `ENABLE
/// TRIGGER` inside it, which needs the server's database role to own the table and blocks
/// other secret writes until the commit.
pub(crate) async fn delete_past_guard(
    tx: &mut Tx,
    statements: &[&'static str],
    args: &[Arg<'_>],
) -> Result<(), StoreError> {
    match tx.dialect() {
        Dialect::Sqlite => {
            let guard: Option<(String,)> = tx
                .optional(
                    "SELECT sql FROM sqlite_master \
                     WHERE type = 'trigger' AND name = 'secrets_no_delete'",
                    &[],
                )
                .await?;
            if guard.is_some() {
                tx.execute("DROP TRIGGER secrets_no_delete", &[]).await?;
            }
            for statement in statements {
                tx.execute(*statement, args).await?;
            }
            if let Some((sql,)) = guard {
                tx.execute(sqlx::AssertSqlSafe(sql), &[]).await?;
            }
        }
        Dialect::Postgres => {
            tx.execute(
                "ALTER TABLE secrets DISABLE TRIGGER secrets_append_only",
                &[],
            )
            .await?;
            for statement in statements {
                tx.execute(*statement, args).await?;
            }
            tx.execute(
                "ALTER TABLE secrets ENABLE TRIGGER secrets_append_only",
                &[],
            )
            .await?;
        }
    }
    Ok(())
}
