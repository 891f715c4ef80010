//! Backups and the signed state (DESIGN.md §9.3): an archive carries every environment's
//! manifests, and `klef backup import` refuses one older than the state this machine has seen
//! unless asked for with `--allow-older` (the server's side of this is in `backup_server.rs`).

use klef_e2e::{PASSWORD, TestContext};

#[test]
fn an_older_backup_is_refused_without_allow_older() {
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "API_KEY", "first-value"]).success();
    let archive = ctx.root().join("old.klefbackup");
    let archive = archive.to_str().expect("utf-8");
    ctx.run_pw(["backup", "export", archive]).success();
    // The vault moves on after the backup: this machine has seen a newer signed state.
    ctx.run_pw(["set", "API_KEY", "second-value"]).success();
    ctx.run_pw(["set", "OTHER", "x"]).success();

    let refused = ctx
        .run_pw(["backup", "import", "--force", archive])
        .code_is(1)
        .clean_error(&[PASSWORD, "first-value", "second-value"])
        .stderr_has("older than revision")
        .stderr_has("--allow-older");
    let _ = refused;
    // Nothing was restored: the newer value is still there and reads verified.
    assert_eq!(
        ctx.run_pw(["get", "API_KEY", "--plain"]).success().stdout(),
        "second-value"
    );

    // Asked for on purpose, the older state comes back and reads verified from then on.
    ctx.run_pw(["backup", "import", "--force", "--allow-older", archive])
        .success()
        .stderr_has("older state");
    assert_eq!(
        ctx.run_pw(["get", "API_KEY", "--plain"]).success().stdout(),
        "first-value"
    );
    ctx.run_pw(["get", "OTHER"]).code_is(5);
    let verbose = ctx.run_pw(["-v", "get", "API_KEY"]).success();
    assert!(
        verbose.stderr().contains("signed revision"),
        "{}",
        verbose.stderr()
    );
}

#[test]
fn a_backup_whose_signed_state_was_edited_is_refused() {
    let ctx = TestContext::new();
    ctx.init();
    ctx.run_pw(["set", "API_KEY", "the-value"]).success();
    let archive = ctx.root().join("a.klefbackup");
    let path = archive.to_str().expect("utf-8");
    ctx.run_pw(["backup", "export", path]).success();
    // Re-encode the archive with one manifest's signature flipped (the checksum is recomputed,
    // as anyone rewriting the file would).
    let bytes = std::fs::read(&archive).expect("read");
    let mut parsed = klef_core::backup::decode(&bytes).expect("decode");
    let m = parsed.manifests.last_mut().expect("a manifest");
    m.manifest.signature.0[0] ^= 1;
    std::fs::write(&archive, klef_core::backup::encode(&parsed)).expect("write");
    ctx.run_pw(["set", "API_KEY", "newer"]).success();
    ctx.run_pw(["backup", "import", "--force", "--allow-older", path])
        .code_is(1)
        .clean_error(&[PASSWORD, "the-value"])
        .stderr_has("does not verify");
    assert_eq!(
        ctx.run_pw(["get", "API_KEY", "--plain"]).success().stdout(),
        "newer"
    );
}
