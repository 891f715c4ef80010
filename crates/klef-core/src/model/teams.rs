//! Invitations, members, the keys wrapped to a member, and the audit log's entries.

use serde::{Deserialize, Serialize};

use super::{Blob, Role, Timestamp};
use crate::ids::{AccountId, EnvironmentId, InviteId, ProjectId, WorkspaceId};

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    /// Waiting for the invitee to accept.
    Pending,
    /// Accepted; waiting for an admin to confirm (and wrap keys).
    Accepted,
}

/// An invitation to a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The id (used to accept it).
    pub id: InviteId,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The workspace's name.
    pub workspace_name: String,
    /// Who is invited.
    pub email: String,
    /// The role they will have.
    pub role: Role,
    /// The environments they are restricted to; `None` = full access.
    pub environments: Option<Vec<EnvironmentId>>,
    /// The inviter's email.
    pub invited_by: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// Pending or accepted.
    pub status: InvitationStatus,
}

/// A member's standing in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Invited, not yet accepted (no account id yet, or no acceptance).
    Invited,
    /// Accepted; an admin must compare the fingerprint and confirm.
    Accepted,
    /// Confirmed: a member with keys wrapped to them.
    Confirmed,
}

/// One row of `GET /v1/workspaces/{workspace_id}/members` (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The account, once the invitation is accepted.
    pub account_id: Option<AccountId>,
    /// The email.
    pub email: String,
    /// The role.
    pub role: Role,
    /// Invited, accepted or confirmed.
    pub status: MemberStatus,
    /// The account's X25519 public key as the server has it (a claim: a client wraps only to
    /// the keys of the verified roster).
    pub public_key: Option<Blob>,
    /// The account's Ed25519 identity public key as the server has it (a claim, like
    /// `public_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_key: Option<Blob>,
    /// For an accepted invitee who used an invite code: their MAC over their identity under
    /// the code's secret (the confirming admin's client checks it; the server cannot make one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_mac: Option<Blob>,
    /// The invitation, while not confirmed.
    pub invitation_id: Option<InviteId>,
    /// For an invited/accepted member: the environments the invitation restricts them to
    /// (`None` = full access). For a confirmed member: the environments granted directly when
    /// they hold no project key, else `None`.
    pub environments: Option<Vec<EnvironmentId>>,
}

/// A project key wrapped (HPKE, `Aad::ProjectKey`) to a member's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedProjectKey {
    /// The project (of this workspace).
    pub project_id: ProjectId,
    /// The wrapped key.
    pub wrapped_key: Blob,
}

/// An environment key wrapped (HPKE, `Aad::EnvironmentKey`) directly to a public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedEnvironmentKey {
    /// The environment.
    pub environment_id: EnvironmentId,
    /// The key version wrapped; must be the environment's current one.
    pub key_version: i64,
    /// The wrapped key.
    pub wrapped_key: Blob,
}

/// The keys an admin's client wrapped to an accepted invitee, stored when confirming them a
/// member. Full access: the project keys; restricted access: per-environment keys (and no
/// project key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberKeys {
    /// Project keys wrapped to the member (full access). Must be empty for an invitation
    /// restricted to some environments.
    #[serde(default)]
    pub project_keys: Vec<WrappedProjectKey>,
    /// Environment keys wrapped to the member (restricted access): only environments the
    /// invitation lists.
    #[serde(default)]
    pub environment_keys: Vec<WrappedEnvironmentKey>,
    /// The signed roster entry that admits the member, appended in the same transaction as the
    /// keys (a workspace with a roster; clients refuse to wrap to anyone not in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster_entry: Option<RosterEntry>,
}

/// An environment named by id, project and slug (as a removed member's environments to rotate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentRef {
    /// The environment.
    pub id: EnvironmentId,
    /// Its project.
    pub project_id: ProjectId,
    /// Its slug.
    pub slug: String,
}

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    /// `account`, `api_key` or `anonymous`.
    pub kind: String,
    /// The account or key id.
    pub id: Option<String>,
    /// The email or key label.
    pub label: Option<String>,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing id (for paging with `before`).
    pub id: i64,
    /// The workspace, for workspace events.
    pub workspace_id: Option<WorkspaceId>,
    /// Who.
    pub actor: AuditActor,
    /// What, e.g. `secrets.write`, `member.confirm`, `environment.rotate`.
    pub action: String,
    /// On what, e.g. `environment 0f8f… (production): API_KEY, DB_URL`.
    pub target: String,
    /// When.
    pub created_at: Timestamp,
}

/// One entry of a workspace's signed roster as stored and served: the exact signed bytes and
/// the Ed25519 signature (`klef_core::trust::roster::SignedEntry`). The server stores and serves
/// them; it cannot make one, and clients verify every entry before using it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    /// The entry's sequence number (0 = the genesis), as the body states it.
    pub sequence: u64,
    /// The signed body.
    pub body: Blob,
    /// The signature (64 bytes).
    pub signature: Blob,
}
