//! Backups and the signed state: an archive's chains checked against this account's heads.

use super::*;
/// Before a backup is restored: verifies the manifest chains it carries against the heads this
/// account has seen (its own identity in the local vault; the roster it carries, verified
/// against this account's pin, on a server) and refuses an archive older than them, or forked
/// from them. `allow_older` (the local vault only) restores an older state on purpose and
/// forgets this machine's newer heads for it. Nothing to check when this account has seen
/// none of the archive's environments (a new machine).
pub(crate) async fn check_archive(
    ctx: &Context,
    b: &AnyBackend,
    archive: &klef_core::backup::Archive,
    allow_older: bool,
    unlocked: Option<&KeySource>,
) -> Result<()> {
    if archive.manifests.is_empty() && archive.roster.is_empty() {
        return Ok(());
    }
    match b.as_remote() {
        None => {
            let [account] = archive.accounts.as_slice() else {
                return Ok(());
            };
            if !LocalPins::path_of(ctx, &account.id).exists() {
                return Ok(());
            }
            let keys = crate::unlock::key_source(
                &ctx.global,
                account,
                account.id.to_string(),
                Unlock::Upfront,
                None,
            )
            .await?;
            let (derived, _) = keys.derived().await?;
            let authority = Authority::LocalOwner {
                account: account.id,
                key: derived.identity().verifying_key(),
            };
            let Some(ws) = archive.workspaces.first() else {
                return Ok(());
            };
            let mut pins = LocalPins::load(ctx, account, derived, ws.id)?;
            for ws in &archive.workspaces {
                pins.ensure_workspace(ws.id)?;
            }
            let mut older = Vec::new();
            for (ws, project, env, served) in archived_chains(archive) {
                let head = pins.state.environment_head(&ws, &env.id);
                match verify_archived(&authority, head.as_ref(), &project, &env, &served)? {
                    Archived::Verified(m) => {
                        let _ = pins.state.record_environment(&ws, env.id, m.head());
                    }
                    Archived::Older { seen, newest } => {
                        if !allow_older {
                            return Err(older_backup(&project, &env, seen, newest, true).into());
                        }
                        pins.state.forget_environment(&ws, &env.id);
                        older.push(env.slug.clone());
                    }
                }
                pins.dirty = true;
            }
            if !older.is_empty() {
                ctx.printer.warn(&format!(
                    "restoring an older state of {} than this machine has seen (--allow-older)",
                    older.join(", ")
                ));
            }
            pins.save()
        }
        Some(remote) => {
            let keys = match unlocked {
                Some(k) => KeyRef::Borrowed(k),
                None => KeyRef::Owned(ctx.keys(b).await?),
            };
            let mut trust = Trust::load(ctx, remote, keys.get()).await?;
            for ws in &archive.workspaces {
                let entries: Vec<klef_core::model::RosterEntry> = archive
                    .roster
                    .iter()
                    .filter(|e| e.workspace_id == ws.id)
                    .map(|e| e.entry.clone())
                    .collect();
                let anchor = match trust.anchor(&ws.id) {
                    Some(anchor) => anchor,
                    // Not pinned here (a new server, a new device): a roster whose genesis is
                    // this account's own, signed with its own identity key, is pinned now: only
                    // this account could have made it.
                    None => match own_genesis(&trust, &ws.id, &entries)? {
                        Some(anchor) => anchor,
                        None => continue,
                    },
                };
                let roster = crate::trust::verify_served(&anchor, &entries).map_err(|e| {
                    Failure::other(format!(
                        "the backup's roster of workspace \"{}\" is not the one this account has pinned: {e}",
                        ws.name
                    ))
                    .hint("restore a newer backup of this workspace")
                })?;
                trust.pin(&roster)?;
                let authority = Authority::Roster(&roster);
                for (w, project, env, served) in archived_chains(archive) {
                    if w != ws.id {
                        continue;
                    }
                    let head = trust.environment_head(&w, &env.id);
                    match verify_archived(&authority, head.as_ref(), &project, &env, &served)? {
                        Archived::Verified(m) => {
                            let _ = trust.record_environment(&w, env.id, m.head());
                        }
                        Archived::Older { seen, newest } => {
                            if !allow_older {
                                return Err(
                                    older_backup(&project, &env, seen, newest, false).into()
                                );
                            }
                            trust.forget_environment(&w, &env.id);
                            ctx.printer.warn(&format!(
                                "restoring revision {newest} of environment \"{}\", older than revision {seen} this account has seen (--allow-older): teammates' klef that saw the newer state will refuse this one as a rollback",
                                env.slug
                            ));
                        }
                    }
                }
            }
            trust.save().await
        }
    }
}

