//! Issue #19's `klef diff` and `klef promote`, through the real binaries on the local vault and
//! on a server over `SQLite` and `PostgreSQL`: diff's exit codes (0 equal, 1 different, errors
//! never 1), masked and shown values, resolved and raw comparison, `--at`; promote of every
//! value and of listed names, its refusal without `--yes` and a terminal, names missing in the
//! source, `--dry-run`, a concurrent writer (409, nothing written) and a restricted member who
//! cannot read the source (exit 4, nothing revealed).

use std::io::Read as _;
use std::process::Stdio;

use klef_e2e::{PASSWORD, Server, TestContext};
use serde_json::{Value, json};

use crate::team::{BOB, Db, joined, on_both};
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

fn get(ctx: &TestContext, env: &str, key: &str) -> String {
    ctx.run_pw(["get", key, "--plain", "--raw", "-e", env])
        .success()
        .stdout()
}

fn json(run: &klef_e2e::Run) -> Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|e| {
            e.as_str()
                .or_else(|| e["name"].as_str())
                .expect("name")
                .to_owned()
        })
        .collect()
}

pub(crate) fn diff_exit_codes_masking_and_raw(mode: Mode) {
    let ctx = setup!(mode);
    for (env, key, value) in [
        ("staging", "SAME", "same-value-1"),
        ("staging", "B", "b-stg-value"),
        ("staging", "GONE", "gone-value-3"),
        ("staging", "HOST", "stg-host"),
        ("staging", "URL", "https://${HOST}/v1"),
        ("production", "SAME", "same-value-1"),
        ("production", "B", "b-prod-value"),
        ("production", "NEW", "new-value-4"),
        ("production", "HOST", "prod-host"),
        ("production", "URL", "https://${HOST}/v1"),
    ] {
        set(&ctx, env, key, value);
    }
    let secrets = [
        "same-value-1",
        "b-stg-value",
        "b-prod-value",
        "gone-value-3",
        "new-value-4",
        "stg-host",
        "prod-host",
    ];

    // Different: exit 1, masked.
    let out = ctx
        .run_pw(["diff", "-e", "staging", "production"])
        .code_is(1);
    let text = out.stdout();
    for line in ["+ NEW = ****", "- GONE = ****", "~ B", "~ HOST", "~ URL"] {
        assert!(text.contains(line), "{line}: {text}");
    }
    for s in secrets {
        assert!(
            !text.contains(s) && !out.stderr().contains(s),
            "{s}: {text}"
        );
    }
    assert!(!text.contains("SAME"), "unchanged listed only with --all");
    assert!(
        out.stderr()
            .contains("1 added, 1 removed, 3 changed, 1 unchanged"),
        "{}",
        out.stderr()
    );
    let all = ctx
        .run_pw(["diff", "-e", "staging", "production", "--all"])
        .code_is(1)
        .stdout();
    assert!(all.contains("  SAME\n"), "{all}");

    // --show reveals; references resolved by default, stored text with --raw.
    let shown = ctx
        .run_pw(["diff", "-e", "staging", "production", "--show"])
        .code_is(1)
        .stdout();
    assert!(shown.contains("~ B: b-stg-value → b-prod-value"), "{shown}");
    assert!(
        shown.contains("~ URL: https://stg-host/v1 → https://prod-host/v1"),
        "{shown}"
    );
    assert!(shown.contains("+ NEW = new-value-4"), "{shown}");
    let raw = json(
        &ctx.run_pw(["diff", "-e", "staging", "production", "--raw", "--json"])
            .code_is(1),
    );
    assert_eq!(names(&raw["changed"]), ["B", "HOST"], "{raw}");
    assert_eq!(raw["unchanged"], 2, "{raw}");

    // JSON: names only unless --show.
    let masked = json(
        &ctx.run_pw(["diff", "-e", "staging", "production", "--json"])
            .code_is(1),
    );
    assert_eq!(masked["from"], "my-app/staging");
    assert_eq!(masked["to"], "my-app/production");
    assert_eq!(masked["equal"], false);
    assert_eq!(masked["unchanged"], 1);
    assert_eq!(names(&masked["added"]), ["NEW"]);
    assert_eq!(names(&masked["removed"]), ["GONE"]);
    assert_eq!(names(&masked["changed"]), ["B", "HOST", "URL"]);
    for s in secrets {
        assert!(!masked.to_string().contains(s), "{s}: {masked}");
    }
    let full = json(
        &ctx.run_pw([
            "diff",
            "-e",
            "staging",
            "production",
            "--json",
            "--show",
            "--all",
        ])
        .code_is(1),
    );
    assert_eq!(full["added"][0]["value"], "new-value-4");
    assert_eq!(full["removed"][0]["value"], "gone-value-3");
    assert_eq!(full["changed"][0]["from"], "b-stg-value");
    assert_eq!(full["changed"][0]["to"], "b-prod-value");
    assert_eq!(full["unchanged_names"], serde_json::json!(["SAME"]));

    // Equal: exit 0 (development follows staging after a promote); project/env works too.
    ctx.run_pw([
        "promote",
        "--from",
        "staging",
        "--to",
        "development",
        "--yes",
    ])
    .success();
    let equal = ctx.run_pw(["diff", "staging"]).success();
    assert_eq!(equal.stdout(), "");
    assert!(
        equal.stderr().contains("are equal (5 values)"),
        "{}",
        equal.stderr()
    );
    let eq = json(&ctx.run_pw(["diff", "my-app/staging", "--json"]).success());
    assert_eq!(eq["equal"], true);
    assert_eq!(eq["unchanged"], 5);

    // Errors are never 1: a bad name 2, an unknown environment or project 5, a reference
    // cycle (1 elsewhere) 2.
    ctx.run_pw(["diff", "a/b/c"])
        .code_is(2)
        .clean_error(&secrets);
    ctx.run_pw(["diff", "nope"])
        .code_is(5)
        .clean_error(&secrets)
        .stderr_has("available environments");
    ctx.run_pw(["diff", "nowhere/production"])
        .code_is(5)
        .clean_error(&secrets);
    ctx.run_pw(["diff", "development"])
        .code_is(2)
        .clean_error(&secrets);
    ctx.run(["diff"]).code_is(2);
    set(&ctx, "staging", "C1", "${C2}");
    set(&ctx, "staging", "C2", "${C1}");
    ctx.run_pw(["diff", "staging"])
        .code_is(2)
        .clean_error(&secrets)
        .stderr_has("C1 → C2 → C1");
    ctx.run_pw(["diff", "staging", "--raw"]).code_is(1);
}

