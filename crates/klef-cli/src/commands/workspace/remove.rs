//! `klef workspace remove EMAIL`: removes a member and every key wrapped to them in the
//! workspace, deals with the system keys they created, and rotates every environment they
//! could decrypt (DESIGN.md §9.2, "Removal"). Someone only invited has their invitation
//! cancelled instead, once the verified roster confirms they are no member.
//!
//! In order, nothing changed before the first step that writes:
//! 1. the system keys the member created are listed: from the verified roster (records whose
//!    creator is the member) and, for keys the roster never recorded (made before signed
//!    rosters, or a workspace without one), from the server's key list by creator email. They
//!    are revoked (`--revoke-keys`) or kept (`--keep-keys`) by explicit choice; at a terminal
//!    without a flag the command asks, and without a terminal it refuses (exit 2);
//! 2. a signed `removed` entry, then the server's removal (membership, project keys, grants);
//! 3. the chosen keys revoked on the server and signed out of the roster;
//! 4. every environment the member could read gets a new key (`klef env rotate-key`'s code),
//!    wrapped only to readers of the verified roster; `--no-rotate` defers it with a warning.
//!
//! A failed revocation or rotation leaves the member removed, names what was and was not done
//! and exits non-zero.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::token::{TokenKind, prefix_of};
use klef_core::ids::{AccountId, ApiKeyId, ProjectId};
use klef_core::model::{Environment, EnvironmentRef, Project};
use klef_core::trust::roster::{PrincipalId, Record, VerifiedRoster};
use klef_core::wire::{ApiKeyInfo, ApiKeyKind};
use serde_json::{Value, json};

use super::{members, project_key};
use crate::backend::AnyBackend;
use crate::commands::env::rotate_key;
use crate::commands::keys::{self, revoke, short_prefix};
use crate::context::{Context, Target};
use crate::diagnostics::{self, ExitStatus, Failure};
use crate::trust::Trust;

/// Remove a member from the current workspace and rotate the keys they could read
///
/// The system keys the member created are revoked or kept by explicit choice (`--revoke-keys`
/// or `--keep-keys`; asked at a terminal, required without one). Every environment they could
/// decrypt then gets a new key, as `klef env rotate-key` gives it, unless `--no-rotate`.
///
/// For someone invited who has not accepted yet, it cancels the invitation (its invite code
/// stops working): the way to replace a lost code before inviting again.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The member's email
    pub(crate) email: String,
    /// Revoke the system keys the member created (CI jobs using them stop working)
    #[arg(long, conflicts_with = "keep_keys")]
    pub(crate) revoke_keys: bool,
    /// Keep the system keys the member created working
    #[arg(long)]
    pub(crate) keep_keys: bool,
    /// Do not rotate the environments they could read now (run `klef env rotate-key` later)
    #[arg(long)]
    pub(crate) no_rotate: bool,
}

/// A system key the removed member created.
struct CreatedKey {
    id: ApiKeyId,
    /// `klef_sys_<id>`.
    prefix: String,
    /// The server's label (`-` when the server does not list the key).
    label: String,
    /// Recorded in the verified roster with the member as its creator (else only the server
    /// says so).
    verified: bool,
}

impl CreatedKey {
    fn describe(&self) -> String {
        format!("{} ({})", short_prefix(&self.prefix), self.label)
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "prefix": self.prefix,
            "label": self.label,
            "verified": self.verified,
        })
    }
}

/// What to do with the member's system keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyChoice {
    Revoke,
    Keep,
}

