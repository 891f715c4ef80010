//! Where credentials may go (issue #21, DESIGN §9.4), through the real binaries: `KLEF_TOKEN`
//! is never sent to a server that only a `.klef` of the working tree names; plain `http://` is
//! refused beyond loopback unless `KLEF_ALLOW_HTTP=1`; a `.klef` another user owns is ignored.

use std::io::Read as _;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::time::Duration;

use klef_e2e::{Run, Server, TestContext};
use serde_json::Value;

/// An owner on a real server with `DB` in production and a read key for it.
fn owner_and_key() -> (TestContext, String, String) {
    let mut owner = TestContext::new();
    owner.server = Some(Server::sqlite(&owner.root().join("server")));
    let url = owner.server.as_ref().expect("server").url.clone();
    owner.signup(&url, "owner@example.com");
    owner.init();
    owner
        .run_pw(["set", "DB", "prod-value", "-e", "production"])
        .success();
    let key = owner
        .run_pw([
            "keys",
            "create",
            "--type",
            "system",
            "--label",
            "ci",
            "--scope",
            "my-app:production",
            "--permission",
            "read",
        ])
        .success()
        .stdout()
        .trim()
        .to_owned();
    assert!(key.starts_with("klef_sys_"), "{key}");
    (owner, url, key)
}

/// Writes into `ctx`'s directory the owner's `.klef` with its server replaced by `server`.
fn klef_naming(owner: &TestContext, ctx: &TestContext, server: &str) {
    let text = std::fs::read_to_string(owner.cwd().join(".klef")).expect("owner's .klef");
    let mut file: Value = serde_json::from_str(&text).expect(".klef is JSON");
    file["server"] = Value::String(server.to_owned());
    std::fs::write(ctx.cwd().join(".klef"), file.to_string()).expect("write .klef");
}

/// Everything a listener received since it was opened, without waiting for more.
fn received(listener: &TcpListener) -> Vec<u8> {
    listener.set_nonblocking(true).expect("nonblocking");
    let mut all = Vec::new();
    while let Ok((mut stream, _)) = listener.accept() {
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        all.extend(buf);
        all.extend(b"<connection>");
    }
    all
}

#[test]
fn an_api_key_never_goes_to_a_server_only_a_klef_file_names() {
    let (owner, url, key) = owner_and_key();
    // A repository cloned from someone who runs their own "server".
    let decoy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let decoy_url = format!("http://{}", decoy.local_addr().expect("addr"));
    let mut ci = TestContext::new();
    ci.set_env("KLEF_TOKEN", &key);
    klef_naming(&owner, &ci, &decoy_url);

    ci.run(["get", "DB", "-e", "production"])
        .code_is(3)
        .stderr_has(&format!("KLEF_TOKEN is not sent to {decoy_url}"))
        .stderr_has(".klef names")
        .stderr_has("KLEF_SERVER=")
        .clean_error(&[&key]);
    ci.run(["run", "-e", "production", "--", "true"])
        .code_is(3)
        .clean_error(&[&key]);
    ci.run(["whoami"]).code_is(3).clean_error(&[&key]);
    assert!(
        received(&decoy).is_empty(),
        "the decoy server named by .klef was contacted"
    );

    // The user's own choice of server wins; a .klef naming another one is then an error
    // naming both, before anything is sent to either.
    ci.set_env("KLEF_SERVER", &url);
    fails_with(ci.run(["get", "DB", "-e", "production"]), &decoy_url).clean_error(&[&key]);
    // The same .klef naming the server the user chose works.
    klef_naming(&owner, &ci, &url);
    let value = ci.run(["get", "DB", "-e", "production"]).success().stdout();
    assert_eq!(value.trim_end(), "prod-value");
    assert!(received(&decoy).is_empty(), "the decoy was contacted later");
}

#[test]
fn an_api_key_goes_to_the_server_of_the_users_own_session() {
    // The owner's .klef names the server the owner is signed in to: the user's own config says
    // the same, so KLEF_TOKEN may go there without KLEF_SERVER.
    let (mut owner, url, key) = owner_and_key();
    owner.set_env("KLEF_TOKEN", &key);
    let value = owner
        .run(["get", "DB", "-e", "production"])
        .success()
        .stdout();
    assert_eq!(value.trim_end(), "prod-value");
    // The same user in a checkout whose .klef names another server: refused, naming both.
    let decoy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let decoy_url = format!("http://{}", decoy.local_addr().expect("addr"));
    let clone = owner.cwd().join("clone");
    std::fs::create_dir(&clone).expect("mkdir");
    let text = std::fs::read_to_string(owner.cwd().join(".klef")).expect("owner's .klef");
    let mut file: Value = serde_json::from_str(&text).expect(".klef is JSON");
    file["server"] = Value::String(decoy_url.clone());
    std::fs::write(clone.join(".klef"), file.to_string()).expect("write .klef");
    let mut cmd = owner.klef(["get", "DB", "-e", "production"]);
    cmd.current_dir(&clone);
    klef_e2e::run_with_stdin(cmd, None)
        .code_is(3)
        .stderr_has(&format!("KLEF_TOKEN is not sent to {decoy_url}"))
        .stderr_has(&format!("you are signed in to {url}"))
        .stderr_has(&format!("KLEF_SERVER={decoy_url}"))
        .clean_error(&[&key]);
    assert!(received(&decoy).is_empty(), "the decoy was contacted");
}

