//! The fixtures of the team-server suites (`roster_attacks`, `removal`): a server on `SQLite` or
//! `PostgreSQL`, its owner with workspace "Acme" and project `my-app`, system keys, CI jobs, and
//! the roster as the database holds it. No tests here.

use klef_e2e::{Run, Server, TestContext};
use serde_json::Value;

pub(crate) const OWNER: &str = "owner@example.com";
pub(crate) const BOB: &str = "bob@example.com";

#[derive(Debug, Clone, Copy)]
pub(crate) enum Db {
    Sqlite,
    Postgres,
}

/// Runs `test` on both databases (`PostgreSQL` is skipped with a note when not configured
/// outside CI, and a failure in CI).
pub(crate) fn on_both(test: fn(Db)) {
    test(Db::Sqlite);
    test(Db::Postgres);
}

/// The owner, signed up on a fresh server, with workspace "Acme" (a signed genesis) current and
/// project `my-app` holding `DB=dev-value` in development.
pub(crate) fn owner(db: Db) -> Option<TestContext> {
    let mut ctx = TestContext::new();
    let dir = ctx.root().join("server");
    ctx.server = Some(match db {
        Db::Sqlite => Server::sqlite(&dir),
        Db::Postgres => Server::postgres(&dir)?,
    });
    ctx.signup(&url(&ctx), OWNER);
    ctx.run_pw(["workspace", "create", "Acme"]).success();
    ctx.run(["workspace", "use", "Acme"]).success();
    ctx.init();
    ctx.run_pw(["set", "DB", "dev-value"]).success();
    Some(ctx)
}

pub(crate) fn url(ctx: &TestContext) -> String {
    server(ctx).url.clone()
}

pub(crate) fn server(ctx: &TestContext) -> &Server {
    ctx.server.as_ref().expect("a server")
}

pub(crate) fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

/// `email`, invited by `owner` with `extra` flags (`--role admin`, `--env staging`), signed up,
/// accepted with the invite code and confirmed, with `.klef` linked to the owner's project.
pub(crate) fn joined(owner: &TestContext, email: &str, extra: &[&str]) -> TestContext {
    let mut args = vec!["workspace", "invite", email, "--json"];
    args.extend(extra);
    let inv = json(&owner.run_pw(args).success());
    let member = TestContext::new();
    member.signup(&url(owner), email);
    member
        .run_pw([
            "workspace",
            "accept",
            inv["id"].as_str().expect("id"),
            "--code",
            inv["invite_code"].as_str().expect("invite code"),
        ])
        .success();
    owner
        .run_pw(["workspace", "confirm", email, "--yes"])
        .success();
    std::fs::copy(owner.cwd().join(".klef"), member.cwd().join(".klef")).expect("copy .klef");
    member
}

/// `klef keys create --type system` (read) by `ctx`: the key, printed once on stdout.
pub(crate) fn system_key(ctx: &TestContext, scope: &str, label: &str) -> String {
    ctx.run_pw([
        "keys",
        "create",
        "--type",
        "system",
        "--scope",
        scope,
        "--permission",
        "read",
        "--label",
        label,
    ])
    .success()
    .stdout()
    .trim()
    .to_owned()
}

/// The short prefix `klef keys list` shows (`klef_sys_` and 8 symbols of the id).
pub(crate) fn short(token: &str) -> String {
    token.chars().take("klef_sys_".len() + 8).collect()
}

/// A CI job holding only `token`.
pub(crate) fn ci(owner: &TestContext, token: &str) -> TestContext {
    let mut ci = TestContext::new();
    ci.set_env("KLEF_TOKEN", token);
    ci.set_env("KLEF_SERVER", &url(owner));
    ci
}

/// How many entries Acme's roster has in the server's database.
pub(crate) fn roster_len(srv: &Server) -> u64 {
    srv.sql(
        "SELECT count(*) FROM roster_entries WHERE workspace_id = \
         (SELECT id FROM workspaces WHERE name = 'Acme')",
    )
    .parse()
    .expect("a count")
}
