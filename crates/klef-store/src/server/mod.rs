//! Server-only queries (the team server, `klef-server`): sessions, failed sign-ins, invitations,
//! members and their wrapped keys, API keys, direct grants, key rotation and the audit log, on the tables
//! of migration `0002_server`. Like the rest of the store they handle only metadata, hashes and
//! sealed bytes.
//!
//! Every change takes an [`Audit`] entry and writes it in the same transaction as the change;
//! the [`Store`](crate::Store) methods that the local vault also uses have `*_audited` variants
//! for this.

/// Appends an [`Audit`] entry on `$conn` (a connection or transaction of either backend);
/// evaluates to `Result<(), sqlx::Error>`.
macro_rules! insert_audit {
    ($conn:expr, $entry:expr) => {{
        let entry: &$crate::server::Audit = $entry;
        sqlx::query(
            "INSERT INTO audit_log \
             (workspace_id, actor_kind, actor_id, actor_label, action, target, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(entry.workspace_id.map(|w| w.to_string()))
        .bind(entry.actor.kind.as_str())
        .bind(entry.actor.id.as_deref())
        .bind(entry.actor.label.as_deref())
        .bind(&entry.action)
        .bind(&entry.target)
        .bind($crate::server::now_ms())
        .execute($conn)
        .await
        .map(|_| ())
    }};
}

mod access;
mod api_keys;
mod audit;
mod sessions;
mod teams;

use std::time::{SystemTime, UNIX_EPOCH};

use klef_core::ids::WorkspaceId;
use klef_core::model::Timestamp;

pub use access::{AccessFacts, AccessTarget, RotateOutcome, SecretsRevision};
pub use api_keys::{ApiKeyAuth, EnvironmentCreation, NewApiKey};
pub use sessions::{
    AttemptIds, AttemptLimit, AttemptScope, NewSession, Reservation, SessionInfo, Signup,
    SignupOutcome, SignupPrecheck,
};
pub use teams::NewInvitation;

/// Milliseconds since the Unix epoch, now.
#[must_use]
pub fn now_ms() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

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
