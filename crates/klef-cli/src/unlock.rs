//! How a command gets at keys: one function, [`key_source`], returns something that can unwrap
//! the account's project and environment keys. The agent helpers shared with `klef unlock`,
//! `klef lock` and `klef agent …` live here too.
//!
//! Order of sources:
//! 1. `KLEF_TOKEN` (an API key): only meaningful against a Klef server (`Context::backend`
//!    refuses it for the local vault); a system key opens environment keys itself
//!    (`Context::environment_key`), a user key still needs its owner's password below;
//! 2. the agent, unless `KLEF_NO_AGENT=1` or `--password-stdin` was given: when it runs and
//!    holds this vault's key, unwrap requests go to it and no password is asked;
//! 3. the encryption password (`--password-stdin`, `KLEF_PASSWORD`, a terminal prompt), which
//!    opens the master key and then the private key in this process. Unless `KLEF_NO_AGENT=1`,
//!    the private key is then handed to the agent (started if needed) so later commands do not
//!    ask again.
//!
//! When the password is asked depends on [`Unlock`]: [`Unlock::Upfront`] asks the agent whether
//! it holds the key and, if not, asks for the password before [`key_source`] returns;
//! [`Unlock::OnFirstUse`] (commands that open one environment key, such as `klef get` and
//! `klef run`) sends the first unwrap request straight to a running agent, which saves a round
//! trip, and asks for the password — and hands the key to that agent — only when the agent
//! answers that it does not hold the key.
//!
//! Falling back: an agent that is missing, locked or was killed is passed over silently. An
//! agent that is broken or speaks another protocol version is passed over too, with one
//! `warning:` line that says how to restart it; so is an agent that cannot be started (for
//! example because of a timeout variable above its maximum). When the agent loses the key in
//! the middle of a command (expiry, `klef lock`, killed), the command asks for the password and
//! goes on. `--password-stdin` always reads and uses the password on stdin, so the first line
//! of stdin is never mistaken for data (`klef set KEY --password-stdin`).
//!
//! With `KLEF_NO_AGENT=1` klef never connects to an agent, never starts one and never creates
//! the agent's runtime directory. In CI (`CI` set) or without a terminal on stdin a keyed
//! command uses an agent that runs, but starts none ([`may_start_agent`]), unless
//! `KLEF_AGENT_AUTOSTART=1`; `klef unlock` and `klef agent start` always do.
//!
//! The agent caches keys per vault under the account id.

use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result};
use klef_core::crypto::account::UnlockedAccount;
use klef_core::crypto::{self, Aad, PrivateKey, PublicKey, SealedKey, SymmetricKey, WrappedKey};
use klef_core::env::EnvVars;
use klef_core::model::{Account, Environment, EnvironmentKeyAccess, Project};
use klef_core::trust::secrets::DerivedSecrets;

use klef_agent::client::{AgentClient, ClientError, default_agent_bin, ensure_running};
use klef_agent::paths::{AgentPaths, PathsError};
use tokio::sync::{Mutex, OnceCell};

use crate::cli::GlobalArgs;
use crate::diagnostics::Failure;
use crate::password;
use crate::printer::Printer;

/// How to restart a broken agent, for notes and hints.
pub(crate) const RESTART_HINT: &str = "restart it with `klef agent stop; klef agent start`";

/// What a password unlock opens: the account's private key and the secrets derived from its
/// master key (the identity seed and the account-state key); the master key itself is dropped.
pub(crate) struct AccountSecrets {
    /// The X25519 private key.
    pub(crate) private_key: PrivateKey,
    /// The identity seed and account-state key.
    pub(crate) derived: DerivedSecrets,
}

impl AccountSecrets {
    /// From a freshly unlocked (or created) account.
    pub(crate) fn of(account: &klef_core::ids::AccountId, unlocked: UnlockedAccount) -> Self {
        Self {
            derived: DerivedSecrets::derive(&unlocked.master_key, account),
            private_key: unlocked.private_key,
        }
    }

    /// A copy of the derived secrets (they are not `Clone`, deliberately), with the public
    /// key of the private key.
    fn derived_copy(&self) -> (DerivedSecrets, PublicKey) {
        (
            DerivedSecrets::from_bytes(self.derived.identity_seed(), self.derived.state_key()),
            self.private_key.public_key(),
        )
    }
}

