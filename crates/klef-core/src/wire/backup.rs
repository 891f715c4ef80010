//! Backups in server mode: `klef backup export` / `klef backup import` (`routes/backup.rs`).

use serde::{Deserialize, Serialize};

use crate::model::Workspace;

/// The media type of a backup archive on the wire (export answers and import bodies).
pub const BACKUP_MEDIA_TYPE: &str = "application/octet-stream";

/// The query of `POST /v1/import`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportBackupParams {
    /// Replace the workspace's contents when it already holds projects on the server.
    #[serde(default)]
    pub force: bool,
}

/// The answer to `POST /v1/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportBackupResponse {
    /// The restored workspace as the server now has it.
    pub workspace: Workspace,
    /// Whether an existing workspace's contents were replaced.
    pub replaced: bool,
    /// Members restored (the caller included).
    pub members: u64,
    /// Projects restored.
    pub projects: u64,
    /// Environments restored.
    pub environments: u64,
    /// Secret versions restored (history and deletes included).
    pub secret_versions: u64,
    /// What was left out or changed, one sentence each (members skipped, grants dropped).
    pub notes: Vec<String>,
}
