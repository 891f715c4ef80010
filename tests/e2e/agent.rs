//! The agent through `klef`: unlock once, lock, stop, expiry, fallback to the password when the
//! agent is missing, killed, broken or of another protocol version, hostile frames, concurrency,
//! status output, refused timeouts and process hardening.
//!
//! Every test has its own `KLEF_HOME` and therefore its own agent; an [`AgentSession`] stops it
//! when the test ends, failed or not (`klef agent stop`, then SIGKILL for anything left).

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use klef_e2e::{PASSWORD, Run, TestContext, bin, run_with_stdin};
use serde_json::Value;

const VALUE: &str = "s3cr3t-agent-value";

/// A test context with a vault holding `API_KEY` and the agent enabled. The vault is made with
/// `KLEF_NO_AGENT=1`, so no agent runs until the test starts one.
struct AgentSession {
    ctx: TestContext,
    /// Agent pids seen during the test, killed on drop if still alive.
    pids: Mutex<Vec<u32>>,
}

impl AgentSession {
    fn new() -> Self {
        let mut ctx = TestContext::new();
        ctx.init();
        ctx.run_pw(["set", "API_KEY", VALUE]).success();
        ctx.remove_env("KLEF_NO_AGENT");
        // Tests run without a terminal, where keyed commands start no agent unless asked.
        ctx.set_env("KLEF_AGENT_AUTOSTART", "1");
        let s = Self {
            ctx,
            pids: Mutex::new(Vec::new()),
        };
        assert!(
            !s.runtime_dir().exists(),
            "no agent may exist before the test starts one"
        );
        s
    }

    fn runtime_dir(&self) -> PathBuf {
        self.ctx.klef_home().join("run")
    }

    fn socket(&self) -> PathBuf {
        self.runtime_dir().join("agent.sock")
    }

    /// `klef unlock` with the password on stdin; returns the agent's pid.
    fn unlock(&self) -> u32 {
        self.ctx.run_pw(["unlock"]).success();
        let pid = self.status()["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .expect("a running agent after unlock has a pid");
        self.track(pid);
        pid
    }

    fn track(&self, pid: u32) {
        self.pids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(pid);
    }

    /// `klef agent status --json`, parsed.
    fn status(&self) -> Value {
        let out = self.ctx.run(["agent", "status", "--json"]).success();
        let v: Value = serde_json::from_str(&out.stdout())
            .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", out.stdout()));
        if let Some(pid) = v["pid"].as_u64().and_then(|p| u32::try_from(p).ok()) {
            self.track(pid);
        }
        v
    }

    /// Whether this vault is unlocked according to `klef agent status`.
    fn unlocked(&self) -> bool {
        let v = self.status();
        let vaults = v["vaults"].as_array().expect("vaults is an array");
        vaults
            .iter()
            .find(|e| e["current"] == Value::Bool(true))
            .is_some_and(|e| e["unlocked"] == Value::Bool(true))
    }

    /// `klef get API_KEY --plain` with stdin closed and no password anywhere.
    fn get(&self) -> Run {
        self.ctx.run(["get", "API_KEY", "--plain"])
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.runtime_dir().join("agent.log")).unwrap_or_default()
    }
}

impl Drop for AgentSession {
    fn drop(&mut self) {
        let mut stop = self.ctx.klef(["agent", "stop"]);
        stop.env_remove("KLEF_NO_AGENT");
        let _ = run_with_stdin(stop, None);
        let mut pids = self
            .pids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Ok(text) = std::fs::read_to_string(self.runtime_dir().join("agent.lock"))
            && let Ok(pid) = text.trim().parse()
        {
            pids.push(pid);
        }
        for pid in pids {
            kill_agent(pid);
        }
    }
}

/// SIGKILLs `pid` if it is still a running `klef-agent`.
fn kill_agent(pid: u32) {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if alive(pid) && String::from_utf8_lossy(&cmdline).contains("klef-agent") {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned));
        !matches!(state.as_deref(), Some("Z" | "X"))
    })
}

/// Polls `cond` every 50 ms for at most 10 s.
#[track_caller]
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill_9(pid: u32) {
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    eventually("the killed agent to be gone", || !alive(pid));
}

