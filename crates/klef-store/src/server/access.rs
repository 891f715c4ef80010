//! What the server's authorization needs to know (which workspace a project or environment is
//! in, which keys an account holds), a consistent read of an environment's secrets, and the
//! direct grants of an environment.

use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::{Blob, Environment, GrantInfo, Grantee, Role, SecretVersion};

use crate::rotate::grantee_parts;
use crate::rows::{EnvironmentRow, VersionRow, grantee_of, parse_id, parse_name};
use crate::{Store, StoreError};

/// What [`Store::access_facts`] is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTarget {
    /// A workspace.
    Workspace(WorkspaceId),
    /// A member (or any account) of a workspace: the workspace's facts and that account's
    /// role there ([`AccessFacts::member_role`]).
    Member(WorkspaceId, AccountId),
    /// A project.
    Project(ProjectId),
    /// An environment.
    Environment(EnvironmentId),
}

/// One state of an environment's secrets, exactly: the environment row's random incarnation
/// (new whenever the row is inserted, as by a backup restore) and how many secret rows it
/// holds (they are append-only, so the count only grows while the row lives). Two reads with
/// equal revisions return the same secrets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretsRevision {
    incarnation: String,
    rows: i64,
}

impl SecretsRevision {
    /// The revision of `rows` secret rows in the environment row `incarnation`.
    #[must_use]
    pub fn new(incarnation: impl Into<String>, rows: i64) -> Self {
        Self {
            incarnation: incarnation.into(),
            rows,
        }
    }
}

/// What [`Store::access_facts`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFacts {
    /// The workspace the target is in.
    pub workspace_id: WorkspaceId,
    /// Whether that workspace is someone's personal one.
    pub personal: bool,
    /// The asking account's role there (`None` for API keys and non-members).
    pub role: Option<Role>,
    /// For [`AccessTarget::Member`]: that account's role in the workspace (`None`: not a
    /// member). A member's role never changes once it is a member (only removal ends it), so a
    /// decision on it stays true until the removal's own transaction.
    pub member_role: Option<Role>,
    /// The project and its name (project and environment targets).
    pub project: Option<(ProjectId, String)>,
    /// Whether the asking account holds the project key.
    pub project_key: bool,
    /// Whether the asker holds a direct grant of the environment.
    pub grant: bool,
    /// The environment (environment targets).
    pub environment: Option<Environment>,
    /// The environment's [`SecretsRevision`], when asked for.
    pub revision: Option<SecretsRevision>,
}

#[derive(sqlx::FromRow)]
struct ProjectFactsRow {
    workspace_id: String,
    project_name: String,
    personal: bool,
    role: Option<String>,
    project_key: bool,
}

#[derive(sqlx::FromRow)]
struct EnvironmentFactsRow {
    #[sqlx(flatten)]
    environment: EnvironmentRow,
    workspace_id: String,
    project_name: String,
    personal: bool,
    role: Option<String>,
    project_key: bool,
    granted: bool,
    incarnation: String,
    revision_rows: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    #[sqlx(flatten)]
    version: VersionRow,
    incarnation: String,
    revision_rows: i64,
}

impl Store {
    /// Everything the server's authorization needs to know about `target` for `who`, in one
    /// statement: where it is (workspace, project, environment), whether the workspace is
    /// personal, `who`'s role there and whether it holds the project key (accounts), whether
    /// it holds a direct grant of the environment (accounts and API keys) and, with
    /// `with_revision`, the [`SecretsRevision`] of the environment. `None` when there is no
    /// such target.
    pub async fn access_facts(
        &self,
        who: &Grantee,
        target: AccessTarget,
        with_revision: bool,
    ) -> Result<Option<AccessFacts>, StoreError> {
        let (kind, id) = grantee_parts(who);
        let kind = kind.as_str();
        // Only an account has a role or a project key; an API key's id never matches one.
        let account = match who {
            Grantee::Account(a) => a.to_string(),
            Grantee::ApiKey(_) => String::new(),
        };
        match target {
            AccessTarget::Workspace(ws) => self.workspace_facts(ws, &account, None).await,
            AccessTarget::Member(ws, member) => {
                self.workspace_facts(ws, &account, Some(&member)).await
            }
            AccessTarget::Project(project) => {
                let row: Option<ProjectFactsRow> = with_pool!(self, pool => {
                    sqlx::query_as(
                        "SELECT p.workspace_id, p.name AS project_name, w.personal, \
                         (SELECT m.role FROM workspace_members m \
                          WHERE m.workspace_id = p.workspace_id AND m.account_id = $2) AS role, \
                         EXISTS (SELECT 1 FROM project_keys k \
                                 WHERE k.project_id = p.id AND k.account_id = $2) AS project_key \
                         FROM projects p JOIN workspaces w ON w.id = p.workspace_id \
                         WHERE p.id = $1",
                    )
                    .bind(project.to_string())
                    .bind(&account)
                    .fetch_optional(pool)
                    .await?
                });
                row.map(|r| {
                    Ok(AccessFacts {
                        workspace_id: parse_id(&r.workspace_id, "workspace")?,
                        personal: r.personal,
                        role: r.role.as_deref().map(parse_name::<Role>).transpose()?,
                        member_role: None,
                        project: Some((project, r.project_name)),
                        project_key: r.project_key,
                        grant: false,
                        environment: None,
                        revision: None,
                    })
                })
                .transpose()
            }
            AccessTarget::Environment(env) => {
                let row: Option<EnvironmentFactsRow> = with_pool!(self, pool => {
                    sqlx::query_as(
                        "SELECT e.id, e.project_id, e.slug, e.name, e.key_version, e.created_at, \
                         p.workspace_id, p.name AS project_name, w.personal, \
                         (SELECT m.role FROM workspace_members m \
                          WHERE m.workspace_id = p.workspace_id AND m.account_id = $2) AS role, \
                         EXISTS (SELECT 1 FROM project_keys k \
                                 WHERE k.project_id = p.id AND k.account_id = $2) AS project_key, \
                         EXISTS (SELECT 1 FROM environment_grants g WHERE g.environment_id = e.id \
                                 AND g.grantee_kind = $3 AND g.grantee_id = $4) AS granted, \
                         e.incarnation, \
                         CASE WHEN $5 THEN (SELECT COUNT(*) FROM secrets s \
                                            WHERE s.environment_id = e.id) END AS revision_rows \
                         FROM environments e JOIN projects p ON p.id = e.project_id \
                         JOIN workspaces w ON w.id = p.workspace_id WHERE e.id = $1",
                    )
                    .bind(env.to_string())
                    .bind(&account)
                    .bind(kind)
                    .bind(&id)
                    .bind(with_revision)
                    .fetch_optional(pool)
                    .await?
                });
                row.map(|r| {
                    let revision = r.revision_rows.map(|rows| SecretsRevision {
                        incarnation: r.incarnation.clone(),
                        rows,
                    });
                    let environment = Environment::try_from(r.environment)?;
                    Ok(AccessFacts {
                        workspace_id: parse_id(&r.workspace_id, "workspace")?,
                        personal: r.personal,
                        role: r.role.as_deref().map(parse_name::<Role>).transpose()?,
                        member_role: None,
                        project: Some((environment.project_id, r.project_name)),
                        project_key: r.project_key,
                        grant: r.granted,
                        environment: Some(environment),
                        revision,
                    })
                })
                .transpose()
            }
        }
    }

