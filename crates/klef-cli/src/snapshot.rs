//! Environments served by the agent (docs/agent.md, decision 0021).
//!
//! A read of an environment on a server (`get`, `list --reveal`, `run`, `pull`, `inject`)
//! goes through [`current`]. After a full, verified read ([`crate::signed`]) the environment
//! as verified — its ciphertexts, its signed head's revision, its wrapped key, the project and
//! environment records and the account (`/v1/me`), never a plaintext — is handed to the agent,
//! which keeps it with the account's keys: it goes when they go (`klef lock`, expiry, `klef
//! agent stop`, a new unlock) and is never written to disk.
//!
//! The next read of the same environment (named the same way: the directory's `.klef`, or
//! `-p` with `-e`) asks the agent first:
//!
//! * confirmed by the server less than `KLEF_CACHE_FRESH` ago (5 s by default): served as is,
//!   without a request to the server;
//! * older: one conditional request (`GET …/secrets?changes_since=N`); `304` restarts its age;
//!   a change is merged in and verified like a full read (`signed::open_from`), and the new
//!   state replaces the copy; a refusal (a revoked member, a deleted environment) forgets it
//!   and reads in full, which reports the refusal;
//! * the server unreachable: served with one warning line saying how old it is. Writes always
//!   need the server.
//!
//! A command that sends the server any write forgets every copy of the account in the agent
//! ([`forget_after_writes`]), so the next read is exact. `--fresh`, `KLEF_NO_CACHE=1`,
//! `KLEF_NO_AGENT=1`, `--password-stdin`, an API key (`KLEF_TOKEN`) and the local vault read in
//! full every time.
//!
//! The agent is trusted as it is for keys (same user, peer-checked socket): what it returns
//! was verified when it was stored. What a server can do is unchanged: it can withhold
//! (answer `304` for ever, or nothing), which it could do before; it cannot roll a copy back
//! or make one up, because a change is verified from the copy's head.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use klef_core::backend::{Backend as _, BackendError, BackendErrorKind};
use klef_core::crypto::SymmetricKey;
use klef_core::env::EnvVars;
use klef_core::model::{
    Blob, DeletedName, Environment, EnvironmentKeyAccess, Project, SecretVersion,
};
use klef_core::wire::MeResponse;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::backend::AnyBackend;
use crate::context::{Context, Target};
use crate::diagnostics::Failure;
use crate::signed::{Base, Purpose};
use crate::unlock::{EarlyAgent, KeySource};

/// How long a copy is served without asking the server, by default.
pub(crate) const DEFAULT_FRESH: Duration = Duration::from_secs(5);
/// The longest `KLEF_CACHE_FRESH` accepted.
const MAX_FRESH: Duration = Duration::from_hours(1);

/// An environment's values as a read command needs them.
pub(crate) struct Current {
    /// The project and environment.
    pub(crate) target: Target,
    /// The environment key (checked against the signed state when it was read).
    pub(crate) key: SymmetricKey,
    /// The latest live version of every name, sorted by name.
    pub(crate) secrets: Vec<SecretVersion>,
    /// With [`Purpose::ReadSkipping`]: names left out because they do not match the signed
    /// state.
    pub(crate) skipped: Vec<String>,
    /// This account's personal overrides of the environment (`crate::personal`).
    pub(crate) personal: Option<crate::personal::Personal>,
}

