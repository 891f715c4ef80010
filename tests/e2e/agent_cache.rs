//! Environments served by the agent (issue #20, docs/agent.md): a member's agent keeps the
//! environments they read from a server, answers the next read without the server while the
//! copy is fresh (`KLEF_CACHE_FRESH`), revalidates with one conditional request after that,
//! serves it with a warning while the server is down, and forgets it on `klef lock`, on any
//! write, and when the server refuses a revalidation (a removed member). Every test runs the
//! real `klef`, `klef-agent` and `klef-server` (`SQLite` and `PostgreSQL`).

use klef_e2e::{PASSWORD, Run, TestContext};
use serde_json::Value;

use crate::team::{BOB, Db, joined, on_both, owner, server, url};

/// Turns the agent on for `ctx` (the test kit turns it off) and unlocks it once.
fn with_agent(ctx: &mut TestContext) {
    ctx.remove_env("KLEF_NO_AGENT");
    ctx.set_env("KLEF_AGENT_AUTOSTART", "1");
    ctx.run_pw(["unlock"]).success();
}

/// Stops `ctx`'s agent (each test context has its own).
fn stop_agent(ctx: &TestContext) {
    let _ = ctx.run(["agent", "stop"]);
}

/// `klef get KEY` with `KLEF_CACHE_FRESH=fresh` and stdin closed (no password can be asked:
/// only the agent can answer).
fn get(ctx: &TestContext, key: &str, fresh: &str) -> Run {
    let mut cmd = ctx.klef(["get", key]);
    cmd.env("KLEF_CACHE_FRESH", fresh);
    klef_e2e::run_with_stdin(cmd, None)
}

/// How many environments the agent keeps for the server account of `ctx`.
fn cached(ctx: &TestContext) -> u64 {
    let status: Value =
        serde_json::from_str(&ctx.run(["agent", "status", "--json"]).success().stdout())
            .expect("status JSON");
    status["vaults"]
        .as_array()
        .expect("vaults")
        .iter()
        .filter(|v| v["vault"].as_str().is_some_and(|n| n.contains('#')))
        .map(|v| {
            v["cached_environments"]
                .as_u64()
                .expect("cached_environments")
        })
        .sum()
}

/// Owner and Bob share `DB`; Bob's agent keeps it. Returns `None` without `PostgreSQL`.
fn shared(db: Db) -> Option<(TestContext, TestContext)> {
    let owner = owner(db)?;
    let mut bob = joined(&owner, BOB, &[]);
    with_agent(&mut bob);
    let first = get(&bob, "DB", "1h").success();
    assert_eq!(first.stdout(), "dev-value\n");
    assert_eq!(
        cached(&bob),
        1,
        "the first read is kept: {}",
        first.stderr()
    );
    Some((owner, bob))
}

#[test]
fn a_teammates_change_is_seen_once_the_copy_is_older_than_the_freshness_window() {
    on_both(teammate_change);
}

