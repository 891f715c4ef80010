//! The first hour's messages (issue #18): what a new user or team sees when something is off,
//! through the real binaries. Each test asserts the text and the exit code.

use klef_e2e::{Server, TestContext};
use serde_json::Value;

const OWNER: &str = "owner@example.com";

/// The owner on a fresh server with project `my-app` (a value in development and production).
fn owner() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.server = Some(Server::sqlite(&ctx.root().join("server")));
    let url = url(&ctx);
    ctx.signup(&url, OWNER);
    ctx.init();
    ctx.run_pw(["set", "DB", "dev-value"]).success();
    ctx.run_pw(["set", "DB", "prod-value", "-e", "production"])
        .success();
    ctx
}

fn url(ctx: &TestContext) -> String {
    ctx.server.as_ref().expect("a server").url.clone()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// `klef keys create …` as `owner`: the key on stdout.
fn create_key(owner: &TestContext, args: &[&str]) -> String {
    let mut all = vec!["keys", "create"];
    all.extend_from_slice(args);
    owner.run_pw(all).success().stdout().trim().to_owned()
}

/// The crash of issue #18: a user key's session never expires (the server says `i64::MAX`),
/// which `whoami` used to hand to a formatter that panics past year 9999.
#[test]
fn whoami_after_login_with_a_user_key_says_the_key_never_expires() {
    let owner = owner();
    let key = create_key(&owner, &["--type", "user", "--label", "laptop"]);
    let mut me = TestContext::new();
    me.set_env("KLEF_SERVER", &url(&owner));
    me.run(["login", "--key", &key]).success();
    me.remove_env("KLEF_SERVER");
    let text = me.run(["whoami"]).success().stdout();
    assert!(
        text.lines()
            .any(|l| l.starts_with("session expires") && l.ends_with(" never")),
        "{text}"
    );
    let v = json(&me.run(["whoami", "--json"]).success().stdout());
    assert_eq!(v["session_expires_at"], Value::Null, "{v}");
    assert_eq!(v["email"], OWNER, "{v}");
}

/// A system key for `my-app:production` (read), as the owner makes it.
fn production_key(owner: &TestContext) -> String {
    create_key(
        owner,
        &[
            "--type",
            "system",
            "--label",
            "ci",
            "--scope",
            "my-app:production",
            "--permission",
            "read",
        ],
    )
}

/// A CI machine: no session, no `.klef`; only `KLEF_TOKEN` and `KLEF_SERVER`.
fn ci(owner: &TestContext, key: &str) -> TestContext {
    let mut ci = TestContext::new();
    ci.set_env("KLEF_TOKEN", key);
    ci.set_env("KLEF_SERVER", &url(owner));
    ci
}

#[test]
fn whoami_with_klef_token_describes_the_key() {
    let owner = owner();
    let key = production_key(&owner);
    let ci = ci(&owner, &key);
    let text = ci.run(["whoami"]).success().stdout();
    let prefix: String = key.splitn(4, '_').take(3).collect::<Vec<_>>().join("_");
    for needle in [
        "KLEF_TOKEN (system key)",
        prefix.as_str(),
        "my-app:production",
        "read",
        url(&owner).as_str(),
    ] {
        assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
    }
    assert!(!text.contains(&key), "the secret is printed:\n{text}");
    let v = json(&ci.run(["whoami", "--json"]).success().stdout());
    assert_eq!(v["key"]["kind"], "system", "{v}");
    assert_eq!(v["key"]["scopes"][0], "my-app:production", "{v}");
    assert_eq!(v["server"], url(&owner), "{v}");
}

#[test]
fn a_system_key_cannot_create_an_environment_and_says_why() {
    let owner = owner();
    let ci = ci(&owner, &production_key(&owner));
    let err = ci
        .run(["-p", "my-app", "env", "create", "qa"])
        .code_is(4)
        .clean_error(&[])
        .stderr_has("system key, which has no account")
        .stderr();
    assert!(!err.contains("/v1/"), "an internal route leaks:\n{err}");
}

#[test]
fn a_system_key_takes_a_project_name_and_says_which_environment_it_reaches() {
    let owner = owner();
    let key = production_key(&owner);
    let ci = ci(&owner, &key);
    // By name, as by id.
    let out = ci
        .run(["-p", "my-app", "get", "DB", "-e", "production", "--plain"])
        .success()
        .stdout();
    assert_eq!(out, "prod-value");
    // In the repository, whose .klef defaults to development.
    let repo = ci;
    // (KLEF_SERVER stays: an API key never goes to a server only a .klef names.)
    std::fs::copy(owner.cwd().join(".klef"), repo.cwd().join(".klef")).expect("copy .klef");
    repo.run(["get", "DB"])
        .code_is(4)
        .clean_error(&[&key])
        .stderr_has("does not reach environment \"development\"")
        .stderr_has("-e production");
}

#[test]
fn login_after_logout_uses_the_server_named_in_klef() {
    let mut owner = owner();
    owner.run(["logout"]).success();
    owner.set_env("KLEF_ACCOUNT_PASSWORD", klef_e2e::ACCOUNT_PASSWORD);
    owner
        .run(["login"])
        .code_is(2)
        .clean_error(&[])
        .stderr_has(&format!("which account on {}?", url(&owner)));
    owner
        .run(["login", "--email", OWNER])
        .success()
        .stderr_has(&format!("signed in to {}", url(&owner)));
}

#[test]
fn a_set_with_a_bare_word_names_it_plainly() {
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "A=1", "B=2", "C"])
        .code_is(2)
        .clean_error(&[])
        .stderr_has("expected KEY=VALUE, got the bare name C");
    let err = ctx
        .run_pw(["set", "A=1", "hunter2 secret"])
        .code_is(2)
        .stderr();
    assert!(
        !err.contains("hunter2"),
        "a mistyped value is echoed:\n{err}"
    );
    assert!(err.contains("argument 2 is not KEY=VALUE"), "{err}");
}

