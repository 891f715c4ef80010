//! The read statements the local vault's commands need, written once over [`Source`]: a [`Store`]'s
//! pool (the server, and the CLI when it writes) or the CLI's blocking `SQLite` connection
//! (`crate::blocking::Reader`). The [`Store`] methods of the same names (`crate::queries`) are
//! these functions on the pool; see them for what each returns.

use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    Account, Blob, Environment, EnvironmentKeyAccess, PreviousAccountKeys, Project, Role,
    SecretVersion, Workspace,
};

use crate::rows::{
    AccountRow, EnvironmentRow, KeyHistoryRow, ProjectRow, SecretRow, VersionRow, WorkspaceRow,
    convert, parse_name,
};
use crate::tx::PoolRow;
use crate::{Store, StoreError, not_found};

/// Where a read statement runs: the pool, or the blocking connection of the CLI.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A pool, through sqlx.
    Pool(&'a Store),
    /// The CLI's blocking connection to an up-to-date local vault.
    #[cfg(feature = "sqlite")]
    Blocking(&'a crate::blocking::Reader),
}

/// A row type every [`Source`] can read (see `row!` in lib.rs).
#[cfg(feature = "sqlite")]
pub(crate) trait Row: PoolRow + crate::blocking::FromRow {}
#[cfg(feature = "sqlite")]
impl<R: PoolRow + crate::blocking::FromRow> Row for R {}

/// A row type the pool can read.
#[cfg(not(feature = "sqlite"))]
pub(crate) trait Row: PoolRow {}
#[cfg(not(feature = "sqlite"))]
impl<R: PoolRow> Row for R {}

impl Source<'_> {
    /// Every row `sql` returns with `binds` bound to `$1`, `$2`, … in order.
    pub(crate) async fn all<R: Row>(
        self,
        sql: &'static str,
        binds: &[&str],
    ) -> Result<Vec<R>, StoreError> {
        match self {
            Source::Pool(store) => Ok(with_pool!(store, pool => {
                let mut query = sqlx::query_as(sql);
                for value in binds {
                    query = query.bind(*value);
                }
                query.fetch_all(pool).await?
            })),
            #[cfg(feature = "sqlite")]
            Source::Blocking(reader) => reader.all(sql, binds),
        }
    }

    /// The first row `sql` returns with `binds`, if any.
    async fn optional<R: Row>(
        self,
        sql: &'static str,
        binds: &[&str],
    ) -> Result<Option<R>, StoreError> {
        match self {
            Source::Pool(store) => Ok(with_pool!(store, pool => {
                let mut query = sqlx::query_as(sql);
                for value in binds {
                    query = query.bind(*value);
                }
                query.fetch_optional(pool).await?
            })),
            #[cfg(feature = "sqlite")]
            Source::Blocking(reader) => reader.optional(sql, binds),
        }
    }
}

