//! The local-use workflow of CLI.md, written once and run per backend: the local vault, and a
//! real `klef-server` on `SQLite` and on `PostgreSQL` (signed up with `klef signup`, then
//! `klef init` as everywhere else).

use klef_e2e::{PASSWORD, Server, TestContext};
use serde_json::Value;

/// Where the vault lives for a suite run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// The embedded local vault.
    Local,
    /// A real `klef-server` on its own `SQLite` file.
    ServerSqlite,
    /// A real `klef-server` on its own `PostgreSQL` schema (`KLEF_TEST_DATABASE_URL`).
    ServerPostgres,
}

/// A context with an initialised project `my-app` in `mode`; `None` when the mode cannot run
/// here (`PostgreSQL` without `KLEF_TEST_DATABASE_URL`, outside CI: a note is printed).
pub(crate) fn try_setup(mode: Mode) -> Option<TestContext> {
    let mut ctx = TestContext::new();
    let dir = ctx.root().join("server");
    match mode {
        Mode::Local => {}
        Mode::ServerSqlite => ctx.server = Some(Server::sqlite(&dir)),
        Mode::ServerPostgres => ctx.server = Some(Server::postgres(&dir)?),
    }
    if let Some(server) = &ctx.server {
        let url = server.url.clone();
        ctx.signup(&url, "owner@example.com");
    }
    ctx.init();
    Some(ctx)
}

/// [`try_setup`] for the suite below: modes that cannot run here return early.
macro_rules! setup {
    ($mode:expr) => {
        match try_setup($mode) {
            Some(ctx) => ctx,
            None => return,
        }
    };
}

fn json(run: &klef_e2e::Run) -> Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

pub(crate) fn init_writes_klef_file(mode: Mode) {
    let ctx = setup!(mode);
    let raw = std::fs::read_to_string(ctx.cwd.join(".klef")).expect(".klef written");
    let file: Value = serde_json::from_str(&raw).expect(".klef is JSON");
    assert_eq!(file["version"], 1);
    assert_eq!(file["environment"], "development");
    assert!(
        file["project"].as_str().is_some_and(|p| p.len() == 36),
        "{raw}"
    );
    assert!(!raw.contains(PASSWORD));
    let envs = ctx.run(["env", "list", "--json"]).success();
    let slugs: Vec<String> = json(&envs)
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["slug"].as_str().expect("slug").to_owned())
        .collect();
    for s in ["development", "staging", "production"] {
        assert!(slugs.contains(&s.to_owned()), "{slugs:?}");
    }
    let projects = ctx.run(["projects", "list", "--json"]).success();
    assert!(projects.stdout().contains("my-app"));
}

pub(crate) fn set_get_list_unset(mode: Mode) {
    let ctx = setup!(mode);
    ctx.run_pw(["set", "API_KEY", "sk-123"]).success();
    ctx.run_pw(["set", "A=1", "B=two words", "C="]).success();
    assert_eq!(
        ctx.run_pw(["get", "API_KEY"]).success().stdout(),
        "sk-123\n"
    );
    assert_eq!(
        ctx.run_pw(["get", "API_KEY", "--plain"]).success().stdout(),
        "sk-123"
    );
    assert_eq!(
        ctx.run_pw(["get", "B", "--plain"]).success().stdout(),
        "two words"
    );
    assert_eq!(ctx.run_pw(["get", "C", "--plain"]).success().stdout(), "");

    let list = ctx.run(["list", "--json"]).success();
    let names: Vec<String> = json(&list)
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(names, ["A", "API_KEY", "B", "C"]);
    assert!(
        !list.stdout().contains("sk-123"),
        "list without --reveal shows no values"
    );
    let revealed = ctx.run_pw(["list", "--reveal", "--json"]).success();
    assert!(revealed.stdout().contains("sk-123"));

    ctx.run_pw(["unset", "API_KEY", "A"]).success();
    ctx.run_pw(["get", "API_KEY"])
        .code_is(5)
        .clean_error(&[])
        .stderr_has("development");
    let list = ctx.run(["list", "--json"]).success();
    assert_eq!(json(&list).as_array().expect("array").len(), 2);
}

pub(crate) fn set_from_stdin_keeps_value_out_of_argv(mode: Mode) {
    let ctx = setup!(mode);
    let value = "line one\nline two\n";
    let mut cmd = ctx.klef(["set", "CERT"]);
    cmd.env("KLEF_PASSWORD", PASSWORD);
    klef_e2e::run_with_stdin(cmd, Some(value.as_bytes())).success();
    let got = ctx.run_pw(["get", "CERT", "--plain"]).success();
    assert_eq!(got.output.stdout, value.as_bytes());
}

