//! The signed-in session: which server, which account, and which store holds its token.
//! Kept as `session.json` (mode 0600) in the config directory; it holds no secret (the token
//! itself is in the keyring or the token file, see [`super::token_store`]).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use klef_core::ids::AccountId;
use klef_core::model::Timestamp;
use klef_core::wire::SecretText;
use serde::{Deserialize, Serialize};

use super::token_store::{StoreKind, TokenStore};
use crate::fsutil::write_atomic;

/// The contents of `session.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Session {
    /// The server's base URL (normalised).
    pub(crate) server: String,
    /// The sign-in email.
    pub(crate) email: String,
    /// The account id.
    pub(crate) account_id: AccountId,
    /// When the session expires (unix milliseconds).
    pub(crate) expires_at: Timestamp,
    /// Where the token is.
    pub(crate) token_store: StoreKind,
}

impl Session {
    /// `<server>#<account id>`: names the token in its store and the account's keys in the
    /// agent, so they never collide with a local vault's (whose id is the bare account id).
    pub(crate) fn label(&self) -> String {
        vault_label(&self.server, &self.account_id)
    }

    /// The session file in `config_dir`.
    pub(crate) fn path(config_dir: &Path) -> PathBuf {
        config_dir.join("session.json")
    }

    /// The current session, if any.
    pub(crate) fn load(config_dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(config_dir);
        match fs_err::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("failed to parse {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Saves the session atomically (mode 0600, directory 0700).
    pub(crate) fn save(&self, config_dir: &Path) -> Result<()> {
        crate::dirs::create_private_dir(config_dir)?;
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        write_atomic(&Self::path(config_dir), s.as_bytes(), 0o600)
    }

    /// Removes the session file.
    pub(crate) fn remove(config_dir: &Path) -> Result<()> {
        match fs_err::remove_file(Self::path(config_dir)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The store that holds this session's token.
    pub(crate) fn store(&self, config_dir: &Path) -> TokenStore {
        TokenStore::of_kind(self.token_store, config_dir)
    }

    /// The session token, if it is still stored.
    pub(crate) fn token(&self, config_dir: &Path) -> Result<Option<SecretText>> {
        self.store(config_dir).load(&self.label())
    }
}

/// The agent's and token store's name for an account on a server.
pub(crate) fn vault_label(server: &str, account: &AccountId) -> String {
    format!("{server}#{account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_label() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Session::load(dir.path()).unwrap().is_none());
        let s = Session {
            server: "http://127.0.0.1:8600".into(),
            email: "a@example.com".into(),
            account_id: AccountId::random(),
            expires_at: 1,
            token_store: StoreKind::File,
        };
        s.save(dir.path()).unwrap();
        assert_eq!(Session::load(dir.path()).unwrap(), Some(s.clone()));
        assert_eq!(s.label(), format!("http://127.0.0.1:8600#{}", s.account_id));
        Session::remove(dir.path()).unwrap();
        assert!(Session::load(dir.path()).unwrap().is_none());
    }
}
