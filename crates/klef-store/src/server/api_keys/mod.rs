//! API keys (`klef_user_…`, `klef_sys_…`) on the tables `api_keys` and `api_key_scopes` of
//! migration `0002_server`: registering a key a client generated, looking one up to
//! authenticate, listing, replacing a system key's scopes, revoking, and the direct grants
//! (`environment_grants` with `grantee_kind = 'api_key'`) that let a system key decrypt end to
//! end. Like the rest of the store it sees only hashes, public keys and wrapped keys.
//!
//! Migration `0005_api_key_split` adds `format`: keys registered since store SHA-256 of the
//! bearer credential derived from the secret (`split`); the rows that existed before hold
//! SHA-256 of a secret their client sent whole (`whole-secret`) and are refused on use
//! ([`ApiKeyAuth::outdated`]).

use std::collections::BTreeSet;

use klef_core::crypto::token::{TokenKind, prefix_of};
use klef_core::ids::{AccountId, ApiKeyId, EnvironmentId};
use klef_core::model::{
    ApiKeyInfo, ApiKeyKind, ApiKeyPermission, ApiKeyScope, ApiKeyScopeInfo, ApiKeyUpdate, Blob,
    WrappedEnvironmentKey,
};
use klef_core::names::validate_display_name;

use crate::audit::Audit;
use crate::rows::{parse_id, parse_name};
use crate::tables;
use crate::tx::Tx;
use crate::{Store, StoreError, invalid, not_found, now_ms};

mod scopes;

use scopes::{
    check_grants, check_scopes, covered_environments, delete_grant, insert_scopes, upsert_grants,
};

/// A key to register (its secret stays with the client).
#[derive(Debug, Clone, Copy)]
pub struct NewApiKey<'a> {
    /// Its id.
    pub id: ApiKeyId,
    /// User or system.
    pub kind: ApiKeyKind,
    /// The label.
    pub label: &'a str,
    /// SHA-256 (hex) of the bearer credential derived from the secret (never of the secret).
    pub bearer_hash: &'a str,
    /// A system key's X25519 public key.
    pub public_key: Option<&'a [u8]>,
    /// A system key's Ed25519 public key.
    pub signing_key: Option<&'a [u8]>,
    /// A system key's sealed CI anchor (opaque).
    pub anchor: Option<&'a [u8]>,
    /// A system key's permission.
    pub permission: Option<ApiKeyPermission>,
    /// A system key's scopes.
    pub scopes: &'a [ApiKeyScope],
    /// A system key's environment keys.
    pub environment_keys: &'a [WrappedEnvironmentKey],
    /// Who creates it (a user key acts as this account).
    pub created_by: AccountId,
}

/// What authentication needs to know of a key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyAuth {
    /// The id.
    pub id: ApiKeyId,
    /// User or system.
    pub kind: ApiKeyKind,
    /// The label.
    pub label: String,
    /// SHA-256 (hex) of the bearer credential, to compare in constant time (for an
    /// [`outdated`](Self::outdated) key: of the secret itself).
    pub bearer_hash: String,
    /// Registered before split secrets (`format = 'whole-secret'`): its whole secret reached
    /// the server, so it is refused on use.
    pub outdated: bool,
    /// A system key's permission (user keys: `None`).
    pub permission: Option<ApiKeyPermission>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// The creator (a user key's account).
    pub created_by: AccountId,
    /// The creator's email.
    pub creator_email: Option<String>,
    /// A system key's scopes.
    pub scopes: Vec<ApiKeyScope>,
}

impl std::fmt::Debug for ApiKeyAuth {
    // The hash is left out: it identifies the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyAuth")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// A stored key row.
#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    kind: String,
    label: String,
    public_key: Option<Vec<u8>>,
    permission: String,
    created_by: String,
    creator_email: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
    anchor: Option<Vec<u8>>,
}

