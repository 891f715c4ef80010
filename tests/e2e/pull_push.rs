//! `klef pull` never loses a line silently (issue #18): it refuses to overwrite a file holding
//! names the environment does not have unless `--force`, warns when git does not ignore the
//! target, and honours `--json` on stdout. `klef push --dry-run` writes nothing;
//! `klef push` imports JSON and YAML exports (by `--format`, extension or content), refusing
//! nested and non-string values by key. Run on the local vault, and the server-side parts on
//! `SQLite` and `PostgreSQL`.

use std::process::Command;

use klef_e2e::{Server, TestContext};
use serde_json::Value;

fn json(run: &klef_e2e::Run) -> Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

fn read(ctx: &TestContext, name: &str) -> String {
    std::fs::read_to_string(ctx.cwd.join(name)).expect("read")
}

fn write(ctx: &TestContext, name: &str, text: &str) {
    std::fs::write(ctx.cwd.join(name), text).expect("write");
}

fn get(ctx: &TestContext, key: &str) -> String {
    ctx.run_pw(["get", key, "--plain"]).success().stdout()
}

fn git(ctx: &TestContext, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(&ctx.cwd)
        .env("HOME", ctx.root().join("home"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pull_refuses_to_lose_names_the_environment_does_not_have() {
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "A=1", "B=2"]).success();
    let local = "A=old\nLOCAL_ONLY=keepme\n# a comment\nZ_LOCAL=also-kept\n";
    write(&ctx, ".env", local);

    ctx.run_pw(["pull"])
        .code_is(1)
        .clean_error(&["keepme", "also-kept"])
        .stderr_has(".env holds 2 names that environment \"development\" of project \"my-app\" does not have: LOCAL_ONLY, Z_LOCAL; refusing to overwrite it")
        .stderr_has("hint: `klef push .env` first keeps them, --force overwrites the file");
    assert_eq!(read(&ctx, ".env"), local, "nothing was written");

    // A JSON file (by extension) is read as JSON for the same check.
    write(&ctx, "out.json", "{\"A\": \"1\", \"JSON_ONLY\": \"x\"}\n");
    ctx.run_pw(["pull", "-o", "out.json"])
        .code_is(1)
        .stderr_has("JSON_ONLY");
    // A file klef cannot read is not overwritten either.
    write(&ctx, "odd.env", "this is not a dotenv line\n");
    ctx.run_pw(["pull", "-o", "odd.env"])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("odd.env exists and klef cannot tell which names it holds (dotenv line 1:");
    assert_eq!(read(&ctx, "odd.env"), "this is not a dotenv line\n");

    // --force overwrites; then the file holds only the environment's names and pulls again.
    ctx.run_pw(["pull", "--force"]).success();
    let pulled = read(&ctx, ".env");
    assert!(
        !pulled.contains("LOCAL_ONLY") && pulled.contains("B="),
        "{pulled}"
    );
    ctx.run_pw(["set", "B=3"]).success();
    ctx.run_pw(["pull"]).success();
    assert!(read(&ctx, ".env").contains("B='3'"));

    // After pushing the local names, a pull is safe again.
    write(&ctx, ".env", local);
    ctx.run_pw(["push"]).success();
    ctx.run_pw(["pull"]).success();
    assert!(read(&ctx, ".env").contains("LOCAL_ONLY='keepme'"));

    // A shell file with a quote in a value (which dotenv cannot read) is checked too.
    ctx.run_pw(["set", "Q=it's"]).success();
    ctx.run_pw(["pull", "-o", "env.sh", "--format", "shell"])
        .success();
    ctx.run_pw(["pull", "-o", "env.sh", "--format", "shell"])
        .success();
    std::fs::write(
        ctx.cwd.join("env.sh"),
        read(&ctx, "env.sh") + "export MINE='x'\n",
    )
    .expect("append");
    ctx.run_pw(["pull", "-o", "env.sh", "--format", "shell"])
        .code_is(1)
        .stderr_has(": MINE;");
}

#[test]
fn pull_warns_when_git_does_not_ignore_the_target() {
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "A=1"]).success();
    // Outside a git work tree: silent.
    let outside = ctx.run_pw(["pull"]).success();
    assert!(!outside.stderr().contains("git"), "{}", outside.stderr());

    git(&ctx, &["init", "-q"]);
    ctx.run_pw(["pull"])
        .success()
        .stderr_has("warning: .env is not ignored by git: a commit could publish these secrets")
        .stderr_has("hint: add `.env` to .gitignore");
    let summary = json(&ctx.run_pw(["pull", "--json"]).success());
    assert_eq!(summary["git_ignored"], false, "{summary}");

    write(&ctx, ".gitignore", ".env\n");
    let ignored = ctx.run_pw(["pull"]).success();
    assert!(
        !ignored.stderr().contains("warning"),
        "{}",
        ignored.stderr()
    );
    let summary = json(&ctx.run_pw(["pull", "--json"]).success());
    assert_eq!(summary["git_ignored"], true, "{summary}");
    assert_eq!(summary["count"], 1, "{summary}");
    assert_eq!(summary["format"], "dotenv", "{summary}");
    assert_eq!(summary["environment"], "development", "{summary}");

    // A file in a sub-directory that git does not ignore.
    std::fs::create_dir_all(ctx.cwd.join("config")).expect("mkdir");
    ctx.run_pw(["pull", "-o", "config/app.env"])
        .success()
        .stderr_has("config/app.env is not ignored by git");
}