    /// [`Store::access_facts`] of a workspace, with `member`'s role there when asked.
    async fn workspace_facts(
        &self,
        ws: WorkspaceId,
        account: &str,
        member: Option<&AccountId>,
    ) -> Result<Option<AccessFacts>, StoreError> {
        let member = member.map(ToString::to_string).unwrap_or_default();
        let row: Option<(bool, Option<String>, Option<String>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT w.personal, \
                 (SELECT m.role FROM workspace_members m \
                  WHERE m.workspace_id = w.id AND m.account_id = $2) AS role, \
                 (SELECT m.role FROM workspace_members m \
                  WHERE m.workspace_id = w.id AND m.account_id = $3) AS member_role \
                 FROM workspaces w WHERE w.id = $1",
            )
            .bind(ws.to_string())
            .bind(account)
            .bind(&member)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(personal, role, member_role)| {
            Ok(AccessFacts {
                workspace_id: ws,
                personal,
                role: role.as_deref().map(parse_name::<Role>).transpose()?,
                member_role: member_role.as_deref().map(parse_name::<Role>).transpose()?,
                project: None,
                project_key: false,
                grant: false,
                environment: None,
                revision: None,
            })
        })
        .transpose()
    }

    /// The live secrets of an environment (as [`Store::secrets`], by name) and the
    /// [`SecretsRevision`] they are exactly, read in one statement. The revision is `None` when
    /// the environment holds no secret rows at all. No visibility check.
    pub async fn secrets_snapshot(
        &self,
        env: &EnvironmentId,
    ) -> Result<(Vec<SecretVersion>, Option<SecretsRevision>), StoreError> {
        let rows: Vec<SnapshotRow> = with_pool!(self, pool => {
            sqlx::query_as(
                concat!(
                    // The count once (a CTE), not once per row as a correlated sub-select would.
                    "WITH revision AS (SELECT COUNT(*) AS revision_rows FROM secrets \
                                       WHERE environment_id = $1) \
                     SELECT s.name, s.version, s.ciphertext, s.key_version, s.created_at, \
                     s.author, e.incarnation, revision.revision_rows \
                     FROM secrets s JOIN environments e ON e.id = s.environment_id \
                     CROSS JOIN revision WHERE ",
                    live_secrets!()
                ),
            )
            .bind(env.to_string())
            .fetch_all(pool)
            .await?
        });
        let revision = rows.first().map(|r| SecretsRevision {
            incarnation: r.incarnation.clone(),
            rows: r.revision_rows,
        });
        let mut out: Vec<SecretVersion> = rows
            .into_iter()
            .map(|r| r.version.into_version(*env))
            .collect();
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok((out, revision))
    }

    /// The direct grants of an environment with each grantee's public key.
    pub async fn environment_grants(
        &self,
        env: &EnvironmentId,
    ) -> Result<Vec<GrantInfo>, StoreError> {
        let rows: Vec<(String, String, i64, Option<Vec<u8>>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT g.grantee_kind, g.grantee_id, g.key_version, \
                 COALESCE(a.public_key, k.public_key) AS public_key \
                 FROM environment_grants g \
                 LEFT JOIN accounts a ON g.grantee_kind = 'account' AND a.id = g.grantee_id \
                 LEFT JOIN api_keys k ON g.grantee_kind = 'api_key' AND k.id = g.grantee_id \
                 WHERE g.environment_id = $1 ORDER BY g.grantee_kind, g.grantee_id",
            )
            .bind(env.to_string())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(kind, id, key_version, public_key)| {
                Ok(GrantInfo {
                    grantee: grantee_of(&kind, &id)?,
                    public_key: Blob(public_key.unwrap_or_default()),
                    key_version,
                })
            })
            .collect()
    }
}