/// The target environment's current values: from the agent's copy when it may serve one
/// (see the module documentation), else read and verified in full (and then kept).
pub(crate) async fn current(ctx: &Context, b: &AnyBackend, purpose: Purpose) -> Result<Current> {
    let plan = match Plan::of(ctx, b)? {
        Some(plan) if plan.use_agent => plan,
        other => {
            tracing::debug!("the agent's copies are not used for this command");
            return full(ctx, b, purpose, None, other.as_ref()).await;
        }
    };
    let Some(mut client) = ctx.take_early_agent().and_then(EarlyAgent::into_client) else {
        tracing::debug!("no agent to ask for a copy");
        return full(ctx, b, purpose, None, Some(&plan)).await;
    };
    let found = match client.get_snapshot(&plan.vault, &plan.alias).await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(error = %e, "no copy from the agent");
            None
        }
    };
    let Some((environment, age, body)) = found else {
        tracing::debug!("the agent has no copy");
        ctx.return_early_agent(EarlyAgent::running(client));
        return full(ctx, b, purpose, None, Some(&plan)).await;
    };
    let snap = match Snapshot::decode(&body) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "dropping an unreadable copy");
            let _ = client.drop_snapshots(&plan.vault, Some(&environment)).await;
            ctx.return_early_agent(EarlyAgent::running(client));
            return full(ctx, b, purpose, None, Some(&plan)).await;
        }
    };
    drop(body);
    let Some(remote) = b.as_remote() else {
        unreachable!("a plan is only made for a server")
    };
    remote.seed_me(snap.me.clone());
    let keys = Arc::new(KeySource::from_agent(
        client,
        plan.vault.clone(),
        &ctx.global,
        &snap.me.account,
    ));
    ctx.set_keys(keys.clone());
    if age >= plan.fresh {
        match b
            .environment_changes(&snap.target.env.id, snap.revision, snap.personal_revision())
            .await
        {
            Ok(None) => {
                tracing::debug!(age_ms = age.as_millis(), "the server confirmed the copy");
                if let Some((mut agent, vault)) = keys.agent_client().await {
                    let _ = agent.touch_snapshot(vault, &environment).await;
                }
            }
            Ok(Some(changes)) => {
                let base = Base {
                    revision: snap.revision,
                    personal: snap.personal_revision(),
                    secrets: snap.secrets,
                    deleted: snap.deleted,
                    changes: Some(changes),
                };
                return full(ctx, b, purpose, Some(base), Some(&plan)).await;
            }
            Err(e) if offline(&e) => {
                ctx.printer.warn(&format!(
                    "{e}; using {} as the server last confirmed it {} ago (writes need the server)",
                    snap.target.describe(),
                    ago(age)
                ));
            }
            Err(e) => {
                // Refused (a revoked member, a deleted environment, an expired session): the
                // copy goes, and a full read says why.
                tracing::debug!(error = %e, "the server refused a revalidation");
                if let Some((mut agent, vault)) = keys.agent_client().await {
                    let _ = agent.drop_snapshots(vault, Some(&environment)).await;
                }
                return full(ctx, b, purpose, None, Some(&plan)).await;
            }
        }
    } else {
        tracing::debug!(age_ms = age.as_millis(), "served by the agent");
    }
    serve(ctx, &keys, snap).await
}

/// A copy's values, with its key unwrapped by `keys` and this account's personal overrides
/// opened (and remembered for `crate::personal::layer`).
async fn serve(ctx: &Context, keys: &KeySource, snap: Snapshot) -> Result<Current> {
    let target = snap.target;
    let key = keys
        .environment_key(&target.project, &target.env, &snap.access)
        .await?;
    let personal = match &snap.personal {
        None => None,
        Some((revision, sealed)) => {
            let (derived, _) = keys.derived().await?;
            let overrides = derived
                .open_personal(&snap.me.account.id, &target.env.id, *revision, sealed)
                .map_err(|e| anyhow::anyhow!("the agent's copy of your personal overrides: {e}"))?;
            Some(crate::personal::Personal {
                revision: *revision,
                stored: *revision,
                overrides,
                lost: false,
            })
        }
    };
    crate::personal::remember(ctx, &target, personal.as_ref());
    Ok(Current {
        target,
        key,
        secrets: snap.secrets,
        skipped: Vec::new(),
        personal,
    })
}

/// Forgets the account's copies in the agent when this command sent the server a write of
/// any kind (run as the command ends): the next read is exact.
pub(crate) async fn forget_after_writes(ctx: &Context) {
    if let Some(vault) = ctx.wrote_to_server() {
        forget_vault(ctx, &vault).await;
    }
}

