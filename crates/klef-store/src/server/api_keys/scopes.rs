//! A system key's scopes and the environment keys wrapped to it: checking a scope list and a
//! set of wrapped keys against the environments the scopes cover, and writing both.

use std::collections::{BTreeMap, BTreeSet};

use klef_core::backup::GranteeKind;
use klef_core::ids::EnvironmentId;
use klef_core::model::{ApiKeyScope, Timestamp, WrappedEnvironmentKey};

use crate::rows::parse_id;
use crate::tables::{self, Grant};
use crate::tx::Tx;
use crate::{StoreError, invalid, not_found};

/// Checks a scope list's shape: at least one, no repeats, no `proj:env` beside `proj:*`.
pub(super) fn check_scopes(scopes: &[ApiKeyScope]) -> Result<(), StoreError> {
    if scopes.is_empty() {
        return Err(invalid("a system key needs at least one scope"));
    }
    let mut seen = BTreeSet::new();
    for s in scopes {
        if !seen.insert(*s) {
            return Err(invalid(format!("scope {} is listed twice", describe(s))));
        }
    }
    for s in scopes {
        if s.environment_id.is_some()
            && seen.contains(&ApiKeyScope {
                project_id: s.project_id,
                environment_id: None,
            })
        {
            return Err(invalid(format!(
                "scope {} is already covered by every environment of project {}",
                describe(s),
                s.project_id
            )));
        }
    }
    Ok(())
}

fn describe(s: &ApiKeyScope) -> String {
    match s.environment_id {
        Some(e) => format!("{}:{e}", s.project_id),
        None => format!("{}:*", s.project_id),
    }
}

/// Checks that every wrapped key is for a covered environment at its current key version,
/// at most once, and (when `required` is given) that every required environment has one.
pub(super) fn check_grants(
    covered: &BTreeMap<EnvironmentId, (i64, String)>,
    grants: &[WrappedEnvironmentKey],
    required: &BTreeSet<EnvironmentId>,
) -> Result<(), StoreError> {
    let mut given = BTreeSet::new();
    for g in grants {
        let Some((version, slug)) = covered.get(&g.environment_id) else {
            return Err(invalid(format!(
                "environment {} is not in the key's scopes",
                g.environment_id
            )));
        };
        if g.key_version != *version {
            return Err(invalid(format!(
                "environment {slug} is at key version {version}, not {}",
                g.key_version
            )));
        }
        if g.wrapped_key.as_bytes().is_empty() {
            return Err(invalid(format!("the key of environment {slug} is empty")));
        }
        if !given.insert(g.environment_id) {
            return Err(invalid(format!("environment {slug} is wrapped twice")));
        }
    }
    if let Some(missing) = required.iter().find(|e| !given.contains(e)) {
        let slug = covered.get(missing).map_or("?", |(_, s)| s.as_str());
        return Err(invalid(format!(
            "the key of environment {slug} ({missing}) must be wrapped to the system key"
        )));
    }
    Ok(())
}

/// Checks the scopes against the database and answers the environments they cover, each
/// with its current key version and slug.
pub(super) async fn covered_environments(
    tx: &mut Tx,
    scopes: &[ApiKeyScope],
) -> Result<BTreeMap<EnvironmentId, (i64, String)>, StoreError> {
    let mut covered = BTreeMap::new();
    for s in scopes {
        let project = s.project_id.to_string();
        let rows: Vec<(String, i64, String)> = match s.environment_id {
            Some(env) => {
                tx.all(
                    "SELECT id, key_version, slug FROM environments \
                     WHERE id = $1 AND project_id = $2",
                    &[env.to_string().into(), (&project).into()],
                )
                .await?
            }
            None => {
                tx.all(
                    "SELECT id, key_version, slug FROM environments WHERE project_id = $1",
                    &[(&project).into()],
                )
                .await?
            }
        };
        let exists = tx
            .count(
                "SELECT COUNT(*) FROM projects WHERE id = $1",
                &[(&project).into()],
            )
            .await?;
        if exists == 0 {
            return Err(not_found(format!("project {}", s.project_id)));
        }
        if let (Some(env), true) = (s.environment_id, rows.is_empty()) {
            return Err(not_found(format!(
                "environment {env} of project {}",
                s.project_id
            )));
        }
        for (id, version, slug) in rows {
            covered.insert(parse_id(&id, "environment")?, (version, slug));
        }
    }
    Ok(covered)
}

/// Stores the scopes of key `key`.
pub(super) async fn insert_scopes(
    tx: &mut Tx,
    key: &str,
    scopes: &[ApiKeyScope],
) -> Result<(), StoreError> {
    for s in scopes {
        tx.execute(
            "INSERT INTO api_key_scopes (api_key_id, project_id, environment_id) \
             VALUES ($1, $2, $3)",
            &[
                key.into(),
                s.project_id.to_string().into(),
                s.environment_id.map(|e| e.to_string()).into(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// Stores (or replaces) direct grants of environment keys to key `key`.
pub(super) async fn upsert_grants(
    tx: &mut Tx,
    key: &str,
    grants: &[WrappedEnvironmentKey],
    now: Timestamp,
) -> Result<(), StoreError> {
    for g in grants {
        delete_grant(tx, &g.environment_id, key).await?;
        tables::insert_grant(
            tx,
            &Grant {
                environment_id: &g.environment_id,
                grantee_kind: GranteeKind::ApiKey,
                grantee_id: key,
                wrapped_key: &g.wrapped_key,
                key_version: g.key_version,
                created_at: now,
            },
        )
        .await?;
    }
    Ok(())
}

/// Deletes the grant of `env`'s key to key `key`.
pub(super) async fn delete_grant(
    tx: &mut Tx,
    env: &EnvironmentId,
    key: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM environment_grants WHERE environment_id = $1 \
         AND grantee_kind = 'api_key' AND grantee_id = $2",
        &[env.to_string().into(), key.into()],
    )
    .await?;
    Ok(())
}
