//! `klef logout`: revokes the session on the server and deletes the stored token. When the
//! server cannot be reached the token is still deleted here, with a warning that it stays valid
//! on the server until it expires. The agent's copies of the account's environments and the
//! offline copies (`KLEF_OFFLINE_COPY`) are deleted too.

use anyhow::Result;
use klef_core::backend::BackendError;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::ExitStatus;
use crate::remote::session::Session;
use crate::remote::{Api, RemoteBackend};

/// Sign out: revoke the session on the server and forget its token
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: &Args, ctx: &Context) -> Result<ExitStatus> {
    let config = &ctx.dirs.config;
    let Some(session) = Session::load(config)? else {
        ctx.printer.info("not signed in");
        return Ok(ExitStatus::SUCCESS);
    };
    let store = session.store(config);
    let token = store.load(&session.label()).unwrap_or_else(|e| {
        ctx.printer.warn(&format!("{e:#}"));
        None
    });
    let mut revoked = false;
    if let Some(token) = token {
        let backend = RemoteBackend::new(Api::new(&session.server, Some(token))?);
        match backend.logout().await {
            Ok(()) | Err(BackendError::Unauthenticated(_)) => revoked = true,
            Err(e) => ctx.printer.warn(&format!(
                "could not revoke the session on the server ({e}); it stays valid there until it expires"
            )),
        }
    }
    store.delete(&session.label())?;
    Session::remove(config)?;
    // What this device kept of the account's environments goes with the session.
    crate::snapshot::forget_vault(ctx, &session.label()).await;
    crate::snapshot::offline::forget_all(ctx);
    if ctx.global.json {
        ctx.printer
            .json(&json!({"server": session.server, "email": session.email, "revoked": revoked}))?;
    }
    ctx.printer.info(&format!(
        "signed out of {} ({})",
        session.server, session.email
    ));
    Ok(ExitStatus::SUCCESS)
}
