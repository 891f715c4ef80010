//! `klef env use` is the user's own choice, per directory, kept under `KLEF_HOME`: the
//! committed `.klef` does not change (issue #18). `--save` changes the team default;
//! `--reset` follows it again. Precedence: `-e` > `KLEF_ENV` > the user's choice > `.klef`,
//! shown by `klef env list` and `klef whoami`.

use klef_e2e::{PASSWORD, Server, TestContext};
use serde_json::Value;

fn json(run: &klef_e2e::Run) -> Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

fn where_(ctx: &TestContext) -> String {
    ctx.run_pw(["get", "WHERE", "--plain"]).success().stdout()
}

/// The current environment's slug and source, per `klef env list --json`.
fn current(ctx: &TestContext) -> (String, String, String) {
    let envs = json(&ctx.run(["env", "list", "--json"]).success());
    let list = envs.as_array().expect("array");
    let cur: Vec<&Value> = list.iter().filter(|e| e["current"] == true).collect();
    assert_eq!(cur.len(), 1, "{envs}");
    let team: Vec<&Value> = list.iter().filter(|e| e["team_default"] == true).collect();
    assert_eq!(team.len(), 1, "{envs}");
    (
        cur[0]["slug"].as_str().expect("slug").to_owned(),
        cur[0]["source"].as_str().expect("source").to_owned(),
        team[0]["slug"].as_str().expect("slug").to_owned(),
    )
}

fn setup(ctx: &TestContext) {
    ctx.init();
    for env in ["development", "staging", "production"] {
        ctx.run_pw(["set", "WHERE", env, "-e", env]).success();
    }
}

fn precedence_suite(ctx: &mut TestContext) {
    setup(ctx);
    let klef = ctx.cwd.join(".klef");
    let committed = std::fs::read(&klef).expect(".klef");

    let used = ctx.run(["env", "use", "staging"]).success();
    assert!(
        used.stderr()
            .contains("this directory now uses \"staging\" for you")
            && used.stderr().contains("the team default in")
            && used.stderr().contains("stays \"development\""),
        "{}",
        used.stderr()
    );
    assert_eq!(
        std::fs::read(&klef).expect(".klef"),
        committed,
        ".klef is untouched"
    );
    assert_eq!(where_(ctx), "staging");
    assert_eq!(
        current(ctx),
        ("staging".into(), "user".into(), "development".into())
    );
    let table = ctx.run(["env", "list"]).success();
    assert!(
        table.stdout().contains("team default")
            && table.stderr().contains(
                "* in use: \"staging\", from your choice for this directory (`klef env use`)"
            ),
        "{}\n{}",
        table.stdout(),
        table.stderr()
    );

    // Kept under KLEF_HOME, private.
    let choices = ctx.klef_home().join("config/environments.json");
    let raw = std::fs::read_to_string(&choices).expect("choices file");
    assert!(raw.contains("staging"), "{raw}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&choices).expect("stat").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // A sub-directory uses the same choice.
    let sub = ctx.cwd.join("src/deep");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let mut get = ctx.klef(["get", "WHERE", "--plain", "--password-stdin"]);
    get.current_dir(&sub);
    let got = klef_e2e::run_with_stdin(get, Some(format!("{PASSWORD}\n").as_bytes())).success();
    assert_eq!(got.stdout(), "staging");

    // KLEF_ENV beats the choice, and -e beats KLEF_ENV.
    ctx.set_env("KLEF_ENV", "production");
    assert_eq!(where_(ctx), "production");
    assert_eq!(
        current(ctx),
        ("production".into(), "env_var".into(), "development".into())
    );
    assert_eq!(
        ctx.run_pw(["get", "WHERE", "--plain", "-e", "development"])
            .success()
            .stdout(),
        "development"
    );
    let flagged = json(
        &ctx.run(["env", "list", "--json", "-e", "development"])
            .success(),
    );
    let cur = flagged
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["current"] == true)
        .expect("current");
    assert_eq!(cur["source"], "flag");
    ctx.remove_env("KLEF_ENV");

    // --save changes the team default (and this directory follows it).
    ctx.run(["env", "use", "production", "--save"])
        .success()
        .stderr_has("the team default is now \"production\"");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&klef).expect(".klef")).expect("json");
    assert_eq!(file["environment"], "production");
    assert_eq!(
        current(ctx),
        ("production".into(), "klef_file".into(), "production".into())
    );
    // --reset drops the user's own choice.
    ctx.run(["env", "use", "development"]).success();
    assert_eq!(where_(ctx), "development");
    ctx.run(["env", "use", "--reset"]).success();
    assert_eq!(where_(ctx), "production");
    assert_eq!(
        current(ctx),
        ("production".into(), "klef_file".into(), "production".into())
    );
    ctx.run(["env", "use"]).code_is(2);
    ctx.run(["env", "use", "nope"]).code_is(5).clean_error(&[]);

    // A choice whose environment is gone (deleted from another machine) says so and how to
    // choose again; the team default is not silently used instead.
    ctx.run(["env", "use", "staging"]).success();
    let raw = std::fs::read_to_string(&choices).expect("choices file");
    std::fs::write(&choices, raw.replace("\"staging\"", "\"gone-elsewhere\"")).expect("write");
    ctx.run_pw(["get", "WHERE"])
        .code_is(5)
        .clean_error(&[])
        .stderr_has("environment \"gone-elsewhere\", your choice for this directory, is not in project \"my-app\" any more")
        .stderr_has("`klef env use --reset` follows the team default");
    ctx.run(["env", "use", "--reset"]).success();
    assert_eq!(where_(ctx), "production");
}

#[test]
fn env_use_is_per_user_and_save_changes_the_team_default_locally() {
    let mut ctx = TestContext::new();
    precedence_suite(&mut ctx);
}

#[test]
fn another_user_in_the_same_checkout_keeps_the_team_default() {
    let ctx = TestContext::new();
    setup(&ctx);
    ctx.run(["env", "use", "staging"]).success();
    // Another user's home, same checkout: their choice is their own, so they see .klef's.
    let mut other = TestContext::new();
    other.cwd = ctx.cwd.clone();
    // Same vault (so the project exists), separate choices.
    std::fs::create_dir_all(other.klef_home().join("data")).expect("mkdir");
    std::fs::copy(ctx.vault_path(), other.vault_path()).expect("copy vault");
    assert_eq!(where_(&other), "development");
    assert_eq!(where_(&ctx), "staging");
}

#[test]
fn whoami_shows_the_environment_in_use_on_a_server() {
    let mut ctx = TestContext::new();
    ctx.server = Some(Server::sqlite(&ctx.root().join("server")));
    let url = ctx.server.as_ref().expect("server").url.clone();
    ctx.signup(&url, "owner@example.com");
    precedence_suite(&mut ctx);
    ctx.run(["env", "use", "staging"]).success();
    let me = json(&ctx.run(["whoami", "--json"]).success());
    assert_eq!(
        me["environment"],
        serde_json::json!({"slug": "staging", "source": "user"}),
        "{me}"
    );
    let text = ctx.run(["whoami"]).success().stdout();
    assert!(
        text.contains("environment      staging (your choice for this directory"),
        "{text}"
    );
}
