//! Backups on a server: [`Store::export_workspace_for`] (an export that carries only the
//! exporter's own sealed keys) and [`Store::import_workspace`] (restoring one workspace for
//! its owner, in one transaction).

use std::collections::HashSet;

use klef_core::backup::{Archive, ArchiveSource, GranteeKind};
use klef_core::ids::{AccountId, WorkspaceId};
use klef_core::model::{Account, Blob, Role, Workspace};

use crate::audit::Audit;
use crate::backup::delete_past_guard;
use crate::tables::{self, Grant};
use crate::tx::Tx;
use crate::{Store, StoreError, invalid};

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

type ScopeTuple = (String, String, Option<String>);

/// The account that owns the archive's single workspace: its one `owner` member.
fn archive_owner(archive: &Archive) -> Result<&Account, StoreError> {
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
        audit: &Audit,
    ) -> Result<Archive, StoreError> {
        let mut archive = self.export_workspace(ws, source, producer).await?;
        let mut tx = Tx::write(self).await?;
        let result = tables::insert_audit(&mut tx, audit)
            .await
            .map_err(Into::into);
        tx.finish(result).await?;
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
    ///   grants, secret history, members' personal overrides and members in the same
    ///   transaction, lifting the secrets table's append-only guard for those rows only
    ///   (`SQLite`: the trigger is dropped and re-created inside the `BEGIN IMMEDIATE`
    ///   transaction; `PostgreSQL`: `ALTER TABLE … DISABLE TRIGGER` and `ENABLE TRIGGER` inside
    ///   it, which needs the server's database role to own the table and blocks other secret
    ///   writes until the commit). Its audit log,
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
        audit: &Audit,
    ) -> Result<ServerImport, StoreError> {
        archive.validate().map_err(invalid)?;
        let owner = archive_owner(archive)?;
        if owner.id != *importer {
            return Err(invalid("this backup belongs to another account"));
        }
        let mut tx = Tx::write(self).await?;
        let result = import_in(&mut tx, archive, owner, force, audit).await;
        tx.finish(result).await
    }
}

