//! The queries, as methods on [`Store`] that take the acting account explicitly, so the local
//! vault and the server share them. Visibility is enforced here (an account sees the workspaces
//! it belongs to, their projects, and the environments it holds a key for); role-based
//! permissions are the server's job. Every statement is the same text on `SQLite` and `PostgreSQL`.

use std::time::{SystemTime, UNIX_EPOCH};

use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    Account, AccountKeys, Blob, Environment, EnvironmentKeyAccess, NewEnvironment, NewProject,
    Project, Role, SecretVersion, SecretWrite, Timestamp, Workspace,
};
use klef_core::names::{validate_display_name, validate_key_name, validate_slug};

use crate::rows::{
    AccountRow, EnvironmentRow, LatestRow, ProjectRow, SecretRow, VersionRow, WorkspaceRow, convert,
};
use crate::server::Audit;
use crate::{Store, StoreError};

/// `SELECT <every account column> FROM accounts` followed by `$tail`.
macro_rules! select_account {
    ($tail:literal) => {
        concat!(
            "SELECT id, email, kdf_algorithm, kdf_m_cost_kib, kdf_t_cost, kdf_p_cost, kdf_salt, \
             master_key_by_password, master_key_by_recovery, public_key, private_key_sealed, \
             created_at FROM accounts ",
            $tail
        )
    };
}

/// `SELECT <every secret column> FROM secrets` followed by `$tail`.
macro_rules! select_secret {
    ($tail:literal) => {
        concat!(
            "SELECT environment_id, name, version, ciphertext, key_version, created_at, author \
             FROM secrets ",
            $tail
        )
    };
}

/// `SELECT <every secret column but environment_id> FROM secrets` followed by `$tail`, for
/// [`VersionRow`]s of the one environment `$tail` selects.
macro_rules! select_version {
    ($($tail:expr),+) => {
        concat!(
            "SELECT name, version, ciphertext, key_version, created_at, author FROM secrets ",
            $($tail),+
        )
    };
}

/// Inserts one [`NewEnvironment`] on `$conn`; a taken slug (or id) becomes `AlreadyExists`.
macro_rules! insert_environment {
    ($conn:expr, $new:expr) => {{
        let new: &NewEnvironment = $new;
        let e = &new.environment;
        sqlx::query(INSERT_ENVIRONMENT)
            .bind(e.id.to_string())
            .bind(e.project_id.to_string())
            .bind(&e.slug)
            .bind(&e.name)
            .bind(new.sealed_key.as_bytes())
            .bind(e.key_version)
            .bind(e.created_at)
            .execute($conn)
            .await
            .map(|_| ())
            .map_err(|err| StoreError::exists_or(err, || format!("environment {:?}", e.slug)))
    }};
}

pub(crate) const INSERT_WORKSPACE: &str = "INSERT INTO workspaces (id, name, personal, created_by, created_at) \
     VALUES ($1, $2, $3, $4, $5)";

pub(crate) const INSERT_MEMBER: &str = "INSERT INTO workspace_members (workspace_id, account_id, role, created_at) \
     VALUES ($1, $2, $3, $4)";

const IS_MEMBER: &str =
    "SELECT COUNT(*) FROM workspace_members WHERE workspace_id = $1 AND account_id = $2";

pub(crate) const INSERT_ENVIRONMENT: &str = "INSERT INTO environments \
     (id, project_id, slug, name, sealed_key, key_version, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn invalid(e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid {
        reason: e.to_string(),
    }
}