/// A scope row: project id, environment id (`None` = every environment).
type ScopeRow = (String, Option<String>);

/// `SELECT` of key rows with the creator's email, then `$tail`.
macro_rules! select_key {
    ($tail:literal) => {
        concat!(
            "SELECT k.id, k.kind, k.label, k.public_key, k.permission, k.created_by, \
             a.email AS creator_email, k.created_at, k.revoked_at, k.anchor \
             FROM api_keys k LEFT JOIN accounts a ON a.id = k.created_by ",
            $tail
        )
    };
}

fn token_kind(kind: ApiKeyKind) -> TokenKind {
    match kind {
        ApiKeyKind::User => TokenKind::User,
        ApiKeyKind::System => TokenKind::System,
    }
}

impl Store {
    /// Registers an API key and records `audit`, in one transaction. A system key's scopes
    /// must name existing projects and environments ([`StoreError::NotFound`]) and its
    /// `environment_keys` must wrap exactly the environments they cover, each at its current
    /// key version ([`StoreError::Invalid`]); a user key takes none of these. A taken id is
    /// [`StoreError::AlreadyExists`].
    pub async fn create_api_key(
        &self,
        new: &NewApiKey<'_>,
        audit: &Audit,
    ) -> Result<ApiKeyInfo, StoreError> {
        validate_display_name("key label", new.label).map_err(|e| invalid(e.to_string()))?;
        if new.bearer_hash.len() != 64
            || !new
                .bearer_hash
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        {
            return Err(invalid(
                "bearer_hash must be 64 lower-case hex digits (SHA-256)",
            ));
        }
        let permission = match new.kind {
            ApiKeyKind::User => {
                if new.public_key.is_some()
                    || new.signing_key.is_some()
                    || new.permission.is_some()
                    || !new.scopes.is_empty()
                    || !new.environment_keys.is_empty()
                {
                    return Err(invalid(
                        "a user key acts as you everywhere: it takes no scope, permission, \
                         public keys or environment keys",
                    ));
                }
                // The column is NOT NULL; a user key's permission is never read.
                ApiKeyPermission::Readwrite
            }
            ApiKeyKind::System => {
                check_scopes(new.scopes)?;
                if new.public_key.is_none_or(|k| k.len() != 32) {
                    return Err(invalid("a system key needs its 32-byte public key"));
                }
                if new.signing_key.is_none_or(|k| k.len() != 32) {
                    return Err(invalid(
                        "a system key needs its 32-byte Ed25519 public key (signing_key)",
                    ));
                }
                new.permission
                    .ok_or_else(|| invalid("a system key needs a permission (read, readwrite)"))?
            }
        };
        let id = new.id.to_string();
        let now = now_ms();
        let mut tx = Tx::write(self).await?;
        let result = async {
            tx.execute(
                "INSERT INTO api_keys (id, kind, label, secret_hash, format, public_key, \
                 signing_key, permission, created_by, created_at, anchor) \
                 VALUES ($1, $2, $3, $4, 'split', $5, $6, $7, $8, $9, $10)",
                &[
                    (&id).into(),
                    new.kind.as_str().into(),
                    new.label.into(),
                    new.bearer_hash.into(),
                    new.public_key.into(),
                    new.signing_key.into(),
                    permission.as_str().into(),
                    new.created_by.to_string().into(),
                    now.into(),
                    new.anchor.into(),
                ],
            )
            .await
            .map_err(|e| StoreError::exists_or(e, || format!("API key {}", new.id)))?;
            if new.kind == ApiKeyKind::System {
                let covered = covered_environments(&mut tx, new.scopes).await?;
                let required: BTreeSet<EnvironmentId> = covered.keys().copied().collect();
                check_grants(&covered, new.environment_keys, &required)?;
                insert_scopes(&mut tx, &id, new.scopes).await?;
                upsert_grants(&mut tx, &id, new.environment_keys, now).await?;
            }
            tables::insert_audit(&mut tx, audit).await?;
            Ok(())
        }
        .await;
        tx.finish(result).await?;
        self.api_key_info(&new.id)
            .await?
            .map(|(info, _)| info)
            .ok_or_else(|| StoreError::NotFound {
                what: format!("API key {}", new.id),
            })
    }