#[test]
fn pull_to_stdout_honours_json_and_extensions_pick_the_format() {
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "A=1", "B=two words"]).success();
    let out = json(&ctx.run_pw(["pull", "-o", "-", "--json"]).success());
    assert_eq!(out, serde_json::json!({"A": "1", "B": "two words"}));
    ctx.run_pw(["pull", "-o", "-", "--json", "--format", "yaml"])
        .code_is(2)
        .clean_error(&[])
        .stderr_has("--json prints JSON, and --format asks for yaml");
    let yaml = ctx
        .run_pw(["pull", "-o", "-", "--format", "yaml"])
        .success();
    assert_eq!(yaml.stdout(), "\"A\": \"1\"\n\"B\": \"two words\"\n");

    ctx.run_pw(["pull", "-o", "secrets.json"]).success();
    let file: Value = serde_json::from_str(&read(&ctx, "secrets.json")).expect("JSON file");
    assert_eq!(file["B"], "two words");
    ctx.run_pw(["pull", "-o", "secrets.yml"]).success();
    assert_eq!(read(&ctx, "secrets.yml"), yaml.stdout());
    // And what was pulled in each format pushes back unchanged.
    for file in ["secrets.json", "secrets.yml"] {
        let dry = json(&ctx.run_pw(["push", file, "--dry-run", "--json"]).success());
        assert_eq!(
            dry["unchanged"],
            serde_json::json!(["A", "B"]),
            "{file}: {dry}"
        );
    }
}

/// `--dry-run` shows the whole summary, `--replace` included, and writes nothing.
fn dry_run_writes_nothing(ctx: &TestContext) {
    ctx.run_pw(["set", "KEEP=1", "CHANGE=old", "DROP=x"])
        .success();
    write(ctx, "new.env", "KEEP=1\nCHANGE=new\nADD=yes\n");
    let dry = ctx
        .run_pw(["push", "new.env", "--replace", "--dry-run", "--json"])
        .success();
    let summary = json(&dry);
    assert_eq!(
        summary,
        serde_json::json!({"added": ["ADD"], "changed": ["CHANGE"], "unchanged": ["KEEP"],
                           "removed": ["DROP"], "dry_run": true})
    );
    let err = dry.stderr();
    assert!(
        err.contains("would add: ADD")
            && err.contains("would change: CHANGE")
            && err.contains("would remove: DROP")
            && err.contains("dry run, nothing written: pushing new.env to environment \"development\" of project \"my-app\" would add 1, change 1, keep 1 unchanged and remove 1"),
        "{err}"
    );
    assert!(
        !err.contains("yes") && !err.contains("old"),
        "no value is shown: {err}"
    );
    assert_eq!(get(ctx, "CHANGE"), "old");
    assert_eq!(get(ctx, "DROP"), "x");
    ctx.run_pw(["get", "ADD"]).code_is(5);
    let history = ctx.run_pw(["history", "CHANGE", "--json"]).success();
    assert_eq!(
        json(&history).as_array().map(Vec::len),
        Some(1),
        "no new version"
    );

    // The real push does what the dry run said.
    let real = json(
        &ctx.run_pw(["push", "new.env", "--replace", "--yes", "--json"])
            .success(),
    );
    assert_eq!(real["dry_run"], false);
    assert_eq!(real["removed"], serde_json::json!(["DROP"]));
    assert_eq!(get(ctx, "CHANGE"), "new");
    ctx.run_pw(["get", "DROP"]).code_is(5);
}

#[test]
fn push_dry_run_writes_nothing_locally() {
    let ctx = TestContext::new();
    ctx.init();
    dry_run_writes_nothing(&ctx);
}

fn on_server(server: Option<Server>) -> Option<TestContext> {
    let mut ctx = TestContext::new();
    ctx.server = Some(server?);
    let url = ctx.server.as_ref().map(|s| s.url.clone()).expect("url");
    ctx.signup(&url, "owner@example.com");
    ctx.init();
    Some(ctx)
}

/// On a server: the dry run and the pull refusal are the same, the server is never written.
fn server_suite(ctx: &TestContext) {
    dry_run_writes_nothing(ctx);
    write(ctx, ".env", "KEEP=1\nMINE=local\n");
    ctx.run_pw(["pull"]).code_is(1).stderr_has(": MINE;");
    assert_eq!(read(ctx, ".env"), "KEEP=1\nMINE=local\n");
    write(ctx, "x.yaml", "NEW_FROM_YAML: \"y\"\n");
    ctx.run_pw(["push", "x.yaml"]).success();
    assert_eq!(get(ctx, "NEW_FROM_YAML"), "y");
}

