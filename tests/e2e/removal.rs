//! `klef workspace remove EMAIL` as a security reviewer expects it (DESIGN.md §9.2, issue #21):
//! the system keys the member created are revoked or kept by explicit choice, never silently;
//! without a terminal and without `--revoke-keys`/`--keep-keys` nothing changes at all; every
//! environment the member could read is rotated by default, and `--no-rotate` only defers it
//! with a warning; a rotation that fails leaves the member removed and names what is left.
//! Every test runs on `SQLite` and on `PostgreSQL`, through the real binaries.

use klef_e2e::{PASSWORD, Run, Server, TestContext};

use crate::team::{
    BOB, Db, OWNER, ci, joined, json, on_both, roster_len, server, short, system_key,
};

/// The owner of [`crate::team::owner`], with a value in staging and production too.
fn owner(db: Db) -> Option<TestContext> {
    let ctx = crate::team::owner(db)?;
    for (env, value) in [("staging", "stg-value"), ("production", "prod-value")] {
        ctx.run_pw(["set", "DB", value, "-e", env]).success();
    }
    Some(ctx)
}

/// `klef get DB -e ENV` by a CI job holding only `token`.
fn ci_get(owner: &TestContext, token: &str, env: &str) -> Run {
    ci(owner, token).run(["get", "DB", "--plain", "-p", "my-app", "-e", env])
}

fn key_versions(srv: &Server) -> String {
    srv.sql(
        "SELECT e.slug || '=' || e.key_version FROM environments e JOIN projects p ON p.id = e.project_id \
         WHERE p.name = 'my-app' ORDER BY e.slug",
    )
    .split_whitespace()
    .collect::<Vec<_>>()
    .join(" ")
}

fn members(owner: &TestContext) -> Vec<String> {
    json(&owner.run(["workspace", "members", "--json"]).success())
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["email"].as_str().map(str::to_owned))
        .collect()
}

/// The owner reads every value back after the removal.
fn owner_reads_everything(owner: &TestContext, db: Db) {
    for (env, want) in [
        ("development", "dev-value"),
        ("staging", "stg-value"),
        ("production", "prod-value"),
    ] {
        assert_eq!(
            owner
                .run_pw(["get", "DB", "--plain", "-e", env])
                .success()
                .stdout(),
            want,
            "{db:?}"
        );
    }
}

#[test]
fn removing_a_member_who_made_a_system_key_needs_a_choice_and_revoke_keys_ends_it() {
    on_both(revoke_keys);
}

