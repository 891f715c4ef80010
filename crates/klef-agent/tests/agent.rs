//! End-to-end tests of the real `klef-agent` binary: every test starts its own agent with
//! `KLEF_HOME` in a temp dir and waits for its readiness line (no start-up sleeps), then talks
//! to it through the library client or raw frames.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use klef_agent::client::{AgentClient, ClientError, ensure_running};
use klef_agent::paths::AgentPaths;
use klef_agent::protocol::{
    ErrorCode, KeyBytes, OwnedAad, PROTOCOL_VERSION, Request, Response, decode, encode,
};
use klef_core::crypto::{Aad, SymmetricKey, WrappedKey, generate_keypair, wrap_key};
use klef_core::ids::EnvironmentId;
use klef_core::trust::secrets::DerivedSecrets;

const BIN: &str = env!("CARGO_BIN_EXE_klef-agent");

/// A running agent, killed on drop if a test fails before stopping it.
struct Agent {
    child: Child,
    home: tempfile::TempDir,
    paths: AgentPaths,
}

/// The agent proper (`--detached`: what the launcher `klef` runs starts), so the child is the
/// agent itself: its pid, its signals, its exit.
/// Secrets derived from a fixed master key, as `klef` hands them over with a private key.
fn derived() -> DerivedSecrets {
    DerivedSecrets::derive(
        &SymmetricKey::from_bytes(Box::new([5; 32])),
        &klef_core::ids::AccountId::random(),
    )
}

fn agent_command(home: &Path, envs: &[(&str, &str)]) -> Command {
    let mut cmd = launcher_command(home, envs);
    cmd.arg("--detached");
    cmd
}