#[test]
fn unlock_once_then_twenty_keyed_commands_need_no_password() {
    let s = AgentSession::new();
    let out = s.ctx.run_pw(["unlock"]).success();
    assert!(out.stderr().contains("unlocked"), "{}", out.stderr());
    for i in 0..5 {
        assert_eq!(s.get().success().stdout(), VALUE);
        s.ctx
            .run(["set", &format!("K{i}"), &format!("v{i}")])
            .success();
        let list = s.ctx.run(["list", "--reveal"]).success().stdout();
        assert!(
            list.contains(VALUE) && list.contains(&format!("v{i}")),
            "{list}"
        );
        let run = s
            .ctx
            .run(["run", "--", "sh", "-c", "printf %s \"$API_KEY\""])
            .success();
        assert_eq!(run.stdout(), VALUE);
    }
    assert_eq!(s.ctx.run(["get", "K4", "--plain"]).success().stdout(), "v4");

    // Unlocking again asks nothing: stdin is closed and there is no password.
    let again = s.ctx.run(["unlock"]).success();
    assert!(
        again.stderr().contains("already unlocked"),
        "{}",
        again.stderr()
    );
}

#[test]
fn lock_wipes_the_keys_and_the_agent_keeps_running() {
    let s = AgentSession::new();
    let pid = s.unlock();
    assert!(s.unlocked());

    s.ctx.run(["lock"]).success().stderr_has("wiped");
    assert!(alive(pid), "the agent keeps running after klef lock");
    assert!(!s.unlocked());
    assert_eq!(s.status()["pid"], Value::from(pid));
    s.get()
        .code_is(3)
        .clean_error(&[VALUE, PASSWORD])
        .stderr_has("locked");
    let out = s.ctx.run_pw(["get", "API_KEY", "--plain"]).success();
    assert_eq!(out.stdout(), VALUE);

    // The password unlock handed the key back; `klef agent lock` is the same as `klef lock`.
    assert!(s.unlocked());
    s.ctx.run(["agent", "lock"]).success();
    assert!(!s.unlocked());
    s.get().code_is(3);

    // With no agent running, locking succeeds with a note.
    s.ctx.run(["agent", "stop"]).success();
    s.ctx.run(["lock"]).success().stderr_has("not running");
}

/// `klef run` replaces itself with the command (decision 0010); an agent it starts must not
/// become that command's child, nor leave a launcher behind as one.
#[test]
fn the_agent_klef_run_starts_is_nobodys_child() {
    let s = AgentSession::new();
    // `read` is a shell builtin: the shell lists its children without starting one.
    let out = s
        .ctx
        .run_pw([
            "run",
            "--",
            "sh",
            "-c",
            "read -r kids < /proc/$$/task/$$/children; echo \"children=[$kids]\"",
        ])
        .success();
    let pid = s.status()["pid"]
        .as_u64()
        .expect("klef run started the agent");
    assert_eq!(out.stdout().trim(), "children=[]", "agent pid {pid}");
    assert!(s.unlocked(), "the agent klef run started holds the key");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("agent stat");
    // Fields after the command name: state, ppid.
    let parent = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(1))
        .expect("ppid in /proc/PID/stat");
    assert_ne!(
        parent,
        std::process::id().to_string(),
        "the agent is the test's child"
    );
}

#[test]
fn agent_stop_ends_the_process_and_removes_the_socket() {
    let s = AgentSession::new();
    let pid = s.unlock();
    assert!(s.socket().exists());
    assert!(alive(pid));

    s.ctx.run(["agent", "stop"]).success().stderr_has("stopped");
    // `klef agent stop` returns only once both are gone: no polling here.
    assert!(
        !alive(pid),
        "agent pid {pid} still alive after klef agent stop"
    );
    assert!(!s.socket().exists(), "the socket outlived klef agent stop");

    s.ctx
        .run(["agent", "stop"])
        .success()
        .stderr_has("not running");
    assert_eq!(s.status()["running"], Value::Bool(false));
    s.get().code_is(3);

    // start is idempotent.
    s.ctx
        .run(["agent", "start"])
        .success()
        .stderr_has("started");
    let first = s.status()["pid"].clone();
    s.ctx
        .run(["agent", "start"])
        .success()
        .stderr_has("already running");
    assert_eq!(s.status()["pid"], first);
}