pub(crate) async fn run(args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let remote = b.remote("workspace remove")?;
    let ws = ctx.current_workspace(&b).await?;
    let member = members::find(remote, &ws, &args.email).await?;
    let Some(account_id) = member.account_id else {
        return cancel_invitation(ctx, &b, &ws, &member).await;
    };
    let keys = ctx.keys(&b).await?;
    let mut trust = Trust::load(ctx, remote, &keys).await?;
    let roster = trust.roster_if_pinned(&ws.id, &ws.name).await?;
    let projects: Vec<ProjectId> = b.projects(&ws.id).await?.iter().map(|p| p.id).collect();
    let created = created_keys(&b, roster.as_ref(), account_id, &member.email, &projects).await?;
    let choice = choose(ctx, args, &member.email, &ws.name, &created)?;

    // What they signed last stays readable: the environments whose newest state they (or a
    // key of theirs being revoked) signed are signed again by this admin while they are still
    // in the roster; readers refuse a newest state whose signer was removed since.
    if roster.is_some() {
        let mut leaving = vec![PrincipalId::Member(account_id)];
        if choice != Some(KeyChoice::Keep) {
            leaving.extend(created.iter().map(|k| PrincipalId::SystemKey(k.id)));
        }
        let resigned = crate::signed::revouch(ctx, &b, &keys, &ws.id, &leaving).await?;
        if !resigned.is_empty() {
            ctx.printer.info(&format!(
                "signed the current state of {} again (they signed it last)",
                resigned.join(", ")
            ));
        }
    }

    // The signed roster first: from this entry on, no client wraps a key to them again, even
    // if the server kept them on a grant list.
    let mut signed_out = false;
    if let Some(roster) = roster {
        let principal = PrincipalId::Member(account_id);
        if roster.member(&account_id).is_some() {
            let (entry, roster) = roster
                .append(
                    Record::Removed(principal),
                    trust.me().account,
                    &trust.signing_key(),
                )
                .map_err(|e| {
                    Failure::other(format!(
                        "cannot remove {} from the roster of \"{}\": {e}",
                        member.email, ws.name
                    ))
                })?;
            let sequence = roster.head().sequence;
            remote
                .append_roster(&ws.id, vec![crate::trust::to_wire(&entry, sequence)])
                .await
                .with_context(|| format!("failed to sign {} out of the roster", member.email))?;
            trust.pin(&roster)?;
            signed_out = true;
        }
    }
    trust.save().await?;
    let resp = remote
        .remove_member(&ws.id, &account_id)
        .await
        .with_context(|| {
            format!(
                "failed to remove {} from workspace \"{}\"",
                member.email, ws.name
            )
        })?;
    ctx.printer.info(&format!(
        "removed {} from workspace \"{}\"",
        member.email, ws.name
    ));

    // Their system keys: revoked before the rotation, so it wraps no new key to them.
    let mut revoked = Vec::new();
    let mut kept = Vec::new();
    let mut not_revoked: Vec<(&CreatedKey, anyhow::Error)> = Vec::new();
    for key in &created {
        if choice == Some(KeyChoice::Keep) {
            kept.push(key);
            continue;
        }
        match revoke_created(&b, &mut trust, key).await {
            Ok(()) => {
                ctx.printer.info(&format!(
                    "revoked system key {}: its next request fails",
                    key.describe()
                ));
                revoked.push(key);
            }
            Err(e) => {
                ctx.printer.warn(&format!(
                    "system key {} was not revoked: {e:#}",
                    key.describe()
                ));
                not_revoked.push((key, e));
            }
        }
    }
    trust.save().await?;
    if !kept.is_empty() {
        ctx.printer.warn(&format!(
            "kept {} system key(s) {} created, which still work: {}",
            kept.len(),
            member.email,
            kept.iter()
                .map(|k| k.describe())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        ctx.printer
            .hint("revoke one later with `klef keys revoke PREFIX`");
    }

    // A member with full access held every project key, under which every environment key is
    // sealed on the server: each project gets a new one first, so the rotations below seal the
    // new environment keys under keys the member never had.
    let mut projects_rotated: Vec<String> = Vec::new();
    let mut projects_not_rotated: Vec<Value> = Vec::new();
    let mut project_failure: Option<anyhow::Error> = None;
    if member.environments.is_none() && !args.no_rotate {
        let roster = trust.roster_if_pinned(&ws.id, &ws.name).await?;
        trust.save().await?;
        for project in b.projects(&ws.id).await? {
            match project_key::rotate(ctx, &b, &keys, roster.as_ref(), &ws, &project).await {
                Ok(0) => {}
                Ok(holders) => {
                    ctx.printer.info(&format!(
                        "replaced the key of project \"{}\" (wrapped to {holders} member(s) with full access)",
                        project.name
                    ));
                    projects_rotated.push(project.name.clone());
                }
                Err(e) => {
                    ctx.printer.warn(&format!("{e:#}"));
                    projects_not_rotated
                        .push(json!({"project": project.name, "error": format!("{e:#}")}));
                    project_failure.get_or_insert(e);
                }
            }
        }
    }

    // Every environment they could read.
    let all = members::all_environments(&b, &ws).await.unwrap_or_default();
    let envs: Vec<(&EnvironmentRef, Option<&(Project, Environment)>)> = resp
        .rotate
        .iter()
        .map(|r| (r, all.iter().find(|(_, e)| e.id == r.id)))
        .collect();
    let name = |r: &EnvironmentRef, found: Option<&(Project, Environment)>| {
        found.map_or_else(|| r.slug.clone(), |(p, _)| format!("{}:{}", p.name, r.slug))
    };
    let command = |r: &EnvironmentRef, found: Option<&(Project, Environment)>| {
        found.map_or_else(
            || format!("klef env rotate-key {} -p {}", r.slug, r.project_id),
            |(p, _)| format!("klef env rotate-key {} -p {}", r.slug, p.name),
        )
    };
    let env_json = |r: &EnvironmentRef, found: Option<&(Project, Environment)>| json!({"environment_id": r.id, "project_id": r.project_id, "slug": r.slug, "name": name(r, found)});
    let mut rotated: Vec<Value> = Vec::new();
    let mut not_rotated: Vec<Value> = Vec::new();
    let mut rotate_failure: Option<anyhow::Error> = None;
    let mut left: Vec<String> = Vec::new();
    if args.no_rotate {
        if !envs.is_empty() {
            ctx.printer.warn(&format!(
                "not rotated (--no-rotate): {} could decrypt {}; they may have kept copies of those keys, which open every value until the keys are rotated",
                member.email,
                envs.iter()
                    .map(|(r, f)| name(r, *f))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            for (r, f) in &envs {
                ctx.printer.hint(&format!("run `{}`", command(r, *f)));
                not_rotated.push(env_json(r, *f));
            }
        }
    } else {
        for (r, found) in &envs {
            let Some((project, env)) = found else {
                let e = anyhow::Error::from(Failure::not_found(format!(
                    "environment {} is not visible to you",
                    r.id
                )));
                ctx.printer
                    .warn(&format!("{} was not rotated: {e:#}", name(r, *found)));
                let mut j = env_json(r, *found);
                j["error"] = json!(format!("{e:#}"));
                not_rotated.push(j);
                left.push(command(r, *found));
                rotate_failure.get_or_insert(e);
                continue;
            };
            let t = Target {
                project: project.clone(),
                env: env.clone(),
            };
            match rotate_key::rotate(ctx, &b, &keys, &t).await {
                Ok(done) => {
                    ctx.printer.info(&done.summary(&t));
                    let mut j = env_json(r, *found);
                    j["key_version"] = json!(done.key_version);
                    j["reencrypted"] = json!(done.reencrypted);
                    j["recipients"] = json!(
                        done.recipients
                            .iter()
                            .map(crate::recipients::Recipient::to_json)
                            .collect::<Vec<_>>()
                    );
                    rotated.push(j);
                }
                Err(e) => {
                    ctx.printer
                        .warn(&format!("{} was not rotated: {e:#}", t.describe()));
                    let mut j = env_json(r, *found);
                    j["error"] = json!(format!("{e:#}"));
                    not_rotated.push(j);
                    left.push(command(r, *found));
                    rotate_failure.get_or_insert(e);
                }
            }
        }
    }

    if ctx.global.json {
        ctx.printer.json(&json!({
            "email": member.email,
            "account_id": resp.account_id,
            "roster_entry": signed_out,
            "rotate": envs.iter().map(|(r, f)| env_json(r, *f)).collect::<Vec<_>>(),
            "revoked_keys": revoked.iter().map(|k| k.to_json()).collect::<Vec<_>>(),
            "kept_keys": kept.iter().map(|k| k.to_json()).collect::<Vec<_>>(),
            "not_revoked_keys": not_revoked.iter().map(|(k, e)| {
                let mut j = k.to_json();
                j["error"] = json!(format!("{e:#}"));
                j
            }).collect::<Vec<_>>(),
            "rotated": rotated,
            "not_rotated": not_rotated,
            "rotation_deferred": args.no_rotate,
            "project_keys_replaced": projects_rotated,
            "project_keys_not_replaced": projects_not_rotated,
        }))?;
    }

    if let Some(first) = rotate_failure {
        let done: Vec<&str> = rotated.iter().filter_map(|j| j["name"].as_str()).collect();
        let undone: Vec<&str> = not_rotated
            .iter()
            .filter_map(|j| j["name"].as_str())
            .collect();
        let mut failure = Failure::new(
            diagnostics::exit_status(&first),
            format!(
                "{} was removed from workspace \"{}\", but {} of {} environment(s) were not rotated: {} (rotated: {})",
                member.email,
                ws.name,
                undone.len(),
                envs.len(),
                undone.join(", "),
                if done.is_empty() {
                    "none".to_owned()
                } else {
                    done.join(", ")
                }
            ),
        );
        for c in &left {
            failure = failure.hint(format!("run `{c}`"));
        }
        return Err(failure.into());
    }
    if let Some(first) = project_failure {
        return Err(Failure::new(
            diagnostics::exit_status(&first),
            format!(
                "{} was removed from workspace \"{}\", but the key of project(s) {} was not replaced: until it is, the environment keys sealed under it can reach them through the server",
                member.email,
                ws.name,
                projects_not_rotated
                    .iter()
                    .filter_map(|j| j["project"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .hint("run `klef projects rotate-key PROJECT` for each, then `klef env rotate-key` for its environments")
        .into());
    }
    if let Some((first, _)) = not_revoked.first() {
        return Err(Failure::other(format!(
            "{} was removed from workspace \"{}\", but {} system key(s) they created were not revoked: {}",
            member.email,
            ws.name,
            not_revoked.len(),
            not_revoked
                .iter()
                .map(|(k, _)| k.describe())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .hint(format!("run `klef keys revoke {}`", short_prefix(&first.prefix)))
        .into());
    }
    Ok(ExitStatus::SUCCESS)
}

/// The live system keys `account` (`email`) created in the workspace of `projects`: every one
/// the verified roster records with them as creator, and those the server lists as theirs that
/// the roster never recorded (made before signed rosters, or the workspace has no roster). A
/// key the roster records with another creator is not theirs, whatever the server says.
async fn created_keys(
    b: &AnyBackend,
    roster: Option<&VerifiedRoster>,
    account: AccountId,
    email: &str,
    projects: &[ProjectId],
) -> Result<Vec<CreatedKey>> {
    let r = b.remote("workspace remove")?;
    let listed: Vec<ApiKeyInfo> = keys::list_keys(r)
        .await?
        .into_iter()
        .filter(|k| k.kind == ApiKeyKind::System)
        .collect();
    let mut out: Vec<CreatedKey> = Vec::new();
    if let Some(roster) = roster {
        for rec in roster.system_keys_created_by(account) {
            let label = listed
                .iter()
                .find(|k| k.id == rec.key)
                .map_or_else(|| "-".to_owned(), |k| k.label.clone());
            out.push(CreatedKey {
                id: rec.key,
                prefix: prefix_of(TokenKind::System, &rec.key),
                label,
                verified: true,
            });
        }
    }
    for k in listed {
        let theirs = k
            .created_by_email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(email));
        let here = k.scopes.iter().any(|s| projects.contains(&s.project_id));
        let unrecorded = roster.is_none_or(|r| !r.ever_listed(&PrincipalId::SystemKey(k.id)));
        if theirs && here && unrecorded && !out.iter().any(|c| c.id == k.id) {
            out.push(CreatedKey {
                id: k.id,
                prefix: k.prefix,
                label: k.label,
                verified: false,
            });
        }
    }
    Ok(out)
}

/// The choice about `created` (`None` when there is nothing to choose): the flag, else the
/// answer at a terminal, else an error naming the keys and the flags (exit 2, nothing changed).
fn choose(
    ctx: &Context,
    args: &Args,
    email: &str,
    ws: &str,
    created: &[CreatedKey],
) -> Result<Option<KeyChoice>> {
    if created.is_empty() {
        return Ok(None);
    }
    if args.revoke_keys {
        return Ok(Some(KeyChoice::Revoke));
    }
    if args.keep_keys {
        return Ok(Some(KeyChoice::Keep));
    }
    let list = created
        .iter()
        .map(CreatedKey::describe)
        .collect::<Vec<_>>()
        .join(", ");
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Failure::usage(format!(
            "{email} created {} system key(s) that still work: {list}; pass --revoke-keys to revoke them or --keep-keys to keep them (nothing was changed)",
            created.len()
        ))
        .into());
    }
    ctx.printer.always(&format!(
        "{email} created {} system key(s) in workspace \"{ws}\" that still work: {list}",
        created.len()
    ));
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "revoke them (CI jobs using them stop working) or keep them? [revoke/keep] "
    );
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the answer")?;
    match line.trim().to_ascii_lowercase().as_str() {
        "r" | "revoke" => Ok(Some(KeyChoice::Revoke)),
        "k" | "keep" => Ok(Some(KeyChoice::Keep)),
        _ => Err(Failure::other(format!(
            "cancelled: {email} was not removed; nothing was changed"
        ))
        .hint("answer revoke or keep, or pass --revoke-keys or --keep-keys")
        .into()),
    }
}

/// Revokes one of the member's keys on the server and signs it out of the roster. A key the
/// server no longer knows (already revoked) is still signed out when the roster records it.
async fn revoke_created(b: &AnyBackend, trust: &mut Trust<'_>, key: &CreatedKey) -> Result<()> {
    if let Err(e) = revoke::revoke_on_server(b, &key.id, &key.prefix).await
        && !(key.verified && diagnostics::exit_status(&e) == ExitStatus::NOT_FOUND)
    {
        return Err(e);
    }
    revoke::sign_out(b, trust, key.id).await?;
    Ok(())
}

/// Someone invited who has not accepted yet is not a member: their invitation is cancelled
/// (its code stops working), so the email can be invited again, with a new code. Nothing was
/// wrapped or signed for them, so there is nothing to rotate.
async fn cancel_invitation(
    ctx: &Context,
    b: &AnyBackend,
    ws: &klef_core::model::Workspace,
    member: &klef_core::model::Member,
) -> Result<ExitStatus> {
    let Some(invitation) = member.invitation_id else {
        return Err(Failure::other(format!(
            "{} has neither an account in workspace \"{}\" nor an open invitation",
            member.email, ws.name
        ))
        .into());
    };
    // The member list is the server's word. A server that showed a member of the signed
    // roster as merely invited would turn their removal into a cancellation that leaves them
    // in the roster, still receiving keys: the roster decides.
    let remote = b.remote("workspace remove")?;
    let keys = ctx.keys(b).await?;
    let mut trust = Trust::load(ctx, remote, &keys).await?;
    if let Some(roster) = trust.roster_if_pinned(&ws.id, &ws.name).await?
        && roster
            .members()
            .any(|m| m.email.eq_ignore_ascii_case(&member.email))
    {
        return Err(Failure::other(format!(
            "the server lists {} as invited only, but the signed roster of workspace \"{}\" has them as a member; nothing was changed",
            member.email, ws.name
        ))
        .hint("the server's member list disagrees with the signed roster: tell its operator; `klef workspace members` shows the roster's view")
        .into());
    }
    trust.save().await?;
    remote
        .cancel_invitation(&ws.id, &invitation)
        .await
        .with_context(|| format!("failed to cancel the invitation of {}", member.email))?;
    // The invite code this device kept for `confirm` is of no use any more.
    let note = super::invite::invite_note_path(ctx, &invitation);
    if let Err(e) = std::fs::remove_file(&note)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::debug!(path = %note.display(), error = %e, "could not delete the invite note");
    }
    if ctx.global.json {
        ctx.printer.json(&json!({
            "email": member.email,
            "invitation_id": invitation,
            "cancelled": true,
        }))?;
    }
    ctx.printer.info(&format!(
        "cancelled the invitation of {} to workspace \"{}\" (they had not accepted it; its invite code no longer works)",
        member.email, ws.name
    ));
    ctx.printer.hint(&format!(
        "`klef workspace invite {}` invites them again with a new code",
        member.email
    ));
    Ok(ExitStatus::SUCCESS)
}
