//! Workspaces, projects, environments, secrets and key rotation (`routes/content.rs`).

use serde::{Deserialize, Serialize};

use crate::model::{
    ApiKeyGrant, Blob, DeletedName, Environment, EnvironmentKeyAccess, ManifestRecord,
    NewEnvironment, NewProject, PersonalRecord, Project, SecretVersion, SecretWrite, Workspace,
};
pub use crate::model::{GrantInfo, Grantee, KeyRotation, RotatedGrant, RotatedSecret};

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
    /// The roster's genesis entry, signed by the creator (DESIGN.md §9.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis: Option<crate::model::RosterEntry>,
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
    /// The manifests asked for with `?manifests=anchor` or `?manifests=N` (from revision `N`
    /// on), ascending, read in the same snapshot as `secrets`; absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<ManifestRecord>,
    /// With `?manifests=…`: the names whose latest version is a delete, with that version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<DeletedName>,
    /// With `?manifests=…` for a member's session or user key: the caller's own personal
    /// overrides of the environment, if any (never another account's, never for a system
    /// key). Absent from older servers' answers, ignored by older clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal: Option<PersonalRecord>,
}

/// `PUT /v1/environments/{environment_id}/personal`: replaces the caller's own personal
/// overrides of the environment if `expected_revision` is the stored one (0: none yet); a
/// stale one is `409` [`codes::CONFLICT`](super::codes::CONFLICT). Members who can read the
/// environment only; a system key gets `403`. Answers the stored [`PersonalRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutPersonalRequest {
    /// The sealed map at revision `revision` (default `expected_revision + 1`).
    pub sealed: Blob,
    /// The revision the caller read (0: none stored).
    pub expected_revision: u64,
    /// The new revision, when it is not `expected_revision + 1`: a client that has seen a
    /// higher revision than the one stored (its record was lost in a restore, or withheld)
    /// starts again above it. Must be greater than `expected_revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// `POST /v1/environments/{environment_id}/secrets`: all writes in one transaction; a stale
/// `expected_version` fails the whole batch with `409` [`codes::CONFLICT`](super::codes::CONFLICT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteSecretsRequest {
    /// The writes (at least one, unless a manifest is published alone).
    pub writes: Vec<SecretWrite>,
    /// The environment's next manifest, signed by the writer: required once the environment
    /// has one (else `400`); a stale revision is `409` like a stale version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestRecord>,
    /// For `klef promote`: the environment the values were copied from (the caller must be
    /// able to read it); the server audits the write as `secrets.promote` naming it. The
    /// server learns nothing it could not see before: the client re-encrypted every value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<crate::ids::EnvironmentId>,
}

/// The answer to [`WriteSecretsRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteSecretsResponse {
    /// The versions written, in request order.
    pub written: Vec<SecretVersion>,
}

/// `GET /v1/environments/{environment_id}/grants` (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantList {
    /// The direct grants.
    pub grants: Vec<GrantInfo>,
}

/// `POST /v1/environments/{environment_id}/rotate` (admins holding the project key): the
/// [`KeyRotation`], as JSON. A stale key version, a secret changed since it was read, or a
/// grantee set that differs from the current one gives `409`
/// [`codes::STALE`](super::codes::STALE) (or [`codes::CONFLICT`](super::codes::CONFLICT) for a
/// secret) and nothing is written.
pub type RotateRequest = KeyRotation;

/// `POST /v1/projects/{project_id}/rotate` (admins holding the project key): a new project key,
/// after a member with full access left. Every environment's key is re-sealed under it (at its
/// current key version) and it is wrapped to every account that holds the project key now (and
/// may be to other members of the workspace);
/// another set of environments, versions or holders is `409`
/// [`codes::STALE`](super::codes::STALE) and nothing is written. Answers `204`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateProjectKeyRequest {
    /// Each environment's key, sealed under the new project key.
    pub environments: Vec<ResealedEnvironment>,
    /// The new project key, wrapped to each holder.
    pub project_keys: Vec<HolderProjectKey>,
}

/// One environment of a [`RotateProjectKeyRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResealedEnvironment {
    /// The environment.
    pub environment_id: crate::ids::EnvironmentId,
    /// The key version re-sealed (must still be current).
    pub key_version: i64,
    /// Its key sealed under the new project key.
    pub sealed_key: crate::model::Blob,
}

/// The new project key wrapped to one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderProjectKey {
    /// The account.
    pub account_id: crate::ids::AccountId,
    /// The key wrapped to its X25519 key.
    pub wrapped_key: crate::model::Blob,
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
    use crate::ids::AccountId;

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