fn revoke_keys(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let bob = joined(&owner, BOB, &["--role", "admin"]);
    let token = system_key(&bob, "my-app:staging", "ci-bob");
    assert_eq!(
        ci_get(&owner, &token, "staging").success().stdout(),
        "stg-value"
    );
    let entries = roster_len(srv);
    let versions = key_versions(srv);
    assert_eq!(versions, "development=1 production=1 staging=1", "{db:?}");

    // No terminal, no flag: a usage error naming the key and both flags; nothing changed.
    owner
        .run_pw(["workspace", "remove", BOB])
        .code_is(2)
        .clean_error(&[PASSWORD, &token, "stg-value"])
        .stderr_has(&short(&token))
        .stderr_has("ci-bob")
        .stderr_has("--revoke-keys")
        .stderr_has("--keep-keys")
        .stderr_has("nothing was changed");
    assert!(members(&owner).contains(&BOB.to_owned()), "{db:?}");
    assert_eq!(roster_len(srv), entries, "{db:?}: nothing signed");
    assert_eq!(key_versions(srv), versions, "{db:?}: nothing rotated");
    assert_eq!(
        ci_get(&owner, &token, "staging").success().stdout(),
        "stg-value"
    );
    // Both flags at once is a usage error too.
    owner
        .run_pw(["workspace", "remove", BOB, "--revoke-keys", "--keep-keys"])
        .code_is(2);
    assert!(members(&owner).contains(&BOB.to_owned()), "{db:?}");

    let removed = json(
        &owner
            .run_pw(["workspace", "remove", BOB, "--revoke-keys", "--json"])
            .success(),
    );
    assert!(!members(&owner).contains(&BOB.to_owned()), "{db:?}");
    let revoked = removed["revoked_keys"].as_array().expect("revoked_keys");
    assert_eq!(revoked.len(), 1, "{db:?}: {removed}");
    assert_eq!(revoked[0]["label"], "ci-bob", "{db:?}");
    assert_eq!(revoked[0]["verified"], true, "{db:?}");
    assert!(
        token.starts_with(revoked[0]["prefix"].as_str().expect("prefix")),
        "{db:?}: {removed}"
    );
    assert_eq!(removed["kept_keys"], serde_json::json!([]), "{db:?}");
    // The roster: Bob's `removed` entry and his key's.
    assert_eq!(roster_len(srv), entries + 2, "{db:?}");
    // The key stops working at once.
    let after = ci_get(&owner, &token, "staging");
    assert_ne!(after.code(), 0, "{db:?}: a revoked key still reads");
    after.clean_error(&[&token, "stg-value"]);

    // Bob was an admin: every environment was rotated, in the same command.
    let mut rotated: Vec<&str> = removed["rotated"]
        .as_array()
        .expect("rotated")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    rotated.sort_unstable();
    assert_eq!(
        rotated,
        ["my-app:development", "my-app:production", "my-app:staging"],
        "{db:?}: {removed}"
    );
    assert_eq!(removed["not_rotated"], serde_json::json!([]), "{db:?}");
    assert_eq!(
        key_versions(srv),
        "development=2 production=2 staging=2",
        "{db:?}"
    );
    owner_reads_everything(&owner, db);
    // Bob reads nothing any more.
    bob.run_pw(["get", "DB", "-e", "staging"])
        .clean_error(&[PASSWORD, "stg-value"]);
}

#[test]
fn keep_keys_leaves_the_members_system_key_working_through_the_rotation() {
    on_both(keep_keys);
}

fn keep_keys(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let bob = joined(&owner, BOB, &["--role", "admin"]);
    let token = system_key(&bob, "my-app:staging", "ci-bob");
    let entries = roster_len(srv);

    let removed = owner
        .run_pw(["workspace", "remove", BOB, "--keep-keys"])
        .success();
    removed
        .stderr_has("kept 1 system key(s)")
        .stderr_has(&short(&token))
        .stderr_has("rotated the key of environment \"staging\"");
    assert!(!members(&owner).contains(&BOB.to_owned()), "{db:?}");
    assert_eq!(roster_len(srv), entries + 1, "{db:?}: only Bob's `removed`");
    assert_eq!(
        key_versions(srv),
        "development=2 production=2 staging=2",
        "{db:?}"
    );
    // The kept key was re-wrapped the new staging key, and still reads.
    assert_eq!(
        ci_get(&owner, &token, "staging").success().stdout(),
        "stg-value"
    );
    owner_reads_everything(&owner, db);
}

#[test]
fn no_rotate_defers_the_rotation_with_a_warning_naming_the_commands() {
    on_both(no_rotate);
}

fn no_rotate(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let _bob = joined(&owner, BOB, &["--env", "staging"]);

    // Bob created no key: no choice is needed, without a terminal either.
    let removed = owner
        .run_pw(["workspace", "remove", BOB, "--no-rotate", "--json"])
        .success();
    let out = json(&removed);
    removed
        .stderr_has("not rotated (--no-rotate)")
        .stderr_has("my-app:staging")
        .stderr_has("klef env rotate-key staging -p my-app");
    assert_eq!(out["rotated"], serde_json::json!([]), "{db:?}");
    assert_eq!(out["rotation_deferred"], true, "{db:?}");
    assert_eq!(out["not_rotated"][0]["name"], "my-app:staging", "{db:?}");
    assert!(!members(&owner).contains(&BOB.to_owned()), "{db:?}");
    assert_eq!(
        key_versions(srv),
        "development=1 production=1 staging=1",
        "{db:?}"
    );

    // The deferred command does it later.
    owner
        .run_pw(["env", "rotate-key", "staging", "-p", "my-app"])
        .success();
    assert_eq!(
        key_versions(srv),
        "development=1 production=1 staging=2",
        "{db:?}"
    );
    owner_reads_everything(&owner, db);
}

