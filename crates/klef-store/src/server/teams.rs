//! Invitations, members, confirming a member (storing the keys an admin wrapped to them) and
//! removing one (deleting every key wrapped to them in the workspace).

use std::collections::{BTreeSet, HashMap};

use klef_core::backup::GranteeKind;
use klef_core::ids::{AccountId, EnvironmentId, InviteId, WorkspaceId};
use klef_core::model::{
    Blob, EnvironmentRef, Invitation, InvitationStatus, Member, MemberKeys, MemberStatus, Role,
};

use crate::audit::Audit;
use crate::rows::{parse_id, parse_name};
use crate::tables::{self, Grant};
use crate::tx::Tx;
use crate::{Store, StoreError, invalid, not_found, now_ms};

/// A confirmed member's row: account id, email, role, X25519 key, identity key.
type ConfirmedRow = (String, Option<String>, String, Vec<u8>, Option<Vec<u8>>);

/// A new invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvitation {
    /// Its id.
    pub id: InviteId,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Who is invited (normalised email).
    pub email: String,
    /// `admin` or `member`.
    pub role: Role,
    /// Restriction to some environments of the workspace; `None` = full access.
    pub environments: Option<Vec<EnvironmentId>>,
    /// The inviting account.
    pub invited_by: AccountId,
}

/// `SELECT` of an invitation with its workspace name and inviter email, then `$tail`.
macro_rules! select_invitation {
    ($tail:literal) => {
        concat!(
            "SELECT i.id, i.workspace_id, w.name AS workspace_name, i.email, i.role, \
             i.environments, COALESCE(a.email, '') AS invited_by, i.created_at, \
             i.accepted_by, i.accepted_at, i.invite_mac \
             FROM invitations i JOIN workspaces w ON w.id = i.workspace_id \
             LEFT JOIN accounts a ON a.id = i.invited_by ",
            $tail
        )
    };
}

#[derive(sqlx::FromRow)]
struct InvitationRow {
    id: String,
    workspace_id: String,
    workspace_name: String,
    email: String,
    role: String,
    environments: Option<String>,
    invited_by: String,
    created_at: i64,
    accepted_by: Option<String>,
    accepted_at: Option<i64>,
    invite_mac: Option<Vec<u8>>,
}

fn parse_environments(raw: Option<&str>) -> Result<Option<Vec<EnvironmentId>>, StoreError> {
    raw.map(|text| {
        serde_json::from_str(text).map_err(|_| StoreError::Corrupt {
            what: "invitation environments".into(),
        })
    })
    .transpose()
}

impl InvitationRow {
    fn accepted_by(&self) -> Result<Option<AccountId>, StoreError> {
        self.accepted_by
            .as_deref()
            .map(|a| parse_id(a, "account"))
            .transpose()
    }

    fn into_invitation(self) -> Result<Invitation, StoreError> {
        Ok(Invitation {
            id: parse_id(&self.id, "invitation")?,
            workspace_id: parse_id(&self.workspace_id, "workspace")?,
            workspace_name: self.workspace_name,
            email: self.email,
            role: parse_name(&self.role)?,
            environments: parse_environments(self.environments.as_deref())?,
            invited_by: self.invited_by,
            created_at: self.created_at,
            status: if self.accepted_at.is_some() {
                InvitationStatus::Accepted
            } else {
                InvitationStatus::Pending
            },
        })
    }
}

