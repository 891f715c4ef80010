//! The queries, as methods on [`Store`] that take the acting account explicitly, so the local
//! vault and the server share them. Visibility is enforced here (an account sees the workspaces
//! it belongs to, their projects, and the environments it holds a key for); role-based
//! permissions are the server's job. Every statement is the same text on `SQLite` and `PostgreSQL`.

use std::collections::HashMap;

use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    Account, AccountKeys, Environment, EnvironmentKeyAccess, EnvironmentState, ManifestRecord,
    ManifestsSince, NewEnvironment, NewProject, PreviousAccountKeys, Project, Role, SecretVersion,
    SecretWrite, Workspace,
};
use klef_core::names::{validate_display_name, validate_key_name, validate_slug};

use crate::audit::Audit;
use crate::reads::{self, Source};
use crate::rows::LatestRow;
use crate::tables::{self, WRITE_CHUNK, placeholders};
use crate::tx::Dialect;
use crate::tx::Tx;
use crate::{Store, StoreError, invalid, not_found, now_ms};

const IS_MEMBER: &str =
    "SELECT COUNT(*) FROM workspace_members WHERE workspace_id = $1 AND account_id = $2";

/// The newest version (a delete included) of each of `names` names in one environment, as
/// [`LatestRow`]s; binds the environment id, then the names.
fn latest_versions_sql(dialect: Dialect, names: usize) -> String {
    let mut sql = String::from(
        "SELECT s.name, s.version, s.ciphertext IS NULL AS deleted, s.author FROM secrets s \
         WHERE s.environment_id = ",
    );
    placeholders(&mut sql, dialect, 1, 1);
    sql.push_str(concat!(" AND ", newest_version!(), " AND s.name IN ("));
    placeholders(&mut sql, dialect, 2, names);
    sql.push(')');
    sql
}

fn validate_environment(env: &NewEnvironment, project: &ProjectId) -> Result<(), StoreError> {
    let e = &env.environment;
    validate_slug(&e.slug).map_err(invalid)?;
    validate_display_name("environment name", &e.name).map_err(invalid)?;
    if e.project_id != *project {
        return Err(invalid(format!(
            "environment {:?} belongs to another project",
            e.slug
        )));
    }
    if e.key_version < 1 {
        return Err(invalid("an environment key version starts at 1"));
    }
    Ok(())
}

/// Appends `audit`, when there is one, in the transaction of the change it records.
async fn audit_in(tx: &mut Tx, audit: Option<&Audit>) -> Result<(), StoreError> {
    if let Some(entry) = audit {
        tables::insert_audit(tx, entry).await?;
    }
    Ok(())
}

/// Inserts `ws` and makes `owner` its owner (a taken id is [`StoreError::AlreadyExists`]).
async fn insert_owned_workspace(
    tx: &mut Tx,
    ws: &Workspace,
    owner: &AccountId,
) -> Result<(), StoreError> {
    tables::insert_workspace(tx, ws, owner)
        .await
        .map_err(|e| StoreError::exists_or(e, || format!("workspace {}", ws.id)))?;
    tables::insert_member(tx, &ws.id, owner, Role::Owner, ws.created_at).await?;
    Ok(())
}

