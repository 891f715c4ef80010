//! A malicious server, and a malicious edit of the local vault file, against signed
//! environment manifests (DESIGN.md §9.3, issue #22): the real `klef` talks to the real
//! `klef-server` (or opens the real vault file), and the test edits the database behind its
//! back, as an operator or an attacker holding the database would. Each attack ends with `klef`
//! failing with a message that names the key (where one is involved) and what was done to it,
//! and nothing written; each test then undoes the attack and shows the same command succeeding,
//! so none of them passes by accident. Every server test runs on `SQLite` and on `PostgreSQL`.

use std::path::Path;
use std::process::Command;

use klef_core::crypto::token::ApiToken;
use klef_core::crypto::{Aad, PublicKey, SealedKey, SymmetricKey, open_key, seal_key, wrap_key};
use klef_core::ids::{EnvironmentId, ProjectId};
use klef_core::secrecy::ExposeSecret as _;
use klef_e2e::{ACCOUNT_PASSWORD, PASSWORD, Server, TestContext};
use serde_json::{Value, json};

use crate::team::{BOB, Db, OWNER, ci, joined, on_both, owner, server, system_key, url};

const ALICE: &str = "alice@example.com";

/// The columns of a value row and of a manifest row, to save rows and put them back.
const SECRET_COLUMNS: &[&str] = &[
    "environment_id",
    "name",
    "version",
    "ciphertext",
    "key_version",
    "created_at",
    "author",
];
const MANIFEST_COLUMNS: &[&str] = &[
    "environment_id",
    "revision",
    "anchor",
    "body",
    "signature",
    "created_by",
    "created_at",
];

/// The database an attacker edits: a server's (`SQLite` or `PostgreSQL`) or a local vault file.
#[derive(Clone, Copy)]
enum Store<'a> {
    Server(&'a Server),
    Vault(&'a TestContext),
}

impl Store<'_> {
    /// Runs `sql` behind `klef`'s back and returns what it printed, trimmed.
    fn sql(&self, sql: &str) -> String {
        match self {
            Store::Server(srv) => srv.sql(sql),
            Store::Vault(ctx) => sqlite(&ctx.vault_path(), sql),
        }
    }

    fn is_sqlite(&self) -> bool {
        match self {
            Store::Server(srv) => srv.sqlite_path().is_some(),
            Store::Vault(_) => true,
        }
    }

    /// A byte column as lower-case hex.
    fn hex(&self, column: &str) -> String {
        match self {
            Store::Server(srv) => srv.hex(column),
            Store::Vault(_) => format!("lower(hex({column}))"),
        }
    }

    /// Bytes given as hex, as an SQL literal.
    fn bytes(&self, hex: &str) -> String {
        match self {
            Store::Server(srv) => srv.bytes(hex),
            Store::Vault(_) => format!("X'{hex}'"),
        }
    }

    /// Lifts the append-only guard of `secrets` (its triggers): an attacker holding the
    /// database is not bound by it.
    fn unguard(&self) {
        if self.is_sqlite() {
            let triggers = self.sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'secrets'",
            );
            for t in triggers.lines() {
                self.sql(&format!("DROP TRIGGER {t}"));
            }
        } else {
            self.sql("ALTER TABLE secrets DISABLE TRIGGER USER");
        }
    }

    /// The rows of `table` matching `filter`, as `INSERT` statements that put them back.
    fn dump(&self, table: &str, columns: &[&str], filter: &str) -> Vec<String> {
        let list = columns.join(", ");
        let sql = if self.is_sqlite() {
            let values = columns
                .iter()
                .map(|c| format!("quote({c})"))
                .collect::<Vec<_>>()
                .join(" || ', ' || ");
            format!(
                "SELECT 'INSERT INTO {table} ({list}) VALUES (' || {values} || ')' FROM {table} WHERE {filter}"
            )
        } else {
            let holes = vec!["%L"; columns.len()].join(", ");
            format!(
                "SELECT format('INSERT INTO {table} ({list}) VALUES ({holes})', {list}) FROM {table} WHERE {filter}"
            )
        };
        self.sql(&sql).lines().map(str::to_owned).collect()
    }

    /// Puts back rows saved with [`Store::dump`].
    fn put_back(&self, rows: &[String]) {
        for row in rows {
            self.sql(row);
        }
    }

    /// Saves and deletes the rows of `table` matching `filter`.
    fn take(&self, table: &str, columns: &[&str], filter: &str) -> Vec<String> {
        let rows = self.dump(table, columns, filter);
        assert!(!rows.is_empty(), "no row of {table} where {filter}");
        self.sql(&format!("DELETE FROM {table} WHERE {filter}"));
        rows
    }

    /// The id of environment `slug` of `my-app`.
    fn env_id(&self, slug: &str) -> String {
        self.sql(&format!(
            "SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id \
             WHERE p.name = 'my-app' AND e.slug = '{slug}'"
        ))
    }

    /// Every value row and manifest of `env`: compared before and after a refused command to
    /// show that nothing was written.
    fn state(&self, env: &str) -> String {
        let values = self.sql(&format!(
            "SELECT name || ':' || version || ':' || coalesce({}, '-') FROM secrets \
             WHERE environment_id = '{env}' ORDER BY name, version",
            self.hex("ciphertext")
        ));
        let manifests = self.sql(&format!(
            "SELECT revision || ':' || {} FROM manifests WHERE environment_id = '{env}' ORDER BY revision",
            self.hex("body")
        ));
        format!("{values}\n--\n{manifests}")
    }

    /// The newest version of `name` in `env` (0 when it has none).
    fn newest(&self, env: &str, name: &str) -> u64 {
        self.sql(&format!(
            "SELECT coalesce(max(version), 0) FROM secrets WHERE environment_id = '{env}' AND name = '{name}'"
        ))
        .parse()
        .expect("a version")
    }

    /// The newest manifest revision of `env`.
    fn revision(&self, env: &str) -> u64 {
        self.sql(&format!(
            "SELECT coalesce(max(revision), 0) FROM manifests WHERE environment_id = '{env}'"
        ))
        .parse()
        .expect("a revision")
    }

    /// Filter of the value rows of `name` in `env` from `version` on.
    fn rows_from(env: &str, name: &str, version: u64) -> String {
        format!("environment_id = '{env}' AND name = '{name}' AND version >= {version}")
    }

    /// Saves and deletes the newest manifest of `env` and the value rows it added (every row
    /// of `names` from the versions given): the state before the newest write.
    fn take_newest_write(&self, env: &str, names: &[(&str, u64)]) -> Vec<String> {
        self.take_writes_from(env, self.revision(env), names)
    }

    /// [`Store::take_newest_write`] for every manifest from `revision` on.
    fn take_writes_from(&self, env: &str, revision: u64, names: &[(&str, u64)]) -> Vec<String> {
        self.unguard();
        let mut rows = self.take(
            "manifests",
            MANIFEST_COLUMNS,
            &format!("environment_id = '{env}' AND revision >= {revision}"),
        );
        for (name, version) in names {
            rows.extend(self.take(
                "secrets",
                SECRET_COLUMNS,
                &Self::rows_from(env, name, *version),
            ));
        }
        rows
    }

    // The attacks.

    /// Serves version 1's ciphertext of `name` as its newest version (a new row); returns the
    /// filter of that row.
    fn replay(&self, env: &str, name: &str) -> String {
        let next = self.newest(env, name) + 1;
        self.sql(&format!(
            "INSERT INTO secrets (environment_id, name, version, ciphertext, key_version, created_at, author) \
             SELECT environment_id, name, {next}, ciphertext, key_version, created_at, author FROM secrets \
             WHERE environment_id = '{env}' AND name = '{name}' AND version = 1"
        ));
        Self::rows_from(env, name, next)
    }

    /// The ciphertext of `name`'s newest version in `env`, as hex.
    fn ciphertext(&self, env: &str, name: &str) -> String {
        self.ciphertext_at(env, name, self.newest(env, name))
    }

    /// The ciphertext of version `version` of `name` in `env`, as hex.
    fn ciphertext_at(&self, env: &str, name: &str, version: u64) -> String {
        self.sql(&format!(
            "SELECT {} FROM secrets WHERE environment_id = '{env}' AND name = '{name}' AND version = {version}",
            self.hex("ciphertext"),
        ))
    }

    /// Overwrites the ciphertext of `name`'s newest version in place.
    fn overwrite(&self, env: &str, name: &str, hex: &str) {
        self.overwrite_at(env, name, self.newest(env, name), hex);
    }

    /// Overwrites the ciphertext of version `version` of `name` in place.
    fn overwrite_at(&self, env: &str, name: &str, version: u64, hex: &str) {
        self.unguard();
        self.sql(&format!(
            "UPDATE secrets SET ciphertext = {} WHERE environment_id = '{env}' AND name = '{name}' AND version = {version}",
            self.bytes(hex),
        ));
    }

    /// Swaps the slugs and display names of two environments of `my-app`.
    fn swap_slugs(&self, a: &str, b: &str) {
        let (a_id, b_id) = (self.env_id(a), self.env_id(b));
        let name = |id: &str| self.sql(&format!("SELECT name FROM environments WHERE id = '{id}'"));
        let (a_name, b_name) = (name(&a_id), name(&b_id));
        self.sql(&format!(
            "UPDATE environments SET slug = 'swapping' WHERE id = '{a_id}'"
        ));
        self.sql(&format!(
            "UPDATE environments SET slug = '{a}', name = '{a_name}' WHERE id = '{b_id}'"
        ));
        self.sql(&format!(
            "UPDATE environments SET slug = '{b}', name = '{b_name}' WHERE id = '{a_id}'"
        ));
    }
}

