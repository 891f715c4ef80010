//! The client side of the agent protocol, used by `klef` (async, tokio).
//!
//! ```no_run
//! # async fn demo() -> Result<(), klef_agent::client::ClientError> {
//! use klef_agent::client::{AgentClient, ensure_running, default_agent_bin};
//! use klef_agent::paths::AgentPaths;
//!
//! let paths = AgentPaths::from_env()?;
//! let mut agent = ensure_running(&paths, &default_agent_bin()).await?;
//! if !agent.is_unlocked("personal").await? {
//!     // ask for the password, open the private key, then:
//!     // agent.unlock("personal", &private_key).await?;
//! }
//! # Ok(()) }
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use klef_core::crypto::{Aad, PrivateKey, PublicKey, SymmetricKey, WrappedKey};
use klef_core::env::EnvVars;
use klef_core::trust::secrets::DerivedSecrets;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::timeout;
use zeroize::Zeroizing;

use klef_core::ready::ReadyLine;

use crate::daemon::LEGACY_READY_LINE;
use crate::paths::{AgentPaths, PathsError, euid};
use crate::protocol::{
    AgentStatus, ErrorCode, FrameError, KeyBytes, OwnedAad, PROTOCOL_VERSION, Request, Response,
    decode, encode, read_frame, write_frame,
};

/// How long a started agent may take to report readiness, and an old one to go away.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take before the agent is considered broken.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors talking to the agent. The CLI falls back to asking for the password on
/// [`NotRunning`](Self::NotRunning), [`Broken`](Self::Broken) and
/// [`Locked`](Self::Locked).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No agent listens on the socket.
    #[error("the agent is not running")]
    NotRunning {
        /// Why connecting failed.
        #[source]
        source: io::Error,
    },
    /// The agent speaks another protocol version.
    #[error("the agent speaks protocol version {agent}, this klef speaks {ours}")]
    VersionMismatch {
        /// The agent's version.
        agent: u32,
        /// Ours.
        ours: u32,
        /// The agent's pid (so it can be replaced).
        pid: u32,
    },
    /// The agent answered something unexpected, closed the connection or timed out.
    #[error("the agent is not working: {reason}")]
    Broken {
        /// What went wrong.
        reason: String,
    },
    /// The vault has no key in the agent (never unlocked, locked or expired).
    #[error("{message}")]
    Locked {
        /// The agent's message.
        message: String,
    },
    /// The agent refused the request.
    #[error("the agent refused the request ({code}): {message}")]
    Refused {
        /// The agent's error code.
        code: ErrorCode,
        /// The agent's message.
        message: String,
    },
    /// The agent could not be started.
    #[error("cannot start the agent {}: {message}", .bin.display())]
    StartFailed {
        /// The binary that was run.
        bin: PathBuf,
        /// What went wrong (the agent's own message when it printed one).
        message: String,
    },
    /// The runtime directory could not be resolved.
    #[error(transparent)]
    Paths(#[from] PathsError),
}

impl ClientError {
    fn broken(reason: impl Into<String>) -> Self {
        Self::Broken {
            reason: reason.into(),
        }
    }
}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        Self::broken(e.to_string())
    }
}

/// A connection to the agent, past the version handshake.
#[derive(Debug)]
pub struct AgentClient {
    stream: UnixStream,
    pid: u32,
}