/// Something that can unwrap keys wrapped to the account's public key.
pub(crate) enum KeySource {
    /// The account's private key, opened in this process with the password.
    Private(AccountSecrets),
    /// The agent, which holds the private key for `vault` (or, before its first answer under
    /// [`Unlock::OnFirstUse`], may not).
    Agent {
        /// The connection (requests need `&mut`).
        client: Mutex<AgentClient>,
        /// The agent's name for this vault (the account id).
        vault: String,
        /// Used when the agent loses the key in the middle of the command.
        fallback: Box<Fallback>,
    },
}

/// What a command needs to fall back to the password after the agent has let it down.
pub(crate) struct Fallback {
    global: GlobalArgs,
    account: Account,
    private: OnceCell<AccountSecrets>,
    /// Set until the agent first opens a key when nobody asked it whether it holds the vault's
    /// key ([`Unlock::OnFirstUse`]): a `Locked` answer then means it never had the key, and the
    /// key opened with the password is handed to it, as after an upfront password unlock. A
    /// `Locked` answer after a key was opened means the agent lost the key (expiry, `klef
    /// lock`) and the password then serves this command only.
    hand_off: AtomicBool,
}

impl Fallback {
    /// The account's secrets, opened with the password on first use.
    async fn private_key(&self) -> Result<&AccountSecrets> {
        self.private
            .get_or_try_init(|| async { password_unlock(&self.global, &self.account) })
            .await
    }
}

impl KeySource {
    /// Unwrap requests go to `client`; `hand_off` as in [`Fallback::hand_off`].
    fn agent(
        client: AgentClient,
        vault: String,
        global: &GlobalArgs,
        account: &Account,
        hand_off: bool,
    ) -> Self {
        KeySource::Agent {
            client: Mutex::new(client),
            vault,
            fallback: Box::new(Fallback {
                global: global.clone(),
                account: account.clone(),
                private: OnceCell::new(),
                hand_off: AtomicBool::new(hand_off),
            }),
        }
    }

    /// Keys the agent holds for `vault`, reached through `client` (which just answered for
    /// that vault); a `Locked` answer later falls back to the password as under
    /// [`Unlock::OnFirstUse`].
    pub(crate) fn from_agent(
        client: AgentClient,
        vault: String,
        global: &GlobalArgs,
        account: &Account,
    ) -> Self {
        Self::agent(client, vault, global, account, true)
    }

    /// The agent connection and its name for the vault, when the keys come from the agent.
    pub(crate) async fn agent_client(
        &self,
    ) -> Option<(tokio::sync::MutexGuard<'_, AgentClient>, &str)> {
        match self {
            KeySource::Agent { client, vault, .. } => Some((client.lock().await, vault.as_str())),
            KeySource::Private(_) => None,
        }
    }

    /// Unwraps an HPKE envelope bound to `aad`.
    pub(crate) async fn unwrap_key(
        &self,
        envelope: &WrappedKey,
        aad: &Aad<'_>,
        what: &str,
    ) -> Result<SymmetricKey> {
        let open = |secrets: &AccountSecrets| {
            crypto::unwrap_key(&secrets.private_key, envelope, aad, what)
                .with_context(|| format!("failed to open {what}"))
        };
        match self {
            KeySource::Private(private) => open(private),
            KeySource::Agent {
                client,
                vault,
                fallback,
            } => {
                if let Some(private) = fallback.private.get() {
                    return open(private);
                }
                let mut client = client.lock().await;
                let answer = client.unwrap_key(vault, envelope, aad).await;
                let hand_off = fallback.hand_off.swap(false, Ordering::Relaxed);
                match answer {
                    Ok(key) => Ok(key),
                    Err(ClientError::Locked { .. }) if hand_off => {
                        tracing::debug!("the agent does not hold the key; asking for the password");
                        let private = fallback.private_key().await?;
                        if let Err(e) = client
                            .unlock(vault, &private.private_key, &private.derived)
                            .await
                        {
                            hand_off_failed(&fallback.global, &e);
                        }
                        open(private)
                    }
                    Err(e @ (ClientError::Locked { .. } | ClientError::NotRunning { .. })) => {
                        tracing::debug!(error = %e, "the agent lost the key; asking for the password");
                        open(fallback.private_key().await?)
                    }
                    Err(e @ ClientError::Broken { .. }) => {
                        Printer::new(&fallback.global).warn(&broken_note(&e));
                        open(fallback.private_key().await?)
                    }
                    Err(e) => Err(e).with_context(|| format!("the agent could not open {what}")),
                }
            }
        }
    }