#[test]
fn failed_sign_ins_say_the_wait_once() {
    let owner = owner();
    let mut me = TestContext::new();
    me.set_env("KLEF_ACCOUNT_PASSWORD", "not the password");
    let mut last = String::new();
    for _ in 0..6 {
        last = me
            .run(["login", "--server", &url(&owner), "--email", OWNER])
            .stderr();
    }
    assert!(last.contains("too many failed sign-ins"), "{last}");
    assert_eq!(last.matches("try again").count(), 1, "{last}");
}

#[test]
fn a_bad_agent_timeout_gets_a_hint_about_the_format() {
    let mut ctx = TestContext::new();
    ctx.remove_env("KLEF_NO_AGENT");
    ctx.set_env("KLEF_AGENT_IDLE_TIMEOUT", "banana");
    let err = ctx
        .run(["agent", "start"])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("is not a duration")
        .stderr_has("90s, 15m or 1h")
        .stderr();
    assert!(!err.contains("shortened"), "{err}");
}

/// A listener answering every request with `answer`, or (with `None`) never answering.
fn fake_server(answer: Option<&'static str>) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            match answer {
                Some(a) => {
                    let _ = stream.write_all(a.as_bytes());
                }
                None => held.push(stream),
            }
        }
    });
    url
}

#[test]
fn a_server_that_is_not_klef_is_named_as_such() {
    let url = fake_server(Some(
        "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found",
    ));
    let mut me = TestContext::new();
    me.set_env("KLEF_ACCOUNT_PASSWORD", "x");
    let err = me
        .run(["login", "--server", &url, "--email", OWNER])
        .code_is(6)
        .clean_error(&[])
        .stderr_has(&format!("{url} is not a Klef server"))
        .stderr_has("hint: check the server URL")
        .stderr();
    assert!(!err.contains("not found not found"), "{err}");
}

#[test]
fn a_server_that_never_answers_times_out_after_klef_timeout() {
    let url = fake_server(None);
    let mut me = TestContext::new();
    me.set_env("KLEF_ACCOUNT_PASSWORD", "x");
    me.set_env("KLEF_TIMEOUT", "1");
    // The answer names the timeout it applied (a hang would stop the suite; no wall-clock
    // bound is asserted here: timing targets belong in benchmarks).
    me.run(["login", "--server", &url, "--email", OWNER])
        .code_is(6)
        .clean_error(&[])
        .stderr_has(&format!(
            "the Klef server at {url} did not answer within 1 s"
        ))
        .stderr_has("KLEF_TIMEOUT");
    me.set_env("KLEF_TIMEOUT", "soon");
    me.run(["login", "--server", &url, "--email", OWNER])
        .clean_error(&[])
        .stderr_has("KLEF_TIMEOUT=\"soon\" is not a number of seconds");
}

/// The owner with workspace "Acme" current and `my-app` in it.
fn acme_owner() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.server = Some(Server::sqlite(&ctx.root().join("server")));
    let url = url(&ctx);
    ctx.signup(&url, OWNER);
    ctx.run_pw(["workspace", "create", "Acme"]).success();
    ctx.run(["workspace", "use", "Acme"]).success();
    ctx.init();
    ctx.run_pw(["set", "DB", "dev-value"]).success();
    ctx
}