impl AgentClient {
    /// Connects and performs the handshake. Does not start an agent (see [`ensure_running`]).
    pub async fn connect(paths: &AgentPaths) -> Result<Self, ClientError> {
        let socket = paths.socket();
        let stream = match timeout(REQUEST_TIMEOUT, UnixStream::connect(&socket)).await {
            Err(_) => return Err(ClientError::broken("connecting to the socket timed out")),
            Ok(Err(e)) => {
                return Err(match e.kind() {
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                        ClientError::NotRunning { source: e }
                    }
                    _ => {
                        ClientError::broken(format!("cannot connect to {}: {e}", socket.display()))
                    }
                });
            }
            Ok(Ok(s)) => s,
        };
        // Only talk to an agent of our own user.
        let cred = stream
            .peer_cred()
            .map_err(|e| ClientError::broken(e.to_string()))?;
        if cred.uid() != euid() {
            return Err(ClientError::broken(format!(
                "{} belongs to uid {}, not to us",
                socket.display(),
                cred.uid()
            )));
        }
        let mut client = Self { stream, pid: 0 };
        match client
            .request(&Request::Hello {
                version: PROTOCOL_VERSION,
            })
            .await?
        {
            Response::Hello { version, pid } if version == PROTOCOL_VERSION => {
                client.pid = pid;
                Ok(client)
            }
            Response::Hello { version, pid } => Err(ClientError::VersionMismatch {
                agent: version,
                ours: PROTOCOL_VERSION,
                pid,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// The agent's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Hands `vault`'s private key to the agent (replacing any earlier one).
    pub async fn unlock(
        &mut self,
        vault: &str,
        key: &PrivateKey,
        derived: &DerivedSecrets,
    ) -> Result<(), ClientError> {
        let req = Request::Unlock {
            vault: vault.to_owned(),
            private_key: KeyBytes::from_private_key(key),
            identity_seed: KeyBytes::from_bytes(derived.identity_seed()),
            state_key: KeyBytes::from_bytes(derived.state_key()),
        };
        self.expect_ok(&req).await
    }

    /// The identity seed and account-state key cached for `vault`, with the X25519 public key
    /// of its private key; counts as a use.
    pub async fn derived(
        &mut self,
        vault: &str,
    ) -> Result<(DerivedSecrets, PublicKey), ClientError> {
        let req = Request::Derived {
            vault: vault.to_owned(),
        };
        match self.request(&req).await? {
            Response::Derived {
                identity_seed,
                state_key,
                x25519_public,
            } => Ok((
                DerivedSecrets::from_bytes(identity_seed.expose(), state_key.expose()),
                PublicKey(x25519_public),
            )),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the agent to unwrap an envelope made by `klef_core::crypto::wrap_key` with
    /// `vault`'s private key; counts as a use of the key.
    pub async fn unwrap_key(
        &mut self,
        vault: &str,
        envelope: &WrappedKey,
        context: &Aad<'_>,
    ) -> Result<SymmetricKey, ClientError> {
        let req = Request::Unwrap {
            vault: vault.to_owned(),
            envelope: envelope.clone(),
            context: OwnedAad::from(context),
        };
        match self.request(&req).await? {
            Response::Key { bytes } => Ok(bytes.into_symmetric_key()),
            other => Err(unexpected(&other)),
        }
    }

    /// Whether `vault` has a key in the agent.
    pub async fn is_unlocked(&mut self, vault: &str) -> Result<bool, ClientError> {
        match self
            .request(&Request::IsUnlocked {
                vault: vault.to_owned(),
            })
            .await?
        {
            Response::Unlocked { unlocked } => Ok(unlocked),
            other => Err(unexpected(&other)),
        }
    }

    /// Wipes every key; the agent keeps running.
    pub async fn lock(&mut self) -> Result<(), ClientError> {
        self.expect_ok(&Request::Lock).await
    }

    /// Wipes one vault's key.
    pub async fn lock_vault(&mut self, vault: &str) -> Result<(), ClientError> {
        self.expect_ok(&Request::LockVault {
            vault: vault.to_owned(),
        })
        .await
    }

    /// The agent's pid, version, timeouts and unlocked vaults.
    pub async fn status(&mut self) -> Result<AgentStatus, ClientError> {
        match self.request(&Request::Status).await? {
            Response::Status(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// Wipes every key and stops the agent; returns once the agent has closed the connection
    /// (its socket is gone by then or moments later).
    pub async fn stop(mut self) -> Result<(), ClientError> {
        self.expect_ok(&Request::Stop).await?;
        let mut rest = Vec::new();
        let _ = timeout(START_TIMEOUT, self.stream.read_to_end(&mut rest)).await;
        Ok(())
    }

    /// Keeps `body` as `environment`'s snapshot of `vault`, findable by `aliases` (see
    /// [`Request::PutSnapshot`]).
    pub async fn put_snapshot(
        &mut self,
        vault: &str,
        environment: &str,
        aliases: Vec<String>,
        body: Vec<u8>,
    ) -> Result<(), ClientError> {
        self.expect_ok(&Request::PutSnapshot {
            vault: vault.to_owned(),
            environment: environment.to_owned(),
            aliases,
            body,
        })
        .await
    }

    /// The snapshot of `vault` found by `alias`: its environment id, age and bytes.
    pub async fn get_snapshot(
        &mut self,
        vault: &str,
        alias: &str,
    ) -> Result<Option<(String, Duration, Zeroizing<Vec<u8>>)>, ClientError> {
        match self
            .request(&Request::GetSnapshot {
                vault: vault.to_owned(),
                alias: alias.to_owned(),
            })
            .await?
        {
            Response::NoSnapshot => Ok(None),
            Response::Snapshot {
                environment,
                age,
                body,
            } => Ok(Some((environment, age, Zeroizing::new(body)))),
            other => Err(unexpected(&other)),
        }
    }

    /// Restarts the age of `environment`'s snapshot (the server confirmed it).
    pub async fn touch_snapshot(
        &mut self,
        vault: &str,
        environment: &str,
    ) -> Result<(), ClientError> {
        self.expect_ok(&Request::TouchSnapshot {
            vault: vault.to_owned(),
            environment: environment.to_owned(),
        })
        .await
    }

    /// Forgets `environment`'s snapshot of `vault`, or all of them.
    pub async fn drop_snapshots(
        &mut self,
        vault: &str,
        environment: Option<&str>,
    ) -> Result<(), ClientError> {
        self.expect_ok(&Request::DropSnapshots {
            vault: vault.to_owned(),
            environment: environment.map(str::to_owned),
        })
        .await
    }

    async fn expect_ok(&mut self, req: &Request) -> Result<(), ClientError> {
        match self.request(req).await? {
            Response::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends one request and reads its answer; agent errors become [`ClientError`]s.
    async fn request(&mut self, req: &Request) -> Result<Response, ClientError> {
        let exchange = async {
            let body = encode(req)?;
            write_frame(&mut self.stream, &body).await?;
            drop(body);
            match read_frame(&mut self.stream).await? {
                Some(body) => decode::<Response>(&body),
                None => Err(FrameError::Truncated),
            }
        };
        let response = timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::broken("the agent did not answer in time"))??;
        match response {
            Response::Error {
                code: ErrorCode::Locked,
                message,
            } => Err(ClientError::Locked { message }),
            Response::Error { code, message } => Err(ClientError::Refused { code, message }),
            other => Ok(other),
        }
    }
}

fn unexpected(response: &Response) -> ClientError {
    let what = match response {
        Response::Hello { .. } => "hello",
        Response::Ok => "ok",
        Response::Key { .. } => "a key",
        Response::Derived { .. } => "derived secrets",
        Response::Unlocked { .. } => "unlocked",
        Response::Status(_) => "status",
        Response::Error { .. } => "an error",
        Response::Snapshot { .. } => "a snapshot",
        Response::NoSnapshot => "no snapshot",
    };
    ClientError::broken(format!("unexpected answer: {what}"))
}

/// The `klef-agent` binary to start: `KLEF_AGENT_BIN`, else `klef-agent` next to the current
/// executable, else `klef-agent` from `PATH`.
#[must_use]
pub fn default_agent_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os(EnvVars::KLEF_AGENT_BIN).filter(|v| !v.is_empty()) {
        return PathBuf::from(bin);
    }
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("klef-agent")))
        .filter(|p| p.is_file())
    {
        return sibling;
    }
    PathBuf::from("klef-agent")
}

/// Connects to the agent, starting `agent_bin` first when none runs. An agent speaking another
/// protocol version is stopped (SIGTERM) and replaced. Waits at most a few seconds.
pub async fn ensure_running(
    paths: &AgentPaths,
    agent_bin: &Path,
) -> Result<AgentClient, ClientError> {
    match AgentClient::connect(paths).await {
        Ok(client) => return Ok(client),
        Err(ClientError::NotRunning { .. }) => {}
        Err(ClientError::VersionMismatch { agent, pid, .. }) => {
            tracing::info!(agent, pid, "replacing an agent of another protocol version");
            replace_old_agent(paths, pid).await?;
        }
        Err(e) => return Err(e),
    }
    start(paths, agent_bin).await?;
    AgentClient::connect(paths).await
}

async fn replace_old_agent(paths: &AgentPaths, pid: u32) -> Result<(), ClientError> {
    crate::lifecycle::terminate(pid);
    // Bounded wait for the old agent to remove its socket.
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let mut pause = Duration::from_millis(10);
    while paths.socket().exists() {
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::broken(format!(
                "the old agent (pid {pid}) did not stop within {}s",
                START_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
    Ok(())
}

/// Starts the agent and waits until it serves. `bin` runs as a launcher (see
/// [`crate::daemon`]): it starts the agent proper, relays its readiness or its error, and
/// exits, so the agent is nobody's child (not `klef`'s, nor the command `klef run` becomes).
async fn start(paths: &AgentPaths, bin: &Path) -> Result<(), ClientError> {
    paths.ensure_dir()?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--runtime-dir").arg(paths.dir());
    // The agent lives for hours: it gets only what it reads, never a credential of the command
    // that started it (`KLEF_PASSWORD`, `KLEF_TOKEN`, …, which would stay readable in
    // /proc/<pid>/environ for its whole life).
    cmd.env_clear();
    for (name, value) in std::env::vars_os() {
        if name.to_str().is_some_and(agent_needs) {
            cmd.env(name, value);
        }
    }
    spawn_until_ready(cmd, Ready::ThenExits)
        .await
        .map(drop)
        .map_err(|message| ClientError::StartFailed {
            bin: bin.to_owned(),
            message,
        })
}

/// The variables the agent is started with; every other one is left out (see [`start`]).
const AGENT_ENV: &[&str] = &[
    EnvVars::KLEF_HOME,
    EnvVars::KLEF_PROFILE,
    EnvVars::KLEF_AGENT_IDLE_TIMEOUT,
    EnvVars::KLEF_AGENT_MAX_LIFETIME,
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "RUST_LOG",
    "NO_COLOR",
];

/// Whether the agent is started with the variable `name`: [`AGENT_ENV`] and the `XDG_*`
/// directories.
fn agent_needs(name: &str) -> bool {
    AGENT_ENV.contains(&name) || name.starts_with("XDG_")
}

/// What a process started by [`spawn_until_ready`] does once it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// It exits (the launcher): wait for it, so it is not left a zombie.
    ThenExits,
    /// It keeps running (the agent proper): leave it.
    ThenServes,
}

/// Spawns `cmd` in a new session (stdin null, stdout and stderr on pipes) and waits for its
/// readiness line; `Err` holds why it did not get ready (its stderr when it says). An exit with
/// success and no readiness line means another agent won the race to start, which is success
/// too.
pub(crate) async fn spawn_until_ready(
    mut cmd: tokio::process::Command,
    ready: Ready,
) -> Result<Option<String>, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    crate::hardening::start_new_session(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut line = String::new();
    let read = timeout(START_TIMEOUT, BufReader::new(stdout).read_line(&mut line)).await;
    match read {
        Err(_) => return Err(format!("not ready within {}s", START_TIMEOUT.as_secs())),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(_)) if is_ready_line(&line) => {
            if ready == Ready::ThenExits {
                let _ = timeout(START_TIMEOUT, child.wait()).await;
            }
            return Ok(Some(line.trim_end().to_owned()));
        }
        Ok(Ok(_)) => {}
    }
    // No readiness line: it exited.
    let status = timeout(START_TIMEOUT, child.wait())
        .await
        .map_err(|_| "it neither started nor exited".to_owned())?
        .map_err(|e| e.to_string())?;
    if status.success() {
        return Ok(None);
    }
    let mut err = String::new();
    if let Some(stderr) = child.stderr.take() {
        let _ = timeout(
            Duration::from_secs(1),
            stderr.take(64 * 1024).read_to_string(&mut err),
        )
        .await;
    }
    let err = err.trim();
    let err = err.strip_prefix("klef-agent: error: ").unwrap_or(err);
    Err(if err.is_empty() {
        format!("it exited with {status}")
    } else {
        err.to_owned()
    })
}

/// Whether `line` is the agent's readiness line: the JSON [`ReadyLine`] both Klef daemons
/// write, or the bare `ready` of agents before it.
pub(crate) fn is_ready_line(line: &str) -> bool {
    ReadyLine::parse(line).is_some() || line.trim_end() == LEGACY_READY_LINE
}