fn teammate_change(db: Db) {
    let Some((owner, bob)) = shared(db) else {
        return;
    };
    owner.run_pw(["set", "DB", "changed-by-owner"]).success();
    owner.run_pw(["set", "NEW_ONE", "added-by-owner"]).success();
    // Within the window the agent answers: the server is not asked, so the old value shows.
    assert_eq!(get(&bob, "DB", "1h").success().stdout(), "dev-value\n");
    // Past the window (0: always), one conditional request finds the change, merges it into the
    // copy and verifies the result; the copy then holds the new state.
    assert_eq!(
        get(&bob, "DB", "0").success().stdout(),
        "changed-by-owner\n"
    );
    assert_eq!(
        get(&bob, "NEW_ONE", "1h").success().stdout(),
        "added-by-owner\n"
    );
    owner.run_pw(["unset", "NEW_ONE"]).success();
    get(&bob, "NEW_ONE", "0").code_is(5);
    // `run` and `pull` read the same copy.
    let mut run = bob.klef(["run", "--", "sh", "-c", "printf %s \"$DB\""]);
    run.env("KLEF_CACHE_FRESH", "1h");
    assert_eq!(
        klef_e2e::run_with_stdin(run, None).success().stdout(),
        "changed-by-owner"
    );
    let pulled = bob.run(["pull", "-o", "-", "--format", "dotenv"]).success();
    assert!(
        pulled.stdout().contains("changed-by-owner"),
        "{}",
        pulled.stdout()
    );
    // `--fresh` always asks the server.
    owner.run_pw(["set", "DB", "third"]).success();
    let mut fresh = bob.klef(["get", "DB", "--fresh"]);
    fresh.env("KLEF_CACHE_FRESH", "1h");
    assert_eq!(
        klef_e2e::run_with_stdin(fresh, None).success().stdout(),
        "third\n"
    );
    // Bob's personal override is served from the copy too (sealed to him in the agent), and
    // one written without this agent (as another device would) is seen at the next
    // revalidation.
    bob.run_stdin(["set", "--personal", "DB"], b"bobs-own")
        .success();
    assert_eq!(get(&bob, "DB", "1h").success().stdout(), "bobs-own\n");
    assert_eq!(cached(&bob), 1);
    assert_eq!(get(&bob, "DB", "1h").success().stdout(), "bobs-own\n");
    let mut other_device = bob.klef(["--password-stdin", "set", "--personal", "DB"]);
    other_device.env("KLEF_NO_AGENT", "1");
    klef_e2e::run_with_stdin(
        other_device,
        Some(format!("{PASSWORD}\nfrom-elsewhere").as_bytes()),
    )
    .success();
    assert_eq!(get(&bob, "DB", "1h").success().stdout(), "bobs-own\n");
    assert_eq!(get(&bob, "DB", "0").success().stdout(), "from-elsewhere\n");
    stop_agent(&bob);
}

#[test]
fn with_the_server_down_cached_reads_work_with_a_warning_and_writes_fail() {
    on_both(server_down);
}

fn server_down(db: Db) {
    let Some((mut owner, bob)) = shared(db) else {
        return;
    };
    owner.server.as_mut().expect("a server").stop();
    // Fresh: answered without the server, silently.
    let fresh = get(&bob, "DB", "1h").success();
    assert_eq!(fresh.stdout(), "dev-value\n");
    // Stale: the revalidation cannot reach the server; one warning line with the age.
    let stale = get(&bob, "DB", "0").success();
    assert_eq!(stale.stdout(), "dev-value\n");
    let warning = stale.stderr();
    assert_eq!(warning.trim().lines().count(), 1, "{warning}");
    assert!(
        warning.contains("cannot reach")
            && warning.contains(" ago")
            && warning.contains("writes need the server"),
        "{warning}"
    );
    let mut run = bob.klef(["run", "--", "sh", "-c", "printf %s \"$DB\""]);
    run.env("KLEF_CACHE_FRESH", "0");
    assert_eq!(
        klef_e2e::run_with_stdin(run, None).success().stdout(),
        "dev-value"
    );
    // Writes need the server: a clear error, nothing queued.
    bob.run_stdin(["set", "DB"], b"offline-value")
        .code_is(6)
        .stderr_has("cannot reach the Klef server")
        .clean_error(&["offline-value", PASSWORD]);
    // `klef lock` wipes the copy with the keys: nothing answers any more.
    bob.run(["lock"]).success();
    let after = get(&bob, "DB", "1h");
    assert_ne!(after.code(), 0);
    assert!(!after.stdout().contains("dev-value"), "{}", after.stdout());
    owner.server.as_mut().expect("a server").restart();
    assert_eq!(cached(&bob), 0);
    stop_agent(&bob);
}

#[test]
fn a_removed_members_agent_stops_serving_at_its_next_revalidation() {
    on_both(removed_member);
}

fn removed_member(db: Db) {
    let Some((owner, bob)) = shared(db) else {
        return;
    };
    owner.run_pw(["workspace", "remove", BOB]).success();
    // The next revalidation is refused: the copy goes and the read fails as a full one would.
    get(&bob, "DB", "0")
        .code_is(4)
        .clean_error(&["dev-value", PASSWORD]);
    assert_eq!(cached(&bob), 0, "the refused copy is forgotten");
    get(&bob, "DB", "1h").code_is(4);
    stop_agent(&bob);
}