/// Plain `klef-agent`: the launcher, which starts the agent proper and exits.
fn launcher_command(home: &Path, envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("KLEF_HOME", home)
        .envs(envs.iter().copied());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl Agent {
    fn start(envs: &[(&str, &str)]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let cmd = agent_command(home.path(), envs);
        Self::spawn(cmd, home)
    }

    fn spawn(mut cmd: Command, home: tempfile::TempDir) -> Self {
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if klef_core::ready::ReadyLine::parse(&line).is_none() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("agent did not start: {err}");
        }
        let paths = AgentPaths::in_dir(home.path().join("run"));
        Self { child, home, paths }
    }

    async fn client(&self) -> AgentClient {
        AgentClient::connect(&self.paths).await.unwrap()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.paths.log_file()).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit and returns whether it exited successfully.
    fn wait_exit(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "agent did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 100 ms for at most 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn raw_connect(paths: &AgentPaths) -> UnixStream {
    let s = UnixStream::connect(paths.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn send_raw(s: &mut UnixStream, req: &Request) {
    s.write_all(&frame(&encode(req).unwrap())).unwrap();
}

/// Reads one frame body; `None` on EOF.
fn read_raw(s: &mut UnixStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).is_err() {
        return None;
    }
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    Some(body)
}

fn hello_raw(s: &mut UnixStream) {
    send_raw(
        s,
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
    );
    let body = read_raw(s).unwrap();
    assert!(matches!(
        decode(&body).unwrap(),
        Response::Hello {
            version: PROTOCOL_VERSION,
            ..
        }
    ));
}

fn expect_error_then_close(s: &mut UnixStream, code: ErrorCode) {
    let body = read_raw(s).expect("an error response");
    match decode::<Response>(&body).unwrap() {
        Response::Error { code: got, .. } => assert_eq!(got, code),
        other => panic!("expected {code}, got {other:?}"),
    }
    assert!(read_raw(s).is_none(), "the connection should be closed");
}

fn wrapped_env_key(
    public: &klef_core::crypto::PublicKey,
) -> (SymmetricKey, EnvironmentId, WrappedKey) {
    let env = EnvironmentId::random();
    let key = SymmetricKey::generate();
    let envelope = wrap_key(public, &key, &Aad::EnvironmentKey(&env));
    (key, env, envelope)
}

#[tokio::test]
async fn unlock_and_unwrap_without_ever_returning_the_private_key() {
    let agent = Agent::start(&[]);
    let mut client = agent.client().await;
    assert_eq!(client.pid(), agent.pid());
    let (private, public) = generate_keypair();
    let (env_key, env, envelope) = wrapped_env_key(&public);

    let locked = client
        .unwrap_key("personal", &envelope, &Aad::EnvironmentKey(&env))
        .await;
    assert!(
        matches!(locked, Err(ClientError::Locked { .. })),
        "{:?}",
        locked.err()
    );
    assert!(!client.is_unlocked("personal").await.unwrap());

    assert!(matches!(
        client.derived("personal").await,
        Err(ClientError::Locked { .. })
    ));
    let secrets = derived();
    client.unlock("personal", &private, &secrets).await.unwrap();
    assert!(client.is_unlocked("personal").await.unwrap());
    assert!(!client.is_unlocked("other").await.unwrap());
    // The derived secrets come back as handed over (for the user's own `klef` to sign with).
    let (back, public) = client.derived("personal").await.unwrap();
    assert_eq!(public, private.public_key());
    assert_eq!(back.identity_seed(), secrets.identity_seed());
    assert_eq!(back.state_key(), secrets.state_key());
    assert!(matches!(
        client.derived("other").await,
        Err(ClientError::Locked { .. })
    ));
    let got = client
        .unwrap_key("personal", &envelope, &Aad::EnvironmentKey(&env))
        .await
        .unwrap();
    assert_eq!(got.expose(), env_key.expose());

    // Moved to another environment: refused as tampering, and the agent keeps serving.
    let other = EnvironmentId::random();
    match client
        .unwrap_key("personal", &envelope, &Aad::EnvironmentKey(&other))
        .await
    {
        Err(ClientError::Refused {
            code: ErrorCode::Crypto,
            message,
        }) => {
            assert!(message.contains("tampered"), "{message}");
        }
        other => panic!("expected a crypto error, got {:?}", other.err()),
    }
    let status = client.status().await.unwrap();
    assert_eq!(status.pid, agent.pid());
    assert_eq!(status.protocol, PROTOCOL_VERSION);
    assert_eq!(status.vaults.len(), 1);
    assert_eq!(status.vaults[0].vault, "personal");
    assert!(status.vaults[0].idle_left <= Duration::from_hours(1));
    assert!(status.vaults[0].hard_cap_left > Duration::from_hours(7));

    // No answer to any request carries the private key's bytes.
    let secret = private.expose().to_vec();
    let mut raw = raw_connect(&agent.paths);
    let requests = [
        Request::Hello {
            version: PROTOCOL_VERSION,
        },
        Request::IsUnlocked {
            vault: "personal".into(),
        },
        Request::Unwrap {
            vault: "personal".into(),
            envelope: envelope.clone(),
            context: OwnedAad::EnvironmentKey(env),
        },
        Request::Unwrap {
            vault: "personal".into(),
            envelope: envelope.clone(),
            context: OwnedAad::PrivateKey(klef_core::ids::AccountId::random()),
        },
        Request::Status,
        Request::Unlock {
            vault: "second".into(),
            private_key: KeyBytes::from_private_key(&private),
            identity_seed: KeyBytes::from_bytes(&[1; 32]),
            state_key: KeyBytes::from_bytes(&[2; 32]),
        },
        Request::LockVault {
            vault: "second".into(),
        },
    ];
    for req in &requests {
        send_raw(&mut raw, req);
        let body = read_raw(&mut raw).unwrap();
        assert!(
            !body.windows(secret.len()).any(|w| w == secret.as_slice()),
            "{} returned the private key",
            req.kind()
        );
    }
    // The log never holds key material either.
    let log = agent.log();
    assert!(log.contains("unlocked"), "{log}");
    assert!(!log.contains(&format!("{:?}", &secret[..8])));
}

#[tokio::test]
async fn idle_timeout_wipes_keys_with_no_traffic() {
    let agent = Agent::start(&[("KLEF_AGENT_IDLE_TIMEOUT", "2s")]);
    let mut client = agent.client().await;
    let status = client.status().await.unwrap();
    assert_eq!(status.idle_timeout, Duration::from_secs(2));
    assert_eq!(status.max_lifetime, Duration::from_hours(8));
    let (private, _) = generate_keypair();
    let t0 = Instant::now();
    client.unlock("v", &private, &derived()).await.unwrap();
    drop(client);
    // No requests at all until the timer has wiped the key on its own.
    eventually("the expiry timer", || {
        agent.log().contains("key expired and wiped")
    })
    .await;
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900),
        "wiped after {elapsed:?}"
    );
    let mut client = agent.client().await;
    assert!(!client.is_unlocked("v").await.unwrap());
    assert!(client.status().await.unwrap().vaults.is_empty());
}

