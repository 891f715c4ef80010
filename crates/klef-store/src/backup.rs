//! Backups at the storage level: [`Store::export_workspace`] reads every stored row of one
//! workspace into a [`klef_core::backup::Archive`] (one consistent snapshot), and
//! [`Store::import_archive`] writes an archive back in one transaction. Like the rest of the
//! store it moves metadata and sealed bytes only; the file format lives in
//! [`klef_core::backup`].

use std::time::{SystemTime, UNIX_EPOCH};

use klef_core::backup::{
    Archive, ArchiveSource, ArchivedEnvironment, ArchivedGrant, ArchivedMember, ArchivedProjectKey,
    GranteeKind,
};
use klef_core::ids::{AccountId, WorkspaceId};

use crate::queries::{INSERT_ENVIRONMENT, INSERT_MEMBER, INSERT_WORKSPACE};
use klef_core::model::{Account, Blob, Environment, Project, Role, SecretVersion, Workspace};

use crate::rows::{AccountRow, ProjectRow, SecretRow, WorkspaceRow, convert, parse_id};
use crate::{Store, StoreError};

/// What [`Store::import_archive`] may do with a database that already holds data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportMode {
    /// Only import into a database without any account or workspace; otherwise
    /// [`StoreError::AlreadyExists`] and nothing is written.
    IntoEmpty,
    /// Delete everything in the database first (accounts, workspaces, projects, keys, every
    /// secret version), in the same transaction as the import. Only for a `SQLite` vault: a
    /// server database is never wiped this way ([`StoreError::Invalid`]).
    Replace,
}

/// How many rows an import wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Accounts.
    pub accounts: usize,
    /// Workspaces.
    pub workspaces: usize,
    /// Projects.
    pub projects: usize,
    /// Environments.
    pub environments: usize,
    /// Secret versions (history and deletes included).
    pub secret_versions: usize,
}

/// What a database holds, to decide whether an import would overwrite anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Contents {
    /// Number of accounts.
    pub accounts: i64,
    /// Number of workspaces.
    pub workspaces: i64,
    /// Number of projects.
    pub projects: i64,
    /// Number of secret versions.
    pub secret_versions: i64,
}

impl Contents {
    /// Whether there is nothing an import could overwrite.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.accounts == 0
            && self.workspaces == 0
            && self.projects == 0
            && self.secret_versions == 0
    }
}

const COUNT_CONTENTS: &str = "SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM workspaces), \
     (SELECT COUNT(*) FROM projects), (SELECT COUNT(*) FROM secrets)";

const SELECT_WORKSPACE: &str =
    "SELECT id, name, personal, created_at FROM workspaces WHERE id = $1";

const SELECT_MEMBERS: &str = "SELECT workspace_id, account_id, role, created_at \
     FROM workspace_members WHERE workspace_id = $1 ORDER BY created_at, account_id";

const SELECT_ACCOUNTS: &str = "SELECT id, email, kdf_algorithm, kdf_m_cost_kib, kdf_t_cost, \
     kdf_p_cost, kdf_salt, master_key_by_password, master_key_by_recovery, public_key, \
     private_key_sealed, created_at FROM accounts WHERE id IN \
     (SELECT account_id FROM workspace_members WHERE workspace_id = $1) ORDER BY created_at, id";

const SELECT_PROJECTS: &str = "SELECT id, workspace_id, name, created_at FROM projects \
     WHERE workspace_id = $1 ORDER BY created_at, id";

const SELECT_PROJECT_KEYS: &str = "SELECT k.project_id, k.account_id, k.wrapped_key, k.created_at \
     FROM project_keys k JOIN projects p ON p.id = k.project_id WHERE p.workspace_id = $1 \
     ORDER BY k.project_id, k.account_id";

const SELECT_ENVIRONMENTS: &str = "SELECT e.id, e.project_id, e.slug, e.name, e.key_version, \
     e.created_at, e.sealed_key FROM environments e JOIN projects p ON p.id = e.project_id \
     WHERE p.workspace_id = $1 ORDER BY e.project_id, e.created_at, e.id";

const SELECT_GRANTS: &str = "SELECT g.environment_id, g.grantee_kind, g.grantee_id, g.wrapped_key, \
     g.key_version, g.created_at FROM environment_grants g \
     JOIN environments e ON e.id = g.environment_id JOIN projects p ON p.id = e.project_id \
     WHERE p.workspace_id = $1 ORDER BY g.environment_id, g.grantee_kind, g.grantee_id";

const SELECT_SECRETS: &str = "SELECT s.environment_id, s.name, s.version, s.ciphertext, \
     s.key_version, s.created_at, s.author FROM secrets s \
     JOIN environments e ON e.id = s.environment_id JOIN projects p ON p.id = e.project_id \
     WHERE p.workspace_id = $1 ORDER BY s.environment_id, s.name, s.version";

const INSERT_PROJECT: &str =
    "INSERT INTO projects (id, workspace_id, name, created_at) VALUES ($1, $2, $3, $4)";

