//! Renaming and deleting environments, projects and workspaces (`routes/lifecycle.rs`). The
//! deletes (`DELETE` on the same paths) have no body and answer `204`.

use serde::{Deserialize, Serialize};

/// `PUT /v1/environments/{environment_id}` (admins holding the project key): a new slug and
/// display name. Answers `200` with the [`Environment`](crate::model::Environment); a slug
/// another environment of the project uses is `409`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameEnvironmentRequest {
    /// The new slug.
    pub slug: String,
    /// The new display name.
    pub name: String,
    /// The environment's next manifest, carrying the new slug, signed by the renaming owner
    /// or admin: required once the environment has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<crate::model::ManifestRecord>,
}

/// `PUT /v1/projects/{project_id}` (admins): a new name, unique in the workspace. Answers
/// `200` with the [`Project`](crate::model::Project); a taken name is `409`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameProjectRequest {
    /// The new name.
    pub name: String,
    /// The next manifest of every environment of the project that has one, carrying the new
    /// project name, signed by the renaming owner or admin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<crate::model::EnvironmentManifest>,
}

/// `PUT /v1/workspaces/{workspace_id}` (admins): a new name, unique among the caller's
/// workspaces. Answers `200` with the [`Workspace`](crate::model::Workspace); a taken name is
/// `409`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameWorkspaceRequest {
    /// The new name.
    pub name: String,
}
