//! The committed `.klef` file: `{"version":1,"project":"…","environment":"development"}`, plus
//! `"server"` when the project lives on a Klef server and `"mask": true` when `klef run` masks
//! secret values in its command's output for everyone. It holds no secrets.

use serde::{Deserialize, Serialize};

use crate::ids::ProjectId;
use crate::names::validate_slug;

/// The file name searched for from the working directory upwards.
pub const FILE_NAME: &str = ".klef";
/// The format version this Klef writes and reads.
pub const VERSION: u32 = 1;

/// The contents of a `.klef` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KlefFile {
    /// Format version (1).
    pub version: u32,
    /// The project id.
    pub project: ProjectId,
    /// The default environment slug.
    pub environment: String,
    /// The server URL when the project is remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Whether `klef run` masks secret values in its command's output (as with `--mask`) for
    /// everyone working in this project; `klef run --no-mask` overrides it. Absent = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<bool>,
}

/// Why a `.klef` file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KlefFileError {
    /// Not valid JSON or missing/unknown fields.
    #[error("not a valid .klef file: {0}")]
    Invalid(String),
    /// Written by a newer Klef.
    #[error(".klef format version {0} is newer than this klef supports ({VERSION}): upgrade klef")]
    NewerVersion(u32),
}

impl KlefFile {
    /// A version-1 file.
    #[must_use]
    pub fn new(project: ProjectId, environment: impl Into<String>, server: Option<String>) -> Self {
        Self {
            version: VERSION,
            project,
            environment: environment.into(),
            server,
            mask: None,
        }
    }

    /// Parses the file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, KlefFileError> {
        #[derive(Deserialize)]
        struct Probe {
            version: Option<u32>,
        }
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| KlefFileError::Invalid(e.to_string()))?;
        match probe.version {
            None => return Err(KlefFileError::Invalid("missing field `version`".into())),
            Some(v) if v > VERSION => return Err(KlefFileError::NewerVersion(v)),
            Some(_) => {}
        }
        let file: Self =
            serde_json::from_slice(bytes).map_err(|e| KlefFileError::Invalid(e.to_string()))?;
        validate_slug(&file.environment).map_err(|e| KlefFileError::Invalid(e.to_string()))?;
        Ok(file)
    }

    /// Renders the file as pretty JSON with a trailing newline.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = KlefFile::new(ProjectId::random(), "development", None);
        assert_eq!(KlefFile::parse(f.render().as_bytes()).unwrap(), f);
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            KlefFile::parse(b"{"),
            Err(KlefFileError::Invalid(_))
        ));
        assert!(matches!(
            KlefFile::parse(br#"{"version":2}"#),
            Err(KlefFileError::NewerVersion(2))
        ));
        let unknown = br#"{"version":1,"project":"0f8fad5b-d9cb-469f-a165-70867728950e","environment":"dev","x":1}"#;
        assert!(matches!(
            KlefFile::parse(unknown),
            Err(KlefFileError::Invalid(_))
        ));
        let masked = br#"{"version":1,"project":"0f8fad5b-d9cb-469f-a165-70867728950e","environment":"dev","mask":true}"#;
        assert_eq!(KlefFile::parse(masked).unwrap().mask, Some(true));
        let bad_env = br#"{"version":1,"project":"0f8fad5b-d9cb-469f-a165-70867728950e","environment":"Dev"}"#;
        assert!(matches!(
            KlefFile::parse(bad_env),
            Err(KlefFileError::Invalid(_))
        ));
    }
}