/// The transaction of [`Store::import_workspace`].
async fn import_in(
    tx: &mut Tx,
    archive: &Archive,
    owner: &Account,
    force: bool,
    audit: &Audit,
) -> Result<ServerImport, StoreError> {
    let importer = &owner.id;
    let ws = &archive.workspaces[0];
    let wsid = ws.id.to_string();
    let me = importer.to_string();
    let public_key: Option<(Vec<u8>,)> = tx
        .optional(
            "SELECT public_key FROM accounts WHERE id = $1",
            &[(&me).into()],
        )
        .await?;
    if public_key.as_ref().map(|(k,)| k.as_slice()) != Some(owner.keys.public_key.as_bytes()) {
        return Err(invalid(
            "this backup belongs to another account (same id, other keys)",
        ));
    }
    let existing: Option<(String,)> = tx
        .optional(
            tx.dialect().pick(
                "SELECT name FROM workspaces WHERE id = $1",
                "SELECT name FROM workspaces WHERE id = $1 FOR UPDATE",
            ),
            &[(&wsid).into()],
        )
        .await?;
    let mut current_members: Vec<(String,)> = Vec::new();
    let mut kept_scopes: Vec<ScopeTuple> = Vec::new();
    let mut replaced = false;
    if let Some((name,)) = &existing {
        let role: Option<(String,)> = tx
            .optional(
                "SELECT role FROM workspace_members WHERE workspace_id = $1 AND account_id = $2",
                &[(&wsid).into(), (&me).into()],
            )
            .await?;
        if role.is_none_or(|(r,)| r != Role::Owner.as_str()) {
            return Err(invalid(format!(
                "workspace {} exists on this server and you are not its owner",
                ws.id
            )));
        }
        let projects = tx
            .count(
                "SELECT COUNT(*) FROM projects WHERE workspace_id = $1",
                &[(&wsid).into()],
            )
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
        current_members = tx
            .all(
                "SELECT account_id FROM workspace_members WHERE workspace_id = $1",
                &[(&wsid).into()],
            )
            .await?;
        kept_scopes = tx.all(SELECT_WORKSPACE_SCOPES, &[(&wsid).into()]).await?;
        // The explicit, guarded path around the append-only secrets: the guard is lifted for
        // this transaction only, and only this workspace's rows are deleted.
        delete_past_guard(tx, &[DELETE_WORKSPACE_SECRETS], &[(&wsid).into()]).await?;
        // Environments, their grants and scopes, and project keys cascade.
        tx.execute(
            "DELETE FROM projects WHERE workspace_id = $1",
            &[(&wsid).into()],
        )
        .await?;
        tx.execute(
            "DELETE FROM workspace_members WHERE workspace_id = $1",
            &[(&wsid).into()],
        )
        .await?;
    }

    let mut notes = Vec::new();
    let other_personal = tx
        .count(
            "SELECT COUNT(*) FROM workspaces w JOIN workspace_members m \
             ON m.workspace_id = w.id WHERE m.account_id = $1 AND m.role = 'owner' \
             AND w.personal AND w.id <> $2",
            &[(&me).into(), (&wsid).into()],
        )
        .await?;
    let personal = ws.personal && other_personal == 0;
    if ws.personal && !personal {
        notes.push(format!(
            "workspace \"{}\" was personal in the backup; you already have a personal \
             workspace on this server, so it was restored as a team workspace",
            ws.name
        ));
    }
    let restored_ws = Workspace {
        id: ws.id,
        name: ws.name.clone(),
        personal,
        created_at: ws.created_at,
    };
    if existing.is_some() {
        tx.execute(
            "UPDATE workspaces SET name = $2, personal = $3, created_at = $4 WHERE id = $1",
            &[
                (&wsid).into(),
                (&ws.name).into(),
                personal.into(),
                ws.created_at.into(),
            ],
        )
        .await?;
    } else {
        tables::insert_workspace(tx, &restored_ws, importer).await?;
    }

    // Which of the archive's members come back.
    let current_members: HashSet<String> = current_members.into_iter().map(|(a,)| a).collect();
    let mut restored: HashSet<AccountId> = HashSet::new();
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
            let server_key: Option<(Vec<u8>,)> = tx
                .optional(
                    "SELECT public_key FROM accounts WHERE id = $1",
                    &[m.account_id.to_string().into()],
                )
                .await?;
            let same_key = server_key.as_ref().map(|(k,)| k.as_slice())
                == account.map(|a| a.keys.public_key.as_bytes());
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
            tables::insert_member(tx, &ws.id, &m.account_id, m.role, m.created_at).await?;
            restored.insert(m.account_id);
        }
    }

    for p in &archive.projects {
        let elsewhere: Option<(String,)> = tx
            .optional(
                "SELECT workspace_id FROM projects WHERE id = $1",
                &[p.id.to_string().into()],
            )
            .await?;
        if elsewhere.is_some() {
            return Err(StoreError::AlreadyExists {
                what: format!("project {} of the backup in another workspace", p.id),
            });
        }
        tables::insert_project(tx, p).await?;
    }
    for k in archive
        .project_keys
        .iter()
        .filter(|k| restored.contains(&k.account_id))
    {
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
        let env = &e.environment;
        let elsewhere: Option<(String,)> = tx
            .optional(
                "SELECT project_id FROM environments WHERE id = $1",
                &[env.id.to_string().into()],
            )
            .await?;
        if elsewhere.is_some() {
            return Err(StoreError::AlreadyExists {
                what: format!("environment {} of the backup in another workspace", env.id),
            });
        }
        tables::insert_environment(tx, env, &e.sealed_key).await?;
    }
    let mut dropped_key_grants = 0usize;
    for g in &archive.grants {
        let keep = match g.grantee_kind {
            GranteeKind::Account => g
                .grantee_id
                .parse::<AccountId>()
                .is_ok_and(|a| restored.contains(&a)),
            GranteeKind::ApiKey => {
                let live: Option<(String,)> = tx
                    .optional(
                        "SELECT id FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
                        &[(&g.grantee_id).into()],
                    )
                    .await?;
                if live.is_none() {
                    dropped_key_grants += 1;
                }
                live.is_some()
            }
        };
        if keep {
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
    }
    if dropped_key_grants > 0 {
        notes.push(format!(
            "{dropped_key_grants} environment key grant{} to system API keys that do not \
             exist on this server (or are revoked) were dropped; create keys again with \
             klef keys create",
            if dropped_key_grants == 1 { "" } else { "s" }
        ));
    }
    let environments: HashSet<String> = archive
        .environments
        .iter()
        .map(|e| e.environment.id.to_string())
        .collect();
    let projects: HashSet<String> = archive.projects.iter().map(|p| p.id.to_string()).collect();
    for (key, project, env) in kept_scopes {
        if projects.contains(&project) && env.as_ref().is_none_or(|e| environments.contains(e)) {
            tx.execute(
                "INSERT INTO api_key_scopes (api_key_id, project_id, environment_id) \
                 VALUES ($1, $2, $3)",
                &[key.into(), project.into(), env.into()],
            )
            .await?;
        }
    }
    tables::insert_secret_versions(tx, &archive.secrets, None).await?;
    crate::manifests::restore(tx, archive, &importer.to_string(), crate::now_ms()).await?;
    // Members' own sealed overrides come back with them (only they can open them).
    for p in archive
        .personal
        .iter()
        .filter(|p| restored.contains(&p.account_id))
    {
        tables::insert_personal(tx, p).await?;
    }
    tables::insert_audit(tx, audit).await?;
    Ok(ServerImport {
        workspace: restored_ws,
        replaced,
        members: restored.len(),
        projects: archive.projects.len(),
        environments: archive.environments.len(),
        secret_versions: archive.secrets.len(),
        notes,
    })
}
