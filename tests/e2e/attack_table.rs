//! The table of malicious-server attacks in `docs/security.md`, generated from this list: each
//! row names the end-to-end test that performs the attack through the real binaries, and the
//! test below fails when a named test does not exist or the document is stale
//! (`KLEF_UPDATE_DOCS=1 cargo test -p klef-e2e --test e2e attack_table` rewrites it).

use std::fmt::Write as _;
use std::path::PathBuf;

/// `(module::test, what the server does, what klef does)`.
const ATTACKS: &[(&str, &str, &str)] = &[
    (
        "roster_attacks::a_server_that_swaps_an_invitees_keys_gets_nothing_wrapped",
        "relays another account's X25519 key, or identity key, as the invitee's at `workspace confirm` (database edited)",
        "`confirm` fails (exit 1): the invite code's MAC, or the fingerprint the invitee read out (`--fingerprint`), does not match; no roster entry is signed and no key is wrapped",
    ),
    (
        "roster_attacks::a_server_that_swaps_an_invitees_keys_gets_nothing_wrapped",
        "serves an account's own record with a substituted key",
        "that account's `klef` refuses to unlock against it (exit 1, \"substituted a key\"), and `whoami` shows only the fingerprint of keys it unlocked itself",
    ),
    (
        "roster_attacks::a_server_that_widens_an_invitation_gets_nothing_signed",
        "raises an invitee's role, or widens their access, between `invite` and `confirm`",
        "`confirm` on the inviting device compares with what it invited (kept sealed there) and fails; nothing is signed or wrapped",
    ),
    (
        "roster_attacks::a_forged_genesis_is_refused_by_invitees_and_by_every_device_of_the_owner",
        "shows an invitee a forged roster genesis (its own keys as the owner's)",
        "`accept --code` fails: the code names the real genesis; `accept --owner-fingerprint` fails: the owner's fingerprint differs; the invitation stays unaccepted",
    ),
    (
        "roster_attacks::a_forged_genesis_is_refused_by_invitees_and_by_every_device_of_the_owner",
        "shows the owner's devices (the one that created the workspace, and a new laptop) the forged genesis",
        "both refuse it: the new device inherits the pin from the account's sealed pins",
    ),
    (
        "roster_attacks::a_forged_genesis_is_refused_by_invitees_and_by_every_device_of_the_owner",
        "also withholds the account's sealed pins from a new device",
        "the new device refuses to trust the roster (\"not pinned\") instead of trusting it on first use",
    ),
    (
        "roster_attacks::a_roster_rewritten_truncated_or_reordered_is_refused",
        "edits a signed roster entry, swaps two entries, or drops the newest one",
        "every command that reads the roster fails naming it (signature, chain, or shorter than the pinned head); nobody is invited",
    ),
    (
        "roster_attacks::rotate_key_wraps_only_to_readers_of_the_verified_roster",
        "lists a substituted public key for a member with a grant before `env rotate-key`",
        "`rotate-key` fails naming the member; the key is not rotated or wrapped",
    ),
    (
        "roster_attacks::rotate_key_wraps_only_to_readers_of_the_verified_roster",
        "keeps a removed member's grant on the list",
        "`rotate-key` fails: the signed roster gives them no access since their `removed` entry",
    ),
    (
        "roster_attacks::system_keys_are_signed_into_the_roster_and_wrapped_only_to_their_recorded_keys",
        "lists another public key for a system key before `env rotate-key`, `keys put` or (for a `project:*` key) `env create`",
        "each fails naming the key (\"substituted a key\"); nothing is rotated, re-scoped or created, and nothing is wrapped",
    ),
    (
        "roster_attacks::a_ci_job_verifies_its_workspace_from_the_anchor_sealed_at_its_keys_creation",
        "serves a CI job (a system key) a replaced anchor, or a roster without the key's own entry",
        "the job fails before decrypting anything: the anchor sealed at `keys create` opens only with the token, and the roster must extend it and list the key with its own derived keys and scopes",
    ),
    (
        "api_key_split::the_server_and_a_logging_proxy_get_a_credential_that_opens_nothing",
        "records every `Authorization` header (a logging proxy) and the database's key rows, and tries to open a CI key's environment-key grant with them",
        "only a derived bearer credential was ever sent; neither it nor its stored hash opens the grant",
    ),
    (
        "api_key_split::old_format_tokens_and_rows_are_refused_with_the_advice_to_re_create",
        "keeps accepting an API key issued before split secrets (whose secret it saw)",
        "`klef` refuses the old token before sending it, and the server refuses old rows (401 `api_key_outdated`) with the advice to re-create the key and rotate",
    ),
    (
        "token_destination::an_api_key_never_goes_to_a_server_only_a_klef_file_names",
        "names itself in a `.klef` of a cloned repository while `KLEF_TOKEN` is set",
        "`klef` refuses (exit 3) naming both URLs; the named server receives not even a connection",
    ),
    (
        "token_destination::a_session_token_goes_only_to_its_own_server",
        "names itself in a `.klef` to collect a signed-in user's session token",
        "the session token goes only to the server it was made for",
    ),
    (
        "account_keys::an_api_key_cannot_replace_the_account_keys",
        "(or a stolen API key) replaces the account's sealed master key through `PUT /v1/me/keys`",
        "refused: only a session with the account password re-entered may (403 for API keys)",
    ),
    (
        "account_keys::recover_undoes_a_bad_write_to_the_sealed_keys",
        "writes a bad sealed master key for an account",
        "the previous seals are kept; `klef recover` restores the newest that opens, with a warning",
    ),
    (
        "removal::a_failed_rotation_leaves_the_member_removed_and_names_what_is_left",
        "lists another public key for a system key the removed member created, during `workspace remove`'s rotation",
        "that environment is not rotated and nothing is wrapped to the substituted key; the others are rotated, the member stays removed, and the command exits 1 naming the environment left and the `klef env rotate-key` command",
    ),
    (
        "teams::a_member_the_server_shows_as_invited_is_not_cancelled_behind_the_rosters_back",
        "shows a confirmed member as only invited, so that `workspace remove` would merely cancel an invitation and leave them in the signed roster",
        "`remove` checks the verified roster first: it fails (exit 1) saying the server's list disagrees with the roster, and changes nothing",
    ),
    (
        "roster_attacks::removing_a_full_access_member_replaces_the_project_key_they_held",
        "colludes with a removed full-access member: gives back their membership and the project key they held",
        "it opens nothing: `workspace remove` replaced the project key, re-sealed every environment key under it and rotated them, wrapping only to the remaining full-access members of the roster",
    ),
    (
        "manifest_attacks::an_altered_past_is_refused_by_history_and_diff_at_a_revision",
        "rewrites the past: an old version of a value (with bytes that open), or an old manifest (replaced by an earlier one)",
        "`klef diff --revision N` and `klef history` fail naming it (the old value does not match the hash its revision signed; the old manifests do not chain to the verified head); the current state still reads",
    ),
    (
        "agent_cache::own_writes_drop_the_copy_at_once_and_a_rolled_back_server_is_refused",
        "answers an agent's revalidation (`?changes_since=N`) with a state rolled back below the copy's signed head (newest manifest and value deleted)",
        "`get` fails (exit 1) saying the server withheld or rolled back the signed state this account has seen; nothing older is served",
    ),
    (
        "agent_cache::a_removed_members_agent_stops_serving_at_its_next_revalidation",
        "(honestly) refuses a removed member's revalidation",
        "the agent forgets the copy at once and the read fails with exit 4; only a copy younger than `KLEF_CACHE_FRESH` (5 s) could have been served before",
    ),
    (
        "agent_cache::an_opted_in_offline_copy_serves_reads_with_the_password_while_the_server_is_down",
        "is away, and someone alters the opt-in offline copy on disk",
        "an intact copy opens only with the password and is served with a warning; the altered one is refused naming the file; neither holds a plaintext value",
    ),
    (
        "manifest_attacks::a_replayed_value_is_refused_by_members_and_ci_jobs",
        "serves an older version's ciphertext of a key as its newest version (a new row)",
        "`get`, `set` fail (exit 1) naming the key and the version the signed manifest lists (\"replayed or rolled back\"); nothing is decrypted or written",
    ),
    (
        "manifest_attacks::a_replayed_value_is_refused_by_members_and_ci_jobs",
        "serves the same replayed value to a CI job (a system key in `KLEF_TOKEN`)",
        "the job fails the same way before decrypting anything",
    ),
    (
        "manifest_attacks::a_value_overwritten_in_place_is_refused",
        "overwrites the ciphertext of a key's current version in place (append-only triggers dropped)",
        "every read and write of the environment fails naming the key (\"replaced or altered\": its SHA-256 differs from the signed manifest's); nothing is written",
    ),
    (
        "manifest_attacks::two_swapped_values_are_refused",
        "swaps the ciphertexts of two keys",
        "`get` of either key and `run` fail naming the first swapped key; nothing is written",
    ),
    (
        "manifest_attacks::a_value_copied_from_another_environment_is_refused",
        "serves staging's ciphertext of a key as production's newest version",
        "`get -e production` fails naming the key: the version and hash are not the ones production's manifest signs",
    ),
    (
        "manifest_attacks::a_dropped_value_is_refused",
        "drops a key: a tombstone nobody wrote, or every row of the key deleted",
        "every read and write of the environment fails naming the key (\"dropped\"); nothing is written",
    ),
    (
        "manifest_attacks::an_older_manifest_is_a_rollback_for_every_device_that_saw_the_newer_one",
        "forgets the newest write (its manifest and value rows) and serves the older, genuine state",
        "the device that saw the newer state, and a new device of the same account (which inherits the heads from the account's sealed pins), fail (\"rolled back\"); nothing is written",
    ),
    (
        "manifest_attacks::an_older_manifest_is_a_rollback_for_every_device_that_saw_the_newer_one",
        "serves that older state to a CI job (which keeps no state between jobs), or to a new device of the account along with an older copy of the account's sealed pins",
        "**accepted**: a client that never saw the newer state cannot tell; a CI job's anchor bounds it to states signed since its key was made",
    ),
    (
        "manifest_attacks::a_forked_manifest_is_refused_by_the_client_that_saw_the_other_branch",
        "hides a write from a member, who then signs another manifest at the same revision (a fork)",
        "the writer whose revision was replaced fails naming the revision (\"forked\"), and so does the member once shown the first branch; nothing is written",
    ),
    (
        "manifest_attacks::a_fork_hidden_between_two_admins_is_detected_when_their_branches_meet",
        "keeps two admins on diverging branches, each shown only its own",
        "each works undisturbed on its branch (the limit of §9); as soon as one is shown the other's, `klef` fails (\"forked\")",
    ),
    (
        "manifest_attacks::the_old_key_served_after_a_rotation_is_refused",
        "serves the pre-rotation environment key (sealed under the project key, and wrapped to a CI key) after `env rotate-key`",
        "the owner and the CI job fail: the key does not match the signed key commitment of the current key version; nothing is decrypted or written with it",
    ),
    (
        "manifest_attacks::an_environment_key_the_server_made_is_refused_by_members_and_ci_jobs",
        "wraps an environment key of its own making to a restricted member, and to a read-write CI key",
        "their reads and writes fail (key commitment); nothing is decrypted, encrypted or written",
    ),
    (
        "manifest_attacks::a_project_key_the_server_made_is_refused_and_never_used",
        "wraps a project key of its own making to the owner, and seals an environment key of its own under it",
        "reads and writes of that environment fail (key commitment), and `env create` refuses to seal a new environment's key under a project key no admin committed to",
    ),
    (
        "manifest_attacks::staging_relabelled_as_production_is_refused",
        "swaps the slugs of staging and production",
        "`get -e production` and `set -e production` fail (\"relabelled\"): the signed manifest names the environment",
    ),
    (
        "manifest_attacks::a_manifest_signed_after_the_signers_removal_is_refused",
        "colludes with a removed member: hides the `removed` entry from them, gives back their membership and grant, and stores their write",
        "the owner's next read and write fail: the manifest's signer was removed at the reader's roster head (\"not signed by an authorised writer\")",
    ),
    (
        "manifest_attacks::a_garbage_ciphertext_written_through_the_api_is_refused_and_not_stored",
        "receives, from a writer past `klef` (a user key's bearer), bytes no client could open",
        "`400` naming the key (\"not an encrypted value\"); nothing is stored and every reader's `klef run` keeps working",
    ),
    (
        "manifest_attacks::edits_of_the_local_vault_file_are_refused",
        "(the local vault file, edited) replays a version, overwrites or swaps values, drops one, forgets the newest write, or relabels staging as production",
        "each read and write fails (exit 1) naming the key and what was done, blaming the vault file; nothing is written. Whoever also deletes the sealed heads in `<data>/pins/` can make it read an older state its owner signed",
    ),
    (
        "personal::personal_overrides_are_seen_by_their_owner_alone",
        "reads a member's personal overrides as stored (database, audit log), or serves them to a teammate or a system key",
        "it has neither names nor values: one record per member and environment, sealed under a key only that member's unlocked devices derive, wrapped to nobody; the audit entry names no key; teammates and CI get the shared values only, and a system key may not write overrides (exit 2)",
    ),
    (
        "personal::personal_overrides_are_seen_by_their_owner_alone",
        "moves a member's personal-overrides record to another member's account",
        "it does not open for them (the account is bound in its associated data, and their key differs); `klef` fails (exit 1) and reads nothing",
    ),
    (
        "personal::a_server_that_rolls_back_relabels_or_moves_personal_overrides_is_refused",
        "serves an older record of a member's personal overrides (an older row restored)",
        "`get`, `run` fail (exit 1, \"older copy of your personal overrides\"): the account's sealed pins keep the highest revision seen; no value is read",
    ),
    (
        "personal::a_server_that_rolls_back_relabels_or_moves_personal_overrides_is_refused",
        "relabels an older record with the newest revision, or moves a record to another environment",
        "it does not open (revision and environment are bound in its associated data); the environment it was taken from reads as withheld and is refused too (exit 1)",
    ),
    (
        "personal::personal_overrides_in_the_local_vault",
        "(the local vault file, edited) rolls back, relabels or moves the owner's personal overrides",
        "refused the same way, blaming the vault file; nothing is read",
    ),
    (
        "manifest_attacks::a_server_database_from_before_manifests_migrates_and_is_sealed_by_its_owner",
        "(upgrade) holds environments made before signed manifests",
        "values read as before with a warning naming `klef env seal`; only an owner or admin seals, and every read is verified from then on",
    ),
    (
        "manifest_backup::an_older_backup_is_refused_without_allow_older",
        "(or whoever hands over a backup) gets an archive older than the state this machine has seen restored",
        "`backup import` fails (exit 1) naming the environment and both revisions, nothing restored; `--allow-older` restores it on purpose (its chains still verified in full)",
    ),
    (
        "manifest_backup::a_backup_whose_signed_state_was_edited_is_refused",
        "edits a manifest in a backup archive (checksum recomputed)",
        "`backup import` fails naming the environment (\"does not verify\"), even with `--allow-older`; nothing restored",
    ),
    (
        "backup_server::a_server_backup_restores_locally_and_on_another_server",
        "restores, on a server, a backup older than the state the owner has seen",
        "refused without `--allow-older`; with it, the owner's device forgets the newer state and teammates' `klef` that saw it refuses the restored one as a rollback",
    ),
    (
        "adversary::no_server_answer_makes_klef_panic",
        "answers every request with replayed, truncated or mutated bodies and statuses",
        "no command panics or passes a terminal escape through; every failure is an `error:` line",
    ),
];

