//! [`Store::export_workspace`]: every stored row of one workspace, read from one snapshot.

use klef_core::backup::{
    Archive, ArchiveSource, ArchivedEnvironment, ArchivedGrant, ArchivedManifest, ArchivedMember,
    ArchivedPersonal, ArchivedProjectKey, ArchivedRosterEntry,
};
use klef_core::ids::WorkspaceId;
use klef_core::model::{
    Account, Blob, Environment, ManifestRecord, PersonalRecord, Project, RosterEntry,
    SecretVersion, Workspace,
};

use crate::rows::{AccountRow, ProjectRow, SecretRow, WorkspaceRow, convert, parse_id, parse_name};
use crate::tx::Tx;
use crate::{Store, StoreError, not_found, now_ms};

const SELECT_WORKSPACE: &str =
    "SELECT id, name, personal, created_at FROM workspaces WHERE id = $1";

const SELECT_MEMBERS: &str = "SELECT workspace_id, account_id, role, created_at \
     FROM workspace_members WHERE workspace_id = $1 ORDER BY created_at, account_id";

const SELECT_ACCOUNTS: &str = "SELECT id, email, kdf_algorithm, kdf_m_cost_kib, kdf_t_cost, \
     kdf_p_cost, kdf_salt, master_key_by_password, master_key_by_recovery, public_key, \
     private_key_sealed, identity_key, created_at FROM accounts WHERE id IN \
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

const SELECT_MANIFESTS: &str = "SELECT m.environment_id, m.revision, m.anchor, m.body, \
     m.signature FROM manifests m JOIN environments e ON e.id = m.environment_id \
     JOIN projects p ON p.id = e.project_id WHERE p.workspace_id = $1 \
     ORDER BY m.environment_id, m.revision";

const SELECT_ROSTER: &str = "SELECT workspace_id, sequence, body, signature FROM roster_entries \
     WHERE workspace_id = $1 ORDER BY sequence";

const SELECT_PERSONAL: &str = "SELECT o.environment_id, o.account_id, o.revision, o.blob, \
     o.updated_at FROM personal_overrides o JOIN environments e ON e.id = o.environment_id \
     JOIN projects p ON p.id = e.project_id WHERE p.workspace_id = $1 \
     AND o.account_id IN (SELECT account_id FROM workspace_members WHERE workspace_id = $1) \
     ORDER BY o.environment_id, o.account_id";

type PersonalTuple = (String, String, i64, Vec<u8>, i64);
type ManifestTuple = (String, i64, bool, Vec<u8>, Vec<u8>);
type RosterTuple = (String, i64, Vec<u8>, Vec<u8>);
type MemberTuple = (String, String, String, i64);
type ProjectKeyTuple = (String, String, Vec<u8>, i64);
type EnvironmentTuple = (String, String, String, String, i64, i64, Vec<u8>);
type GrantTuple = (String, String, String, Vec<u8>, i64, i64);

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
    manifests: Vec<ManifestTuple>,
    roster: Vec<RosterTuple>,
    personal: Vec<PersonalTuple>,
}

/// Runs every export query on `tx` for workspace `ws`.
async fn read_workspace(tx: &mut Tx, ws: &str) -> Result<Rows, StoreError> {
    let ws = [ws.into()];
    Ok(Rows {
        workspace: tx.optional(SELECT_WORKSPACE, &ws).await?,
        members: tx.all(SELECT_MEMBERS, &ws).await?,
        accounts: tx.all(SELECT_ACCOUNTS, &ws).await?,
        projects: tx.all(SELECT_PROJECTS, &ws).await?,
        project_keys: tx.all(SELECT_PROJECT_KEYS, &ws).await?,
        environments: tx.all(SELECT_ENVIRONMENTS, &ws).await?,
        grants: tx.all(SELECT_GRANTS, &ws).await?,
        secrets: tx.all(SELECT_SECRETS, &ws).await?,
        manifests: tx.all(SELECT_MANIFESTS, &ws).await?,
        roster: tx.all(SELECT_ROSTER, &ws).await?,
        personal: tx.all(SELECT_PERSONAL, &ws).await?,
    })
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
            .ok_or_else(|| not_found(format!("workspace {ws}")))?;
        let accounts: Vec<Account> = convert(self.accounts)?;
        let projects: Vec<Project> = convert(self.projects)?;
        let secrets: Vec<SecretVersion> = convert(self.secrets)?;
        let manifests = self
            .manifests
            .into_iter()
            .map(|(env, revision, anchor, body, signature)| {
                Ok(ArchivedManifest {
                    environment_id: parse_id(&env, "environment")?,
                    manifest: ManifestRecord {
                        revision: u64::try_from(revision).map_err(|_| StoreError::Corrupt {
                            what: format!("manifest revision {revision}"),
                        })?,
                        anchor,
                        body: Blob(body),
                        signature: Blob(signature),
                    },
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let roster = self
            .roster
            .into_iter()
            .map(|(ws, sequence, body, signature)| {
                Ok(ArchivedRosterEntry {
                    workspace_id: parse_id(&ws, "workspace")?,
                    entry: RosterEntry {
                        sequence: u64::try_from(sequence).map_err(|_| StoreError::Corrupt {
                            what: format!("roster sequence {sequence}"),
                        })?,
                        body: Blob(body),
                        signature: Blob(signature),
                    },
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let personal = self
            .personal
            .into_iter()
            .map(|(env, account, revision, sealed, updated_at)| {
                Ok(ArchivedPersonal {
                    environment_id: parse_id(&env, "environment")?,
                    account_id: parse_id(&account, "account")?,
                    record: PersonalRecord {
                        revision: u64::try_from(revision).map_err(|_| StoreError::Corrupt {
                            what: format!("personal overrides revision {revision}"),
                        })?,
                        sealed: Blob(sealed),
                    },
                    updated_at,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let members = self
            .members
            .into_iter()
            .map(|(w, a, role, created_at)| {
                Ok(ArchivedMember {
                    workspace_id: parse_id(&w, "workspace")?,
                    account_id: parse_id(&a, "account")?,
                    role: parse_name(&role)?,
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
                    grantee_kind: parse_name(&kind)?,
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
            manifests,
            roster,
            personal,
        };
        archive.validate().map_err(|e| StoreError::Corrupt {
            what: e.to_string(),
        })?;
        Ok(archive)
    }
}

impl Store {
    /// Reads every stored row of workspace `ws` — the workspace, its members and their
    /// accounts' sealed key material, projects, wrapped project keys, environments with their
    /// sealed keys, direct grants, every secret version (history and deletes included), signed
    /// state and members' sealed personal overrides — from one consistent snapshot. No
    /// visibility check: the caller authorizes.
    pub async fn export_workspace(
        &self,
        ws: &WorkspaceId,
        source: ArchiveSource,
        producer: &str,
    ) -> Result<Archive, StoreError> {
        let mut tx = Tx::snapshot(self).await?;
        let rows = read_workspace(&mut tx, &ws.to_string()).await;
        tx.close().await?;
        rows?.into_archive(ws, source, producer)
    }
}