/// Runs `sql` on a `SQLite` file with the `sqlite3` shell; what it printed, trimmed.
fn sqlite(path: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .expect("run sqlite3 (needed to edit a vault file in the e2e tests)");
    assert!(
        out.status.success(),
        "{sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `klef get NAME --plain -e ENV` (with the password).
fn get(ctx: &TestContext, name: &str, env: &str) -> klef_e2e::Run {
    ctx.run_pw(["get", name, "--plain", "-e", env])
}

/// The value `klef get` prints.
fn value(ctx: &TestContext, name: &str, env: &str) -> String {
    get(ctx, name, env).success().stdout().trim().to_owned()
}

/// `klef get NAME` by a CI job.
fn ci_get(job: &TestContext, name: &str, env: &str) -> klef_e2e::Run {
    job.run(["get", name, "--plain", "-p", "my-app", "-e", env])
}

/// `klef keys create --type system --permission readwrite` by `ctx`.
fn readwrite_key(ctx: &TestContext, scope: &str, label: &str) -> String {
    ctx.run_pw([
        "keys",
        "create",
        "--type",
        "system",
        "--scope",
        scope,
        "--permission",
        "readwrite",
        "--label",
        label,
    ])
    .success()
    .stdout()
    .trim()
    .to_owned()
}

#[test]
fn a_replayed_value_is_refused_by_members_and_ci_jobs() {
    on_both(replayed_value);
}

fn replayed_value(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    owner.run_pw(["set", "DB", "dev-value-2"]).success();
    let token = system_key(&owner, "my-app:development", "ci");
    let job = ci(&owner, &token);
    assert_eq!(
        ci_get(&job, "DB", "development").success().stdout().trim(),
        "dev-value-2"
    );
    let env = store.env_id("development");

    // Version 1's ciphertext served as version 3.
    let injected = store.replay(&env, "DB");
    let attacked = store.state(&env);
    get(&owner, "DB", "development")
        .code_is(1)
        .clean_error(&[PASSWORD, "dev-value"])
        .stderr_has("DB: ")
        .stderr_has("replayed");
    ci_get(&job, "DB", "development")
        .code_is(1)
        .clean_error(&[&token, "dev-value"])
        .stderr_has("DB: ")
        .stderr_has("replayed");
    owner
        .run_pw(["set", "OTHER", "other-value"])
        .code_is(1)
        .clean_error(&[PASSWORD, "dev-value"])
        .stderr_has("replayed");
    assert_eq!(store.state(&env), attacked, "{db:?}: nothing was written");

    // Undone: both read the value last written, and the write goes through.
    store.unguard();
    store.sql(&format!("DELETE FROM secrets WHERE {injected}"));
    assert_eq!(value(&owner, "DB", "development"), "dev-value-2");
    assert_eq!(
        ci_get(&job, "DB", "development").success().stdout().trim(),
        "dev-value-2"
    );
    owner.run_pw(["set", "OTHER", "other-value"]).success();
}

#[test]
fn a_value_overwritten_in_place_is_refused() {
    on_both(overwritten_value);
}

fn overwritten_value(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    owner.run_pw(["set", "DB", "dev-value-2"]).success();
    let env = store.env_id("development");
    let current = store.ciphertext(&env, "DB");
    let first = store.ciphertext_at(&env, "DB", 1);

    // Version 2 rewritten with version 1's bytes (which open: same key, name and environment).
    store.overwrite(&env, "DB", &first);
    let attacked = store.state(&env);
    get(&owner, "DB", "development")
        .code_is(1)
        .clean_error(&[PASSWORD, "dev-value"])
        .stderr_has("DB: ")
        .stderr_has("replaced or altered");
    owner
        .run_pw(["set", "OTHER", "other-value"])
        .code_is(1)
        .stderr_has("DB: ");
    assert_eq!(store.state(&env), attacked, "{db:?}: nothing was written");

    store.overwrite(&env, "DB", &current);
    assert_eq!(value(&owner, "DB", "development"), "dev-value-2");
    owner.run_pw(["set", "OTHER", "other-value"]).success();
}

#[test]
fn two_swapped_values_are_refused() {
    on_both(swapped_values);
}

fn swapped_values(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    owner.run_pw(["set", "A", "alpha-value"]).success();
    owner.run_pw(["set", "B", "beta-value"]).success();
    let env = store.env_id("development");
    let (a, b) = (store.ciphertext(&env, "A"), store.ciphertext(&env, "B"));

    store.overwrite(&env, "A", &b);
    store.overwrite(&env, "B", &a);
    let attacked = store.state(&env);
    for name in ["A", "B"] {
        get(&owner, name, "development")
            .code_is(1)
            .clean_error(&[PASSWORD, "alpha-value", "beta-value"])
            .stderr_has("A: ")
            .stderr_has("replaced or altered");
    }
    owner
        .run_pw(["run", "--", "true"])
        .code_is(1)
        .clean_error(&[PASSWORD, "alpha-value", "beta-value"])
        .stderr_has("A: ");
    owner.run_pw(["set", "C", "c-value"]).code_is(1);
    assert_eq!(store.state(&env), attacked, "{db:?}: nothing was written");

    store.overwrite(&env, "A", &a);
    store.overwrite(&env, "B", &b);
    assert_eq!(value(&owner, "A", "development"), "alpha-value");
    assert_eq!(value(&owner, "B", "development"), "beta-value");
    owner.run_pw(["set", "C", "c-value"]).success();
}

#[test]
fn a_value_copied_from_another_environment_is_refused() {
    on_both(copied_value);
}

fn copied_value(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    owner
        .run_pw(["set", "DB", "prod-value", "-e", "production"])
        .success();
    let (staging, production) = (store.env_id("staging"), store.env_id("production"));

    // Staging's newest ciphertext of DB served as production's newest version.
    let next = store.newest(&production, "DB") + 1;
    store.sql(&format!(
        "INSERT INTO secrets (environment_id, name, version, ciphertext, key_version, created_at, author) \
         SELECT '{production}', name, {next}, ciphertext, key_version, created_at, author FROM secrets \
         WHERE environment_id = '{staging}' AND name = 'DB' AND version = {}",
        store.newest(&staging, "DB")
    ));
    let attacked = store.state(&production);
    get(&owner, "DB", "production")
        .code_is(1)
        .clean_error(&[PASSWORD, "stg-value", "prod-value"])
        .stderr_has("DB: ")
        .stderr_has("signed manifest");
    owner
        .run_pw(["set", "OTHER", "x", "-e", "production"])
        .code_is(1)
        .stderr_has("DB: ");
    assert_eq!(
        store.state(&production),
        attacked,
        "{db:?}: nothing was written"
    );

    store.unguard();
    store.sql(&format!(
        "DELETE FROM secrets WHERE {}",
        Store::rows_from(&production, "DB", next)
    ));
    assert_eq!(value(&owner, "DB", "production"), "prod-value");
    assert_eq!(value(&owner, "DB", "staging"), "stg-value");
}

#[test]
fn a_dropped_value_is_refused() {
    on_both(dropped_value);
}

fn dropped_value(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    owner.run_pw(["set", "OTHER", "other-value"]).success();
    let env = store.env_id("development");

    // A tombstone the owner never wrote.
    let next = store.newest(&env, "DB") + 1;
    store.sql(&format!(
        "INSERT INTO secrets (environment_id, name, version, ciphertext, key_version, created_at, author) \
         SELECT environment_id, name, {next}, NULL, key_version, created_at, author FROM secrets \
         WHERE environment_id = '{env}' AND name = 'DB' AND version = {}",
        next - 1
    ));
    let attacked = store.state(&env);
    get(&owner, "OTHER", "development")
        .code_is(1)
        .clean_error(&[PASSWORD, "dev-value", "other-value"])
        .stderr_has("DB: ")
        .stderr_has("dropped");
    owner
        .run_pw(["list", "--reveal"])
        .code_is(1)
        .clean_error(&[PASSWORD, "dev-value", "other-value"])
        .stderr_has("DB: ")
        .stderr_has("dropped");
    owner
        .run_pw(["set", "DB", "new-value"])
        .code_is(1)
        .stderr_has("dropped");
    assert_eq!(store.state(&env), attacked, "{db:?}: nothing was written");
    store.unguard();
    store.sql(&format!(
        "DELETE FROM secrets WHERE {}",
        Store::rows_from(&env, "DB", next)
    ));

    // Every row of DB deleted.
    let rows = store.take("secrets", SECRET_COLUMNS, &Store::rows_from(&env, "DB", 1));
    let attacked = store.state(&env);
    get(&owner, "OTHER", "development")
        .code_is(1)
        .clean_error(&[PASSWORD, "dev-value", "other-value"])
        .stderr_has("DB: ")
        .stderr_has("dropped");
    owner.run_pw(["set", "DB", "new-value"]).code_is(1);
    assert_eq!(store.state(&env), attacked, "{db:?}: nothing was written");

    store.put_back(&rows);
    assert_eq!(value(&owner, "DB", "development"), "dev-value");
    assert_eq!(value(&owner, "OTHER", "development"), "other-value");
}

#[test]
fn an_older_manifest_is_a_rollback_for_every_device_that_saw_the_newer_one() {
    on_both(older_manifest);
}

fn older_manifest(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    let token = system_key(&owner, "my-app:development", "ci");
    let job = ci(&owner, &token);
    let state_columns = ["account_id", "sealed", "revision", "updated_at"];
    let owner_id = store.sql(&format!("SELECT id FROM accounts WHERE email = '{OWNER}'"));
    let owners_state = format!("account_id = '{owner_id}'");
    let older_pins = store.dump("account_states", &state_columns, &owners_state);
    owner.run_pw(["set", "DB", "dev-value-2"]).success();
    let env = store.env_id("development");
    // A second device of the owner, signed in after the write: it inherits the account's heads.
    let mut laptop = TestContext::new();
    laptop.set_env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    laptop
        .run(["login", "--server", &url(&owner), "--email", OWNER])
        .success();
    laptop.run(["workspace", "use", "Acme"]).success();
    std::fs::copy(owner.cwd().join(".klef"), laptop.cwd().join(".klef")).expect("copy .klef");

    // The server forgets the newest write: its manifest and its value.
    let newest = store.take_newest_write(&env, &[("DB", 2)]);
    let attacked = store.state(&env);
    for device in [&owner, &laptop] {
        get(device, "DB", "development")
            .code_is(1)
            .clean_error(&[PASSWORD, "dev-value"])
            .stderr_has("rolled back")
            .stderr_has("revision");
        device
            .run_pw(["set", "OTHER", "x"])
            .code_is(1)
            .stderr_has("rolled back");
    }
    assert_eq!(store.state(&env), attacked, "{db:?}: nothing was written");
    // What a malicious server can still do (docs/security.md): a client that has never seen
    // the newer state, such as a CI job (it keeps no state between jobs), gets the older,
    // genuine state; its anchor bounds it to states signed since its key was made.
    assert_eq!(
        ci_get(&job, "DB", "development").success().stdout().trim(),
        "dev-value"
    );
    // So does a new device of the owner to which the server also serves the account's older
    // sealed pins (a copy it kept): sealed, so never forged, but not provably the newest.
    let newer_pins = store.take("account_states", &state_columns, &owners_state);
    store.put_back(&older_pins);
    let mut desktop = TestContext::new();
    desktop.set_env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    desktop
        .run(["login", "--server", &url(&owner), "--email", OWNER])
        .success();
    desktop.run(["workspace", "use", "Acme"]).success();
    std::fs::copy(owner.cwd().join(".klef"), desktop.cwd().join(".klef")).expect("copy .klef");
    assert_eq!(value(&desktop, "DB", "development"), "dev-value");
    store.sql(&format!("DELETE FROM account_states WHERE {owners_state}"));
    store.put_back(&newer_pins);

    store.put_back(&newest);
    for device in [&owner, &laptop] {
        assert_eq!(value(device, "DB", "development"), "dev-value-2");
    }
    assert_eq!(
        ci_get(&job, "DB", "development").success().stdout().trim(),
        "dev-value-2"
    );
}

#[test]
fn a_forked_manifest_is_refused_by_the_client_that_saw_the_other_branch() {
    on_both(forked_manifest);
}

fn forked_manifest(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    let bob = joined(&owner, BOB, &[]);
    let env = store.env_id("development");
    assert_eq!(value(&bob, "DB", "development"), "dev-value");
    owner.run_pw(["set", "DB", "dev-value-2"]).success();
    let revision = store.revision(&env);

    // The server hides the owner's write from Bob, who writes his own revision `revision`.
    let owners = store.take_newest_write(&env, &[("DB", 2)]);
    bob.run_pw(["set", "BOB", "bob-value"]).success();
    assert_eq!(store.revision(&env), revision, "{db:?}: Bob's revision");
    let attacked = store.state(&env);
    get(&owner, "DB", "development")
        .code_is(1)
        .clean_error(&[PASSWORD, "dev-value", "bob-value"])
        .stderr_has(&format!("revision {revision}"))
        .stderr_has("forked");
    owner
        .run_pw(["set", "OTHER", "x"])
        .code_is(1)
        .stderr_has("forked");
    assert_eq!(store.state(&env), attacked, "{db:?}: nothing was written");

    // The owner's branch again: the owner reads it, and Bob, who saw his own, refuses it.
    store.take_newest_write(&env, &[("BOB", 1)]);
    store.put_back(&owners);
    assert_eq!(value(&owner, "DB", "development"), "dev-value-2");
    get(&bob, "DB", "development")
        .code_is(1)
        .clean_error(&[PASSWORD, "dev-value"])
        .stderr_has("forked");
}

#[test]
fn a_fork_hidden_between_two_admins_is_detected_when_their_branches_meet() {
    on_both(hidden_fork);
}

fn hidden_fork(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    let alice = joined(&owner, ALICE, &["--role", "admin"]);
    let env = store.env_id("development");
    assert_eq!(value(&alice, "DB", "development"), "dev-value");

    // Each admin is shown only their own branch, and each works on it undisturbed.
    owner.run_pw(["set", "DB", "owner-value"]).success();
    let revision = store.revision(&env);
    let owners = store.take_newest_write(&env, &[("DB", 2)]);
    alice.run_pw(["set", "DB", "alice-value-1"]).success();
    alice.run_pw(["set", "DB", "alice-value-2"]).success();
    assert_eq!(value(&alice, "DB", "development"), "alice-value-2");
    let alices_second = store.take_newest_write(&env, &[("DB", 3)]);
    let alices_first = store.take_newest_write(&env, &[("DB", 2)]);
    store.put_back(&owners);
    assert_eq!(value(&owner, "DB", "development"), "owner-value");
    owner.run_pw(["set", "OWNER", "o"]).success();
    let owners_second = store.take_newest_write(&env, &[("OWNER", 1)]);

    // The branches meet: the owner is shown Alice's branch, Alice the owner's.
    let owners_first = store.take_newest_write(&env, &[("DB", 2)]);
    store.put_back(&alices_first);
    store.put_back(&alices_second);
    get(&owner, "DB", "development")
        .code_is(1)
        .clean_error(&[PASSWORD, "alice-value", "owner-value"])
        .stderr_has("forked");
    store.take_writes_from(&env, revision, &[("DB", 2)]);
    store.put_back(&owners_first);
    store.put_back(&owners_second);
    get(&alice, "DB", "development")
        .code_is(1)
        .clean_error(&[PASSWORD, "alice-value", "owner-value"])
        .stderr_has("forked");
    // Each still reads its own branch: the fork is detected, not healed.
    assert_eq!(value(&owner, "DB", "development"), "owner-value");
}

#[test]
fn the_old_key_served_after_a_rotation_is_refused() {
    on_both(old_key);
}

fn old_key(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    let token = system_key(&owner, "my-app:staging", "ci");
    let job = ci(&owner, &token);
    let env = store.env_id("staging");
    let key_rows = || {
        (
            store.sql(&format!(
                "SELECT {} || ':' || key_version FROM environments WHERE id = '{env}'",
                store.hex("sealed_key")
            )),
            store.dump(
                "environment_grants",
                &[
                    "environment_id",
                    "grantee_kind",
                    "grantee_id",
                    "wrapped_key",
                    "key_version",
                    "created_at",
                ],
                &format!("environment_id = '{env}'"),
            ),
        )
    };
    let put_key_rows = |(sealed, grants): &(String, Vec<String>)| {
        let (sealed, version) = sealed.split_once(':').expect("sealed:version");
        store.sql(&format!(
            "UPDATE environments SET sealed_key = {}, key_version = {version} WHERE id = '{env}'",
            store.bytes(sealed)
        ));
        store.sql(&format!(
            "DELETE FROM environment_grants WHERE environment_id = '{env}'"
        ));
        store.put_back(grants);
    };
    let before = key_rows();
    assert_eq!(before.1.len(), 1, "{db:?}: the CI key's grant");
    owner.run_pw(["env", "rotate-key", "staging"]).success();
    let after = key_rows();

    // The pre-rotation key, sealed under the project key and wrapped to the CI key.
    put_key_rows(&before);
    let attacked = store.state(&env);
    get(&owner, "DB", "staging")
        .code_is(1)
        .clean_error(&[PASSWORD, "stg-value"])
        .stderr_has("key commitment")
        .stderr_has("nothing was decrypted");
    ci_get(&job, "DB", "staging")
        .code_is(1)
        .clean_error(&[&token, "stg-value"])
        .stderr_has("key commitment");
    owner
        .run_pw(["set", "OTHER", "x", "-e", "staging"])
        .code_is(1)
        .stderr_has("key commitment");
    assert_eq!(store.state(&env), attacked, "{db:?}: nothing was written");

    put_key_rows(&after);
    assert_eq!(value(&owner, "DB", "staging"), "stg-value");
    assert_eq!(
        ci_get(&job, "DB", "staging").success().stdout().trim(),
        "stg-value"
    );
    owner
        .run_pw(["set", "OTHER", "x", "-e", "staging"])
        .success();
}

/// The public key the server lists for an account or a system key.
fn public_key(store: &Store<'_>, sql: &str) -> PublicKey {
    PublicKey::from_slice(&unhex(&store.sql(sql))).expect("a public key")
}

#[test]
fn an_environment_key_the_server_made_is_refused_by_members_and_ci_jobs() {
    on_both(injected_environment_key);
}

fn injected_environment_key(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let store = Store::Server(srv);
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    let bob = joined(&owner, BOB, &["--env", "staging"]);
    let token = readwrite_key(&owner, "my-app:staging", "ci");
    let job = ci(&owner, &token);
    assert_eq!(value(&bob, "DB", "staging"), "stg-value");
    let env = store.env_id("staging");
    let env_id: EnvironmentId = env.parse().expect("an environment id");
    let bob_id = store.sql(&format!("SELECT id FROM accounts WHERE email = '{BOB}'"));
    let key_id = store.sql("SELECT id FROM api_keys WHERE label = 'ci'");
    let injected = SymmetricKey::generate();

    for (grantee, public, reader) in [
        (
            bob_id.as_str(),
            public_key(
                &store,
                &format!(
                    "SELECT {} FROM accounts WHERE id = '{bob_id}'",
                    store.hex("public_key")
                ),
            ),
            &bob,
        ),
        (
            key_id.as_str(),
            public_key(
                &store,
                &format!(
                    "SELECT {} FROM api_keys WHERE id = '{key_id}'",
                    store.hex("public_key")
                ),
            ),
            &job,
        ),
    ] {
        // The server wraps its own key to the reader, exactly as an admin's klef would.
        let wrapped = wrap_key(&public, &injected, &Aad::EnvironmentKey(&env_id));
        let filter = format!("environment_id = '{env}' AND grantee_id = '{grantee}'");
        let real_wrap = store.sql(&format!(
            "SELECT {} FROM environment_grants WHERE {filter}",
            store.hex("wrapped_key")
        ));
        store.sql(&format!(
            "UPDATE environment_grants SET wrapped_key = {} WHERE {filter}",
            store.bytes(&hex(wrapped.as_bytes()))
        ));
        let attacked = store.state(&env);
        let (read, write) = if grantee == bob_id {
            (
                get(reader, "DB", "staging"),
                reader.run_pw(["set", "DB", "bob-value", "-e", "staging"]),
            )
        } else {
            (
                ci_get(reader, "DB", "staging"),
                reader.run(["set", "DB", "ci-value", "-p", "my-app", "-e", "staging"]),
            )
        };
        read.code_is(1)
            .clean_error(&[PASSWORD, &token, "stg-value"])
            .stderr_has("key commitment")
            .stderr_has("nothing was decrypted or written");
        write
            .code_is(1)
            .clean_error(&[PASSWORD, &token])
            .stderr_has("key commitment")
            .stderr_has("nothing was decrypted or written");
        assert_eq!(
            store.state(&env),
            attacked,
            "{db:?} {grantee}: nothing was written"
        );
        store.sql(&format!(
            "UPDATE environment_grants SET wrapped_key = {} WHERE {filter}",
            store.bytes(&real_wrap)
        ));
    }

    // The real keys again: both read, and both write.
    assert_eq!(value(&bob, "DB", "staging"), "stg-value");
    assert_eq!(
        ci_get(&job, "DB", "staging").success().stdout().trim(),
        "stg-value"
    );
    bob.run_pw(["set", "BOB", "bob-value", "-e", "staging"])
        .success();
    job.run(["set", "CI", "ci-value", "-p", "my-app", "-e", "staging"])
        .success();
    assert_eq!(value(&owner, "CI", "staging"), "ci-value");
}

#[test]
fn a_project_key_the_server_made_is_refused_and_never_used() {
    on_both(injected_project_key);
}

fn injected_project_key(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let store = Store::Server(srv);
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    let env = store.env_id("staging");
    let env_id: EnvironmentId = env.parse().expect("an environment id");
    let project = store.sql("SELECT id FROM projects WHERE name = 'my-app'");
    let project_id: ProjectId = project.parse().expect("a project id");
    let owner_id = store.sql(&format!("SELECT id FROM accounts WHERE email = '{OWNER}'"));
    let owner_public = public_key(
        &store,
        &format!(
            "SELECT {} FROM accounts WHERE id = '{owner_id}'",
            store.hex("public_key")
        ),
    );
    // The server makes a project key and an environment key, wraps the first to the owner and
    // seals the second under it, as `klef init` would.
    let (project_key, env_key) = (SymmetricKey::generate(), SymmetricKey::generate());
    let wrapped = wrap_key(&owner_public, &project_key, &Aad::ProjectKey(&project_id));
    let sealed = seal_key(&project_key, &env_key, &Aad::EnvironmentKey(&env_id));
    let filter = format!("project_id = '{project}' AND account_id = '{owner_id}'");
    let real_project_key = store.sql(&format!(
        "SELECT {} FROM project_keys WHERE {filter}",
        store.hex("wrapped_key")
    ));
    let real_sealed = store.sql(&format!(
        "SELECT {} FROM environments WHERE id = '{env}'",
        store.hex("sealed_key")
    ));
    store.sql(&format!(
        "UPDATE project_keys SET wrapped_key = {} WHERE {filter}",
        store.bytes(&hex(wrapped.as_bytes()))
    ));
    store.sql(&format!(
        "UPDATE environments SET sealed_key = {} WHERE id = '{env}'",
        store.bytes(&hex(sealed.as_bytes()))
    ));
    let attacked = store.state(&env);
    get(&owner, "DB", "staging")
        .code_is(1)
        .clean_error(&[PASSWORD, "stg-value"])
        .stderr_has("key commitment");
    owner
        .run_pw(["set", "DB", "new-value", "-e", "staging"])
        .code_is(1)
        .stderr_has("key commitment");
    assert_eq!(store.state(&env), attacked, "{db:?}: nothing was written");
    // A new environment's key would be sealed under the server's project key, which the
    // server holds: `env create` must not use a project key no admin committed to.
    let created = owner.run_pw(["env", "create", "qa"]);
    let qa = store.sql(&format!(
        "SELECT id || ':' || {} FROM environments WHERE slug = 'qa'",
        store.hex("sealed_key")
    ));
    if let Some((qa_id, qa_sealed)) = qa.split_once(':') {
        let qa_id: EnvironmentId = qa_id.parse().expect("an environment id");
        let opened = open_key(
            &project_key,
            &SealedKey::from_bytes(unhex(qa_sealed)),
            &Aad::EnvironmentKey(&qa_id),
            "the key of qa",
        );
        panic!(
            "{db:?}: `env create qa` used the project key the server made (exit {}); the server \
             opens the new environment's key with it: {}",
            created.code(),
            if opened.is_ok() { "yes" } else { "no" }
        );
    }
    created
        .code_is(1)
        .clean_error(&[PASSWORD])
        .stderr_has("project");

    store.sql(&format!(
        "UPDATE project_keys SET wrapped_key = {} WHERE {filter}",
        store.bytes(&real_project_key)
    ));
    store.sql(&format!(
        "UPDATE environments SET sealed_key = {} WHERE id = '{env}'",
        store.bytes(&real_sealed)
    ));
    assert_eq!(value(&owner, "DB", "staging"), "stg-value");
    owner.run_pw(["env", "create", "qa"]).success();
}

#[test]
fn staging_relabelled_as_production_is_refused() {
    on_both(relabelled);
}

fn relabelled(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    owner
        .run_pw(["set", "DB", "prod-value", "-e", "production"])
        .success();
    let (staging, production) = (store.env_id("staging"), store.env_id("production"));

    store.swap_slugs("staging", "production");
    let attacked = (store.state(&staging), store.state(&production));
    get(&owner, "DB", "production")
        .code_is(1)
        .clean_error(&[PASSWORD, "stg-value", "prod-value"])
        .stderr_has("relabelled");
    owner
        .run_pw(["set", "DB", "new-value", "-e", "production"])
        .code_is(1)
        .stderr_has("relabelled");
    assert_eq!(
        (store.state(&staging), store.state(&production)),
        attacked,
        "{db:?}: nothing was written"
    );

    store.swap_slugs("staging", "production");
    assert_eq!(value(&owner, "DB", "production"), "prod-value");
    assert_eq!(value(&owner, "DB", "staging"), "stg-value");
}

#[test]
fn a_manifest_signed_after_the_signers_removal_is_refused() {
    on_both(removed_signer);
}

fn removed_signer(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    let bob = joined(&owner, BOB, &["--env", "staging"]);
    assert_eq!(value(&bob, "DB", "staging"), "stg-value");
    let env = store.env_id("staging");
    let bob_id = store.sql(&format!("SELECT id FROM accounts WHERE email = '{BOB}'"));
    let membership = store.dump(
        "workspace_members",
        &["workspace_id", "account_id", "role", "created_at"],
        &format!("account_id = '{bob_id}'"),
    );
    let grant = store.dump(
        "environment_grants",
        &[
            "environment_id",
            "grantee_kind",
            "grantee_id",
            "wrapped_key",
            "key_version",
            "created_at",
        ],
        &format!("grantee_id = '{bob_id}'"),
    );
    owner
        .run_pw(["workspace", "remove", BOB, "--no-rotate"])
        .success();

    // The server colludes with Bob: it hides his removal from the roster and gives him back
    // his membership and his grant; Bob writes.
    let acme = "(SELECT id FROM workspaces WHERE name = 'Acme')";
    let removal = store.take(
        "roster_entries",
        &[
            "workspace_id",
            "sequence",
            "body",
            "signature",
            "created_by",
            "created_at",
        ],
        &format!(
            "workspace_id = {acme} AND sequence = \
             (SELECT max(sequence) FROM roster_entries WHERE workspace_id = {acme})"
        ),
    );
    store.sql(&format!(
        "DELETE FROM workspace_members WHERE account_id = '{bob_id}'"
    ));
    store.sql(&format!(
        "DELETE FROM environment_grants WHERE grantee_id = '{bob_id}'"
    ));
    store.put_back(&membership);
    store.put_back(&grant);
    bob.run_pw(["set", "DB", "bob-value", "-e", "staging"])
        .success();
    store.put_back(&removal);

    let attacked = store.state(&env);
    get(&owner, "DB", "staging")
        .code_is(1)
        .clean_error(&[PASSWORD, "stg-value", "bob-value"])
        .stderr_has("not signed by an authorised writer")
        .stderr_has("removed");
    owner
        .run_pw(["set", "OTHER", "x", "-e", "staging"])
        .code_is(1)
        .stderr_has("not signed by an authorised writer");
    assert_eq!(store.state(&env), attacked, "{db:?}: nothing was written");

    // Without Bob's write, the owner reads the state it signed.
    store.take_newest_write(&env, &[("DB", 2)]);
    assert_eq!(value(&owner, "DB", "staging"), "stg-value");
}

#[test]
fn removing_a_member_whose_write_is_the_newest_keeps_the_environment_readable() {
    on_both(removed_after_writing);
}

/// Not an attack: the other side of [`removed_signer`]. A manifest Bob signed while he was a
/// member stays valid after his removal (`workspace remove` re-signs the state he left, by
/// rotating it or, with `--no-rotate`, at least re-signing its manifest: DESIGN.md §9.2), so the
/// owner still reads it and can still rotate it.
fn removed_after_writing(db: Db) {
    for flags in [&[][..], &["--no-rotate"][..]] {
        let Some(owner) = owner(db) else { return };
        owner
            .run_pw(["set", "DB", "stg-value", "-e", "staging"])
            .success();
        let bob = joined(&owner, BOB, &["--env", "staging"]);
        bob.run_pw(["set", "DB", "bob-value", "-e", "staging"])
            .success();
        let mut args = vec!["workspace", "remove", BOB];
        args.extend_from_slice(flags);
        owner.run_pw(args).success();
        assert_eq!(
            value(&owner, "DB", "staging"),
            "bob-value",
            "{db:?} {flags:?}"
        );
        owner.run_pw(["env", "rotate-key", "staging"]).success();
        assert_eq!(
            value(&owner, "DB", "staging"),
            "bob-value",
            "{db:?} {flags:?}"
        );
    }
}

/// One HTTP request to the server at `url`; the status and the JSON body (`null` if none).
fn http(url: &str, method: &str, path: &str, bearer: &str, body: &Value) -> (u16, Value) {
    use std::io::{Read as _, Write as _};
    let addr = url.strip_prefix("http://").expect("http url");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let body = body.to_string();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         authorization: Bearer {bearer}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, serde_json::from_str(rest).unwrap_or(Value::Null))
}

#[test]
fn a_garbage_ciphertext_written_through_the_api_is_refused_and_not_stored() {
    on_both(garbage_ciphertext);
}

fn garbage_ciphertext(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    let bob = joined(&owner, BOB, &[]);
    let token = bob
        .run_pw(["keys", "create", "--type", "user", "--label", "laptop"])
        .success()
        .stdout()
        .trim()
        .to_owned();
    let bearer = ApiToken::parse(&token).expect("a user key").bearer_token();
    let env = store.env_id("development");
    let before = store.state(&env);
    // Bob, a writer, posts bytes no client could open, past klef.
    for junk in ["AQ==", "EAAAAA==", "AA=="] {
        let (status, answer) = http(
            &url(&owner),
            "POST",
            &format!("/v1/environments/{env}/secrets"),
            bearer.expose_secret(),
            &json!({"writes": [{"name": "JUNK", "expected_version": null, "ciphertext": junk}]}),
        );
        assert_eq!(status, 400, "{db:?} {junk}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("JUNK: not an encrypted value")),
            "{db:?} {junk}: {answer}"
        );
    }
    assert_eq!(store.state(&env), before, "{db:?}: nothing was stored");
    assert_eq!(value(&owner, "DB", "development"), "dev-value");

    // A real value through klef is stored and read.
    bob.run_pw(["set", "JUNK", "fine-value"]).success();
    assert_eq!(value(&owner, "JUNK", "development"), "fine-value");
}

/// The local vault of a fresh context: `my-app` with `DB` set in development (twice), staging
/// and production, and `OTHER` in development.
fn vault() -> TestContext {
    let ctx = TestContext::new();
    ctx.init();
    for (env, name, v) in [
        ("development", "DB", "dev-value"),
        ("development", "DB", "dev-value-2"),
        ("development", "OTHER", "other-value"),
        ("staging", "DB", "stg-value"),
        ("production", "DB", "prod-value"),
    ] {
        ctx.run_pw(["set", name, v, "-e", env]).success();
    }
    ctx
}

/// An edit of the vault file `klef` must refuse: exit 1, the vault file blamed, `needles`
/// named, no value shown.
fn refused(ctx: &TestContext, args: &[&str], needles: &[&str]) {
    let run = ctx
        .run_pw(args)
        .code_is(1)
        .clean_error(&[
            PASSWORD,
            "dev-value",
            "other-value",
            "stg-value",
            "prod-value",
        ])
        .stderr_has("the vault file");
    needles.iter().fold(run, |run, n| run.stderr_has(n));
}

#[test]
fn edits_of_the_local_vault_file_are_refused() {
    let ctx = vault();
    let store = Store::Vault(&ctx);
    let dev = store.env_id("development");
    let dev_get = ["get", "DB", "--plain"];
    let write = ["set", "NEW", "x"];

    // Replay.
    store.unguard();
    let injected = store.replay(&dev, "DB");
    let attacked = store.state(&dev);
    refused(&ctx, &dev_get, &["DB: ", "replayed"]);
    refused(&ctx, &write, &["DB: ", "replayed"]);
    assert_eq!(store.state(&dev), attacked, "nothing was written");
    store.sql(&format!("DELETE FROM secrets WHERE {injected}"));
    assert_eq!(value(&ctx, "DB", "development"), "dev-value-2");

    // Overwrite in place.
    let current = store.ciphertext(&dev, "DB");
    let first = store.ciphertext_at(&dev, "DB", 1);
    store.overwrite(&dev, "DB", &first);
    let attacked = store.state(&dev);
    refused(&ctx, &dev_get, &["DB: ", "replaced or altered"]);
    refused(&ctx, &write, &["DB: "]);
    assert_eq!(store.state(&dev), attacked, "nothing was written");
    store.overwrite(&dev, "DB", &current);
    assert_eq!(value(&ctx, "DB", "development"), "dev-value-2");

    // Swap.
    let other = store.ciphertext(&dev, "OTHER");
    store.overwrite(&dev, "DB", &other);
    store.overwrite(&dev, "OTHER", &current);
    refused(&ctx, &["get", "OTHER", "--plain"], &["DB: ", "replaced"]);
    refused(&ctx, &["run", "--", "true"], &["DB: "]);
    store.overwrite(&dev, "DB", &current);
    store.overwrite(&dev, "OTHER", &other);
    assert_eq!(value(&ctx, "OTHER", "development"), "other-value");

    // Drop: a tombstone, then every row deleted.
    let next = store.newest(&dev, "DB") + 1;
    store.sql(&format!(
        "INSERT INTO secrets (environment_id, name, version, ciphertext, key_version, created_at, author) \
         SELECT environment_id, name, {next}, NULL, key_version, created_at, author FROM secrets \
         WHERE environment_id = '{dev}' AND name = 'DB' AND version = 1"
    ));
    refused(&ctx, &["get", "OTHER", "--plain"], &["DB: ", "dropped"]);
    store.sql(&format!(
        "DELETE FROM secrets WHERE {}",
        Store::rows_from(&dev, "DB", next)
    ));
    let rows = store.take("secrets", SECRET_COLUMNS, &Store::rows_from(&dev, "DB", 1));
    let attacked = store.state(&dev);
    refused(&ctx, &["get", "OTHER", "--plain"], &["DB: ", "dropped"]);
    refused(&ctx, &write, &["DB: ", "dropped"]);
    assert_eq!(store.state(&dev), attacked, "nothing was written");
    store.put_back(&rows);
    assert_eq!(value(&ctx, "DB", "development"), "dev-value-2");

    // An older manifest: the newest write (OTHER) forgotten.
    let newest = store.take_newest_write(&dev, &[("OTHER", 1)]);
    let attacked = store.state(&dev);
    refused(&ctx, &dev_get, &["rolled back"]);
    refused(&ctx, &write, &["rolled back"]);
    assert_eq!(store.state(&dev), attacked, "nothing was written");
    store.put_back(&newest);
    assert_eq!(value(&ctx, "OTHER", "development"), "other-value");

    // Relabelling staging as production.
    store.swap_slugs("staging", "production");
    refused(
        &ctx,
        &["get", "DB", "--plain", "-e", "production"],
        &["relabelled"],
    );
    store.swap_slugs("staging", "production");
    assert_eq!(value(&ctx, "DB", "production"), "prod-value");

    // What an attacker who can edit the vault file can still do (docs/security.md): delete the
    // sealed heads in `<data>/pins/` too, and the vault then reads an older state as a fresh
    // client would (a state its owner signed, never one they did not).
    let newest = store.take_newest_write(&dev, &[("OTHER", 1)]);
    for pins in std::fs::read_dir(ctx.klef_home().join("data/pins")).expect("the pins") {
        std::fs::remove_file(pins.expect("a pins file").path()).expect("remove the pins");
    }
    assert_eq!(value(&ctx, "DB", "development"), "dev-value-2");
    get(&ctx, "OTHER", "development").code_is(5);
    store.put_back(&newest);
    assert_eq!(value(&ctx, "OTHER", "development"), "other-value");
}

/// Turns a database made by this build into what the release before manifests made: no
/// `manifests` table, migration 8 not applied.
fn before_manifests(store: &Store<'_>) {
    store.sql("DELETE FROM manifests");
    store.sql("DROP TABLE manifests");
    store.sql("DELETE FROM _sqlx_migrations WHERE version = 8");
}

#[test]
fn a_server_database_from_before_manifests_migrates_and_is_sealed_by_its_owner() {
    on_both(server_upgrade);
}

fn server_upgrade(db: Db) {
    let mut owner = TestContext::new();
    let dir = owner.root().join("server");
    owner.server = Some(match db {
        Db::Sqlite => Server::sqlite(&dir),
        Db::Postgres => match Server::postgres(&dir) {
            Some(srv) => srv,
            None => return,
        },
    });
    owner.signup(&url(&owner), OWNER);
    owner.run_pw(["workspace", "create", "Acme"]).success();
    owner.run(["workspace", "use", "Acme"]).success();
    // The owner's pins as the release before manifests left them: the roster pinned, no
    // environment head (taken before the first manifest exists).
    let pins = owner.klef_home().join("data/pins");
    let saved_pins = read_dir_files(&pins);
    let state_columns = ["account_id", "sealed", "revision", "updated_at"];
    let saved_state = Store::Server(server(&owner)).dump("account_states", &state_columns, "1 = 1");
    owner.init();
    owner.run_pw(["set", "DB", "dev-value"]).success();
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    let bob = joined(&owner, BOB, &[]);
    owner.run_pw(["set", "A", "a-value"]).success();
    let listed = |ctx: &TestContext, env: &str| {
        ctx.run_pw(["list", "--reveal", "--json", "-e", env])
            .success()
            .stdout()
    };
    let before = [listed(&owner, "development"), listed(&owner, "staging")];

    // The database as the previous release made it, then this build started on it.
    {
        let store = Store::Server(server(&owner));
        before_manifests(&store);
        let owner_id = store.sql(&format!("SELECT id FROM accounts WHERE email = '{OWNER}'"));
        store.sql(&format!(
            "DELETE FROM account_states WHERE account_id = '{owner_id}'"
        ));
        store.put_back(&saved_state);
    }
    std::fs::remove_dir_all(&pins).expect("remove the pins");
    std::fs::create_dir_all(&pins).expect("create the pins directory");
    for (path, bytes) in &saved_pins {
        std::fs::write(path, bytes).expect("put the pins back");
    }
    owner.server.as_mut().expect("a server").restart();
    let store = Store::Server(server(&owner));
    assert_eq!(
        store.sql("SELECT count(*) FROM manifests"),
        "0",
        "{db:?}: migrated, nothing sealed"
    );

    // Every value reads back unchanged, with a warning that it is not verified yet.
    for (env, before) in ["development", "staging"].iter().zip(&before) {
        let run = owner
            .run_pw(["list", "--reveal", "--json", "-e", env])
            .success()
            .stderr_has("has no signed state yet")
            .stderr_has("klef env seal");
        assert_eq!(&run.stdout(), before, "{db:?} {env}");
    }
    // Before it is sealed it has no signed past to list or compare with (after the read's
    // warning that it is not sealed).
    for args in [&["history"][..], &["diff", "--revision", "1"][..]] {
        let run = owner
            .run_pw(args)
            .code_is(5)
            .stderr_has("error: environment \"development\" of project \"my-app\" has no signed revisions yet")
            .stderr_has("klef env seal");
        assert!(!run.stderr().contains("dev-value") && !run.stdout().contains("dev-value"));
    }
    assert_eq!(
        bob.run_pw(["get", "A", "--plain"])
            .success()
            .stdout()
            .trim(),
        "a-value"
    );
    // A member may not seal.
    bob.run_pw(["env", "seal", "development"])
        .code_is(4)
        .stderr_has("only an owner or admin");
    assert_eq!(store.sql("SELECT count(*) FROM manifests"), "0", "{db:?}");
    // The owner seals; reads are verified from then on, and a member's write is signed.
    for env in ["development", "staging"] {
        owner
            .run_pw(["env", "seal", env])
            .success()
            .stderr_has("sealed");
    }
    owner
        .run_pw(["-v", "get", "DB", "--plain"])
        .success()
        .stderr_has("signed revision 1");
    bob.run_pw(["set", "B", "b-value"]).success();
    let run = owner.run_pw(["-v", "get", "B", "--plain"]).success();
    assert_eq!(run.stdout().trim(), "b-value");
    let run = run.stderr_has("signed revision 2");
    assert!(!run.stderr().contains("no signed state"), "{db:?}");
    assert_eq!(listed(&owner, "staging"), before[1], "{db:?}");
}

/// The files directly in `dir` and their bytes.
fn read_dir_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    std::fs::read_dir(dir)
        .expect("read the directory")
        .map(|e| {
            let path = e.expect("an entry").path();
            let bytes = std::fs::read(&path).expect("read a file");
            (path, bytes)
        })
        .collect()
}

