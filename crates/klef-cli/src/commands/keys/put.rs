//! `klef keys put PREFIX --scope PROJECT:ENV [--scope …] --permission read|readwrite`:
//! replaces all scopes and the permission of a system key, wrapping the environment keys of the
//! new scopes to it (grants of environments no longer covered are deleted by the server).

use anyhow::{Context as _, Result};
use klef_core::crypto::PublicKey;
use klef_core::wire::{ApiKeyInfo, ApiKeyKind, PutApiKeyRequest, routes};

use super::create::Permission;
use super::{find_key, parse_scope, remote, resolve, wrap_covered};
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};

/// Replace all scopes and the permission of a system key
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key's prefix, as `klef keys list` shows it
    pub(crate) prefix: String,

    /// PROJECT:ENV or PROJECT:* (repeat; replaces every current scope)
    #[arg(long = "scope", value_name = "PROJECT:ENV", required = true)]
    pub(crate) scopes: Vec<String>,

    /// What the key may do in its scopes
    #[arg(long, value_enum)]
    pub(crate) permission: Permission,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let scope_args = args
        .scopes
        .iter()
        .map(|s| parse_scope(s))
        .collect::<Result<Vec<_>>>()?;
    let b = ctx.backend().await?;
    let r = remote(&b, "put")?;
    let key = find_key(r, &args.prefix).await?;
    if key.kind == ApiKeyKind::User {
        return Err(Failure::usage(format!(
            "{} is a user key: it acts as its owner everywhere and has no scopes to change",
            key.prefix
        ))
        .hint(
            "`klef keys put` changes system keys; create one with `klef keys create --type system`",
        )
        .into());
    }
    let public = key
        .public_key
        .as_ref()
        .and_then(|pk| PublicKey::from_slice(pk.as_bytes()).ok())
        .ok_or_else(|| {
            Failure::other(format!(
                "the server sent no usable public key for {}",
                key.prefix
            ))
        })?;
    let resolved = resolve(ctx, &b, &scope_args).await?;
    let environment_keys = wrap_covered(ctx, &b, &resolved.covered, &public).await?;
    let updated: ApiKeyInfo = r
        .api()
        .put(
            &routes::api_key(&key.id),
            &PutApiKeyRequest {
                scopes: resolved.scopes,
                permission: args.permission.into(),
                environment_keys,
            },
        )
        .await
        .with_context(|| format!("failed to update {}", key.prefix))?;
    let scopes: Vec<String> = updated.scopes.iter().map(ToString::to_string).collect();
    ctx.printer.info(&format!(
        "{} ({}) now has {} on {}",
        super::short_prefix(&updated.prefix),
        updated.label,
        updated.permission.map_or("full", |p| p.as_str()),
        scopes.join(", ")
    ));
    Ok(ExitStatus::SUCCESS)
}
