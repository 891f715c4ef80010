//! A malicious server against identity keys and the signed roster (DESIGN.md §9.1, §9.2): the
//! real `klef` talks to the real `klef-server`, and the test edits the server's database behind
//! its back, as an operator or an attacker holding the database would. Each attack ends with
//! `klef` failing with a message that names what the server did, and nothing signed, wrapped or
//! pinned; each test then undoes the attack and shows the same step succeeding, so none of
//! them passes by accident. Every test runs on `SQLite` and on `PostgreSQL`.

use klef_core::crypto::generate_keypair;
use klef_core::ids::{AccountId, WorkspaceId};
use klef_core::model::Role;
use klef_core::trust::roster::{Access, MemberRecord, VerifiedRoster};
use klef_core::trust::secrets::DerivedSecrets;
use klef_e2e::{ACCOUNT_PASSWORD, PASSWORD, Server, TestContext};

use crate::team::{
    BOB, Db, OWNER, ci, joined, json, on_both, owner, roster_len, server, short, system_key, url,
};

const CAROL: &str = "carol@example.com";
const MALLORY: &str = "mallory@example.com";

/// `klef workspace invite EMAIL`: the invitation id and the invite code.
fn invite(owner: &TestContext, email: &str) -> (String, String) {
    let inv = json(
        &owner
            .run_pw(["workspace", "invite", email, "--json"])
            .success(),
    );
    (
        inv["id"].as_str().expect("id").to_owned(),
        inv["invite_code"].as_str().expect("invite code").to_owned(),
    )
}

fn signed_up(owner: &TestContext, email: &str) -> TestContext {
    let ctx = TestContext::new();
    ctx.signup(&url(owner), email);
    ctx
}

/// The fingerprint `klef whoami` computes from the keys this device unlocks.
fn fingerprint(ctx: &TestContext) -> String {
    json(&ctx.run_pw(["whoami", "--json"]).success())["key_fingerprint"]
        .as_str()
        .expect("a fingerprint")
        .to_owned()
}

/// Bob, restricted to `staging` (a direct grant of its key, which holds `DB=stg-value`):
/// invited with a code, accepted and confirmed.
fn restricted_bob(owner: &TestContext) -> TestContext {
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    joined(owner, BOB, &["--env", "staging"])
}

fn count(srv: &Server, sql: &str) -> u64 {
    srv.sql(sql)
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: not a count ({e})"))
}

/// How many keys the server holds wrapped to `email` (project keys and direct grants).
fn keys_wrapped_to(srv: &Server, email: &str) -> u64 {
    let account = format!("(SELECT id FROM accounts WHERE email = '{email}')");
    count(
        srv,
        &format!("SELECT count(*) FROM project_keys WHERE account_id = {account}"),
    ) + count(
        srv,
        &format!(
            "SELECT count(*) FROM environment_grants WHERE grantee_kind = 'account' AND grantee_id = {account}"
        ),
    )
}

#[test]
fn a_server_that_swaps_an_invitees_keys_gets_nothing_wrapped() {
    on_both(swapped_keys);
}

