//! Crash safety: `kill -9` at random moments never leaves a half-written state.
//!
//! * `klef push` of a 10,000-line `.env`, killed 20 times at random delays between 0 and the
//!   measured duration of an uninterrupted push: the vault still opens, `klef list --json` shows
//!   all or none of the push's keys, and every listed value decrypts (`klef pull -o -`).
//! * `klef-server` (`SQLite`) killed while a client pushes through it, then restarted on the
//!   same file and port: all or none of the push's keys are there, and they decrypt.
//! * `klef pull -o FILE` killed 10 times: FILE holds the old content or the new, never a mix,
//!   and no temporary file is left next to it.
//!
//! Delays come from a seeded generator; the seed is printed, and `KLEF_CRASH_SEED=N` replays a
//! run.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use klef_e2e::{ACCOUNT_PASSWORD, PASSWORD, TestContext, bin};
use serde_json::Value;

/// Lines in the pushed `.env` files.
const LINES: usize = 10_000;

/// The most writes one `POST /v1/environments/{id}/secrets` accepts (`klef-server`'s
/// `MAX_WRITES`), so the largest push a server takes in one transaction.
const SERVER_LINES: usize = 1_000;

/// A small deterministic generator (`SplitMix64`), so a failing run can be replayed by seed.
struct Rng(u64);

impl Rng {
    /// Seeded from `KLEF_CRASH_SEED`, else from the clock; prints the seed either way.
    fn from_env(test: &str) -> Self {
        let seed = std::env::var("KLEF_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x5eed, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: seed {seed} (replay with KLEF_CRASH_SEED={seed})");
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration uniformly in `[lo, hi]`.
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros().max(1) as u64;
        lo + Duration::from_micros(self.next() % (span + 1))
    }
}

/// A dotenv file of `lines` keys `KEY_00000…` whose values carry `tag`.
fn env_file(lines: usize, tag: &str) -> String {
    use std::fmt::Write as _;
    (0..lines).fold(String::new(), |mut out, i| {
        let _ = writeln!(out, "KEY_{i:05}=\"{tag}-value-{i}-with some padding\"");
        out
    })
}

/// Starts `klef --password-stdin ARGS` with the test password on stdin and output discarded.
fn spawn_pw(ctx: &TestContext, args: &[&str]) -> Child {
    let mut cmd = ctx.command("klef");
    cmd.arg("--password-stdin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start klef");
    let mut stdin = child.stdin.take().expect("stdin");
    // A process killed before it reads its password makes this write fail; that is fine.
    let _ = writeln!(stdin, "{PASSWORD}");
    drop(stdin);
    child
}

/// Waits `delay`, then sends SIGKILL; returns whether the process was still running.
fn kill_after(mut child: Child, delay: Duration) -> bool {
    let deadline = Instant::now() + delay;
    // Poll rather than sleep the whole delay, so a process that finishes early is noticed.
    while Instant::now() < deadline {
        if child.try_wait().expect("poll child").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2).min(deadline - Instant::now()));
    }
    let running = child.try_wait().expect("poll child").is_none();
    // `Child::kill` is SIGKILL on Unix.
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// The names and versions `klef list --json` shows for `env`.
fn listed(ctx: &TestContext, env: &str) -> Vec<(String, i64)> {
    let run = ctx.run(["list", "--json", "-e", env]).success();
    let v: Value = serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("list --json is not JSON ({e}): {}", run.stdout()));
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_owned(),
                s["version"].as_i64().expect("version"),
            )
        })
        .collect()
}

/// What `klef pull -o -` prints for `env`, checked to be exactly the `lines` keys of
/// [`env_file`] with `tag` (in klef's own quoting).
fn pulled_reference(ctx: &TestContext, env: &str, lines: usize, tag: &str) -> String {
    let pulled = ctx
        .run_pw(["pull", "-o", "-", "-e", env])
        .success()
        .stdout();
    assert_eq!(
        pulled.lines().count(),
        lines,
        "{env}: wrong number of lines"
    );
    for (i, line) in pulled.lines().enumerate() {
        assert!(
            line.starts_with(&format!("KEY_{i:05}="))
                && line.contains(&format!("{tag}-value-{i}-with some padding")),
            "{env}: line {i} is not the pushed value: {line}"
        );
    }
    pulled
}