/// The past both `diff --at` and `diff --revision` look back at: `KEEP`, `DROPPED`, then
/// `K=old-value`.
fn write_the_past(ctx: &TestContext) {
    set(ctx, "development", "KEEP", "keep-value");
    set(ctx, "development", "DROPPED", "dropped-value");
    set(ctx, "development", "K", "old-value");
}

/// What changed since [`write_the_past`]: `K` changed, `ADDED` set, `DROPPED` unset.
fn change_since(ctx: &TestContext) {
    set(ctx, "development", "K", "new-value");
    set(ctx, "development", "ADDED", "added-value");
    ctx.run_pw(["unset", "DROPPED"]).success();
}

/// `klef diff PAST…` after [`change_since`]: from `development@label` to now, one name of each
/// kind and one unchanged, values masked unless `--show`.
fn assert_compared_with_the_past(ctx: &TestContext, past: &[&str], label: &str) {
    let diff = |extra: &str| {
        let mut args = vec!["diff"];
        args.extend_from_slice(past);
        args.push(extra);
        ctx.run_pw(args).code_is(1)
    };
    let out = diff("--json");
    let d = json(&out);
    assert_eq!(d["from"], format!("my-app/development@{label}"), "{d}");
    assert_eq!(d["to"], "my-app/development");
    assert_eq!(names(&d["changed"]), ["K"], "{d}");
    assert_eq!(names(&d["added"]), ["ADDED"], "{d}");
    assert_eq!(names(&d["removed"]), ["DROPPED"], "{d}");
    assert_eq!(d["unchanged"], 1);
    assert!(!out.stdout().contains("old-value"));
    let shown = diff("--show").stdout();
    assert!(shown.contains("~ K: old-value → new-value"), "{shown}");
    assert!(shown.contains("- DROPPED = dropped-value"), "{shown}");
}

