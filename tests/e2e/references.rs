//! Issue #19's everyday workflows, resolved on the client after decryption: references between
//! values (`${KEY}`, `${env.KEY}`, `${project/env.KEY}`, `$${`) in `get`, `run`, `pull` (every
//! format) and `inject`, with `--raw`; `klef inject` templates; `klef run --mask`. Each runs on
//! the local vault and on a server over `SQLite` and `PostgreSQL`; the team tests (a restricted
//! member, a system key) run on both databases.

use std::os::unix::fs::PermissionsExt as _;

use klef_e2e::{PASSWORD, TestContext};
use serde_json::Value;

use crate::team::{BOB, Db, ci, joined, on_both, system_key};
use crate::workflow::{Mode, try_setup};

macro_rules! setup {
    ($mode:expr) => {
        match try_setup($mode) {
            Some(ctx) => ctx,
            None => return,
        }
    };
}

/// `klef set` with the value on stdin (so it is in no argv), asserting success.
fn set(ctx: &TestContext, env: &str, key: &str, value: &str) {
    let mut cmd = ctx.klef(["set", key, "-e", env]);
    cmd.env("KLEF_PASSWORD", PASSWORD);
    klef_e2e::run_with_stdin(cmd, Some(value.as_bytes())).success();
}

fn json(run: &klef_e2e::Run) -> Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

/// A second project `billing` (in a directory of its own) with `KEY=billing-key` in production.
fn billing(ctx: &TestContext) {
    let dir = ctx.root().join("billing");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut init = ctx.klef(["--password-stdin", "init", "billing"]);
    init.current_dir(&dir);
    klef_e2e::run_with_stdin(init, Some(format!("{PASSWORD}\n").as_bytes())).success();
    let mut set = ctx.klef(["set", "KEY", "-e", "production"]);
    set.current_dir(&dir).env("KLEF_PASSWORD", PASSWORD);
    klef_e2e::run_with_stdin(set, Some(b"billing-key")).success();
}

pub(crate) fn references_resolve_in_get_run_and_pull(mode: Mode) {
    let ctx = setup!(mode);
    set(&ctx, "development", "DB_USER", "app");
    set(&ctx, "development", "DB_HOST", "db.internal");
    set(
        &ctx,
        "development",
        "DB_URL",
        "postgres://${DB_USER}@${DB_HOST}/app",
    );
    set(&ctx, "staging", "HOST", "stg.internal");
    set(&ctx, "staging", "URL", "https://${HOST}/v1");
    set(&ctx, "development", "STG", "[${staging.URL}]");
    set(&ctx, "development", "LIT", "$${NOT_A_REF} costs $$5");
    billing(&ctx);
    set(&ctx, "development", "BILLING", "${billing/production.KEY}");

    let get = |k: &str, extra: &[&str]| {
        let mut args = vec!["get", k, "--plain"];
        args.extend(extra);
        ctx.run_pw(args).success().stdout()
    };
    assert_eq!(get("DB_URL", &[]), "postgres://app@db.internal/app");
    assert_eq!(
        get("DB_URL", &["--raw"]),
        "postgres://${DB_USER}@${DB_HOST}/app"
    );
    assert_eq!(get("STG", &[]), "[https://stg.internal/v1]");
    assert_eq!(get("LIT", &[]), "${NOT_A_REF} costs $$5");
    assert_eq!(get("BILLING", &[]), "billing-key");
    let got = json(&ctx.run_pw(["get", "DB_URL", "--json"]).success());
    assert_eq!(got["value"], "postgres://app@db.internal/app");

    let ran = ctx
        .run_pw([
            "run",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s|%s' \"$DB_URL\" \"$STG\" \"$LIT\" \"$BILLING\"",
        ])
        .success();
    assert_eq!(
        ran.stdout(),
        "postgres://app@db.internal/app|[https://stg.internal/v1]|${NOT_A_REF} costs $$5|billing-key"
    );
    let raw = ctx
        .run_pw(["run", "--raw", "--", "sh", "-c", "printf %s \"$DB_URL\""])
        .success();
    assert_eq!(raw.stdout(), "postgres://${DB_USER}@${DB_HOST}/app");

    let as_json = json(
        &ctx.run_pw(["pull", "-o", "-", "--format", "json"])
            .success(),
    );
    assert_eq!(as_json["DB_URL"], "postgres://app@db.internal/app");
    assert_eq!(as_json["LIT"], "${NOT_A_REF} costs $$5");
    let dotenv = ctx.run_pw(["pull", "-o", "-"]).success().stdout();
    assert!(
        dotenv.contains("postgres://app@db.internal/app"),
        "{dotenv}"
    );
    let yaml = ctx
        .run_pw(["pull", "-o", "-", "--format", "yaml"])
        .success()
        .stdout();
    assert!(yaml.contains("billing-key"), "{yaml}");
    // Shell output keeps the resolved `${` literal through eval.
    let shell = ctx
        .run_pw(["pull", "-o", "-", "--format", "shell"])
        .success();
    let sh_file = ctx.root().join("env.sh");
    std::fs::write(&sh_file, shell.output.stdout).expect("write");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(". \"$1\"; printf %s \"$LIT\"")
        .arg("sh")
        .arg(&sh_file)
        .env_clear()
        .output()
        .expect("sh");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "${NOT_A_REF} costs $$5"
    );
    // --raw writes the stored text, which `klef push` reads back with the references.
    ctx.run_pw(["pull", "--raw", "-o", "raw.env"]).success();
    let text = std::fs::read_to_string(ctx.cwd.join("raw.env")).expect("read");
    assert!(text.contains("${DB_USER}"), "{text}");
    ctx.run_pw(["push", "raw.env", "-e", "production"])
        .success();
    set(&ctx, "production", "DB_HOST", "db.prod");
    assert_eq!(
        get("DB_URL", &["-e", "production"]),
        "postgres://app@db.prod/app"
    );
}

