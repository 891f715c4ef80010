//! Renaming and deleting environments, projects and workspaces (issue #18): on the local vault
//! and on a `klef-server` (`SQLite` and `PostgreSQL`). Deleting asks, naming what is lost;
//! without a terminal `--yes` is required. On a server only admins may (a member gets exit 4)
//! and every change is in the audit log. Edge cases: the environment `.klef` defaults to, the
//! last environment, the personal workspace, a workspace with projects, names that collide on
//! rename, and the user's own `klef env use` choice of a renamed or deleted environment.

use klef_e2e::{PASSWORD, Server, TestContext};
use serde_json::Value;

fn json(run: &klef_e2e::Run) -> Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

fn slugs(ctx: &TestContext) -> Vec<String> {
    json(&ctx.run(["env", "list", "--json"]).success())
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["slug"].as_str().expect("slug").to_owned())
        .collect()
}

fn names(ctx: &TestContext, what: &[&str]) -> Vec<String> {
    let mut args = what.to_vec();
    args.extend(["list", "--json"]);
    json(&ctx.run(args).success())
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_owned())
        .collect()
}

fn get(ctx: &TestContext, key: &str, env: &str) -> String {
    ctx.run_pw(["get", key, "--plain", "-e", env])
        .success()
        .stdout()
}

fn klef_env(ctx: &TestContext) -> String {
    let raw = std::fs::read_to_string(ctx.cwd.join(".klef")).expect(".klef");
    let v: Value = serde_json::from_str(&raw).expect("json");
    v["environment"].as_str().expect("environment").to_owned()
}

/// Environments: rename follows into `.klef` and the user's choice; delete asks, refuses the
/// team default and the last one, and forgets the choice.
fn environments(ctx: &TestContext) {
    ctx.init();
    ctx.run_pw(["set", "A=stg", "B=2", "-e", "staging"])
        .success();
    ctx.run_pw(["set", "A=prod", "-e", "production"]).success();
    ctx.run(["env", "use", "staging"]).success();

    // Rename: values stay readable (they are bound to the id), the choice follows.
    let renamed = json(
        &ctx.run_pw(["env", "rename", "staging", "stage", "--json"])
            .success(),
    );
    assert_eq!(renamed["slug"], "stage");
    assert_eq!(renamed["previous_slug"], "staging");
    assert_eq!(get(ctx, "A", "stage"), "stg");
    assert_eq!(
        ctx.run_pw(["get", "A", "--plain"]).success().stdout(),
        "stg",
        "the user's choice followed the rename"
    );
    assert!(!slugs(ctx).contains(&"staging".to_owned()));
    ctx.run_pw(["env", "rename", "stage", "production"])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("environment \"production\" already exists in project \"my-app\"");
    ctx.run_pw(["env", "rename", "nope", "other"])
        .code_is(5)
        .clean_error(&[]);
    ctx.run_pw(["env", "rename", "stage", "Not A Slug"])
        .code_is(2)
        .clean_error(&[]);
    // Renaming the team default rewrites .klef (to be committed).
    ctx.run_pw(["env", "rename", "development", "dev"])
        .success()
        .stderr_has("now names \"dev\" as the team default: commit it");
    assert_eq!(klef_env(ctx), "dev");

    // Delete: without a terminal and without --yes, nothing happens and the loss is named.
    ctx.run(["env", "delete", "stage"])
        .code_is(2)
        .clean_error(&["stg"])
        .stderr_has("deleting environment \"stage\" of project \"my-app\" deletes 2 secrets and their history, for everyone; this cannot be undone; refusing without a confirmation")
        .stderr_has("hint: run it at a terminal to be asked, or pass --yes to confirm");
    assert_eq!(get(ctx, "A", "stage"), "stg");
    let deleted = json(
        &ctx.run(["env", "delete", "stage", "--yes", "--json"])
            .success(),
    );
    assert_eq!(deleted["secrets"], 2);
    assert_eq!(slugs(ctx), ["dev", "production"]);
    ctx.run_pw(["get", "A", "-e", "stage"]).code_is(5);
    // The choice of the deleted environment is forgotten: the team default is used again.
    let list = json(&ctx.run(["env", "list", "--json"]).success());
    let current: Vec<&Value> = list
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["current"] == true)
        .collect();
    assert_eq!(current[0]["slug"], "dev");
    assert_eq!(current[0]["source"], "klef_file");

    // The team default cannot be deleted from under this checkout.
    ctx.run(["env", "delete", "dev", "--yes"])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("environment \"dev\" is the team default in")
        .stderr_has("`klef env use production --save`");
    // Nor the last environment.
    ctx.run(["env", "use", "production", "--save"]).success();
    ctx.run(["env", "delete", "dev", "--yes"]).success();
    ctx.run(["env", "delete", "production", "--yes"])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("environment \"production\" is the last one of project \"my-app\"")
        .stderr_has("klef projects delete my-app");
    assert_eq!(get(ctx, "A", "production"), "prod");
}