const INSERT_PROJECT_KEY: &str = "INSERT INTO project_keys \
     (project_id, account_id, wrapped_key, created_at) VALUES ($1, $2, $3, $4)";

const INSERT_GRANT: &str = "INSERT INTO environment_grants \
     (environment_id, grantee_kind, grantee_id, wrapped_key, key_version, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// The tables [`ImportMode::Replace`] empties, children before parents.
const WIPE: &[&str] = &[
    "DELETE FROM secrets",
    "DELETE FROM environment_grants",
    "DELETE FROM api_key_scopes",
    "DELETE FROM api_keys",
    "DELETE FROM environments",
    "DELETE FROM project_keys",
    "DELETE FROM invitations",
    "DELETE FROM sessions",
    "DELETE FROM projects",
    "DELETE FROM workspace_members",
    "DELETE FROM workspaces",
    "DELETE FROM audit_log",
    "DELETE FROM login_attempts",
    "DELETE FROM accounts",
];

type MemberTuple = (String, String, String, i64);
type ProjectKeyTuple = (String, String, Vec<u8>, i64);
type EnvironmentTuple = (String, String, String, String, i64, i64, Vec<u8>);
type GrantTuple = (String, String, String, Vec<u8>, i64, i64);

/// Runs every export query on the open transaction `$tx` for workspace `$ws` (a `String`).
macro_rules! read_workspace {
    ($tx:ident, $ws:expr) => {{
        let ws: &str = $ws;
        let workspace: Option<WorkspaceRow> = sqlx::query_as(SELECT_WORKSPACE)
            .bind(ws)
            .fetch_optional(&mut *$tx)
            .await?;
        let members: Vec<MemberTuple> = sqlx::query_as(SELECT_MEMBERS)
            .bind(ws)
            .fetch_all(&mut *$tx)
            .await?;
        let accounts: Vec<AccountRow> = sqlx::query_as(SELECT_ACCOUNTS)
            .bind(ws)
            .fetch_all(&mut *$tx)
            .await?;
        let projects: Vec<ProjectRow> = sqlx::query_as(SELECT_PROJECTS)
            .bind(ws)
            .fetch_all(&mut *$tx)
            .await?;
        let project_keys: Vec<ProjectKeyTuple> = sqlx::query_as(SELECT_PROJECT_KEYS)
            .bind(ws)
            .fetch_all(&mut *$tx)
            .await?;
        let environments: Vec<EnvironmentTuple> = sqlx::query_as(SELECT_ENVIRONMENTS)
            .bind(ws)
            .fetch_all(&mut *$tx)
            .await?;
        let grants: Vec<GrantTuple> = sqlx::query_as(SELECT_GRANTS)
            .bind(ws)
            .fetch_all(&mut *$tx)
            .await?;
        let secrets: Vec<SecretRow> = sqlx::query_as(SELECT_SECRETS)
            .bind(ws)
            .fetch_all(&mut *$tx)
            .await?;
        Ok::<_, StoreError>(Rows {
            workspace,
            members,
            accounts,
            projects,
            project_keys,
            environments,
            grants,
            secrets,
        })
    }};
}