    /// The secrets derived from the account's master key (identity seed, account-state key),
    /// with the account's X25519 public key computed from its own private key: from the agent,
    /// or opened with the password when the agent cannot give them.
    pub(crate) async fn derived(&self) -> Result<(DerivedSecrets, PublicKey)> {
        match self {
            KeySource::Private(secrets) => Ok(secrets.derived_copy()),
            KeySource::Agent {
                client,
                vault,
                fallback,
            } => {
                if let Some(secrets) = fallback.private.get() {
                    return Ok(secrets.derived_copy());
                }
                let mut client = client.lock().await;
                let answer = client.derived(vault).await;
                let hand_off = fallback.hand_off.swap(false, Ordering::Relaxed);
                match answer {
                    Ok(derived) => Ok(derived),
                    Err(ClientError::Locked { .. }) if hand_off => {
                        let secrets = fallback.private_key().await?;
                        if let Err(e) = client
                            .unlock(vault, &secrets.private_key, &secrets.derived)
                            .await
                        {
                            hand_off_failed(&fallback.global, &e);
                        }
                        Ok(secrets.derived_copy())
                    }
                    Err(ClientError::Locked { .. } | ClientError::NotRunning { .. }) => {
                        Ok(fallback.private_key().await?.derived_copy())
                    }
                    Err(e @ ClientError::Broken { .. }) => {
                        Printer::new(&fallback.global).warn(&broken_note(&e));
                        Ok(fallback.private_key().await?.derived_copy())
                    }
                    Err(e) => Err(e).context("the agent could not give the account's keys"),
                }
            }
        }
    }

    /// The project key, from any environment's key access of that project.
    pub(crate) async fn project_key(
        &self,
        project: &Project,
        access: &EnvironmentKeyAccess,
    ) -> Result<SymmetricKey> {
        match access {
            EnvironmentKeyAccess::ViaProject { project_key, .. } => {
                self.unwrap_key(
                    &WrappedKey::from(project_key),
                    &Aad::ProjectKey(&project.id),
                    &format!("the key of project \"{}\"", project.name),
                )
                .await
            }
            EnvironmentKeyAccess::Direct { .. } => Err(Failure::permission(format!(
                "you have access to some environments of project \"{}\", not to the project key",
                project.name
            ))
            .hint("ask a workspace admin to do this")
            .into()),
        }
    }

    /// The environment key: project key → environment key, or directly wrapped.
    pub(crate) async fn environment_key(
        &self,
        project: &Project,
        env: &Environment,
        access: &EnvironmentKeyAccess,
    ) -> Result<SymmetricKey> {
        let what = format!("the key of environment \"{}\"", env.slug);
        match access {
            EnvironmentKeyAccess::ViaProject {
                environment_key, ..
            } => {
                let project_key = self.project_key(project, access).await?;
                crypto::open_key(
                    &project_key,
                    &SealedKey::from(environment_key),
                    &Aad::EnvironmentKey(&env.id),
                    &what,
                )
                .with_context(|| format!("failed to open {what}"))
            }
            EnvironmentKeyAccess::Direct { environment_key } => {
                self.unwrap_key(
                    &WrappedKey::from(environment_key),
                    &Aad::EnvironmentKey(&env.id),
                    &what,
                )
                .await
            }
        }
    }
}

/// When [`key_source`] asks for the password if the agent cannot help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unlock {
    /// Before it returns: a command that handles unwrap errors itself (`klef workspace confirm`
    /// turns one into a warning per project) must not meet a password failure there.
    Upfront,
    /// At the first unwrap the agent refuses with `Locked`: one agent round trip fewer for a
    /// command whose unwrap errors simply end it.
    OnFirstUse,
}