pub(crate) fn diff_at_a_past_time(mode: Mode) {
    let ctx = setup!(mode);
    // K last: the time of its first version covers the others'.
    write_the_past(&ctx);
    let history = json(&ctx.run_pw(["history", "K", "--json"]).success());
    let then = history[0]["created_at"].as_str().expect("time").to_owned();
    // The next writes fall in a later second than `then`.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    change_since(&ctx);
    assert_compared_with_the_past(&ctx, &["--at", &then], &then);
    // Unix seconds; before anything existed everything is added; now is equal.
    let before = json(&ctx.run_pw(["diff", "--at", "1", "--json"]).code_is(1));
    assert_eq!(names(&before["added"]), ["ADDED", "K", "KEEP"], "{before}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        .to_string();
    ctx.run_pw(["diff", "--at", &now]).success();
    ctx.run_pw(["diff", "--at", "yesterday"])
        .code_is(2)
        .clean_error(&[])
        .stderr_has("RFC 3339");
    ctx.run_pw(["diff", "staging", "--at", "1"]).code_is(2);
}

/// `klef history` lists the signed revisions; `klef diff --revision N` compares with one.
pub(crate) fn diff_at_a_signed_revision(mode: Mode) {
    let ctx = setup!(mode);
    write_the_past(&ctx);
    let revisions = json(&ctx.run_pw(["history", "--json"]).success());
    let list = revisions.as_array().expect("a list");
    let then = list.last().expect("revisions");
    assert_eq!(then["added"], json!(["K"]), "{revisions}");
    assert_eq!(list[0]["revision"], 1, "{revisions}");
    let signer = if matches!(mode, Mode::Local) {
        "vault owner"
    } else {
        "owner@example.com"
    };
    assert_eq!(then["signed_by"], signer, "{revisions}");
    let rev = then["revision"].as_u64().expect("revision").to_string();

    change_since(&ctx);
    let table = ctx.run_pw(["history"]).success().stdout();
    for change in ["+K", "~K", "+ADDED", "-DROPPED"] {
        assert!(table.contains(change), "{change}: {table}");
    }
    assert!(table.contains(signer), "{table}");
    assert!(!table.contains("new-value"), "{table}");

    assert_compared_with_the_past(&ctx, &["--revision", &rev], &format!("r{rev}"));
    // The newest revision is now; revision 1 (the environment's creation) had nothing.
    let newest = json(&ctx.run_pw(["history", "--json"]).success());
    let head = newest.as_array().and_then(|l| l.last()).expect("revisions")["revision"]
        .as_u64()
        .expect("revision")
        .to_string();
    ctx.run_pw(["diff", "--revision", &head]).success();
    let first = json(&ctx.run_pw(["diff", "--revision", "1", "--json"]).code_is(1));
    assert_eq!(names(&first["added"]), ["ADDED", "K", "KEEP"], "{first}");
    let next = (head.parse::<u64>().expect("a number") + 1).to_string();
    ctx.run_pw(["diff", "--revision", &next])
        .code_is(2)
        .clean_error(&[])
        .stderr_has(&format!("there is no revision {next}"))
        .stderr_has("klef history");
    ctx.run_pw(["diff", "--revision", "1", "--at", "1"])
        .code_is(2);
    ctx.run_pw(["diff", "staging", "--revision", "1"])
        .code_is(2);
}

pub(crate) fn promote_all_and_selected(mode: Mode) {
    let ctx = setup!(mode);
    for (env, key, value) in [
        ("staging", "A", "a-stg-value"),
        ("staging", "B", "b-stg-value"),
        ("staging", "HOST", "stg-host"),
        ("staging", "URL", "https://${HOST}/v1"),
        ("production", "A", "a-prod-value"),
        ("production", "HOST", "prod-host"),
        ("production", "ONLY", "only-prod-value"),
    ] {
        set(&ctx, env, key, value);
    }
    let secrets = [
        "a-stg-value",
        "b-stg-value",
        "a-prod-value",
        "stg-host",
        "prod-host",
    ];
    let unchanged = |ctx: &TestContext| {
        assert_eq!(get(ctx, "production", "A"), "a-prod-value");
        assert_eq!(get(ctx, "production", "HOST"), "prod-host");
        ctx.run_pw(["get", "B", "-e", "production"]).code_is(5);
    };

    // No terminal, no --yes: refused with exit 2 before writing, names only.
    ctx.run_pw(["promote", "--from", "staging", "--to", "production"])
        .code_is(2)
        .clean_error(&secrets)
        .stderr_has("add B, URL; change A, HOST")
        .stderr_has("--yes");
    unchanged(&ctx);

    // --dry-run shows the same and writes nothing.
    let dry = ctx
        .run_pw([
            "promote",
            "--from",
            "staging",
            "--to",
            "production",
            "--dry-run",
            "--json",
        ])
        .success();
    let d = json(&dry);
    assert_eq!(names(&d["added"]), ["B", "URL"]);
    assert_eq!(names(&d["changed"]), ["A", "HOST"]);
    assert_eq!(d["written"], false);
    assert_eq!(d["dry_run"], true);
    for s in secrets {
        assert!(
            !dry.stdout().contains(s) && !dry.stderr().contains(s),
            "{s}"
        );
    }
    unchanged(&ctx);

    // Names the source lacks: all listed, nothing written.
    ctx.run_pw([
        "promote",
        "--from",
        "staging",
        "--to",
        "production",
        "A",
        "NOPE",
        "ALSO_NOPE",
        "--yes",
    ])
    .code_is(5)
    .clean_error(&secrets)
    .stderr_has("NOPE, ALSO_NOPE not in environment \"staging\"")
    .stderr_has("nothing was written");
    unchanged(&ctx);
    ctx.run_pw([
        "promote",
        "--from",
        "staging",
        "--to",
        "production",
        "bad-name",
    ])
    .code_is(2)
    .clean_error(&secrets);
    ctx.run_pw(["promote", "--from", "staging", "--to", "staging", "--yes"])
        .code_is(2)
        .clean_error(&secrets);
    ctx.run_pw(["promote", "--from", "staging", "--to", "qa", "--yes"])
        .code_is(5)
        .clean_error(&secrets);

    // Selected names only.
    ctx.run_pw([
        "promote",
        "--from",
        "staging",
        "--to",
        "production",
        "B",
        "--yes",
    ])
    .success();
    assert_eq!(get(&ctx, "production", "B"), "b-stg-value");
    assert_eq!(get(&ctx, "production", "A"), "a-prod-value");

    // Everything: re-encrypted for production (it reads back there), references kept as
    // references and resolved in production, names only production has kept.
    let all = json(
        &ctx.run_pw([
            "promote",
            "--from",
            "staging",
            "--to",
            "production",
            "--yes",
            "--json",
        ])
        .success(),
    );
    assert_eq!(names(&all["added"]), ["URL"], "{all}");
    assert_eq!(names(&all["changed"]), ["A", "HOST"], "{all}");
    assert_eq!(names(&all["unchanged"]), ["B"], "{all}");
    assert_eq!(all["written"], true);
    assert_eq!(get(&ctx, "production", "A"), "a-stg-value");
    assert_eq!(get(&ctx, "production", "URL"), "https://${HOST}/v1");
    assert_eq!(get(&ctx, "production", "ONLY"), "only-prod-value");
    let history = json(
        &ctx.run_pw(["history", "A", "-e", "production", "--json"])
            .success(),
    );
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");
    // Production now holds staging's values plus its own: the diff says only ONLY differs.
    let d = json(
        &ctx.run_pw(["diff", "-e", "staging", "production", "--json"])
            .code_is(1),
    );
    assert_eq!(names(&d["added"]), ["ONLY"]);
    assert_eq!(d["changed"], serde_json::json!([]));
    // Nothing left to promote.
    ctx.run_pw(["promote", "--from", "staging", "--to", "production"])
        .success()
        .stderr_has("nothing to promote");
    // --resolved copies the value as `klef get` shows it in the source.
    ctx.run_pw([
        "promote",
        "--from",
        "staging",
        "--to",
        "development",
        "URL",
        "--resolved",
        "--yes",
    ])
    .success();
    assert_eq!(get(&ctx, "development", "URL"), "https://stg-host/v1");
    // A server audits the promotion as one, naming where the values came from (and, like any
    // write, the names: never a value).
    if !matches!(mode, Mode::Local) {
        let audit = ctx.run_pw(["audit", "--json"]).success().stdout();
        assert!(audit.contains("secrets.promote"), "{audit}");
        assert!(audit.contains("(staging)"), "{audit}");
        for secret in secrets {
            assert!(!audit.contains(secret), "{audit}");
        }
    }
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
            diff_exit_codes_masking_and_raw,
            diff_at_a_past_time,
            diff_at_a_signed_revision,
            promote_all_and_selected,
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

#[test]
fn a_restricted_member_cannot_diff_or_promote_what_they_cannot_read() {
    on_both(restricted_member);
}

fn restricted_member(db: Db) {
    let Some(owner) = crate::team::owner(db) else {
        return;
    };
    set(&owner, "staging", "DB", "stg-value");
    set(&owner, "production", "DB", "prod-value-77");
    set(&owner, "production", "PROD_ONLY", "prod-secret-88");
    let bob = joined(&owner, BOB, &["--env", "staging"]);
    let secrets = ["prod-value-77", "prod-secret-88", "PROD_ONLY"];
    for args in [
        &["diff", "-e", "staging", "production"][..],
        &["diff", "-e", "staging", "production", "--show", "--json"],
        &[
            "promote",
            "--from",
            "production",
            "--to",
            "staging",
            "--yes",
        ],
        &[
            "promote",
            "--from",
            "production",
            "--to",
            "staging",
            "DB",
            "--yes",
        ],
    ] {
        let run = bob.run_pw(args).code_is(4).clean_error(&secrets);
        assert_eq!(run.stdout(), "", "{args:?}");
    }
    assert_eq!(get(&owner, "staging", "DB"), "stg-value");
    // Nor into an environment they cannot write (or see).
    bob.run_pw([
        "promote",
        "--from",
        "staging",
        "--to",
        "production",
        "--yes",
    ])
    .code_is(4)
    .clean_error(&secrets);
    assert_eq!(get(&owner, "production", "DB"), "prod-value-77");
}

/// Armed by the concurrent-writer test: hold the next write of secrets.
static HOLD_NEXT_WRITE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Set when that write reached the proxy.
static WRITE_HELD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Set by the test to let it through.
static WRITE_RELEASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Holds (blocks, then forwards) the first `POST …/secrets` after the test armed it.
fn hold_one_write(head: &str) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    if head.starts_with("POST ")
        && head.contains("/secrets ")
        && HOLD_NEXT_WRITE.swap(false, SeqCst)
    {
        WRITE_HELD.store(true, SeqCst);
        while !WRITE_RELEASED.load(SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    false
}

#[test]
fn a_promote_racing_another_writer_is_a_conflict_and_writes_nothing() {
    // One database at a time: the proxy's switches are shared.
    concurrent_writer(Db::Sqlite);
    concurrent_writer(Db::Postgres);
}

fn concurrent_writer(db: Db) {
    use std::sync::atomic::Ordering::SeqCst;
    let mut ctx = TestContext::new();
    let dir = ctx.root().join("server");
    let server = match db {
        Db::Sqlite => Server::sqlite(&dir),
        Db::Postgres => match Server::postgres(&dir) {
            Some(s) => s,
            None => return,
        },
    };
    let proxied = crate::terminal::proxy_holding(&server.url, hold_one_write);
    ctx.server = Some(server);
    if let Some(s) = ctx.server.as_mut() {
        s.url.clone_from(&proxied);
    }
    ctx.signup(&proxied, "owner@example.com");
    ctx.init();
    set(&ctx, "staging", "A", "a-stg-value");
    set(&ctx, "staging", "B", "b-stg-value");
    set(&ctx, "production", "A", "a-prod-value");

    WRITE_HELD.store(false, SeqCst);
    WRITE_RELEASED.store(false, SeqCst);
    HOLD_NEXT_WRITE.store(true, SeqCst);
    let mut cmd = ctx.klef([
        "promote",
        "--from",
        "staging",
        "--to",
        "production",
        "--yes",
    ]);
    cmd.env("KLEF_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start klef promote");
    let started = std::time::Instant::now();
    while !WRITE_HELD.load(SeqCst) {
        assert!(
            started.elapsed() < std::time::Duration::from_mins(1),
            "the promote's write never reached the proxy"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Meanwhile another writer changes production (this write passes: the hold is spent).
    set(&ctx, "production", "A", "a-other-writer");
    WRITE_RELEASED.store(true, SeqCst);

    let mut seen = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut seen)
        .expect("read stderr");
    let status = child.wait().expect("wait for klef promote");
    assert_eq!(status.code(), Some(7), "{seen}");
    assert!(seen.contains("nothing was written"), "{seen}");
    assert!(
        !seen.contains("a-stg-value") && !seen.contains("b-stg-value"),
        "{seen}"
    );
    // Nothing of the promote landed: not A, not B.
    assert_eq!(get(&ctx, "production", "A"), "a-other-writer");
    ctx.run_pw(["get", "B", "-e", "production"]).code_is(5);
    // Run again, it promotes over the new value.
    ctx.run_pw([
        "promote",
        "--from",
        "staging",
        "--to",
        "production",
        "--yes",
    ])
    .success();
    assert_eq!(get(&ctx, "production", "A"), "a-stg-value");
}
