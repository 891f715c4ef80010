//! Reads of projects and environments with no visibility check, for callers that authorize
//! otherwise (system API keys, which see what their scopes name), and the system keys a new
//! environment's key must be wrapped to.

use klef_core::crypto::token::{TokenKind, prefix_of};
use klef_core::ids::{ApiKeyId, ProjectId};
use klef_core::model::{ApiKeyRecipient, Blob, Environment, Project};

use crate::rows::{EnvironmentRow, ProjectRow, convert, parse_id};
use crate::{Store, StoreError};

impl Store {
    /// A project by id, with no visibility check (the caller authorizes: system keys).
    pub async fn project_unchecked(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        let row: Option<ProjectRow> = with_pool!(self, pool => {
            sqlx::query_as("SELECT id, workspace_id, name, created_at FROM projects WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
        });
        row.map(Project::try_from).transpose()
    }

    /// Every environment of a project, oldest first, with no visibility check (the caller
    /// filters: system keys see those in their scopes).
    pub async fn project_environments(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<Environment>, StoreError> {
        let rows: Vec<EnvironmentRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, project_id, slug, name, key_version, created_at \
                 FROM environments WHERE project_id = $1",
            )
            .bind(project.to_string())
            .fetch_all(pool)
            .await?
        });
        let mut out: Vec<Environment> = convert(rows)?;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.slug.cmp(&b.slug)));
        Ok(out)
    }

    /// The live system keys scoped to every environment of `project` (`proj:*`), by id; keys
    /// issued before split secrets are left out (nothing more is wrapped to them).
    pub async fn api_key_recipients(
        &self,
        project: &ProjectId,
    ) -> Result<Vec<ApiKeyRecipient>, StoreError> {
        let rows: Vec<(String, Option<Vec<u8>>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT k.id, k.public_key FROM api_keys k JOIN api_key_scopes s \
                 ON s.api_key_id = k.id WHERE s.project_id = $1 AND s.environment_id IS NULL \
                 AND k.kind = 'system' AND k.format = 'split' AND k.revoked_at IS NULL ORDER BY k.id",
            )
            .bind(project.to_string())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(id, public_key)| {
                let api_key_id: ApiKeyId = parse_id(&id, "API key")?;
                Ok(ApiKeyRecipient {
                    api_key_id,
                    prefix: prefix_of(TokenKind::System, &api_key_id),
                    public_key: Blob(public_key.unwrap_or_default()),
                })
            })
            .collect()
    }
}
