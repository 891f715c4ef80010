//! `klef whoami [--json]`: the signed-in account (email, server, account id, key fingerprint)
//! and where its session token is stored (`keyring` or `file`). Checks the session with the
//! server, so an expired or revoked one is reported (exit 3).

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use klef_core::crypto::PublicKey;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::remote::session::Session;
use crate::remote::token_store::StoreKind;
use crate::remote::{Api, RemoteBackend};
use crate::table;

/// Show who you are signed in as, on which server, and where the session token is kept
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let config = &ctx.dirs.config;
    let Some(session) = Session::load(config)? else {
        return Err(Failure::auth("not signed in")
            .hint("`klef login --server URL --email EMAIL` signs in; `klef signup` creates an account")
            .into());
    };
    let token = session.token(config)?.ok_or_else(|| {
        Failure::auth(format!(
            "the session token for {} is missing from the {} store",
            session.server,
            session.token_store.as_str()
        ))
        .hint("run `klef login` to sign in again")
    })?;
    let backend = RemoteBackend::new(Api::new(&session.server, Some(token))?);
    let me = backend
        .me()
        .await
        .with_context(|| format!("failed to check the session with {}", session.server))?;
    let fingerprint = PublicKey::from_slice(me.account.keys.public_key.as_bytes())
        .context("the account's public key is malformed")?
        .fingerprint();
    let store = session.store(config);
    let location = match session.token_store {
        StoreKind::Keyring => "OS keyring".to_owned(),
        StoreKind::File => store.file_path().display().to_string(),
    };
    let email = me.account.email.clone().unwrap_or(session.email.clone());
    // The environment this directory uses (without asking the server: `-e`, `KLEF_ENV`, the
    // user's choice or `.klef`).
    let environment = crate::env_choice::resolve(
        &ctx.dirs,
        ctx.global.env.as_deref(),
        Context::find_klef_file()?.as_ref(),
    )?;
    if ctx.global.json {
        ctx.printer.json(&json!({
            "email": email,
            "server": session.server,
            "account_id": me.account.id,
            "key_fingerprint": fingerprint,
            "token_store": session.token_store.as_str(),
            "token_location": location,
            "server_owner": me.server_owner,
            "session_expires_at": table::expiry(me.session_expires_at),
            "environment": environment.as_ref().map(|c| json!({"slug": c.slug, "source": c.source.as_str()})),
        }))?;
        return Ok(ExitStatus::SUCCESS);
    }
    let rows = [
        ("email", email),
        ("server", session.server.clone()),
        ("account", me.account.id.to_string()),
        ("key fingerprint", fingerprint),
        (
            "token store",
            format!("{} ({location})", session.token_store.as_str()),
        ),
        (
            "session expires",
            table::expiry(me.session_expires_at).unwrap_or_else(|| "never".to_owned()),
        ),
    ];
    let mut out = String::new();
    let environment = environment.map(|c| {
        (
            "environment",
            format!("{} ({})", c.slug, c.source.describe()),
        )
    });
    for (k, v) in rows.into_iter().chain(environment) {
        let _ = writeln!(out, "{k:<16} {}", table::printable(&v));
    }
    ctx.printer.data(&out)?;
    Ok(ExitStatus::SUCCESS)
}
