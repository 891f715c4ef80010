//! Signed environment manifests as the store keeps them (DESIGN.md §9.3): opaque signed bytes,
//! numbered. The store serialises writers on the revision and serves the manifests a reader
//! asks for; it never interprets a body or a signature: clients verify them.

use klef_core::ids::EnvironmentId;
use klef_core::model::{Blob, DeletedName, EnvironmentState, ManifestRecord, ManifestsSince};

use crate::reads::{self, Source};
use crate::tx::Tx;
use crate::{StoreError, invalid};

row! {
    pub(crate) struct ManifestRow {
        revision: i64,
        anchor: bool,
        body: Vec<u8>,
        signature: Vec<u8>,
    }
}

impl ManifestRow {
    fn into_record(self) -> Result<ManifestRecord, StoreError> {
        Ok(ManifestRecord {
            revision: u64::try_from(self.revision).map_err(|_| StoreError::Corrupt {
                what: format!("manifest revision {}", self.revision),
            })?,
            anchor: self.anchor,
            body: Blob(self.body),
            signature: Blob(self.signature),
        })
    }
}

row! {
    struct RevisionRow {
        revision: i64,
    }
}

row! {
    pub(crate) struct DeletedRow {
        name: String,
        version: i64,
    }
}

/// The newest manifest that set the key or names, and the newest manifest when later.
const SINCE_ANCHOR: &str = "SELECT revision, anchor, body, signature FROM manifests \
     WHERE environment_id = $1 AND (\
       revision = (SELECT MAX(revision) FROM manifests WHERE environment_id = $1 AND anchor) \
       OR revision = (SELECT MAX(revision) FROM manifests WHERE environment_id = $1)) \
     ORDER BY revision";

/// Every manifest from revision `$2` on.
const SINCE_REVISION: &str = "SELECT revision, anchor, body, signature FROM manifests \
     WHERE environment_id = $1 AND revision >= CAST($2 AS BIGINT) ORDER BY revision";

/// Names whose latest version is a delete.
const DELETED: &str = concat!(
    "SELECT s.name, s.version FROM secrets s WHERE s.environment_id = $1 \
     AND s.ciphertext IS NULL AND ",
    newest_version!(),
    " ORDER BY s.name"
);

/// The manifests `since` asks for, ascending.
pub(crate) async fn manifests(
    source: Source<'_>,
    env: &EnvironmentId,
    since: ManifestsSince,
) -> Result<Vec<ManifestRecord>, StoreError> {
    let id = env.to_string();
    let rows: Vec<ManifestRow> = match since {
        ManifestsSince::Nothing => return Ok(Vec::new()),
        ManifestsSince::Anchor => source.all(SINCE_ANCHOR, &[id.as_str()]).await?,
        ManifestsSince::Revision(from) => {
            let from = from.to_string();
            source
                .all(SINCE_REVISION, &[id.as_str(), from.as_str()])
                .await?
        }
    };
    rows.into_iter().map(ManifestRow::into_record).collect()
}

/// [`EnvironmentState`]: the live values, then the manifests and deleted names when asked for.
/// A write landing between the statements makes the values newer than the manifests, which a
/// verifying client detects and reads again.
pub(crate) async fn environment_state(
    source: Source<'_>,
    env: &EnvironmentId,
    since: ManifestsSince,
) -> Result<EnvironmentState, StoreError> {
    let manifests = manifests(source, env, since).await?;
    let secrets = reads::secrets(source, env).await?;
    let deleted = if since == ManifestsSince::Nothing {
        Vec::new()
    } else {
        let rows: Vec<DeletedRow> = source.all(DELETED, &[env.to_string().as_str()]).await?;
        rows.into_iter()
            .map(|r| DeletedName {
                name: r.name,
                version: r.version,
            })
            .collect()
    };
    Ok(EnvironmentState {
        secrets,
        manifests,
        deleted,
        personal: None,
    })
}

/// What changed after revision `after` for a reader whose personal overrides record is
/// `personal` and who knows revision `known` of it (0: none): `None` when `after` is the
/// newest revision and the record is the known one; else the manifests from `after` on, the
/// live values and the deletes a later revision wrote, and the record.
pub(crate) async fn changes_for(
    source: Source<'_>,
    env: &EnvironmentId,
    after: u64,
    personal: Option<klef_core::model::PersonalRecord>,
    known: u64,
) -> Result<Option<EnvironmentState>, StoreError> {
    let fresh = personal.as_ref().map_or(0, |p| p.revision) == known;
    Ok(match environment_changes(source, env, after).await? {
        None if fresh => None,
        None => Some(EnvironmentState {
            manifests: manifests(source, env, ManifestsSince::Revision(after)).await?,
            personal,
            ..EnvironmentState::default()
        }),
        Some(mut state) => {
            state.personal = personal;
            Some(state)
        }
    })
}