#[test]
fn a_local_vault_from_before_manifests_is_sealed_on_first_use() {
    let ctx = vault();
    let listed = |env: &str| {
        ctx.run_pw(["list", "--reveal", "--json", "-e", env])
            .success()
            .stdout()
    };
    let before: Vec<String> = ["development", "staging", "production"]
        .iter()
        .map(|e| listed(e))
        .collect();
    let store = Store::Vault(&ctx);
    before_manifests(&store);
    std::fs::remove_dir_all(ctx.klef_home().join("data/pins")).expect("remove the pins");

    let after: Vec<String> = ["development", "staging", "production"]
        .iter()
        .map(|e| listed(e))
        .collect();
    assert_eq!(after, before, "every value reads back unchanged");
    assert_eq!(
        store.sql("SELECT count(DISTINCT environment_id) FROM manifests"),
        "3",
        "each environment was sealed on first use"
    );
    ctx.run_pw(["-v", "get", "DB", "--plain"])
        .success()
        .stderr_has("signed revision 1");
    ctx.run_pw(["set", "NEW", "new-value"]).success();
    ctx.run_pw(["-v", "get", "NEW", "--plain"])
        .success()
        .stderr_has("signed revision 2");
    // And an edit is refused from then on.
    let dev = store.env_id("development");
    store.unguard();
    store.replay(&dev, "DB");
    refused(&ctx, &["get", "DB", "--plain"], &["DB: ", "replayed"]);
}