/// Projects: rename (ids in .klef keep working), collisions, delete with its count.
fn projects(ctx: &TestContext) {
    ctx.init();
    ctx.run_pw(["set", "A=val-one", "B=val-two", "-e", "staging"])
        .success();
    ctx.run_pw(["set", "C=val-three"]).success();
    let other = ctx.root().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    let mut init = ctx.klef(["--password-stdin", "init", "other"]);
    init.current_dir(&other);
    klef_e2e::run_with_stdin(init, Some(format!("{PASSWORD}\n").as_bytes())).success();

    ctx.run_pw(["project", "rename", "my-app", "my-api"])
        .success()
        .stderr_has("renamed project \"my-app\" to \"my-api\"");
    let mut listed = names(ctx, &["projects"]);
    listed.sort();
    assert_eq!(listed, ["my-api", "other"]);
    assert_eq!(
        get(ctx, "C", "development"),
        "val-three",
        ".klef names the id"
    );
    ctx.run_pw(["projects", "rename", "my-api", "other"])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("a project named \"other\" already exists in this workspace");
    ctx.run_pw(["projects", "rename", "nope", "x"])
        .code_is(5)
        .clean_error(&[]);

    ctx.run(["projects", "delete", "my-api"])
        .code_is(2)
        .clean_error(&["val-one", "val-two", "val-three"])
        .stderr_has("deleting project \"my-api\" deletes its 3 environments with 3 secrets and their history, for everyone");
    assert_eq!(get(ctx, "C", "development"), "val-three");
    ctx.run(["projects", "delete", "my-api", "--yes"])
        .success()
        .stderr_has("names the deleted project");
    assert_eq!(names(ctx, &["projects"]), ["other"]);
    let gone = ctx.run_pw(["get", "C"]).clean_error(&["val-three"]);
    if ctx.server.is_some() {
        // A server cannot tell a deleted project from one the caller lost access to.
        gone.stderr_has("your access was removed, or the project was deleted");
    } else {
        gone.code_is(5).stderr_has("is not in the local vault");
    }
}

/// Workspaces: rename, collisions, the personal one, delete with its projects.
fn workspaces(ctx: &TestContext) {
    ctx.init();
    ctx.run_pw(["workspace", "create", "Acme"]).success();
    ctx.run_pw(["workspace", "create", "Other"]).success();
    ctx.run(["workspace", "use", "Acme"]).success();
    let dir = ctx.root().join("acme-app");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut init = ctx.klef(["--password-stdin", "init", "acme-app"]);
    init.current_dir(&dir);
    klef_e2e::run_with_stdin(init, Some(format!("{PASSWORD}\n").as_bytes())).success();
    let mut set = ctx.klef(["--password-stdin", "set", "K=v", "-e", "production"]);
    set.current_dir(&dir);
    klef_e2e::run_with_stdin(set, Some(format!("{PASSWORD}\n").as_bytes())).success();

    ctx.run(["workspace", "rename", "Acme", "Acme Inc"])
        .success();
    assert!(names(ctx, &["workspace"]).contains(&"Acme Inc".to_owned()));
    ctx.run(["workspace", "rename", "Acme Inc", "Other"])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("workspace \"Other\" already exists");
    let personal = json(&ctx.run(["workspace", "list", "--json"]).success())
        .as_array()
        .expect("array")
        .iter()
        .find(|w| w["personal"] == true)
        .and_then(|w| w["name"].as_str())
        .expect("personal")
        .to_owned();
    ctx.run(["workspace", "delete", &personal, "--yes"])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("is your personal workspace, which cannot be deleted");

    ctx.run(["workspace", "delete", "Acme Inc"])
        .code_is(2)
        .clean_error(&["K=v"])
        .stderr_has("deleting workspace \"Acme Inc\" deletes 1 project with 3 environments and 1 secret, and removes its members, for everyone");
    let gone = json(
        &ctx.run(["workspace", "delete", "Acme Inc", "--yes", "--json"])
            .success(),
    );
    assert_eq!(gone["projects"], 1);
    assert_eq!(gone["secrets"], 1);
    let left = names(ctx, &["workspace"]);
    assert!(!left.contains(&"Acme Inc".to_owned()), "{left:?}");
    // The personal workspace is current again: its project is listed.
    assert_eq!(names(ctx, &["projects"]), ["my-app"]);
}