fn swapped_keys(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let (id, code) = invite(&owner, BOB);
    let bob = signed_up(&owner, BOB);
    bob.run_pw(["workspace", "accept", &id, "--code", &code])
        .success();
    let bob_fingerprint = fingerprint(&bob);
    // Mallory: another account on the server (signing up there needs an invitation).
    invite(&owner, MALLORY);
    let _mallory = signed_up(&owner, MALLORY);

    for column in ["public_key", "identity_key"] {
        let real = srv.sql(&format!(
            "SELECT {} FROM accounts WHERE email = '{BOB}'",
            srv.hex(column)
        ));
        // The server relays Mallory's key as Bob's, to the admin and to Bob himself.
        srv.sql(&format!(
            "UPDATE accounts SET {column} = (SELECT {column} FROM accounts WHERE email = '{MALLORY}') \
             WHERE email = '{BOB}'"
        ));
        // Checked by the invite code's MAC, and by the fingerprint Bob read out.
        for extra in [&[][..], &["--fingerprint", bob_fingerprint.as_str()][..]] {
            let mut args = vec!["workspace", "confirm", BOB, "--yes"];
            args.extend_from_slice(extra);
            owner
                .run_pw(args)
                .code_is(1)
                .clean_error(&[PASSWORD, &code])
                .stderr_has("the server substituted their keys")
                .stderr_has("nothing was shared");
        }
        assert_eq!(roster_len(srv), 1, "{db:?} {column}: nothing was signed");
        assert_eq!(
            keys_wrapped_to(srv, BOB) + keys_wrapped_to(srv, MALLORY),
            0,
            "{db:?} {column}: nothing was wrapped"
        );
        // Bob's own client refuses a server that holds other keys for him.
        bob.run_pw(["whoami"])
            .code_is(1)
            .clean_error(&[PASSWORD])
            .stderr_has("substituted a key");
        srv.sql(&format!(
            "UPDATE accounts SET {column} = {} WHERE email = '{BOB}'",
            srv.bytes(&real)
        ));
    }

    // The honest server: the same confirmation signs Bob in and shares the keys.
    owner
        .run_pw(["workspace", "confirm", BOB, "--yes"])
        .success();
    assert_eq!(roster_len(srv), 2, "{db:?}");
    assert!(keys_wrapped_to(srv, BOB) > 0, "{db:?}");
    std::fs::copy(owner.cwd().join(".klef"), bob.cwd().join(".klef")).expect("copy .klef");
    assert_eq!(
        bob.run_pw(["get", "DB"]).success().stdout().trim(),
        "dev-value"
    );
}