impl Store {
    /// Creates an invitation and records `audit`. The email must not already be a member or
    /// have an open invitation to the workspace ([`StoreError::AlreadyExists`]); restricted
    /// environments must belong to the workspace ([`StoreError::Invalid`]).
    pub async fn create_invitation(
        &self,
        new: &NewInvitation,
        audit: &Audit,
    ) -> Result<Invitation, StoreError> {
        if new.role == Role::Owner {
            return Err(invalid(
                "a workspace has one owner: invite as admin or member",
            ));
        }
        let environments = match &new.environments {
            Some(list) if list.is_empty() => {
                return Err(invalid(
                    "a restricted invitation needs at least one environment",
                ));
            }
            Some(list) => {
                let unique: BTreeSet<EnvironmentId> = list.iter().copied().collect();
                Some(unique.into_iter().collect::<Vec<_>>())
            }
            None => None,
        };
        let env_json = environments
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|_| invalid("environments could not be encoded"))?;
        let ws = new.workspace_id.to_string();
        let created_at = now_ms();
        let mut tx = Tx::write(self).await?;
        let result = async {
            let member = tx
                .count(
                    "SELECT COUNT(*) FROM workspace_members m \
                     JOIN accounts a ON a.id = m.account_id \
                     WHERE m.workspace_id = $1 AND a.email = $2",
                    &[(&ws).into(), (&new.email).into()],
                )
                .await?;
            if member > 0 {
                return Err(StoreError::AlreadyExists {
                    what: format!("member {} of this workspace", new.email),
                });
            }
            let open = tx
                .count(
                    "SELECT COUNT(*) FROM invitations \
                     WHERE workspace_id = $1 AND email = $2 AND closed_at IS NULL",
                    &[(&ws).into(), (&new.email).into()],
                )
                .await?;
            if open > 0 {
                return Err(StoreError::AlreadyExists {
                    what: format!("an open invitation for {}", new.email),
                });
            }
            for env in environments.iter().flatten() {
                let inside = tx
                    .count(
                        "SELECT COUNT(*) FROM environments e \
                         JOIN projects p ON p.id = e.project_id \
                         WHERE e.id = $1 AND p.workspace_id = $2",
                        &[env.to_string().into(), (&ws).into()],
                    )
                    .await?;
                if inside == 0 {
                    return Err(invalid(format!(
                        "environment {env} is not in this workspace"
                    )));
                }
            }
            tx.execute(
                "INSERT INTO invitations \
                 (id, workspace_id, email, role, environments, invited_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    new.id.to_string().into(),
                    (&ws).into(),
                    (&new.email).into(),
                    new.role.as_str().into(),
                    env_json.as_deref().into(),
                    new.invited_by.to_string().into(),
                    created_at.into(),
                ],
            )
            .await
            .map_err(|e| StoreError::exists_or(e, || format!("invitation {}", new.id)))?;
            tables::insert_audit(&mut tx, audit).await?;
            let row: InvitationRow = tx
                .one(
                    select_invitation!("WHERE i.id = $1"),
                    &[new.id.to_string().into()],
                )
                .await?;
            row.into_invitation()
        }
        .await;
        tx.finish(result).await
    }

    /// The open invitations for an email, oldest first.
    pub async fn invitations_for_email(&self, email: &str) -> Result<Vec<Invitation>, StoreError> {
        let rows: Vec<InvitationRow> = with_pool!(self, pool => {
            sqlx::query_as(select_invitation!(
                "WHERE i.email = $1 AND i.closed_at IS NULL ORDER BY i.created_at, i.id"
            ))
            .bind(email)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(InvitationRow::into_invitation)
            .collect()
    }

    /// Accepts an open, not yet accepted invitation addressed to `email`, for `account`, and
    /// records `audit`. Any other invitation is [`StoreError::NotFound`].
    pub async fn accept_invitation(
        &self,
        id: &InviteId,
        account: &AccountId,
        email: &str,
        invite_mac: Option<&Blob>,
        audit: &Audit,
    ) -> Result<Invitation, StoreError> {
        let mut tx = Tx::write(self).await?;
        let result = async {
            let done = tx
                .execute(
                    "UPDATE invitations SET accepted_by = $3, accepted_at = $4, invite_mac = $5 \
                     WHERE id = $1 AND email = $2 AND closed_at IS NULL AND accepted_at IS NULL",
                    &[
                        id.to_string().into(),
                        email.into(),
                        account.to_string().into(),
                        now_ms().into(),
                        invite_mac.map(Blob::as_bytes).into(),
                    ],
                )
                .await?;
            if done == 0 {
                return Err(not_found(format!("open invitation {id}")));
            }
            let row: InvitationRow = tx
                .one(
                    select_invitation!("WHERE i.id = $1"),
                    &[id.to_string().into()],
                )
                .await?;
            let mut entry = audit.clone();
            entry.workspace_id = Some(parse_id(&row.workspace_id, "workspace")?);
            tables::insert_audit(&mut tx, &entry).await?;
            row.into_invitation()
        }
        .await;
        tx.finish(result).await
    }

    /// The members of a workspace: confirmed ones (owner, admins, members by email), then the
    /// open invitations (accepted ones with the invitee's public key).
    pub async fn members(&self, ws: &WorkspaceId) -> Result<Vec<Member>, StoreError> {
        let ws_id = ws.to_string();
        let (confirmed, full, grants, invitations) = with_pool!(self, pool => {
            let confirmed: Vec<ConfirmedRow> =
                sqlx::query_as(
                "SELECT a.id, a.email, m.role, a.public_key, a.identity_key \
                 FROM workspace_members m \
                 JOIN accounts a ON a.id = m.account_id WHERE m.workspace_id = $1",
            )
            .bind(&ws_id)
            .fetch_all(pool)
            .await?;
            let full: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT k.account_id FROM project_keys k \
                 JOIN projects p ON p.id = k.project_id WHERE p.workspace_id = $1",
            )
            .bind(&ws_id)
            .fetch_all(pool)
            .await?;
            let grants: Vec<(String, String)> = sqlx::query_as(
                "SELECT g.grantee_id, g.environment_id FROM environment_grants g \
                 JOIN environments e ON e.id = g.environment_id \
                 JOIN projects p ON p.id = e.project_id \
                 WHERE p.workspace_id = $1 AND g.grantee_kind = 'account'",
            )
            .bind(&ws_id)
            .fetch_all(pool)
            .await?;
            #[expect(clippy::type_complexity, reason = "one row's two optional keys")]
            let invitations: Vec<(InvitationRow, Option<(Vec<u8>, Option<Vec<u8>>)>)> = {
                let rows: Vec<InvitationRow> = sqlx::query_as(select_invitation!(
                    "WHERE i.workspace_id = $1 AND i.closed_at IS NULL ORDER BY i.created_at, i.id"
                ))
                .bind(&ws_id)
                .fetch_all(pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let key: Option<(Vec<u8>, Option<Vec<u8>>)> = match &row.accepted_by {
                        Some(account) => {
                            sqlx::query_as(
                                "SELECT public_key, identity_key FROM accounts WHERE id = $1",
                            )
                            .bind(account)
                            .fetch_optional(pool)
                            .await?
                        }
                        None => None,
                    };
                    out.push((row, key));
                }
                out
            };
            (confirmed, full, grants, invitations)
        });
        let full: BTreeSet<String> = full.into_iter().collect();
        let mut granted: HashMap<String, Vec<EnvironmentId>> = HashMap::new();
        for (account, env) in grants {
            granted
                .entry(account)
                .or_default()
                .push(parse_id(&env, "environment")?);
        }
        let mut members = Vec::with_capacity(confirmed.len() + invitations.len());
        for (id, email, role, public_key, identity_key) in confirmed {
            let environments = if full.contains(&id) {
                None
            } else {
                let mut envs = granted.remove(&id).unwrap_or_default();
                envs.sort();
                Some(envs)
            };
            members.push(Member {
                account_id: Some(parse_id(&id, "account")?),
                email: email.unwrap_or_default(),
                role: parse_name(&role)?,
                status: MemberStatus::Confirmed,
                public_key: Some(Blob(public_key)),
                identity_key: identity_key.map(Blob),
                invite_mac: None,
                invitation_id: None,
                environments,
            });
        }
        members.sort_by(|a, b| a.role.cmp(&b.role).then(a.email.cmp(&b.email)));
        for (row, keys) in invitations {
            let account_id = row.accepted_by()?;
            let invite_mac = row.invite_mac.clone().map(Blob);
            let (public_key, identity_key) = match keys {
                Some((public, identity)) => (Some(Blob(public)), identity.map(Blob)),
                None => (None, None),
            };
            let invitation = row.into_invitation()?;
            members.push(Member {
                account_id,
                email: invitation.email,
                role: invitation.role,
                status: match invitation.status {
                    InvitationStatus::Accepted => MemberStatus::Accepted,
                    InvitationStatus::Pending => MemberStatus::Invited,
                },
                public_key,
                identity_key,
                invite_mac,
                invitation_id: Some(invitation.id),
                environments: invitation.environments,
            });
        }
        Ok(members)
    }

    /// Confirms an accepted invitee of `ws`: adds them as a member with the invitation's role
    /// and stores the keys wrapped to them, closing the invitation, and records `audit`, in one
    /// transaction. A restricted invitation accepts no project key and only environment keys
    /// for the environments it lists; every key must belong to the workspace and wrap the
    /// current key version ([`StoreError::Invalid`] otherwise, nothing written).
    pub async fn confirm_member(
        &self,
        ws: &WorkspaceId,
        account: &AccountId,
        keys: &MemberKeys,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::write(self).await?;
        let result = confirm_in(&mut tx, ws, account, keys, audit).await;
        tx.finish(result).await
    }

    /// Removes `account` from `ws`: its membership, every project key and direct grant wrapped
    /// to it in the workspace, and its open invitations; records `audit`. Returns the
    /// environments it could decrypt (to rotate). The owner cannot be removed
    /// ([`StoreError::Invalid`]); an account with neither membership nor invitation is
    /// [`StoreError::NotFound`].
    pub async fn remove_member(
        &self,
        ws: &WorkspaceId,
        account: &AccountId,
        audit: &Audit,
    ) -> Result<Vec<EnvironmentRef>, StoreError> {
        let mut tx = Tx::write(self).await?;
        let result = remove_in(&mut tx, ws, account, audit).await;
        tx.finish(result).await
    }

    /// Cancels the open invitation `id` of `ws` that nobody has accepted yet (an admin lost
    /// the invite code, or invited the wrong address) and records `audit`; the email can then
    /// be invited again. An accepted one is cancelled by removing the member
    /// ([`Store::remove_member`]); an unknown, closed or accepted one is
    /// [`StoreError::NotFound`].
    pub async fn cancel_invitation(
        &self,
        ws: &WorkspaceId,
        id: &InviteId,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let mut tx = Tx::write(self).await?;
        let result = async {
            let closed = tx
                .execute(
                    "UPDATE invitations SET closed_at = $3 WHERE id = $1 AND workspace_id = $2 \
                     AND closed_at IS NULL AND accepted_by IS NULL",
                    &[
                        id.to_string().into(),
                        ws.to_string().into(),
                        now_ms().into(),
                    ],
                )
                .await?;
            if closed == 0 {
                return Err(not_found(format!("open invitation {id}")));
            }
            tables::insert_audit(&mut tx, audit).await?;
            Ok(())
        }
        .await;
        tx.finish(result).await
    }
}

