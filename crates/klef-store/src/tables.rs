//! One insert function per table, over a [`Tx`]: the one place that knows each table's column
//! order. The local vault's queries (`crate::queries`), the server's (`crate::server`) and the
//! backup imports (`crate::backup`) all write through these. Each returns the `sqlx::Error` as
//! it is, so the caller decides what a unique violation means there
//! ([`StoreError::exists_or`](crate::StoreError)).

use std::fmt::Write as _;

use klef_core::backup::GranteeKind;
use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{
    Account, AccountKeys, Blob, Environment, Project, Role, SecretVersion, Timestamp, Workspace,
};

use crate::audit::Audit;
use crate::rows::kdf_algorithm_name;
use crate::tx::Dialect;
use crate::tx::{Arg, Tx};

/// Secrets per statement in `Store::write_secrets` and [`insert_secret_versions`]: a name
/// lookup binds one parameter per name and an insert seven per row, far below both backends'
/// limits (`SQLite` 32,766, `PostgreSQL` 65,535).
pub(crate) const WRITE_CHUNK: usize = 500;

/// The seven columns that seal an account's master key, in this order: `kdf_algorithm`,
/// `kdf_m_cost_kib`, `kdf_t_cost`, `kdf_p_cost`, `kdf_salt`, `master_key_by_password`,
/// `master_key_by_recovery`. Shared by [`insert_account`] and `Store::replace_account_keys`
/// (a password change or recovery rewrites exactly these).
pub(crate) fn master_key_seal(keys: &AccountKeys) -> [Arg<'_>; 7] {
    [
        kdf_algorithm_name(keys.kdf.algorithm).into(),
        i64::from(keys.kdf.m_cost_kib).into(),
        i64::from(keys.kdf.t_cost).into(),
        i64::from(keys.kdf.p_cost).into(),
        (&keys.kdf.salt).into(),
        (&keys.master_key_by_password).into(),
        (&keys.master_key_by_recovery).into(),
    ]
}

/// Copies an account's current seal (KDF parameters and both sealed master-key copies) into
/// `account_key_history` as replaced at `now`, and drops all but the newest
/// [`KEY_HISTORY_KEPT`](klef_core::model::KEY_HISTORY_KEPT). Called by
/// `Store::replace_account_keys` before it overwrites them, in the same transaction.
pub(crate) async fn keep_account_key_history(
    tx: &mut Tx,
    account_id: &str,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    tx.execute(
        "INSERT INTO account_key_history (account_id, seq, kdf_algorithm, kdf_m_cost_kib, \
         kdf_t_cost, kdf_p_cost, kdf_salt, master_key_by_password, master_key_by_recovery, \
         replaced_at) \
         SELECT id, COALESCE((SELECT MAX(seq) FROM account_key_history WHERE account_id = $1), 0) + 1, \
         kdf_algorithm, kdf_m_cost_kib, kdf_t_cost, kdf_p_cost, kdf_salt, \
         master_key_by_password, master_key_by_recovery, $2 FROM accounts WHERE id = $1",
        &[account_id.into(), now.into()],
    )
    .await?;
    let kept = i64::try_from(klef_core::model::KEY_HISTORY_KEPT).unwrap_or(i64::MAX);
    tx.execute(
        "DELETE FROM account_key_history WHERE account_id = $1 AND seq <= \
         (SELECT MAX(seq) FROM account_key_history WHERE account_id = $1) - $2",
        &[account_id.into(), kept.into()],
    )
    .await?;
    Ok(())
}

/// Inserts an account with a sign-in password hash (`None` for a local vault's owner and for
/// accounts restored from a backup).
pub(crate) async fn insert_account(
    tx: &mut Tx,
    account: &Account,
    password_hash: Option<&str>,
) -> Result<(), sqlx::Error> {
    let keys = &account.keys;
    let mut args: Vec<Arg<'_>> = vec![
        account.id.to_string().into(),
        account.email.as_deref().into(),
        password_hash.into(),
    ];
    args.extend(master_key_seal(keys));
    args.extend([
        (&keys.public_key).into(),
        (&keys.private_key_sealed).into(),
        account
            .identity_key
            .as_ref()
            .map(klef_core::model::Blob::as_bytes)
            .into(),
        account.created_at.into(),
    ]);
    tx.execute(
        "INSERT INTO accounts (id, email, password_hash, kdf_algorithm, kdf_m_cost_kib, \
         kdf_t_cost, kdf_p_cost, kdf_salt, master_key_by_password, master_key_by_recovery, \
         public_key, private_key_sealed, identity_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &args,
    )
    .await?;
    Ok(())
}