/// A genesis for Acme that the server made with its own keys, naming the owner's account and
/// email as owner (what a server would show an invitee or a new device).
fn forged_genesis(srv: &Server) -> (String, String) {
    let ws: WorkspaceId = srv
        .sql("SELECT id FROM workspaces WHERE name = 'Acme'")
        .parse()
        .expect("workspace id");
    let owner: AccountId = srv
        .sql(&format!("SELECT id FROM accounts WHERE email = '{OWNER}'"))
        .parse()
        .expect("account id");
    let mallory = DerivedSecrets::from_bytes(&[66; 32], &[66; 32]).identity();
    let (_, x25519) = generate_keypair();
    let (entry, _) = VerifiedRoster::create(
        ws,
        MemberRecord {
            account: owner,
            email: OWNER.into(),
            identity_key: mallory.verifying_key(),
            x25519_key: x25519,
            role: Role::Owner,
            access: Access::All,
        },
        &mallory,
    )
    .expect("a genesis");
    (hex(&entry.body), hex(&entry.signature.0))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Replaces roster entry `sequence` of Acme; returns the real `(body, signature)` as hex.
fn replace_entry(srv: &Server, sequence: u64, body: &str, signature: &str) -> (String, String) {
    let acme = "(SELECT id FROM workspaces WHERE name = 'Acme')";
    let real = srv.sql(&format!(
        "SELECT {} || ':' || {} FROM roster_entries WHERE workspace_id = {acme} AND sequence = {sequence}",
        srv.hex("body"),
        srv.hex("signature")
    ));
    srv.sql(&format!(
        "UPDATE roster_entries SET body = {}, signature = {} WHERE workspace_id = {acme} AND sequence = {sequence}",
        srv.bytes(body),
        srv.bytes(signature)
    ));
    let (b, s) = real.split_once(':').expect("body:signature");
    (b.to_owned(), s.to_owned())
}

#[test]
fn a_forged_genesis_is_refused_by_invitees_and_by_every_device_of_the_owner() {
    on_both(forged_genesis_refused);
}

fn forged_genesis_refused(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let owner_fingerprint = fingerprint(&owner);
    let (id, code) = invite(&owner, BOB);
    let bob = signed_up(&owner, BOB);
    let (body, signature) = forged_genesis(srv);
    let (real_body, real_signature) = replace_entry(srv, 0, &body, &signature);

    // The invitee holds the code, which names the real genesis.
    bob.run_pw(["workspace", "accept", &id, "--code", &code])
        .code_is(1)
        .clean_error(&[PASSWORD, &code])
        .stderr_has("workspace \"Acme\"")
        .stderr_has("forged");
    // Or the owner's fingerprint, read out.
    bob.run_pw([
        "workspace",
        "accept",
        &id,
        "--owner-fingerprint",
        &owner_fingerprint,
    ])
    .code_is(1)
    .clean_error(&[PASSWORD])
    .stderr_has("the server substituted the workspace's member list");
    assert_eq!(
        srv.sql(&format!(
            "SELECT count(*) FROM invitations WHERE email = '{BOB}' AND invite_mac IS NULL"
        )),
        "1",
        "{db:?}: the invitation was not accepted"
    );

    // The owner's device pinned the real genesis at `workspace create`.
    owner
        .run_pw(["workspace", "invite", CAROL])
        .code_is(1)
        .clean_error(&[PASSWORD])
        .stderr_has("forged");
    // A second device of the owner inherits that pin from the sealed copy on the server.
    let mut laptop = TestContext::new();
    laptop.set_env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    laptop
        .run(["login", "--server", &url(&owner), "--email", OWNER])
        .success();
    laptop.run(["workspace", "use", "Acme"]).success();
    laptop
        .run_pw(["workspace", "invite", CAROL])
        .code_is(1)
        .clean_error(&[PASSWORD])
        .stderr_has("forged");
    // A server that also withholds the sealed pins gets the ceremony again, never trust.
    srv.sql("DELETE FROM account_states");
    let mut desktop = TestContext::new();
    desktop.set_env("KLEF_ACCOUNT_PASSWORD", ACCOUNT_PASSWORD);
    desktop
        .run(["login", "--server", &url(&owner), "--email", OWNER])
        .success();
    desktop.run(["workspace", "use", "Acme"]).success();
    desktop
        .run_pw(["workspace", "invite", CAROL])
        .code_is(1)
        .clean_error(&[PASSWORD])
        .stderr_has("not pinned");
    assert_eq!(
        count(
            srv,
            &format!("SELECT count(*) FROM invitations WHERE email = '{CAROL}'")
        ),
        0,
        "{db:?}: nobody was invited"
    );

    // The real genesis again: the invitee's code accepts it.
    replace_entry(srv, 0, &real_body, &real_signature);
    bob.run_pw(["workspace", "accept", &id, "--code", &code])
        .success();
}

#[test]
fn a_roster_rewritten_truncated_or_reordered_is_refused() {
    on_both(rewritten_roster);
}

fn rewritten_roster(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let (id, code) = invite(&owner, BOB);
    let bob = signed_up(&owner, BOB);
    bob.run_pw(["workspace", "accept", &id, "--code", &code])
        .success();
    owner
        .run_pw(["workspace", "confirm", BOB, "--yes"])
        .success();
    assert_eq!(roster_len(srv), 2);
    // Owner and Bob see the same roster: the same entry number and code to compare.
    bob.run(["workspace", "use", "Acme"]).success();
    let verification = |ctx: &TestContext| {
        let v = json(&ctx.run_pw(["workspace", "verify", "--json"]).success());
        (v["entry"].clone(), v["code"].clone())
    };
    assert_eq!(verification(&owner), verification(&bob), "{db:?}");
    assert_eq!(verification(&owner).0, 1, "{db:?}");
    // `members` shows fingerprints from the verified roster only.
    let members = json(&owner.run_pw(["workspace", "members", "--json"]).success());
    let row = members
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["email"] == BOB)
        .expect("bob is listed")
        .clone();
    assert_eq!(row["key_fingerprint"], fingerprint(&bob).as_str(), "{db:?}");
    let locked = json(&owner.run(["workspace", "members", "--json"]).success());
    assert!(
        locked
            .as_array()
            .expect("array")
            .iter()
            .all(|m| m["key_fingerprint"].is_null()),
        "{db:?}: without an unlock no fingerprint is shown: {locked}"
    );
    let acme = "(SELECT id FROM workspaces WHERE name = 'Acme')";
    let invites_carol = |expect: &str| {
        owner
            .run_pw(["workspace", "invite", CAROL])
            .code_is(1)
            .clean_error(&[PASSWORD])
            .stderr_has(expect);
    };

    // Bob's entry edited (say, his role raised): its signature no longer verifies.
    let real = srv.sql(&format!(
        "SELECT {} || ':' || {} FROM roster_entries WHERE workspace_id = {acme} AND sequence = 1",
        srv.hex("body"),
        srv.hex("signature")
    ));
    let (body, signature) = real.split_once(':').expect("body:signature");
    let mut edited = body.to_owned();
    let last = edited.pop().expect("a body");
    edited.push(if last == '0' { '1' } else { '0' });
    replace_entry(srv, 1, &edited, signature);
    invites_carol("roster");
    replace_entry(srv, 1, body, signature);

    // The two entries swapped.
    let genesis = srv.sql(&format!(
        "SELECT {} || ':' || {} FROM roster_entries WHERE workspace_id = {acme} AND sequence = 0",
        srv.hex("body"),
        srv.hex("signature")
    ));
    let (g_body, g_signature) = genesis.split_once(':').expect("body:signature");
    replace_entry(srv, 0, body, signature);
    replace_entry(srv, 1, g_body, g_signature);
    invites_carol("roster");
    replace_entry(srv, 0, g_body, g_signature);
    replace_entry(srv, 1, body, signature);

    // Bob's entry dropped: shorter than the head this account has verified.
    srv.sql(&format!(
        "DELETE FROM roster_entries WHERE workspace_id = {acme} AND sequence = 1"
    ));
    invites_carol("roster");
    assert_eq!(
        count(
            srv,
            &format!("SELECT count(*) FROM invitations WHERE email = '{CAROL}'")
        ),
        0,
        "{db:?}: nobody was invited"
    );
    srv.sql(&format!(
        "INSERT INTO roster_entries (workspace_id, sequence, body, signature, created_by, created_at) \
         SELECT {acme}, 1, {}, {}, id, 0 FROM accounts WHERE email = '{OWNER}'",
        srv.bytes(body),
        srv.bytes(signature)
    ));

    // The honest roster again.
    owner.run_pw(["workspace", "invite", CAROL]).success();
}