pub(crate) fn environments_and_overrides(mode: Mode) {
    let mut ctx = setup!(mode);
    ctx.run_pw(["set", "WHERE", "dev"]).success();
    ctx.run_pw(["set", "WHERE", "prod", "-e", "production"])
        .success();
    assert_eq!(
        ctx.run_pw(["get", "WHERE", "--plain"]).success().stdout(),
        "dev"
    );
    assert_eq!(
        ctx.run_pw(["get", "WHERE", "--plain", "--env", "production"])
            .success()
            .stdout(),
        "prod"
    );
    ctx.set_env("KLEF_ENV", "production");
    assert_eq!(
        ctx.run_pw(["get", "WHERE", "--plain"]).success().stdout(),
        "prod"
    );
    ctx.remove_env("KLEF_ENV");

    // `env use` is the user's own choice: the committed .klef does not change.
    let klef_before = std::fs::read(ctx.cwd.join(".klef")).expect("read");
    ctx.run(["env", "use", "production"]).success();
    assert_eq!(
        std::fs::read(ctx.cwd.join(".klef")).expect("read"),
        klef_before
    );
    assert_eq!(
        ctx.run_pw(["get", "WHERE", "--plain"]).success().stdout(),
        "prod"
    );
    // `--save` changes the team default.
    ctx.run(["env", "use", "production", "--save"]).success();
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(ctx.cwd.join(".klef")).expect("read"))
            .expect("json");
    assert_eq!(file["environment"], "production");
    assert_eq!(
        ctx.run_pw(["get", "WHERE", "--plain"]).success().stdout(),
        "prod"
    );

    ctx.run_pw(["env", "create", "qa", "--name", "QA"])
        .success();
    ctx.run_pw(["set", "WHERE", "qa", "-e", "qa"]).success();
    assert_eq!(
        ctx.run_pw(["get", "WHERE", "--plain", "-e", "qa"])
            .success()
            .stdout(),
        "qa"
    );
    let envs = ctx.run(["env", "list", "--json"]).success();
    assert!(envs.stdout().contains("\"qa\""));
    ctx.run_pw(["env", "create", "qa"]).clean_error(&[]);
}

pub(crate) fn workspaces_projects_and_link(mode: Mode) {
    let ctx = setup!(mode);
    let ws = ctx.run(["workspace", "list", "--json"]).success();
    assert_eq!(
        json(&ws).as_array().expect("array").len(),
        1,
        "a personal workspace exists by default"
    );
    ctx.run_pw(["set", "SHARED", "yes"]).success();

    // A second directory linked to the same project sees the same secrets.
    let other = ctx.root().join("other-checkout");
    std::fs::create_dir_all(&other).expect("mkdir");
    let mut link = ctx.klef(["link", "my-app"]);
    link.current_dir(&other);
    klef_e2e::run_with_stdin(link, None).success();
    let mut get = ctx.klef(["get", "SHARED", "--plain", "--password-stdin"]);
    get.current_dir(&other);
    let got = klef_e2e::run_with_stdin(get, Some(format!("{PASSWORD}\n").as_bytes())).success();
    assert_eq!(got.stdout(), "yes");

    // A sub-directory finds .klef upwards.
    let sub = ctx.cwd.join("src/deep");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let mut get = ctx.klef(["get", "SHARED", "--plain", "--password-stdin"]);
    get.current_dir(&sub);
    let got = klef_e2e::run_with_stdin(get, Some(format!("{PASSWORD}\n").as_bytes())).success();
    assert_eq!(got.stdout(), "yes");

    ctx.run_pw(["workspace", "create", "Acme Inc"]).success();
    ctx.run(["workspace", "use", "Acme Inc"]).success();
    let ws = ctx.run(["workspace", "list", "--json"]).success();
    assert_eq!(json(&ws).as_array().expect("array").len(), 2);
    let projects = ctx.run(["projects", "list", "--json"]).success();
    assert!(
        !projects.stdout().contains("my-app"),
        "projects list shows the current workspace only"
    );
}

pub(crate) fn history_and_rollback(mode: Mode) {
    let ctx = setup!(mode);
    for v in ["one", "two", "three"] {
        ctx.run_pw(["set", "K", v]).success();
    }
    let hist = ctx.run(["history", "K", "--json"]).success();
    let versions = json(&hist);
    assert_eq!(versions.as_array().expect("array").len(), 3, "{versions}");
    ctx.run_pw(["rollback", "K", "1"]).success();
    assert_eq!(
        ctx.run_pw(["get", "K", "--plain"]).success().stdout(),
        "one"
    );
    ctx.run_pw(["unset", "K"]).success();
    let hist = ctx.run(["history", "K", "--json"]).success();
    assert_eq!(
        json(&hist).as_array().expect("array").len(),
        5,
        "delete keeps history"
    );
    ctx.run_pw(["rollback", "K", "2"]).success();
    assert_eq!(
        ctx.run_pw(["get", "K", "--plain"]).success().stdout(),
        "two"
    );
    ctx.run_pw(["rollback", "K", "99"])
        .code_is(5)
        .clean_error(&[]);
}

