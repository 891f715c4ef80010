//! Invitations, members and the audit log (`routes/teams.rs`).

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, EnvironmentId};
use crate::model::Role;
pub use crate::model::{
    AuditActor, AuditEntry, EnvironmentRef, Invitation, InvitationStatus, Member, MemberKeys,
    MemberStatus, WrappedEnvironmentKey, WrappedProjectKey,
};

/// `POST /v1/workspaces/{workspace_id}/members/{account_id}/confirm` (admins): the
/// [`MemberKeys`] an admin's client wrapped to an accepted invitee. Answers with the confirmed
/// [`Member`].
pub type ConfirmMemberRequest = MemberKeys;

/// `POST /v1/workspaces/{workspace_id}/invitations` (admins). Answers `201` with the
/// [`Invitation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationRequest {
    /// Who is invited.
    pub email: String,
    /// `admin` or `member` (a workspace has one owner).
    pub role: Role,
    /// Restricts the member to these environments (of this workspace); absent = full access.
    #[serde(default)]
    pub environments: Option<Vec<EnvironmentId>>,
}

/// `GET /v1/invitations`: the open invitations for the caller's email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationList {
    /// The invitations.
    pub invitations: Vec<Invitation>,
}

/// `GET /v1/workspaces/{workspace_id}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    /// Confirmed members first (owner, admins, members), then accepted and invited ones.
    pub members: Vec<Member>,
}

/// `DELETE /v1/workspaces/{workspace_id}/members/{account_id}` (admins): removes the member
/// and every key wrapped to them in the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveMemberResponse {
    /// Who was removed.
    pub account_id: AccountId,
    /// The environments they could decrypt: rotate these keys
    /// (`POST /v1/environments/{id}/rotate`), since they may have kept a copy.
    pub rotate: Vec<EnvironmentRef>,
    /// A human-readable reminder to rotate.
    pub message: String,
}

/// `GET /v1/workspaces/{workspace_id}/audit?limit=N&before=ID` (admins), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditList {
    /// The entries.
    pub entries: Vec<AuditEntry>,
}