#[tokio::test]
async fn hard_cap_wipes_keys_despite_steady_use() {
    let agent = Agent::start(&[("KLEF_AGENT_MAX_LIFETIME", "3s")]);
    let mut client = agent.client().await;
    let (private, public) = generate_keypair();
    let (_, env, envelope) = wrapped_env_key(&public);
    let t0 = Instant::now();
    client.unlock("v", &private, &derived()).await.unwrap();
    let wiped_after = loop {
        match client
            .unwrap_key("v", &envelope, &Aad::EnvironmentKey(&env))
            .await
        {
            Ok(_) => {}
            Err(ClientError::Locked { .. }) => break t0.elapsed(),
            Err(e) => panic!("{e}"),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the hard cap never hit"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        wiped_after >= Duration::from_millis(2900),
        "{wiped_after:?}"
    );
    assert!(wiped_after < Duration::from_secs(5), "{wiped_after:?}");
}

#[tokio::test]
async fn lock_wipes_every_vault_and_the_agent_keeps_running() {
    let agent = Agent::start(&[]);
    let mut client = agent.client().await;
    let (a, _) = generate_keypair();
    let (b, _) = generate_keypair();
    client.unlock("a", &a, &derived()).await.unwrap();
    client.unlock("b", &b, &derived()).await.unwrap();
    client.lock_vault("a").await.unwrap();
    assert!(!client.is_unlocked("a").await.unwrap());
    assert!(client.is_unlocked("b").await.unwrap());
    client.unlock("a", &a, &derived()).await.unwrap();
    client.lock().await.unwrap();
    assert!(!client.is_unlocked("a").await.unwrap());
    assert!(!client.is_unlocked("b").await.unwrap());
    let mut again = agent.client().await;
    assert_eq!(again.status().await.unwrap().pid, agent.pid());
}

#[tokio::test]
async fn stop_exits_and_removes_socket_and_lock() {
    let mut agent = Agent::start(&[]);
    let (k, _) = generate_keypair();
    let mut client = agent.client().await;
    client.unlock("v", &k, &derived()).await.unwrap();
    assert!(agent.paths.lock_file().exists());
    client.stop().await.unwrap();
    assert!(agent.wait_exit(), "the agent should exit 0");
    assert!(!agent.paths.socket().exists());
    assert!(!agent.paths.lock_file().exists());
    assert!(matches!(
        AgentClient::connect(&agent.paths).await,
        Err(ClientError::NotRunning { .. })
    ));
}

#[tokio::test]
async fn sigterm_and_sigint_stop_cleanly() {
    for signal in [rustix::process::Signal::TERM, rustix::process::Signal::INT] {
        let mut agent = Agent::start(&[]);
        let pid = rustix::process::Pid::from_raw(agent.pid().cast_signed()).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        assert!(agent.wait_exit(), "{signal:?}");
        assert!(!agent.paths.socket().exists(), "{signal:?}");
        assert!(!agent.paths.lock_file().exists(), "{signal:?}");
    }
}

#[tokio::test]
async fn a_second_agent_is_refused_while_the_first_runs() {
    let agent = Agent::start(&[]);
    let out = agent_command(agent.home.path(), &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another agent is already running (pid {})",
            agent.pid()
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(agent.client().await.pid(), agent.pid());
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let home = tempfile::tempdir().unwrap();
    let paths = AgentPaths::in_dir(home.path().join("run"));
    paths.ensure_dir().unwrap();
    drop(UnixListener::bind(paths.socket()).unwrap());
    assert!(
        UnixStream::connect(paths.socket()).is_err(),
        "nothing listens"
    );
    let agent = Agent::spawn(agent_command(home.path(), &[]), home);
    assert_eq!(agent.client().await.pid(), agent.pid());
    assert_eq!(
        std::fs::metadata(agent.paths.socket()).unwrap().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(agent.paths.dir()).unwrap().mode() & 0o777,
        0o700
    );
}

#[tokio::test]
async fn bad_frames_get_an_error_and_the_agent_keeps_serving() {
    let agent = Agent::start(&[]);

    // Garbage body after the handshake.
    let mut s = raw_connect(&agent.paths);
    hello_raw(&mut s);
    s.write_all(&frame(&[0xff, 0xff, 0xff, 0xff, 0xff]))
        .unwrap();
    expect_error_then_close(&mut s, ErrorCode::BadFrame);

    // An unknown request variant.
    let mut s = raw_connect(&agent.paths);
    hello_raw(&mut s);
    s.write_all(&frame(&[42])).unwrap();
    expect_error_then_close(&mut s, ErrorCode::BadFrame);

    // Truncated: the length promises more than arrives before the client stops writing.
    let mut s = raw_connect(&agent.paths);
    s.write_all(&[100, 0, 0, 0, 1, 2, 3]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    expect_error_then_close(&mut s, ErrorCode::BadFrame);

    // Oversized: refused from the length prefix alone.
    let mut s = raw_connect(&agent.paths);
    s.write_all(&(128u32 << 20).to_le_bytes()).unwrap();
    expect_error_then_close(&mut s, ErrorCode::FrameTooLarge);

    // Anything but hello first.
    let mut s = raw_connect(&agent.paths);
    send_raw(&mut s, &Request::Status);
    expect_error_then_close(&mut s, ErrorCode::HelloRequired);

    let mut client = agent.client().await;
    assert_eq!(client.status().await.unwrap().pid, agent.pid());
}

#[tokio::test]
async fn wrong_protocol_versions_are_told_apart() {
    // The agent answers with its own version, then closes.
    let agent = Agent::start(&[]);
    let mut s = raw_connect(&agent.paths);
    send_raw(
        &mut s,
        &Request::Hello {
            version: PROTOCOL_VERSION + 1,
        },
    );
    let body = read_raw(&mut s).unwrap();
    match decode::<Response>(&body).unwrap() {
        Response::Hello { version, pid } => {
            assert_eq!(version, PROTOCOL_VERSION);
            assert_eq!(pid, agent.pid());
        }
        other => panic!("{other:?}"),
    }
    assert!(read_raw(&mut s).is_none());

    // The client reports an agent of another version.
    let home = tempfile::tempdir().unwrap();
    let paths = AgentPaths::in_dir(home.path().join("run"));
    paths.ensure_dir().unwrap();
    let fake = UnixListener::bind(paths.socket()).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = fake.accept().unwrap();
        let _ = read_raw(&mut s);
        let hello = encode(&Response::Hello {
            version: 99,
            pid: 4242,
        })
        .unwrap();
        s.write_all(&frame(&hello)).unwrap();
    });
    match AgentClient::connect(&paths).await {
        Err(ClientError::VersionMismatch { agent, ours, pid }) => {
            assert_eq!((agent, ours, pid), (99, PROTOCOL_VERSION, 4242));
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    server.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_clients_are_served() {
    let agent = Agent::start(&[]);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let paths = agent.paths.clone();
        tasks.spawn(async move {
            let mut c = AgentClient::connect(&paths).await.unwrap();
            let (k, public) = generate_keypair();
            let (env_key, env, envelope) = wrapped_env_key(&public);
            let vault = format!("vault-{i}");
            c.unlock(&vault, &k, &derived()).await.unwrap();
            let got = c
                .unwrap_key(&vault, &envelope, &Aad::EnvironmentKey(&env))
                .await
                .unwrap();
            assert_eq!(got.expose(), env_key.expose());
            assert!(c.is_unlocked(&vault).await.unwrap());
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let status = agent.client().await.status().await.unwrap();
    assert_eq!(status.vaults.len(), 16);
}

/// Runs the agent as an unprivileged user when we are root, so the kernel's non-dumpable
/// marking is visible: the files in `/proc/<pid>` of a non-dumpable process belong to root.
#[tokio::test]
async fn the_process_is_not_dumpable_and_has_no_core_limit() {
    let home = tempfile::tempdir().unwrap();
    let am_root = rustix::process::geteuid().is_root();
    let cmd = if am_root {
        std::os::unix::fs::chown(home.path(), Some(65534), Some(65534)).unwrap();
        let mut cmd = agent_command(home.path(), &[]);
        let inner = std::mem::replace(&mut cmd, Command::new("/usr/bin/setpriv"));
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        cmd.env_clear()
            .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    } else {
        agent_command(home.path(), &[])
    };
    let agent = Agent::spawn(cmd, home);
    let proc_dir = PathBuf::from(format!("/proc/{}", agent.pid()));
    let status = std::fs::read_to_string(proc_dir.join("status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let real_uid: u32 = uid_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_ne!(
        real_uid, 0,
        "the agent must run unprivileged for this check"
    );
    assert_eq!(
        std::fs::metadata(proc_dir.join("environ")).unwrap().uid(),
        0,
        "a dumpable process owns its /proc/<pid>/* files; a non-dumpable one does not"
    );
    let limits = std::fs::read_to_string(proc_dir.join("limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
}

#[test]
fn timeouts_above_the_defaults_are_refused_with_a_clear_message() {
    let cases = [
        (
            "KLEF_AGENT_IDLE_TIMEOUT",
            "2h",
            "KLEF_AGENT_IDLE_TIMEOUT=\"2h\" is above the maximum of 1h",
        ),
        (
            "KLEF_AGENT_MAX_LIFETIME",
            "9h",
            "KLEF_AGENT_MAX_LIFETIME=\"9h\" is above the maximum of 8h",
        ),
        ("KLEF_AGENT_IDLE_TIMEOUT", "0s", "must be longer than zero"),
        ("KLEF_AGENT_MAX_LIFETIME", "soon", "is not a duration"),
    ];
    for (var, value, message) in cases {
        let home = tempfile::tempdir().unwrap();
        // Without `--detached`, the launcher passes the agent's error on.
        for mut cmd in [
            agent_command(home.path(), &[(var, value)]),
            launcher_command(home.path(), &[(var, value)]),
        ] {
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{var}={value}: {stderr}");
            assert!(stderr.contains(message), "{var}={value}: {stderr}");
            assert_eq!(stderr.matches("klef-agent: error:").count(), 1, "{stderr}");
            assert!(out.stdout.is_empty());
            assert!(!home.path().join("run/agent.sock").exists());
        }
    }
}

#[tokio::test]
async fn ensure_running_starts_a_detached_agent_once() {
    let home = tempfile::tempdir().unwrap();
    let paths = AgentPaths::in_dir(home.path().join("run"));
    let mut client = ensure_running(&paths, Path::new(BIN)).await.unwrap();
    let pid = client.pid();
    let guard = KillOnDrop(pid);
    // setsid: the agent leads its own session.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let session: u32 = after_comm
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(session, pid);
    // Started through the launcher, which has exited: the agent is not this process's child.
    let parent = after_comm.split_whitespace().nth(1).unwrap();
    assert_ne!(parent, std::process::id().to_string());
    assert_eq!(client.status().await.unwrap().pid, pid);
    let again = ensure_running(&paths, Path::new(BIN)).await.unwrap();
    assert_eq!(again.pid(), pid, "a running agent is reused");
    client.stop().await.unwrap();
    drop(guard);
}

#[tokio::test]
async fn ensure_running_reports_why_the_agent_could_not_start() {
    let home = tempfile::tempdir().unwrap();
    let script = home.path().join("fake-agent");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'klef-agent: error: the sky is falling' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let paths = AgentPaths::in_dir(home.path().join("run"));
    match ensure_running(&paths, &script).await {
        Err(ClientError::StartFailed { message, .. }) => assert_eq!(message, "the sky is falling"),
        other => panic!("expected StartFailed, got {other:?}"),
    }
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.cast_signed()) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Another user cannot use the agent even when the directory and socket are opened up to
/// them: the agent checks the peer's uid on every connection.
#[tokio::test]
async fn other_users_are_refused() {
    let agent = Agent::start(&[]);
    if !rustix::process::geteuid().is_root() {
        // Without root we cannot act as another user; the uid comparison itself is covered by
        // the server's unit tests. Our own uid must still be served.
        assert_eq!(agent.client().await.pid(), agent.pid());
        return;
    }
    for (path, mode) in [
        (agent.home.path(), 0o711),
        (agent.paths.dir(), 0o711),
        (&agent.paths.socket(), 0o666),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let hello = hex(&frame(
        &encode(&Request::Hello {
            version: PROTOCOL_VERSION,
        })
        .unwrap(),
    ));
    let script = r#"
        use IO::Socket::UNIX; use Socket qw(SOCK_STREAM);
        # The agent may refuse and close before our hello is written: don't die of SIGPIPE.
        $SIG{PIPE} = 'IGNORE';
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $ARGV[0]) or die "connect: $!";
        print $s pack("H*", $ARGV[1]);
        my $buf = ''; while (sysread($s, my $chunk, 4096)) { $buf .= $chunk }
        print unpack("H*", $buf);
    "#;
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "perl",
            "-e",
            script,
        ])
        .arg(agent.paths.socket())
        .arg(&hello)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the connecting process failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = unhex(String::from_utf8(out.stdout).unwrap().trim());
    assert!(bytes.len() > 4, "no answer at all");
    match decode::<Response>(&bytes[4..]).unwrap() {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::PermissionDenied),
        other => panic!("another user got {other:?}"),
    }
    assert!(
        agent
            .log()
            .contains("refused a connection from another user")
    );
    assert_eq!(agent.client().await.pid(), agent.pid());
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The agent and `klef` share one profile-name rule (`klef_core::names`): a name `klef` refuses,
/// such as one with a `.`, the agent binary refuses too, before creating anything.
#[test]
fn a_profile_name_klef_refuses_is_refused_by_the_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_klef-agent"))
        .arg("--foreground")
        .env_clear()
        .env("HOME", tmp.path())
        .env("KLEF_HOME", tmp.path().join("klef"))
        .env("KLEF_PROFILE", "a.b")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid KLEF_PROFILE \"a.b\"") && err.contains("'-' and '_'"),
        "{err}"
    );
    assert!(!tmp.path().join("klef").join("run-a.b").exists());
}