/// Returns a key source for `account` that can unwrap its keys, asking for the password when
/// `when` says. `vault` is the agent's name for the account's keys (`AnyBackend::vault_id`: the
/// account id locally, `<server url>#<account id>` on a server).
///
/// `early` is the agent connection [`connect_early`] opened while the vault was opening; it
/// replaces the connection this would open when nothing needs asking up front.
pub(crate) async fn key_source(
    global: &GlobalArgs,
    account: &Account,
    vault: String,
    when: Unlock,
    early: Option<EarlyAgent>,
) -> Result<KeySource> {
    // The agent to hand the key to after a password unlock (`None`: start one if needed).
    let mut healthy = None;
    let mut hand_off = !agent_disabled();
    if hand_off {
        // `--password-stdin` always uses the password, whatever the agent holds.
        let ask = (when == Unlock::Upfront && !global.password_stdin).then_some(vault.as_str());
        let probed = match early {
            Some(EarlyAgent(probed)) if ask.is_none() => probed,
            _ => probe(global, ask).await,
        };
        match probed {
            Probe::Unlocked(client) => {
                return Ok(KeySource::agent(client, vault, global, account, false));
            }
            Probe::Running(client) if !global.password_stdin => {
                return Ok(KeySource::agent(client, vault, global, account, true));
            }
            Probe::Running(client) | Probe::Locked(client) => healthy = Some(client),
            Probe::Absent => {}
            Probe::Unusable(note) => {
                Printer::new(global).warn(&note);
                hand_off = false;
            }
        }
    }
    let private_key = password_unlock(global, account)?;
    if hand_off {
        hand_to_agent(global, healthy, &vault, &private_key).await;
    }
    Ok(KeySource::Private(private_key))
}