/// Forgets every copy the agent keeps for `vault` (after a write, at `klef logout`).
pub(crate) async fn forget_vault(ctx: &Context, vault: &str) {
    if let Some(keys) = ctx.keys_so_far()
        && let Some((mut agent, _)) = keys.agent_client().await
    {
        let _ = agent.drop_snapshots(vault, None).await;
        return;
    }
    if crate::unlock::agent_disabled() {
        return;
    }
    let client = match ctx.take_early_agent().and_then(EarlyAgent::into_client) {
        Some(c) => Some(c),
        None => match crate::unlock::agent_paths(&ctx.global) {
            Ok(paths) => klef_agent::client::AgentClient::connect(&paths).await.ok(),
            Err(_) => None,
        },
    };
    if let Some(mut client) = client {
        let _ = client.drop_snapshots(vault, None).await;
    }
}

/// A full verified read (from `base` when given), kept in the agent under `plan` when it can
/// be.
async fn full(
    ctx: &Context,
    b: &AnyBackend,
    purpose: Purpose,
    base: Option<Base>,
    plan: Option<&Plan>,
) -> Result<Current> {
    // The account and its pins are needed after the target; asked at the same time.
    let prefetch = async {
        if let Some(remote) = b.as_remote() {
            remote.prefetch().await;
        }
    };
    let read = async {
        let (target, ()) = tokio::join!(ctx.target(b), prefetch);
        let target = target?;
        let opened =
            crate::signed::open_from(ctx, b, &target, purpose, &ctx.global, None, base).await?;
        Ok::<_, anyhow::Error>((target, opened))
    };
    let (target, opened) = match read.await {
        Ok(read) => read,
        Err(e) => {
            if let Some(plan) = plan
                && let Some(current) = offline::fallback(ctx, b, plan, &e).await?
            {
                return Ok(current);
            }
            return Err(e);
        }
    };
    if let Some(plan) = plan
        && opened.skipped.is_empty()
        && let Some(head) = opened.head()
    {
        keep(ctx, b, plan, &target, &opened, head.revision).await;
    }
    Ok(Current {
        target,
        key: opened.key,
        secrets: opened.secrets,
        skipped: opened.skipped,
        personal: opened.personal,
    })
}

/// Hands what was just verified to the agent (best effort: a failure only costs speed).
async fn keep(
    ctx: &Context,
    b: &AnyBackend,
    plan: &Plan,
    t: &Target,
    opened: &crate::signed::Opened<'_>,
    revision: u64,
) {
    let Some(remote) = b.as_remote() else { return };
    let Ok(me) = remote.me().await else { return };
    let Some(keys) = ctx.keys_so_far() else {
        tracing::debug!("no keys to keep a copy with");
        return;
    };
    // This account's overrides, sealed again to it alone (never a plaintext in the agent).
    let personal = match &opened.personal {
        Some(p) if p.lost => return,
        Some(p) if p.stored > 0 => match keys.derived().await {
            Ok((derived, _)) => Some((
                p.stored,
                derived.seal_personal(&me.account.id, &t.env.id, p.stored, &p.overrides),
            )),
            Err(_) => return,
        },
        _ => None,
    };
    let snap = SnapshotRef {
        personal,
        me,
        project: &t.project,
        environment: &t.env,
        access: &opened.access,
        revision,
        secrets: &opened.secrets,
        deleted: opened.deleted(),
    };
    let body = match snap.encode() {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "could not encode a copy");
            return;
        }
    };
    if offline::enabled() {
        offline::save(ctx, plan, me, &keys, &body).await;
    }
    if !plan.use_agent {
        return;
    }
    let Some((mut agent, vault)) = keys.agent_client().await else {
        tracing::debug!("the keys do not come from the agent: no copy kept");
        return;
    };
    if vault != plan.vault {
        tracing::debug!("the keys are another vault's: no copy kept");
        return;
    }
    if let Err(e) = agent
        .put_snapshot(vault, &t.env.id.to_string(), vec![plan.alias.clone()], body)
        .await
    {
        tracing::debug!(error = %e, "the agent did not keep the copy");
    }
}