#[test]
fn rotate_key_wraps_only_to_readers_of_the_verified_roster() {
    on_both(rotation_recipients);
}

fn rotation_recipients(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let _bob = restricted_bob(&owner);
    invite(&owner, MALLORY);
    let _mallory = signed_up(&owner, MALLORY);
    let key_version = || srv.sql("SELECT key_version FROM environments WHERE slug = 'staging'");

    // The server relays Mallory's public key as Bob's.
    let real = srv.sql(&format!(
        "SELECT {} FROM accounts WHERE email = '{BOB}'",
        srv.hex("public_key")
    ));
    srv.sql(&format!(
        "UPDATE accounts SET public_key = (SELECT public_key FROM accounts WHERE email = '{MALLORY}') \
         WHERE email = '{BOB}'"
    ));
    owner
        .run_pw(["env", "rotate-key", "staging"])
        .code_is(1)
        .clean_error(&[PASSWORD, "stg-value"])
        .stderr_has(&format!("another public key for {BOB}"))
        .stderr_has("nothing was rotated");
    assert_eq!(key_version(), "1", "{db:?}");
    srv.sql(&format!(
        "UPDATE accounts SET public_key = {} WHERE email = '{BOB}'",
        srv.bytes(&real)
    ));

    // Bob removed (a signed `removed` entry), but the server keeps his grant on the list.
    let grant = srv.sql(&format!(
        "SELECT g.environment_id || ':' || g.grantee_id || ':' || {} FROM environment_grants g \
         JOIN accounts a ON a.id = g.grantee_id WHERE a.email = '{BOB}'",
        srv.hex("g.wrapped_key")
    ));
    let mut parts = grant.split(':');
    let (env, account, wrapped) = (
        parts.next().expect("environment"),
        parts.next().expect("account"),
        parts.next().expect("wrapped key"),
    );
    owner
        .run_pw(["workspace", "remove", BOB, "--no-rotate", "--json"])
        .success();
    srv.sql(&format!(
        "INSERT INTO environment_grants (environment_id, grantee_kind, grantee_id, wrapped_key, key_version, created_at) \
         VALUES ('{env}', 'account', '{account}', {}, 1, 0)",
        srv.bytes(wrapped)
    ));
    owner
        .run_pw(["env", "rotate-key", "staging"])
        .code_is(1)
        .clean_error(&[PASSWORD, "stg-value"])
        .stderr_has("gives them no access")
        .stderr_has("nothing was rotated");
    assert_eq!(key_version(), "1", "{db:?}");

    // Without the planted grant, the rotation goes through and names no one it cannot verify.
    srv.sql(&format!(
        "DELETE FROM environment_grants WHERE grantee_id = '{account}'"
    ));
    let rotated = json(
        &owner
            .run_pw(["env", "rotate-key", "staging", "--json"])
            .success(),
    );
    assert_eq!(rotated["recipients"], serde_json::json!([]), "{db:?}");
    assert_eq!(key_version(), "2", "{db:?}");
}

