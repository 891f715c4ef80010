//! `klef` at a terminal (issue #18): a pseudo-terminal is the command's stdin, stdout, stderr
//! and controlling terminal, and the test types as a person would. `klef set KEY` asks for the
//! value twice without echoing it; a wrong encryption password is asked again, three tries in
//! all; deleting asks `[y/N]` after naming what is lost.

use klef_e2e::{PASSWORD, TestContext};
use serde_json::Value;

fn slugs(ctx: &TestContext) -> Vec<String> {
    let run = ctx.run(["env", "list", "--json"]).success();
    serde_json::from_str::<Value>(&run.stdout())
        .expect("json")
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["slug"].as_str().expect("slug").to_owned())
        .collect()
}

/// An initialised project whose password comes from `KLEF_PASSWORD`, so only the prompt under
/// test is shown.
fn unlocked() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.init();
    ctx.set_env("KLEF_PASSWORD", PASSWORD);
    ctx
}

#[test]
fn set_at_a_terminal_asks_twice_without_echo() {
    let ctx = unlocked();
    let typed = "typed-s3cret-value";
    let mut t = ctx.terminal(["set", "API_KEY"]);
    t.expect("value of API_KEY (hidden): ").type_hidden(typed);
    t.expect("repeat the value of API_KEY: ").type_hidden(typed);
    let (code, screen) = t.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(!screen.contains(typed), "the value was echoed:\n{screen}");
    assert_eq!(
        ctx.run(["get", "API_KEY", "--plain"]).success().stdout(),
        typed
    );

    // Two different values: nothing is written, and neither value is shown.
    let mut t = ctx.terminal(["set", "OTHER"]);
    t.expect("value of OTHER (hidden): ")
        .type_hidden("first-try-x");
    t.expect("repeat the value of OTHER: ")
        .type_hidden("second-try-y");
    let (code, screen) = t.finish();
    assert_eq!(code, 2, "{screen}");
    assert!(
        screen.contains("error: the two values of OTHER differ; nothing was written"),
        "{screen}"
    );
    assert!(!screen.contains("first-try-x") && !screen.contains("second-try-y"));
    ctx.run(["get", "OTHER"]).code_is(5).clean_error(&[]);

    // An empty value is refused the same way.
    let mut t = ctx.terminal(["set", "EMPTY"]);
    t.expect("value of EMPTY (hidden): ").type_hidden("");
    t.expect("repeat the value of EMPTY: ").type_hidden("");
    let (code, screen) = t.finish();
    assert_eq!(code, 2, "{screen}");
    assert!(
        screen.contains("no value was typed for EMPTY; nothing was written"),
        "{screen}"
    );
}

#[test]
fn a_wrong_password_at_a_terminal_is_asked_again_three_tries_in_all() {
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "A=alpha-value"]).success();

    // Wrong, then right: the command goes on.
    let mut t = ctx.terminal(["get", "A", "--plain"]);
    t.expect("encryption password: ")
        .type_hidden("not the password");
    t.expect("wrong password; try again");
    t.expect("encryption password: ").type_hidden(PASSWORD);
    let (code, screen) = t.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("alpha-value"), "{screen}");
    assert!(!screen.contains(PASSWORD) && !screen.contains("not the password"));

    // Three wrong: exit 3, said once, no fourth prompt.
    let mut t = ctx.terminal(["get", "A", "--plain"]);
    for i in 1..=3 {
        t.expect("encryption password: ")
            .type_hidden(&format!("wrong guess {i}"));
        if i < 3 {
            t.expect("wrong password; try again");
        }
    }
    let (code, screen) = t.finish();
    assert_eq!(code, 3, "{screen}");
    assert!(screen.contains("error: 3 wrong passwords"), "{screen}");
    assert_eq!(
        screen.matches("encryption password: ").count(),
        3,
        "{screen}"
    );
    assert!(!screen.contains("alpha-value") && !screen.contains("wrong guess"));
}

#[test]
fn delete_at_a_terminal_names_what_is_lost_and_asks() {
    let ctx = unlocked();
    ctx.run(["set", "A=1", "B=2", "-e", "staging"]).success();

    // "n" (or just Enter) keeps everything.
    let mut t = ctx.terminal(["env", "delete", "staging"]);
    t.expect(
        "deleting environment \"staging\" of project \"my-app\" deletes 2 secrets and their history, for everyone; this cannot be undone",
    );
    t.expect("delete it? [y/N] ").type_line("n");
    let (code, screen) = t.finish();
    assert_ne!(code, 0, "{screen}");
    assert!(
        screen.contains("cancelled; nothing was deleted"),
        "{screen}"
    );
    assert!(slugs(&ctx).contains(&"staging".to_owned()));

    let mut t = ctx.terminal(["env", "delete", "staging"]);
    t.expect("delete it? [y/N] ").type_line("");
    let (code, _) = t.finish();
    assert_ne!(code, 0);
    assert!(slugs(&ctx).contains(&"staging".to_owned()));

    // "y" deletes and says what went.
    let mut t = ctx.terminal(["env", "delete", "staging"]);
    t.expect("delete it? [y/N] ").type_line("y");
    let (code, screen) = t.finish();
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("deleted environment \"staging\" of project \"my-app\" and 2 secrets"),
        "{screen}"
    );
    assert!(!slugs(&ctx).contains(&"staging".to_owned()));
}

/// A proxy to `upstream` that forwards everything but a request writing secrets, which it
/// holds unanswered: a server that is slow exactly where `klef push` shows progress.
fn proxy_holding_writes(upstream: &str) -> String {
    proxy_holding(upstream, |head| {
        !head.starts_with("GET ") && head.contains("/secrets HTTP/1.1")
    })
}

