//! The opt-in offline copy (`KLEF_OFFLINE_COPY=1`): after each full read, the environment as
//! verified (the same bytes the agent keeps: ciphertexts, signed head, wrapped key, never a
//! plaintext) is also written to `<data>/offline/<hash>.json`, sealed under a key derived from
//! the account's password (`DerivedSecrets::seal_offline_copy`, AES-256-GCM bound to the
//! account, the server, the project and the environment). When the server cannot be reached
//! and the agent has no copy, a read opens it — with the agent's keys, else the password — and
//! serves it with one warning line saying how old it is. The file also holds the account's
//! record as the server serves it (`/v1/me`: its password-sealed keys, which the password
//! unlock needs offline); nothing in it opens without the password.
//!
//! A copy is replaced by every later full read of the same environment, and deleted by `klef
//! logout`.

use std::path::PathBuf;

use anyhow::Result;
use klef_core::env::EnvVars;
use klef_core::model::Blob;
use klef_core::wire::MeResponse;
use serde::{Deserialize, Serialize};

use super::{Current, Plan, Snapshot, ago, serve};
use crate::backend::AnyBackend;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure, exit_status};
use crate::unlock::KeySource;

/// The version of [`OfflineFile`].
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct OfflineFile {
    format: u32,
    /// The account as `/v1/me` served it when the copy was saved.
    me: MeResponse,
    /// When it was saved (ms since the epoch).
    saved_at: i64,
    /// The sealed copy.
    sealed: Blob,
}

/// `KLEF_OFFLINE_COPY=1`.
pub(super) fn enabled() -> bool {
    std::env::var(EnvVars::KLEF_OFFLINE_COPY).is_ok_and(|v| crate::unlock::truthy(&v))
}

/// The label a copy is sealed to: the agent's name for the account (server and account) and
/// how the command named the environment.
fn label(plan: &Plan) -> String {
    format!("{}\n{}", plan.vault, plan.alias)
}

/// The directory of the offline copies.
pub(crate) fn dir(ctx: &Context) -> PathBuf {
    ctx.dirs.data.join("offline")
}

fn path(ctx: &Context, plan: &Plan) -> PathBuf {
    dir(ctx).join(format!(
        "{}.json",
        klef_core::crypto::sha256_hex(label(plan).as_bytes())
    ))
}

/// Saves `body` (an encoded copy) sealed for this account. A failure is one warning line: the
/// read itself succeeded.
pub(super) async fn save(
    ctx: &Context,
    plan: &Plan,
    me: &MeResponse,
    keys: &KeySource,
    body: &[u8],
) {
    let result = async {
        let (derived, _) = keys.derived().await?;
        let sealed = derived.seal_offline_copy(&me.account.id, &label(plan), body);
        let file = OfflineFile {
            format: FORMAT,
            me: me.clone(),
            saved_at: now_ms(),
            sealed: Blob(sealed),
        };
        let dir = dir(ctx);
        crate::dirs::create_private_dir(&dir)?;
        crate::fsutil::write_atomic(&path(ctx, plan), &serde_json::to_vec(&file)?, 0o600)
    }
    .await;
    if let Err(e) = result {
        ctx.printer.warn(&format!(
            "could not save the offline copy (KLEF_OFFLINE_COPY): {e:#}"
        ));
    }
}

/// When `e` says the server cannot be reached and an offline copy of the environment exists:
/// that copy, opened with the account's keys (the agent, else the password), with a warning.
/// `None` when there is no copy to fall back on (the caller reports `e`).
pub(super) async fn fallback(
    ctx: &Context,
    b: &AnyBackend,
    plan: &Plan,
    e: &anyhow::Error,
) -> Result<Option<Current>> {
    if !enabled() || exit_status(e) != ExitStatus::UNREACHABLE {
        return Ok(None);
    }
    let path = path(ctx, plan);
    let Ok(text) = std::fs::read(&path) else {
        return Ok(None);
    };
    let file: OfflineFile = match serde_json::from_slice(&text) {
        Ok(f) if matches!(&f, OfflineFile { format, .. } if *format == FORMAT) => f,
        _ => {
            return Err(unreadable(
                &path,
                "it is not an offline copy this klef reads",
            ));
        }
    };
    let Some(remote) = b.as_remote() else {
        return Ok(None);
    };
    if remote.session_account() != Some(&file.me.account.id) {
        return Ok(None);
    }
    remote.seed_me(file.me.clone());
    let keys = ctx.keys(b).await?;
    let (derived, _) = keys.derived().await?;
    let Some(body) = derived.open_offline_copy(&file.me.account.id, &label(plan), &file.sealed.0)
    else {
        return Err(unreadable(
            &path,
            "it does not open with this account's keys: it was altered, moved or is another account's",
        ));
    };
    let snap = Snapshot::decode(&body)?;
    let age = std::time::Duration::from_millis(
        u64::try_from(now_ms().saturating_sub(file.saved_at)).unwrap_or(0),
    );
    ctx.printer.warn(&format!(
        "{}; using the offline copy of {} saved {} ago (writes need the server)",
        first_line(e),
        snap.target.describe(),
        ago(age)
    ));
    Ok(Some(serve(ctx, &keys, snap).await?))
}

/// Deletes every offline copy (`klef logout`); how many there were.
pub(crate) fn forget_all(ctx: &Context) -> usize {
    let Ok(entries) = std::fs::read_dir(dir(ctx)) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

fn unreadable(path: &std::path::Path, why: &str) -> anyhow::Error {
    Failure::other(format!(
        "the server cannot be reached, and the offline copy {} cannot be used: {why}",
        path.display()
    ))
    .hint("delete it; the next read with the server reachable saves a new one")
    .into()
}

/// The error's own message (its causes are for `-v`).
fn first_line(e: &anyhow::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
