//! Backups at the storage level: [`Store::export_workspace`](crate::Store::export_workspace)
//! reads every stored row of one workspace into a [`klef_core::backup::Archive`] (one
//! consistent snapshot), and [`Store::import_archive`](crate::Store::import_archive) writes an
//! archive back into a local vault in one transaction; the server's restore is
//! `crate::server`'s. Like the rest of the store it moves metadata and sealed bytes only; the
//! file format lives in [`klef_core::backup`].

mod export;
mod guard;
mod local;

pub(crate) use guard::delete_past_guard;
pub use local::{Contents, ImportMode, ImportSummary};