#[test]
fn an_altered_past_is_refused_by_history_and_diff_at_a_revision() {
    on_both(altered_past);
}

/// `klef history` (the revisions) and `klef diff --revision N` read earlier signed states; the
/// server serves them, so it could rewrite the past: an old value, or an old manifest. Both
/// are proven by the chain up to the verified head, so each edit is refused, while the current
/// state (which the edit did not touch) still reads.
fn altered_past(db: Db) {
    let Some(owner) = owner(db) else { return };
    let store = Store::Server(server(&owner));
    owner.run_pw(["set", "DB", "dev-value-2"]).success();
    let env = store.env_id("development");
    let revisions = crate::team::json(&owner.run_pw(["history", "--json"]).success());
    let first = revisions
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| {
            r["added"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("DB")))
        })
        .unwrap_or_else(|| panic!("a revision that added DB: {revisions}"));
    assert_eq!(first["signed_by"], OWNER, "{revisions}");
    let rev = first["revision"].as_u64().expect("revision").to_string();
    let shown = owner
        .run_pw(["diff", "--revision", &rev, "--show"])
        .code_is(1)
        .stdout();
    assert!(shown.contains("~ DB: dev-value → dev-value-2"), "{shown}");

    // The old version rewritten with the current bytes (which open: same key and name).
    let v1 = store.ciphertext_at(&env, "DB", 1);
    let v2 = store.ciphertext(&env, "DB");
    store.overwrite_at(&env, "DB", 1, &v2);
    owner
        .run_pw(["diff", "--revision", &rev, "--show"])
        .code_is(2)
        .clean_error(&[PASSWORD, "dev-value"])
        .stderr_has("DB at revision")
        .stderr_has("does not match the signed state");
    assert_eq!(value(&owner, "DB", "development"), "dev-value-2");
    store.overwrite_at(&env, "DB", 1, &v1);
    owner.run_pw(["diff", "--revision", &rev]).code_is(1);

    // An earlier manifest replaced by the one before it.
    let body = |r: &str| {
        store.sql(&format!(
            "SELECT {} FROM manifests WHERE environment_id = '{env}' AND revision = {r}",
            store.hex("body")
        ))
    };
    let (kept, earlier) = (body(&rev), body("1"));
    let set_body = |hex: &str| {
        store.sql(&format!(
            "UPDATE manifests SET body = {} WHERE environment_id = '{env}' AND revision = {rev}",
            store.bytes(hex)
        ));
    };
    set_body(&earlier);
    owner
        .run_pw(["history"])
        .code_is(1)
        .clean_error(&[PASSWORD])
        .stderr_has("earlier signed states do not lead to the verified one");
    owner
        .run_pw(["diff", "--revision", "1"])
        .code_is(2)
        .stderr_has("altered or withheld");
    assert_eq!(value(&owner, "DB", "development"), "dev-value-2");
    set_body(&kept);
    owner.run_pw(["history"]).success();
}
