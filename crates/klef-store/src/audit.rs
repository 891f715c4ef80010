//! The audit log's entries as the store writes them ([`Audit`]): every change of the team
//! server records one in the same transaction as the change (`crate::tables::insert_audit`),
//! and so does a key rotation of the local vault. Reading the log is the server's
//! (`Store::audit_entries`).

use klef_core::ids::WorkspaceId;

/// What kind of principal acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorKind {
    /// A signed-in person.
    Account,
    /// An API key.
    ApiKey,
    /// Nobody signed in (a failed sign-in).
    Anonymous,
}

impl ActorKind {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Account => "account",
            ActorKind::ApiKey => "api_key",
            ActorKind::Anonymous => "anonymous",
        }
    }
}

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The kind.
    pub kind: ActorKind,
    /// The account or key id.
    pub id: Option<String>,
    /// The email or key label.
    pub label: Option<String>,
}

/// One audit-log entry to write (the time is taken when it is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The workspace, for workspace events.
    pub workspace_id: Option<WorkspaceId>,
    /// Who.
    pub actor: Actor,
    /// What, e.g. `secrets.write`.
    pub action: String,
    /// On what. Never secret material: ids, slugs, key names, emails.
    pub target: String,
}
