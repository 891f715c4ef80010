//! `klef whoami [--json]`: the signed-in account (email, server, account id, key fingerprint)
//! and where its session token is stored (`keyring` or `file`). Checks the session with the
//! server, so an expired or revoked one is reported (exit 3). With `KLEF_TOKEN` set it describes
//! that API key instead: its kind, prefix, label, permission, scopes and server.

use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use klef_core::model::Account;
use klef_core::wire::{ApiKeyInfo, ApiKeyKind, routes};
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::remote::session::Session;
use crate::remote::token_store::StoreKind;
use crate::remote::{Api, RemoteBackend};
use crate::table;
use crate::trust::Trust;
use crate::unlock;

/// Show who you are signed in as, on which server, and where the session token is kept
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    if crate::commands::keys::ci::token()?.is_some() {
        return describe_token(ctx).await;
    }
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
    let fingerprint = own_fingerprint(ctx, &backend, &me.account).await?;
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
        (
            "key fingerprint",
            fingerprint.clone().unwrap_or_else(|| {
                "(locked: `klef unlock`, or KLEF_PASSWORD, shows it)".to_owned()
            }),
        ),
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

/// The account's key fingerprint, computed from the keys this device unlocks (never from the
/// server's copy, which [`Trust::load`] compares with them: a server that substituted the
/// account's keys is an error). `None` when the keys are locked and nothing can ask for the
/// password (a script without `KLEF_PASSWORD`): whoami still reports the sign-in.
async fn own_fingerprint(
    ctx: &Context,
    remote: &RemoteBackend,
    account: &Account,
) -> Result<Option<String>> {
    let vault = crate::remote::session::vault_label(remote.server(), &account.id);
    let Some(keys) = unlock::key_source_if_available(&ctx.global, account, vault).await? else {
        return Ok(None);
    };
    let trust = Trust::load(ctx, remote, &keys).await?;
    Ok(Some(trust.me().fingerprint().to_string()))
}

/// `whoami` with `KLEF_TOKEN`: what the key is and reaches, as the server describes it.
async fn describe_token(ctx: &Context) -> Result<ExitStatus> {
    let Some(server) = crate::remote::server_for(ctx)? else {
        return Err(crate::commands::keys::ci::needs_server());
    };
    let backend = crate::remote::connect(ctx, &server)?;
    let server = server.url;
    let info: ApiKeyInfo = backend
        .api()
        .get(routes::ME_API_KEY)
        .await
        .with_context(|| format!("failed to check KLEF_TOKEN with {server}"))?;
    let kind = match info.kind {
        ApiKeyKind::System => "system key",
        ApiKeyKind::User => "user key",
    };
    let scopes: Vec<String> = info.scopes.iter().map(ToString::to_string).collect();
    let permission = info.permission.map(|p| p.as_str().to_owned());
    if ctx.global.json {
        ctx.printer.json(&json!({
            "server": server,
            "key": {
                "kind": info.kind,
                "prefix": info.prefix,
                "label": info.label,
                "permission": permission,
                "scopes": scopes,
                "created_by": info.created_by_email,
            },
        }))?;
        return Ok(ExitStatus::SUCCESS);
    }
    let rows = [
        ("signed in with", format!("KLEF_TOKEN ({kind})")),
        ("key", info.prefix.clone()),
        ("label", info.label.clone()),
        ("server", server.clone()),
        (
            "permission",
            permission.unwrap_or_else(|| "everything its owner may do".to_owned()),
        ),
        (
            "scopes",
            if scopes.is_empty() {
                "-".to_owned()
            } else {
                scopes.join(", ")
            },
        ),
        (
            "created by",
            info.created_by_email.unwrap_or_else(|| "-".to_owned()),
        ),
    ];
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<16} {}", table::printable(&v));
    }
    ctx.printer.data(&out)?;
    Ok(ExitStatus::SUCCESS)
}