/// Deleting lifted the append-only guard of the secrets table for its own transaction only:
/// the guard is back, so a direct delete is still refused.
fn guard_is_back(db: &std::path::Path) {
    let out = std::process::Command::new("sqlite3")
        .arg(db)
        .arg("DELETE FROM secrets")
        .output()
        .expect("run sqlite3");
    assert!(
        !out.status.success(),
        "a direct delete of secrets succeeded"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("append-only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn environments_locally() {
    let ctx = TestContext::new();
    environments(&ctx);
    guard_is_back(&ctx.vault_path());
}

#[test]
fn projects_locally() {
    projects(&TestContext::new());
}

#[test]
fn workspaces_locally() {
    workspaces(&TestContext::new());
}

/// A context signed up on a fresh server.
fn signed_up(mut ctx: TestContext, server: Server) -> TestContext {
    let url = server.url.clone();
    ctx.server = Some(server);
    ctx.signup(&url, "owner@example.com");
    ctx
}

fn sqlite() -> TestContext {
    let ctx = TestContext::new();
    let server = Server::sqlite(&ctx.root().join("server"));
    signed_up(ctx, server)
}

fn postgres() -> Option<TestContext> {
    let ctx = TestContext::new();
    let server = Server::postgres(&ctx.root().join("server"))?;
    Some(signed_up(ctx, server))
}

#[test]
fn environments_on_a_sqlite_server() {
    let ctx = sqlite();
    environments(&ctx);
    let db = ctx
        .server
        .as_ref()
        .and_then(|s| s.sqlite_path())
        .expect("a SQLite server");
    guard_is_back(db);
}

#[test]
fn environments_on_a_postgres_server() {
    let Some(ctx) = postgres() else { return };
    environments(&ctx);
}

#[test]
fn projects_and_workspaces_on_a_sqlite_server() {
    projects(&sqlite());
    workspaces(&sqlite());
}

#[test]
fn projects_and_workspaces_on_a_postgres_server() {
    let Some(ctx) = postgres() else { return };
    projects(&ctx);
    let Some(ctx) = postgres() else { return };
    workspaces(&ctx);
}

/// On a server: a member (not an admin) is refused every rename and delete with exit 4, and
/// nothing changes; the owner's changes are in the audit log.
fn admins_only(ctx: &TestContext) {
    ctx.run_pw(["workspace", "create", "Acme"]).success();
    ctx.run(["workspace", "use", "Acme"]).success();
    ctx.init();
    ctx.run_pw(["set", "A=val-one", "-e", "staging"]).success();
    let url = ctx.server.as_ref().expect("server").url.clone();
    let invite = json(
        &ctx.run_pw(["workspace", "invite", "bob@example.com", "--json"])
            .success(),
    );
    let bob = TestContext::new();
    bob.signup(&url, "bob@example.com");
    bob.run_pw([
        "workspace",
        "accept",
        invite["id"].as_str().expect("id"),
        "--code",
        invite["invite_code"].as_str().expect("code"),
    ])
    .success();
    ctx.run_pw(["workspace", "confirm", "bob@example.com", "--yes"])
        .success();
    bob.run(["workspace", "use", "Acme"]).success();
    let project = {
        let raw = std::fs::read_to_string(ctx.cwd.join(".klef")).expect(".klef");
        let v: Value = serde_json::from_str(&raw).expect("json");
        v["project"].as_str().expect("project").to_owned()
    };
    bob.run(["link", &project]).success();
    assert_eq!(
        get(&bob, "A", "staging"),
        "val-one",
        "bob reads as a member"
    );

    for (args, why) in [
        (vec!["env", "rename", "staging", "stage"], "admin"),
        (vec!["env", "delete", "staging", "--yes"], "admin"),
        (vec!["projects", "rename", "my-app", "mine"], "admin"),
        (vec!["projects", "delete", "my-app", "--yes"], "admin"),
        (vec!["workspace", "rename", "Acme", "Bob Corp"], "admin"),
        (
            vec!["workspace", "delete", "Acme", "--yes"],
            "only the workspace's owner",
        ),
    ] {
        bob.run_pw(&args)
            .code_is(4)
            .clean_error(&["val-one"])
            .stderr_has(why);
    }
    assert_eq!(get(&bob, "A", "staging"), "val-one", "nothing changed");
    assert!(slugs(ctx).contains(&"staging".to_owned()));

    ctx.run_pw(["env", "rename", "staging", "stage"]).success();
    ctx.run(["env", "delete", "stage", "--yes"]).success();
    ctx.run_pw(["projects", "rename", "my-app", "my-api"])
        .success();
    ctx.run(["workspace", "rename", "Acme", "Acme Inc"])
        .success();
    let audit = json(&ctx.run(["audit", "--json"]).success());
    let actions: Vec<&str> = audit
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "environment.rename",
        "environment.delete",
        "project.rename",
        "workspace.rename",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    ctx.run(["projects", "delete", "my-api", "--yes"]).success();
    let audit = json(&ctx.run(["audit", "--json"]).success());
    assert!(audit.to_string().contains("project.delete"), "{audit}");
    // Bob's checkout now names a project that is gone.
    bob.run_pw(["get", "A", "-e", "staging"])
        .clean_error(&["val-one"]);
    ctx.run(["workspace", "delete", "Acme Inc", "--yes"])
        .success();
    bob.run(["workspace", "use", "Acme Inc"]).code_is(5);
}

#[test]
fn only_admins_rename_and_delete_on_a_sqlite_server_and_it_is_audited() {
    admins_only(&sqlite());
}

#[test]
fn only_admins_rename_and_delete_on_a_postgres_server_and_it_is_audited() {
    let Some(ctx) = postgres() else { return };
    admins_only(&ctx);
}
