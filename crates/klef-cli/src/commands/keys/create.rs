//! `klef keys create --type user --label L` / `klef keys create --type system --label L
//! --scope PROJECT:ENV [--scope …] --permission read|readwrite`: makes the key here (its secret
//! never leaves this machine except as the printed key), registers the hash of its bearer
//! credential (and, for a system key, its X25519 and Ed25519 public keys, with the environment
//! keys of its scopes wrapped to the X25519 one) and prints the key once: only the key on
//! stdout. All of these are derived from the secret (DESIGN.md §9.4); none of them gives the
//! server anything that decrypts or signs.

use anyhow::{Context as _, Result};
use klef_core::crypto::token::{ApiToken, TokenKind};
use klef_core::model::Blob;
use klef_core::secrecy::ExposeSecret as _;
use klef_core::trust::api_key::CiAnchor;
use klef_core::trust::identity::VerifyingKey;
use klef_core::wire::{ApiKeyInfo, ApiKeyKind, ApiKeyPermission, CreateApiKeyRequest, routes};
use serde_json::json;
use zeroize::Zeroizing;

use super::{parse_scope, remote, resolve, roster, wrap_covered};
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::trust::Trust;

/// The kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KeyType {
    /// Acts as you everywhere (unlocking still needs your encryption password)
    User,
    /// Scoped to PROJECT:ENV pairs, read or readwrite; decrypts with no password (CI)
    System,
}

/// A system key's permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Permission {
    /// List, get and pull secrets
    Read,
    /// Also set and push secrets
    Readwrite,
}

impl From<Permission> for ApiKeyPermission {
    fn from(p: Permission) -> Self {
        match p {
            Permission::Read => ApiKeyPermission::Read,
            Permission::Readwrite => ApiKeyPermission::Readwrite,
        }
    }
}

/// Create an API key and print it once
///
/// Only the key goes to stdout, so `KEY=$(klef keys create …)` captures it. Quote scopes with a
/// `*` (`--scope 'my-api:*'`) so the shell does not expand them.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// `user` (acts as you) or `system` (scoped, for CI)
    #[arg(long = "type", value_enum)]
    pub(crate) kind: KeyType,

    /// A label shown by `klef keys list`
    #[arg(long)]
    pub(crate) label: String,

    /// PROJECT:ENV or PROJECT:* (system keys; repeat for several)
    #[arg(long = "scope", value_name = "PROJECT:ENV")]
    pub(crate) scopes: Vec<String>,

    /// What a system key may do in its scopes
    #[arg(long, value_enum)]
    pub(crate) permission: Option<Permission>,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let permission = match args.kind {
        KeyType::User => {
            if !args.scopes.is_empty() || args.permission.is_some() {
                return Err(Failure::usage(
                    "a user key acts as you everywhere: it takes no --scope or --permission",
                )
                .hint("for a scoped key use --type system --scope PROJECT:ENV --permission read")
                .into());
            }
            None
        }
        KeyType::System => {
            if args.scopes.is_empty() {
                return Err(Failure::usage("a system key needs at least one --scope PROJECT:ENV")
                    .hint("e.g. --scope my-api:production (or --scope 'my-api:*' for every environment)")
                    .into());
            }
            let Some(p) = args.permission else {
                return Err(
                    Failure::usage("a system key needs --permission read or readwrite").into(),
                );
            };
            Some(ApiKeyPermission::from(p))
        }
    };
    let scope_args = args
        .scopes
        .iter()
        .map(|s| parse_scope(s))
        .collect::<Result<Vec<_>>>()?;
    let b = ctx.backend().await?;
    let r = remote(&b, "create")?;
    let token = ApiToken::generate(match args.kind {
        KeyType::User => TokenKind::User,
        KeyType::System => TokenKind::System,
    });
    let req = match args.kind {
        KeyType::User => CreateApiKeyRequest {
            id: token.id(),
            kind: ApiKeyKind::User,
            label: args.label.clone(),
            bearer_hash: token.bearer_hash(),
            public_key: None,
            signing_key: None,
            permission: None,
            scopes: Vec::new(),
            environment_keys: Vec::new(),
            anchor: None,
        },
        KeyType::System => {
            let resolved = resolve(ctx, &b, &scope_args).await?;
            let (_, public) = token.keypair()?;
            let signing = VerifyingKey::from_slice(&token.signing_public_key()?)
                .context("the key's derived signing key is not valid")?;
            let keys = ctx.keys(&b).await?;
            let environment_keys = wrap_covered(&b, &keys, &resolved.covered, &public).await?;
            // Signed into the roster first: a client wraps to a system key only what its
            // verified record covers, and only to the keys derived here.
            let mut trust = Trust::load(ctx, r, &keys).await?;
            let creator = trust.me().account;
            let mut anchors = Vec::new();
            for ws in &resolved.workspaces {
                if let Some(roster) = roster::roster_of(ctx, &b, &mut trust, *ws).await? {
                    let record = roster::record(
                        token.id(),
                        public,
                        signing,
                        &resolved.scopes,
                        permission.unwrap_or(ApiKeyPermission::Read),
                        creator,
                    );
                    let roster = roster::sign(&mut trust, roster, record).await?;
                    anchors.push(CiAnchor {
                        workspace: roster.workspace(),
                        genesis: roster.genesis(),
                        head: roster.head(),
                    });
                }
            }
            trust.save().await?;
            // The CI job verifies the roster from this, sealed so only the token opens it.
            let anchor = match anchors.as_slice() {
                [only] => Some(Blob(token.split().seal_anchor(&token.id(), only))),
                _ => None,
            };
            CreateApiKeyRequest {
                id: token.id(),
                kind: ApiKeyKind::System,
                label: args.label.clone(),
                bearer_hash: token.bearer_hash(),
                public_key: Some(Blob(public.0.to_vec())),
                signing_key: Some(Blob(token.signing_public_key()?.to_vec())),
                permission,
                scopes: resolved.scopes,
                environment_keys,
                anchor,
            }
        }
    };
    let info: ApiKeyInfo = r
        .api()
        .post(routes::API_KEYS, &req)
        .await
        .with_context(|| format!("failed to create the API key {:?}", args.label))?;
    let shown = token.display();
    if ctx.global.json {
        ctx.printer.json(&json!({
            "key": shown.expose_secret(),
            "prefix": info.prefix,
            "type": info.kind.as_str(),
            "label": info.label,
        }))?;
    } else {
        let mut line = Zeroizing::new(String::with_capacity(shown.expose_secret().len() + 1));
        line.push_str(shown.expose_secret());
        line.push('\n');
        ctx.printer.data(&line)?;
    }
    ctx.printer.info(&format!(
        "created {} key {} ({}); it is shown once: keep it in your CI's secret store",
        info.kind.as_str(),
        super::short_prefix(&info.prefix),
        info.label
    ));
    Ok(ExitStatus::SUCCESS)
}
