//! Key rotation of an environment, for the local vault and the server alike: the client
//! re-encrypts every live value and re-wraps every direct grant under a new key, and
//! [`Store::rotate_environment`] swaps all of it in, in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use klef_core::backup::GranteeKind;
use klef_core::ids::EnvironmentId;
use klef_core::model::{Environment, Grantee, KeyRotation, RotatedSecret, SecretVersion};

use crate::audit::Audit;
use crate::rows::{EnvironmentRow, grantee_of};
use crate::tables::{self, Grant};
use crate::tx::Tx;
use crate::{Store, StoreError, invalid, not_found, now_ms};

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

/// The stored kind and id of a grantee.
pub(crate) fn grantee_parts(g: &Grantee) -> (GranteeKind, String) {
    match g {
        Grantee::Account(a) => (GranteeKind::Account, a.to_string()),
        Grantee::ApiKey(k) => (GranteeKind::ApiKey, k.to_string()),
    }
}

impl Store {
    /// Rotates an environment's key in one transaction (see [`KeyRotation`]): checks the key version, that every
    /// live secret is re-encrypted from its latest version, and that the grants are for current
    /// grantees; then bumps the key version, replaces the sealed key and the grants, writes
    /// the re-encrypted versions signed `author`, and records `audit` (the server records every change). A secret changed since
    /// it was read is [`StoreError::Conflict`]; any other stale view is
    /// [`RotateOutcome::Stale`]; in both cases nothing is written.
    pub async fn rotate_environment(
        &self,
        env: &EnvironmentId,
        req: &KeyRotation,
        author: &str,
        audit: Option<&Audit>,
    ) -> Result<RotateOutcome, StoreError> {
        let mut requested: BTreeMap<&str, &RotatedSecret> = BTreeMap::new();
        for s in &req.secrets {
            if requested.insert(s.name.as_str(), s).is_some() {
                return Err(invalid(format!("secret {} appears twice", s.name)));
            }
        }
        let mut new_grantees = BTreeSet::new();
        for g in &req.grants {
            if !new_grantees.insert(g.grantee) {
                return Err(invalid("a grantee appears twice"));
            }
        }
        let mut tx = Tx::write(self).await?;
        let result = rotate_in(&mut tx, env, req, &requested, &new_grantees, author, audit).await;
        tx.finish(result).await
    }
}

/// The transaction of [`Store::rotate_environment`].
async fn rotate_in(
    tx: &mut Tx,
    env: &EnvironmentId,
    req: &KeyRotation,
    requested: &BTreeMap<&str, &RotatedSecret>,
    new_grantees: &BTreeSet<Grantee>,
    author: &str,
    audit: Option<&Audit>,
) -> Result<RotateOutcome, StoreError> {
    let env_id = env.to_string();
    let now = now_ms();
    let current: Option<(i64,)> = tx
        .optional(
            tx.dialect().pick(
                "SELECT key_version FROM environments WHERE id = $1",
                "SELECT key_version FROM environments WHERE id = $1 FOR UPDATE",
            ),
            &[(&env_id).into()],
        )
        .await?;
    let Some((current,)) = current else {
        return Err(not_found(format!("environment {env}")));
    };
    if current != req.expected_key_version {
        return Ok(RotateOutcome::Stale {
            reason: format!(
                "the environment key is at version {current}, not {}",
                req.expected_key_version
            ),
        });
    }
    let live: Vec<(String, i64, Option<String>)> = tx
        .all(
            concat!(
                "SELECT s.name, s.version, s.author FROM secrets s WHERE ",
                live_secrets!()
            ),
            &[(&env_id).into()],
        )
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
    let holders: Vec<(String, String)> = tx
        .all(
            "SELECT grantee_kind, grantee_id FROM environment_grants WHERE environment_id = $1",
            &[(&env_id).into()],
        )
        .await?;
    let holders: BTreeSet<Grantee> = holders
        .iter()
        .map(|(k, i)| grantee_of(k, i))
        .collect::<Result<_, _>>()?;
    if let Some(stranger) = new_grantees.iter().find(|g| !holders.contains(g)) {
        let (kind, id) = grantee_parts(stranger);
        return Ok(RotateOutcome::Stale {
            reason: format!("{} {id} holds no grant of this environment", kind.as_str()),
        });
    }
    let next = current + 1;
    tx.execute(
        "UPDATE environments SET key_version = $2, sealed_key = $3 WHERE id = $1",
        &[(&env_id).into(), next.into(), (&req.sealed_key).into()],
    )
    .await?;
    tx.execute(
        "DELETE FROM environment_grants WHERE environment_id = $1",
        &[(&env_id).into()],
    )
    .await?;
    for g in &req.grants {
        let (kind, id) = grantee_parts(&g.grantee);
        tables::insert_grant(
            tx,
            &Grant {
                environment_id: env,
                grantee_kind: kind,
                grantee_id: &id,
                wrapped_key: &g.wrapped_key,
                key_version: next,
                created_at: now,
            },
        )
        .await?;
    }
    let mut written: Vec<SecretVersion> = live
        .iter()
        .map(|(name, version, _)| SecretVersion {
            environment_id: *env,
            name: name.clone(),
            version: version + 1,
            ciphertext: Some(requested[name.as_str()].ciphertext.clone()),
            key_version: next,
            created_at: now,
            author: Some(author.to_owned()),
        })
        .collect();
    written.sort_by(|a, b| a.name.cmp(&b.name));
    tables::insert_secret_versions(
        tx,
        &written,
        crate::queries::manifest_revision(req.manifest.as_ref()),
    )
    .await?;
    crate::manifests::append(tx, env, req.manifest.as_ref(), Some(author), now).await?;
    let row: EnvironmentRow = tx
        .one(
            "SELECT id, project_id, slug, name, key_version, created_at \
             FROM environments WHERE id = $1",
            &[(&env_id).into()],
        )
        .await?;
    if let Some(entry) = audit {
        tables::insert_audit(tx, entry).await?;
    }
    Ok(RotateOutcome::Rotated {
        environment: Environment::try_from(row)?,
        written,
    })
}