/// [`key_source`] (asking up front) when the keys can be had without a dead end: from the
/// agent, `KLEF_PASSWORD`, `--password-stdin` or a prompt at a terminal; `None` for a script
/// with none of these, so the caller can do without what needs them and say so.
pub(crate) async fn key_source_if_available(
    global: &GlobalArgs,
    account: &Account,
    vault: String,
) -> Result<Option<KeySource>> {
    match key_source(global, account, vault, Unlock::Upfront, None).await {
        Ok(keys) => Ok(Some(keys)),
        Err(_) if !password::can_ask(global) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Hands a private key the command already holds (a new account's, in `klef init`/`signup`)
/// to the agent, starting it if needed, so the next command needs no password. Does nothing
/// with `KLEF_NO_AGENT=1`; an agent that cannot take it only costs a warning.
pub(crate) async fn remember_in_agent(global: &GlobalArgs, vault: &str, key: &AccountSecrets) {
    if agent_disabled() {
        return;
    }
    let running = match probe(global, None).await {
        Probe::Unlocked(c) | Probe::Locked(c) | Probe::Running(c) => Some(c),
        Probe::Absent => None,
        Probe::Unusable(note) => {
            Printer::new(global).warn(&note);
            return;
        }
    };
    hand_to_agent(global, running, vault, key).await;
}

/// Opens the account's private key with the password (`--password-stdin`, `KLEF_PASSWORD`, a
/// prompt); exit code 3 when there is no way to ask or the password is wrong.
pub(crate) fn password_unlock(global: &GlobalArgs, account: &Account) -> Result<AccountSecrets> {
    password::try_current_password(global, "encryption password: ", |pw| {
        crypto::account::unlock(&account.id, &account.keys, pw)
            .map(|u| AccountSecrets::of(&account.id, u))
    })
    .map_err(|e| match e.downcast_ref::<crypto::CryptoError>() {
        // The private key opened, so the password was right; the public key stored beside it is
        // someone else's: whoever holds the account's record swapped it.
        Some(crypto::CryptoError::Tampered { .. }) => Failure::other(format!(
            "the public key stored for account {} is not the one its private key belongs to: the server (or whoever edited the vault file) substituted a key",
            account.id
        ))
        .hint("share, confirm or invite nothing through this server and tell its operator; a local vault: restore it from a backup")
        .into(),
        None | Some(_) => e,
    })?
    .ok_or_else(|| password::locked_error().into())
}

/// Whether a keyed command may start the agent by itself after a password unlock: not in CI
/// (`CI` set, other than `0`/`false`) nor without a terminal on stdin, where the agent would
/// outlive the job or script that started it; `KLEF_AGENT_AUTOSTART=1` asks for it anyway.
/// `klef unlock` and `klef agent start` always start it: they are the explicit ask.
pub(crate) fn may_start_agent() -> bool {
    autostart_decision(
        std::env::var(EnvVars::KLEF_AGENT_AUTOSTART).ok().as_deref(),
        std::env::var(EnvVars::CI).ok().as_deref(),
        std::io::IsTerminal::is_terminal(&std::io::stdin()),
    )
}

/// [`may_start_agent`] over its inputs.
fn autostart_decision(autostart: Option<&str>, ci: Option<&str>, stdin_tty: bool) -> bool {
    if autostart.is_some_and(truthy) {
        return true;
    }
    let in_ci = ci.is_some_and(|v| {
        let v = v.trim();
        !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
    });
    !in_ci && stdin_tty
}

/// Whether a switch variable is on (`1`, `true`, `yes`).
pub(crate) fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
}

/// `KLEF_NO_AGENT=1` (or `true`/`yes`) turns the agent off entirely.
/// Whether the account's keys can be had without asking anyone: the agent holds them unlocked,
/// or a password is given (`--password-stdin`, `KLEF_PASSWORD`). For reads that are useful
/// without keys (`klef list`), which verify when this is so and say they did not otherwise.
pub(crate) async fn unlocked_without_asking(global: &GlobalArgs, vault: &str) -> bool {
    if global.password_stdin || password::env_password(EnvVars::KLEF_PASSWORD).is_some() {
        return true;
    }
    !agent_disabled() && matches!(probe(global, Some(vault)).await, Probe::Unlocked(_))
}

pub(crate) fn agent_disabled() -> bool {
    std::env::var(EnvVars::KLEF_NO_AGENT).is_ok_and(|v| truthy(&v))
}

/// The agent's runtime files for this invocation: as [`AgentPaths::from_env`], with `--profile`
/// taking the place of `KLEF_PROFILE` when given. Does not touch the file system.
pub(crate) fn agent_paths(global: &GlobalArgs) -> Result<AgentPaths, PathsError> {
    let profile = global.profile.clone().map(OsString::from);
    AgentPaths::resolve(
        |name| {
            if name == EnvVars::KLEF_PROFILE && profile.is_some() {
                profile.clone()
            } else {
                std::env::var_os(name)
            }
        },
        std::env::temp_dir(),
        klef_agent::paths::euid(),
    )
}

/// The one-line note for an agent that is running but cannot be used.
pub(crate) fn broken_note(e: &ClientError) -> String {
    format!(
        "{}; using the encryption password instead ({RESTART_HINT})",
        broken_what(e)
    )
}

/// What is wrong with an agent, in words.
fn broken_what(e: &ClientError) -> String {
    match e {
        ClientError::VersionMismatch { agent, ours, pid } => format!(
            "the agent (pid {pid}) speaks protocol version {agent} and this klef speaks {ours}"
        ),
        other => other.to_string(),
    }
}

/// What a look at the agent found.
enum Probe {
    /// It runs and holds the vault's key.
    Unlocked(AgentClient),
    /// It runs and does not hold the vault's key.
    Locked(AgentClient),
    /// It runs; whether it holds the vault's key was not asked.
    Running(AgentClient),
    /// None runs (or its socket cannot even be located).
    Absent,
    /// It runs but cannot be used; the note says why and how to restart it.
    Unusable(String),
}

/// Looks for a running agent (never starts one: an agent only becomes useful after an unlock)
/// and, given a `vault`, asks whether it holds that vault's key.
async fn probe(global: &GlobalArgs, vault: Option<&str>) -> Probe {
    let paths = match agent_paths(global) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "no agent socket; asking for the password");
            return Probe::Absent;
        }
    };
    let result = async {
        let mut client = AgentClient::connect(&paths).await?;
        let unlocked = match vault {
            Some(vault) => Some(client.is_unlocked(vault).await?),
            None => None,
        };
        Ok::<_, ClientError>((client, unlocked))
    }
    .await;
    match result {
        Ok((client, Some(true))) => Probe::Unlocked(client),
        Ok((client, Some(false))) => Probe::Locked(client),
        Ok((client, None)) => Probe::Running(client),
        Err(e @ ClientError::NotRunning { .. }) => {
            tracing::debug!(error = %e, "no agent; asking for the password");
            Probe::Absent
        }
        Err(e) => Probe::Unusable(broken_note(&e)),
    }
}