/// Bob, invited to Acme and signed up, having accepted (not yet confirmed).
fn accepted_bob(owner: &TestContext) -> TestContext {
    let inv = json(
        &owner
            .run_pw(["workspace", "invite", "bob@example.com", "--json"])
            .success()
            .stdout(),
    );
    let bob = TestContext::new();
    bob.signup(&url(owner), "bob@example.com");
    bob.run_pw([
        "workspace",
        "accept",
        inv["id"].as_str().expect("id"),
        "--code",
        inv["invite_code"].as_str().expect("code"),
    ])
    .success();
    bob
}

#[test]
fn an_unconfirmed_invitee_is_told_who_has_to_confirm() {
    let owner = acme_owner();
    let bob = accepted_bob(&owner);
    bob.run(["workspace", "use", "Acme"])
        .code_is(4)
        .clean_error(&[])
        .stderr_has(
            "you accepted the invitation to workspace \"Acme\", but no admin has confirmed you yet",
        )
        .stderr_has(&format!("{OWNER} (or another admin of \"Acme\")"))
        .stderr_has("klef workspace confirm bob@example.com");
}

#[test]
fn a_removed_member_is_told_access_was_removed_on_that_server() {
    let owner = acme_owner();
    let bob = accepted_bob(&owner);
    owner
        .run_pw(["workspace", "confirm", "bob@example.com", "--yes"])
        .success();
    std::fs::copy(owner.cwd().join(".klef"), bob.cwd().join(".klef")).expect("copy .klef");
    bob.run_pw(["pull", "-o", "-"]).success();
    owner
        .run_pw(["workspace", "remove", "bob@example.com"])
        .success();
    let err = bob
        .run_pw(["pull"])
        .code_is(4)
        .clean_error(&[])
        .stderr_has(&format!("on {}: your access was removed", url(&owner)))
        .stderr();
    assert!(!err.contains("local vault"), "{err}");
}

#[test]
fn signup_shows_the_recovery_code_boxed_as_init_does() {
    let mut ctx = TestContext::new();
    ctx.server = Some(Server::sqlite(&ctx.root().join("server")));
    let signup = ctx.signup(&url(&ctx), OWNER).stderr();
    let local = TestContext::new();
    let init = local.init().stderr();
    for out in [&signup, &init] {
        assert!(out.contains("┌") && out.contains("└"), "not boxed:\n{out}");
        assert!(
            out.contains("│ your recovery code: write this down and keep it somewhere safe"),
            "{out}"
        );
    }
}

/// The subcommands `klef PATH --help` lists (without `help`).
fn subcommands(ctx: &TestContext, path: &[String]) -> Vec<String> {
    let mut args = path.to_vec();
    args.push("--help".into());
    let help = ctx.run(&args).success().stdout();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

#[test]
fn every_command_help_through_the_binary_ends_with_examples_of_itself() {
    let ctx = TestContext::new();
    let mut todo = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let mut args = path.clone();
        args.push("--help".into());
        let help = ctx.run(&args).success().stdout();
        let want = format!("Examples:\n  klef {}", path.join(" "));
        assert!(
            help.contains(want.trim_end()),
            "`klef {} --help` has no examples of itself:\n{help}",
            path.join(" ")
        );
        seen += 1;
        for sub in subcommands(&ctx, &path) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
    }
    assert!(seen > 40, "only {seen} commands were found in --help");
}

#[test]
fn a_server_that_never_accepts_the_connection_times_out_connecting() {
    use std::net::{TcpListener, TcpStream};
    // A listener that never accepts: once its accept queue is full, the kernel answers no more
    // handshakes, so a new connection hangs exactly as one to an overloaded or firewalled
    // server does.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut filler = Vec::new();
    for _ in 0..4096 {
        match TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)) {
            Ok(s) => filler.push(s),
            Err(_) => break,
        }
    }
    let url = format!("http://{addr}");
    let mut me = TestContext::new();
    me.set_env("KLEF_ACCOUNT_PASSWORD", "x");
    me.set_env("KLEF_TIMEOUT", "1");
    // Bounded by KLEF_TIMEOUT (reqwest may report the hung handshake as a connect or as a
    // request timeout; both name the server and the limit).
    let err = me
        .run(["login", "--server", &url, "--email", OWNER])
        .code_is(6)
        .clean_error(&[])
        .stderr_has(&format!("Klef server at {url}"))
        .stderr_has("within 1 s")
        .stderr_has("KLEF_TIMEOUT")
        .stderr();
    assert!(!err.contains("panicked"), "{err}");
    drop(filler);
    drop(listener);
}
