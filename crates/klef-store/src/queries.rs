//! The queries, as methods on [`Store`] that take the acting account explicitly, so the local
//! vault and the server share them. Visibility is enforced here (an account sees the workspaces
//! it belongs to, their projects, and the environments it holds a key for); role-based
//! permissions are the server's job. Every statement is the same text on `SQLite` and `PostgreSQL`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    Account, AccountKeys, Environment, EnvironmentKeyAccess, NewEnvironment, NewProject, Project,
    Role, SecretVersion, SecretWrite, Timestamp, Workspace,
};
use klef_core::names::{validate_display_name, validate_key_name, validate_slug};

use crate::reads::{self, Db, select_account};
use crate::rows::{AccountRow, LatestRow};
use crate::server::Audit;
use crate::store::Dialect;
use crate::{Store, StoreError};

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

/// Secrets per statement in [`Store::write_secrets`]: its name lookups bind one parameter per
/// name and its inserts seven per row, far below both backends' limits (`SQLite` 32,766,
/// `PostgreSQL` 65,535).
pub(crate) const WRITE_CHUNK: usize = 500;

/// Appends `count` parameter placeholders, numbered from `first`, separated by `, `. `SQLite`
/// gets anonymous `?`s: it looks a named parameter (`$N`) up by a linear search at parse and
/// at bind time, so a statement with thousands of them is quadratic (75 % of a 10,000-secret
/// push went there). `PostgreSQL` needs `$N`.
fn placeholders(sql: &mut String, dialect: Dialect, first: usize, count: usize) {
    for i in 0..count {
        let sep = if i == 0 { "" } else { ", " };
        match dialect {
            Dialect::Sqlite => {
                let _ = write!(sql, "{sep}?");
            }
            Dialect::Postgres => {
                let _ = write!(sql, "{sep}${}", first + i);
            }
        }
    }
}

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

/// An `INSERT` of `rows` secret versions, seven parameters each in column order.
pub(crate) fn insert_secrets_sql(dialect: Dialect, rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO secrets \
         (environment_id, name, version, ciphertext, key_version, created_at, author) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        placeholders(&mut sql, dialect, row * 7 + 1, 7);
        sql.push(')');
    }
    sql
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
        reads::first_account(Db::Pool(self)).await
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
        reads::workspaces_for(Db::Pool(self), account).await
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
        reads::role_in(Db::Pool(self), account, ws).await
    }

    /// The projects of a workspace, by name. [`StoreError::NotFound`] when `account` is not a
    /// member.
    pub async fn projects_for(
        &self,
        account: &AccountId,
        ws: &WorkspaceId,
    ) -> Result<Vec<Project>, StoreError> {
        reads::projects_for(Db::Pool(self), account, ws).await
    }

    /// One project, if `account` is a member of its workspace.
    pub async fn project_for(
        &self,
        account: &AccountId,
        id: &ProjectId,
    ) -> Result<Project, StoreError> {
        reads::project_for(Db::Pool(self), account, id).await
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
        reads::environments_for(Db::Pool(self), account, project).await
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
        reads::environment_key_for(Db::Pool(self), account, env).await
    }

    /// The environment, by id (no visibility check: the caller authorizes).
    pub async fn environment(&self, env: &EnvironmentId) -> Result<Environment, StoreError> {
        reads::environment(Db::Pool(self), env).await
    }

    /// The latest live version of every name in an environment (names whose latest version is
    /// a delete are left out), sorted by name. No visibility check: the caller authorizes.
    pub async fn secrets(&self, env: &EnvironmentId) -> Result<Vec<SecretVersion>, StoreError> {
        reads::secrets(Db::Pool(self), env).await
    }

    /// Every version of one name, oldest first, deletes included. No visibility check.
    pub async fn secret_history(
        &self,
        env: &EnvironmentId,
        name: &str,
    ) -> Result<Vec<SecretVersion>, StoreError> {
        reads::secret_history(Db::Pool(self), env, name).await
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
            // The newest version of every name written, read a chunk of names per statement
            // (not one statement per name: a 10,000-line push was 20,000 round trips).
            let mut names: Vec<&str> = writes.iter().map(|w| w.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            let mut latest: HashMap<String, LatestRow> = HashMap::with_capacity(names.len());
            for chunk in names.chunks(WRITE_CHUNK) {
                let mut query = sqlx::query_as::<_, LatestRow>(sqlx::AssertSqlSafe(
                    latest_versions_sql(dialect, chunk.len()),
                ))
                .bind(&env_id);
                for name in chunk {
                    query = query.bind(*name);
                }
                for row in query.fetch_all(&mut *tx).await? {
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
            insert_secret_versions!(tx, dialect, &written)?;
            if let Some(entry) = audit {
                insert_audit!(&mut *tx, entry)?;
            }
            Ok(written)
        })
    }
}