/// An agent connection opened ahead of its first use: see [`connect_early`].
pub(crate) struct EarlyAgent(Probe);

impl EarlyAgent {
    /// The connection, when an agent runs and answered the handshake.
    pub(crate) fn into_client(self) -> Option<AgentClient> {
        match self.0 {
            Probe::Unlocked(c) | Probe::Locked(c) | Probe::Running(c) => Some(c),
            Probe::Absent | Probe::Unusable(_) => None,
        }
    }

    /// A connection taken with [`into_client`](Self::into_client), given back unused.
    pub(crate) fn running(client: AgentClient) -> Self {
        Self(Probe::Running(client))
    }
}

/// Connects to the agent (socket, peer check, version handshake) without asking it anything,
/// so that a command can do it while the vault opens; [`key_source`] then uses that connection.
/// `None` when no agent would be used: `KLEF_NO_AGENT=1`, `--password-stdin`. Starts nothing and
/// prints nothing: an absent or unusable agent is reported by [`key_source`], as without it.
pub(crate) async fn connect_early(global: &GlobalArgs) -> Option<EarlyAgent> {
    if agent_disabled() || global.password_stdin {
        return None;
    }
    Some(EarlyAgent(probe(global, None).await))
}

/// Caches the private key in the agent, starting it when none runs. A failure does not fail the
/// command (it has the key already); it is reported as one warning line.
async fn hand_to_agent(
    global: &GlobalArgs,
    running: Option<AgentClient>,
    vault: &str,
    key: &AccountSecrets,
) {
    let result = async {
        let mut client = match running {
            Some(c) => c,
            None if may_start_agent() => {
                ensure_running(&agent_paths(global)?, &default_agent_bin()).await?
            }
            None => {
                tracing::debug!("no agent runs and none is started in CI or without a terminal");
                return Ok(());
            }
        };
        client.unlock(vault, &key.private_key, &key.derived).await
    }
    .await;
    if let Err(e) = result {
        hand_off_failed(global, &e);
    }
}

/// The warning for a private key the agent could not take: the command goes on.
fn hand_off_failed(global: &GlobalArgs, e: &ClientError) {
    tracing::debug!(error = %e, "could not hand the key to the agent");
    let why = match e {
        ClientError::StartFailed { message, .. } => {
            format!("cannot start the agent: {message}")
        }
        ClientError::Broken { .. } | ClientError::VersionMismatch { .. } => {
            format!("{} ({RESTART_HINT})", broken_what(e))
        }
        other => other.to_string(),
    };
    Printer::new(global).warn(&format!(
        "{why}; the password unlocked this command only, the next one asks again"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;

    #[test]
    fn the_profile_flag_namespaces_the_agent_directory() {
        let cli = Cli::try_parse_from(["klef", "--profile", "work", "lock"]).unwrap();
        let with = agent_paths(&cli.global).unwrap();
        let leaf = with
            .dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(leaf.ends_with("-work"), "{leaf}");
        assert!(with.socket().ends_with("agent.sock"));
    }

    #[test]
    fn the_agent_starts_by_itself_only_at_a_terminal_outside_ci_unless_asked() {
        assert!(autostart_decision(None, None, true));
        assert!(!autostart_decision(None, None, false), "no terminal");
        assert!(!autostart_decision(None, Some("true"), true), "CI");
        assert!(!autostart_decision(None, Some("1"), true), "CI");
        assert!(autostart_decision(None, Some("false"), true));
        assert!(autostart_decision(None, Some("0"), true));
        assert!(autostart_decision(None, Some(""), true));
        assert!(autostart_decision(Some("1"), Some("true"), false), "asked");
        assert!(!autostart_decision(Some("0"), None, false));
    }

    #[test]
    fn notes_say_how_to_restart_the_agent() {
        let mismatch = broken_note(&ClientError::VersionMismatch {
            agent: 9,
            ours: 1,
            pid: 77,
        });
        assert!(mismatch.contains("pid 77") && mismatch.contains("protocol version 9"));
        assert!(mismatch.ends_with(&format!("({RESTART_HINT})")));
        let broken = broken_note(&ClientError::Broken {
            reason: "truncated frame".into(),
        });
        assert!(broken.contains("truncated frame") && broken.contains(RESTART_HINT));
        assert!(!broken.contains('\n'));
    }
}