/// The transaction of [`Store::confirm_member`].
async fn confirm_in(
    tx: &mut Tx,
    ws: &WorkspaceId,
    account: &AccountId,
    keys: &MemberKeys,
    audit: &Audit,
) -> Result<(), StoreError> {
    let ws_id = ws.to_string();
    let account_id = account.to_string();
    let now = now_ms();
    let row: Option<InvitationRow> = tx
        .optional(
            select_invitation!(
                "WHERE i.workspace_id = $1 AND i.accepted_by = $2 AND i.closed_at IS NULL"
            ),
            &[(&ws_id).into(), (&account_id).into()],
        )
        .await?;
    let Some(row) = row else {
        return Err(not_found(format!(
            "accepted invitation of account {account}"
        )));
    };
    let invitation = row.into_invitation()?;
    if let Some(allowed) = &invitation.environments {
        if !keys.project_keys.is_empty() {
            return Err(invalid(
                "this member is restricted to some environments: send environment keys, \
                 not project keys",
            ));
        }
        if let Some(extra) = keys
            .environment_keys
            .iter()
            .find(|k| !allowed.contains(&k.environment_id))
        {
            return Err(invalid(format!(
                "environment {} is not in this member's invitation",
                extra.environment_id
            )));
        }
    }
    if keys.project_keys.is_empty()
        && keys.environment_keys.is_empty()
        && keys.roster_entry.is_none()
    {
        return Err(invalid(
            "confirming a member needs at least one wrapped key",
        ));
    }
    for pk in &keys.project_keys {
        let inside = tx
            .count(
                "SELECT COUNT(*) FROM projects WHERE id = $1 AND workspace_id = $2",
                &[pk.project_id.to_string().into(), (&ws_id).into()],
            )
            .await?;
        if inside == 0 {
            return Err(invalid(format!(
                "project {} is not in this workspace",
                pk.project_id
            )));
        }
        tables::insert_project_key(tx, &pk.project_id, account, &pk.wrapped_key, now)
            .await
            .map_err(|e| {
                StoreError::exists_or(e, || format!("a key of project {}", pk.project_id))
            })?;
    }
    for ek in &keys.environment_keys {
        let current: Option<(i64,)> = tx
            .optional(
                "SELECT e.key_version FROM environments e \
                 JOIN projects p ON p.id = e.project_id \
                 WHERE e.id = $1 AND p.workspace_id = $2",
                &[ek.environment_id.to_string().into(), (&ws_id).into()],
            )
            .await?;
        match current {
            None => {
                return Err(invalid(format!(
                    "environment {} is not in this workspace",
                    ek.environment_id
                )));
            }
            Some((v,)) if v != ek.key_version => {
                return Err(invalid(format!(
                    "environment {} is at key version {v}, not {}",
                    ek.environment_id, ek.key_version
                )));
            }
            Some(_) => {}
        }
        tables::insert_grant(
            tx,
            &Grant {
                environment_id: &ek.environment_id,
                grantee_kind: GranteeKind::Account,
                grantee_id: &account_id,
                wrapped_key: &ek.wrapped_key,
                key_version: ek.key_version,
                created_at: now,
            },
        )
        .await
        .map_err(|e| {
            StoreError::exists_or(e, || format!("a key of environment {}", ek.environment_id))
        })?;
    }
    tables::insert_member(tx, ws, account, invitation.role, now)
        .await
        .map_err(|e| StoreError::exists_or(e, || format!("member {account}")))?;
    if let Some(entry) = &keys.roster_entry {
        let by = audit
            .actor
            .id
            .as_deref()
            .and_then(|id| id.parse::<AccountId>().ok())
            .unwrap_or(*account);
        crate::roster::append_roster_entries(tx, ws, std::slice::from_ref(entry), &by, now).await?;
    }
    tx.execute(
        "UPDATE invitations SET closed_at = $2 WHERE id = $1",
        &[invitation.id.to_string().into(), now.into()],
    )
    .await?;
    tables::insert_audit(tx, audit).await?;
    Ok(())
}