#[test]
fn own_writes_drop_the_copy_at_once_and_a_rolled_back_server_is_refused() {
    on_both(own_writes_and_rollback);
}

fn own_writes_and_rollback(db: Db) {
    let Some((owner, bob)) = shared(db) else {
        return;
    };
    // Bob's own write forgets his copies: the next read, even inside the window, is exact.
    bob.run_stdin(["set", "DB"], b"bobs-value").success();
    assert_eq!(cached(&bob), 0);
    assert_eq!(get(&bob, "DB", "1h").success().stdout(), "bobs-value\n");
    // The server rolls the environment back to before Bob's write (its newest manifest and
    // value removed behind the clients' backs): revalidating from the copy's head refuses it.
    let srv = server(&owner);
    let env = srv.sql(
        "SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id \
         WHERE e.slug = 'development'",
    );
    let newest = srv.sql(&format!(
        "SELECT MAX(revision) FROM manifests WHERE environment_id = '{env}'"
    ));
    if srv.sqlite_path().is_some() {
        for t in srv
            .sql("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'secrets'")
            .lines()
        {
            srv.sql(&format!("DROP TRIGGER {t}"));
        }
    } else {
        srv.sql("ALTER TABLE secrets DISABLE TRIGGER USER");
    }
    srv.sql(&format!(
        "DELETE FROM manifests WHERE environment_id = '{env}' AND revision = {newest}"
    ));
    srv.sql(&format!(
        "DELETE FROM secrets WHERE environment_id = '{env}' AND name = 'DB' AND version = \
         (SELECT MAX(version) FROM secrets WHERE environment_id = '{env}' AND name = 'DB')"
    ));
    get(&bob, "DB", "0")
        .code_is(1)
        .stderr_has("rolled back")
        .clean_error(&["dev-value", "bobs-value", PASSWORD]);
    let _ = url(&owner);
    stop_agent(&bob);
}

#[test]
fn an_opted_in_offline_copy_serves_reads_with_the_password_while_the_server_is_down() {
    on_both(offline_copy);
}

fn offline_copy(db: Db) {
    let Some(mut owner) = owner(db) else {
        return;
    };
    // No agent at all: only the copy on disk, sealed under the password, can answer.
    owner.set_env("KLEF_OFFLINE_COPY", "1");
    assert_eq!(
        owner.run_pw(["get", "DB"]).success().stdout(),
        "dev-value\n"
    );
    let dir = owner.klef_home().join("data/offline");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the offline copies' directory")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let raw = std::fs::read(&files[0]).expect("the copy");
    assert!(
        !String::from_utf8_lossy(&raw).contains("dev-value"),
        "the copy holds no plaintext value"
    );
    owner.server.as_mut().expect("a server").stop();
    let served = owner.run_pw(["get", "DB"]).success();
    assert_eq!(served.stdout(), "dev-value\n");
    assert!(
        served.stderr().contains("cannot reach")
            && served.stderr().contains("offline copy")
            && served.stderr().contains(" ago"),
        "{}",
        served.stderr()
    );
    // Without the password nothing opens it.
    let closed = owner.run(["get", "DB"]);
    assert_ne!(closed.code(), 0);
    assert!(!closed.stdout().contains("dev-value"));
    // An altered copy is refused, naming the file.
    let mut altered = raw.clone();
    let at = altered.len() - 10;
    altered[at] ^= 1;
    std::fs::write(&files[0], &altered).expect("alter the copy");
    let refused = owner.run_pw(["get", "DB"]);
    assert_ne!(refused.code(), 0);
    assert!(!refused.stdout().contains("dev-value"));
    std::fs::write(&files[0], &raw).expect("restore the copy");
    // Writes need the server.
    owner
        .run_pw(["set", "DB", "offline-write"])
        .code_is(6)
        .clean_error(&["offline-write", "dev-value", PASSWORD]);
    // Without the opt-in, no copy is used.
    owner.remove_env("KLEF_OFFLINE_COPY");
    owner.run_pw(["get", "DB"]).code_is(6);
    owner.server.as_mut().expect("a server").restart();
    owner.set_env("KLEF_OFFLINE_COPY", "1");
    owner.run(["logout"]).success();
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        0,
        "logout deletes the copies"
    );
}
