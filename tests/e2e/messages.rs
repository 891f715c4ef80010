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