#[test]
fn a_session_token_goes_only_to_its_own_server() {
    // Signed in to one server, working in a checkout whose .klef names another: whatever klef
    // then does, the session token is not sent there.
    let (mut owner, _url, _key) = owner_and_key();
    owner.set_env("KLEF_TIMEOUT", "1");
    let decoy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let decoy_url = format!("http://{}", decoy.local_addr().expect("addr"));
    let clone = owner.cwd().join("clone");
    std::fs::create_dir(&clone).expect("mkdir");
    let text = std::fs::read_to_string(owner.cwd().join(".klef")).expect("owner's .klef");
    let mut file: Value = serde_json::from_str(&text).expect(".klef is JSON");
    file["server"] = Value::String(decoy_url);
    std::fs::write(clone.join(".klef"), file.to_string()).expect("write .klef");
    // (`whoami` answers from the local session; `list` and `get` need the server.)
    for args in [&["list"][..], &["whoami"], &["get", "DB"]] {
        let mut cmd = owner.klef(args);
        cmd.current_dir(&clone);
        let run = klef_e2e::run_with_stdin(cmd, None);
        if args[0] != "whoami" {
            assert_ne!(run.code(), 0, "{args:?}: {}", run.stderr());
        }
    }
    let seen = String::from_utf8_lossy(&received(&decoy)).to_ascii_lowercase();
    assert!(
        !seen.contains("authorization") && !seen.contains("klef_sess_"),
        "a credential went to the server only a .klef names: {seen}"
    );
}

#[test]
fn plain_http_is_refused_beyond_loopback_unless_allowed() {
    let mut ctx = TestContext::new();
    ctx.set_env("KLEF_ACCOUNT_PASSWORD", "account password 1");
    ctx.set_env("KLEF_TIMEOUT", "1");
    let refused = ctx.run([
        "login",
        "--server",
        "http://192.0.2.1:9",
        "--email",
        "a@b.example",
    ]);
    let refused = fails_with(refused, "refusing plain http:// to 192.0.2.1");
    assert!(
        refused.stderr().contains("KLEF_ALLOW_HTTP=1"),
        "{}",
        refused.stderr()
    );
    // Loopback http stays allowed without it: every other test uses it.
    ctx.set_env("KLEF_ALLOW_HTTP", "1");
    let allowed = ctx.run([
        "login",
        "--server",
        "http://192.0.2.1:9",
        "--email",
        "a@b.example",
    ]);
    assert_ne!(allowed.code(), 0);
    assert!(
        !allowed.stderr().contains("refusing plain http"),
        "KLEF_ALLOW_HTTP=1 lets klef try: {}",
        allowed.stderr()
    );
}

#[test]
fn a_klef_file_another_user_owns_is_ignored() {
    // chown needs root; CI runs these tests as root. Say so rather than pass silently.
    assert_eq!(
        euid(),
        0,
        "this test needs root to give a .klef to another user (run the suite as root)"
    );
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "A", "1"]).success();
    let path = ctx.cwd().join(".klef");
    std::os::unix::fs::chown(&path, Some(4242), Some(4242)).expect("chown");
    fails_with(ctx.run(["list"]), "no .klef file found")
        .stderr_has("ignoring")
        .stderr_has("belongs to another user (uid 4242)");
    // A .klef owned by root is trusted as the user's own (a system-wide checkout).
    std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown back");
    assert_eq!(std::fs::metadata(&path).expect("meta").uid(), 0);
    ctx.run(["list"]).success();
}

/// A failed command whose stderr names `needle`.
fn fails_with(run: Run, needle: &str) -> Run {
    assert_ne!(run.code(), 0, "expected a failure: {}", run.stderr());
    run.stderr_has(needle)
}

/// This process's effective uid (the second field of `Uid:` in /proc/self/status).
fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .expect("euid")
}
