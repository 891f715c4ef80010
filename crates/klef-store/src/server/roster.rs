//! Identity keys, workspace rosters and account states on the team server (DESIGN.md §9.1,
//! §9.2): the server stores what clients signed or sealed and serves it back; it never
//! interprets a signature or opens a sealed record.

use klef_core::ids::{AccountId, WorkspaceId};
use klef_core::model::{Blob, RosterEntry};

use crate::audit::Audit;
use crate::tables;
use crate::tx::Tx;
use crate::{Store, StoreError, now_ms};

impl Store {
    /// Publishes `account`'s identity key, once: storing the same key again is a no-op, a
    /// different one is [`StoreError::AlreadyExists`] (identity keys never change).
    pub async fn publish_identity_key(
        &self,
        account: &AccountId,
        key: &Blob,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::write(self).await?;
        let result = async {
            let id = account.to_string();
            let set = tx
                .execute(
                    "UPDATE accounts SET identity_key = $2 WHERE id = $1 AND identity_key IS NULL",
                    &[(&id).into(), key.into()],
                )
                .await?;
            if set == 1 {
                return tables::insert_audit(&mut tx, audit)
                    .await
                    .map_err(Into::into);
            }
            let same = tx
                .count(
                    "SELECT COUNT(*) FROM accounts WHERE id = $1 AND identity_key = $2",
                    &[(&id).into(), key.into()],
                )
                .await?;
            if same == 1 {
                Ok(())
            } else {
                Err(StoreError::AlreadyExists {
                    what: "another identity key for this account".into(),
                })
            }
        }
        .await;
        tx.finish(result).await
    }

    /// The roster entries of `ws` after sequence `after` (all without it), in order.
    pub async fn roster(
        &self,
        ws: &WorkspaceId,
        after: Option<u64>,
    ) -> Result<Vec<RosterEntry>, StoreError> {
        let from = after.map_or(0, |a| {
            i64::try_from(a).unwrap_or(i64::MAX).saturating_add(1)
        });
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT sequence, body, signature FROM roster_entries \
                 WHERE workspace_id = $1 AND sequence >= $2 ORDER BY sequence",
            )
            .bind(ws.to_string())
            .bind(from)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(sequence, body, signature)| {
                Ok(RosterEntry {
                    sequence: u64::try_from(sequence).map_err(|_| StoreError::Corrupt {
                        what: "a negative roster sequence".into(),
                    })?,
                    body: Blob(body),
                    signature: Blob(signature),
                })
            })
            .collect()
    }

    /// Appends `entries` to the roster of `ws` (they must continue the stored chain:
    /// [`StoreError::Conflict`] otherwise, nothing written) and records `audit`.
    pub async fn append_roster(
        &self,
        ws: &WorkspaceId,
        entries: &[RosterEntry],
        by: &AccountId,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::write(self).await?;
        let result = async {
            crate::roster::append_roster_entries(&mut tx, ws, entries, by, now_ms()).await?;
            tables::insert_audit(&mut tx, audit).await?;
            Ok(())
        }
        .await;
        tx.finish(result).await
    }

    /// Whether `account` has an open invitation (pending or accepted) to `ws`.
    pub async fn invited_to(
        &self,
        account: &AccountId,
        email: &str,
        ws: &WorkspaceId,
    ) -> Result<bool, StoreError> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM invitations WHERE workspace_id = $1 AND closed_at IS NULL \
                 AND (email = $2 OR accepted_by = $3)",
            )
            .bind(ws.to_string())
            .bind(email)
            .bind(account.to_string())
            .fetch_one(pool)
            .await?
        });
        Ok(n > 0)
    }

    /// `account`'s sealed pins and their revision (`None`, 0 before the first write).
    pub async fn account_state(
        &self,
        account: &AccountId,
    ) -> Result<(Option<Blob>, u64), StoreError> {
        let row: Option<(Vec<u8>, i64)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT sealed, revision FROM account_states WHERE account_id = $1")
                .bind(account.to_string())
                .fetch_optional(pool)
                .await?
        });
        match row {
            None => Ok((None, 0)),
            Some((sealed, revision)) => Ok((
                Some(Blob(sealed)),
                u64::try_from(revision).map_err(|_| StoreError::Corrupt {
                    what: "a negative account-state revision".into(),
                })?,
            )),
        }
    }

    /// Replaces `account`'s sealed pins if `expected` is the stored revision; the new revision.
    /// A stale `expected` is [`StoreError::Conflict`] (another device wrote first).
    pub async fn put_account_state(
        &self,
        account: &AccountId,
        sealed: &Blob,
        expected: u64,
    ) -> Result<u64, StoreError> {
        let expected_i = i64::try_from(expected).map_err(|_| StoreError::Invalid {
            reason: "the expected revision is out of range".into(),
        })?;
        let next = expected_i
            .checked_add(1)
            .ok_or_else(|| StoreError::Invalid {
                reason: "the expected revision is out of range".into(),
            })?;
        let id = account.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let done = if expected_i == 0 {
                tx.execute(
                    "INSERT INTO account_states (account_id, sealed, revision, updated_at) \
                     SELECT $1, $2, 1, $3 WHERE NOT EXISTS \
                     (SELECT 1 FROM account_states WHERE account_id = $1)",
                    &[(&id).into(), sealed.into(), now_ms().into()],
                )
                .await?
            } else {
                tx.execute(
                    "UPDATE account_states SET sealed = $2, revision = $4, updated_at = $3 \
                     WHERE account_id = $1 AND revision = $5",
                    &[
                        (&id).into(),
                        sealed.into(),
                        now_ms().into(),
                        next.into(),
                        expected_i.into(),
                    ],
                )
                .await?
            };
            if done == 1 {
                return Ok(u64::try_from(next).unwrap_or(u64::MAX));
            }
            let actual: i64 = tx
                .count(
                    "SELECT COALESCE(MAX(revision), 0) FROM account_states WHERE account_id = $1",
                    &[(&id).into()],
                )
                .await?;
            Err(StoreError::Conflict {
                name: "this account's pins".into(),
                expected: expected_i,
                actual,
                changed_by: "another device of this account".into(),
            })
        }
        .await;
        tx.finish(result).await
    }
}
