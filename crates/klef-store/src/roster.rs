//! Workspace rosters and account states as the store keeps them: opaque signed bytes and
//! sealed blobs (DESIGN.md §9.2). The store numbers entries and serialises writers; it never
//! interprets a body or a signature: clients verify them.

use klef_core::ids::{AccountId, WorkspaceId};
use klef_core::model::RosterEntry;

use crate::StoreError;
use crate::tx::Tx;

/// Appends signed roster entries to workspace `ws`. The first must continue the stored chain
/// (its sequence is the number of entries stored) and the rest follow it; otherwise nothing is
/// written and the answer is [`StoreError::Conflict`] (another admin appended first). The
/// store checks only the numbering: clients verify the chain and every signature.
pub(crate) async fn append_roster_entries(
    tx: &mut Tx,
    ws: &WorkspaceId,
    entries: &[RosterEntry],
    created_by: &AccountId,
    now: i64,
) -> Result<(), StoreError> {
    let ws_id = ws.to_string();
    let stored = tx
        .count(
            "SELECT COUNT(*) FROM roster_entries WHERE workspace_id = $1",
            &[(&ws_id).into()],
        )
        .await?;
    for (i, entry) in entries.iter().enumerate() {
        let expected = stored + i64::try_from(i).unwrap_or(i64::MAX);
        let sequence = i64::try_from(entry.sequence).unwrap_or(i64::MAX);
        if sequence != expected {
            return Err(StoreError::Conflict {
                name: "the workspace roster".into(),
                expected: sequence,
                actual: expected,
                changed_by: "another admin".into(),
            });
        }
        tx.execute(
            "INSERT INTO roster_entries (workspace_id, sequence, body, signature, created_by, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                (&ws_id).into(),
                sequence.into(),
                (&entry.body).into(),
                (&entry.signature).into(),
                created_by.to_string().into(),
                now.into(),
            ],
        )
        .await?;
    }
    Ok(())
}
