//! The agent's serving loop: accepts connections on a Unix socket, checks each peer's uid,
//! answers framed requests from the shared [`AgentState`], and runs the expiry timer.
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests bind a socket in
//! a temp dir and run the loop in-process (STYLE.md rule 31).

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;

use zeroize::Zeroizing;

use crate::cache::{KeyCache, Timeouts};
use crate::paths::euid;
use crate::protocol::{
    AgentStatus, ErrorCode, FrameError, KeyBytes, PROTOCOL_VERSION, Request, Response, decode,
    encode, read_frame_body, read_frame_len, write_frame,
};
use klef_core::trust::secrets::DerivedSecrets;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// How long a connection may sit idle between requests before the agent closes it.
    pub idle_timeout: Duration,
    /// How long the rest of a frame may take once its length has arrived.
    pub frame_timeout: Duration,
    /// How many connections are served at once; further ones wait in the listen queue.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_mins(1),
            frame_timeout: Duration::from_secs(5),
            max_connections: 64,
        }
    }
}

/// The state shared by every connection: the key cache and the stop signal.
pub struct AgentState {
    cache: Mutex<KeyCache>,
    changed: Notify,
    stop: watch::Sender<bool>,
    options: ServeOptions,
    pid: u32,
    uid: u32,
}

impl AgentState {
    /// A fresh state with the given timeouts and default connection limits.
    #[must_use]
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        Self::with_options(timeouts, ServeOptions::default())
    }

    /// A fresh state with explicit connection limits.
    #[must_use]
    pub fn with_options(timeouts: Timeouts, options: ServeOptions) -> Arc<Self> {
        Arc::new(Self {
            cache: Mutex::new(KeyCache::new(timeouts)),
            changed: Notify::new(),
            stop: watch::channel(false).0,
            options,
            pid: std::process::id(),
            uid: euid(),
        })
    }

    /// Asks [`serve`] to wipe the keys and return, as a `Stop` request does.
    pub fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Wipes every key; how many there were.
    pub fn wipe(&self) -> usize {
        let n = self.cache().clear();
        self.changed.notify_one();
        n
    }

    fn cache(&self) -> MutexGuard<'_, KeyCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn status(&self) -> AgentStatus {
        let cache = self.cache();
        let t = cache.timeouts();
        AgentStatus {
            pid: self.pid,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: PROTOCOL_VERSION,
            idle_timeout: t.idle,
            max_lifetime: t.max_lifetime,
            vaults: cache.status(Instant::now()),
        }
    }
}

/// Whether a peer may talk to the agent: only processes of the agent's own (effective) uid.
#[must_use]
pub fn peer_allowed(peer_uid: u32, our_uid: u32) -> bool {
    peer_uid == our_uid
}

/// Serves connections until `shutdown` resolves or a client sends `Stop`; then wipes every
/// key and returns. The caller owns the socket file and removes it.
pub async fn serve(
    listener: UnixListener,
    state: Arc<AgentState>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut stop = state.stop.subscribe();
    let permits = Arc::new(Semaphore::new(state.options.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let timer = tokio::spawn(expiry_timer(Arc::clone(&state)));
    tokio::pin!(shutdown);
    let result = loop {
        let permit = tokio::select! {
            () = &mut shutdown => break Ok(()),
            () = stopped(&mut stop) => break Ok(()),
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break Ok(()),
            },
        };
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            () = stopped(&mut stop) => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = Arc::clone(&state);
                    connections.spawn(async move {
                        handle_connection(stream, &state).await;
                        drop(permit);
                    });
                }
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => break Err(e),
            },
        }
        // Reap finished connection tasks so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    };
    timer.abort();
    connections.abort_all();
    let wiped = state.wipe();
    tracing::info!(wiped, "agent stopping; keys wiped");
    result
}

/// Resolves once a stop was requested (without holding the watch's read guard across the
/// select, which would make [`serve`]'s future `!Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error().is_some_and(|c| {
        c == rustix::io::Errno::MFILE.raw_os_error()
            || c == rustix::io::Errno::NFILE.raw_os_error()
            || c == rustix::io::Errno::NOBUFS.raw_os_error()
            || c == rustix::io::Errno::NOMEM.raw_os_error()
    })
}

/// Sleeps until the earliest key deadline and wipes what expired, so keys disappear even when
/// nobody asks. Re-arms whenever the cache changes.
async fn expiry_timer(state: Arc<AgentState>) {
    loop {
        let deadline = state.cache().next_deadline();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {
                let gone = state.cache().expire(Instant::now());
                for vault in gone {
                    tracing::info!(vault, "key expired and wiped");
                }
            }
            () = state.changed.notified() => {}
        }
    }
}