#[test]
fn a_workspace_made_before_signed_rosters_gets_one_from_its_owner() {
    on_both(legacy_workspace);
}

fn legacy_workspace(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let bob = restricted_bob(&owner);
    // As if made by an earlier release: no roster, no signed environment state, no pins.
    srv.sql("DELETE FROM roster_entries");
    srv.sql("DELETE FROM manifests");
    srv.sql("DELETE FROM account_states");
    for ctx in [&owner, &bob] {
        let pins = ctx.klef_home().join("data").join("pins");
        assert!(pins.is_dir(), "{}", pins.display());
        std::fs::remove_dir_all(&pins).expect("remove the pins");
    }

    // Bob (not the owner) cannot start it.
    bob.run(["workspace", "use", "Acme"]).success();
    bob.run_pw(["workspace", "verify"])
        .code_is(1)
        .clean_error(&[PASSWORD])
        .stderr_has("has no signed roster yet")
        .stderr_has("its owner starts one");
    // The owner starts it and is told whom to vouch for.
    owner
        .run_pw(["workspace", "verify"])
        .success()
        .stderr_has(&format!(
            "vouch for the members confirmed before it ({BOB})"
        ));
    assert_eq!(roster_len(srv), 1, "{db:?}");
    // Until then, Bob is no verified recipient.
    owner
        .run_pw(["env", "rotate-key", "staging"])
        .code_is(1)
        .stderr_has("gives them no access")
        .stderr_has("klef workspace confirm");
    let bob_fingerprint = fingerprint(&bob);
    owner
        .run_pw([
            "workspace",
            "confirm",
            BOB,
            "--fingerprint",
            &bob_fingerprint,
            "--yes",
        ])
        .success()
        .stderr_has("signed bob@example.com into the roster");
    assert_eq!(roster_len(srv), 2, "{db:?}");
    let rotated = json(
        &owner
            .run_pw(["env", "rotate-key", "staging", "--json"])
            .success(),
    );
    assert_eq!(rotated["recipients"][0]["label"], BOB, "{db:?}");
    assert_eq!(rotated["recipients"][0]["verified"], true, "{db:?}");
    // Bob pins the new roster by the owner's fingerprint and reads the rotated key (the
    // rotation sealed staging: its signed state is checked against that roster).
    std::fs::copy(owner.cwd().join(".klef"), bob.cwd().join(".klef")).expect("copy .klef");
    bob.run_pw(["get", "DB", "--plain", "-e", "staging"])
        .code_is(1)
        .stderr_has("has not pinned its workspace's roster");
    bob.run_pw([
        "workspace",
        "verify",
        "--owner-fingerprint",
        "0000-0000-0000-0000-0000-0000-0000-0000",
    ])
    .code_is(1)
    .stderr_has("not the one you were given");
    bob.run_pw([
        "workspace",
        "verify",
        "--owner-fingerprint",
        &fingerprint(&owner),
    ])
    .success()
    .stderr_has("pinned the signed roster");
    assert_eq!(
        bob.run_pw(["get", "DB", "--plain", "-e", "staging"])
            .success()
            .stdout(),
        "stg-value"
    );
}