    /// A key by id for authentication (revoked ones too, so the caller can say so).
    pub async fn api_key_auth(&self, id: &ApiKeyId) -> Result<Option<ApiKeyAuth>, StoreError> {
        let key = id.to_string();
        let found: Option<(KeyRow, (String, String), Vec<ScopeRow>)> = with_pool!(self, pool => {
            let row: Option<KeyRow> = sqlx::query_as(select_key!("WHERE k.id = $1"))
                .bind(&key)
                .fetch_optional(pool)
                .await?;
            match row {
                None => None,
                Some(row) => {
                    let hash: (String, String) =
                        sqlx::query_as("SELECT secret_hash, format FROM api_keys WHERE id = $1")
                            .bind(&key)
                            .fetch_one(pool)
                            .await?;
                    let scopes: Vec<ScopeRow> = sqlx::query_as(
                        "SELECT project_id, environment_id FROM api_key_scopes \
                         WHERE api_key_id = $1",
                    )
                    .bind(&key)
                    .fetch_all(pool)
                    .await?;
                    Some((row, hash, scopes))
                }
            }
        });
        let Some((row, (bearer_hash, format), scopes)) = found else {
            return Ok(None);
        };
        let kind = parse_name::<ApiKeyKind>(&row.kind)?;
        Ok(Some(ApiKeyAuth {
            id: *id,
            kind,
            label: row.label,
            bearer_hash,
            outdated: format != "split",
            permission: match kind {
                ApiKeyKind::User => None,
                ApiKeyKind::System => Some(parse_name::<ApiKeyPermission>(&row.permission)?),
            },
            revoked: row.revoked_at.is_some(),
            created_by: parse_id(&row.created_by, "account")?,
            creator_email: row.creator_email,
            scopes: scopes
                .into_iter()
                .map(|(p, e)| {
                    Ok(ApiKeyScope {
                        project_id: parse_id(&p, "project")?,
                        environment_id: e.map(|e| parse_id(&e, "environment")).transpose()?,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        }))
    }

    /// A live key's listing and its creator; `None` when unknown or revoked.
    pub async fn api_key_info(
        &self,
        id: &ApiKeyId,
    ) -> Result<Option<(ApiKeyInfo, AccountId)>, StoreError> {
        let row: Option<KeyRow> = with_pool!(self, pool => {
            sqlx::query_as(select_key!("WHERE k.id = $1 AND k.revoked_at IS NULL"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        match row {
            None => Ok(None),
            Some(row) => {
                let creator = parse_id(&row.created_by, "account")?;
                Ok(Some((self.key_info(row).await?, creator)))
            }
        }
    }

    async fn key_info(&self, row: KeyRow) -> Result<ApiKeyInfo, StoreError> {
        let kind = parse_name::<ApiKeyKind>(&row.kind)?;
        let id: ApiKeyId = parse_id(&row.id, "API key")?;
        let rows: Vec<(String, String, Option<String>, Option<String>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT s.project_id, p.name, s.environment_id, e.slug FROM api_key_scopes s \
                 JOIN projects p ON p.id = s.project_id \
                 LEFT JOIN environments e ON e.id = s.environment_id \
                 WHERE s.api_key_id = $1",
            )
            .bind(&row.id)
            .fetch_all(pool)
            .await?
        });
        let mut scopes = rows
            .into_iter()
            .map(|(p, name, e, slug)| {
                Ok(ApiKeyScopeInfo {
                    project_id: parse_id(&p, "project")?,
                    project_name: name,
                    environment_id: e.map(|e| parse_id(&e, "environment")).transpose()?,
                    environment_slug: slug,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        scopes.sort_by_key(ToString::to_string);
        Ok(ApiKeyInfo {
            id,
            prefix: prefix_of(token_kind(kind), &id),
            kind,
            label: row.label,
            created_by_email: row.creator_email,
            permission: match kind {
                ApiKeyKind::User => None,
                ApiKeyKind::System => Some(parse_name::<ApiKeyPermission>(&row.permission)?),
            },
            scopes,
            public_key: row.public_key.map(Blob),
            created_at: row.created_at,
            anchor: row.anchor.map(Blob),
        })
    }

    /// The live keys `account` created, and the live system keys with a scope in a workspace
    /// where `account` is owner or admin; oldest first.
    pub async fn api_keys_visible_to(
        &self,
        account: &AccountId,
    ) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let rows: Vec<KeyRow> = with_pool!(self, pool => {
            sqlx::query_as(select_key!(
                "WHERE k.revoked_at IS NULL AND (k.created_by = $1 OR (k.kind = 'system' AND \
                 EXISTS (SELECT 1 FROM api_key_scopes s JOIN projects p ON p.id = s.project_id \
                 JOIN workspace_members m ON m.workspace_id = p.workspace_id \
                 WHERE s.api_key_id = k.id AND m.account_id = $1 \
                 AND m.role IN ('owner', 'admin')))) ORDER BY k.created_at, k.id"
            ))
            .bind(account.to_string())
            .fetch_all(pool)
            .await?
        });
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.key_info(row).await?);
        }
        Ok(out)
    }

    /// Replaces a live system key's scopes and permission and records `audit`, in one
    /// transaction: grants of environments no longer covered are deleted, `environment_keys`
    /// are stored (replacing older ones), and every covered environment must end up with a
    /// grant at its current key version ([`StoreError::Invalid`] otherwise; nothing written).
    pub async fn put_api_key(
        &self,
        id: &ApiKeyId,
        req: &ApiKeyUpdate,
        audit: &Audit,
    ) -> Result<ApiKeyInfo, StoreError> {
        check_scopes(&req.scopes)?;
        let mut tx = Tx::write(self).await?;
        let result = put_in(&mut tx, id, req, audit).await;
        tx.finish(result).await?;
        self.api_key_info(id)
            .await?
            .map(|(info, _)| info)
            .ok_or_else(|| StoreError::NotFound {
                what: format!("API key {id}"),
            })
    }

    /// Revokes a live key and deletes every grant wrapped to it, and records `audit`, in one
    /// transaction; answers the key as it was. From then on it no longer authenticates.
    pub async fn revoke_api_key(
        &self,
        id: &ApiKeyId,
        audit: &Audit,
    ) -> Result<ApiKeyInfo, StoreError> {
        let Some((info, _)) = self.api_key_info(id).await? else {
            return Err(StoreError::NotFound {
                what: format!("API key {id}"),
            });
        };
        let key = id.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let done = tx
                .execute(
                    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    &[(&key).into(), now_ms().into()],
                )
                .await?;
            if done == 0 {
                return Err(not_found(format!("API key {id}")));
            }
            tx.execute(
                "DELETE FROM environment_grants WHERE grantee_kind = 'api_key' AND grantee_id = $1",
                &[(&key).into()],
            )
            .await?;
            tables::insert_audit(&mut tx, audit).await?;
            Ok(())
        }
        .await;
        tx.finish(result).await?;
        Ok(info)
    }

    /// The environment key wrapped directly to a system key, if it holds one.
    pub async fn api_key_grant(
        &self,
        key: &ApiKeyId,
        env: &EnvironmentId,
    ) -> Result<Option<Blob>, StoreError> {
        let wrapped: Option<Vec<u8>> = with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT wrapped_key FROM environment_grants WHERE environment_id = $1 \
                 AND grantee_kind = 'api_key' AND grantee_id = $2",
            )
            .bind(env.to_string())
            .bind(key.to_string())
            .fetch_optional(pool)
            .await?
        });
        Ok(wrapped.map(Blob))
    }
}

/// The transaction of [`Store::put_api_key`].
async fn put_in(
    tx: &mut Tx,
    id: &ApiKeyId,
    req: &ApiKeyUpdate,
    audit: &Audit,
) -> Result<(), StoreError> {
    let key = id.to_string();
    let now = now_ms();
    let kind: Option<(String, String)> = tx
        .optional(
            tx.dialect().pick(
                "SELECT kind, format FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
                "SELECT kind, format FROM api_keys WHERE id = $1 AND revoked_at IS NULL \
                 FOR UPDATE",
            ),
            &[(&key).into()],
        )
        .await?;
    if kind.as_ref().is_some_and(|(_, format)| format != "split") {
        // Its secret reached the server: wrapping more keys to it would hand them over.
        return Err(invalid(
            "this API key was issued before split secrets and can no longer be given \
             environments: re-create it with `klef keys create` and revoke this one",
        ));
    }
    match kind
        .map(|(k, _)| parse_name::<ApiKeyKind>(&k))
        .transpose()?
    {
        None => return Err(not_found(format!("API key {id}"))),
        Some(ApiKeyKind::System) => {}
        Some(ApiKeyKind::User) => {
            return Err(invalid(
                "a user key has no scopes: it acts as its owner everywhere",
            ));
        }
    }
    let covered = covered_environments(tx, &req.scopes).await?;
    let held: Vec<(String, i64)> = tx
        .all(
            "SELECT environment_id, key_version FROM environment_grants \
             WHERE grantee_kind = 'api_key' AND grantee_id = $1",
            &[(&key).into()],
        )
        .await?;
    let mut held_current = BTreeSet::new();
    let mut stale_or_gone = Vec::new();
    for (env, version) in held {
        let env: EnvironmentId = parse_id(&env, "environment")?;
        match covered.get(&env) {
            Some((current, _)) if *current == version => {
                held_current.insert(env);
            }
            _ => stale_or_gone.push(env),
        }
    }
    let required: BTreeSet<EnvironmentId> = covered
        .keys()
        .filter(|e| !held_current.contains(e))
        .copied()
        .collect();
    check_grants(&covered, &req.environment_keys, &required)?;
    for env in stale_or_gone {
        delete_grant(tx, &env, &key).await?;
    }
    upsert_grants(tx, &key, &req.environment_keys, now).await?;
    tx.execute(
        "DELETE FROM api_key_scopes WHERE api_key_id = $1",
        &[(&key).into()],
    )
    .await?;
    insert_scopes(tx, &key, &req.scopes).await?;
    tx.execute(
        "UPDATE api_keys SET permission = $2 WHERE id = $1",
        &[(&key).into(), req.permission.as_str().into()],
    )
    .await?;
    tables::insert_audit(tx, audit).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use klef_core::ids::ProjectId;

    use std::collections::BTreeMap;

    use super::*;

    fn scope(p: ProjectId, e: Option<EnvironmentId>) -> ApiKeyScope {
        ApiKeyScope {
            project_id: p,
            environment_id: e,
        }
    }

    #[test]
    fn scope_lists_are_checked() {
        let p = ProjectId::random();
        let e = EnvironmentId::random();
        assert!(check_scopes(&[]).is_err());
        assert!(check_scopes(&[scope(p, Some(e)), scope(p, Some(e))]).is_err());
        assert!(check_scopes(&[scope(p, None), scope(p, Some(e))]).is_err());
        assert!(check_scopes(&[scope(p, Some(e)), scope(ProjectId::random(), None)]).is_ok());
    }

    #[test]
    fn grants_must_match_the_covered_environments() {
        let e1 = EnvironmentId::random();
        let e2 = EnvironmentId::random();
        let covered: BTreeMap<EnvironmentId, (i64, String)> =
            [(e1, (1, "dev".to_owned())), (e2, (3, "prod".to_owned()))].into();
        let g = |env, v| WrappedEnvironmentKey {
            environment_id: env,
            key_version: v,
            wrapped_key: Blob(vec![1]),
        };
        let all: BTreeSet<EnvironmentId> = [e1, e2].into();
        assert!(check_grants(&covered, &[g(e1, 1), g(e2, 3)], &all).is_ok());
        let err = check_grants(&covered, &[g(e1, 1)], &all).unwrap_err();
        assert!(err.to_string().contains("prod"), "{err}");
        assert!(check_grants(&covered, &[g(e1, 1), g(e2, 2)], &all).is_err());
        assert!(
            check_grants(&covered, &[g(EnvironmentId::random(), 1)], &BTreeSet::new()).is_err()
        );
        assert!(check_grants(&covered, &[g(e1, 1), g(e1, 1)], &BTreeSet::new()).is_err());
        assert!(check_grants(&covered, &[], &BTreeSet::new()).is_ok());
    }

    /// Migration 0005 on a database with a key from before split secrets: the row is marked
    /// `whole-secret` (refused on use), the environment key wrapped to it is dropped, and the
    /// account's own grant is kept; a row inserted afterwards can be `split`.
    #[tokio::test]
    async fn migration_0005_marks_old_keys_and_drops_their_grants() {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite");
        let before = [
            include_str!("../../../migrations/sqlite/0001_init.sql"),
            include_str!("../../../migrations/sqlite/0002_server.sql"),
            include_str!("../../../migrations/sqlite/0003_incarnation.sql"),
            include_str!("../../../migrations/sqlite/0004_roster.sql"),
        ];
        for sql in before {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut c)
                .await
                .expect("an earlier migration");
        }
        // Only the api_keys and environment_grants rows matter here.
        sqlx::raw_sql(
            "PRAGMA foreign_keys = OFF; \
             INSERT INTO api_keys (id, kind, label, secret_hash, public_key, permission, \
                created_by, created_at) VALUES ('k1', 'system', 'ci', 'aa', x'01', 'read', 'a1', 1); \
             INSERT INTO environment_grants VALUES ('e1', 'api_key', 'k1', x'02', 1, 1); \
             INSERT INTO environment_grants VALUES ('e1', 'account', 'a2', x'03', 1, 1);",
        )
        .execute(&mut c)
        .await
        .expect("rows from before the split");
        sqlx::raw_sql(sqlx::AssertSqlSafe(include_str!(
            "../../../migrations/sqlite/0005_api_key_split.sql"
        )))
        .execute(&mut c)
        .await
        .expect("migration 0005");
        let row: (String, Option<Vec<u8>>) =
            sqlx::query_as("SELECT format, signing_key FROM api_keys WHERE id = 'k1'")
                .fetch_one(&mut c)
                .await
                .expect("the old key");
        assert_eq!(row, ("whole-secret".to_owned(), None));
        let grants: Vec<(String,)> =
            sqlx::query_as("SELECT grantee_kind FROM environment_grants ORDER BY grantee_kind")
                .fetch_all(&mut c)
                .await
                .expect("grants");
        assert_eq!(grants, [("account".to_owned(),)]);
        sqlx::raw_sql(
            "INSERT INTO api_keys (id, kind, label, secret_hash, format, permission, created_by, \
             created_at) VALUES ('k2', 'user', 'laptop', 'bb', 'split', 'readwrite', 'a1', 2)",
        )
        .execute(&mut c)
        .await
        .expect("a key of the split format");
        assert!(
            sqlx::raw_sql("UPDATE api_keys SET format = 'v3' WHERE id = 'k2'")
                .execute(&mut c)
                .await
                .is_err(),
            "an unknown format is refused"
        );
    }
}
