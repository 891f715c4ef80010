//! `klef login [--server URL] [--email EMAIL | --key klef_user_…]`: signs in to a Klef server
//! and keeps the session token in the OS keyring (or a 0600 file where none answers). With
//! `--key klef_user_…` the user key itself is checked with the server and kept the same way.

use anyhow::{Context as _, Result};
use klef_core::backend::BackendError;
use klef_core::crypto::token::{ApiToken, TokenError, TokenKind};
use klef_core::wire::{LoginRequest, SecretText, SessionResponse};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::remote::session::Session;
use crate::remote::{self, Api, RemoteBackend};

/// Sign in to a Klef server
///
/// The account password comes from a prompt or `KLEF_ACCOUNT_PASSWORD`. Signing in does not
/// unlock your keys: commands that decrypt still need the encryption password (or the agent).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Your email (default: the last signed-in one)
    #[arg(long, conflicts_with = "key")]
    pub(crate) email: Option<String>,

    /// Sign in with a user API key (`klef_user_…`) instead of email and password
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<String>,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let previous = Session::load(&ctx.dirs.config)?;
    // --server/KLEF_SERVER, else the server the nearest `.klef` names, else the last one.
    let named = Context::find_klef_file()?.and_then(|k| k.file.server);
    let server = match (ctx.global.server.as_deref(), named, &previous) {
        (Some(s), _, _) => s.to_owned(),
        (None, Some(s), _) => s,
        (None, None, Some(p)) => p.server.clone(),
        (None, None, None) => {
            return Err(Failure::usage("which server? pass --server URL")
                .hint("or set KLEF_SERVER; in a project linked to a server, its .klef names it")
                .into());
        }
    };
    let api = Api::new(&server, None)?;
    let server = api.base().to_owned();

    if let Some(key) = args.key {
        let token = ApiToken::parse(key.trim()).map_err(|e| match e {
            TokenError::OldFormat => Failure::auth(format!("--key: {e}")),
            e => Failure::usage(format!("--key is not a klef user key: {e}")).hint(
                "user keys look like klef_user_<id>_<secret> (`klef keys create --type user`)",
            ),
        })?;
        if token.kind() != TokenKind::User {
            return Err(Failure::usage(
                "--key takes a user key (klef_user_…); system keys are used through KLEF_TOKEN",
            )
            .into());
        }
        // Check the key's bearer credential with the server, then keep that credential (never
        // the key) where a session token would go.
        let secret = SecretText::new(token.bearer_token().expose_secret().to_owned());
        let backend = RemoteBackend::new(Api::new(&server, Some(secret.clone()))?);
        let me = match backend.me().await {
            Ok(me) => me.clone(),
            Err(BackendError::Unauthenticated(_) | BackendError::Invalid(_)) => {
                return Err(Failure::auth(format!(
                    "{server} did not accept this key: it is revoked or unknown there, or this server does not support signing in with an API key yet"
                ))
                .hint("sign in with `klef login --email EMAIL` instead")
                .into());
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("failed to sign in to {server}")));
            }
        };
        let resp = SessionResponse {
            token: secret,
            expires_at: me.session_expires_at,
            account: me.account,
        };
        let session = remote::start_session(ctx, &server, &resp)?;
        report(ctx, &session)?;
        return Ok(ExitStatus::SUCCESS);
    }

    let email = match (args.email, &previous) {
        (Some(e), _) => e.trim().to_owned(),
        (None, Some(p)) if p.server == server && !p.email.is_empty() => p.email.clone(),
        _ => {
            return Err(
                Failure::usage(format!("which account on {server}? pass --email EMAIL"))
                    .hint("or `--key klef_user_…` to sign in with a user key")
                    .into(),
            );
        }
    };
    let password = remote::account_password(false)?;
    let resp = remote::login(&api, &LoginRequest { email, password })
        .await
        .with_context(|| format!("failed to sign in to {server}"))?;
    let session = remote::start_session(ctx, &server, &resp)?;
    report(ctx, &session)?;
    Ok(ExitStatus::SUCCESS)
}

fn report(ctx: &Context, session: &Session) -> Result<()> {
    if ctx.global.json {
        ctx.printer.json(&json!({
            "server": session.server,
            "email": session.email,
            "account_id": session.account_id,
            "token_store": session.token_store.as_str(),
        }))?;
    }
    ctx.printer.info(&format!(
        "signed in to {} as {}",
        session.server, session.email
    ));
    Ok(())
}