/// Asserts `env` holds all of the push's `lines` keys at version 1 with their values
/// (`reference`, a whole pull), or none, and that every listed value decrypts. Returns whether
/// the push landed.
#[track_caller]
fn assert_all_or_none(
    ctx: &TestContext,
    env: &str,
    reference: &str,
    lines: usize,
    what: &str,
) -> bool {
    let names = listed(ctx, env);
    assert!(
        names.is_empty() || names.len() == lines,
        "{what}: {} of {lines} keys in {env}: a push was half-written",
        names.len()
    );
    assert!(
        names.iter().all(|(_, v)| *v == 1),
        "{what}: a key of {env} has a version other than 1"
    );
    if names.is_empty() {
        // `klef list` opened the vault; there is no value to decrypt.
        return false;
    }
    let pulled = ctx
        .run_pw(["pull", "-o", "-", "-e", env])
        .success()
        .stdout();
    assert!(
        pulled == reference,
        "{what}: the values pulled from {env} are not the pushed ones"
    );
    true
}

#[test]
fn killed_push_writes_all_or_nothing() {
    let mut rng = Rng::from_env("killed_push_writes_all_or_nothing");
    let ctx = TestContext::new();
    ctx.init();
    let file = env_file(LINES, "pushed");
    std::fs::write(ctx.cwd.join(".env"), &file).expect("write .env");

    // The duration of an uninterrupted push bounds the kill delays.
    let start = Instant::now();
    ctx.run_pw(["push", "-e", "staging"]).success();
    let full = start.elapsed();
    let reference = pulled_reference(&ctx, "staging", LINES, "pushed");

    let (mut killed, mut landed) = (0, 0);
    for i in 0..20 {
        let env = format!("crash{i}");
        ctx.run_pw(["env", "create", &env]).success();
        let delay = rng.between(Duration::ZERO, full);
        let was_running = kill_after(spawn_pw(&ctx, &["push", "-e", &env]), delay);
        killed += usize::from(was_running);
        let what = format!("push killed after {delay:?}");
        landed += usize::from(assert_all_or_none(&ctx, &env, &reference, LINES, &what));
    }
    eprintln!(
        "killed_push_writes_all_or_nothing: 20 runs, {killed} killed mid-push, {landed} landed whole, {} left nothing (uninterrupted push {full:?})",
        20 - landed
    );
    assert!(killed > 0, "no push was killed while running");
}

/// A `klef-server` process that can be killed with SIGKILL and restarted on the same port and
/// `SQLite` file.
struct CrashableServer {
    child: Option<Child>,
    addr: String,
    dir: std::path::PathBuf,
}

impl CrashableServer {
    fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("create the server's directory");
        let mut s = Self {
            child: None,
            addr: "127.0.0.1:0".into(),
            dir: dir.to_path_buf(),
        };
        s.launch();
        s
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts the server on `self.addr` and waits for its readiness line, which names the
    /// port it bound.
    fn launch(&mut self) {
        let db = format!("sqlite://{}", self.dir.join("server.db").display());
        let mut cmd = Command::new(bin("klef-server"));
        klef_testkit::scrub_inherited(&mut cmd);
        cmd.args(["--listen", &self.addr, "--database-url", &db])
            .env("RUST_LOG", "info")
            .env("KLEF_HOME", &self.dir)
            .current_dir(&self.dir);
        let started = klef_testkit::spawn_until_ready(cmd, Duration::from_mins(1))
            .unwrap_or_else(|e| panic!("klef-server did not start on {}: {e}", self.addr));
        self.addr = started.addr().to_string();
        self.child = Some(started.child);
    }