/// Inserts a workspace created by `created_by` (its members are [`insert_member`]).
pub(crate) async fn insert_workspace(
    tx: &mut Tx,
    ws: &Workspace,
    created_by: &AccountId,
) -> Result<(), sqlx::Error> {
    tx.execute(
        "INSERT INTO workspaces (id, name, personal, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            ws.id.to_string().into(),
            (&ws.name).into(),
            ws.personal.into(),
            created_by.to_string().into(),
            ws.created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Makes `account` a member of `ws` with `role`.
pub(crate) async fn insert_member(
    tx: &mut Tx,
    ws: &WorkspaceId,
    account: &AccountId,
    role: Role,
    created_at: Timestamp,
) -> Result<(), sqlx::Error> {
    tx.execute(
        "INSERT INTO workspace_members (workspace_id, account_id, role, created_at) \
         VALUES ($1, $2, $3, $4)",
        &[
            ws.to_string().into(),
            account.to_string().into(),
            role.as_str().into(),
            created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Inserts a project (its key is [`insert_project_key`]).
pub(crate) async fn insert_project(tx: &mut Tx, project: &Project) -> Result<(), sqlx::Error> {
    tx.execute(
        "INSERT INTO projects (id, workspace_id, name, created_at) VALUES ($1, $2, $3, $4)",
        &[
            project.id.to_string().into(),
            project.workspace_id.to_string().into(),
            (&project.name).into(),
            project.created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Stores a project key wrapped to `account`.
pub(crate) async fn insert_project_key(
    tx: &mut Tx,
    project: &ProjectId,
    account: &AccountId,
    wrapped_key: &Blob,
    created_at: Timestamp,
) -> Result<(), sqlx::Error> {
    tx.execute(
        "INSERT INTO project_keys (project_id, account_id, wrapped_key, created_at) \
         VALUES ($1, $2, $3, $4)",
        &[
            project.to_string().into(),
            account.to_string().into(),
            wrapped_key.into(),
            created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Inserts an environment with its key sealed under the project key.
pub(crate) async fn insert_environment(
    tx: &mut Tx,
    env: &Environment,
    sealed_key: &Blob,
) -> Result<(), sqlx::Error> {
    tx.execute(
        "INSERT INTO environments (id, project_id, slug, name, sealed_key, key_version, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            env.id.to_string().into(),
            env.project_id.to_string().into(),
            (&env.slug).into(),
            (&env.name).into(),
            sealed_key.into(),
            env.key_version.into(),
            env.created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// A direct grant of an environment's key to an account or an API key.
pub(crate) struct Grant<'a> {
    /// The environment.
    pub(crate) environment_id: &'a EnvironmentId,
    /// Account or API key.
    pub(crate) grantee_kind: GranteeKind,
    /// The account or key id.
    pub(crate) grantee_id: &'a str,
    /// The environment key wrapped to the grantee.
    pub(crate) wrapped_key: &'a Blob,
    /// The environment key version it wraps.
    pub(crate) key_version: i64,
    /// When it was granted.
    pub(crate) created_at: Timestamp,
}

/// Stores a direct grant.
pub(crate) async fn insert_grant(tx: &mut Tx, grant: &Grant<'_>) -> Result<(), sqlx::Error> {
    tx.execute(
        "INSERT INTO environment_grants \
         (environment_id, grantee_kind, grantee_id, wrapped_key, key_version, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            grant.environment_id.to_string().into(),
            grant.grantee_kind.as_str().into(),
            grant.grantee_id.into(),
            grant.wrapped_key.into(),
            grant.key_version.into(),
            grant.created_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Stores one member's sealed personal overrides of an environment as a backup holds them.
pub(crate) async fn insert_personal(
    tx: &mut Tx,
    personal: &klef_core::backup::ArchivedPersonal,
) -> Result<(), sqlx::Error> {
    tx.execute(
        "INSERT INTO personal_overrides \
         (environment_id, account_id, revision, blob, updated_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            personal.environment_id.to_string().into(),
            personal.account_id.to_string().into(),
            i64::try_from(personal.record.revision)
                .unwrap_or(i64::MAX)
                .into(),
            (&personal.record.sealed).into(),
            personal.updated_at.into(),
        ],
    )
    .await?;
    Ok(())
}

/// Appends `entry` to the audit log, stamped now.
pub(crate) async fn insert_audit(tx: &mut Tx, entry: &Audit) -> Result<(), sqlx::Error> {
    tx.execute(
        "INSERT INTO audit_log \
         (workspace_id, actor_kind, actor_id, actor_label, action, target, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            entry.workspace_id.map(|w| w.to_string()).into(),
            entry.actor.kind.as_str().into(),
            entry.actor.id.as_deref().into(),
            entry.actor.label.as_deref().into(),
            (&entry.action).into(),
            (&entry.target).into(),
            crate::now_ms().into(),
        ],
    )
    .await?;
    Ok(())
}

/// Inserts secret versions exactly as given, [`WRITE_CHUNK`] rows per statement: the one
/// place that binds the columns of `secrets`, for `write_secrets`, rotation and both backup
/// imports. `revision` is the signed revision that writes them (`None`: a write without a
/// manifest, or a restore), which `environment_changes` answers by.
pub(crate) async fn insert_secret_versions(
    tx: &mut Tx,
    versions: &[SecretVersion],
    revision: Option<i64>,
) -> Result<(), sqlx::Error> {
    let dialect = tx.dialect();
    for chunk in versions.chunks(WRITE_CHUNK) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 8);
        for v in chunk {
            args.extend([
                v.environment_id.to_string().into(),
                (&v.name).into(),
                v.version.into(),
                v.ciphertext.as_ref().map(Blob::as_bytes).into(),
                v.key_version.into(),
                v.created_at.into(),
                v.author.as_deref().into(),
                revision.into(),
            ]);
        }
        let sql = insert_secrets_sql(dialect, chunk.len());
        tx.execute(sqlx::AssertSqlSafe(sql), &args).await?;
    }
    Ok(())
}

/// Appends `count` parameter placeholders, numbered from `first`, separated by `, `. `SQLite`
/// gets anonymous `?`s: it looks a named parameter (`$N`) up by a linear search at parse and
/// at bind time, so a statement with thousands of them is quadratic (75 % of a 10,000-secret
/// push went there). `PostgreSQL` needs `$N`.
pub(crate) fn placeholders(sql: &mut String, dialect: Dialect, first: usize, count: usize) {
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

/// An `INSERT` of `rows` secret versions, eight parameters each in column order.
fn insert_secrets_sql(dialect: Dialect, rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO secrets \
         (environment_id, name, version, ciphertext, key_version, created_at, author, revision) \
         VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        placeholders(&mut sql, dialect, row * 8 + 1, 8);
        sql.push(')');
    }
    sql
}