/// `SELECT <every account column> FROM accounts` followed by `$tail`.
macro_rules! select_account {
    ($tail:literal) => {
        concat!(
            "SELECT id, email, kdf_algorithm, kdf_m_cost_kib, kdf_t_cost, kdf_p_cost, kdf_salt, \
             master_key_by_password, master_key_by_recovery, public_key, private_key_sealed, \
             identity_key, created_at FROM accounts ",
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

row! {
    /// A member's role in a workspace.
    struct RoleRow {
        role: String,
    }
}

row! {
    /// An environment's key reached through the account's wrapped project key.
    struct ViaProjectRow {
        wrapped_key: Vec<u8>,
        sealed_key: Vec<u8>,
    }
}

row! {
    /// An environment key granted to the account directly.
    struct GrantRow {
        wrapped_key: Vec<u8>,
    }
}

pub(crate) async fn account(
    source: Source<'_>,
    id: &AccountId,
) -> Result<Option<Account>, StoreError> {
    source
        .optional::<AccountRow>(select_account!("WHERE id = $1"), &[id.to_string().as_str()])
        .await?
        .map(Account::try_from)
        .transpose()
}

pub(crate) async fn account_key_history(
    source: Source<'_>,
    id: &AccountId,
) -> Result<Vec<PreviousAccountKeys>, StoreError> {
    let rows: Vec<KeyHistoryRow> = source
        .all(
            "SELECT kdf_algorithm, kdf_m_cost_kib, kdf_t_cost, kdf_p_cost, kdf_salt, \
             master_key_by_password, master_key_by_recovery, replaced_at \
             FROM account_key_history WHERE account_id = $1 ORDER BY seq DESC",
            &[id.to_string().as_str()],
        )
        .await?;
    rows.into_iter()
        .map(PreviousAccountKeys::try_from)
        .collect()
}

pub(crate) async fn first_account(source: Source<'_>) -> Result<Option<Account>, StoreError> {
    source
        .optional::<AccountRow>(select_account!("ORDER BY created_at, id LIMIT 1"), &[])
        .await?
        .map(Account::try_from)
        .transpose()
}

pub(crate) async fn workspaces_for(
    source: Source<'_>,
    account: &AccountId,
) -> Result<Vec<Workspace>, StoreError> {
    let rows: Vec<WorkspaceRow> = source
        .all(
            "SELECT w.id, w.name, w.personal, w.created_at FROM workspaces w \
             JOIN workspace_members m ON m.workspace_id = w.id \
             WHERE m.account_id = $1",
            &[account.to_string().as_str()],
        )
        .await?;
    let mut out: Vec<Workspace> = convert(rows)?;
    out.sort_by(|a, b| {
        b.personal
            .cmp(&a.personal)
            .then(a.created_at.cmp(&b.created_at))
            .then(a.id.cmp(&b.id))
    });
    Ok(out)
}

pub(crate) async fn role_in(
    source: Source<'_>,
    account: &AccountId,
    ws: &WorkspaceId,
) -> Result<Option<Role>, StoreError> {
    let row: Option<RoleRow> = source
        .optional(
            "SELECT role FROM workspace_members WHERE workspace_id = $1 AND account_id = $2",
            &[ws.to_string().as_str(), account.to_string().as_str()],
        )
        .await?;
    row.map(|r| parse_name::<Role>(&r.role)).transpose()
}

pub(crate) async fn projects_visible_to(
    source: Source<'_>,
    account: &AccountId,
    ws: &WorkspaceId,
) -> Result<Vec<Project>, StoreError> {
    if role_in(source, account, ws).await?.is_none() {
        return Err(not_found(format!("workspace {ws}")));
    }
    let rows: Vec<ProjectRow> = source
        .all(
            "SELECT id, workspace_id, name, created_at FROM projects WHERE workspace_id = $1",
            &[ws.to_string().as_str()],
        )
        .await?;
    let mut out: Vec<Project> = convert(rows)?;
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(out)
}

pub(crate) async fn project_visible_to(
    source: Source<'_>,
    account: &AccountId,
    id: &ProjectId,
) -> Result<Project, StoreError> {
    let row: Option<ProjectRow> = source
        .optional(
            "SELECT p.id, p.workspace_id, p.name, p.created_at FROM projects p \
             JOIN workspace_members m ON m.workspace_id = p.workspace_id \
             WHERE p.id = $1 AND m.account_id = $2",
            &[id.to_string().as_str(), account.to_string().as_str()],
        )
        .await?;
    row.map(Project::try_from)
        .transpose()?
        .ok_or_else(|| not_found(format!("project {id}")))
}

pub(crate) async fn environments_for(
    source: Source<'_>,
    account: &AccountId,
    project: &ProjectId,
) -> Result<Vec<Environment>, StoreError> {
    project_visible_to(source, account, project).await?;
    let rows: Vec<EnvironmentRow> = source
        .all(
            "SELECT e.id, e.project_id, e.slug, e.name, e.key_version, e.created_at \
             FROM environments e WHERE e.project_id = $1 AND ( \
               EXISTS (SELECT 1 FROM project_keys k \
                       WHERE k.project_id = e.project_id AND k.account_id = $2) \
               OR EXISTS (SELECT 1 FROM environment_grants g WHERE g.environment_id = e.id \
                          AND g.grantee_kind = 'account' AND g.grantee_id = $2))",
            &[project.to_string().as_str(), account.to_string().as_str()],
        )
        .await?;
    let mut out: Vec<Environment> = convert(rows)?;
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.slug.cmp(&b.slug)));
    Ok(out)
}

pub(crate) async fn environment_key_for(
    source: Source<'_>,
    account: &AccountId,
    env: &EnvironmentId,
) -> Result<EnvironmentKeyAccess, StoreError> {
    let (env_id, account_id) = (env.to_string(), account.to_string());
    let binds = [env_id.as_str(), account_id.as_str()];
    let via_project: Option<ViaProjectRow> = source
        .optional(
            "SELECT k.wrapped_key, e.sealed_key FROM environments e \
             JOIN project_keys k ON k.project_id = e.project_id AND k.account_id = $2 \
             WHERE e.id = $1",
            &binds,
        )
        .await?;
    if let Some(row) = via_project {
        return Ok(EnvironmentKeyAccess::ViaProject {
            project_key: Blob(row.wrapped_key),
            environment_key: Blob(row.sealed_key),
        });
    }
    let direct: Option<GrantRow> = source
        .optional(
            "SELECT wrapped_key FROM environment_grants WHERE environment_id = $1 \
             AND grantee_kind = 'account' AND grantee_id = $2",
            &binds,
        )
        .await?;
    direct
        .map(|row| EnvironmentKeyAccess::Direct {
            environment_key: Blob(row.wrapped_key),
        })
        .ok_or_else(|| not_found(format!("environment {env}")))
}

pub(crate) async fn environment(
    source: Source<'_>,
    env: &EnvironmentId,
) -> Result<Environment, StoreError> {
    let row: Option<EnvironmentRow> = source
        .optional(
            "SELECT id, project_id, slug, name, key_version, created_at \
             FROM environments WHERE id = $1",
            &[env.to_string().as_str()],
        )
        .await?;
    row.map(Environment::try_from)
        .transpose()?
        .ok_or_else(|| not_found(format!("environment {env}")))
}

pub(crate) async fn secrets(
    source: Source<'_>,
    env: &EnvironmentId,
) -> Result<Vec<SecretVersion>, StoreError> {
    let rows: Vec<VersionRow> = source
        .all(
            select_version!("s WHERE ", live_secrets!()),
            &[env.to_string().as_str()],
        )
        .await?;
    environment_exists_unless_found(source, env, &rows).await?;
    let mut out: Vec<SecretVersion> = rows.into_iter().map(|r| r.into_version(*env)).collect();
    out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The latest version of every name whose latest version was written by a signed revision
/// after `after` (live values and deletes), sorted by name.
pub(crate) async fn secrets_changed_after(
    source: Source<'_>,
    env: &EnvironmentId,
    after: u64,
) -> Result<Vec<SecretVersion>, StoreError> {
    let after = after.to_string();
    let rows: Vec<VersionRow> = source
        .all(
            select_version!(
                "s WHERE s.environment_id = $1 AND s.revision > CAST($2 AS BIGINT) AND ",
                newest_version!()
            ),
            &[env.to_string().as_str(), after.as_str()],
        )
        .await?;
    let mut out: Vec<SecretVersion> = rows.into_iter().map(|r| r.into_version(*env)).collect();
    out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub(crate) async fn secret_history(
    source: Source<'_>,
    env: &EnvironmentId,
    name: &str,
) -> Result<Vec<SecretVersion>, StoreError> {
    let rows: Vec<SecretRow> = source
        .all(
            select_secret!("WHERE environment_id = $1 AND name = $2 ORDER BY version"),
            &[env.to_string().as_str(), name],
        )
        .await?;
    environment_exists_unless_found(source, env, &rows).await?;
    convert(rows)
}

/// `NotFound` when a read of `env`'s secrets found none because `env` does not exist. The
/// environment is looked up only then: a stored secret references its environment (a foreign
/// key without `ON DELETE CASCADE` on both backends), so any row proves that it exists, and a
/// read that found some needs no second statement.
async fn environment_exists_unless_found<R>(
    source: Source<'_>,
    env: &EnvironmentId,
    rows: &[R],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        environment(source, env).await?;
    }
    Ok(())
}
