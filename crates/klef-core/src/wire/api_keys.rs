//! API keys and their scopes (`routes/api_keys.rs`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::WrappedEnvironmentKey;
use crate::ids::{ApiKeyId, EnvironmentId, ProjectId};
pub use crate::model::{ApiKeyGrant, ApiKeyKind, ApiKeyPermission, ApiKeyRecipient};
use crate::model::{Blob, Timestamp};

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

/// `POST /v1/api-keys`: registers a key the client generated (`ApiToken::generate`). The
/// server never sees the secret: only its SHA-256 and, for a system key, the public key
/// derived from it. Answers `201` with the [`ApiKeyInfo`].
///
/// A user key takes no scopes, permission or environment keys. A system key needs at least
/// one scope, a permission, and `environment_keys` for exactly the environments its scopes
/// cover (each at its current key version), wrapped by the creating admin's client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// The key's id (the `<id>` part of the token).
    pub id: ApiKeyId,
    /// User or system.
    pub kind: ApiKeyKind,
    /// A label shown in `klef keys list` (1–128 characters, no control characters).
    pub label: String,
    /// SHA-256 (64 lower-case hex digits) of the token's 32 secret bytes.
    pub secret_hash: String,
    /// A system key's X25519 public key (32 bytes), derived from its secret.
    #[serde(default)]
    pub public_key: Option<Blob>,
    /// A system key's permission.
    #[serde(default)]
    pub permission: Option<ApiKeyPermission>,
    /// A system key's scopes.
    #[serde(default)]
    pub scopes: Vec<ApiKeyScope>,
    /// A system key's environment keys, wrapped to `public_key`.
    #[serde(default)]
    pub environment_keys: Vec<WrappedEnvironmentKey>,
}

/// `PUT /v1/api-keys/{api_key_id}`: replaces all scopes and the permission of a system key
/// (user keys are refused). `environment_keys` must wrap every environment the new scopes
/// cover that the key does not hold yet; grants of environments no longer covered are deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutApiKeyRequest {
    /// The new scopes (at least one).
    pub scopes: Vec<ApiKeyScope>,
    /// The new permission.
    pub permission: ApiKeyPermission,
    /// Environment keys for newly covered environments, wrapped to the key's public key.
    #[serde(default)]
    pub environment_keys: Vec<WrappedEnvironmentKey>,
}

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
}

/// `GET /v1/api-keys`: the live keys the caller created, and the system keys scoped to
/// projects of workspaces the caller administers; oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyList {
    /// The keys.
    pub keys: Vec<ApiKeyInfo>,
}

/// `GET /v1/projects/{project_id}/api-key-recipients` (admins holding the project key): the
/// live system keys scoped to every environment of the project (`proj:*`). A client creating
/// an environment wraps its key to each of them in
/// [`CreateEnvironmentRequest::api_key_grants`](super::CreateEnvironmentRequest::api_key_grants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecipientList {
    /// The keys.
    pub keys: Vec<ApiKeyRecipient>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_shapes() {
        let scope: ApiKeyScope = serde_json::from_str(
            r#"{"project_id":"0f8fad5b-d9cb-469f-a165-70867728950e","environment_id":null}"#,
        )
        .unwrap();
        assert_eq!(scope.environment_id, None);
        assert_eq!(
            serde_json::to_string(&ApiKeyPermission::Readwrite).unwrap(),
            r#""readwrite""#
        );
        assert_eq!(
            serde_json::to_string(&ApiKeyKind::System).unwrap(),
            r#""system""#
        );
        let info = ApiKeyScopeInfo {
            project_id: scope.project_id,
            project_name: "api".into(),
            environment_id: None,
            environment_slug: None,
        };
        assert_eq!(info.to_string(), "api:*");
    }
}
