//! [`Store`]: opening a database (`open`), deciding whether this build may use it
//! (`identity`), and leaving the local vault at the end of a command (`wal`).

mod identity;
mod open;
mod wal;

pub use identity::{FORMAT_VERSION, SQLITE_APPLICATION_ID};
#[cfg(feature = "sqlite")]
pub(crate) use identity::{Schema, VAULT_IDENTITY, check_sqlite_header, identity_from, schema_of};
#[cfg(feature = "sqlite")]
pub(crate) use open::BUSY_TIMEOUT;
pub use open::Store;
#[cfg(feature = "sqlite")]
pub(crate) use wal::{log_folded, log_holds_anything};