#[test]
fn system_keys_are_signed_into_the_roster_and_wrapped_only_to_their_recorded_keys() {
    on_both(system_keys_in_the_roster);
}

fn system_keys_in_the_roster(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    let staging = system_key(&owner, "my-app:staging", "ci-staging");
    let every = system_key(&owner, "my-app:*", "ci-every");
    assert_eq!(roster_len(srv), 3, "{db:?}: genesis and two system keys");
    let key_id = |label: &str| srv.sql(&format!("SELECT id FROM api_keys WHERE label = '{label}'"));
    let (staging_id, every_id) = (key_id("ci-staging"), key_id("ci-every"));
    let public = |id: &str| {
        srv.sql(&format!(
            "SELECT {} FROM api_keys WHERE id = '{id}'",
            srv.hex("public_key")
        ))
    };
    let set_public = |id: &str, hex: &str| {
        srv.sql(&format!(
            "UPDATE api_keys SET public_key = {} WHERE id = '{id}'",
            srv.bytes(hex)
        ));
    };
    let (staging_public, every_public) = (public(&staging_id), public(&every_id));
    let key_version = || srv.sql("SELECT key_version FROM environments WHERE slug = 'staging'");

    // The server lists another key's public key as the staging key's.
    set_public(&staging_id, &every_public);
    owner
        .run_pw(["env", "rotate-key", "staging"])
        .code_is(1)
        .clean_error(&[PASSWORD, "stg-value", &staging])
        .stderr_has("another public key for")
        .stderr_has("substituted a key");
    assert_eq!(key_version(), "1", "{db:?}");
    let prefix = short(&staging);
    owner
        .run_pw([
            "keys",
            "put",
            &prefix,
            "--scope",
            "my-app:staging",
            "--permission",
            "read",
        ])
        .code_is(1)
        .clean_error(&[PASSWORD, &staging])
        .stderr_has("substituted a key");
    set_public(&staging_id, &staging_public);

    // And before `env create`, for the key scoped to every environment.
    set_public(&every_id, &staging_public);
    owner
        .run_pw(["env", "create", "qa"])
        .code_is(1)
        .clean_error(&[PASSWORD, &every])
        .stderr_has("substituted a key");
    assert_eq!(
        srv.sql("SELECT count(*) FROM environments WHERE slug = 'qa'"),
        "0",
        "{db:?}: nothing was created"
    );
    set_public(&every_id, &every_public);

    // The honest server: rotation re-wraps to both keys, verified, and CI still reads.
    let rotated = json(
        &owner
            .run_pw(["env", "rotate-key", "staging", "--json"])
            .success(),
    );
    let recipients = rotated["recipients"].as_array().expect("recipients");
    assert_eq!(recipients.len(), 2, "{db:?}: {rotated}");
    assert!(
        recipients.iter().all(|r| r["verified"] == true),
        "{db:?}: {rotated}"
    );
    assert_eq!(
        ci(&owner, &staging)
            .run(["get", "DB", "--plain", "-p", "my-app", "-e", "staging"])
            .success()
            .stdout(),
        "stg-value"
    );
    owner.run_pw(["env", "create", "qa"]).success();
    owner.run_pw(["set", "Q", "qa-value", "-e", "qa"]).success();
    assert_eq!(
        ci(&owner, &every)
            .run(["get", "Q", "--plain", "-p", "my-app", "-e", "qa"])
            .success()
            .stdout(),
        "qa-value"
    );

    // Revoking signs the key out of the roster.
    owner.run_pw(["keys", "revoke", &prefix]).success();
    assert_eq!(roster_len(srv), 4, "{db:?}: a `removed` entry");
    // Without a password at hand the revocation still happens at once; the next unlocked
    // `workspace verify` of an admin signs it out.
    let every_prefix = short(&every);
    owner
        .run(["keys", "revoke", &every_prefix])
        .success()
        .stderr_has("its removal is not signed into the workspace's roster yet");
    assert_eq!(roster_len(srv), 4, "{db:?}");
    ci(&owner, &every)
        .run(["get", "Q", "--plain", "-p", "my-app", "-e", "qa"])
        .code_is(3);
    owner
        .run_pw(["workspace", "verify"])
        .success()
        .stderr_has("signed the removal of revoked system key(s)");
    assert_eq!(roster_len(srv), 5, "{db:?}");
}

