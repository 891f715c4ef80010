//! Teams on a real `klef-server` (`SQLite`): two people share a project, one restricted to
//! `staging`. Access is enforced by the server (403) and by cryptography: even reading the
//! server's database directly, there is no wrapped production key for the restricted member.
//! Also: removing a member, key rotation, a stale write from a second CLI (exit 7 naming who
//! changed the key), the audit log, and the file token store on a headless machine.

use std::io::{BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};

use klef_e2e::{PASSWORD, Server, TestContext};
use serde_json::Value;

const OWNER: &str = "owner@example.com";
const BOB: &str = "bob@example.com";

fn json(run: &klef_e2e::Run) -> Value {
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout()))
}

/// The owner: signed up on a fresh server, workspace "Acme" current, project `my-app` with a
/// value in staging and one in production.
fn owner() -> TestContext {
    let mut ctx = TestContext::new();
    ctx.server = Some(Server::sqlite(&ctx.root().join("server")));
    let url = server_url(&ctx);
    ctx.signup(&url, OWNER);
    ctx.run_pw(["workspace", "create", "Acme"]).success();
    ctx.run(["workspace", "use", "Acme"]).success();
    ctx.init();
    ctx.run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    ctx.run_pw(["set", "DB", "prod-value", "-e", "production"])
        .success();
    ctx
}

fn server_url(ctx: &TestContext) -> String {
    ctx.server.as_ref().expect("a server").url.clone()
}

/// Bob, invited by the owner (restricted to `envs` when given), signed up, accepted and
/// confirmed, with `.klef` linked to the owner's project.
fn invited_bob(owner: &TestContext, envs: Option<&str>) -> TestContext {
    let mut args = vec!["workspace", "invite", BOB, "--json"];
    if let Some(e) = envs {
        args.extend(["--env", e]);
    }
    let inv = json(&owner.run_pw(args).success());
    let invite_id = inv["id"].as_str().expect("invitation id").to_owned();
    let code = inv["invite_code"]
        .as_str()
        .expect("an invite code")
        .to_owned();
    assert!(code.starts_with("klef_inv_"), "{code}");

    let mut bob = TestContext::new();
    bob.signup(&server_url(owner), BOB);
    // The code reaches Bob out of band (here: an environment variable, as a script would).
    bob.set_env("KLEF_INVITE_CODE", &code);
    let accepted = bob
        .run_pw(["workspace", "accept", &invite_id])
        .success()
        .stderr();
    bob.remove_env("KLEF_INVITE_CODE");
    let whoami = json(&bob.run_pw(["whoami", "--json"]).success());
    let fingerprint = whoami["key_fingerprint"].as_str().expect("fingerprint");
    assert!(accepted.contains(fingerprint), "{accepted} {whoami}");

    // Without a terminal, confirming needs --yes; the owner sees the same fingerprint.
    owner
        .run_pw(["workspace", "confirm", BOB])
        .code_is(2)
        .clean_error(&[PASSWORD])
        .stderr_has(fingerprint);
    let confirmed = owner
        .run_pw(["workspace", "confirm", BOB, "--yes"])
        .success();
    assert!(
        confirmed.stderr().contains(fingerprint),
        "{}",
        confirmed.stderr()
    );

    let project = project_id(owner);
    let mut link = vec!["link", project.as_str()];
    if envs.is_some() {
        link.extend(["-e", "staging"]);
    }
    bob.run(link).success();
    bob
}

fn project_id(ctx: &TestContext) -> String {
    let raw = std::fs::read_to_string(ctx.cwd.join(".klef")).expect(".klef");
    let v: Value = serde_json::from_str(&raw).expect(".klef is JSON");
    assert_eq!(
        v["server"].as_str(),
        Some(server_url(ctx).as_str()),
        "{raw}"
    );
    v["project"].as_str().expect("project").to_owned()
}

