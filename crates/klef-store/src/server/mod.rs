//! Server-only queries (the team server, `klef-server`, behind this crate's `server` feature):
//! sessions, failed sign-ins, invitations, members and their wrapped keys, API keys, direct
//! grants, authorization facts, server backups and reading the audit log, on the tables of
//! migration `0002_server`. Like the rest of the store they handle only metadata, hashes and
//! sealed bytes. Every change takes an [`Audit`] entry and writes it in the same transaction.

mod access;
mod api_keys;
mod audit;
mod backup;
mod project_key;
mod projects;
mod roster;
mod sessions;
mod teams;

pub use crate::audit::{Actor, ActorKind, Audit};
pub use crate::now_ms;
pub use crate::rotate::RotateOutcome;
pub use access::{AccessFacts, AccessTarget, SecretsRevision};
pub use api_keys::{ApiKeyAuth, NewApiKey};
pub use backup::ServerImport;
pub use sessions::{
    AttemptIds, AttemptLimit, AttemptScope, NewSession, Reservation, SessionInfo, Signup,
    SignupOutcome, SignupPrecheck,
};
pub use teams::NewInvitation;
