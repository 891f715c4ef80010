//! API keys: their kinds and permissions, a system key's scopes, how a key is listed, and
//! the environment keys wrapped to a system key.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Blob, Timestamp, UnknownName, WrappedEnvironmentKey};
use crate::ids::{ApiKeyId, EnvironmentId, ProjectId};

/// The kind of an API key (`klef_user_…` or `klef_sys_…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyKind {
    /// Authenticates as the person who made it (full access as them; unlocking still needs
    /// their encryption password).
    User,
    /// A scoped machine key with its own key pair: decrypts end to end within its scopes.
    System,
}

impl ApiKeyKind {
    /// `user` or `system`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyKind::User => "user",
            ApiKeyKind::System => "system",
        }
    }
}

impl std::str::FromStr for ApiKeyKind {
    type Err = UnknownName;

    /// The kind [`ApiKeyKind::as_str`] names.
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s {
            "user" => Ok(ApiKeyKind::User),
            "system" => Ok(ApiKeyKind::System),
            _ => Err(UnknownName::new("API key kind", s)),
        }
    }
}

/// What a system key may do within its scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyPermission {
    /// List, get and read the history of secrets, and reach the environment keys.
    Read,
    /// [`Read`](Self::Read), and write secrets.
    Readwrite,
}

impl ApiKeyPermission {
    /// `read` or `readwrite`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyPermission::Read => "read",
            ApiKeyPermission::Readwrite => "readwrite",
        }
    }
}

impl std::str::FromStr for ApiKeyPermission {
    type Err = UnknownName;

    /// The permission [`ApiKeyPermission::as_str`] names.
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s {
            "read" => Ok(ApiKeyPermission::Read),
            "readwrite" => Ok(ApiKeyPermission::Readwrite),
            _ => Err(UnknownName::new("API key permission", s)),
        }
    }
}

/// A new environment's key wrapped (HPKE, `Aad::EnvironmentKey`) to a system key's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyGrant {
    /// The system key.
    pub api_key_id: ApiKeyId,
    /// The environment key, wrapped to the key's public key.
    pub wrapped_key: Blob,
}

/// One system key that must receive a new environment's key (scoped to every environment of
/// the project, `proj:*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecipient {
    /// The key.
    pub api_key_id: ApiKeyId,
    /// Its public prefix (for messages).
    pub prefix: String,
    /// Its X25519 public key.
    pub public_key: Blob,
}

/// One scope of a system key: an environment of a project, or every environment of it
/// (`environment_id: null`, written `proj:*`), including environments created later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyScope {
    /// The project.
    pub project_id: ProjectId,
    /// The environment, or `None` for every environment of the project.
    #[serde(default)]
    pub environment_id: Option<EnvironmentId>,
}

/// A new set of scopes and permission for a system key (user keys are refused); the body of
/// `PUT /v1/api-keys/{api_key_id}`. `environment_keys` must wrap every environment the new scopes
/// cover that the key does not hold yet; grants of environments no longer covered are deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyUpdate {
    /// The new scopes (at least one).
    pub scopes: Vec<ApiKeyScope>,
    /// The new permission.
    pub permission: ApiKeyPermission,
    /// Environment keys for newly covered environments, wrapped to the key's public key.
    #[serde(default)]
    pub environment_keys: Vec<WrappedEnvironmentKey>,
}

/// Largest sealed CI anchor accepted (it is about 150 bytes).
pub const MAX_ANCHOR_BYTES: usize = 512;

/// A scope as listed, with names for display (`proj:env`, `proj:*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyScopeInfo {
    /// The project.
    pub project_id: ProjectId,
    /// The project's name.
    pub project_name: String,
    /// The environment, or `None` for every environment (`*`).
    pub environment_id: Option<EnvironmentId>,
    /// The environment's slug, or `None` for `*`.
    pub environment_slug: Option<String>,
}

impl fmt::Display for ApiKeyScopeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.project_name,
            self.environment_slug.as_deref().unwrap_or("*")
        )
    }
}

/// An API key as `klef keys list` shows it. Never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// The id.
    pub id: ApiKeyId,
    /// The public prefix `klef_user_<id>` / `klef_sys_<id>`.
    pub prefix: String,
    /// User or system.
    pub kind: ApiKeyKind,
    /// The label.
    pub label: String,
    /// The creator's email (`None` when unknown).
    pub created_by_email: Option<String>,
    /// A system key's permission; `None` for a user key (full access as its owner).
    pub permission: Option<ApiKeyPermission>,
    /// A system key's scopes (empty for a user key).
    pub scopes: Vec<ApiKeyScopeInfo>,
    /// A system key's public key.
    pub public_key: Option<Blob>,
    /// When it was created.
    pub created_at: Timestamp,
    /// A system key's sealed CI anchor (DESIGN.md §9.4): opaque to the server, opened only by
    /// the token's holder. `None` for user keys and keys made before anchors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Blob>,
}
