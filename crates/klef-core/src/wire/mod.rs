//! The JSON wire format of the Klef team server (`/v1`), shared by `klef-server` and the CLI's
//! remote backend. `docs/server.md` describes every route; [`routes`] is the one table of them.
//!
//! One module per resource, as `klef-server/src/routes/` has one per group of handlers;
//! everything is re-exported here (`klef_core::wire::LoginRequest`).
//!
//! Conventions:
//! - Requests and responses are JSON objects; every request type rejects unknown fields.
//! - Authenticated routes take `Authorization: Bearer <token>`: a `klef_sess_…` session token,
//!   or an API key (`klef_user_…`, `klef_sys_…`).
//! - Binary data ([`Blob`](crate::model::Blob)) is standard base64; ids are lower-case UUID
//!   strings; times are unix milliseconds ([`Timestamp`](crate::model::Timestamp)).
//! - Every error is an [`ErrorBody`] with a stable machine [`ErrorDetail::code`] (see [`codes`]).
//! - Nothing here ever carries a plaintext value, an unwrapped key or the encryption password:
//!   only the *account* (sign-in) password travels, in [`SignupRequest`] and [`LoginRequest`],
//!   and the server stores only an Argon2id hash of it.

mod accounts;
mod api_keys;
mod backup;
pub mod codes;
mod content;
mod error;
mod health;
mod lifecycle;
pub mod routes;
mod secret_text;
mod teams;

pub use accounts::*;
pub use api_keys::*;
pub use backup::*;
pub use content::*;
pub use error::*;
pub use health::*;
pub use lifecycle::*;
pub use routes::{API_PREFIX, MAX_BACKUP_BYTES, MAX_BODY_BYTES};
pub use secret_text::*;
pub use teams::*;