#[test]
fn a_failed_rotation_leaves_the_member_removed_and_names_what_is_left() {
    on_both(failed_rotation);
}

fn failed_rotation(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let bob = joined(&owner, BOB, &["--role", "admin"]);
    let token = system_key(&bob, "my-app:staging", "ci-bob");
    // The server lists another public key (the owner's) for Bob's key: rotating staging, which
    // wraps to that key, must fail; the other environments rotate.
    srv.sql(&format!(
        "UPDATE api_keys SET public_key = (SELECT public_key FROM accounts WHERE email = '{OWNER}') \
         WHERE label = 'ci-bob'"
    ));
    let removed = owner
        .run_pw(["workspace", "remove", BOB, "--keep-keys", "--json"])
        .code_is(1)
        .stderr_has("substituted a key")
        .stderr_has("1 of 3 environment(s) were not rotated: my-app:staging")
        .stderr_has("(rotated: my-app:")
        .stderr_has("klef env rotate-key staging -p my-app");
    for secret in [PASSWORD, token.as_str(), "stg-value"] {
        assert!(
            !removed.stderr().contains(secret) && !removed.stdout().contains(secret),
            "{db:?}: a secret in the output"
        );
    }
    let out = json(&removed);
    assert_eq!(out["not_rotated"][0]["name"], "my-app:staging", "{db:?}");
    assert_eq!(out["rotated"].as_array().map(Vec::len), Some(2), "{db:?}");
    assert!(!members(&owner).contains(&BOB.to_owned()), "{db:?}");
    assert_eq!(
        key_versions(srv),
        "development=2 production=2 staging=1",
        "{db:?}"
    );
    owner_reads_everything(&owner, db);
}

#[test]
fn at_a_terminal_removal_asks_about_the_members_keys() {
    on_both(asks_at_a_terminal);
}

fn asks_at_a_terminal(db: Db) {
    let Some(mut owner) = owner(db) else { return };
    // Only the question under test is asked at the terminal.
    owner.set_env("KLEF_PASSWORD", PASSWORD);
    let srv = server(&owner);
    let bob = joined(&owner, BOB, &["--role", "admin"]);
    let token = system_key(&bob, "my-app:staging", "ci-bob");
    let entries = roster_len(srv);
    let question = "revoke them (CI jobs using them stop working) or keep them? [revoke/keep] ";

    // Neither answer: cancelled, nothing changed.
    let mut t = owner.terminal(["workspace", "remove", BOB]);
    t.expect(&short(&token)).expect(question).type_line("");
    let (code, screen) = t.finish();
    assert_ne!(code, 0, "{db:?}: {screen}");
    assert!(screen.contains("nothing was changed"), "{db:?}: {screen}");
    assert!(members(&owner).contains(&BOB.to_owned()), "{db:?}");
    assert_eq!(roster_len(srv), entries, "{db:?}");

    // "revoke": the key stops working, the member is removed and everything rotated.
    let mut t = owner.terminal(["workspace", "remove", BOB]);
    t.expect(question).type_line("revoke");
    let (code, screen) = t.finish();
    assert_eq!(code, 0, "{db:?}: {screen}");
    assert!(!members(&owner).contains(&BOB.to_owned()), "{db:?}");
    assert_eq!(roster_len(srv), entries + 2, "{db:?}");
    assert_ne!(ci_get(&owner, &token, "staging").code(), 0, "{db:?}");
    assert_eq!(
        key_versions(srv),
        "development=2 production=2 staging=2",
        "{db:?}"
    );
}