pub(crate) fn reference_errors_name_the_chain(mode: Mode) {
    let ctx = setup!(mode);
    set(&ctx, "development", "A", "secret-a-${B}");
    set(&ctx, "development", "B", "secret-b-${A}");
    let secrets = ["secret-a-", "secret-b-"];
    for args in [
        &["get", "A"][..],
        &["run", "--", "true"],
        &["pull", "-o", "cycle.env"],
        &["pull", "-o", "-"],
    ] {
        ctx.run_pw(args)
            .code_is(1)
            .clean_error(&secrets)
            .stderr_has("reference cycle: A → B → A")
            .stderr_has("hint:");
    }
    assert!(!ctx.cwd.join("cycle.env").exists(), "nothing written");
    // --raw still reads the stored text.
    assert_eq!(
        ctx.run_pw(["get", "A", "--plain", "--raw"])
            .success()
            .stdout(),
        "secret-a-${B}"
    );
    ctx.run_pw(["unset", "A", "B"]).success();

    set(
        &ctx,
        "development",
        "DB_URL",
        "postgres://u:pw-9f3@${staging.DB_HOST}/app",
    );
    set(&ctx, "staging", "OTHER", "staging-only-value");
    for args in [
        &["get", "DB_URL"][..],
        &["run", "--", "true"],
        &["pull", "-o", "-"],
    ] {
        ctx.run_pw(args)
            .code_is(5)
            .clean_error(&["pw-9f3", "staging-only-value"])
            .stderr_has("DB_URL → staging.DB_HOST (not found)");
    }
    set(&ctx, "development", "DB_URL", "${qa.DB_HOST}");
    ctx.run_pw(["get", "DB_URL"])
        .code_is(5)
        .clean_error(&[])
        .stderr_has("DB_URL → qa.DB_HOST (environment not found)");
    set(
        &ctx,
        "development",
        "DB_URL",
        "${nowhere/production.DB_HOST}",
    );
    ctx.run_pw(["get", "DB_URL"])
        .code_is(5)
        .clean_error(&[])
        .stderr_has("DB_URL → nowhere/production.DB_HOST (project not found)");
    // Stored as given, with a warning naming the problem (not the value).
    let mut cmd = ctx.klef(["set", "DB_URL", "-e", "development"]);
    cmd.env("KLEF_PASSWORD", PASSWORD);
    let stored = klef_e2e::run_with_stdin(cmd, Some(b"pw-9f3 ${DB_HOST")).success();
    assert!(
        stored
            .stderr()
            .contains("warning: DB_URL holds an invalid reference"),
        "{}",
        stored.stderr()
    );
    assert!(!stored.stderr().contains("pw-9f3"), "{}", stored.stderr());
    ctx.run_pw(["get", "DB_URL"])
        .code_is(1)
        .clean_error(&["pw-9f3"])
        .stderr_has("invalid reference in DB_URL")
        .stderr_has("$${");
}

