//! Workspaces, projects, environments, secrets and key rotation (`routes/content.rs`).

use serde::{Deserialize, Serialize};

use super::ApiKeyGrant;
use crate::ids::{AccountId, ApiKeyId};
use crate::model::{
    Blob, Environment, EnvironmentKeyAccess, NewEnvironment, NewProject, Project, SecretVersion,
    SecretWrite, Workspace,
};

/// `GET /v1/workspaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceList {
    /// The caller's workspaces, the personal one first.
    pub workspaces: Vec<Workspace>,
}

/// `POST /v1/workspaces` (the caller becomes its owner). Answers `201` with the [`Workspace`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    /// The workspace (id chosen by the client; `personal` must be false).
    pub workspace: Workspace,
}

/// `GET /v1/workspaces/{workspace_id}/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectList {
    /// The projects, by name.
    pub projects: Vec<Project>,
}

/// `POST /v1/workspaces/{workspace_id}/projects` (admins). Answers `201` with the [`Project`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// The project (its `workspace_id` must be the path's), its key wrapped to the caller,
    /// and its first environments.
    pub project: NewProject,
}

/// `GET /v1/projects/{project_id}/environments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentList {
    /// The environments the caller can reach (all, or those granted directly), oldest first.
    pub environments: Vec<Environment>,
}

/// `POST /v1/projects/{project_id}/environments` (admins holding the project key). Answers
/// `201` with the [`Environment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironmentRequest {
    /// The environment (its `project_id` must be the path's) and its key sealed under the
    /// project key.
    pub environment: NewEnvironment,
    /// The new environment key wrapped (HPKE, `Aad::EnvironmentKey`) to every live system key
    /// whose scope covers the whole project (`proj:*`), as listed by
    /// `GET /v1/projects/{project_id}/api-key-recipients`. Must name exactly those keys (else
    /// `409` [`codes::STALE`](super::codes::STALE) and nothing is written); absent in older clients' bodies, which
    /// is fine while the project has no such key.
    #[serde(default)]
    pub api_key_grants: Vec<ApiKeyGrant>,
}

/// `GET /v1/environments/{environment_id}/key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentKeyResponse {
    /// The environment (its current `key_version`).
    pub environment: Environment,
    /// How the caller reaches its key.
    pub access: EnvironmentKeyAccess,
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// `GET /v1/environments/{environment_id}/secrets` and
/// `GET /v1/environments/{environment_id}/secrets/{name}/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretList {
    /// Latest live versions by name, or one name's history oldest first.
    pub secrets: Vec<SecretVersion>,
}

/// `POST /v1/environments/{environment_id}/secrets`: all writes in one transaction; a stale
/// `expected_version` fails the whole batch with `409` [`codes::CONFLICT`](super::codes::CONFLICT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteSecretsRequest {
    /// The writes (at least one).
    pub writes: Vec<SecretWrite>,
}

/// The answer to [`WriteSecretsRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteSecretsResponse {
    /// The versions written, in request order.
    pub written: Vec<SecretVersion>,
}

/// Who holds a direct environment grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    /// A member restricted to some environments.
    Account(AccountId),
    /// A system API key.
    ApiKey(ApiKeyId),
}

/// One direct grant of an environment, as `GET /v1/environments/{environment_id}/grants`
/// lists them for the rotating admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    /// Who holds it.
    pub grantee: Grantee,
    /// Their public key (to wrap the new key to).
    pub public_key: Blob,
    /// The key version they hold.
    pub key_version: i64,
}

/// `GET /v1/environments/{environment_id}/grants` (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantList {
    /// The direct grants.
    pub grants: Vec<GrantInfo>,
}

/// A live secret re-encrypted under the new environment key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatedSecret {
    /// The key name.
    pub name: String,
    /// The version that was re-encrypted (must still be the latest).
    pub expected_version: i64,
    /// The value sealed under the new key.
    pub ciphertext: Blob,
}

/// A direct grant re-wrapped for the new key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatedGrant {
    /// Who it is for (must be one of the current grantees).
    pub grantee: Grantee,
    /// The new environment key wrapped to their public key.
    pub wrapped_key: Blob,
}

/// `POST /v1/environments/{environment_id}/rotate` (admins holding the project key): in one
/// transaction, `key_version` becomes `expected_key_version + 1`, the sealed key is replaced,
/// every live secret gets a new version re-encrypted by the client, and the direct grants are
/// replaced. A stale key version, a secret changed since it was read, or a grantee set that
/// differs from the current one gives `409` [`codes::STALE`](super::codes::STALE) (or [`codes::CONFLICT`](super::codes::CONFLICT) for a
/// secret) and nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// The key version the client rotated from.
    pub expected_key_version: i64,
    /// The new environment key sealed (`Aad::EnvironmentKey`) under the project key.
    pub sealed_key: Blob,
    /// Every live secret, re-encrypted.
    pub secrets: Vec<RotatedSecret>,
    /// Every current direct grant, re-wrapped (grantees may be left out to drop them).
    pub grants: Vec<RotatedGrant>,
}

/// The answer to [`RotateRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateResponse {
    /// The environment with its new key version.
    pub environment: Environment,
    /// The re-encrypted versions written.
    pub written: Vec<SecretVersion>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grantee_has_a_stable_shape() {
        let id: AccountId = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&Grantee::Account(id)).unwrap(),
            r#"{"kind":"account","id":"0f8fad5b-d9cb-469f-a165-70867728950e"}"#
        );
    }

    #[test]
    fn old_create_environment_bodies_still_parse() {
        let body = r#"{"environment":{"environment":{"id":"0f8fad5b-d9cb-469f-a165-70867728950e",
            "project_id":"0f8fad5b-d9cb-469f-a165-70867728950f","slug":"dev","name":"dev",
            "key_version":1,"created_at":0},"sealed_key":"AAAA"}}"#;
        let req: CreateEnvironmentRequest = serde_json::from_str(body).unwrap();
        assert!(req.api_key_grants.is_empty());
    }
}
