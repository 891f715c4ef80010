//! API keys and their scopes (`routes/api_keys.rs`).

use serde::{Deserialize, Serialize};

use super::WrappedEnvironmentKey;
use crate::ids::ApiKeyId;
pub use crate::model::{
    ApiKeyGrant, ApiKeyInfo, ApiKeyKind, ApiKeyPermission, ApiKeyRecipient, ApiKeyScope,
    ApiKeyScopeInfo,
};
use crate::model::{ApiKeyUpdate, Blob};

/// `PUT /v1/api-keys/{api_key_id}`: an [`ApiKeyUpdate`] of a system key; answers with the
/// key's [`ApiKeyInfo`].
pub type PutApiKeyRequest = ApiKeyUpdate;

/// `POST /v1/api-keys`: registers a key the client generated (`ApiToken::generate`). The
/// server never sees the secret, nor anything that decrypts or signs: only SHA-256 of the
/// bearer credential derived from it and, for a system key, the X25519 and Ed25519 public keys
/// derived from it (docs/crypto.md, "API tokens"). Answers `201` with the [`ApiKeyInfo`].
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
    /// SHA-256 (64 lower-case hex digits) of the bearer credential `HKDF(secret,
    /// "klef/v1/api-key/bearer")` (`ApiToken::bearer_hash`), never of the secret.
    pub bearer_hash: String,
    /// A system key's X25519 public key (32 bytes), derived from its secret.
    #[serde(default)]
    pub public_key: Option<Blob>,
    /// A system key's Ed25519 public key (32 bytes), derived from its secret: it signs the
    /// manifests of what a read-write key writes.
    #[serde(default)]
    pub signing_key: Option<Blob>,
    /// A system key's permission.
    #[serde(default)]
    pub permission: Option<ApiKeyPermission>,
    /// A system key's scopes.
    #[serde(default)]
    pub scopes: Vec<ApiKeyScope>,
    /// A system key's environment keys, wrapped to `public_key`.
    #[serde(default)]
    pub environment_keys: Vec<WrappedEnvironmentKey>,
    /// A system key's CI anchor, sealed by the creating client under a key derived from the
    /// token's secret (DESIGN.md §9.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Blob>,
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
