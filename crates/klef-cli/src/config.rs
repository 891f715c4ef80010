//! The CLI's small persisted state: which workspace is current. JSON in the config directory,
//! written atomically with mode 0600. Unknown fields are rejected so typos surface.

use std::path::Path;

use anyhow::{Context as _, Result};
use klef_core::ids::WorkspaceId;
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

/// Contents of `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The workspace `klef init`, `projects list` and `-p NAME` use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) workspace: Option<WorkspaceId>,
}

impl Config {
    /// Loads the file; a missing file is the default config.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        match fs_err::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("failed to parse {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Saves the file atomically (creating its directory 0700).
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            crate::dirs::create_private_dir(dir)?;
        }
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        write_atomic(path, s.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/config.json");
        assert_eq!(Config::load(&p).unwrap(), Config::default());
        let c = Config {
            workspace: Some(WorkspaceId::random()),
        };
        c.save(&p).unwrap();
        assert_eq!(Config::load(&p).unwrap(), c);
        std::fs::write(&p, br#"{"workspace_typo":1}"#).unwrap();
        assert!(Config::load(&p).is_err());
    }
}