#[test]
fn push_dry_run_and_pull_refusal_on_a_sqlite_server() {
    let root = tempfile::tempdir().expect("tempdir");
    let ctx = on_server(Some(Server::sqlite(root.path()))).expect("sqlite");
    server_suite(&ctx);
}

#[test]
fn push_dry_run_and_pull_refusal_on_a_postgres_server() {
    let root = tempfile::tempdir().expect("tempdir");
    let Some(ctx) = on_server(Server::postgres(root.path())) else {
        return;
    };
    server_suite(&ctx);
}

#[test]
fn push_imports_json_and_yaml_exports() {
    let ctx = TestContext::new();
    ctx.init();
    // By extension.
    write(
        &ctx,
        "export.json",
        "{\n  \"DB_URL\": \"postgres://u:p@h/db\",\n  \"MULTI\": \"a\\nb\",\n  \"EMPTY\": \"\"\n}\n",
    );
    ctx.run_pw(["push", "export.json"])
        .success()
        .stderr_has("3 added");
    assert_eq!(get(&ctx, "MULTI"), "a\nb");
    write(
        &ctx,
        "export.yml",
        "# from another tool\nDB_URL: postgres://u:p@h/db2\nPORT: \"5432\"\nCERT: |\n  line one\n  line two\n",
    );
    ctx.run_pw(["push", "export.yml"])
        .success()
        .stderr_has("2 added, 1 changed");
    assert_eq!(get(&ctx, "CERT"), "line one\nline two\n");
    assert_eq!(get(&ctx, "PORT"), "5432");

    // By content: JSON in a file called .env is no longer "line 1: expected a space…".
    write(&ctx, ".env", "{\"FROM_JSON\": \"j\"}\n");
    ctx.run_pw(["push"]).success();
    assert_eq!(get(&ctx, "FROM_JSON"), "j");
    write(&ctx, "plain", "---\nFROM_YAML: 'it''s'\n");
    ctx.run_pw(["push", "plain"]).success();
    assert_eq!(get(&ctx, "FROM_YAML"), "it's");
    // By --format, over the extension.
    write(&ctx, "weird.txt", "FROM_FLAG: \"f\"\n");
    ctx.run_pw(["push", "weird.txt", "--format", "yaml"])
        .success();
    assert_eq!(get(&ctx, "FROM_FLAG"), "f");
    // The same file read as dotenv fails with a hint to the format it is.
    write(&ctx, "quoted", "\"QUOTED\": \"q\"\nOTHER: x\n");
    ctx.run_pw(["push", "quoted", "--format", "dotenv"])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("failed to parse quoted as dotenv: line 1:")
        .stderr_has("hint: the file reads as YAML: pass --format yaml");
}

#[test]
fn push_refuses_nested_and_non_string_values_by_key_and_writes_nothing() {
    let ctx = TestContext::new();
    ctx.init();
    let cases: &[(&str, &str, &str)] = &[
        (
            "nested.json",
            "{\"OK\": \"1\", \"DB\": {\"password\": \"hunter2-secret\"}}",
            "failed to parse nested.json as JSON: the value of \"DB\" is a nested object; only string values can be imported",
        ),
        (
            "number.json",
            "{\"OK\": \"1\", \"PORT\": 99887766}",
            "the value of \"PORT\" is a number",
        ),
        (
            "list.yaml",
            "OK: \"1\"\nHOSTS:\n  - hunter2-secret\n",
            "failed to parse list.yaml as YAML: line 2: the value of \"HOSTS\" is a list",
        ),
        (
            "number.yaml",
            "OK: \"1\"\nPORT: 99887766\n",
            "line 2: the value of \"PORT\" is a number; only string values can be imported (quote it to import it as text)",
        ),
        (
            "alias.yaml",
            "OK: &a hunter2-secret\nCOPY: *a\n",
            "the value of \"COPY\" is an alias",
        ),
        (
            "two.yaml",
            "OK: \"1\"\n---\nOK: \"2\"\n",
            "more than one YAML document",
        ),
        (
            "dup.json",
            "{\"OK\": \"1\", \"OK\": \"hunter2-secret\"}",
            "\"OK\" is given twice",
        ),
        (
            "badname.json",
            "{\"OK\": \"1\", \"not a name\": \"hunter2-secret\"}",
            "not a name",
        ),
        (
            "broken.json",
            "{\"OK\": \"1\",",
            "failed to parse broken.json as JSON",
        ),
    ];
    for (file, text, want) in cases {
        write(&ctx, file, text);
        ctx.run_pw(["push", file])
            .clean_error(&["hunter2-secret", "99887766"])
            .stderr_has(want);
        ctx.run_pw(["get", "OK"]).code_is(5);
    }
}
