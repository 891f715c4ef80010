//! Creating an environment: the one path for the local vault and the server. On a server the
//! new key is also wrapped to every live system key scoped to all of the project's
//! environments (`proj:*`), in the same transaction, so those keys reach it end to end; the
//! local vault has no API keys, so there the list is empty.

use std::collections::{BTreeMap, BTreeSet};

use klef_core::backup::GranteeKind;
use klef_core::crypto::token::{TokenKind, prefix_of};
use klef_core::ids::{AccountId, ApiKeyId};
use klef_core::model::{ApiKeyGrant, NewEnvironment};
use klef_core::names::{validate_display_name, validate_slug};

use crate::audit::Audit;
use crate::rows::parse_id;
use crate::tables::{self, Grant};
use crate::tx::Tx;
use crate::{Store, StoreError, invalid, not_found, now_ms};

/// What [`Store::create_environment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvironmentCreation {
    /// The environment exists, with grants for every `proj:*` key.
    Created,
    /// Nothing was written: the grants do not name exactly the live `proj:*` keys.
    StaleRecipients {
        /// What differs, as a lower-case phrase.
        reason: String,
    },
}

impl Store {
    /// Adds an environment to a project `account` holds the key of, with its key wrapped to
    /// every live `proj:*` system key, and appends `audit`, in one transaction. `grants` must
    /// name exactly those keys ([`EnvironmentCreation::StaleRecipients`] otherwise, nothing
    /// written). A project `account` holds no key of is [`StoreError::NotFound`]; a slug
    /// already used gives [`StoreError::AlreadyExists`].
    pub async fn create_environment(
        &self,
        account: &AccountId,
        new: &NewEnvironment,
        grants: &[ApiKeyGrant],
        audit: Option<&Audit>,
    ) -> Result<EnvironmentCreation, StoreError> {
        let e = &new.environment;
        validate_slug(&e.slug).map_err(invalid)?;
        validate_display_name("environment name", &e.name).map_err(invalid)?;
        if e.key_version < 1 {
            return Err(invalid("an environment key version starts at 1"));
        }
        let mut given: BTreeMap<ApiKeyId, &ApiKeyGrant> = BTreeMap::new();
        for g in grants {
            if g.wrapped_key.as_bytes().is_empty() {
                return Err(invalid("a wrapped environment key is empty"));
            }
            if given.insert(g.api_key_id, g).is_some() {
                return Err(invalid(format!(
                    "API key {} is granted twice",
                    g.api_key_id
                )));
            }
        }
        let project = e.project_id.to_string();
        let now = now_ms();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let has_key = tx
                .count(
                    "SELECT COUNT(*) FROM project_keys WHERE project_id = $1 AND account_id = $2",
                    &[(&project).into(), account.to_string().into()],
                )
                .await?;
            if has_key == 0 {
                return Err(not_found(format!("project {}", e.project_id)));
            }
            let wanted: Vec<(String,)> = tx
                .all(
                    "SELECT k.id FROM api_keys k JOIN api_key_scopes s ON s.api_key_id = k.id \
                     WHERE s.project_id = $1 AND s.environment_id IS NULL \
                     AND k.kind = 'system' AND k.format = 'split' AND k.revoked_at IS NULL",
                    &[(&project).into()],
                )
                .await?;
            let wanted: BTreeSet<ApiKeyId> = wanted
                .iter()
                .map(|(k,)| parse_id(k, "API key"))
                .collect::<Result<_, _>>()?;
            if let Some(missing) = wanted.iter().find(|k| !given.contains_key(k)) {
                return Ok(EnvironmentCreation::StaleRecipients {
                    reason: format!(
                        "system key {} covers every environment of this project: wrap the new \
                         environment's key to it (GET /v1/projects/{}/api-key-recipients)",
                        prefix_of(TokenKind::System, missing),
                        e.project_id
                    ),
                });
            }
            if let Some(extra) = given.keys().find(|k| !wanted.contains(k)) {
                return Ok(EnvironmentCreation::StaleRecipients {
                    reason: format!(
                        "API key {extra} is not a live key scoped to every environment of \
                         this project"
                    ),
                });
            }
            tables::insert_environment(&mut tx, e, &new.sealed_key)
                .await
                .map_err(|err| {
                    StoreError::exists_or(err, || format!("environment {:?}", e.slug))
                })?;
            crate::manifests::append(
                &mut tx,
                &e.id,
                new.manifest.as_ref(),
                Some(&account.to_string()),
                now,
            )
            .await?;
            for g in given.values() {
                let grantee = g.api_key_id.to_string();
                tables::insert_grant(
                    &mut tx,
                    &Grant {
                        environment_id: &e.id,
                        grantee_kind: GranteeKind::ApiKey,
                        grantee_id: &grantee,
                        wrapped_key: &g.wrapped_key,
                        key_version: e.key_version,
                        created_at: now,
                    },
                )
                .await?;
            }
            if let Some(entry) = audit {
                tables::insert_audit(&mut tx, entry).await?;
            }
            Ok(EnvironmentCreation::Created)
        }
        .await;
        tx.finish(result).await
    }
}
