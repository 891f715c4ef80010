//! `klef signup --server URL --email EMAIL [--recovery-file FILE]`: creates an account on a Klef
//! server and signs in.
//!
//! Two passwords, kept apart: the account password signs in (the server keeps an Argon2id hash
//! of it), the encryption password unlocks the keys and never leaves this machine. The account's
//! keys are made here with `klef_core::crypto::account::create`; only sealed material and the
//! public key are uploaded. The recovery code is shown once.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use klef_core::crypto;
use klef_core::env::EnvVars;
use klef_core::ids::{AccountId, WorkspaceId};
use klef_core::model::Workspace;
use klef_core::wire::SignupRequest;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::remote::{self, Api};
use crate::secrets::now;
use crate::{fsutil, password};

/// Create an account on a Klef server and sign in
///
/// The account password (to sign in) comes from a prompt or `KLEF_ACCOUNT_PASSWORD`; the
/// encryption password (to unlock your keys; it never leaves this machine) from
/// `--password-stdin`, `KLEF_PASSWORD` or a prompt. They must differ.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Your email (the sign-in name)
    #[arg(long)]
    pub(crate) email: String,

    /// Also write the recovery code to FILE (mode 0600; never overwrites)
    #[arg(long, value_name = "FILE")]
    pub(crate) recovery_file: Option<PathBuf>,

    /// Sign up with the keys of this backup's owner (a `klef backup export` file), then restore
    /// the backup: the same encryption password and recovery code keep working
    #[arg(long, value_name = "FILE", conflicts_with = "recovery_file")]
    pub(crate) from_backup: Option<PathBuf>,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let Some(server) = ctx.global.server.as_deref() else {
        return Err(Failure::usage("`klef signup` needs the server's URL")
            .hint("pass --server URL (or set KLEF_SERVER)")
            .into());
    };
    let email = args.email.trim().to_owned();
    if !email.contains('@') || email.chars().any(char::is_whitespace) {
        return Err(Failure::usage(format!("{email:?} is not an email address")).into());
    }
    if let Some(f) = &args.recovery_file
        && f.exists()
    {
        return Err(Failure::other(format!("{} already exists", f.display()))
            .hint("choose a new file for the recovery code; klef never overwrites one")
            .into());
    }
    let api = Api::new(server, None)?;
    let server = api.base().to_owned();
    if let Some(file) = &args.from_backup {
        return from_backup(ctx, &api, email, file).await;
    }

    ctx.printer
        .info("choose an account password: it signs you in to the server");
    let account_pw = remote::account_password(true)?;
    if account_pw.expose().chars().count() < 8 {
        return Err(Failure::usage("the account password must have at least 8 characters").into());
    }
    ctx.printer
        .info("choose an encryption password: it unlocks your keys and never leaves this machine");
    let enc_pw = password::new_password(&ctx.global, EnvVars::KLEF_PASSWORD)?;
    if enc_pw.expose_secret() == account_pw.expose() {
        return Err(Failure::usage(
            "the encryption password must differ from the account password",
        )
        .hint("the server sees the account password when you sign in; it must never see the encryption password")
        .into());
    }
    if enc_pw.expose_secret().chars().count() < 12 {
        ctx.printer
            .warn("this encryption password is short; your secrets are as strong as it is");
    }

    let id = AccountId::random();
    let (keys, code, unlocked) =
        crypto::account::create(&id, &enc_pw).context("failed to create the account keys")?;
    let personal = Workspace {
        id: WorkspaceId::random(),
        name: "Personal".into(),
        personal: true,
        created_at: now(),
    };
    let secrets = crate::unlock::AccountSecrets::of(&id, unlocked);
    let req = SignupRequest {
        email: email.clone(),
        password: account_pw,
        account_id: id,
        keys,
        identity_key: Some(crate::commands::init::identity_blob(&secrets)),
        personal_workspace: personal,
    };
    let resp = remote::signup(&api, &req)
        .await
        .with_context(|| format!("failed to sign up at {server}"))?;
    let session = remote::start_session(ctx, &server, &resp)?;

    let display = code.display();
    if let Some(path) = &args.recovery_file {
        let mut text = zeroize::Zeroizing::new(String::from("klef recovery code\n"));
        text.push_str(display.expose_secret());
        text.push('\n');
        fsutil::write_new(path, text.as_bytes(), 0o600)?;
    }
    ctx.printer
        .recovery_code(display.expose_secret(), args.recovery_file.as_deref());
    // The encryption password was just typed: unlock the session now, as `klef unlock` would.
    let vault = remote::session::vault_label(&server, &id);
    crate::unlock::remember_in_agent(&ctx.global, &vault, &secrets).await;

    if ctx.global.json {
        ctx.printer.json(&json!({
            "server": session.server,
            "email": session.email,
            "account_id": session.account_id,
            "token_store": session.token_store.as_str(),
        }))?;
    }
    ctx.printer.info(&format!(
        "created account {} on {server} and signed in",
        session.email
    ));
    ctx.printer
        .hint("`klef init` creates a project on the server; `klef whoami` shows the session");
    Ok(ExitStatus::SUCCESS)
}

/// `--from-backup FILE`: the backup owner's keys (proved with its encryption password), a new
/// account password, then the restore (`commands::backup::adopt`).
async fn from_backup(
    ctx: &Context,
    api: &Api,
    email: String,
    file: &std::path::Path,
) -> Result<ExitStatus> {
    let server = api.base().to_owned();
    let (adopted, enc_pw, secrets) = crate::commands::backup::adopt::adopt(ctx, file)?;
    ctx.printer
        .info("choose an account password: it signs you in to the server");
    let account_pw = remote::account_password(true)?;
    if account_pw.expose().chars().count() < 8 {
        return Err(Failure::usage("the account password must have at least 8 characters").into());
    }
    if enc_pw.expose_secret() == account_pw.expose() {
        return Err(Failure::usage(
            "the account password must differ from the backup's encryption password",
        )
        .into());
    }
    drop(enc_pw);
    let req = SignupRequest {
        email,
        password: account_pw,
        account_id: adopted.id,
        keys: adopted.keys,
        // Published after the first unlock on the server (the backup gives no master key here).
        identity_key: None,
        personal_workspace: adopted.personal,
    };
    let resp = remote::signup(api, &req)
        .await
        .with_context(|| format!("failed to sign up at {server}"))?;
    let session = remote::start_session(ctx, &server, &resp)?;
    ctx.printer.info(&format!(
        "created account {} on {server} with the keys of {} and signed in",
        session.email,
        file.display()
    ));
    crate::commands::backup::adopt::restore(ctx, file, secrets).await
}