/// Whether (and under which names) this command may use the agent's copies.
struct Plan {
    /// The agent's name for the account's keys (`<server>#<account>`).
    vault: String,
    /// How the command names the environment: the project as `.klef` or `-p` names it, and
    /// the environment slug chosen.
    alias: String,
    /// `KLEF_CACHE_FRESH`.
    fresh: Duration,
    /// Whether the agent's copies may be used (else only the opt-in offline copy).
    use_agent: bool,
}

impl Plan {
    fn of(ctx: &Context, b: &AnyBackend) -> Result<Option<Self>> {
        let Some(remote) = b.as_remote() else {
            return Ok(None);
        };
        if ctx.global.fresh || crate::commands::keys::ci::token()?.is_some() {
            return Ok(None);
        }
        let use_agent =
            !(ctx.global.password_stdin || crate::unlock::agent_disabled() || cache_disabled());
        if !use_agent && !offline::enabled() {
            return Ok(None);
        }
        let fresh = freshness()?;
        let Some(account) = remote.session_account() else {
            return Ok(None);
        };
        let project = if let Some(needle) = ctx.global.project.as_deref() {
            // `-p` alone leaves the environment to the project's `.klef`, found by its id.
            let Some(env) = ctx.global.env.as_deref() else {
                return Ok(None);
            };
            format!("name:{needle}\n{env}")
        } else {
            let Some(klef) = Context::find_klef_file()? else {
                return Ok(None);
            };
            if klef
                .file
                .server
                .as_deref()
                .is_some_and(|s| Some(s.trim_end_matches('/')) != b.server())
            {
                return Ok(None);
            }
            let Some(choice) =
                crate::env_choice::resolve(&ctx.dirs, ctx.global.env.as_deref(), Some(&klef))?
            else {
                return Ok(None);
            };
            format!("id:{}\n{}", klef.file.project, choice.slug)
        };
        Ok(Some(Self {
            vault: crate::remote::session::vault_label(remote.server(), account),
            alias: project,
            fresh,
            use_agent,
        }))
    }
}

/// `KLEF_NO_CACHE=1`.
fn cache_disabled() -> bool {
    std::env::var(EnvVars::KLEF_NO_CACHE).is_ok_and(|v| crate::unlock::truthy(&v))
}

/// `KLEF_CACHE_FRESH`: a duration (`5s`, `1m`; a bare number is seconds), at most an hour.
fn freshness() -> Result<Duration> {
    let Some(text) = std::env::var(EnvVars::KLEF_CACHE_FRESH)
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(DEFAULT_FRESH);
    };
    parse_freshness(&text).ok_or_else(|| {
        Failure::usage(format!(
            "KLEF_CACHE_FRESH={text:?} is not a duration between 0 and 1h (examples: 0, 5s, 2m)"
        ))
        .hint("unset it for the default of 5s")
        .into()
    })
}

fn parse_freshness(text: &str) -> Option<Duration> {
    let text = text.trim();
    let d = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text).ok()?,
    };
    (d <= MAX_FRESH).then_some(d)
}

/// Whether a failure means the server could not be reached (rather than refused).
fn offline(e: &BackendError) -> bool {
    matches!(
        e.kind(),
        BackendErrorKind::Unreachable | BackendErrorKind::TimedOut
    )
}

/// `42s`, `3m 12s`, `1h 5m`: whole seconds.
fn ago(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}

pub(crate) mod offline;

/// The version of [`Encoded`].
const FORMAT: u32 = 1;

/// A copy as the agent keeps it: the records as JSON (their serde forms are JSON-shaped), the
/// values in postcard.
#[derive(Serialize, Deserialize)]
struct Encoded {
    format: u32,
    meta: Vec<u8>,
    revision: u64,
    values: Vec<Value>,
    deleted: Vec<(String, i64)>,
    /// This account's personal overrides record: revision and sealed bytes.
    personal: Option<(u64, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
struct Meta<'a> {
    me: std::borrow::Cow<'a, MeResponse>,
    project: std::borrow::Cow<'a, Project>,
    environment: std::borrow::Cow<'a, Environment>,
    access: std::borrow::Cow<'a, EnvironmentKeyAccess>,
}

#[derive(Serialize, Deserialize)]
struct Value {
    name: String,
    version: i64,
    ciphertext: Vec<u8>,
    key_version: i64,
    created_at: i64,
    author: Option<String>,
}

/// What [`keep`] encodes.
struct SnapshotRef<'a> {
    me: &'a MeResponse,
    project: &'a Project,
    environment: &'a Environment,
    access: &'a EnvironmentKeyAccess,
    revision: u64,
    secrets: &'a [SecretVersion],
    deleted: &'a [DeletedName],
    personal: Option<(u64, Vec<u8>)>,
}

