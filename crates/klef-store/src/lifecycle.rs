//! Renaming and deleting environments, projects and workspaces: the one path for the local
//! vault and the server. Each is one transaction that also appends the caller's audit entry.
//!
//! The store checks visibility (the account is a member of the workspace, and for
//! environments holds the project key); who may rename or delete (admins, the owner for a
//! workspace) is the server's authorization. Secrets are append-only, so a delete lifts their
//! guard for its own transaction only (`backup::delete_past_guard`), as a restore does; every
//! other row goes by `ON DELETE CASCADE` (grants, API-key scopes, project keys, members,
//! invitations). Audit entries stay: `audit_log.workspace_id` references nothing.

use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{EnvironmentManifest, ManifestRecord};
use klef_core::names::{validate_display_name, validate_slug};

use crate::audit::Audit;
use crate::backup::delete_past_guard;
use crate::tables;
use crate::tx::Tx;
use crate::{Store, StoreError, invalid, not_found, now_ms};

/// The environment's project and workspace, when `account` is a member holding the project
/// key.
const ENVIRONMENT_OF_MEMBER: &str = "SELECT e.project_id, p.workspace_id FROM environments e \
     JOIN projects p ON p.id = e.project_id \
     JOIN project_keys k ON k.project_id = p.id AND k.account_id = $2 \
     JOIN workspace_members m ON m.workspace_id = p.workspace_id AND m.account_id = $2 \
     WHERE e.id = $1";

/// The project's workspace, when `account` is a member.
const PROJECT_OF_MEMBER: &str = "SELECT p.workspace_id FROM projects p \
     JOIN workspace_members m ON m.workspace_id = p.workspace_id AND m.account_id = $2 \
     WHERE p.id = $1";

/// The workspace's `personal` flag, when `account` is a member.
const WORKSPACE_OF_MEMBER: &str = "SELECT w.personal FROM workspaces w \
     JOIN workspace_members m ON m.workspace_id = w.id AND m.account_id = $2 \
     WHERE w.id = $1";

/// Deletes every secret version of environment `$1`.
const DELETE_ENVIRONMENT_SECRETS: &str = "DELETE FROM secrets WHERE environment_id = $1";

/// Deletes every secret version of project `$1`'s environments.
const DELETE_PROJECT_SECRETS: &str = "DELETE FROM secrets WHERE environment_id IN \
     (SELECT id FROM environments WHERE project_id = $1)";

/// Deletes every secret version of workspace `$1`'s environments.
const DELETE_WORKSPACE_SECRETS: &str = "DELETE FROM secrets WHERE environment_id IN \
     (SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id \
      WHERE p.workspace_id = $1)";

async fn audit_in(tx: &mut Tx, audit: Option<&Audit>) -> Result<(), StoreError> {
    if let Some(entry) = audit {
        tables::insert_audit(tx, entry).await?;
    }
    Ok(())
}