/// Values that stress every format: newlines, quotes, `=`, `#`, `$`, backslashes, non-ASCII.
pub(crate) const TRICKY: &[(&str, &str)] = &[
    ("PLAIN", "simple"),
    ("SPACES", "  padded value  "),
    ("NEWLINES", "line1\nline2\n\nline4"),
    ("DQUOTE", "say \"hi\""),
    ("SQUOTE", "it's"),
    ("BOTHQ", "'\"`mixed`\"'"),
    ("EQUALS", "a=b=c"),
    ("HASH", "value # not a comment"),
    // No `${`: that starts a reference (tests/e2e/references.rs covers `$${` in every format).
    ("DOLLAR", "$HOME $PATH $(whoami) $$ {braces} $"),
    ("BACKSLASH", "C:\\path\\n\\t"),
    ("UNICODE", "héllo wörld ☃ 日本"),
    ("EMPTY", ""),
    ("CRLF", "a\r\nb"),
    ("PEM", "-----BEGIN KEY-----\nMIIB\n-----END KEY-----\n"),
];

fn set_tricky(ctx: &TestContext, env: &str) {
    for (k, v) in TRICKY {
        let mut cmd = ctx.klef(["set", k, "-e", env]);
        cmd.env("KLEF_PASSWORD", PASSWORD);
        klef_e2e::run_with_stdin(cmd, Some(v.as_bytes())).success();
    }
}

fn assert_env_has_tricky(ctx: &TestContext, env: &str) {
    for (k, v) in TRICKY {
        let got = ctx.run_pw(["get", k, "--plain", "-e", env]).success();
        assert_eq!(got.output.stdout, v.as_bytes(), "{k} in {env}");
        let script = format!("printf %s \"${k}\"");
        let ran = ctx
            .run_pw(["run", "-e", env, "--", "sh", "-c", &script])
            .success();
        assert_eq!(ran.output.stdout, v.as_bytes(), "{k} through run in {env}");
    }
}

pub(crate) fn tricky_values_survive_set_pull_push_run(mode: Mode) {
    let ctx = setup!(mode);
    set_tricky(&ctx, "development");
    assert_env_has_tricky(&ctx, "development");

    ctx.run_pw(["pull"]).success();
    let env_file = ctx.cwd.join(".env");
    let mode_bits = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&env_file).expect("stat").permissions(),
    );
    assert_eq!(mode_bits & 0o777, 0o600, ".env is created 0600");

    let pushed = ctx.run_pw(["push", ".env", "-e", "staging"]).success();
    assert!(pushed.stderr().contains("added"), "{}", pushed.stderr());
    assert_env_has_tricky(&ctx, "staging");

    // Pushing the same file again changes nothing.
    let again = ctx.run_pw(["push", ".env", "-e", "staging"]).success();
    assert!(
        again
            .stderr()
            .contains(&format!("{} unchanged", TRICKY.len())),
        "{}",
        again.stderr()
    );

    // Every format renders; JSON parses back to the exact values.
    let as_json = ctx
        .run_pw(["pull", "-o", "-", "--format", "json"])
        .success();
    let obj = json(&as_json);
    for (k, v) in TRICKY {
        assert_eq!(obj[k].as_str(), Some(*v), "{k} in JSON");
    }
    // Shell output is safe to eval.
    let shell = ctx
        .run_pw(["pull", "-o", "-", "--format", "shell"])
        .success();
    let sh_file = ctx.root().join("env.sh");
    std::fs::write(&sh_file, shell.output.stdout).expect("write");
    for (k, v) in TRICKY {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(". \"$1\"; printf %s \"${k}\""))
            .arg("sh")
            .arg(&sh_file)
            .env_clear()
            .output()
            .expect("sh");
        assert_eq!(out.stdout, v.as_bytes(), "{k} through eval");
    }
    ctx.run_pw(["pull", "-o", "-", "--format", "yaml"])
        .success();
}