pub(crate) fn inject_renders_templates(mode: Mode) {
    let ctx = setup!(mode);
    set(&ctx, "development", "DB_HOST", "db.internal");
    set(
        &ctx,
        "development",
        "DB_URL",
        "postgres://app@${DB_HOST}/app",
    );
    set(&ctx, "staging", "TOKEN", "stg-token");
    let template = "db: {{ klef:DB_URL }}\n\
                    token: {{klef:staging.TOKEN}}\n\
                    helm: {{ .Values.replicas }} {{ klef \"X\" }} ${{ secrets.GH }}\n";
    let expected = "db: postgres://app@db.internal/app\n\
                    token: stg-token\n\
                    helm: {{ .Values.replicas }} {{ klef \"X\" }} ${{ secrets.GH }}\n";
    std::fs::write(ctx.cwd.join("config.tmpl"), template).expect("write");

    // -o FILE: written 0600, atomically (no temporary file left).
    ctx.run_pw(["inject", "-i", "config.tmpl", "-o", "config.yaml"])
        .success();
    let out = ctx.cwd.join("config.yaml");
    assert_eq!(std::fs::read_to_string(&out).expect("read"), expected);
    let mode_bits = std::fs::metadata(&out).expect("stat").permissions().mode();
    assert_eq!(mode_bits & 0o777, 0o600);
    let names: Vec<String> = std::fs::read_dir(&ctx.cwd)
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".klef-tmp")),
        "{names:?}"
    );
    // -o - (the default) prints; -i - reads stdin.
    assert_eq!(
        ctx.run_pw(["inject", "-i", "config.tmpl"])
            .success()
            .stdout(),
        expected
    );
    let mut cmd = ctx.klef(["inject", "-i", "-", "-o", "-"]);
    cmd.env("KLEF_PASSWORD", PASSWORD);
    let piped = klef_e2e::run_with_stdin(cmd, Some(template.as_bytes())).success();
    assert_eq!(piped.stdout(), expected);

    // Unknown names: all listed, nothing written, an existing file left alone.
    std::fs::write(
        ctx.cwd.join("bad.tmpl"),
        "a: {{klef:NOPE}}\nb: {{klef:staging.MISSING}}\nc: {{klef:DB_URL}}\n",
    )
    .expect("write");
    std::fs::write(&out, "old").expect("write");
    ctx.run_pw(["inject", "-i", "bad.tmpl", "-o", "config.yaml"])
        .code_is(5)
        .clean_error(&["db.internal"])
        .stderr_has("NOPE, staging.MISSING")
        .stderr_has("nothing written");
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "old");
    // A malformed placeholder is a usage error naming its line; a missing template exits 5.
    std::fs::write(ctx.cwd.join("bad.tmpl"), "ok\n{{ klef:not-a-key }}\n").expect("write");
    ctx.run_pw(["inject", "-i", "bad.tmpl"])
        .code_is(2)
        .clean_error(&[])
        .stderr_has("line 2");
    ctx.run_pw(["inject", "-i", "missing.tmpl"])
        .code_is(5)
        .clean_error(&[]);
    // A cycle behind a placeholder is reported as a chain.
    set(&ctx, "development", "C1", "${C2}");
    set(&ctx, "development", "C2", "${C1}");
    std::fs::write(ctx.cwd.join("cycle.tmpl"), "{{klef:C1}}").expect("write");
    ctx.run_pw(["inject", "-i", "cycle.tmpl", "-o", "cycle.out"])
        .code_is(1)
        .clean_error(&[])
        .stderr_has("C1 → C2 → C1");
    assert!(!ctx.cwd.join("cycle.out").exists());
}