async fn handle_connection(mut stream: UnixStream, state: &AgentState) {
    match stream.peer_cred() {
        Ok(cred) if peer_allowed(cred.uid(), state.uid) => {}
        Ok(cred) => {
            tracing::warn!(
                peer_uid = cred.uid(),
                peer_pid = cred.pid(),
                "refused a connection from another user"
            );
            let msg = format!("the agent serves uid {} only", state.uid);
            send_error(&mut stream, ErrorCode::PermissionDenied, msg).await;
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the peer's credentials; connection refused");
            return;
        }
    }
    let options = state.options;
    let mut greeted = false;
    loop {
        let len = match timeout(options.idle_timeout, read_frame_len(&mut stream)).await {
            Err(_) => {
                tracing::debug!("closing an idle connection");
                return;
            }
            Ok(Ok(None)) => return,
            Ok(Ok(Some(len))) => len,
            Ok(Err(e)) => return frame_failed(&mut stream, &e).await,
        };
        let body = match timeout(options.frame_timeout, read_frame_body(&mut stream, len)).await {
            Err(_) => {
                tracing::debug!("closing a connection stalled mid-frame");
                return;
            }
            Ok(Ok(body)) => body,
            Ok(Err(e)) => return frame_failed(&mut stream, &e).await,
        };
        let request: Request = match decode(&body) {
            Ok(r) => r,
            Err(e) => return frame_failed(&mut stream, &e).await,
        };
        drop(body);
        tracing::debug!(request = request.kind(), "request");
        if !greeted {
            let Request::Hello { version } = request else {
                let msg = "the first request must be hello".to_owned();
                send_error(&mut stream, ErrorCode::HelloRequired, msg).await;
                return;
            };
            let hello = Response::Hello {
                version: PROTOCOL_VERSION,
                pid: state.pid,
            };
            if send(&mut stream, &hello).await.is_err() || version != PROTOCOL_VERSION {
                if version != PROTOCOL_VERSION {
                    tracing::info!(
                        client = version,
                        ours = PROTOCOL_VERSION,
                        "version mismatch"
                    );
                }
                return;
            }
            greeted = true;
            continue;
        }
        let stop = matches!(request, Request::Stop);
        let response = dispatch(request, state);
        if send(&mut stream, &response).await.is_err() {
            return;
        }
        if stop {
            tracing::info!("stop requested");
            state.request_stop();
            return;
        }
    }
}

fn dispatch(request: Request, state: &AgentState) -> Response {
    let now = Instant::now();
    match request {
        Request::Hello { .. } => Response::Error {
            code: ErrorCode::BadFrame,
            message: "hello was already received".into(),
        },
        Request::Unlock {
            vault,
            private_key,
            identity_seed,
            state_key,
        } => {
            let derived = DerivedSecrets::from_bytes(identity_seed.expose(), state_key.expose());
            state
                .cache()
                .insert(&vault, private_key.into_private_key(), derived, now);
            state.changed.notify_one();
            tracing::info!(vault, "unlocked");
            Response::Ok
        }
        Request::Derived { vault } => {
            let answer = state
                .cache()
                .use_entry(&vault, now, |private, d| Response::Derived {
                    identity_seed: KeyBytes::from_bytes(d.identity_seed()),
                    state_key: KeyBytes::from_bytes(d.state_key()),
                    x25519_public: private.public_key().0,
                });
            state.changed.notify_one();
            answer.unwrap_or_else(|| locked(&vault))
        }
        Request::Unwrap {
            vault,
            envelope,
            context,
        } => {
            let what = context.describe();
            let result = state.cache().use_key(&vault, now, |private| {
                klef_core::crypto::unwrap_key(private, &envelope, &context.as_aad(), &what)
            });
            state.changed.notify_one();
            match result {
                None => locked(&vault),
                Some(Ok(key)) => Response::Key {
                    bytes: KeyBytes::from_symmetric_key(&key),
                },
                Some(Err(e)) => Response::Error {
                    code: ErrorCode::Crypto,
                    message: e.to_string(),
                },
            }
        }
        Request::IsUnlocked { vault } => Response::Unlocked {
            unlocked: state.cache().is_unlocked(&vault, now),
        },
        Request::Lock => {
            let n = state.wipe();
            tracing::info!(wiped = n, "locked");
            Response::Ok
        }
        Request::LockVault { vault } => {
            let had = state.cache().remove(&vault);
            state.changed.notify_one();
            tracing::info!(vault, had, "vault locked");
            Response::Ok
        }
        Request::Status => Response::Status(state.status()),
        Request::Stop => Response::Ok,
        Request::PutSnapshot {
            vault,
            environment,
            aliases,
            body,
        } => {
            let kept =
                state
                    .cache()
                    .put_snapshot(&vault, environment, aliases, Zeroizing::new(body), now);
            state.changed.notify_one();
            if kept { Response::Ok } else { locked(&vault) }
        }
        Request::GetSnapshot { vault, alias } => {
            let found = state.cache().get_snapshot(&vault, &alias, now);
            state.changed.notify_one();
            match found {
                None => locked(&vault),
                Some(None) => Response::NoSnapshot,
                Some(Some(f)) => Response::Snapshot {
                    environment: f.environment,
                    age: f.age,
                    body: f.body.to_vec(),
                },
            }
        }
        Request::TouchSnapshot { vault, environment } => {
            state.cache().touch_snapshot(&vault, &environment, now);
            Response::Ok
        }
        Request::DropSnapshots { vault, environment } => {
            let n = state.cache().drop_snapshots(&vault, environment.as_deref());
            tracing::debug!(vault, dropped = n, "snapshots dropped");
            Response::Ok
        }
    }
}