/// What changed after revision `after` (see `Backend::environment_changes`): `None` when it
/// is the newest; else the manifests from `after` on, the live values and the deletes whose
/// latest version a later revision wrote.
pub(crate) async fn environment_changes(
    source: Source<'_>,
    env: &EnvironmentId,
    after: u64,
) -> Result<Option<EnvironmentState>, StoreError> {
    let id = env.to_string();
    let newest: Vec<RevisionRow> = source
        .all(
            "SELECT revision FROM manifests WHERE environment_id = $1 \
             ORDER BY revision DESC LIMIT 1",
            &[id.as_str()],
        )
        .await?;
    if newest
        .first()
        .is_some_and(|r| u64::try_from(r.revision).ok() == Some(after))
    {
        return Ok(None);
    }
    let manifests = manifests(source, env, ManifestsSince::Revision(after)).await?;
    let changed = reads::secrets_changed_after(source, env, after).await?;
    if changed.is_empty() && manifests.is_empty() {
        // Nothing newer, and not even `after`: make sure the environment is there.
        reads::environment(source, env).await?;
    }
    let (secrets, deleted): (Vec<_>, Vec<_>) =
        changed.into_iter().partition(|s| s.ciphertext.is_some());
    Ok(Some(EnvironmentState {
        secrets,
        manifests,
        personal: None,
        deleted: deleted
            .into_iter()
            .map(|s| DeletedName {
                name: s.name,
                version: s.version,
            })
            .collect(),
    }))
}

/// The newest stored revision of `env` (0 when it has none) and who stored it.
async fn newest(tx: &mut Tx, env: &str) -> Result<(i64, Option<String>), StoreError> {
    let row: Option<(i64, Option<String>)> = tx
        .optional(
            "SELECT revision, created_by FROM manifests WHERE environment_id = $1 \
             ORDER BY revision DESC LIMIT 1",
            &[env.into()],
        )
        .await?;
    Ok(row.unwrap_or((0, None)))
}

/// Appends `manifest` as `env`'s next revision, in the caller's write transaction (which
/// already locks the environment). A stale revision is [`StoreError::Conflict`] naming who
/// stored the newer one; a write without a manifest to an environment that has manifests is
/// refused (a client from before manifests would break the chain every reader checks).
pub(crate) async fn append(
    tx: &mut Tx,
    env: &EnvironmentId,
    manifest: Option<&ManifestRecord>,
    created_by: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let id = env.to_string();
    let (current, by) = newest(tx, &id).await?;
    let Some(m) = manifest else {
        if current > 0 {
            return Err(invalid(format!(
                "environment {env} has signed state: every write must carry its next manifest (this client is too old; upgrade klef)"
            )));
        }
        return Ok(());
    };
    let revision = i64::try_from(m.revision).map_err(|_| invalid("a manifest revision"))?;
    if revision != current + 1 {
        return Err(StoreError::Conflict {
            name: "the environment's signed state".into(),
            expected: revision - 1,
            actual: current,
            changed_by: by.unwrap_or_else(|| "someone else".into()),
        });
    }
    if m.body.0.is_empty() || m.body.0.len() > MAX_MANIFEST_BYTES || m.signature.0.len() != 64 {
        return Err(invalid("a manifest is malformed (body or signature size)"));
    }
    tx.execute(
        "INSERT INTO manifests (environment_id, revision, anchor, body, signature, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            (&id).into(),
            revision.into(),
            m.anchor.into(),
            (&m.body).into(),
            (&m.signature).into(),
            created_by.into(),
            now.into(),
        ],
    )
    .await?;
    Ok(())
}

/// The largest manifest body stored: 10,000 names of up to 256 bytes with their versions and
/// hashes fit in 3.2 MB; the request limit bounds it anyway.
const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

/// Restores an archive's manifests (after its environments) and, for a workspace that has no
/// roster here yet, its roster entries, in the caller's import transaction. The importing
/// client verified them; the store keeps them byte for byte.
pub(crate) async fn restore(
    tx: &mut Tx,
    archive: &klef_core::backup::Archive,
    created_by: &str,
    now: i64,
) -> Result<(), StoreError> {
    for m in &archive.manifests {
        let revision =
            i64::try_from(m.manifest.revision).map_err(|_| invalid("a manifest revision"))?;
        tx.execute(
            "INSERT INTO manifests (environment_id, revision, anchor, body, signature, \
             created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                m.environment_id.to_string().into(),
                revision.into(),
                m.manifest.anchor.into(),
                (&m.manifest.body).into(),
                (&m.manifest.signature).into(),
                created_by.into(),
                now.into(),
            ],
        )
        .await?;
    }
    for ws in &archive.workspaces {
        let id = ws.id.to_string();
        let stored = tx
            .count(
                "SELECT COUNT(*) FROM roster_entries WHERE workspace_id = $1",
                &[(&id).into()],
            )
            .await?;
        if stored > 0 {
            // The server's chain is kept: a server cannot be made to forget entries admins
            // signed since the backup.
            continue;
        }
        for e in archive.roster.iter().filter(|e| e.workspace_id == ws.id) {
            let sequence =
                i64::try_from(e.entry.sequence).map_err(|_| invalid("a roster sequence"))?;
            tx.execute(
                "INSERT INTO roster_entries (workspace_id, sequence, body, signature, \
                 created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    (&id).into(),
                    sequence.into(),
                    (&e.entry.body).into(),
                    (&e.entry.signature).into(),
                    created_by.into(),
                    now.into(),
                ],
            )
            .await?;
        }
    }
    Ok(())
}