fn not_found(what: String) -> StoreError {
    StoreError::NotFound { what }
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

impl Store {
    /// One account by id.
    pub async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = with_pool!(self, pool => {
            sqlx::query_as(select_account!("WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.map(Account::try_from).transpose()
    }

    /// One account by sign-in email (server accounts).
    pub async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = with_pool!(self, pool => {
            sqlx::query_as(select_account!("WHERE email = $1"))
                .bind(email)
                .fetch_optional(pool)
                .await?
        });
        row.map(Account::try_from).transpose()
    }

    /// The oldest account: the owner of a local vault (which holds exactly one).
    pub async fn first_account(&self) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = with_pool!(self, pool => {
            sqlx::query_as(select_account!("ORDER BY created_at, id LIMIT 1"))
                .fetch_optional(pool)
                .await?
        });
        row.map(Account::try_from).transpose()
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
        let id = account.id.to_string();
        let ws_id = personal.id.to_string();
        write_tx!(self, |tx, _dialect| {
            if first_only {
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
                    .fetch_one(&mut *tx)
                    .await?;
                if count > 0 {
                    return Err(StoreError::AlreadyExists {
                        what: "an account".into(),
                    });
                }
            }
            insert_account!(&mut *tx, account, None)
                .map_err(|e| StoreError::exists_or(e, || "account".into()))?;
            sqlx::query(INSERT_WORKSPACE)
                .bind(&ws_id)
                .bind(&personal.name)
                .bind(personal.personal)
                .bind(&id)
                .bind(personal.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::exists_or(e, || format!("workspace {}", personal.id)))?;
            sqlx::query(INSERT_MEMBER)
                .bind(&ws_id)
                .bind(&id)
                .bind(Role::Owner.as_str())
                .bind(personal.created_at)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    /// Replaces an account's password-dependent key material (password change, recovery): the
    /// KDF parameters and both sealed master-key copies. The key pair must not change; a
    /// different public key or sealed private key gives [`StoreError::Invalid`].
    pub async fn replace_account_keys(
        &self,
        account: &AccountId,
        keys: &AccountKeys,
    ) -> Result<(), StoreError> {
        self.replace_account_keys_audited(account, keys, None).await
    }

    /// [`Store::replace_account_keys`] that also appends `audit` to the audit log in the same transaction
    /// (the server records every change this way).
    pub async fn replace_account_keys_audited(
        &self,
        account: &AccountId,
        keys: &AccountKeys,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        let id = account.to_string();
        write_tx!(self, |tx, _dialect| {
            let current: Option<(Vec<u8>, Vec<u8>)> =
                sqlx::query_as("SELECT public_key, private_key_sealed FROM accounts WHERE id = $1")
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((public_key, private_key_sealed)) = current else {
                return Err(not_found(format!("account {account}")));
            };
            if public_key != keys.public_key.as_bytes()
                || private_key_sealed != keys.private_key_sealed.as_bytes()
            {
                return Err(invalid("the account key pair cannot be replaced"));
            }
            let update = sqlx::query(
                "UPDATE accounts SET kdf_algorithm = $2, kdf_m_cost_kib = $3, kdf_t_cost = $4, \
                 kdf_p_cost = $5, kdf_salt = $6, master_key_by_password = $7, \
                 master_key_by_recovery = $8 WHERE id = $1",
            )
            .bind(&id);
            bind_master_key_seal!(update, keys)
                .execute(&mut *tx)
                .await?;
            if let Some(entry) = audit {
                insert_audit!(&mut *tx, entry)?;
            }
            Ok(())
        })
    }

    /// The workspaces `account` belongs to, the personal one first, then by creation.
    pub async fn workspaces_for(&self, account: &AccountId) -> Result<Vec<Workspace>, StoreError> {
        let rows: Vec<WorkspaceRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT w.id, w.name, w.personal, w.created_at FROM workspaces w \
                 JOIN workspace_members m ON m.workspace_id = w.id \
                 WHERE m.account_id = $1",
            )
            .bind(account.to_string())
            .fetch_all(pool)
            .await?
        });
        let mut out: Vec<Workspace> = convert(rows)?;
        out.sort_by(|a, b| {
            b.personal
                .cmp(&a.personal)
                .then(a.created_at.cmp(&b.created_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// Creates a workspace with `owner` as its owner. A workspace of the same name among the
    /// owner's workspaces gives [`StoreError::AlreadyExists`].
    pub async fn create_workspace(
        &self,
        owner: &AccountId,
        ws: &Workspace,
    ) -> Result<(), StoreError> {
        self.create_workspace_audited(owner, ws, None).await
    }

    /// [`Store::create_workspace`] that also appends `audit` to the audit log in the same transaction
    /// (the server records every change this way).
    pub async fn create_workspace_audited(
        &self,
        owner: &AccountId,
        ws: &Workspace,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        validate_display_name("workspace name", &ws.name).map_err(invalid)?;
        let owner_id = owner.to_string();
        let ws_id = ws.id.to_string();
        write_tx!(self, |tx, _dialect| {
            let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE id = $1")
                .bind(&owner_id)
                .fetch_one(&mut *tx)
                .await?;
            if accounts == 0 {
                return Err(not_found(format!("account {owner}")));
            }
            let same_name: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM workspaces w JOIN workspace_members m \
                 ON m.workspace_id = w.id WHERE m.account_id = $1 AND w.name = $2",
            )
            .bind(&owner_id)
            .bind(&ws.name)
            .fetch_one(&mut *tx)
            .await?;
            if same_name > 0 {
                return Err(StoreError::AlreadyExists {
                    what: format!("workspace {:?}", ws.name),
                });
            }
            sqlx::query(INSERT_WORKSPACE)
                .bind(&ws_id)
                .bind(&ws.name)
                .bind(ws.personal)
                .bind(&owner_id)
                .bind(ws.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::exists_or(e, || format!("workspace {}", ws.id)))?;
            sqlx::query(INSERT_MEMBER)
                .bind(&ws_id)
                .bind(&owner_id)
                .bind(Role::Owner.as_str())
                .bind(ws.created_at)
                .execute(&mut *tx)
                .await?;
            if let Some(entry) = audit {
                insert_audit!(&mut *tx, entry)?;
            }
            Ok(())
        })
    }

    /// `account`'s role in a workspace, `None` when it is not a member.
    pub async fn role_in(
        &self,
        account: &AccountId,
        ws: &WorkspaceId,
    ) -> Result<Option<Role>, StoreError> {
        let role: Option<String> = with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT role FROM workspace_members WHERE workspace_id = $1 AND account_id = $2",
            )
            .bind(ws.to_string())
            .bind(account.to_string())
            .fetch_optional(pool)
            .await?
        });
        role.map(|r| match r.as_str() {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(StoreError::Corrupt {
                what: "unknown workspace role".into(),
            }),
        })
        .transpose()
    }

    /// The projects of a workspace, by name. [`StoreError::NotFound`] when `account` is not a
    /// member.
    pub async fn projects_for(
        &self,
        account: &AccountId,
        ws: &WorkspaceId,
    ) -> Result<Vec<Project>, StoreError> {
        if self.role_in(account, ws).await?.is_none() {
            return Err(not_found(format!("workspace {ws}")));
        }
        let rows: Vec<ProjectRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, workspace_id, name, created_at FROM projects WHERE workspace_id = $1",
            )
            .bind(ws.to_string())
            .fetch_all(pool)
            .await?
        });
        let mut out: Vec<Project> = convert(rows)?;
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// One project, if `account` is a member of its workspace.
    pub async fn project_for(
        &self,
        account: &AccountId,
        id: &ProjectId,
    ) -> Result<Project, StoreError> {
        let row: Option<ProjectRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT p.id, p.workspace_id, p.name, p.created_at FROM projects p \
                 JOIN workspace_members m ON m.workspace_id = p.workspace_id \
                 WHERE p.id = $1 AND m.account_id = $2",
            )
            .bind(id.to_string())
            .bind(account.to_string())
            .fetch_optional(pool)
            .await?
        });
        row.map(Project::try_from)
            .transpose()?
            .ok_or_else(|| not_found(format!("project {id}")))
    }

    /// Creates a project, its key wrapped for `account`, and its environments in one
    /// transaction. A project name already used in the workspace, or a repeated environment
    /// slug, gives [`StoreError::AlreadyExists`] and nothing is written.
    pub async fn create_project(
        &self,
        account: &AccountId,
        new: &NewProject,
    ) -> Result<(), StoreError> {
        self.create_project_audited(account, new, None).await
    }

    /// [`Store::create_project`] that also appends `audit` to the audit log in the same transaction
    /// (the server records every change this way).
    pub async fn create_project_audited(
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
        let account_id = account.to_string();
        let project_id = project.id.to_string();
        let ws_id = project.workspace_id.to_string();
        write_tx!(self, |tx, _dialect| {
            let member: i64 = sqlx::query_scalar(IS_MEMBER)
                .bind(&ws_id)
                .bind(&account_id)
                .fetch_one(&mut *tx)
                .await?;
            if member == 0 {
                return Err(not_found(format!("workspace {}", project.workspace_id)));
            }
            sqlx::query(
                "INSERT INTO projects (id, workspace_id, name, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&project_id)
            .bind(&ws_id)
            .bind(&project.name)
            .bind(project.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::exists_or(e, || format!("project {:?}", project.name)))?;
            sqlx::query(
                "INSERT INTO project_keys (project_id, account_id, wrapped_key, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&project_id)
            .bind(&account_id)
            .bind(new.project_key.as_bytes())
            .bind(project.created_at)
            .execute(&mut *tx)
            .await?;
            for env in &new.environments {
                insert_environment!(&mut *tx, env)?;
            }
            if let Some(entry) = audit {
                insert_audit!(&mut *tx, entry)?;
            }
            Ok(())
        })
    }

    /// The environments of a project that `account` can reach (all of them through the project
    /// key, or those granted directly), oldest first.
    pub async fn environments_for(
        &self,
        account: &AccountId,
        project: &ProjectId,
    ) -> Result<Vec<Environment>, StoreError> {
        self.project_for(account, project).await?;
        let rows: Vec<EnvironmentRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT e.id, e.project_id, e.slug, e.name, e.key_version, e.created_at \
                 FROM environments e WHERE e.project_id = $1 AND ( \
                   EXISTS (SELECT 1 FROM project_keys k \
                           WHERE k.project_id = e.project_id AND k.account_id = $2) \
                   OR EXISTS (SELECT 1 FROM environment_grants g WHERE g.environment_id = e.id \
                              AND g.grantee_kind = 'account' AND g.grantee_id = $2))",
            )
            .bind(project.to_string())
            .bind(account.to_string())
            .fetch_all(pool)
            .await?
        });
        let mut out: Vec<Environment> = convert(rows)?;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.slug.cmp(&b.slug)));
        Ok(out)
    }

    /// Adds an environment to a project `account` holds the project key of. A slug already
    /// used in the project gives [`StoreError::AlreadyExists`].
    pub async fn create_environment(
        &self,
        account: &AccountId,
        new: &NewEnvironment,
    ) -> Result<(), StoreError> {
        self.create_environment_audited(account, new, None).await
    }

    /// [`Store::create_environment`] that also appends `audit` to the audit log in the same transaction
    /// (the server records every change this way).
    pub async fn create_environment_audited(
        &self,
        account: &AccountId,
        new: &NewEnvironment,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        let project = new.environment.project_id;
        validate_environment(new, &project)?;
        let account_id = account.to_string();
        write_tx!(self, |tx, _dialect| {
            let has_key: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM project_keys WHERE project_id = $1 AND account_id = $2",
            )
            .bind(project.to_string())
            .bind(&account_id)
            .fetch_one(&mut *tx)
            .await?;
            if has_key == 0 {
                return Err(not_found(format!("project {project}")));
            }
            insert_environment!(&mut *tx, new)?;
            if let Some(entry) = audit {
                insert_audit!(&mut *tx, entry)?;
            }
            Ok(())
        })
    }

    /// How `account` reaches an environment's key: through its wrapped project key, else
    /// through a direct grant; [`StoreError::NotFound`] otherwise.
    pub async fn environment_key_for(
        &self,
        account: &AccountId,
        env: &EnvironmentId,
    ) -> Result<EnvironmentKeyAccess, StoreError> {
        let env_id = env.to_string();
        let account_id = account.to_string();
        let via_project: Option<(Vec<u8>, Vec<u8>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT k.wrapped_key, e.sealed_key FROM environments e \
                 JOIN project_keys k ON k.project_id = e.project_id AND k.account_id = $2 \
                 WHERE e.id = $1",
            )
            .bind(&env_id)
            .bind(&account_id)
            .fetch_optional(pool)
            .await?
        });
        if let Some((project_key, environment_key)) = via_project {
            return Ok(EnvironmentKeyAccess::ViaProject {
                project_key: Blob(project_key),
                environment_key: Blob(environment_key),
            });
        }
        let direct: Option<Vec<u8>> = with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT wrapped_key FROM environment_grants WHERE environment_id = $1 \
                 AND grantee_kind = 'account' AND grantee_id = $2",
            )
            .bind(&env_id)
            .bind(&account_id)
            .fetch_optional(pool)
            .await?
        });
        direct
            .map(|k| EnvironmentKeyAccess::Direct {
                environment_key: Blob(k),
            })
            .ok_or_else(|| not_found(format!("environment {env}")))
    }

    /// The environment, by id (no visibility check: the caller authorizes).
    pub async fn environment(&self, env: &EnvironmentId) -> Result<Environment, StoreError> {
        let row: Option<EnvironmentRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, project_id, slug, name, key_version, created_at \
                 FROM environments WHERE id = $1",
            )
            .bind(env.to_string())
            .fetch_optional(pool)
            .await?
        });
        row.map(Environment::try_from)
            .transpose()?
            .ok_or_else(|| not_found(format!("environment {env}")))
    }

    /// The latest live version of every name in an environment (names whose latest version is
    /// a delete are left out), sorted by name. No visibility check: the caller authorizes.
    pub async fn secrets(&self, env: &EnvironmentId) -> Result<Vec<SecretVersion>, StoreError> {
        let rows: Vec<VersionRow> = with_pool!(self, pool => {
            sqlx::query_as(select_version!("s WHERE ", live_secrets!()))
            .bind(env.to_string())
            .fetch_all(pool)
            .await?
        });
        self.environment_exists_unless_found(env, &rows).await?;
        let mut out: Vec<SecretVersion> = rows.into_iter().map(|r| r.into_version(*env)).collect();
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every version of one name, oldest first, deletes included. No visibility check.
    pub async fn secret_history(
        &self,
        env: &EnvironmentId,
        name: &str,
    ) -> Result<Vec<SecretVersion>, StoreError> {
        let rows: Vec<SecretRow> = with_pool!(self, pool => {
            sqlx::query_as(select_secret!(
                "WHERE environment_id = $1 AND name = $2 ORDER BY version"
            ))
            .bind(env.to_string())
            .bind(name)
            .fetch_all(pool)
            .await?
        });
        self.environment_exists_unless_found(env, &rows).await?;
        convert(rows)
    }

    /// `NotFound` when a read of `env`'s secrets found none because `env` does not exist. The
    /// environment is looked up only then: a stored secret references its environment (a
    /// foreign key without `ON DELETE CASCADE` on both backends), so any row proves that it
    /// exists, and a read that found some needs no second statement.
    async fn environment_exists_unless_found<R>(
        &self,
        env: &EnvironmentId,
        rows: &[R],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            self.environment(env).await?;
        }
        Ok(())
    }

    /// Applies `writes` in one transaction, each as a new version (current + 1) sealed under
    /// the environment's current key version and signed `author`. A stale `expected_version`
    /// rolls everything back with [`StoreError::Conflict`]. `expected_version == 0` also
    /// matches a name whose latest version is a delete. No visibility check.
    ///
    /// Safe under concurrent writers in any number of processes: `SQLite` serialises write
    /// transactions (`BEGIN IMMEDIATE`), `PostgreSQL` writers lock the environment row.
    pub async fn write_secrets(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
        author: Option<&str>,
    ) -> Result<Vec<SecretVersion>, StoreError> {
        self.write_secrets_audited(env, writes, author, None).await
    }

    /// [`Store::write_secrets`] that also appends `audit` to the audit log in the same transaction
    /// (the server records every change this way).
    pub async fn write_secrets_audited(
        &self,
        env: &EnvironmentId,
        writes: &[SecretWrite],
        author: Option<&str>,
        audit: Option<&Audit>,
    ) -> Result<Vec<SecretVersion>, StoreError> {
        for w in writes {
            validate_key_name(&w.name).map_err(invalid)?;
        }
        let env_id = env.to_string();
        write_tx!(self, |tx, dialect| {
            let key_version: Option<i64> = sqlx::query_scalar(dialect.pick(
                "SELECT key_version FROM environments WHERE id = $1",
                "SELECT key_version FROM environments WHERE id = $1 FOR UPDATE",
            ))
            .bind(&env_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(key_version) = key_version else {
                return Err(not_found(format!("environment {env}")));
            };
            let created_at = now_ms();
            let mut written = Vec::with_capacity(writes.len());
            for w in writes {
                let latest: Option<LatestRow> = sqlx::query_as(
                    "SELECT version, ciphertext IS NULL AS deleted, author FROM secrets \
                     WHERE environment_id = $1 AND name = $2 ORDER BY version DESC LIMIT 1",
                )
                .bind(&env_id)
                .bind(&w.name)
                .fetch_optional(&mut *tx)
                .await?;
                let current = latest.as_ref().map_or(0, |l| l.version);
                if let Some(expected) = w.expected_version {
                    let deleted = latest.as_ref().is_some_and(|l| l.deleted);
                    if expected != current && !(expected == 0 && deleted) {
                        return Err(StoreError::Conflict {
                            name: w.name.clone(),
                            expected,
                            actual: current,
                            changed_by: latest
                                .and_then(|l| l.author)
                                .unwrap_or_else(|| "someone else".into()),
                        });
                    }
                }
                let version = current + 1;
                let ciphertext = w.ciphertext.as_ref().map(Blob::as_bytes);
                sqlx::query(
                    "INSERT INTO secrets \
                     (environment_id, name, version, ciphertext, key_version, created_at, author) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&env_id)
                .bind(&w.name)
                .bind(version)
                .bind(ciphertext)
                .bind(key_version)
                .bind(created_at)
                .bind(author)
                .execute(&mut *tx)
                .await?;
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
            if let Some(entry) = audit {
                insert_audit!(&mut *tx, entry)?;
            }
            Ok(written)
        })
    }
}