impl Store {
    /// Gives an environment of a project `account` holds the key of a new slug and display
    /// name, and appends `audit`. A slug used by another environment of the project gives
    /// [`StoreError::AlreadyExists`]; an environment out of reach, [`StoreError::NotFound`].
    /// Values are bound to the environment's id, so they stay readable.
    pub async fn rename_environment(
        &self,
        account: &AccountId,
        env: &EnvironmentId,
        slug: &str,
        name: &str,
        manifest: Option<&ManifestRecord>,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        validate_slug(slug).map_err(invalid)?;
        validate_display_name("environment name", name).map_err(invalid)?;
        let id = env.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let found: Option<(String, String)> = tx
                .optional(
                    ENVIRONMENT_OF_MEMBER,
                    &[(&id).into(), account.to_string().into()],
                )
                .await?;
            if found.is_none() {
                return Err(not_found(format!("environment {env}")));
            }
            tx.execute(
                "UPDATE environments SET slug = $2, name = $3 WHERE id = $1",
                &[(&id).into(), slug.into(), name.into()],
            )
            .await
            .map_err(|e| StoreError::exists_or(e, || format!("environment {slug:?}")))?;
            let by = account.to_string();
            crate::manifests::append(&mut tx, env, manifest, Some(&by), now_ms()).await?;
            audit_in(&mut tx, audit).await
        }
        .await;
        tx.finish(result).await
    }

    /// Deletes an environment of a project `account` holds the key of, with every version of
    /// its secrets, its grants and API-key scopes, and takes it out of open invitations'
    /// environment lists; appends `audit`. The project's last environment is refused
    /// ([`StoreError::Invalid`]): delete the project instead.
    pub async fn delete_environment(
        &self,
        account: &AccountId,
        env: &EnvironmentId,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        let id = env.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let found: Option<(String, String)> = tx
                .optional(
                    ENVIRONMENT_OF_MEMBER,
                    &[(&id).into(), account.to_string().into()],
                )
                .await?;
            let Some((project, workspace)) = found else {
                return Err(not_found(format!("environment {env}")));
            };
            let siblings = tx
                .count(
                    "SELECT COUNT(*) FROM environments WHERE project_id = $1",
                    &[(&project).into()],
                )
                .await?;
            if siblings <= 1 {
                return Err(invalid(
                    "this is the project's last environment; delete the project instead",
                ));
            }
            delete_past_guard(&mut tx, &[DELETE_ENVIRONMENT_SECRETS], &[(&id).into()]).await?;
            tx.execute("DELETE FROM environments WHERE id = $1", &[(&id).into()])
                .await?;
            forget_in_invitations(&mut tx, &workspace, &id).await?;
            audit_in(&mut tx, audit).await
        }
        .await;
        tx.finish(result).await
    }

    /// Renames a project of a workspace `account` belongs to, and appends `audit`. A name used
    /// by another project of the workspace gives [`StoreError::AlreadyExists`].
    pub async fn rename_project(
        &self,
        account: &AccountId,
        project: &ProjectId,
        name: &str,
        manifests: &[EnvironmentManifest],
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        validate_display_name("project name", name).map_err(invalid)?;
        let id = project.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let found: Option<(String,)> = tx
                .optional(
                    PROJECT_OF_MEMBER,
                    &[(&id).into(), account.to_string().into()],
                )
                .await?;
            if found.is_none() {
                return Err(not_found(format!("project {project}")));
            }
            tx.execute(
                "UPDATE projects SET name = $2 WHERE id = $1",
                &[(&id).into(), name.into()],
            )
            .await
            .map_err(|e| StoreError::exists_or(e, || format!("project {name:?}")))?;
            // Every environment with signed state gets its next manifest, with the new name;
            // one left out is refused (its readers would see the old name).
            let envs: Vec<(String,)> = tx
                .all(
                    "SELECT id FROM environments WHERE project_id = $1",
                    &[(&id).into()],
                )
                .await?;
            let by = account.to_string();
            let now = now_ms();
            for (env,) in &envs {
                let env_id: EnvironmentId = crate::rows::parse_id(env, "environment")?;
                let manifest = manifests
                    .iter()
                    .find(|m| m.environment_id == env_id)
                    .map(|m| &m.manifest);
                crate::manifests::append(&mut tx, &env_id, manifest, Some(&by), now).await?;
            }
            if let Some(stranger) = manifests
                .iter()
                .find(|m| !envs.iter().any(|(e,)| *e == m.environment_id.to_string()))
            {
                return Err(invalid(format!(
                    "environment {} is not in project {project}",
                    stranger.environment_id
                )));
            }
            audit_in(&mut tx, audit).await
        }
        .await;
        tx.finish(result).await
    }

    /// Deletes a project of a workspace `account` belongs to, with its environments, every
    /// version of their secrets, its keys, grants and API-key scopes; appends `audit`.
    pub async fn delete_project(
        &self,
        account: &AccountId,
        project: &ProjectId,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        let id = project.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let found: Option<(String,)> = tx
                .optional(
                    PROJECT_OF_MEMBER,
                    &[(&id).into(), account.to_string().into()],
                )
                .await?;
            let Some((workspace,)) = found else {
                return Err(not_found(format!("project {project}")));
            };
            let envs: Vec<(String,)> = tx
                .all(
                    "SELECT id FROM environments WHERE project_id = $1",
                    &[(&id).into()],
                )
                .await?;
            delete_past_guard(&mut tx, &[DELETE_PROJECT_SECRETS], &[(&id).into()]).await?;
            tx.execute("DELETE FROM projects WHERE id = $1", &[(&id).into()])
                .await?;
            for (env,) in &envs {
                forget_in_invitations(&mut tx, &workspace, env).await?;
            }
            audit_in(&mut tx, audit).await
        }
        .await;
        tx.finish(result).await
    }

    /// Renames a workspace `account` belongs to, and appends `audit`. A name of another of the
    /// account's workspaces gives [`StoreError::AlreadyExists`].
    pub async fn rename_workspace(
        &self,
        account: &AccountId,
        ws: &WorkspaceId,
        name: &str,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        validate_display_name("workspace name", name).map_err(invalid)?;
        let id = ws.to_string();
        let me = account.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let found: Option<(bool,)> = tx
                .optional(WORKSPACE_OF_MEMBER, &[(&id).into(), (&me).into()])
                .await?;
            if found.is_none() {
                return Err(not_found(format!("workspace {ws}")));
            }
            let taken = tx
                .count(
                    "SELECT COUNT(*) FROM workspaces w JOIN workspace_members m \
                     ON m.workspace_id = w.id AND m.account_id = $1 \
                     WHERE w.name = $2 AND w.id <> $3",
                    &[(&me).into(), name.into(), (&id).into()],
                )
                .await?;
            if taken > 0 {
                return Err(StoreError::AlreadyExists {
                    what: format!("workspace {name:?}"),
                });
            }
            tx.execute(
                "UPDATE workspaces SET name = $2 WHERE id = $1",
                &[(&id).into(), name.into()],
            )
            .await?;
            audit_in(&mut tx, audit).await
        }
        .await;
        tx.finish(result).await
    }

    /// Deletes a team workspace `account` belongs to, with its projects (as
    /// [`Store::delete_project`]), members and invitations; appends `audit`. A personal
    /// workspace is refused ([`StoreError::Invalid`]).
    pub async fn delete_workspace(
        &self,
        account: &AccountId,
        ws: &WorkspaceId,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        let id = ws.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let found: Option<(bool,)> = tx
                .optional(
                    WORKSPACE_OF_MEMBER,
                    &[(&id).into(), account.to_string().into()],
                )
                .await?;
            let Some((personal,)) = found else {
                return Err(not_found(format!("workspace {ws}")));
            };
            if personal {
                return Err(invalid("a personal workspace cannot be deleted"));
            }
            delete_past_guard(&mut tx, &[DELETE_WORKSPACE_SECRETS], &[(&id).into()]).await?;
            // Projects first: their environments, keys, grants and scopes cascade; then the
            // workspace, whose members and invitations cascade.
            tx.execute(
                "DELETE FROM projects WHERE workspace_id = $1",
                &[(&id).into()],
            )
            .await?;
            tx.execute("DELETE FROM workspaces WHERE id = $1", &[(&id).into()])
                .await?;
            audit_in(&mut tx, audit).await
        }
        .await;
        tx.finish(result).await
    }
}

/// Takes environment `env` out of the environment lists (JSON arrays of ids) of workspace
/// `workspace`'s open invitations, so confirming one later does not look for it.
async fn forget_in_invitations(tx: &mut Tx, workspace: &str, env: &str) -> Result<(), StoreError> {
    let open: Vec<(String, String)> = tx
        .all(
            "SELECT id, environments FROM invitations \
             WHERE workspace_id = $1 AND closed_at IS NULL AND environments IS NOT NULL",
            &[workspace.into()],
        )
        .await?;
    for (id, list) in open {
        let Ok(mut ids) = serde_json::from_str::<Vec<String>>(&list) else {
            continue;
        };
        let before = ids.len();
        ids.retain(|e| e != env);
        if ids.len() != before {
            let list = serde_json::to_string(&ids).map_err(|e| invalid(e.to_string()))?;
            tx.execute(
                "UPDATE invitations SET environments = $2 WHERE id = $1",
                &[(&id).into(), list.into()],
            )
            .await?;
        }
    }
    Ok(())
}