/// A proxy to `upstream` that forwards every request except those whose head `hold` picks,
/// which it holds unanswered.
pub(crate) fn proxy_holding(upstream: &str, hold: fn(&str) -> bool) -> String {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    let upstream = upstream
        .strip_prefix("http://")
        .expect("http upstream")
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let (mut from_server, mut to_client) = (
                    server.try_clone().expect("clone"),
                    client.try_clone().expect("clone"),
                );
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                });
                let (mut from_client, mut to_server) = (client, server);
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match from_client.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let head = String::from_utf8_lossy(&buf[..n]);
                    if hold(&head) {
                        // Hold it: read on (so the client is not blocked) and forward nothing.
                        while matches!(from_client.read(&mut buf), Ok(n) if n > 0) {}
                        return;
                    }
                    if to_server.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[test]
fn slow_work_at_a_terminal_shows_progress_on_stderr_and_none_when_redirected() {
    let mut ctx = TestContext::new();
    let server = klef_e2e::Server::sqlite(&ctx.root().join("server"));
    let url = proxy_holding_writes(&server.url);
    ctx.server = Some(server);
    ctx.signup(&url, "owner@example.com");
    ctx.init();
    ctx.set_env("KLEF_PASSWORD", PASSWORD);
    ctx.set_env("KLEF_TIMEOUT", "3");
    std::fs::write(ctx.cwd.join("import.env"), "A=1\nB=2\nC=3\n").expect("write");

    let mut t = ctx.terminal(["push", "import.env", "--yes"]);
    t.expect("writing 3 values");
    t.expect("did not answer within 3 s");
    let (code, screen) = t.finish();
    assert_eq!(code, 6, "{screen}");

    // Redirected, the same slow push draws nothing.
    let run = ctx
        .run(["push", "import.env", "--yes"])
        .code_is(6)
        .clean_error(&[]);
    assert!(
        !run.stderr().contains("writing 3 values"),
        "{}",
        run.stderr()
    );
}

/// What the proxy of the next test holds: 0 nothing, 1 a rotation, 2 a read of secrets, 3 a
/// backup export.
static HOLD: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

fn held_by_mode(head: &str) -> bool {
    match HOLD.load(std::sync::atomic::Ordering::SeqCst) {
        1 => head.contains("/rotate HTTP/1.1"),
        2 => head.starts_with("GET ") && head.contains("/secrets?"),
        3 => head.starts_with("GET ") && head.contains("/export HTTP/1.1"),
        _ => false,
    }
}

#[test]
fn rotate_key_pull_and_backup_show_progress_while_the_server_is_slow() {
    let mut ctx = TestContext::new();
    let server = klef_e2e::Server::sqlite(&ctx.root().join("server"));
    let url = proxy_holding(&server.url, held_by_mode);
    ctx.server = Some(server);
    ctx.signup(&url, "owner@example.com");
    ctx.init();
    ctx.set_env("KLEF_PASSWORD", PASSWORD);
    ctx.run(["set", "A=1", "B=2"]).success();
    ctx.set_env("KLEF_TIMEOUT", "3");

    // The rotation's one request held: its progress shows until the timeout.
    HOLD.store(1, std::sync::atomic::Ordering::SeqCst);
    let mut t = ctx.terminal(["env", "rotate-key"]);
    t.expect("re-encrypting 2 values");
    t.expect("did not answer within 3 s");
    let (code, screen) = t.finish();
    assert_eq!(code, 6, "{screen}");

    // Reading the environment held: `pull` says what it is waiting for.
    HOLD.store(2, std::sync::atomic::Ordering::SeqCst);
    let mut t = ctx.terminal(["pull", "-o", "-"]);
    t.expect("reading environment");
    t.expect("did not answer within 3 s");
    let (code, screen) = t.finish();
    assert_eq!(code, 6, "{screen}");

    // The export held: `backup export` says which workspace it is exporting, and writes nothing.
    HOLD.store(3, std::sync::atomic::Ordering::SeqCst);
    let mut t = ctx.terminal(["backup", "export", "slow.klefbackup"]);
    t.expect("exporting workspace");
    t.expect("did not answer within 3 s");
    let (code, screen) = t.finish();
    assert_eq!(code, 6, "{screen}");
    assert!(!ctx.cwd.join("slow.klefbackup").exists());
}

#[test]
fn accept_at_a_terminal_asks_for_the_invite_code_without_echo() {
    let mut owner = TestContext::new();
    let server = klef_e2e::Server::sqlite(&owner.root().join("server"));
    let url = server.url.clone();
    owner.server = Some(server);
    owner.signup(&url, "owner@example.com");
    owner.set_env("KLEF_PASSWORD", PASSWORD);
    owner.run(["workspace", "create", "Acme"]).success();
    owner.run(["workspace", "use", "Acme"]).success();
    let inv: serde_json::Value = serde_json::from_str(
        &owner
            .run(["workspace", "invite", "bob@example.com", "--json"])
            .success()
            .stdout(),
    )
    .expect("json");
    let code = inv["invite_code"].as_str().expect("code");
    let id = inv["id"].as_str().expect("id");

    let mut bob = TestContext::new();
    bob.signup(&url, "bob@example.com");
    bob.set_env("KLEF_PASSWORD", PASSWORD);
    let mut t = bob.terminal(["workspace", "accept", id]);
    t.expect("invite code from the admin");
    t.type_hidden(code);
    t.expect("accepted the invitation to workspace \"Acme\"");
    let (status, screen) = t.finish();
    assert_eq!(status, 0, "{screen}");
    assert!(!screen.contains(code), "the code was echoed:\n{screen}");
    owner
        .run(["workspace", "confirm", "bob@example.com", "--yes"])
        .success()
        .stderr_has("invite code checked");
}