const BEGIN: &str = "<!-- attack-table:begin (generated by tests/e2e/attack_table.rs; KLEF_UPDATE_DOCS=1 to regenerate) -->";
const END: &str = "<!-- attack-table:end -->";

fn render() -> String {
    let mut out = format!("{BEGIN}\n\n| the server | klef | test |\n|---|---|---|\n");
    for (test, attack, outcome) in ATTACKS {
        let _ = writeln!(out, "| {attack} | {outcome} | `{test}` |");
    }
    out.push('\n');
    out.push_str(END);
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_attack_names_a_test_that_exists() {
    for (test, _, _) in ATTACKS {
        let (module, name) = test.split_once("::").expect("module::test");
        let path = root().join("e2e").join(format!("{module}.rs"));
        let source =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            source.contains(&format!("#[test]\nfn {name}()")),
            "{test}: no such #[test] in {}",
            path.display()
        );
    }
}

#[test]
fn the_attack_table_in_security_md_is_current() {
    let path = root().join("../docs/security.md");
    let doc = std::fs::read_to_string(&path).expect("read docs/security.md");
    let rendered = render();
    let (Some(start), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/security.md lacks the attack-table markers");
    };
    let current = &doc[start..end + END.len()];
    if current == rendered {
        return;
    }
    if std::env::var("KLEF_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let updated = format!("{}{rendered}{}", &doc[..start], &doc[end + END.len()..]);
        std::fs::write(&path, updated).expect("write docs/security.md");
        return;
    }
    panic!(
        "docs/security.md's attack table is stale: run KLEF_UPDATE_DOCS=1 cargo test -p klef-e2e --test e2e attack_table"
    );
}