fn sqlite(ctx: &TestContext, sql: &str) -> String {
    let db = ctx
        .server
        .as_ref()
        .and_then(|s| s.sqlite_path())
        .expect("a SQLite server");
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn restricted_member_reads_staging_only_even_behind_the_servers_back() {
    let owner = owner();
    let bob = invited_bob(&owner, Some("staging"));

    assert_eq!(
        bob.run_pw(["get", "DB", "--plain", "-e", "staging"])
            .success()
            .stdout(),
        "stg-value"
    );
    bob.run_pw(["get", "DB", "-e", "production"])
        .code_is(4)
        .clean_error(&[PASSWORD, "prod-value"])
        .stderr_has("no access to production");
    // Bob may write what he can read; the owner sees it.
    bob.run_pw(["set", "FROM_BOB", "hi", "-e", "staging"])
        .success();
    assert_eq!(
        owner
            .run_pw(["get", "FROM_BOB", "--plain", "-e", "staging"])
            .success()
            .stdout(),
        "hi"
    );

    // The server's database: no project key for Bob, and a direct grant for staging only.
    let bob_id = json(&bob.run(["whoami", "--json"]).success())["account_id"]
        .as_str()
        .expect("account id")
        .to_owned();
    assert_eq!(
        sqlite(
            &owner,
            &format!("SELECT count(*) FROM project_keys WHERE account_id = '{bob_id}'")
        ),
        "0"
    );
    assert_eq!(
        sqlite(
            &owner,
            &format!(
                "SELECT e.slug FROM environment_grants g JOIN environments e ON e.id = g.environment_id \
                 WHERE g.grantee_kind = 'account' AND g.grantee_id = '{bob_id}' ORDER BY e.slug"
            )
        ),
        "staging"
    );

    let members = json(&owner.run(["workspace", "members", "--json"]).success());
    let row = members
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["email"] == BOB)
        .expect("bob is listed");
    assert_eq!(row["status"], "confirmed");

    // Removing Bob with the rotation deferred: his next request is refused, and the owner is
    // told to rotate staging.
    owner
        .run_pw(["workspace", "remove", BOB, "--no-rotate"])
        .success()
        .stderr_has("klef env rotate-key staging");
    let after = bob.run_pw(["get", "DB", "-e", "staging"]);
    assert!(
        matches!(after.code(), 4 | 5),
        "removed member still reads: {}\n{}",
        after.code(),
        after.stderr()
    );
    after.clean_error(&[PASSWORD, "stg-value"]);

    // Rotation keeps the owner's values readable under a new key version.
    owner.run_pw(["env", "rotate-key", "staging"]).success();
    assert_eq!(
        sqlite(
            &owner,
            "SELECT key_version FROM environments WHERE slug = 'staging'"
        ),
        "2"
    );
    for (env, want) in [("staging", "stg-value"), ("production", "prod-value")] {
        assert_eq!(
            owner
                .run_pw(["get", "DB", "--plain", "-e", env])
                .success()
                .stdout(),
            want
        );
    }

    let audit = json(&owner.run(["audit", "--json"]).success());
    let actions: Vec<&str> = audit
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in [
        "invitation.create",
        "member.confirm",
        "member.remove",
        "environment.rotate",
        "secrets.write",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
}

#[test]
fn a_stale_write_from_a_second_cli_is_a_conflict_naming_who_changed_it() {
    use std::sync::atomic::Ordering::SeqCst;
    // Everyone talks to the server through a proxy that, once armed, holds the next write
    // until the test releases it: Bob's push has read and signed the environment's state, and
    // the owner writes meanwhile.
    let mut owner = TestContext::new();
    let server = Server::sqlite(&owner.root().join("server"));
    let proxied = crate::terminal::proxy_holding(&server.url, hold_one_write);
    owner.server = Some(server);
    if let Some(s) = owner.server.as_mut() {
        s.url = proxied;
    }
    let url = server_url(&owner);
    owner.signup(&url, OWNER);
    owner.run_pw(["workspace", "create", "Acme"]).success();
    owner.run(["workspace", "use", "Acme"]).success();
    owner.init();
    owner
        .run_pw(["set", "DB", "stg-value", "-e", "staging"])
        .success();
    let bob = invited_bob(&owner, None);
    std::fs::write(bob.cwd.join("stale.env"), "DB=bob-value\n").expect("write stale.env");

    WRITE_HELD.store(false, SeqCst);
    WRITE_RELEASED.store(false, SeqCst);
    HOLD_NEXT_WRITE.store(true, SeqCst);
    let mut cmd = bob.klef(["--password-stdin", "push", "stale.env", "-e", "staging"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start klef push");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .expect("send the password");
    }
    let started = std::time::Instant::now();
    while !WRITE_HELD.load(SeqCst) {
        assert!(
            started.elapsed() < std::time::Duration::from_mins(1),
            "bob's write never reached the proxy"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // Meanwhile the owner changes the key (this write passes: the hold is spent).
    owner
        .run_pw(["set", "DB", "owner-v2", "-e", "staging"])
        .success();
    WRITE_RELEASED.store(true, SeqCst);

    let mut seen = String::new();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    stderr
        .read_to_string(&mut seen)
        .expect("read klef's stderr");
    let status = child.wait().expect("wait for klef push");
    assert_eq!(status.code(), Some(7), "{seen}");
    assert!(
        seen.contains(OWNER),
        "the conflict names who changed it:\n{seen}"
    );
    assert!(
        !seen.contains("bob-value") && !seen.contains(PASSWORD),
        "{seen}"
    );
    assert_eq!(
        owner
            .run_pw(["get", "DB", "--plain", "-e", "staging"])
            .success()
            .stdout(),
        "owner-v2"
    );
    // Bob, reading again, writes on top of the owner's value.
    bob.run_pw(["push", "stale.env", "-e", "staging"]).success();
    assert_eq!(
        owner
            .run_pw(["get", "DB", "--plain", "-e", "staging"])
            .success()
            .stdout(),
        "bob-value"
    );
}

/// Armed by the stale-write test: hold the next write of secrets.
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
fn sign_in_state_token_store_and_logout() {
    let owner = owner();
    let who = json(&owner.run(["whoami", "--json"]).success());
    assert_eq!(who["email"], OWNER);
    assert_eq!(who["server"].as_str(), Some(server_url(&owner).as_str()));
    // No D-Bus session bus here: the token is in the 0600 file.
    assert_eq!(who["token_store"], "file", "{who}");
    let path = who["token_location"].as_str().expect("token location");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .expect("token file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token_file = std::fs::read_to_string(path).expect("token file");
    assert!(!token_file.contains(PASSWORD));

    // Server-only commands explain themselves on the local vault.
    let local = TestContext::new();
    local
        .run(["workspace", "members"])
        .code_is(2)
        .clean_error(&[])
        .stderr_has("klef signup --server");

    owner.run(["logout"]).success();
    assert!(
        !std::path::Path::new(path).exists(),
        "the token file is gone"
    );
    owner
        .run(["whoami"])
        .code_is(3)
        .clean_error(&[])
        .stderr_has("not signed in");
    // The project still names the server, so commands say how to sign in again.
    owner
        .run(["list"])
        .code_is(3)
        .clean_error(&[])
        .stderr_has("klef login");
    let mut login = owner.klef(["login", "--server", &server_url(&owner), "--email", OWNER]);
    login.env("KLEF_ACCOUNT_PASSWORD", "wrong password");
    klef_e2e::run_with_stdin(login, None)
        .code_is(3)
        .clean_error(&["wrong password"]);
    owner
        .run([
            "login",
            "--server",
            &server_url(&owner),
            "--key",
            "klef_user_nonsense",
        ])
        .code_is(2)
        .clean_error(&["nonsense"]);
    let mut login = owner.klef(["login", "--server", &server_url(&owner), "--email", OWNER]);
    login.env("KLEF_ACCOUNT_PASSWORD", klef_e2e::ACCOUNT_PASSWORD);
    klef_e2e::run_with_stdin(login, None).success();
    assert_eq!(
        owner
            .run_pw(["get", "DB", "--plain", "-e", "staging"])
            .success()
            .stdout(),
        "stg-value"
    );
}

#[test]
fn an_unreachable_server_is_exit_6_naming_it() {
    let ctx = TestContext::new();
    ctx.run(["--server", "http://127.0.0.1:9", "workspace", "list"])
        .code_is(6)
        .clean_error(&[])
        .stderr_has("http://127.0.0.1:9");
}

/// An admin who lost an invite code (it is shown once) cancels the invitation with `klef
/// workspace remove` and invites again: the old invitation and its code stop working, the new
/// one works. Also: `--env` naming a project of another workspace is refused up front.
#[test]
fn a_lost_invite_code_is_replaced_by_cancelling_and_inviting_again() {
    let owner = owner();
    let first = json(
        &owner
            .run_pw(["workspace", "invite", BOB, "--env", "staging", "--json"])
            .success(),
    );
    let first_id = first["id"].as_str().expect("invitation id").to_owned();
    let first_code = first["invite_code"].as_str().expect("code").to_owned();

    // Inviting again does not hand out a second code; the refusal says what works.
    owner
        .run_pw(["workspace", "invite", BOB, "--env", "staging"])
        .code_is(1)
        .clean_error(&[PASSWORD, &first_code])
        .stderr_has("already has an open invitation")
        .stderr_has(&format!("klef workspace remove {BOB}"));

    owner
        .run_pw(["workspace", "remove", BOB])
        .success()
        .stderr_has("cancelled the invitation");
    assert_ne!(
        sqlite(
            &owner,
            &format!("SELECT COALESCE(closed_at, 'open') FROM invitations WHERE id = '{first_id}'")
        ),
        "open"
    );
    let audit = owner.run_pw(["audit", "--json"]).success().stdout();
    assert!(audit.contains("invitation.cancel"), "{audit}");
    // Nothing is left to cancel or remove.
    owner
        .run_pw(["workspace", "remove", BOB])
        .code_is(5)
        .clean_error(&[PASSWORD])
        .stderr_has("has no invitation");

    // With no open invitation, the server refuses Bob's sign-up.
    let mut bob = TestContext::new();
    bob.set_env("KLEF_ACCOUNT_PASSWORD", klef_e2e::ACCOUNT_PASSWORD);
    let refused = bob
        .run_pw(["signup", "--server", &server_url(&owner), "--email", BOB])
        .stderr_has("error: failed to sign up")
        .stderr_has("needs an invitation");
    assert_ne!(refused.code(), 0);
    assert!(!refused.stderr().contains(klef_e2e::ACCOUNT_PASSWORD));

    let second = json(
        &owner
            .run_pw(["workspace", "invite", BOB, "--env", "staging", "--json"])
            .success(),
    );
    let second_id = second["id"].as_str().expect("invitation id").to_owned();
    let second_code = second["invite_code"].as_str().expect("code").to_owned();
    assert_ne!(first_code, second_code);
    bob.signup(&server_url(&owner), BOB);
    // The cancelled invitation cannot be accepted, with its code or without.
    bob.set_env("KLEF_INVITE_CODE", &first_code);
    bob.run_pw(["workspace", "accept", &first_id])
        .clean_error(&[PASSWORD, &first_code]);
    bob.set_env("KLEF_INVITE_CODE", &second_code);
    bob.run_pw(["workspace", "accept", &second_id]).success();
    bob.remove_env("KLEF_INVITE_CODE");
    owner
        .run_pw(["workspace", "confirm", BOB, "--yes"])
        .success();
    bob.run(["link", &project_id(&owner), "-e", "staging"])
        .success();
    let got = bob.run_pw(["get", "DB"]).success().stdout();
    assert_eq!(got.trim_end(), "stg-value");

    // `--env` names environments of the directory's project; in another workspace it would
    // be refused by the server with an environment id, so the client says what is wrong.
    owner.run(["workspace", "use", "Personal"]).success();
    owner
        .run_pw([
            "workspace",
            "invite",
            "carol@example.com",
            "--env",
            "staging",
        ])
        .code_is(2)
        .clean_error(&[PASSWORD])
        .stderr_has("not in workspace \"Personal\"")
        .stderr_has("klef workspace use");
}

/// A server that shows a confirmed member as merely invited (so that `klef workspace remove`
/// would only cancel an invitation, leaving them in the signed roster and receiving keys) is
/// caught by the roster: nothing is cancelled or removed, and the error says why.
#[test]
fn a_member_the_server_shows_as_invited_is_not_cancelled_behind_the_rosters_back() {
    let owner = owner();
    let _bob = invited_bob(&owner, Some("staging"));
    let ws = sqlite(&owner, "SELECT id FROM workspaces WHERE name = 'Acme'");
    let bob_id = sqlite(
        &owner,
        &format!("SELECT id FROM accounts WHERE email = '{BOB}'"),
    );
    let owner_id = sqlite(
        &owner,
        &format!("SELECT id FROM accounts WHERE email = '{OWNER}'"),
    );
    // The server's lie: Bob's membership hidden, an open invitation for his email in its place.
    sqlite(
        &owner,
        &format!(
            "DELETE FROM workspace_members WHERE workspace_id = '{ws}' AND account_id = '{bob_id}'; \
             INSERT INTO invitations (id, workspace_id, email, role, environments, invited_by, created_at) \
             VALUES ('00000000-0000-4000-8000-000000000001', '{ws}', '{BOB}', 'member', NULL, '{owner_id}', 0);"
        ),
    );
    owner
        .run_pw(["workspace", "remove", BOB])
        .code_is(1)
        .clean_error(&[PASSWORD])
        .stderr_has("signed roster")
        .stderr_has("nothing was changed");
    assert_eq!(
        sqlite(
            &owner,
            "SELECT COUNT(*) FROM invitations WHERE id = '00000000-0000-4000-8000-000000000001' AND closed_at IS NULL",
        ),
        "1"
    );
}