#[test]
fn idle_expiry_wipes_keys_with_no_request_arriving() {
    let mut s = AgentSession::new();
    s.ctx.set_env("KLEF_AGENT_IDLE_TIMEOUT", "2s");
    s.unlock();
    let v = s.status();
    assert_eq!(v["idle_timeout_secs"], Value::from(2));
    assert_eq!(v["locked"], Value::Bool(false));

    // No request at all while waiting: only the agent's log is read.
    eventually("the idle timer to wipe the key", || {
        s.log().contains("key expired and wiped")
    });
    assert!(!s.unlocked());
    assert_eq!(s.status()["locked"], Value::Bool(true));
    s.get().code_is(3);
}

#[test]
fn hard_cap_wipes_keys_despite_a_command_every_half_second() {
    let mut s = AgentSession::new();
    s.ctx.set_env("KLEF_AGENT_MAX_LIFETIME", "3s");
    let t0 = Instant::now();
    s.unlock();
    assert_eq!(s.status()["max_lifetime_secs"], Value::from(3));

    let mut successes = 0;
    let failed_at = loop {
        let started = t0.elapsed();
        let out = s.get();
        match out.code() {
            0 => {
                assert_eq!(out.stdout(), VALUE);
                successes += 1;
            }
            3 => break started,
            _ => panic!("unexpected result: {}", out.stderr()),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "the hard cap never wiped the key"
        );
        let next = Duration::from_millis(500) * (successes + 1);
        if let Some(wait) = next.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
    };
    assert!(
        successes >= 2,
        "steady use should work until the cap ({successes} successes)"
    );
    assert!(
        failed_at >= Duration::from_secs(2),
        "wiped too early: {failed_at:?}"
    );
    assert!(!s.unlocked());
}

#[test]
fn no_agent_mode_starts_nothing_and_creates_no_socket() {
    let mut s = AgentSession::new();
    s.ctx.set_env("KLEF_NO_AGENT", "1");
    let out = s.ctx.run_pw(["get", "API_KEY", "--plain"]).success();
    assert_eq!(out.stdout(), VALUE);
    s.ctx.run_pw(["set", "OTHER", "x"]).success();
    s.ctx
        .run_pw(["unlock"])
        .code_is(1)
        .clean_error(&[PASSWORD])
        .stderr_has("no agent to unlock")
        .stderr_has("KLEF_NO_AGENT");
    s.ctx
        .run(["agent", "start"])
        .code_is(1)
        .stderr_has("KLEF_NO_AGENT");
    s.get().code_is(3);
    let status = s.status();
    assert_eq!(status["running"], Value::Bool(false));
    assert_eq!(status["disabled"], Value::Bool(true));
    assert!(
        !s.runtime_dir().exists(),
        "KLEF_NO_AGENT=1 must not create {}",
        s.runtime_dir().display()
    );
    assert!(
        agent_processes_for(&s.runtime_dir()).is_empty(),
        "an agent runs for this test"
    );
}

/// Pids of `klef-agent` processes started for `runtime_dir`.
fn agent_processes_for(runtime_dir: &Path) -> Vec<u32> {
    let needle = runtime_dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("klef-agent") && cmdline.contains(&needle) && alive(*pid)
        })
        .collect()
}