/// The raw rows of one workspace, before conversion.
struct Rows {
    workspace: Option<WorkspaceRow>,
    members: Vec<MemberTuple>,
    accounts: Vec<AccountRow>,
    projects: Vec<ProjectRow>,
    project_keys: Vec<ProjectKeyTuple>,
    environments: Vec<EnvironmentTuple>,
    grants: Vec<GrantTuple>,
    secrets: Vec<SecretRow>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn parse_role(raw: &str) -> Result<Role, StoreError> {
    match raw {
        "owner" => Ok(Role::Owner),
        "admin" => Ok(Role::Admin),
        "member" => Ok(Role::Member),
        _ => Err(StoreError::Corrupt {
            what: "unknown workspace role".into(),
        }),
    }
}

fn parse_grantee(raw: &str) -> Result<GranteeKind, StoreError> {
    match raw {
        "account" => Ok(GranteeKind::Account),
        "api_key" => Ok(GranteeKind::ApiKey),
        _ => Err(StoreError::Corrupt {
            what: "unknown grantee kind".into(),
        }),
    }
}

impl Rows {
    fn into_archive(
        self,
        ws: &WorkspaceId,
        source: ArchiveSource,
        producer: &str,
    ) -> Result<Archive, StoreError> {
        let workspace: Workspace = self
            .workspace
            .map(Workspace::try_from)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("workspace {ws}"),
            })?;
        let accounts: Vec<Account> = convert(self.accounts)?;
        let projects: Vec<Project> = convert(self.projects)?;
        let secrets: Vec<SecretVersion> = convert(self.secrets)?;
        let members = self
            .members
            .into_iter()
            .map(|(w, a, role, created_at)| {
                Ok(ArchivedMember {
                    workspace_id: parse_id(&w, "workspace")?,
                    account_id: parse_id(&a, "account")?,
                    role: parse_role(&role)?,
                    created_at,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let project_keys = self
            .project_keys
            .into_iter()
            .map(|(p, a, key, created_at)| {
                Ok(ArchivedProjectKey {
                    project_id: parse_id(&p, "project")?,
                    account_id: parse_id(&a, "account")?,
                    wrapped_key: Blob(key),
                    created_at,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let environments = self
            .environments
            .into_iter()
            .map(
                |(id, project, slug, name, key_version, created_at, sealed)| {
                    Ok(ArchivedEnvironment {
                        environment: Environment {
                            id: parse_id(&id, "environment")?,
                            project_id: parse_id(&project, "project")?,
                            slug,
                            name,
                            key_version,
                            created_at,
                        },
                        sealed_key: Blob(sealed),
                    })
                },
            )
            .collect::<Result<Vec<_>, StoreError>>()?;
        let grants = self
            .grants
            .into_iter()
            .map(|(env, kind, grantee, key, key_version, created_at)| {
                Ok(ArchivedGrant {
                    environment_id: parse_id(&env, "environment")?,
                    grantee_kind: parse_grantee(&kind)?,
                    grantee_id: grantee,
                    wrapped_key: Blob(key),
                    key_version,
                    created_at,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let archive = Archive {
            created_at: now_ms(),
            producer: producer.to_owned(),
            source,
            accounts,
            workspaces: vec![workspace],
            members,
            projects,
            project_keys,
            environments,
            grants,
            secrets,
        };
        archive.validate().map_err(|e| StoreError::Corrupt {
            what: e.to_string(),
        })?;
        Ok(archive)
    }
}

impl Store {
    /// How many accounts, workspaces, projects and secret versions the database holds.
    pub async fn contents(&self) -> Result<Contents, StoreError> {
        let (accounts, workspaces, projects, secret_versions): (i64, i64, i64, i64) = with_pool!(self, pool => {
            sqlx::query_as(COUNT_CONTENTS).fetch_one(pool).await?
        });
        Ok(Contents {
            accounts,
            workspaces,
            projects,
            secret_versions,
        })
    }

    /// Reads every stored row of workspace `ws` — the workspace, its members and their
    /// accounts' sealed key material, projects, wrapped project keys, environments with their
    /// sealed keys, direct grants, and every secret version (history and deletes included) —
    /// from one consistent snapshot. No visibility check: the caller authorizes.
    pub async fn export_workspace(
        &self,
        ws: &WorkspaceId,
        source: ArchiveSource,
        producer: &str,
    ) -> Result<Archive, StoreError> {
        let id = ws.to_string();
        let rows = match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(pool) => {
                // A deferred transaction reads from one WAL snapshot.
                let mut tx = pool.begin().await?;
                let rows = read_workspace!(tx, &id);
                tx.rollback().await?;
                rows?
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(pool) => {
                let mut tx = pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?;
                let rows = read_workspace!(tx, &id);
                tx.rollback().await?;
                rows?
            }
        };
        rows.into_archive(ws, source, producer)
    }

    /// Writes every row of `archive` in one transaction, keeping ids, versions, timestamps and
    /// authors exactly. With [`ImportMode::IntoEmpty`], a database that holds any account,
    /// workspace, project or secret gives [`StoreError::AlreadyExists`]; any failure (also a
    /// constraint violation) rolls everything back, so either the whole archive is imported or
    /// nothing is written.
    pub async fn import_archive(
        &self,
        archive: &Archive,
        mode: ImportMode,
    ) -> Result<ImportSummary, StoreError> {
        archive.validate().map_err(|e| StoreError::Invalid {
            reason: e.to_string(),
        })?;
        write_tx!(self, |tx, dialect| {
            let (accounts, workspaces, projects, secret_versions): (i64, i64, i64, i64) =
                sqlx::query_as(COUNT_CONTENTS).fetch_one(&mut *tx).await?;
            let contents = Contents {
                accounts,
                workspaces,
                projects,
                secret_versions,
            };
            if !contents.is_empty() {
                match (mode, dialect) {
                    (ImportMode::IntoEmpty, _) => {
                        return Err(StoreError::AlreadyExists {
                            what: "data in the target vault".into(),
                        });
                    }
                    (ImportMode::Replace, crate::store::Dialect::Sqlite) => {
                        // Secrets are append-only by trigger; lift the delete guard for this
                        // transaction only and put back exactly the stored definition.
                        let guard: Option<String> = sqlx::query_scalar(
                            "SELECT sql FROM sqlite_master \
                             WHERE type = 'trigger' AND name = 'secrets_no_delete'",
                        )
                        .fetch_optional(&mut *tx)
                        .await?;
                        if guard.is_some() {
                            sqlx::query("DROP TRIGGER secrets_no_delete")
                                .execute(&mut *tx)
                                .await?;
                        }
                        for statement in WIPE {
                            sqlx::query(*statement).execute(&mut *tx).await?;
                        }
                        if let Some(sql) = guard {
                            sqlx::query(sqlx::AssertSqlSafe(sql))
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    (ImportMode::Replace, crate::store::Dialect::Postgres) => {
                        return Err(StoreError::Invalid {
                            reason: "replacing a server database's contents from a backup is not supported".into(),
                        });
                    }
                }
            }

            for account in &archive.accounts {
                insert_account!(&mut *tx, account, None)?;
            }
            for ws in &archive.workspaces {
                // The creator is recorded as the workspace's first owner in the archive.
                let creator = archive
                    .members
                    .iter()
                    .filter(|m| m.workspace_id == ws.id)
                    .min_by_key(|m| (m.role, m.created_at))
                    .ok_or_else(|| StoreError::Invalid {
                        reason: format!("workspace {} has no members in the backup", ws.id),
                    })?;
                sqlx::query(INSERT_WORKSPACE)
                    .bind(ws.id.to_string())
                    .bind(&ws.name)
                    .bind(ws.personal)
                    .bind(creator.account_id.to_string())
                    .bind(ws.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            for m in &archive.members {
                sqlx::query(INSERT_MEMBER)
                    .bind(m.workspace_id.to_string())
                    .bind(m.account_id.to_string())
                    .bind(m.role.as_str())
                    .bind(m.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            for p in &archive.projects {
                sqlx::query(INSERT_PROJECT)
                    .bind(p.id.to_string())
                    .bind(p.workspace_id.to_string())
                    .bind(&p.name)
                    .bind(p.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            for k in &archive.project_keys {
                sqlx::query(INSERT_PROJECT_KEY)
                    .bind(k.project_id.to_string())
                    .bind(k.account_id.to_string())
                    .bind(k.wrapped_key.as_bytes())
                    .bind(k.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            for e in &archive.environments {
                let env = &e.environment;
                sqlx::query(INSERT_ENVIRONMENT)
                    .bind(env.id.to_string())
                    .bind(env.project_id.to_string())
                    .bind(&env.slug)
                    .bind(&env.name)
                    .bind(e.sealed_key.as_bytes())
                    .bind(env.key_version)
                    .bind(env.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            for g in &archive.grants {
                sqlx::query(INSERT_GRANT)
                    .bind(g.environment_id.to_string())
                    .bind(g.grantee_kind.as_str())
                    .bind(&g.grantee_id)
                    .bind(g.wrapped_key.as_bytes())
                    .bind(g.key_version)
                    .bind(g.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            insert_secret_versions!(tx, dialect, &archive.secrets)?;
            Ok(ImportSummary {
                accounts: archive.accounts.len(),
                workspaces: archive.workspaces.len(),
                projects: archive.projects.len(),
                environments: archive.environments.len(),
                secret_versions: archive.secrets.len(),
            })
        })
    }
}

/// What [`Store::import_workspace`] restored on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerImport {
    /// The workspace as it now is.
    pub workspace: Workspace,
    /// Whether an existing workspace's contents were replaced.
    pub replaced: bool,
    /// Members restored (the importer included).
    pub members: usize,
    /// Projects restored.
    pub projects: usize,
    /// Environments restored.
    pub environments: usize,
    /// Secret versions restored.
    pub secret_versions: usize,
    /// What was left out or changed, one sentence each.
    pub notes: Vec<String>,
}

/// Every secret of a workspace's environments (the rows the append-only guard protects).
const DELETE_WORKSPACE_SECRETS: &str = "DELETE FROM secrets WHERE environment_id IN \
     (SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id \
     WHERE p.workspace_id = $1)";

/// A workspace's API-key scopes, kept across a replace (they cascade with the projects).
const SELECT_WORKSPACE_SCOPES: &str = "SELECT s.api_key_id, s.project_id, s.environment_id \
     FROM api_key_scopes s JOIN projects p ON p.id = s.project_id WHERE p.workspace_id = $1";

/// As `insert_audit!` (defined after this module) writes an audit entry.
const INSERT_AUDIT: &str = "INSERT INTO audit_log \
     (workspace_id, actor_kind, actor_id, actor_label, action, target, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

type ScopeTuple = (String, String, Option<String>);

/// The account that owns the archive's single workspace: its one `owner` member.
fn archive_owner(archive: &Archive) -> Result<&Account, StoreError> {
    let invalid = |reason: &str| StoreError::Invalid {
        reason: reason.to_owned(),
    };
    let [ws] = archive.workspaces.as_slice() else {
        return Err(invalid(
            "a server restores one workspace per backup, and this one holds another number",
        ));
    };
    let mut owners = archive
        .members
        .iter()
        .filter(|m| m.workspace_id == ws.id && m.role == Role::Owner);
    let (Some(owner), None) = (owners.next(), owners.next()) else {
        return Err(invalid(
            "the backup's workspace does not have exactly one owner",
        ));
    };
    archive
        .accounts
        .iter()
        .find(|a| a.id == owner.account_id)
        .ok_or_else(|| invalid("the backup's owner account is missing"))
}

impl Store {
    /// Whether a workspace with this id exists (whoever its members are).
    pub async fn workspace_exists(&self, ws: &WorkspaceId) -> Result<bool, StoreError> {
        let found: Option<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM workspaces WHERE id = $1")
                .bind(ws.to_string())
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// [`Store::export_workspace`] for a server: only `keep`'s account (the exporter) keeps its
    /// sealed key material; every other member appears with its id, email and public key, its
    /// sealed fields and KDF salt left empty, so an admin's export never carries another
    /// person's password-sealed master key (which could be attacked offline). `audit` is
    /// written once the snapshot has been read.
    pub async fn export_workspace_for(
        &self,
        ws: &WorkspaceId,
        keep: &AccountId,
        source: ArchiveSource,
        producer: &str,
        audit: &crate::server::Audit,
    ) -> Result<Archive, StoreError> {
        let mut archive = self.export_workspace(ws, source, producer).await?;
        with_pool!(self, pool => {
            sqlx::query(INSERT_AUDIT)
                .bind(audit.workspace_id.map(|w| w.to_string()))
                .bind(audit.actor.kind.as_str())
                .bind(audit.actor.id.as_deref())
                .bind(audit.actor.label.as_deref())
                .bind(&audit.action)
                .bind(&audit.target)
                .bind(crate::server::now_ms())
                .execute(pool)
                .await?;
        });
        for account in archive.accounts.iter_mut().filter(|a| a.id != *keep) {
            account.keys.kdf.salt = Blob(Vec::new());
            account.keys.master_key_by_password = Blob(Vec::new());
            account.keys.master_key_by_recovery = Blob(Vec::new());
            account.keys.private_key_sealed = Blob(Vec::new());
        }
        Ok(archive)
    }

    /// Restores an archive's single workspace on a server for `importer`, in one transaction
    /// with `audit`; on any error nothing is written. The rules (docs/server.md, "Backups"):
    ///
    /// - `importer` must be the archive's owner: its one `owner` member, with the same public
    ///   key as the server's account (else [`StoreError::Invalid`]). Accounts are never created
    ///   or changed: the server's own account row (current password sealing) stays.
    /// - A workspace with the archive's id that already exists must be owned by `importer`;
    ///   if it holds any project it is replaced only with `force` (else
    ///   [`StoreError::AlreadyExists`]). Replacing deletes its projects, environments, keys,
    ///   grants, secret history and members in the same transaction, lifting the secrets
    ///   table's append-only guard for those rows only (`SQLite`: the trigger is dropped and
    ///   re-created inside the `BEGIN IMMEDIATE` transaction; `PostgreSQL`: `ALTER TABLE …
    ///   DISABLE TRIGGER` and `ENABLE TRIGGER` inside it, which needs the server's database role
    ///   to own the table and blocks other secret writes until the commit). Its audit log,
    ///   pending invitations and API-key scopes are kept.
    /// - Other members are restored only when their account exists here with the same public
    ///   key *and* they already are members of this workspace on this server (joining needs
    ///   the invitee's consent); the rest are skipped with a note and their wrapped keys dropped.
    ///   Grants to API keys that do not exist here (or are revoked) are dropped with a note.
    /// - A personal workspace is restored as a team workspace (with a note) when `importer`
    ///   already has another personal one.
    /// - Projects and environments must not exist in another workspace.
    pub async fn import_workspace(
        &self,
        archive: &Archive,
        importer: &AccountId,
        force: bool,
        audit: &crate::server::Audit,
    ) -> Result<ServerImport, StoreError> {
        archive.validate().map_err(|e| StoreError::Invalid {
            reason: e.to_string(),
        })?;
        let owner = archive_owner(archive)?;
        if owner.id != *importer {
            return Err(StoreError::Invalid {
                reason: "this backup belongs to another account".into(),
            });
        }
        let ws = &archive.workspaces[0];
        let wsid = ws.id.to_string();
        let me = importer.to_string();
        write_tx!(self, |tx, dialect| {
            let public_key: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT public_key FROM accounts WHERE id = $1")
                    .bind(&me)
                    .fetch_optional(&mut *tx)
                    .await?;
            if public_key.as_deref() != Some(owner.keys.public_key.as_bytes()) {
                return Err(StoreError::Invalid {
                    reason: "this backup belongs to another account (same id, other keys)".into(),
                });
            }
            let existing: Option<String> = sqlx::query_scalar(dialect.pick(
                "SELECT name FROM workspaces WHERE id = $1",
                "SELECT name FROM workspaces WHERE id = $1 FOR UPDATE",
            ))
            .bind(&wsid)
            .fetch_optional(&mut *tx)
            .await?;
            let mut current_members: Vec<String> = Vec::new();
            let mut kept_scopes: Vec<ScopeTuple> = Vec::new();
            let mut replaced = false;
            if let Some(name) = &existing {
                let role: Option<String> = sqlx::query_scalar(
                    "SELECT role FROM workspace_members WHERE workspace_id = $1 AND account_id = $2",
                )
                .bind(&wsid)
                .bind(&me)
                .fetch_optional(&mut *tx)
                .await?;
                if role.as_deref() != Some("owner") {
                    return Err(StoreError::Invalid {
                        reason: format!(
                            "workspace {} exists on this server and you are not its owner",
                            ws.id
                        ),
                    });
                }
                let projects: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM projects WHERE workspace_id = $1")
                        .bind(&wsid)
                        .fetch_one(&mut *tx)
                        .await?;
                if projects > 0 && !force {
                    return Err(StoreError::AlreadyExists {
                        what: format!(
                            "workspace \"{name}\" with {projects} project{} on this server",
                            if projects == 1 { "" } else { "s" }
                        ),
                    });
                }
                replaced = projects > 0;
                current_members = sqlx::query_scalar(
                    "SELECT account_id FROM workspace_members WHERE workspace_id = $1",
                )
                .bind(&wsid)
                .fetch_all(&mut *tx)
                .await?;
                kept_scopes = sqlx::query_as(SELECT_WORKSPACE_SCOPES)
                    .bind(&wsid)
                    .fetch_all(&mut *tx)
                    .await?;
                // The explicit, guarded path around the append-only secrets: the guard is lifted
                // for this transaction only, and only this workspace's rows are deleted.
                match dialect {
                    crate::store::Dialect::Sqlite => {
                        let guard: Option<String> = sqlx::query_scalar(
                            "SELECT sql FROM sqlite_master \
                             WHERE type = 'trigger' AND name = 'secrets_no_delete'",
                        )
                        .fetch_optional(&mut *tx)
                        .await?;
                        if guard.is_some() {
                            sqlx::query("DROP TRIGGER secrets_no_delete")
                                .execute(&mut *tx)
                                .await?;
                        }
                        sqlx::query(DELETE_WORKSPACE_SECRETS)
                            .bind(&wsid)
                            .execute(&mut *tx)
                            .await?;
                        if let Some(sql) = guard {
                            sqlx::query(sqlx::AssertSqlSafe(sql))
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    crate::store::Dialect::Postgres => {
                        sqlx::query("ALTER TABLE secrets DISABLE TRIGGER secrets_append_only")
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(DELETE_WORKSPACE_SECRETS)
                            .bind(&wsid)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("ALTER TABLE secrets ENABLE TRIGGER secrets_append_only")
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                // Environments, their grants and scopes, and project keys cascade.
                sqlx::query("DELETE FROM projects WHERE workspace_id = $1")
                    .bind(&wsid)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM workspace_members WHERE workspace_id = $1")
                    .bind(&wsid)
                    .execute(&mut *tx)
                    .await?;
            }

            let mut notes = Vec::new();
            let other_personal: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM workspaces w JOIN workspace_members m \
                 ON m.workspace_id = w.id WHERE m.account_id = $1 AND m.role = 'owner' \
                 AND w.personal AND w.id <> $2",
            )
            .bind(&me)
            .bind(&wsid)
            .fetch_one(&mut *tx)
            .await?;
            let personal = ws.personal && other_personal == 0;
            if ws.personal && !personal {
                notes.push(format!(
                    "workspace \"{}\" was personal in the backup; you already have a personal \
                     workspace on this server, so it was restored as a team workspace",
                    ws.name
                ));
            }
            if existing.is_some() {
                sqlx::query(
                    "UPDATE workspaces SET name = $2, personal = $3, created_at = $4 WHERE id = $1",
                )
                .bind(&wsid)
                .bind(&ws.name)
                .bind(personal)
                .bind(ws.created_at)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(INSERT_WORKSPACE)
                    .bind(&wsid)
                    .bind(&ws.name)
                    .bind(personal)
                    .bind(&me)
                    .bind(ws.created_at)
                    .execute(&mut *tx)
                    .await?;
            }

            // Which of the archive's members come back.
            let mut restored: std::collections::HashSet<AccountId> =
                std::collections::HashSet::new();
            for m in archive.members.iter().filter(|m| m.workspace_id == ws.id) {
                let account = archive.accounts.iter().find(|a| a.id == m.account_id);
                let who = account
                    .and_then(|a| a.email.clone())
                    .unwrap_or_else(|| format!("account {}", m.account_id));
                let keep = if m.account_id == *importer {
                    true
                } else if m.role == Role::Owner {
                    false
                } else {
                    let server_key: Option<Vec<u8>> =
                        sqlx::query_scalar("SELECT public_key FROM accounts WHERE id = $1")
                            .bind(m.account_id.to_string())
                            .fetch_optional(&mut *tx)
                            .await?;
                    let same_key =
                        server_key.as_deref() == account.map(|a| a.keys.public_key.as_bytes());
                    let note = if server_key.is_none() {
                        Some("has no account on this server")
                    } else if !same_key {
                        Some("has other keys on this server")
                    } else if !current_members.contains(&m.account_id.to_string()) {
                        Some("is not a member of this workspace on this server (invite them again)")
                    } else {
                        None
                    };
                    if let Some(why) = note {
                        notes.push(format!(
                            "{who} {why}: not restored, and the keys wrapped to them were dropped"
                        ));
                    }
                    note.is_none()
                };
                if keep {
                    sqlx::query(INSERT_MEMBER)
                        .bind(&wsid)
                        .bind(m.account_id.to_string())
                        .bind(m.role.as_str())
                        .bind(m.created_at)
                        .execute(&mut *tx)
                        .await?;
                    restored.insert(m.account_id);
                }
            }

            for p in &archive.projects {
                let elsewhere: Option<String> =
                    sqlx::query_scalar("SELECT workspace_id FROM projects WHERE id = $1")
                        .bind(p.id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                if elsewhere.is_some() {
                    return Err(StoreError::AlreadyExists {
                        what: format!("project {} of the backup in another workspace", p.id),
                    });
                }
                sqlx::query(INSERT_PROJECT)
                    .bind(p.id.to_string())
                    .bind(&wsid)
                    .bind(&p.name)
                    .bind(p.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            for k in archive
                .project_keys
                .iter()
                .filter(|k| restored.contains(&k.account_id))
            {
                sqlx::query(INSERT_PROJECT_KEY)
                    .bind(k.project_id.to_string())
                    .bind(k.account_id.to_string())
                    .bind(k.wrapped_key.as_bytes())
                    .bind(k.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            for e in &archive.environments {
                let env = &e.environment;
                let elsewhere: Option<String> =
                    sqlx::query_scalar("SELECT project_id FROM environments WHERE id = $1")
                        .bind(env.id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                if elsewhere.is_some() {
                    return Err(StoreError::AlreadyExists {
                        what: format!("environment {} of the backup in another workspace", env.id),
                    });
                }
                sqlx::query(INSERT_ENVIRONMENT)
                    .bind(env.id.to_string())
                    .bind(env.project_id.to_string())
                    .bind(&env.slug)
                    .bind(&env.name)
                    .bind(e.sealed_key.as_bytes())
                    .bind(env.key_version)
                    .bind(env.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut dropped_key_grants = 0usize;
            for g in &archive.grants {
                let keep = match g.grantee_kind {
                    GranteeKind::Account => g
                        .grantee_id
                        .parse::<AccountId>()
                        .is_ok_and(|a| restored.contains(&a)),
                    GranteeKind::ApiKey => {
                        let live: Option<String> = sqlx::query_scalar(
                            "SELECT id FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
                        )
                        .bind(&g.grantee_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if live.is_none() {
                            dropped_key_grants += 1;
                        }
                        live.is_some()
                    }
                };
                if keep {
                    sqlx::query(INSERT_GRANT)
                        .bind(g.environment_id.to_string())
                        .bind(g.grantee_kind.as_str())
                        .bind(&g.grantee_id)
                        .bind(g.wrapped_key.as_bytes())
                        .bind(g.key_version)
                        .bind(g.created_at)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if dropped_key_grants > 0 {
                notes.push(format!(
                    "{dropped_key_grants} environment key grant{} to system API keys that do not \
                     exist on this server (or are revoked) were dropped; create keys again with \
                     klef keys create",
                    if dropped_key_grants == 1 { "" } else { "s" }
                ));
            }
            let environments: std::collections::HashSet<String> = archive
                .environments
                .iter()
                .map(|e| e.environment.id.to_string())
                .collect();
            let projects: std::collections::HashSet<String> =
                archive.projects.iter().map(|p| p.id.to_string()).collect();
            for (key, project, env) in kept_scopes {
                if projects.contains(&project)
                    && env.as_ref().is_none_or(|e| environments.contains(e))
                {
                    sqlx::query(
                        "INSERT INTO api_key_scopes (api_key_id, project_id, environment_id) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(key)
                    .bind(project)
                    .bind(env)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            insert_secret_versions!(tx, dialect, &archive.secrets)?;
            sqlx::query(INSERT_AUDIT)
                .bind(audit.workspace_id.map(|w| w.to_string()))
                .bind(audit.actor.kind.as_str())
                .bind(audit.actor.id.as_deref())
                .bind(audit.actor.label.as_deref())
                .bind(&audit.action)
                .bind(&audit.target)
                .bind(crate::server::now_ms())
                .execute(&mut *tx)
                .await?;
            Ok(ServerImport {
                workspace: Workspace {
                    id: ws.id,
                    name: ws.name.clone(),
                    personal,
                    created_at: ws.created_at,
                },
                replaced,
                members: restored.len(),
                projects: archive.projects.len(),
                environments: archive.environments.len(),
                secret_versions: archive.secrets.len(),
                notes,
            })
        })
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use klef_core::ids::{AccountId, EnvironmentId, ProjectId};
    use klef_core::model::{
        AccountKeys, KdfAlgorithm, KdfParams, NewEnvironment, NewProject, SecretWrite,
    };

    use super::*;

    fn account() -> (Account, Workspace) {
        let blob = |b: u8, n: usize| Blob(vec![b; n]);
        let account = Account {
            id: AccountId::random(),
            email: None,
            keys: AccountKeys {
                kdf: KdfParams {
                    algorithm: KdfAlgorithm::Argon2id,
                    m_cost_kib: 65536,
                    t_cost: 3,
                    p_cost: 4,
                    salt: blob(1, 16),
                },
                master_key_by_password: blob(2, 61),
                master_key_by_recovery: blob(3, 61),
                public_key: blob(4, 32),
                private_key_sealed: blob(5, 61),
            },
            created_at: 10,
        };
        let ws = Workspace {
            id: WorkspaceId::random(),
            name: "Personal".into(),
            personal: true,
            created_at: 11,
        };
        (account, ws)
    }

    /// A vault with one project, two environments, history and a delete.
    async fn populated(dir: &std::path::Path) -> (Store, WorkspaceId) {
        let store = Store::open_local(&dir.join("a.db")).await.unwrap();
        let (account, ws) = account();
        store.create_first_account(&account, &ws).await.unwrap();
        let project = Project {
            id: ProjectId::random(),
            workspace_id: ws.id,
            name: "api".into(),
            created_at: 12,
        };
        let envs: Vec<NewEnvironment> = ["development", "production"]
            .iter()
            .map(|slug| NewEnvironment {
                environment: Environment {
                    id: EnvironmentId::random(),
                    project_id: project.id,
                    slug: (*slug).into(),
                    name: (*slug).into(),
                    key_version: 1,
                    created_at: 13,
                },
                sealed_key: Blob(vec![6; 61]),
            })
            .collect();
        let env = envs[0].environment.id;
        store
            .create_project(
                &account.id,
                &NewProject {
                    project,
                    project_key: Blob(vec![7; 81]),
                    environments: envs,
                },
            )
            .await
            .unwrap();
        let write = |name: &str, ct: Option<u8>| SecretWrite {
            name: name.into(),
            expected_version: None,
            ciphertext: ct.map(|b| Blob(vec![b; 40])),
        };
        for batch in [
            vec![write("A", Some(1)), write("B", Some(2))],
            vec![write("A", Some(3))],
            vec![write("B", None)],
        ] {
            store
                .write_secrets(&env, &batch, Some("local"))
                .await
                .unwrap();
        }
        (store, ws.id)
    }

    fn without_time(mut a: Archive) -> Archive {
        a.created_at = 0;
        a
    }

    #[tokio::test]
    async fn export_import_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let (source, ws) = populated(dir.path()).await;
        let archive = source
            .export_workspace(&ws, ArchiveSource::Local, "test")
            .await
            .unwrap();
        assert_eq!(archive.accounts.len(), 1);
        assert_eq!(archive.environments.len(), 2);
        assert_eq!(archive.secrets.len(), 4, "history and the delete are kept");
        assert!(archive.secrets.iter().any(|s| s.ciphertext.is_none()));

        let target = Store::open_local(&dir.path().join("b.db")).await.unwrap();
        assert!(target.contents().await.unwrap().is_empty());
        let summary = target
            .import_archive(&archive, ImportMode::IntoEmpty)
            .await
            .unwrap();
        assert_eq!(summary.secret_versions, 4);
        let again = target
            .export_workspace(&ws, ArchiveSource::Local, "test")
            .await
            .unwrap();
        assert_eq!(without_time(again.clone()), without_time(archive.clone()));

        // A second import into the now non-empty vault is refused and changes nothing.
        let err = target
            .import_archive(&archive, ImportMode::IntoEmpty)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
        assert_eq!(target.contents().await.unwrap().secret_versions, 4);

        // Replace wipes another vault's data and restores the archive exactly; the
        // append-only guard is back afterwards.
        let (other, other_ws) = populated(&dir.path().join("c")).await;
        other
            .import_archive(&archive, ImportMode::Replace)
            .await
            .unwrap();
        let contents = other.contents().await.unwrap();
        assert_eq!((contents.accounts, contents.secret_versions), (1, 4));
        assert!(matches!(
            other
                .export_workspace(&other_ws, ArchiveSource::Local, "t")
                .await,
            Err(StoreError::NotFound { .. })
        ));
        let restored = other
            .export_workspace(&ws, ArchiveSource::Local, "test")
            .await
            .unwrap();
        assert_eq!(without_time(restored), without_time(archive));
        let Store::Sqlite(pool) = &other else {
            unreachable!("a sqlite test")
        };
        assert!(
            sqlx::query("DELETE FROM secrets")
                .execute(pool)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_failing_import_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (source, ws) = populated(dir.path()).await;
        let mut archive = source
            .export_workspace(&ws, ArchiveSource::Local, "test")
            .await
            .unwrap();
        // Two environments of one project with the same slug pass the archive's checks but
        // violate the store's unique constraint half-way through the import.
        let slug = archive.environments[0].environment.slug.clone();
        archive.environments[1].environment.slug = slug;
        let target = Store::open_local(&dir.path().join("b.db")).await.unwrap();
        assert!(
            target
                .import_archive(&archive, ImportMode::IntoEmpty)
                .await
                .is_err()
        );
        assert!(target.contents().await.unwrap().is_empty());
    }
}
