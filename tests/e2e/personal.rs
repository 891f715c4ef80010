//! Personal overrides (issue #19 item 4) through the real binaries: a member's own values,
//! layered over the shared ones for them alone (`get`, `run`, `pull`, references, `list`,
//! `diff --personal`), invisible to a second member and to a system key, stored sealed to
//! their owner alone; and a server (or an edit of the vault file) that serves an older record,
//! relabels one, or moves one to another environment or account, refused. Server tests run on
//! `SQLite` and on `PostgreSQL`, the local vault on its file.

use std::path::Path;
use std::process::Command;

use klef_e2e::{Server, TestContext};
use serde_json::Value;

use crate::team::{BOB, Db, ci, joined, on_both, owner, server, system_key};

/// The owner's override of the shared `DB=dev-value`, and a name only the owner has.
const MINE: &str = "owner-laptop-db-4711";
const ONLY_NAME: &str = "ONLY_MINE_TOKEN";
const ONLY_VALUE: &str = "only-mine-value-0815";

/// The database behind the binaries: a server's, or the local vault file.
#[derive(Clone, Copy)]
enum Store<'a> {
    Server(&'a Server),
    Vault(&'a TestContext),
}

impl Store<'_> {
    fn sql(&self, sql: &str) -> String {
        match self {
            Store::Server(srv) => srv.sql(sql),
            Store::Vault(ctx) => sqlite(&ctx.vault_path(), sql),
        }
    }

    fn hex(&self, column: &str) -> String {
        match self {
            Store::Server(srv) => srv.hex(column),
            Store::Vault(_) => format!("lower(hex({column}))"),
        }
    }

    fn bytes(&self, hex: &str) -> String {
        match self {
            Store::Server(srv) => srv.bytes(hex),
            Store::Vault(_) => format!("X'{hex}'"),
        }
    }

    /// The id of environment `slug` of `my-app`.
    fn env_id(&self, slug: &str) -> String {
        self.sql(&format!(
            "SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id \
             WHERE p.name = 'my-app' AND e.slug = '{slug}'"
        ))
    }

    /// `(account, revision, blob as hex)` of every personal-overrides row of `env`.
    fn rows(&self, env: &str) -> Vec<(String, u64, String)> {
        self.sql(&format!(
            "SELECT account_id || ' ' || revision || ' ' || {} FROM personal_overrides \
             WHERE environment_id = '{env}' ORDER BY account_id",
            self.hex("blob")
        ))
        .lines()
        .map(|l| {
            let mut parts = l.split(' ');
            (
                parts.next().expect("account").to_owned(),
                parts.next().expect("revision").parse().expect("a number"),
                parts.next().expect("blob").to_owned(),
            )
        })
        .collect()
    }

    /// Puts `(revision, blob)` in place of `account`'s row of `env` (inserting it if needed).
    fn put_row(&self, env: &str, account: &str, revision: u64, blob: &str) {
        self.sql(&format!(
            "DELETE FROM personal_overrides WHERE environment_id = '{env}' AND account_id = '{account}'"
        ));
        self.sql(&format!(
            "INSERT INTO personal_overrides (environment_id, account_id, revision, blob, updated_at) \
             VALUES ('{env}', '{account}', {revision}, {}, 0)",
            self.bytes(blob)
        ));
    }

    /// How many rows the tables that could hold a copy of a value or a key have: a personal
    /// write must change none of them.
    fn shared_rows(&self) -> String {
        ["secrets", "manifests", "project_keys", "environment_grants"]
            .iter()
            .map(|t| format!("{t}={}", self.sql(&format!("SELECT count(*) FROM {t}"))))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs `sql` on a `SQLite` file with the `sqlite3` shell.
fn sqlite(path: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        out.status.success(),
        "{sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn json(run: &klef_e2e::Run) -> Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

/// `klef get NAME --plain` (with the password).
fn get(ctx: &TestContext, name: &str) -> String {
    ctx.run_pw(["get", name, "--plain"]).success().stdout()
}

/// What `klef run` passes to a program as `$NAME`.
fn run_sees(ctx: &TestContext, name: &str) -> String {
    ctx.run_pw(["run", "--", "sh", "-c", &format!("printf %s \"${name}\"")])
        .success()
        .stdout()
}

/// `klef pull -o - --format json`, as a JSON object.
fn pulled(ctx: &TestContext) -> Value {
    json(
        &ctx.run_pw(["pull", "-o", "-", "--format", "json"])
            .success(),
    )
}

/// `klef list --json` entry of `name`, if listed.
fn listed(ctx: &TestContext, name: &str) -> Option<Value> {
    json(&ctx.run_pw(["list", "--json"]).success())
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

/// The owner sets overrides and sees them everywhere a value is read; the shared values, the
/// signed state and every wrapped key stay as they were; `unset --personal` gives the shared
/// value back. Returns the id of `development`.
fn owner_sees_own_overrides(ctx: &TestContext, store: Store<'_>) -> String {
    ctx.run_pw(["set", "URL", "${DB}/app"]).success();
    let before = store.shared_rows();
    ctx.run_pw(["set", "--personal", "DB", MINE])
        .success()
        .stderr_has("for you alone");
    ctx.run_pw(["set", "--personal", &format!("{ONLY_NAME}={ONLY_VALUE}")])
        .success();
    assert_eq!(
        store.shared_rows(),
        before,
        "no shared value, manifest or wrapped key was written"
    );
    assert_eq!(get(ctx, "DB"), MINE);
    assert_eq!(get(ctx, ONLY_NAME), ONLY_VALUE);
    assert_eq!(get(ctx, "URL"), format!("{MINE}/app"), "references see it");
    assert_eq!(
        get_raw_json(ctx, "DB")["personal"],
        true,
        "get --json says where it came from"
    );
    assert_eq!(run_sees(ctx, "DB"), MINE);
    assert_eq!(run_sees(ctx, ONLY_NAME), ONLY_VALUE);
    let p = pulled(ctx);
    assert_eq!(p["DB"], MINE);
    assert_eq!(p[ONLY_NAME], ONLY_VALUE);
    assert_eq!(p["URL"], format!("{MINE}/app"));
    assert_eq!(listed(ctx, "DB").expect("DB listed")["personal"], true);
    assert_eq!(listed(ctx, ONLY_NAME).expect("listed")["personal"], true);
    assert_eq!(
        listed(ctx, "URL").expect("URL listed").get("personal"),
        None
    );
    let table = ctx.run_pw(["list"]).success().stdout();
    assert!(table.contains("PERSONAL"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("DB ") && l.contains("overridden")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(ONLY_NAME) && l.contains("yours only")),
        "{table}"
    );
    let revealed = json(&ctx.run_pw(["list", "--json", "--reveal"]).success());
    assert!(
        revealed
            .as_array()
            .expect("a list")
            .iter()
            .any(|e| e["name"] == "DB" && e["value"] == MINE),
        "{revealed}"
    );
    // diff --personal: masked by default, exit 1 when different.
    let diff = ctx.run_pw(["diff", "--personal"]).code_is(1);
    let out = diff.stdout();
    assert!(out.contains("~ DB"), "{out}");
    assert!(out.contains(&format!("+ {ONLY_NAME}")), "{out}");
    assert!(out.contains("~ URL"), "{out}");
    assert!(!out.contains(MINE), "masked unless --show: {out}");
    let shown = ctx
        .run_pw(["diff", "--personal", "--show", "--json"])
        .code_is(1);
    let d = json(&shown);
    assert_eq!(d["equal"], false);
    assert!(d.to_string().contains(MINE), "{d}");
    // pull then push (the round trip, with --raw): the file holds the owner's values, which
    // never become shared ones; a second pull replaces the file it wrote.
    ctx.run_pw(["pull", "--raw"]).success();
    ctx.run_pw(["pull", "--raw"]).success();
    let env_file = std::fs::read_to_string(ctx.cwd().join(".env")).expect(".env");
    assert!(
        env_file.contains(MINE) && env_file.contains(ONLY_NAME),
        "{env_file}"
    );
    ctx.run_pw(["push", "--replace", "--yes"])
        .success()
        .stderr_has("not pushed")
        .stderr_has(ONLY_NAME);
    assert_eq!(store.shared_rows(), before, "nothing pushed");
    std::fs::remove_file(ctx.cwd().join(".env")).expect("remove .env");
    let env = store.env_id("development");
    let rows = store.rows(&env);
    assert_eq!(rows.len(), 1, "one record: the owner's");
    let blob = &rows[0].2;
    for plain in [MINE, ONLY_NAME, ONLY_VALUE] {
        assert!(
            !blob.contains(&hex(plain.as_bytes())),
            "{plain} in plaintext in the stored record"
        );
    }
    // References to another environment use the owner's overrides there when the owner reads,
    // and never when shared values are written: `promote --resolved` copies the shared one.
    ctx.run_pw(["set", "-e", "staging", "HOST", "stg-host"])
        .success();
    ctx.run_pw(["set", "-e", "staging", "--personal", "HOST", "my-host"])
        .success();
    ctx.run_pw(["set", "REF", "${staging.HOST}"]).success();
    assert_eq!(get(ctx, "REF"), "my-host");
    ctx.run_pw([
        "promote",
        "--from",
        "development",
        "--to",
        "production",
        "--resolved",
        "--yes",
        "REF",
    ])
    .success();
    assert_eq!(
        ctx.run_pw(["get", "REF", "--plain", "-e", "production"])
            .success()
            .stdout(),
        "stg-host"
    );
    env
}

/// `klef get NAME --json` as JSON.
fn get_raw_json(ctx: &TestContext, name: &str) -> Value {
    json(&ctx.run_pw(["get", name, "--json"]).success())
}

/// The owner removes the overrides again: the shared values come back.
fn unset_restores_the_shared_values(ctx: &TestContext) {
    ctx.run_pw(["unset", "--personal", "DB", ONLY_NAME])
        .success();
    assert_eq!(get(ctx, "DB"), "dev-value");
    assert_eq!(get(ctx, "URL"), "dev-value/app");
    ctx.run_pw(["get", ONLY_NAME, "--plain"]).code_is(5);
    assert_eq!(listed(ctx, "DB").expect("DB")["personal"], Value::Null);
    ctx.run_pw(["diff", "--personal"]).success();
    ctx.run_pw(["unset", "--personal", "DB"])
        .code_is(5)
        .stderr_has("has no personal override");
}

/// A record older than the newest this account has seen, an older one relabelled as newer,
/// and the newest moved to another environment are each refused; putting it back reads again.
fn rollback_relabel_and_move_are_refused(ctx: &TestContext, store: Store<'_>, blame: &str) {
    let env = store.env_id("development");
    let staging = store.env_id("staging");
    ctx.run_pw(["set", "--personal", "DB", "first-personal"])
        .success();
    let (account, r1, old) = store.rows(&env).remove(0);
    ctx.run_pw(["set", "--personal", "DB", "second-personal"])
        .success();
    let (_, r2, new) = store.rows(&env).remove(0);
    assert_eq!(r2, r1 + 1);
    assert_eq!(get(ctx, "DB"), "second-personal");

    // Served older, under its own revision.
    store.put_row(&env, &account, r1, &old);
    ctx.run_pw(["get", "DB", "--plain"])
        .code_is(1)
        .stderr_has("older copy of your personal overrides")
        .stderr_has(blame)
        .clean_error(&["first-personal", "second-personal"]);
    ctx.run_pw(["run", "--", "true"]).code_is(1);
    // Served older, relabelled with the newest revision.
    store.put_row(&env, &account, r2, &old);
    ctx.run_pw(["get", "DB", "--plain"])
        .code_is(1)
        .stderr_has("do not open");
    // Moved to another environment: there it does not open, here it is missing.
    store.sql(&format!(
        "DELETE FROM personal_overrides WHERE environment_id = '{env}'"
    ));
    store.put_row(&staging, &account, r2, &new);
    ctx.run_pw(["get", "DB", "--plain", "-e", "staging"])
        .code_is(1)
        .stderr_has("do not open");
    ctx.run_pw(["get", "DB", "--plain"])
        .code_is(1)
        .stderr_has("withheld your personal overrides");
    // Put back: read again.
    store.sql(&format!(
        "DELETE FROM personal_overrides WHERE environment_id = '{staging}'"
    ));
    store.put_row(&env, &account, r2, &new);
    assert_eq!(get(ctx, "DB"), "second-personal");

    // Lost for good (a restore without it): refused, with the way out named; the member then
    // starts again, empty, above every revision seen, and nothing older is accepted after.
    store.sql(&format!(
        "DELETE FROM personal_overrides WHERE environment_id = '{env}'"
    ));
    ctx.run_pw(["get", "DB", "--plain"])
        .code_is(1)
        .stderr_has("klef unset --personal --all");
    ctx.run_pw(["unset", "--personal", "--all"])
        .success()
        .stderr_has("again, empty");
    assert_eq!(get(ctx, "DB"), "dev-value");
    assert!(store.rows(&env)[0].1 > r2, "above every revision seen");
    ctx.run_pw(["set", "--personal", "DB", "third-personal"])
        .success();
    assert_eq!(get(ctx, "DB"), "third-personal");
    store.put_row(&env, &account, r2, &new);
    ctx.run_pw(["get", "DB", "--plain"])
        .code_is(1)
        .stderr_has("older copy");
}

#[test]
fn personal_overrides_in_the_local_vault() {
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "DB", "dev-value"]).success();
    let store = Store::Vault(&ctx);
    let _ = owner_sees_own_overrides(&ctx, store);
    let file = std::fs::read(ctx.vault_path()).expect("read the vault");
    let wal = std::fs::read(ctx.vault_path().with_extension("db-wal")).unwrap_or_default();
    for plain in [MINE, ONLY_VALUE, ONLY_NAME] {
        for bytes in [&file, &wal] {
            assert!(
                !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
                "{plain} in plaintext in the vault file"
            );
        }
    }
    unset_restores_the_shared_values(&ctx);
    rollback_relabel_and_move_are_refused(&ctx, store, "vault file");
}

#[test]
fn personal_overrides_are_seen_by_their_owner_alone() {
    on_both(owner_alone);
}

fn owner_alone(db: Db) {
    let Some(owner) = owner(db) else { return };
    let bob = joined(&owner, BOB, &[]);
    let token = system_key(&owner, "my-app:development", "ci");
    let job = ci(&owner, &token);
    let store = Store::Server(server(&owner));
    let env = owner_sees_own_overrides(&owner, store);

    // A second member sees the shared values, and nothing of the owner's names.
    assert_eq!(get(&bob, "DB"), "dev-value");
    assert_eq!(get(&bob, "URL"), "dev-value/app");
    bob.run_pw(["get", ONLY_NAME, "--plain"]).code_is(5);
    assert_eq!(run_sees(&bob, "DB"), "dev-value");
    let p = pulled(&bob);
    assert_eq!(p["DB"], "dev-value");
    assert_eq!(p.get(ONLY_NAME), None);
    assert_eq!(listed(&bob, ONLY_NAME), None);
    assert_eq!(listed(&bob, "DB").expect("DB")["personal"], Value::Null);
    bob.run_pw(["diff", "--personal"]).success();

    // A system key sees the shared values, and may not keep personal ones.
    let ci_get =
        |name: &str| job.run(["get", name, "--plain", "-p", "my-app", "-e", "development"]);
    assert_eq!(ci_get("DB").success().stdout(), "dev-value");
    assert_eq!(ci_get("URL").success().stdout(), "dev-value/app");
    ci_get(ONLY_NAME).code_is(5);
    job.run([
        "set",
        "--personal",
        "DB",
        "ci-value",
        "-p",
        "my-app",
        "-e",
        "development",
    ])
    .code_is(2)
    .stderr_has("personal overrides belong to members")
    .clean_error(&["ci-value"]);

    // The server holds one record, the owner's, sealed: no plaintext, no copy for anyone,
    // and its audit log names no name.
    let rows = store.rows(&env);
    let owner_id = store.sql("SELECT id FROM accounts WHERE email = 'owner@example.com'");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, owner_id);
    let audit =
        store.sql("SELECT action || ' ' || target FROM audit_log WHERE action = 'personal.write'");
    assert_eq!(audit.lines().count(), 3, "{audit}");
    assert!(
        !audit.contains(ONLY_NAME) && !audit.contains("DB"),
        "{audit}"
    );
    if let Some(path) = store_file(db, &owner) {
        for plain in [MINE, ONLY_VALUE, ONLY_NAME] {
            for bytes in &path {
                assert!(
                    !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
                    "{plain} in plaintext in the server's database file"
                );
            }
        }
    }
    // Moved to another account (bob's row), the record does not open for him either.
    let bob_id = store.sql(&format!("SELECT id FROM accounts WHERE email = '{BOB}'"));
    store.put_row(&env, &bob_id, rows[0].1, &rows[0].2);
    bob.run_pw(["get", "DB", "--plain"])
        .code_is(1)
        .stderr_has("do not open");
    store.sql(&format!(
        "DELETE FROM personal_overrides WHERE account_id <> '{owner_id}'"
    ));
    assert_eq!(get(&bob, "DB"), "dev-value");

    unset_restores_the_shared_values(&owner);
}

/// The server's `SQLite` file and its write-ahead log, read raw (`None` on `PostgreSQL`).
fn store_file(db: Db, ctx: &TestContext) -> Option<Vec<Vec<u8>>> {
    let Db::Sqlite = db else { return None };
    let path = server(ctx).sqlite_path()?;
    let wal = path.with_extension("db-wal");
    Some(vec![
        std::fs::read(path).expect("read the server's database"),
        std::fs::read(wal).unwrap_or_default(),
    ])
}

#[test]
fn a_server_that_rolls_back_relabels_or_moves_personal_overrides_is_refused() {
    on_both(|db| {
        let Some(owner) = owner(db) else { return };
        rollback_relabel_and_move_are_refused(&owner, Store::Server(server(&owner)), "server");
    });
}

/// `klef backup export` and a forced `import` of it, as `ctx` (the archive's path returned).
fn backup_round_trip(ctx: &TestContext) -> std::path::PathBuf {
    let archive = ctx.root().join("personal.kbak");
    let file = archive.to_str().expect("utf-8");
    ctx.run_pw(["backup", "export", "--force", file]).success();
    restore(ctx, &archive);
    archive
}

/// `klef backup import --force ARCHIVE`, asserting success.
fn restore(ctx: &TestContext, archive: &Path) {
    let file = archive.to_str().expect("utf-8");
    ctx.run_pw(["backup", "import", "--force", file]).success();
}

/// The archive's bytes hold none of `plaintexts`.
fn assert_sealed_in(archive: &Path, plaintexts: &[&str]) {
    let bytes = std::fs::read(archive).expect("read the archive");
    for plain in plaintexts {
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "{plain} in plaintext in the backup"
        );
    }
}