    /// SIGKILL (`Child::kill`), and waits for the process to be gone.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for CrashableServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn server_killed_mid_push_keeps_all_or_nothing() {
    let mut rng = Rng::from_env("server_killed_mid_push_keeps_all_or_nothing");
    let ctx = TestContext::new();
    let mut server = CrashableServer::start(&ctx.root().join("server"));
    let url = server.url();
    let mut signup = ctx.command("klef");
    signup
        .args([
            "--password-stdin",
            "signup",
            "--server",
            &url,
            "--email",
            "crash@example.com",
        ])
        .env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    klef_e2e::run_with_stdin(signup, Some(format!("{PASSWORD}\n").as_bytes())).success();
    ctx.init();
    let file = env_file(SERVER_LINES, "remote");
    std::fs::write(ctx.cwd.join(".env"), &file).expect("write .env");

    let start = Instant::now();
    ctx.run_pw(["push", "-e", "staging"]).success();
    let full = start.elapsed();
    let reference = pulled_reference(&ctx, "staging", SERVER_LINES, "remote");

    let runs = 10;
    let (mut failed, mut landed) = (0, 0);
    for i in 0..runs {
        let env = format!("crash{i}");
        ctx.run_pw(["env", "create", &env]).success();
        let mut push = ctx.command("klef");
        push.args(["--password-stdin", "push", "-e", &env])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = push.spawn().expect("start klef push");
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = writeln!(stdin, "{PASSWORD}");
        drop(stdin);
        // Kill the server, not the client, at a random moment of the push.
        let delay = rng.between(Duration::ZERO, full);
        std::thread::sleep(delay);
        server.kill();
        let status = child.wait().expect("wait for klef push");
        failed += usize::from(!status.success());
        server.launch();
        assert_eq!(server.url(), url, "the server came back on another port");
        let what = format!("server killed {delay:?} into a push");
        landed += usize::from(assert_all_or_none(
            &ctx,
            &env,
            &reference,
            SERVER_LINES,
            &what,
        ));
    }
    eprintln!(
        "server_killed_mid_push_keeps_all_or_nothing: {runs} server kills, {failed} pushes failed, {landed} landed whole, {} left nothing (uninterrupted push {full:?})",
        runs - landed
    );
}

#[test]
fn killed_pull_leaves_old_or_new_file_and_no_temp_file() {
    let mut rng = Rng::from_env("killed_pull_leaves_old_or_new_file_and_no_temp_file");
    let ctx = TestContext::new();
    ctx.init();
    std::fs::write(ctx.cwd.join(".env"), env_file(LINES, "pulled")).expect("write .env");
    ctx.run_pw(["push"]).success();
    let new = ctx.run_pw(["pull", "-o", "-"]).success().stdout();
    let out_dir = ctx.cwd.join("out");
    std::fs::create_dir_all(&out_dir).expect("create out/");
    let target = out_dir.join("app.env");
    let old = "OLD=\"content before the pull\"\n";

    let start = Instant::now();
    std::fs::write(&target, old).expect("write the old file");
    // --force: the old file's name is not in the environment (a plain pull refuses to lose it).
    ctx.run_pw(["pull", "-o", "out/app.env", "--force"])
        .success();
    let full = start.elapsed();
    assert!(
        std::fs::read_to_string(&target).expect("read") == new,
        "an uninterrupted pull did not write what `pull -o -` prints"
    );

    let (mut killed, mut replaced) = (0, 0);
    for _ in 0..10 {
        std::fs::write(&target, old).expect("write the old file");
        // The file is written at the end of a pull, whose duration varies with the machine's
        // load: aim the kills around the end, from half to one and a half uninterrupted pulls.
        let delay = rng.between(full / 2, full * 3 / 2);
        killed += usize::from(kill_after(
            spawn_pw(&ctx, &["pull", "-o", "out/app.env", "--force"]),
            delay,
        ));
        let content = std::fs::read_to_string(&target).expect("the target still exists");
        assert!(
            content == old || content == new,
            "pull killed after {delay:?} left a mixed file ({} bytes)",
            content.len()
        );
        replaced += usize::from(content == new);
        let names: Vec<String> = std::fs::read_dir(&out_dir)
            .expect("list out/")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["app.env"],
            "pull killed after {delay:?} left files behind"
        );
    }
    eprintln!(
        "killed_pull_leaves_old_or_new_file_and_no_temp_file: 10 runs, {killed} killed mid-pull, {replaced} replaced the file (uninterrupted pull {full:?})"
    );
    assert!(killed > 0, "no pull was killed while running");
}
