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
use klef_core::ids::WorkspaceId;
use klef_core::model::{Account, Blob, Environment, Project, Role, SecretVersion, Workspace};

use crate::rows::{
    AccountRow, ProjectRow, SecretRow, WorkspaceRow, convert, kdf_algorithm_name, parse_id,
};
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

const INSERT_ACCOUNT: &str = "INSERT INTO accounts (id, email, kdf_algorithm, kdf_m_cost_kib, \
     kdf_t_cost, kdf_p_cost, kdf_salt, master_key_by_password, master_key_by_recovery, \
     public_key, private_key_sealed, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

const INSERT_WORKSPACE: &str = "INSERT INTO workspaces (id, name, personal, created_by, created_at) \
     VALUES ($1, $2, $3, $4, $5)";

const INSERT_MEMBER: &str = "INSERT INTO workspace_members (workspace_id, account_id, role, created_at) \
     VALUES ($1, $2, $3, $4)";

const INSERT_PROJECT: &str =
    "INSERT INTO projects (id, workspace_id, name, created_at) VALUES ($1, $2, $3, $4)";

const INSERT_PROJECT_KEY: &str = "INSERT INTO project_keys \
     (project_id, account_id, wrapped_key, created_at) VALUES ($1, $2, $3, $4)";

const INSERT_ENVIRONMENT: &str = "INSERT INTO environments \
     (id, project_id, slug, name, sealed_key, key_version, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

const INSERT_GRANT: &str = "INSERT INTO environment_grants \
     (environment_id, grantee_kind, grantee_id, wrapped_key, key_version, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

const INSERT_SECRET: &str = "INSERT INTO secrets \
     (environment_id, name, version, ciphertext, key_version, created_at, author) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

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
                let keys = &account.keys;
                sqlx::query(INSERT_ACCOUNT)
                    .bind(account.id.to_string())
                    .bind(account.email.as_deref())
                    .bind(kdf_algorithm_name(keys.kdf.algorithm))
                    .bind(i64::from(keys.kdf.m_cost_kib))
                    .bind(i64::from(keys.kdf.t_cost))
                    .bind(i64::from(keys.kdf.p_cost))
                    .bind(keys.kdf.salt.as_bytes())
                    .bind(keys.master_key_by_password.as_bytes())
                    .bind(keys.master_key_by_recovery.as_bytes())
                    .bind(keys.public_key.as_bytes())
                    .bind(keys.private_key_sealed.as_bytes())
                    .bind(account.created_at)
                    .execute(&mut *tx)
                    .await?;
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
            for s in &archive.secrets {
                sqlx::query(INSERT_SECRET)
                    .bind(s.environment_id.to_string())
                    .bind(&s.name)
                    .bind(s.version)
                    .bind(s.ciphertext.as_ref().map(Blob::as_bytes))
                    .bind(s.key_version)
                    .bind(s.created_at)
                    .bind(s.author.as_deref())
                    .execute(&mut *tx)
                    .await?;
            }
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