#[test]
fn backups_carry_personal_overrides_in_the_local_vault() {
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "DB", "dev-value"]).success();
    ctx.run_pw(["set", "--personal", "DB", MINE]).success();
    let archive = backup_round_trip(&ctx);
    assert_sealed_in(&archive, &[MINE]);
    assert_eq!(get(&ctx, "DB"), MINE, "the restore kept the override");
    assert_eq!(listed(&ctx, "DB").expect("DB")["personal"], true);

    // A backup older than the latest change brings back an older record: refused, and
    // `unset --personal --all` starts again.
    ctx.run_pw(["set", "--personal", "DB", "newer-personal"])
        .success();
    restore(&ctx, &archive);
    ctx.run_pw(["get", "DB", "--plain"])
        .code_is(1)
        .stderr_has("older copy")
        .stderr_has("unset --personal --all")
        .clean_error(&[MINE, "newer-personal"]);
    ctx.run_pw(["unset", "--personal", "--all"]).success();
    assert_eq!(get(&ctx, "DB"), "dev-value");
}

#[test]
fn backups_carry_every_members_personal_overrides_on_a_server() {
    on_both(|db| {
        let Some(owner) = owner(db) else { return };
        let bob = joined(&owner, BOB, &[]);
        owner.run_pw(["set", "--personal", "DB", MINE]).success();
        bob.run_pw(["set", "--personal", "DB", "bobs-own-value"])
            .success();
        let store = Store::Server(server(&owner));
        let env = store.env_id("development");
        let before = store.rows(&env);
        assert_eq!(before.len(), 2);

        let archive = backup_round_trip(&owner);
        assert_sealed_in(&archive, &[MINE, "bobs-own-value"]);
        assert_eq!(
            store.rows(&env),
            before,
            "the same sealed records came back"
        );
        assert_eq!(get(&owner, "DB"), MINE);
        assert_eq!(get(&bob, "DB"), "bobs-own-value");

        // Bob changes his after the backup: restoring it brings back his older record, which
        // his pins refuse, until he starts again.
        bob.run_pw(["set", "--personal", "DB", "bobs-newer-value"])
            .success();
        restore(&owner, &archive);
        bob.run_pw(["get", "DB", "--plain"])
            .code_is(1)
            .stderr_has("older copy")
            .clean_error(&["bobs-own-value", "bobs-newer-value"]);
        bob.run_pw(["unset", "--personal", "--all"]).success();
        assert_eq!(get(&bob, "DB"), "dev-value");
        assert_eq!(get(&owner, "DB"), MINE);
    });
}
