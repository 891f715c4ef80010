//! Reading the audit log (entries are written by every change through `insert_audit!`).

use klef_core::ids::WorkspaceId;
use klef_core::model::{AuditActor, AuditEntry};

use crate::rows::parse_id;
use crate::{Store, StoreError};

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    workspace_id: Option<String>,
    actor_kind: String,
    actor_id: Option<String>,
    actor_label: Option<String>,
    action: String,
    target: String,
    created_at: i64,
}

impl Store {
    /// A workspace's audit entries, newest first: at most `limit`, with ids below `before`
    /// when given.
    pub async fn audit_entries(
        &self,
        ws: &WorkspaceId,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<AuditRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, workspace_id, actor_kind, actor_id, actor_label, action, target, \
                 created_at FROM audit_log WHERE workspace_id = $1 AND id < $2 \
                 ORDER BY id DESC LIMIT $3",
            )
            .bind(ws.to_string())
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.id,
                    workspace_id: r
                        .workspace_id
                        .as_deref()
                        .map(|w| parse_id(w, "workspace"))
                        .transpose()?,
                    actor: AuditActor {
                        kind: r.actor_kind,
                        id: r.actor_id,
                        label: r.actor_label,
                    },
                    action: r.action,
                    target: r.target,
                    created_at: r.created_at,
                })
            })
            .collect()
    }
}