/// What an archived chain is, against this account's head.
enum Archived {
    Verified(Box<Manifest>),
    Older { seen: u64, newest: u64 },
}

/// Each archived environment with manifests: its workspace, project, environment and chain.
fn archived_chains(
    archive: &klef_core::backup::Archive,
) -> Vec<(
    WorkspaceId,
    klef_core::model::Project,
    klef_core::model::Environment,
    Vec<ManifestRecord>,
)> {
    let mut out = Vec::new();
    for e in &archive.environments {
        let env = &e.environment;
        let chain: Vec<ManifestRecord> = archive
            .manifests
            .iter()
            .filter(|m| m.environment_id == env.id)
            .map(|m| m.manifest.clone())
            .collect();
        let Some(project) = archive.projects.iter().find(|p| p.id == env.project_id) else {
            continue;
        };
        if !chain.is_empty() {
            out.push((project.workspace_id, project.clone(), env.clone(), chain));
        }
    }
    out
}

fn verify_archived(
    authority: &Authority<'_>,
    head: Option<&ManifestHead>,
    project: &klef_core::model::Project,
    env: &klef_core::model::Environment,
    chain: &[ManifestRecord],
) -> Result<Archived> {
    let newest = chain.last().map_or(0, |m| m.revision);
    // An older chain is still verified in full (from its first manifest) before it may be
    // restored on purpose: --allow-older accepts old, never forged.
    let older = head.filter(|h| newest < h.revision);
    let head = if older.is_some() { None } else { head };
    let expected = expected_of(project, env);
    let served = to_signed(chain)?;
    verify_update(&expected, authority, head, &served)
        .map(|m| match older {
            Some(h) => Archived::Older {
                seen: h.revision,
                newest,
            },
            None => Archived::Verified(Box::new(m)),
        })
        .map_err(|e| {
            Failure::other(format!(
                "the backup's signed state of environment \"{}\" of project \"{}\" does not verify: {e}",
                env.slug, project.name
            ))
            .hint("the file was altered, or it is not from this account's workspace; nothing was restored")
            .into()
        })
}

fn older_backup(
    project: &klef_core::model::Project,
    env: &klef_core::model::Environment,
    seen: u64,
    newest: u64,
    local: bool,
) -> Failure {
    let f = Failure::other(format!(
        "the backup holds revision {newest} of environment \"{}\" of project \"{}\", older than revision {seen} this account has seen; nothing was restored",
        env.slug, project.name
    ));
    if local {
        f.hint("restore a newer backup, or pass --allow-older to go back to this one on purpose")
    } else {
        f.hint("restore a newer backup; --allow-older goes back to this one on purpose, and teammates who saw the newer state will see a rollback")
    }
}

/// The anchor of `entries` when their genesis is this account's own (its owner record carries
/// this device's keys); `None` when there is no roster or it is someone else's.
fn own_genesis(
    trust: &Trust<'_>,
    ws: &WorkspaceId,
    entries: &[klef_core::model::RosterEntry],
) -> Result<Option<RosterAnchor>> {
    let signed = crate::trust::to_signed(entries).map_err(Failure::other)?;
    let Some(first) = signed.first() else {
        return Ok(None);
    };
    let anchor = RosterAnchor {
        workspace: *ws,
        genesis: first.hash(),
        head: None,
    };
    let Ok(roster) = VerifiedRoster::verify(&anchor, &signed[..1]) else {
        return Ok(None);
    };
    if roster.owner() != trust.me().account || roster.check_own_member(trust.me()).is_err() {
        return Ok(None);
    }
    Ok(Some(anchor))
}