#[test]
fn a_ci_job_verifies_its_workspace_from_the_anchor_sealed_at_its_keys_creation() {
    on_both(ci_anchor);
}

fn ci_anchor(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    let token = system_key(&owner, "my-app:staging", "ci");
    let job = ci(&owner, &token);
    let get = ["get", "DB", "--plain", "-p", "my-app", "-e", "staging"];
    assert_eq!(job.run(get).success().stdout(), "stg-value");
    let id = srv.sql("SELECT id FROM api_keys WHERE label = 'ci'");
    let anchor = srv.sql(&format!(
        "SELECT {} FROM api_keys WHERE id = '{id}'",
        srv.hex("anchor")
    ));
    assert!(!anchor.is_empty(), "{db:?}: keys create stored an anchor");

    // The server replaces the anchor (say, with one for a workspace it made up).
    srv.sql(&format!(
        "UPDATE api_keys SET anchor = {} WHERE id = '{id}'",
        srv.bytes(&"ab".repeat(anchor.len() / 2))
    ));
    job.run(get)
        .code_is(1)
        .clean_error(&[&token, "stg-value"])
        .stderr_has("a CI anchor that KLEF_TOKEN cannot open");
    srv.sql(&format!(
        "UPDATE api_keys SET anchor = {} WHERE id = '{id}'",
        srv.bytes(&anchor)
    ));

    // The server serves a roster without the key's own entry (cut back to the genesis).
    let acme = "(SELECT id FROM workspaces WHERE name = 'Acme')";
    let entry = srv.sql(&format!(
        "SELECT {} || ':' || {} FROM roster_entries WHERE workspace_id = {acme} AND sequence = 1",
        srv.hex("body"),
        srv.hex("signature")
    ));
    let (body, signature) = entry.split_once(':').expect("body:signature");
    srv.sql(&format!(
        "DELETE FROM roster_entries WHERE workspace_id = {acme} AND sequence = 1"
    ));
    job.run(get)
        .code_is(1)
        .clean_error(&[&token, "stg-value"])
        .stderr_has("is not the one the key was made in");
    srv.sql(&format!(
        "INSERT INTO roster_entries (workspace_id, sequence, body, signature, created_by, created_at) \
         SELECT {acme}, 1, {}, {}, id, 0 FROM accounts WHERE email = '{OWNER}'",
        srv.bytes(body),
        srv.bytes(signature)
    ));
    assert_eq!(job.run(get).success().stdout(), "stg-value");

    // A key from before anchors (or one whose anchor the server withholds) cannot check who
    // signed the environment's state: the job stops.
    srv.sql(&format!(
        "UPDATE api_keys SET anchor = NULL WHERE id = '{id}'"
    ));
    job.run(get)
        .code_is(3)
        .clean_error(&[&token, "stg-value"])
        .stderr_has("made before CI anchors");
}

#[test]
fn a_server_that_widens_an_invitation_gets_nothing_signed() {
    on_both(widened_invitation);
}