/// The transaction of [`Store::remove_member`].
async fn remove_in(
    tx: &mut Tx,
    ws: &WorkspaceId,
    account: &AccountId,
    audit: &Audit,
) -> Result<Vec<EnvironmentRef>, StoreError> {
    let ws_id = ws.to_string();
    let account_id = account.to_string();
    let both = || [(&ws_id).into(), (&account_id).into()];
    let role: Option<(String,)> = tx
        .optional(
            "SELECT role FROM workspace_members WHERE workspace_id = $1 AND account_id = $2",
            &both(),
        )
        .await?;
    if role.is_some_and(|(r,)| r == Role::Owner.as_str()) {
        return Err(invalid("the workspace owner cannot be removed"));
    }
    let reachable: Vec<(String, String, String)> = tx
        .all(
            "SELECT e.id, e.project_id, e.slug FROM environments e \
             JOIN projects p ON p.id = e.project_id WHERE p.workspace_id = $1 AND ( \
               EXISTS (SELECT 1 FROM project_keys k \
                       WHERE k.project_id = e.project_id AND k.account_id = $2) \
               OR EXISTS (SELECT 1 FROM environment_grants g WHERE g.environment_id = e.id \
                          AND g.grantee_kind = 'account' AND g.grantee_id = $2)) \
             ORDER BY e.created_at, e.id",
            &both(),
        )
        .await?;
    tx.execute(
        "DELETE FROM project_keys WHERE account_id = $2 AND project_id IN \
         (SELECT id FROM projects WHERE workspace_id = $1)",
        &both(),
    )
    .await?;
    tx.execute(
        "DELETE FROM environment_grants WHERE grantee_kind = 'account' \
         AND grantee_id = $2 AND environment_id IN \
         (SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id \
          WHERE p.workspace_id = $1)",
        &both(),
    )
    .await?;
    let members = tx
        .execute(
            "DELETE FROM workspace_members WHERE workspace_id = $1 AND account_id = $2",
            &both(),
        )
        .await?;
    let invitations = tx
        .execute(
            "UPDATE invitations SET closed_at = $3 WHERE workspace_id = $1 \
             AND closed_at IS NULL AND (accepted_by = $2 OR email = \
             (SELECT email FROM accounts WHERE id = $2))",
            &[(&ws_id).into(), (&account_id).into(), now_ms().into()],
        )
        .await?;
    if members == 0 && invitations == 0 {
        return Err(not_found(format!("member {account}")));
    }
    tables::insert_audit(tx, audit).await?;
    reachable
        .into_iter()
        .map(|(id, project_id, slug)| {
            Ok(EnvironmentRef {
                id: parse_id(&id, "environment")?,
                project_id: parse_id(&project_id, "project")?,
                slug,
            })
        })
        .collect()
}
