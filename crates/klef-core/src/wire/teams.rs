//! Invitations, members and the audit log (`routes/teams.rs`).

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, EnvironmentId};
use crate::model::Role;
pub use crate::model::{
    AuditActor, AuditEntry, EnvironmentRef, Invitation, InvitationStatus, Member, MemberKeys,
    MemberStatus, RosterEntry, WrappedEnvironmentKey, WrappedProjectKey,
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

/// `POST /v1/invitations/{invite_id}/accept`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// With an invite code: the MAC of the invitee's identity under the code's secret
    /// (`trust::roster::invite::InviteCode::mac`), which the confirming admin checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_mac: Option<crate::model::Blob>,
}

/// `GET /v1/workspaces/{workspace_id}/roster?after=N` (members, and invitees of the
/// workspace): the entries after sequence `N` (all without it), in order. `POST` the same
/// [`RosterList`] (admins) appends entries that continue the stored chain (`409` when another
/// admin appended first); answers `204`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterList {
    /// The entries, by sequence.
    pub entries: Vec<RosterEntry>,
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
