//! Personal overrides as the store keeps them (migration 0009): one sealed record per
//! (environment, account), numbered. The store sees neither names nor values (the record is
//! sealed by the account's client); it only serialises one account's writers on the revision.
//! Nothing here reads another account's record: every statement is keyed by the caller.

use klef_core::ids::{AccountId, EnvironmentId};
use klef_core::model::{Blob, PersonalRecord};

use crate::audit::Audit;
use crate::reads::Source;
use crate::tx::Tx;
use crate::{Store, StoreError, invalid, not_found, now_ms};

row! {
    pub(crate) struct PersonalRow {
        revision: i64,
        blob: Vec<u8>,
    }
}

/// The largest sealed record stored: the request limit bounds it anyway (16 MiB).
const MAX_PERSONAL_BYTES: usize = 16 * 1024 * 1024;

/// `account`'s own record of `env`, if any.
pub(crate) async fn read(
    source: Source<'_>,
    env: &EnvironmentId,
    account: &AccountId,
) -> Result<Option<PersonalRecord>, StoreError> {
    let rows: Vec<PersonalRow> = source
        .all(
            "SELECT revision, blob FROM personal_overrides \
             WHERE environment_id = $1 AND account_id = $2",
            &[env.to_string().as_str(), account.to_string().as_str()],
        )
        .await?;
    rows.into_iter()
        .next()
        .map(|r| {
            Ok(PersonalRecord {
                revision: u64::try_from(r.revision).map_err(|_| StoreError::Corrupt {
                    what: format!("personal overrides revision {}", r.revision),
                })?,
                sealed: Blob(r.blob),
            })
        })
        .transpose()
}

impl Store {
    /// `account`'s own personal overrides of `env`, if any. No visibility check: the caller
    /// authorizes.
    pub async fn personal(
        &self,
        env: &EnvironmentId,
        account: &AccountId,
    ) -> Result<Option<PersonalRecord>, StoreError> {
        read(Source::Pool(self), env, account).await
    }

    /// Replaces `account`'s own personal overrides of `env` with `sealed` at `revision`
    /// (greater than `expected`) if `expected` is the stored revision (0: none yet), and
    /// appends `audit` in the same transaction. A stale `expected` is [`StoreError::Conflict`] (another device
    /// of the same account wrote first). No visibility check: the caller authorizes.
    pub async fn put_personal(
        &self,
        env: &EnvironmentId,
        account: &AccountId,
        sealed: &Blob,
        expected: u64,
        revision: u64,
        audit: Option<&Audit>,
    ) -> Result<PersonalRecord, StoreError> {
        if sealed.0.is_empty() || sealed.0.len() > MAX_PERSONAL_BYTES {
            return Err(invalid(
                "personal overrides: the sealed record is empty or too large",
            ));
        }
        let expected_i = i64::try_from(expected)
            .map_err(|_| invalid("the expected revision is out of range"))?;
        let next = i64::try_from(revision)
            .ok()
            .filter(|r| *r > expected_i)
            .ok_or_else(|| invalid("the new revision must be greater than the expected one"))?;
        let (env_id, account_id) = (env.to_string(), account.to_string());
        let mut tx = Tx::write(self).await?;
        let result = async {
            let exists = tx
                .count(
                    "SELECT COUNT(*) FROM environments WHERE id = $1",
                    &[(&env_id).into()],
                )
                .await?;
            if exists == 0 {
                return Err(not_found(format!("environment {env}")));
            }
            let now = now_ms();
            let done = if expected_i == 0 {
                tx.execute(
                    "INSERT INTO personal_overrides \
                     (environment_id, account_id, revision, blob, updated_at) \
                     SELECT $1, $2, $5, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM personal_overrides \
                     WHERE environment_id = $1 AND account_id = $2)",
                    &[
                        (&env_id).into(),
                        (&account_id).into(),
                        sealed.into(),
                        now.into(),
                        next.into(),
                    ],
                )
                .await?
            } else {
                tx.execute(
                    "UPDATE personal_overrides SET revision = $3, blob = $4, updated_at = $5 \
                     WHERE environment_id = $1 AND account_id = $2 AND revision = $6",
                    &[
                        (&env_id).into(),
                        (&account_id).into(),
                        next.into(),
                        sealed.into(),
                        now.into(),
                        expected_i.into(),
                    ],
                )
                .await?
            };
            if done != 1 {
                let actual = tx
                    .count(
                        "SELECT COALESCE(MAX(revision), 0) FROM personal_overrides \
                         WHERE environment_id = $1 AND account_id = $2",
                        &[(&env_id).into(), (&account_id).into()],
                    )
                    .await?;
                return Err(StoreError::Conflict {
                    name: "your personal overrides of this environment".into(),
                    expected: expected_i,
                    actual,
                    changed_by: "another device or command of yours".into(),
                });
            }
            if let Some(entry) = audit {
                crate::tables::insert_audit(&mut tx, entry).await?;
            }
            Ok(PersonalRecord {
                revision: u64::try_from(next).unwrap_or(u64::MAX),
                sealed: sealed.clone(),
            })
        }
        .await;
        tx.finish(result).await
    }
}