pub(crate) fn run_mask_masks_output(mode: Mode) {
    let ctx = setup!(mode);
    set(&ctx, "development", "API_KEY", "sk-live-4242");
    set(&ctx, "development", "SHORT", "abc");
    set(&ctx, "development", "URL", "https://u:${API_KEY}@host");
    let script = "echo \"key=$API_KEY url=$URL short=$SHORT\"; echo \"err $API_KEY\" >&2";
    let out = ctx
        .run_pw(["run", "--mask", "--", "sh", "-c", script])
        .success();
    assert_eq!(out.stdout(), "key=**** url=**** short=abc\n");
    assert_eq!(out.stderr(), "err ****\n");
    // Off by default.
    let out = ctx.run_pw(["run", "--", "sh", "-c", script]).success();
    assert!(out.stdout().contains("sk-live-4242"));
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

macro_rules! all_tests {
    ($mode:expr) => {
        backend_suite!($mode;
            references_resolve_in_get_run_and_pull,
            reference_errors_name_the_chain,
            inject_renders_templates,
            run_mask_masks_output,
        );
    };
}

mod local_vault {
    all_tests!(super::Mode::Local);
}

mod server_sqlite {
    all_tests!(super::Mode::ServerSqlite);
}

mod server_postgres {
    all_tests!(super::Mode::ServerPostgres);
}

/// The owner of [`crate::team::owner`] with values in staging and production, and values in
/// staging that refer to production.
fn team_owner(db: Db) -> Option<TestContext> {
    let ctx = crate::team::owner(db)?;
    for (env, key, value) in [
        ("staging", "DB", "stg-value"),
        ("production", "DB", "prod-value"),
        ("staging", "URL", "postgres://${production.DB}"),
        ("staging", "OK", "[${DB}]"),
        ("production", "PROD_ONLY", "prod-secret-77"),
    ] {
        set(&ctx, env, key, value);
    }
    Some(ctx)
}

#[test]
fn a_restricted_member_cannot_read_through_a_reference() {
    on_both(restricted_member);
}

fn restricted_member(db: Db) {
    let Some(owner) = team_owner(db) else { return };
    assert_eq!(
        owner
            .run_pw(["get", "URL", "--plain", "-e", "staging"])
            .success()
            .stdout(),
        "postgres://prod-value"
    );
    let bob = joined(&owner, BOB, &["--env", "staging"]);
    assert_eq!(
        bob.run_pw(["get", "OK", "--plain", "-e", "staging"])
            .success()
            .stdout(),
        "[stg-value]"
    );
    for args in [
        &["get", "URL", "-e", "staging"][..],
        &["run", "-e", "staging", "--", "true"],
        &["pull", "-e", "staging", "-o", "-"],
    ] {
        bob.run_pw(args)
            .code_is(4)
            .clean_error(&["prod-value", "prod-secret-77"])
            .stderr_has("URL → production.DB (no access)");
    }
    std::fs::write(bob.cwd().join("t.tmpl"), "{{klef:production.PROD_ONLY}}").expect("write");
    bob.run_pw(["inject", "-i", "t.tmpl", "-e", "staging", "-o", "out"])
        .code_is(4)
        .clean_error(&["prod-secret-77"])
        .stderr_has("production.PROD_ONLY (no access)");
    assert!(!bob.cwd().join("out").exists());
}

#[test]
fn a_system_key_resolves_only_within_its_scopes() {
    on_both(system_key_scopes);
}

fn system_key_scopes(db: Db) {
    let Some(owner) = team_owner(db) else { return };
    let token = system_key(&owner, "my-app:staging", "ci-refs");
    let job = ci(&owner, &token);
    assert_eq!(
        job.run(["get", "OK", "--plain", "-p", "my-app", "-e", "staging"])
            .success()
            .stdout(),
        "[stg-value]"
    );
    for args in [
        &["get", "URL", "-p", "my-app", "-e", "staging"][..],
        &["run", "-p", "my-app", "-e", "staging", "--", "true"],
        &["pull", "-p", "my-app", "-e", "staging", "-o", "-"],
    ] {
        job.run(args)
            .code_is(4)
            .clean_error(&["prod-value", "prod-secret-77", &token])
            .stderr_has("URL → production.DB (no access)");
    }
    let raw = job
        .run([
            "get", "URL", "--plain", "--raw", "-p", "my-app", "-e", "staging",
        ])
        .success();
    assert_eq!(raw.stdout(), "postgres://${production.DB}");
}