pub(crate) fn pulled_file_reads_back_in_node_dotenv(mode: Mode) {
    let node_modules =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("node/node_modules/dotenv");
    if !node_modules.is_dir() {
        assert!(
            std::env::var("CI").is_err(),
            "tests/node/node_modules is missing in CI: run `npm ci --prefix tests/node`"
        );
        eprintln!("note: skipping the node dotenv read-back (run `npm ci --prefix tests/node`)");
        return;
    }
    let ctx = setup!(mode);
    set_tricky(&ctx, "development");
    let pulled = ctx.run_pw(["pull", "-o", "pulled.env"]).success();
    // Values no .env quoting can carry to node are named in a warning (docs/dotenv.md).
    let klef_only: Vec<String> = pulled
        .stderr()
        .lines()
        .find(|l| l.contains("to node dotenv exactly"))
        .and_then(|l| l.rsplit(": ").next())
        .map(|names| names.split(", ").map(str::to_owned).collect())
        .unwrap_or_default();
    assert_eq!(
        klef_only,
        ["BOTHQ"],
        "only the value with all three quote kinds is unportable"
    );
    let script = "const fs=require('fs');const d=require(process.argv[1]);process.stdout.write(JSON.stringify(d.parse(fs.readFileSync(process.argv[2]))))";
    let out = std::process::Command::new("node")
        .args(["-e", script, node_modules.to_str().expect("utf-8 path")])
        .arg(ctx.cwd.join("pulled.env"))
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("json");
    for (k, v) in TRICKY {
        if klef_only.iter().any(|n| n == k) {
            continue;
        }
        assert_eq!(parsed[k].as_str(), Some(*v), "node dotenv read {k}");
    }
}

pub(crate) fn push_replace_and_summary(mode: Mode) {
    let ctx = setup!(mode);
    ctx.run_pw(["set", "KEEP=1", "CHANGE=old", "DROP=x"])
        .success();
    std::fs::write(ctx.cwd.join("new.env"), "KEEP=1\nCHANGE=new\nADD=yes\n").expect("write");
    let pushed = ctx.run_pw(["push", "new.env"]).success();
    let err = pushed.stderr();
    assert!(
        err.contains("1 added") && err.contains("1 changed") && err.contains("1 unchanged"),
        "{err}"
    );
    assert_eq!(
        ctx.run_pw(["get", "DROP", "--plain"]).success().stdout(),
        "x",
        "push without --replace keeps others"
    );

    // --replace without --yes and without a TTY refuses, changing nothing.
    ctx.run_pw(["push", "new.env", "--replace"])
        .clean_error(&[]);
    assert_eq!(
        ctx.run_pw(["get", "DROP", "--plain"]).success().stdout(),
        "x"
    );
    let replaced = ctx
        .run_pw(["push", "new.env", "--replace", "--yes"])
        .success();
    assert!(
        replaced.stderr().contains("1 removed"),
        "{}",
        replaced.stderr()
    );
    ctx.run_pw(["get", "DROP"]).code_is(5);
}

pub(crate) fn pull_writes_atomically_and_formats(mode: Mode) {
    let ctx = setup!(mode);
    ctx.run_pw(["set", "A=1", "B=2"]).success();
    ctx.run_pw(["pull", "-o", "out.env"]).success();
    let content = std::fs::read_to_string(ctx.cwd.join("out.env")).expect("read");
    assert!(
        content.contains("A=") && content.contains("B="),
        "{content}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&ctx.cwd)
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".klef" && n != "out.env")
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temp files left behind: {leftovers:?}"
    );
    ctx.run_pw(["pull", "--format", "toml"]).code_is(2);
}

pub(crate) fn rotate_key_keeps_values_readable(mode: Mode) {
    let ctx = setup!(mode);
    ctx.run_pw(["set", "A=1", "B=two words", "-e", "staging"])
        .success();
    ctx.run_pw(["set", "P=prod", "-e", "production"]).success();
    let out = json(
        &ctx.run_pw(["env", "rotate-key", "staging", "--json"])
            .success(),
    );
    assert_eq!(out["key_version"], 2, "{out}");
    assert_eq!(out["reencrypted"], 2, "{out}");
    assert_eq!(
        ctx.run_pw(["get", "B", "--plain", "-e", "staging"])
            .success()
            .stdout(),
        "two words"
    );
    assert_eq!(
        ctx.run_pw(["get", "P", "--plain", "-e", "production"])
            .success()
            .stdout(),
        "prod"
    );
    // Versions sealed under the old key cannot come back as current ones.
    ctx.run_pw(["rollback", "B", "1", "-e", "staging"])
        .clean_error(&["two words"])
        .stderr_has("earlier key");
}

macro_rules! backend_suite {
    ($mode:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::$name($mode);
            }
        )*
    };
}

macro_rules! all_workflow_tests {
    ($mode:expr) => {
        backend_suite!($mode;
            init_writes_klef_file,
            set_get_list_unset,
            set_from_stdin_keeps_value_out_of_argv,
            environments_and_overrides,
            workspaces_projects_and_link,
            history_and_rollback,
            tricky_values_survive_set_pull_push_run,
            pulled_file_reads_back_in_node_dotenv,
            push_replace_and_summary,
            pull_writes_atomically_and_formats,
            rotate_key_keeps_values_readable,
        );
    };
}

mod local_vault {
    all_workflow_tests!(super::Mode::Local);
}

mod server_sqlite {
    all_workflow_tests!(super::Mode::ServerSqlite);
}

mod server_postgres {
    all_workflow_tests!(super::Mode::ServerPostgres);
}
