//! What the server's authorization needs to know (which workspace a project or environment is
//! in, which keys an account holds), the direct grants of an environment, and key rotation.

use std::collections::{BTreeMap, BTreeSet};

use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{Blob, Environment, SecretVersion};
use klef_core::wire::{GrantInfo, Grantee, RotateRequest};

use super::{Audit, now_ms};
use crate::rows::{EnvironmentRow, parse_id};
use crate::{Store, StoreError};

/// What [`Store::rotate_environment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The key was rotated.
    Rotated {
        /// The environment with its new key version.
        environment: Environment,
        /// The re-encrypted versions.
        written: Vec<SecretVersion>,
    },
    /// Nothing was written: the request was based on a stale view (the reason says what).
    Stale {
        /// What changed, as a lower-case phrase.
        reason: String,
    },
}

fn grantee_of(kind: &str, id: &str) -> Result<Grantee, StoreError> {
    match kind {
        "account" => Ok(Grantee::Account(parse_id(id, "account")?)),
        "api_key" => Ok(Grantee::ApiKey(parse_id(id, "api key")?)),
        _ => Err(StoreError::Corrupt {
            what: "unknown grantee kind".into(),
        }),
    }
}

fn grantee_parts(g: &Grantee) -> (&'static str, String) {
    match g {
        Grantee::Account(a) => ("account", a.to_string()),
        Grantee::ApiKey(k) => ("api_key", k.to_string()),
    }
}