fn widened_invitation(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    let inv = json(
        &owner
            .run_pw(["workspace", "invite", BOB, "--env", "staging", "--json"])
            .success(),
    );
    let bob = signed_up(&owner, BOB);
    bob.run_pw([
        "workspace",
        "accept",
        inv["id"].as_str().expect("id"),
        "--code",
        inv["invite_code"].as_str().expect("code"),
    ])
    .success();
    let id = inv["id"].as_str().expect("id");
    let environments = srv.sql(&format!(
        "SELECT environments FROM invitations WHERE id = '{id}'"
    ));
    // The server makes Bob an admin, then gives him every environment instead of staging.
    for change in [
        "role = 'admin'".to_owned(),
        "environments = NULL".to_owned(),
    ] {
        srv.sql(&format!(
            "UPDATE invitations SET {change} WHERE id = '{id}'"
        ));
        owner
            .run_pw(["workspace", "confirm", BOB, "--yes"])
            .code_is(1)
            .clean_error(&[PASSWORD])
            .stderr_has("the server changed the invitation of bob@example.com")
            .stderr_has("nothing was signed or shared");
        assert_eq!(roster_len(srv), 1, "{db:?}: {change}");
        assert_eq!(keys_wrapped_to(srv, BOB), 0, "{db:?}: {change}");
        srv.sql(&format!(
            "UPDATE invitations SET role = 'member', environments = '{environments}' WHERE id = '{id}'"
        ));
    }
    owner
        .run_pw(["workspace", "confirm", BOB, "--yes"])
        .success();
    assert_eq!(keys_wrapped_to(srv, BOB), 1, "{db:?}: the staging key only");
}

#[test]
fn removing_a_full_access_member_replaces_the_project_key_they_held() {
    on_both(project_key_replaced);
}

fn project_key_replaced(db: Db) {
    let Some(owner) = owner(db) else { return };
    let srv = server(&owner);
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    let bob = joined(&owner, BOB, &[]);
    assert_eq!(
        bob.run_pw(["get", "DB", "--plain", "-e", "staging"])
            .success()
            .stdout(),
        "stg-value"
    );
    // What Bob holds: the project key wrapped to him.
    let bob_id = srv.sql(&format!("SELECT id FROM accounts WHERE email = '{BOB}'"));
    let held = srv.sql(&format!(
        "SELECT {} FROM project_keys WHERE account_id = '{bob_id}'",
        srv.hex("wrapped_key")
    ));
    let sealed_before = srv.sql("SELECT count(*) FROM environments");
    let removed = json(
        &owner
            .run_pw(["workspace", "remove", BOB, "--json"])
            .success(),
    );
    assert_eq!(
        removed["project_keys_replaced"],
        serde_json::json!(["my-app"]),
        "{db:?}: {removed}"
    );
    assert_eq!(sealed_before, "3", "{db:?}");
    // The owner still reads everything under the new keys.
    for (env, want) in [("staging", "stg-value"), ("development", "dev-value")] {
        assert_eq!(
            owner
                .run_pw(["get", "DB", "--plain", "-e", env])
                .success()
                .stdout(),
            want
        );
    }
    // A server colluding with Bob hands him back membership and the project key he held: it no
    // longer opens any environment key.
    let ws = srv.sql("SELECT id FROM workspaces WHERE name = 'Acme'");
    let project = srv.sql("SELECT id FROM projects WHERE name = 'my-app'");
    srv.sql(&format!(
        "INSERT INTO workspace_members (workspace_id, account_id, role, created_at) \
         VALUES ('{ws}', '{bob_id}', 'member', 0)"
    ));
    srv.sql(&format!(
        "INSERT INTO project_keys (project_id, account_id, wrapped_key, created_at) \
         VALUES ('{project}', '{bob_id}', {}, 0)",
        srv.bytes(&held)
    ));
    let err = bob
        .run_pw(["get", "DB", "--plain", "-e", "staging"])
        .code_is(1)
        .clean_error(&[PASSWORD, "stg-value"])
        .stderr();
    assert!(!err.contains("stg-value"), "{db:?}: {err}");
}