/// Writes `bytes` to a fresh connection, optionally half-closes it, and reads until the agent
/// closes it (bounded by a read timeout).
fn hostile(socket: &Path, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut s = UnixStream::connect(socket).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The agent may close before reading everything (oversized frames): ignore write errors.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

#[test]
fn garbage_truncated_and_oversized_frames_leave_the_agent_serving() {
    let s = AgentSession::new();
    let pid = s.unlock();
    let socket = s.socket();

    // A client that connects and says nothing must not block anyone.
    let _silent = UnixStream::connect(&socket).expect("connect");

    // Garbage body where the handshake should be.
    let answer = hostile(&socket, &[5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff], false);
    assert!(!answer.is_empty(), "garbage gets an error answer");
    // A valid hello, then garbage.
    let mut bytes = vec![2, 0, 0, 0, 0, 1];
    bytes.extend_from_slice(&[3, 0, 0, 0, 0xee, 0xee, 0xee]);
    hostile(&socket, &bytes, false);
    // Truncated: the length promises 100 bytes, 3 arrive, then the client stops writing.
    hostile(&socket, &[100, 0, 0, 0, 1, 2, 3], true);
    // Half a length prefix.
    hostile(&socket, &[7, 0], true);
    // Oversized: 128 MiB announced (the limit is 64 MiB), refused from the prefix alone.
    let answer = hostile(&socket, &(128u32 << 20).to_le_bytes(), false);
    assert!(
        !answer.is_empty(),
        "an oversized frame gets an error answer"
    );
    // Oversized for real: 64 MiB + 1 announced, 1 MiB of zeros sent after the prefix.
    let mut big = ((64u32 << 20) + 1).to_le_bytes().to_vec();
    big.resize(4 + (1 << 20), 0);
    hostile(&socket, &big, true);
    // Random bytes with no framing at all.
    hostile(&socket, b"GET / HTTP/1.1\r\nHost: klef\r\n\r\n", true);

    assert!(alive(pid));
    assert_eq!(s.get().success().stdout(), VALUE);
    assert_eq!(s.status()["pid"], Value::from(pid));
    assert!(s.unlocked());
}

#[test]
fn a_killed_agent_falls_back_to_the_password() {
    let s = AgentSession::new();
    let pid = s.unlock();
    assert_eq!(s.get().success().stdout(), VALUE);
    kill_9(pid);
    assert!(s.socket().exists(), "kill -9 leaves the socket file behind");

    // No password source: a clean "locked" error, no panic, no note about a broken agent.
    s.get()
        .code_is(3)
        .clean_error(&[VALUE, PASSWORD])
        .stderr_has("locked");
    // With the password the command succeeds silently…
    let out = s.ctx.run_pw(["get", "API_KEY", "--plain"]).success();
    assert_eq!(out.stdout(), VALUE);
    assert!(!out.stderr().contains("warning"), "{}", out.stderr());
    // …and hands the key to a fresh agent, which replaced the stale socket.
    assert_eq!(s.get().success().stdout(), VALUE);
    let new_pid = s.status()["pid"].as_u64().expect("a new agent");
    assert_ne!(new_pid, u64::from(pid));
}

/// A process that stands in for an agent of another version or a broken one: it answers every
/// connection on `socket` with `reply` after reading the client's first bytes.
struct FakeAgent {
    socket: PathBuf,
    stop: std::sync::Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeAgent {
    fn start(runtime_dir: &Path, reply: Vec<u8>) -> Self {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(runtime_dir)
            .expect("create the runtime dir");
        std::fs::set_permissions(runtime_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = runtime_dir.join("agent.sock");
        let listener = UnixListener::bind(&socket).expect("bind the fake agent");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut hello = [0u8; 16];
                let _ = conn.read(&mut hello);
                let _ = conn.write_all(&reply);
            }
        });
        Self {
            socket,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A frame holding postcard's `Response::Hello { version, pid }` (variant 0, then varints).
fn hello_frame(version: u8, pid: u32) -> Vec<u8> {
    let mut body = vec![0, version];
    let mut p = pid;
    loop {
        let byte = (p & 0x7f) as u8;
        p >>= 7;
        if p == 0 {
            body.push(byte);
            break;
        }
        body.push(byte | 0x80);
    }
    let mut frame = u32::try_from(body.len()).unwrap().to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Kills and reaps a stand-in process on drop.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_mismatched_or_broken_agent_falls_back_to_the_password_with_a_note() {
    let s = AgentSession::new();
    // The "old agent" reports the pid of a harmless process of ours.
    let sleeper = Sleeper(
        Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep"),
    );
    {
        let _fake = FakeAgent::start(&s.runtime_dir(), hello_frame(99, sleeper.0.id()));
        let out = s.ctx.run_pw(["get", "API_KEY", "--plain"]).success();
        assert_eq!(out.stdout(), VALUE);
        let err = out.stderr();
        assert_eq!(err.lines().count(), 1, "one note line: {err}");
        assert!(err.contains("protocol version 99"), "{err}");
        assert!(err.contains("klef agent stop; klef agent start"), "{err}");

        let status = s.status();
        assert_eq!(status["running"], Value::Bool(true));
        assert_eq!(status["healthy"], Value::Bool(false));
        assert!(
            status["problem"]
                .as_str()
                .is_some_and(|p| p.contains("klef agent stop; klef agent start"))
        );
        // Without a password there is still no way in: exit 3, after the note.
        s.get().code_is(3).stderr_has("protocol version 99");
    }
    {
        let _fake = FakeAgent::start(&s.runtime_dir(), vec![3, 0, 0, 0, 0xde, 0xad, 0xbe]);
        let out = s.ctx.run_pw(["get", "API_KEY", "--plain"]).success();
        assert_eq!(out.stdout(), VALUE);
        let err = out.stderr();
        assert_eq!(err.lines().count(), 1, "one note line: {err}");
        assert!(err.contains("not working"), "{err}");
        assert!(err.contains("klef agent stop; klef agent start"), "{err}");
    }
    drop(sleeper);
}

#[test]
fn sixteen_concurrent_clis_are_all_served() {
    let s = AgentSession::new();
    let pid = s.unlock();
    let results: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16).map(|_| scope.spawn(|| s.get())).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a get thread panicked"))
            .collect()
    });
    for r in results {
        assert_eq!(r.success().stdout(), VALUE);
    }
    assert_eq!(s.status()["pid"], Value::from(pid));
}

#[test]
fn status_reports_stable_json_fields_and_a_table() {
    let s = AgentSession::new();
    let v = s.status();
    assert_eq!(v["running"], Value::Bool(false));
    assert_eq!(v["healthy"], Value::Bool(false));
    assert_eq!(v["pid"], Value::Null);
    assert_eq!(v["locked"], Value::Bool(true));
    assert_eq!(v["disabled"], Value::Bool(false));
    assert_eq!(
        v["socket"].as_str().map(PathBuf::from),
        Some(s.socket()),
        "{v}"
    );
    let vaults = v["vaults"].as_array().unwrap();
    assert_eq!(vaults.len(), 1, "{v}");
    assert_eq!(vaults[0]["current"], Value::Bool(true));
    assert_eq!(vaults[0]["unlocked"], Value::Bool(false));
    assert_eq!(vaults[0]["idle_left_secs"], Value::Null);
    let human = s.ctx.run(["agent", "status"]).success().stdout();
    assert!(human.contains("not running"), "{human}");

    let pid = s.unlock();
    let v = s.status();
    assert_eq!(v["running"], Value::Bool(true));
    assert_eq!(v["healthy"], Value::Bool(true));
    assert_eq!(v["problem"], Value::Null);
    assert_eq!(v["pid"], Value::from(pid));
    assert_eq!(v["version"], Value::from(env!("CARGO_PKG_VERSION")));
    assert!(v["protocol"].as_u64().is_some_and(|p| p >= 1), "{v}");
    assert_eq!(v["idle_timeout_secs"], Value::from(3600));
    assert_eq!(v["max_lifetime_secs"], Value::from(8 * 3600));
    assert_eq!(v["locked"], Value::Bool(false));
    let vault = &v["vaults"][0];
    assert_eq!(vault["current"], Value::Bool(true));
    assert_eq!(vault["unlocked"], Value::Bool(true));
    let idle = vault["idle_left_secs"].as_u64().unwrap();
    let cap = vault["hard_cap_left_secs"].as_u64().unwrap();
    assert!((3500..=3600).contains(&idle), "{v}");
    assert!((8 * 3600 - 100..=8 * 3600).contains(&cap), "{v}");
    assert!(vault["vault"].as_str().is_some_and(|id| !id.is_empty()));

    let human = s.ctx.run(["agent", "status"]).success().stdout();
    assert!(human.contains(&format!("running (pid {pid}")), "{human}");
    assert!(
        human.contains("(this vault)") && human.contains("unlocked"),
        "{human}"
    );
    assert!(human.contains("HARD CAP LEFT"), "{human}");
}

#[test]
fn timeouts_above_the_defaults_are_refused_with_a_clear_message() {
    let mut s = AgentSession::new();
    s.ctx.set_env("KLEF_AGENT_IDLE_TIMEOUT", "2h");
    s.ctx
        .run(["agent", "start"])
        .clean_error(&[])
        .stderr_has("KLEF_AGENT_IDLE_TIMEOUT")
        .stderr_has("timeouts can only be shortened");
    assert!(!s.socket().exists());

    // A keyed command falls back to the password with a note naming the variable.
    let out = s.ctx.run_pw(["get", "API_KEY", "--plain"]).success();
    assert_eq!(out.stdout(), VALUE);
    assert!(
        out.stderr().contains("KLEF_AGENT_IDLE_TIMEOUT")
            && out.stderr().contains("timeouts can only be shortened"),
        "{}",
        out.stderr()
    );

    s.ctx.remove_env("KLEF_AGENT_IDLE_TIMEOUT");
    s.ctx.set_env("KLEF_AGENT_MAX_LIFETIME", "9h");
    s.ctx
        .run_pw(["unlock"])
        .clean_error(&[PASSWORD])
        .stderr_has("KLEF_AGENT_MAX_LIFETIME")
        .stderr_has("8h");
    assert!(!s.socket().exists());
    assert_eq!(s.status()["running"], Value::Bool(false));
}

/// A `klef` command as uid/gid 65534 (through `setpriv`) with the context's environment.
fn as_nobody(ctx: &TestContext, home: &Path, args: &[&str]) -> Command {
    let inner = ctx.klef(args);
    let mut cmd = Command::new("/usr/bin/setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin("klef"))
        .args(args)
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("KLEF_HOME", home)
        .env_remove("KLEF_NO_AGENT")
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/");
    cmd
}

#[test]
fn the_agent_is_not_dumpable_and_has_no_core_limit() {
    let s = AgentSession::new();
    // As root the /proc files of every process we own belong to root anyway, so the agent runs
    // as an unprivileged user there: a non-dumpable process's /proc files belong to root.
    let am_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let nobody_home = s.ctx.root().join("nobody-home");
    let pid = if am_root {
        std::fs::set_permissions(s.ctx.root(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::create_dir(&nobody_home).unwrap();
        std::os::unix::fs::chown(&nobody_home, Some(65534), Some(65534)).unwrap();
        let start = run_with_stdin(as_nobody(&s.ctx, &nobody_home, &["agent", "start"]), None);
        let start = start.success();
        let status = run_with_stdin(
            as_nobody(&s.ctx, &nobody_home, &["agent", "status", "--json"]),
            None,
        )
        .success();
        let v: Value = serde_json::from_str(&status.stdout()).unwrap();
        drop(start);
        u32::try_from(v["pid"].as_u64().expect("a pid")).unwrap()
    } else {
        s.ctx.run(["agent", "start"]).success();
        u32::try_from(s.status()["pid"].as_u64().expect("a pid")).unwrap()
    };
    s.track(pid);
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let result = std::panic::catch_unwind(|| {
        let status = std::fs::read_to_string(proc_dir.join("status")).unwrap();
        let real_uid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse().ok())
            .unwrap();
        assert_ne!(real_uid, 0, "the check needs an unprivileged agent");
        assert_eq!(
            std::fs::metadata(proc_dir.join("environ")).unwrap().uid(),
            0,
            "a dumpable process owns its /proc/<pid> files; a non-dumpable one does not"
        );
        let limits = std::fs::read_to_string(proc_dir.join("limits")).unwrap();
        let core = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .unwrap();
        let fields: Vec<&str> = core.split_whitespace().collect();
        assert_eq!(&fields[4..6], ["0", "0"], "{core}");
    });
    if am_root {
        let _ = run_with_stdin(as_nobody(&s.ctx, &nobody_home, &["agent", "stop"]), None);
        kill_agent(pid);
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// `klef init` creates the vault with a password just typed, so it unlocks the session as
/// `klef unlock` would: the next keyed command needs no password.
#[test]
fn init_unlocks_the_session() {
    struct StopAgent<'a>(&'a TestContext);
    impl Drop for StopAgent<'_> {
        fn drop(&mut self) {
            let _ = run_with_stdin(self.0.klef(["agent", "stop"]), None);
        }
    }
    let mut ctx = TestContext::new();
    ctx.remove_env("KLEF_NO_AGENT");
    ctx.set_env("KLEF_AGENT_AUTOSTART", "1");
    let _stop = StopAgent(&ctx);
    ctx.init();
    ctx.run(["set", "FIRST", "no password asked"]).success();
    assert_eq!(
        ctx.run(["get", "FIRST", "--plain"]).success().stdout(),
        "no password asked"
    );
    ctx.run(["agent", "stop"]).success();
    ctx.run(["get", "FIRST"]).code_is(3);
}