impl SnapshotRef<'_> {
    fn encode(&self) -> Result<Vec<u8>> {
        let meta = serde_json::to_vec(&Meta {
            me: std::borrow::Cow::Borrowed(self.me),
            project: std::borrow::Cow::Borrowed(self.project),
            environment: std::borrow::Cow::Borrowed(self.environment),
            access: std::borrow::Cow::Borrowed(self.access),
        })?;
        let values = self
            .secrets
            .iter()
            .filter_map(|s| {
                Some(Value {
                    name: s.name.clone(),
                    version: s.version,
                    ciphertext: s.ciphertext.as_ref()?.as_bytes().to_vec(),
                    key_version: s.key_version,
                    created_at: s.created_at,
                    author: s.author.clone(),
                })
            })
            .collect();
        let encoded = Encoded {
            format: FORMAT,
            meta,
            revision: self.revision,
            values,
            deleted: self
                .deleted
                .iter()
                .map(|d| (d.name.clone(), d.version))
                .collect(),
            personal: self.personal.clone(),
        };
        Ok(postcard::to_allocvec(&encoded)?)
    }
}

/// A copy as the agent returned it.
struct Snapshot {
    me: MeResponse,
    target: Target,
    access: EnvironmentKeyAccess,
    revision: u64,
    secrets: Vec<SecretVersion>,
    deleted: Vec<DeletedName>,
    personal: Option<(u64, Vec<u8>)>,
}

impl Snapshot {
    /// The revision of the personal overrides record it holds (0: none).
    fn personal_revision(&self) -> u64 {
        self.personal.as_ref().map_or(0, |(r, _)| *r)
    }

    fn decode(body: &Zeroizing<Vec<u8>>) -> Result<Self> {
        let encoded: Encoded = postcard::from_bytes(body)?;
        anyhow::ensure!(
            encoded.format == FORMAT,
            "a copy in format {}",
            encoded.format
        );
        let meta: Meta<'static> = serde_json::from_slice(&encoded.meta)?;
        let environment = meta.environment.into_owned();
        let secrets = encoded
            .values
            .into_iter()
            .map(|v| SecretVersion {
                environment_id: environment.id,
                name: v.name,
                version: v.version,
                ciphertext: Some(Blob(v.ciphertext)),
                key_version: v.key_version,
                created_at: v.created_at,
                author: v.author,
            })
            .collect();
        Ok(Self {
            me: meta.me.into_owned(),
            target: Target {
                project: meta.project.into_owned(),
                env: environment,
            },
            access: meta.access.into_owned(),
            revision: encoded.revision,
            secrets,
            deleted: encoded
                .deleted
                .into_iter()
                .map(|(name, version)| DeletedName { name, version })
                .collect(),
            personal: encoded.personal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_takes_seconds_and_durations_up_to_an_hour() {
        assert_eq!(parse_freshness("0"), Some(Duration::ZERO));
        assert_eq!(parse_freshness("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_freshness(" 2m "), Some(Duration::from_mins(2)));
        assert_eq!(parse_freshness("1h"), Some(MAX_FRESH));
        assert_eq!(parse_freshness("2h"), None);
        assert_eq!(parse_freshness("soon"), None);
        assert_eq!(parse_freshness("-1"), None);
    }

    #[test]
    fn ages_read_as_whole_seconds() {
        assert_eq!(ago(Duration::from_millis(200)), "1s");
        assert_eq!(ago(Duration::from_secs(192)), "3m 12s");
    }
}