impl Store {
    /// One account by id.
    pub async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        reads::account(Source::Pool(self), id).await
    }

    /// The oldest account: the owner of a local vault (which holds exactly one).
    pub async fn first_account(&self) -> Result<Option<Account>, StoreError> {
        reads::first_account(Source::Pool(self)).await
    }

    /// Creates an account with its personal workspace (the account as owner) in one
    /// transaction. A taken id or email gives [`StoreError::AlreadyExists`].
    pub async fn create_account(
        &self,
        account: &Account,
        personal: &Workspace,
    ) -> Result<(), StoreError> {
        self.insert_account(account, personal, false).await
    }

    /// As [`Store::create_account`], but only when no account exists yet (the local vault's
    /// owner, or a server's first sign-up); otherwise [`StoreError::AlreadyExists`]. The check
    /// and the insert are one transaction, so two racing callers cannot both succeed.
    pub async fn create_first_account(
        &self,
        account: &Account,
        personal: &Workspace,
    ) -> Result<(), StoreError> {
        self.insert_account(account, personal, true).await
    }

    async fn insert_account(
        &self,
        account: &Account,
        personal: &Workspace,
        first_only: bool,
    ) -> Result<(), StoreError> {
        validate_display_name("workspace name", &personal.name).map_err(invalid)?;
        let mut tx = Tx::write(self).await?;
        let result = async {
            if first_only && tx.count("SELECT COUNT(*) FROM accounts", &[]).await? > 0 {
                return Err(StoreError::AlreadyExists {
                    what: "an account".into(),
                });
            }
            tables::insert_account(&mut tx, account, None)
                .await
                .map_err(|e| StoreError::exists_or(e, || "account".into()))?;
            insert_owned_workspace(&mut tx, personal, &account.id).await
        }
        .await;
        tx.finish(result).await
    }

    /// Replaces an account's password-dependent key material (password change, recovery): the
    /// KDF parameters and both sealed master-key copies, and appends `audit` (the server
    /// records every change) in the same transaction. The key pair must not change; a
    /// different public key or sealed private key gives [`StoreError::Invalid`].
    ///
    /// The replaced seal goes to `account_key_history` in the same transaction, which keeps
    /// the newest [`KEY_HISTORY_KEPT`](klef_core::model::KEY_HISTORY_KEPT) (DESIGN.md §9.4):
    /// a bad write can be undone with the recovery code ([`Store::account_key_history`]).
    pub async fn replace_account_keys(
        &self,
        account: &AccountId,
        keys: &AccountKeys,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        let id = account.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let select = tx.dialect().pick(
                "SELECT public_key, private_key_sealed FROM accounts WHERE id = $1",
                "SELECT public_key, private_key_sealed FROM accounts WHERE id = $1 FOR UPDATE",
            );
            let current: Option<(Vec<u8>, Vec<u8>)> = tx.optional(select, &[(&id).into()]).await?;
            let Some((public_key, private_key_sealed)) = current else {
                return Err(not_found(format!("account {account}")));
            };
            if public_key != keys.public_key.as_bytes()
                || private_key_sealed != keys.private_key_sealed.as_bytes()
            {
                return Err(invalid("the account key pair cannot be replaced"));
            }
            tables::keep_account_key_history(&mut tx, &id, now_ms()).await?;
            let mut args = vec![(&id).into()];
            args.extend(tables::master_key_seal(keys));
            tx.execute(
                "UPDATE accounts SET kdf_algorithm = $2, kdf_m_cost_kib = $3, kdf_t_cost = $4, \
                 kdf_p_cost = $5, kdf_salt = $6, master_key_by_password = $7, \
                 master_key_by_recovery = $8 WHERE id = $1",
                &args,
            )
            .await?;
            audit_in(&mut tx, audit).await
        }
        .await;
        tx.finish(result).await
    }

    /// The earlier seals of an account's master key, newest first (at most
    /// [`KEY_HISTORY_KEPT`](klef_core::model::KEY_HISTORY_KEPT)); empty when its keys were
    /// never replaced.
    pub async fn account_key_history(
        &self,
        account: &AccountId,
    ) -> Result<Vec<PreviousAccountKeys>, StoreError> {
        reads::account_key_history(Source::Pool(self), account).await
    }

    /// The workspaces `account` belongs to, the personal one first, then by creation.
    pub async fn workspaces_for(&self, account: &AccountId) -> Result<Vec<Workspace>, StoreError> {
        reads::workspaces_for(Source::Pool(self), account).await
    }

    /// Creates a workspace with `owner` as its owner, and appends `audit` in the same
    /// transaction. A workspace of the same name among the owner's workspaces gives
    /// [`StoreError::AlreadyExists`].
    pub async fn create_workspace(
        &self,
        owner: &AccountId,
        ws: &Workspace,
        genesis: Option<&klef_core::model::RosterEntry>,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        validate_display_name("workspace name", &ws.name).map_err(invalid)?;
        let owner_id = owner.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let accounts = tx
                .count(
                    "SELECT COUNT(*) FROM accounts WHERE id = $1",
                    &[(&owner_id).into()],
                )
                .await?;
            if accounts == 0 {
                return Err(not_found(format!("account {owner}")));
            }
            let same_name = tx
                .count(
                    "SELECT COUNT(*) FROM workspaces w JOIN workspace_members m \
                     ON m.workspace_id = w.id WHERE m.account_id = $1 AND w.name = $2",
                    &[(&owner_id).into(), (&ws.name).into()],
                )
                .await?;
            if same_name > 0 {
                return Err(StoreError::AlreadyExists {
                    what: format!("workspace {:?}", ws.name),
                });
            }
            insert_owned_workspace(&mut tx, ws, owner).await?;
            if let Some(genesis) = genesis {
                crate::roster::append_roster_entries(
                    &mut tx,
                    &ws.id,
                    std::slice::from_ref(genesis),
                    owner,
                    now_ms(),
                )
                .await?;
            }
            audit_in(&mut tx, audit).await
        }
        .await;
        tx.finish(result).await
    }

    /// The projects of a workspace, by name. [`StoreError::NotFound`] when `account` is not a
    /// member.
    pub async fn projects_visible_to(
        &self,
        account: &AccountId,
        ws: &WorkspaceId,
    ) -> Result<Vec<Project>, StoreError> {
        reads::projects_visible_to(Source::Pool(self), account, ws).await
    }

    /// One project, if `account` is a member of its workspace.
    pub async fn project_visible_to(
        &self,
        account: &AccountId,
        id: &ProjectId,
    ) -> Result<Project, StoreError> {
        reads::project_visible_to(Source::Pool(self), account, id).await
    }

    /// Creates a project, its key wrapped for `account`, and its environments, and appends
    /// `audit`, in one transaction. A project name already used in the workspace, or a
    /// repeated environment slug, gives [`StoreError::AlreadyExists`] and nothing is written.
    pub async fn create_project(
        &self,
        account: &AccountId,
        new: &NewProject,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        let project = &new.project;
        validate_display_name("project name", &project.name).map_err(invalid)?;
        for env in &new.environments {
            validate_environment(env, &project.id)?;
        }
        let mut tx = Tx::write(self).await?;
        let result = async {
            let member = tx
                .count(
                    IS_MEMBER,
                    &[
                        project.workspace_id.to_string().into(),
                        account.to_string().into(),
                    ],
                )
                .await?;
            if member == 0 {
                return Err(not_found(format!("workspace {}", project.workspace_id)));
            }
            tables::insert_project(&mut tx, project)
                .await
                .map_err(|e| StoreError::exists_or(e, || format!("project {:?}", project.name)))?;
            tables::insert_project_key(
                &mut tx,
                &project.id,
                account,
                &new.project_key,
                project.created_at,
            )
            .await?;
            for env in &new.environments {
                insert_new_environment(&mut tx, env).await?;
            }
            audit_in(&mut tx, audit).await
        }
        .await;
        tx.finish(result).await
    }

    /// The environments of a project that `account` can reach (all of them through the project
    /// key, or those granted directly), oldest first.
    pub async fn environments_for(
        &self,
        account: &AccountId,
        project: &ProjectId,
    ) -> Result<Vec<Environment>, StoreError> {
        reads::environments_for(Source::Pool(self), account, project).await
    }

    /// How `account` reaches an environment's key: through its wrapped project key, else
    /// through a direct grant; [`StoreError::NotFound`] otherwise.
    pub async fn environment_key_for(
        &self,
        account: &AccountId,
        env: &EnvironmentId,
    ) -> Result<EnvironmentKeyAccess, StoreError> {
        reads::environment_key_for(Source::Pool(self), account, env).await
    }

    /// The environment, by id (no visibility check: the caller authorizes).
    pub async fn environment(&self, env: &EnvironmentId) -> Result<Environment, StoreError> {
        reads::environment(Source::Pool(self), env).await
    }

    /// The latest live version of every name in an environment (names whose latest version is
    /// a delete are left out), sorted by name. No visibility check: the caller authorizes.
    pub async fn secrets(&self, env: &EnvironmentId) -> Result<Vec<SecretVersion>, StoreError> {
        reads::secrets(Source::Pool(self), env).await
    }

    /// The live values of an environment with the manifests `since` asks for and, with
    /// manifests, the deleted names. No visibility check.
    pub async fn environment_state(
        &self,
        env: &EnvironmentId,
        since: ManifestsSince,
    ) -> Result<EnvironmentState, StoreError> {
        crate::manifests::environment_state(Source::Pool(self), env, since).await
    }

    /// What changed after signed revision `after` (`Backend::environment_changes`). No
    /// visibility check.
    pub async fn environment_changes(
        &self,
        env: &EnvironmentId,
        after: u64,
        personal: Option<klef_core::model::PersonalRecord>,
        known_personal: u64,
    ) -> Result<Option<EnvironmentState>, StoreError> {
        crate::manifests::changes_for(Source::Pool(self), env, after, personal, known_personal)
            .await
    }

    /// Every version of one name, oldest first, deletes included. No visibility check.
    pub async fn secret_history(
        &self,
        env: &EnvironmentId,
        name: &str,
    ) -> Result<Vec<SecretVersion>, StoreError> {
        reads::secret_history(Source::Pool(self), env, name).await
    }

    /// Applies `writes` in one transaction, each as a new version (current + 1) sealed under
    /// the environment's current key version and signed `author`, and appends `audit` in the
    /// same transaction. A stale `expected_version` rolls everything back with
    /// [`StoreError::Conflict`]. `expected_version == 0` also matches a name whose latest
    /// version is a delete. No visibility check.
    ///
    /// Safe under concurrent writers in any number of processes: `SQLite` serialises write
    /// transactions (`BEGIN IMMEDIATE`), `PostgreSQL` writers lock the environment row.
    pub async fn write_secrets(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
        manifest: Option<&ManifestRecord>,
        author: Option<&str>,
        audit: Option<&Audit>,
    ) -> Result<Vec<SecretVersion>, StoreError> {
        for w in writes {
            validate_key_name(&w.name).map_err(invalid)?;
        }
        let env_id = env.to_string();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let dialect = tx.dialect();
            let key_version: Option<(i64,)> = tx
                .optional(
                    dialect.pick(
                        "SELECT key_version FROM environments WHERE id = $1",
                        "SELECT key_version FROM environments WHERE id = $1 FOR UPDATE",
                    ),
                    &[(&env_id).into()],
                )
                .await?;
            let Some((key_version,)) = key_version else {
                return Err(not_found(format!("environment {env}")));
            };
            let created_at = now_ms();
            // The newest version of every name written, read a chunk of names per statement
            // (not one statement per name: a 10,000-line push was 20,000 round trips).
            let mut names: Vec<&str> = writes.iter().map(|w| w.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            let mut latest: HashMap<String, LatestRow> = HashMap::with_capacity(names.len());
            for chunk in names.chunks(WRITE_CHUNK) {
                let mut args = Vec::with_capacity(chunk.len() + 1);
                args.push((&env_id).into());
                args.extend(chunk.iter().map(|name| (*name).into()));
                let rows: Vec<LatestRow> = tx
                    .all(
                        sqlx::AssertSqlSafe(latest_versions_sql(dialect, chunk.len())),
                        &args,
                    )
                    .await?;
                for row in rows {
                    latest.insert(row.name.clone(), row);
                }
            }
            let mut written = Vec::with_capacity(writes.len());
            for w in writes {
                let newest = latest.get(&w.name);
                let current = newest.map_or(0, |l| l.version);
                if let Some(expected) = w.expected_version {
                    let deleted = newest.is_some_and(|l| l.deleted);
                    if expected != current && !(expected == 0 && deleted) {
                        return Err(StoreError::Conflict {
                            name: w.name.clone(),
                            expected,
                            actual: current,
                            changed_by: newest
                                .and_then(|l| l.author.clone())
                                .unwrap_or_else(|| "someone else".into()),
                        });
                    }
                }
                let version = current + 1;
                // A name written twice in one batch: the second write follows the first.
                latest.insert(
                    w.name.clone(),
                    LatestRow {
                        name: w.name.clone(),
                        version,
                        deleted: w.ciphertext.is_none(),
                        author: author.map(str::to_owned),
                    },
                );
                written.push(SecretVersion {
                    environment_id: *env,
                    name: w.name.clone(),
                    version,
                    ciphertext: w.ciphertext.clone(),
                    key_version,
                    created_at,
                    author: author.map(str::to_owned),
                });
            }
            tables::insert_secret_versions(&mut tx, &written, manifest_revision(manifest)).await?;
            crate::manifests::append(&mut tx, env, manifest, author, created_at).await?;
            audit_in(&mut tx, audit).await?;
            Ok(written)
        }
        .await;
        tx.finish(result).await
    }
}

/// The revision a write's manifest gives its rows (`None` without one, or one out of range,
/// which `manifests::append` refuses anyway).
pub(crate) fn manifest_revision(manifest: Option<&ManifestRecord>) -> Option<i64> {
    manifest.and_then(|m| i64::try_from(m.revision).ok())
}

/// Inserts one [`NewEnvironment`]; a taken slug (or id) becomes `AlreadyExists`.
async fn insert_new_environment(tx: &mut Tx, new: &NewEnvironment) -> Result<(), StoreError> {
    let e = &new.environment;
    tables::insert_environment(tx, e, &new.sealed_key)
        .await
        .map_err(|err| StoreError::exists_or(err, || format!("environment {:?}", e.slug)))?;
    crate::manifests::append(tx, &e.id, new.manifest.as_ref(), None, e.created_at).await
}