fn locked(vault: &str) -> Response {
    Response::Error {
        code: ErrorCode::Locked,
        message: format!("vault {vault} is locked in the agent"),
    }
}

async fn frame_failed(stream: &mut UnixStream, e: &FrameError) {
    tracing::debug!(error = %e, "bad frame; closing the connection");
    let code = match e {
        FrameError::Io(_) => return,
        FrameError::TooLarge(_) => ErrorCode::FrameTooLarge,
        FrameError::Truncated | FrameError::Malformed(_) => ErrorCode::BadFrame,
    };
    send_error(stream, code, e.to_string()).await;
}

async fn send_error(stream: &mut UnixStream, code: ErrorCode, message: String) {
    let _ = send(stream, &Response::Error { code, message }).await;
}

async fn send(stream: &mut UnixStream, response: &Response) -> Result<(), FrameError> {
    let body = encode(response)?;
    timeout(Duration::from_secs(5), write_frame(stream, &body))
        .await
        .map_err(|_| FrameError::Io(io::ErrorKind::TimedOut.into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn start(options: ServeOptions) -> (tempfile::TempDir, std::path::PathBuf, Arc<AgentState>) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let state = AgentState::with_options(Timeouts::default(), options);
        tokio::spawn(serve(listener, Arc::clone(&state), std::future::pending()));
        (dir, socket, state)
    }

    /// Reads until EOF, bounded; whether the agent closed the connection in time.
    async fn closed_within(stream: &mut UnixStream, limit: Duration) -> bool {
        let mut sink = Vec::new();
        timeout(limit, stream.read_to_end(&mut sink)).await.is_ok()
    }

    #[tokio::test]
    async fn stalled_clients_are_dropped() {
        let options = ServeOptions {
            idle_timeout: Duration::from_millis(300),
            frame_timeout: Duration::from_millis(300),
            max_connections: 4,
        };
        let (_dir, socket, _state) = start(options);
        // Silent after connecting.
        let mut idle = UnixStream::connect(&socket).await.unwrap();
        // Stalled in the middle of a frame.
        let mut partial = UnixStream::connect(&socket).await.unwrap();
        partial.write_all(&[50, 0, 0, 0, 1, 2]).await.unwrap();
        assert!(closed_within(&mut idle, Duration::from_secs(5)).await);
        assert!(closed_within(&mut partial, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_and_stop_ends_serving() {
        let options = ServeOptions {
            max_connections: 1,
            ..ServeOptions::default()
        };
        let (_dir, socket, state) = start(options);
        let mut first = UnixStream::connect(&socket).await.unwrap();
        let hello = encode(&Request::Hello {
            version: PROTOCOL_VERSION,
        })
        .unwrap();
        write_frame(&mut first, &hello).await.unwrap();
        assert!(
            crate::protocol::read_frame(&mut first)
                .await
                .unwrap()
                .is_some()
        );
        // The second connection is queued, not served, while the first holds the only slot.
        let mut second = UnixStream::connect(&socket).await.unwrap();
        write_frame(&mut second, &hello).await.unwrap();
        let queued = timeout(
            Duration::from_millis(300),
            crate::protocol::read_frame(&mut second),
        );
        assert!(queued.await.is_err(), "served beyond the limit");
        drop(first);
        let served = timeout(
            Duration::from_secs(5),
            crate::protocol::read_frame(&mut second),
        );
        assert!(served.await.unwrap().unwrap().is_some());
        state.request_stop();
        assert!(closed_within(&mut second, Duration::from_secs(5)).await);
    }

    #[test]
    fn only_our_uid_is_allowed() {
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(0, 1000));
        assert!(!peer_allowed(65534, 0));
    }
}