impl Store {
    /// The workspace of a project, `None` when there is no such project.
    pub async fn project_workspace(
        &self,
        project: &ProjectId,
    ) -> Result<Option<WorkspaceId>, StoreError> {
        let ws: Option<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT workspace_id FROM projects WHERE id = $1")
                .bind(project.to_string())
                .fetch_optional(pool)
                .await?
        });
        ws.map(|w| parse_id(&w, "workspace")).transpose()
    }

    /// An environment and the workspace it is in, `None` when there is no such environment.
    pub async fn environment_context(
        &self,
        env: &EnvironmentId,
    ) -> Result<Option<(Environment, WorkspaceId)>, StoreError> {
        let row: Option<(String, EnvironmentRow)> = with_pool!(self, pool => {
            let ws: Option<String> = sqlx::query_scalar(
                "SELECT p.workspace_id FROM environments e JOIN projects p ON p.id = e.project_id \
                 WHERE e.id = $1",
            )
            .bind(env.to_string())
            .fetch_optional(pool)
            .await?;
            match ws {
                None => None,
                Some(ws) => {
                    let row: EnvironmentRow = sqlx::query_as(
                        "SELECT id, project_id, slug, name, key_version, created_at \
                         FROM environments WHERE id = $1",
                    )
                    .bind(env.to_string())
                    .fetch_one(pool)
                    .await?;
                    Some((ws, row))
                }
            }
        });
        row.map(|(ws, env)| Ok((Environment::try_from(env)?, parse_id(&ws, "workspace")?)))
            .transpose()
    }

    /// Whether `account` holds the project key of `project`, and (for `env`) a direct grant of
    /// that environment.
    pub async fn key_holdings(
        &self,
        account: &AccountId,
        project: &ProjectId,
        env: Option<&EnvironmentId>,
    ) -> Result<(bool, bool), StoreError> {
        let (project_key, grant): (i64, i64) = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT \
                   (SELECT COUNT(*) FROM project_keys WHERE project_id = $1 AND account_id = $2), \
                   (SELECT COUNT(*) FROM environment_grants WHERE environment_id = $3 \
                    AND grantee_kind = 'account' AND grantee_id = $2)",
            )
            .bind(project.to_string())
            .bind(account.to_string())
            .bind(env.map(ToString::to_string).unwrap_or_default())
            .fetch_one(pool)
            .await?
        });
        Ok((project_key > 0, grant > 0))
    }

    /// The direct grants of an environment with each grantee's public key.
    pub async fn environment_grants(
        &self,
        env: &EnvironmentId,
    ) -> Result<Vec<GrantInfo>, StoreError> {
        let rows: Vec<(String, String, i64, Option<Vec<u8>>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT g.grantee_kind, g.grantee_id, g.key_version, \
                 COALESCE(a.public_key, k.public_key) AS public_key \
                 FROM environment_grants g \
                 LEFT JOIN accounts a ON g.grantee_kind = 'account' AND a.id = g.grantee_id \
                 LEFT JOIN api_keys k ON g.grantee_kind = 'api_key' AND k.id = g.grantee_id \
                 WHERE g.environment_id = $1 ORDER BY g.grantee_kind, g.grantee_id",
            )
            .bind(env.to_string())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(kind, id, key_version, public_key)| {
                Ok(GrantInfo {
                    grantee: grantee_of(&kind, &id)?,
                    public_key: Blob(public_key.unwrap_or_default()),
                    key_version,
                })
            })
            .collect()
    }

    /// Rotates an environment's key in one transaction (see
    /// [`RotateRequest`](klef_core::wire::RotateRequest)): checks the key version, that every
    /// live secret is re-encrypted from its latest version, and that the grants are for current
    /// grantees; then bumps the key version, replaces the sealed key and the grants, writes
    /// the re-encrypted versions signed `author`, and records `audit`. A secret changed since
    /// it was read is [`StoreError::Conflict`]; any other stale view is
    /// [`RotateOutcome::Stale`]; in both cases nothing is written.
    pub async fn rotate_environment(
        &self,
        env: &EnvironmentId,
        req: &RotateRequest,
        author: &str,
        audit: &Audit,
    ) -> Result<RotateOutcome, StoreError> {
        let env_id = env.to_string();
        let mut requested: BTreeMap<&str, &klef_core::wire::RotatedSecret> = BTreeMap::new();
        for s in &req.secrets {
            if requested.insert(s.name.as_str(), s).is_some() {
                return Err(StoreError::Invalid {
                    reason: format!("secret {} appears twice", s.name),
                });
            }
        }
        let mut new_grantees = BTreeSet::new();
        for g in &req.grants {
            if !new_grantees.insert(g.grantee) {
                return Err(StoreError::Invalid {
                    reason: "a grantee appears twice".into(),
                });
            }
        }
        let now = now_ms();
        write_tx!(self, |tx, dialect| {
            let current: Option<i64> = sqlx::query_scalar(dialect.pick(
                "SELECT key_version FROM environments WHERE id = $1",
                "SELECT key_version FROM environments WHERE id = $1 FOR UPDATE",
            ))
            .bind(&env_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(current) = current else {
                return Err(StoreError::NotFound {
                    what: format!("environment {env}"),
                });
            };
            if current != req.expected_key_version {
                return Ok(RotateOutcome::Stale {
                    reason: format!(
                        "the environment key is at version {current}, not {}",
                        req.expected_key_version
                    ),
                });
            }
            let live: Vec<(String, i64, Option<String>)> = sqlx::query_as(
                "SELECT s.name, s.version, s.author FROM secrets s \
                 WHERE s.environment_id = $1 AND s.ciphertext IS NOT NULL \
                 AND s.version = (SELECT MAX(v.version) FROM secrets v \
                                  WHERE v.environment_id = s.environment_id AND v.name = s.name)",
            )
            .bind(&env_id)
            .fetch_all(&mut *tx)
            .await?;
            for (name, version, author) in &live {
                let Some(s) = requested.get(name.as_str()) else {
                    return Ok(RotateOutcome::Stale {
                        reason: format!("secret {name} was not re-encrypted"),
                    });
                };
                if s.expected_version != *version {
                    return Err(StoreError::Conflict {
                        name: name.clone(),
                        expected: s.expected_version,
                        actual: *version,
                        changed_by: author.clone().unwrap_or_else(|| "someone else".into()),
                    });
                }
            }
            if live.len() != requested.len() {
                let live_names: BTreeSet<&str> = live.iter().map(|(n, _, _)| n.as_str()).collect();
                let extra = requested.keys().find(|n| !live_names.contains(*n)).copied();
                return Ok(RotateOutcome::Stale {
                    reason: format!("{} is not a live secret", extra.unwrap_or("a name")),
                });
            }
            let holders: Vec<(String, String)> = sqlx::query_as(
                "SELECT grantee_kind, grantee_id FROM environment_grants WHERE environment_id = $1",
            )
            .bind(&env_id)
            .fetch_all(&mut *tx)
            .await?;
            let holders: BTreeSet<Grantee> = holders
                .iter()
                .map(|(k, i)| grantee_of(k, i))
                .collect::<Result<_, _>>()?;
            if let Some(stranger) = new_grantees.iter().find(|g| !holders.contains(g)) {
                let (kind, id) = grantee_parts(stranger);
                return Ok(RotateOutcome::Stale {
                    reason: format!("{kind} {id} holds no grant of this environment"),
                });
            }
            let next = current + 1;
            sqlx::query("UPDATE environments SET key_version = $2, sealed_key = $3 WHERE id = $1")
                .bind(&env_id)
                .bind(next)
                .bind(req.sealed_key.as_bytes())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM environment_grants WHERE environment_id = $1")
                .bind(&env_id)
                .execute(&mut *tx)
                .await?;
            for g in &req.grants {
                let (kind, id) = grantee_parts(&g.grantee);
                sqlx::query(
                    "INSERT INTO environment_grants \
                     (environment_id, grantee_kind, grantee_id, wrapped_key, key_version, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&env_id)
                .bind(kind)
                .bind(&id)
                .bind(g.wrapped_key.as_bytes())
                .bind(next)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            let mut written = Vec::with_capacity(live.len());
            for (name, version, _) in &live {
                let s = requested[name.as_str()];
                sqlx::query(
                    "INSERT INTO secrets \
                     (environment_id, name, version, ciphertext, key_version, created_at, author) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&env_id)
                .bind(name)
                .bind(version + 1)
                .bind(s.ciphertext.as_bytes())
                .bind(next)
                .bind(now)
                .bind(author)
                .execute(&mut *tx)
                .await?;
                written.push(SecretVersion {
                    environment_id: *env,
                    name: name.clone(),
                    version: version + 1,
                    ciphertext: Some(s.ciphertext.clone()),
                    key_version: next,
                    created_at: now,
                    author: Some(author.to_owned()),
                });
            }
            written.sort_by(|a, b| a.name.cmp(&b.name));
            let row: EnvironmentRow = sqlx::query_as(
                "SELECT id, project_id, slug, name, key_version, created_at \
                 FROM environments WHERE id = $1",
            )
            .bind(&env_id)
            .fetch_one(&mut *tx)
            .await?;
            insert_audit!(&mut *tx, audit)?;
            Ok(RotateOutcome::Rotated {
                environment: Environment::try_from(row)?,
                written,
            })
        })
    }
}
