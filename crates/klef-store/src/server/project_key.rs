//! A project's key replaced after a member with full access left (DESIGN.md §2, §9): that
//! member holds the old one, and every environment key is sealed under it on the server, so
//! without a new project key a server colluding with them could hand them every new
//! environment key. The client re-seals every environment key under a new project key and wraps
//! it to the remaining holders; [`Store::rotate_project_key`] swaps all of it in, in one
//! transaction, or nothing when the client's view is stale.

use std::collections::{BTreeMap, BTreeSet};

use klef_core::ids::{AccountId, EnvironmentId, ProjectId};
use klef_core::wire::RotateProjectKeyRequest;

use crate::audit::Audit;
use crate::rows::parse_id;
use crate::tables;
use crate::tx::Tx;
use crate::{Store, StoreError, invalid, not_found, now_ms};

impl Store {
    /// Replaces project `project`'s key: every environment's sealed key at its current key
    /// version, and the wrapped project key of every current holder (and of members of its
    /// workspace the client adds); records `audit`.
    /// `Ok(Some(reason))` when the request does not match the stored environments, versions or
    /// holders (nothing written).
    pub async fn rotate_project_key(
        &self,
        project: &ProjectId,
        req: &RotateProjectKeyRequest,
        audit: &Audit,
    ) -> Result<Option<String>, StoreError> {
        let mut envs: BTreeMap<EnvironmentId, (i64, &klef_core::model::Blob)> = BTreeMap::new();
        for e in &req.environments {
            if envs
                .insert(e.environment_id, (e.key_version, &e.sealed_key))
                .is_some()
            {
                return Err(invalid(format!(
                    "environment {} appears twice",
                    e.environment_id
                )));
            }
        }
        let mut holders: BTreeMap<AccountId, &klef_core::model::Blob> = BTreeMap::new();
        for k in &req.project_keys {
            if holders.insert(k.account_id, &k.wrapped_key).is_some() {
                return Err(invalid(format!("account {} appears twice", k.account_id)));
            }
        }
        if holders.is_empty() {
            return Err(invalid("project_keys: at least one holder (you)"));
        }
        let id = project.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let found: Option<(String,)> = tx
                .optional(
                    tx.dialect().pick(
                        "SELECT id FROM projects WHERE id = $1",
                        "SELECT id FROM projects WHERE id = $1 FOR UPDATE",
                    ),
                    &[(&id).into()],
                )
                .await?;
            if found.is_none() {
                return Err(not_found(format!("project {project}")));
            }
            let stored: Vec<(String, i64)> = tx
                .all(
                    tx.dialect().pick(
                        "SELECT id, key_version FROM environments WHERE project_id = $1",
                        "SELECT id, key_version FROM environments WHERE project_id = $1 FOR UPDATE",
                    ),
                    &[(&id).into()],
                )
                .await?;
            let mut stored_envs = BTreeMap::new();
            for (env, version) in stored {
                stored_envs.insert(parse_id::<EnvironmentId>(&env, "environment")?, version);
            }
            let sent: BTreeMap<EnvironmentId, i64> =
                envs.iter().map(|(e, (v, _))| (*e, *v)).collect();
            if sent != stored_envs {
                return Ok(Some(
                    "the project's environments or their key versions changed".to_owned(),
                ));
            }
            let stored: Vec<(String,)> = tx
                .all(
                    "SELECT account_id FROM project_keys WHERE project_id = $1",
                    &[(&id).into()],
                )
                .await?;
            let stored_holders: BTreeSet<AccountId> = stored
                .iter()
                .map(|(a,)| parse_id::<AccountId>(a, "account"))
                .collect::<Result<_, _>>()?;
            let sent: BTreeSet<AccountId> = holders.keys().copied().collect();
            if let Some(left_out) = stored_holders.difference(&sent).next() {
                return Ok(Some(format!(
                    "account {left_out} holds the project key but would not get the new one"
                )));
            }
            // New holders (full-access members who never got this project's key) must be
            // members of its workspace.
            let members: Vec<(String,)> = tx
                .all(
                    "SELECT m.account_id FROM workspace_members m \
                     JOIN projects p ON p.workspace_id = m.workspace_id WHERE p.id = $1",
                    &[(&id).into()],
                )
                .await?;
            let members: BTreeSet<AccountId> = members
                .iter()
                .map(|(a,)| parse_id::<AccountId>(a, "account"))
                .collect::<Result<_, _>>()?;
            if let Some(stranger) = sent.difference(&members).next() {
                return Err(invalid(format!(
                    "account {stranger} is not a member of the project's workspace"
                )));
            }
            for (env, (_, sealed)) in &envs {
                tx.execute(
                    "UPDATE environments SET sealed_key = $2 WHERE id = $1",
                    &[env.to_string().into(), (*sealed).into()],
                )
                .await?;
            }
            tx.execute(
                "DELETE FROM project_keys WHERE project_id = $1",
                &[(&id).into()],
            )
            .await?;
            let now = now_ms();
            for (account, wrapped) in &holders {
                tables::insert_project_key(&mut tx, project, account, wrapped, now).await?;
            }
            tables::insert_audit(&mut tx, audit).await?;
            Ok(None)
        }
        .await;
        tx.finish(result).await
    }
}
