//! [`Store::import_archive`]: restoring an archive into a local vault, in one transaction.

use klef_core::backup::Archive;

use super::guard::delete_past_guard;
use crate::tables::{self, Grant};
use crate::tx::Tx;
use crate::{Store, StoreError, invalid};

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

const COUNT_CONTENTS: &str = "SELECT (SELECT COUNT(*) FROM accounts), \
     (SELECT COUNT(*) FROM workspaces), (SELECT COUNT(*) FROM projects), \
     (SELECT COUNT(*) FROM secrets)";

/// The tables [`ImportMode::Replace`] empties, children before parents.
const WIPE: &[&str] = &[
    "DELETE FROM personal_overrides",
    "DELETE FROM secrets",
    "DELETE FROM manifests",
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

impl Store {
    /// How many accounts, workspaces, projects and secret versions the database holds.
    pub async fn contents(&self) -> Result<Contents, StoreError> {
        let (accounts, workspaces, projects, secret_versions): (i64, i64, i64, i64) =
            with_pool!(self, pool => sqlx::query_as(COUNT_CONTENTS).fetch_one(pool).await?);
        Ok(Contents {
            accounts,
            workspaces,
            projects,
            secret_versions,
        })
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
        archive.validate().map_err(invalid)?;
        let mut tx = Tx::write(self).await?;
        let result = import_in(&mut tx, archive, mode).await;
        tx.finish(result).await
    }
}

async fn count_contents(tx: &mut Tx) -> Result<Contents, StoreError> {
    let (accounts, workspaces, projects, secret_versions): (i64, i64, i64, i64) =
        tx.one(COUNT_CONTENTS, &[]).await?;
    Ok(Contents {
        accounts,
        workspaces,
        projects,
        secret_versions,
    })
}

/// The transaction of [`Store::import_archive`].
async fn import_in(
    tx: &mut Tx,
    archive: &Archive,
    mode: ImportMode,
) -> Result<ImportSummary, StoreError> {
    if !count_contents(tx).await?.is_empty() {
        match (mode, tx.dialect()) {
            (ImportMode::IntoEmpty, _) => {
                return Err(StoreError::AlreadyExists {
                    what: "data in the target vault".into(),
                });
            }
            (ImportMode::Replace, crate::tx::Dialect::Sqlite) => {
                delete_past_guard(tx, WIPE, &[]).await?;
            }
            (ImportMode::Replace, crate::tx::Dialect::Postgres) => {
                return Err(invalid(
                    "replacing a server database's contents from a backup is not supported",
                ));
            }
        }
    }
    for account in &archive.accounts {
        tables::insert_account(tx, account, None).await?;
    }
    for ws in &archive.workspaces {
        // The creator is recorded as the workspace's first owner in the archive.
        let creator = archive
            .members
            .iter()
            .filter(|m| m.workspace_id == ws.id)
            .min_by_key(|m| (m.role, m.created_at))
            .ok_or_else(|| invalid(format!("workspace {} has no members in the backup", ws.id)))?;
        tables::insert_workspace(tx, ws, &creator.account_id).await?;
    }
    for m in &archive.members {
        tables::insert_member(tx, &m.workspace_id, &m.account_id, m.role, m.created_at).await?;
    }
    for p in &archive.projects {
        tables::insert_project(tx, p).await?;
    }
    for k in &archive.project_keys {
        tables::insert_project_key(
            tx,
            &k.project_id,
            &k.account_id,
            &k.wrapped_key,
            k.created_at,
        )
        .await?;
    }
    for e in &archive.environments {
        tables::insert_environment(tx, &e.environment, &e.sealed_key).await?;
    }
    for g in &archive.grants {
        tables::insert_grant(
            tx,
            &Grant {
                environment_id: &g.environment_id,
                grantee_kind: g.grantee_kind,
                grantee_id: &g.grantee_id,
                wrapped_key: &g.wrapped_key,
                key_version: g.key_version,
                created_at: g.created_at,
            },
        )
        .await?;
    }
    tables::insert_secret_versions(tx, &archive.secrets, None).await?;
    crate::manifests::restore(tx, archive, crate::LOCAL_AUTHOR, crate::now_ms()).await?;
    for p in &archive.personal {
        tables::insert_personal(tx, p).await?;
    }
    Ok(ImportSummary {
        accounts: archive.accounts.len(),
        workspaces: archive.workspaces.len(),
        projects: archive.projects.len(),
        environments: archive.environments.len(),
        secret_versions: archive.secrets.len(),
    })
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use klef_core::backup::ArchiveSource;
    use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
    use klef_core::model::{
        Account, AccountKeys, Blob, Environment, KdfAlgorithm, KdfParams, NewEnvironment,
        NewProject, Project, SecretWrite, Workspace,
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
            identity_key: None,
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
                manifest: None,
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
                None,
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
                .write_secrets(&env, &batch, None, Some("local"), None)
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
