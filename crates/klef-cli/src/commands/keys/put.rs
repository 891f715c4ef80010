//! `klef keys put PREFIX --scope PROJECT:ENV [--scope …] --permission read|readwrite`:
//! replaces all scopes and the permission of a system key, wrapping the environment keys of the
//! new scopes to it (grants of environments no longer covered are deleted by the server).

use anyhow::{Context as _, Result};
use klef_core::crypto::PublicKey;
use klef_core::wire::{ApiKeyInfo, ApiKeyKind, PutApiKeyRequest, routes};

use super::create::Permission;
use klef_core::trust::roster::PrincipalId;

use super::{find_key, parse_scope, remote, resolve, roster, wrap_covered};
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::trust::Trust;

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
    let listed = key
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
    let keys = ctx.keys(&b).await?;
    let mut trust = Trust::load(ctx, r, &keys).await?;
    let mut rosters = Vec::new();
    for ws in &resolved.workspaces {
        if let Some(roster) = roster::roster_of(ctx, &b, &mut trust, *ws).await? {
            rosters.push(roster);
        }
    }
    // The key's keys come from its verified record, never from the server's listing.
    let principal = PrincipalId::SystemKey(key.id);
    let recorded = rosters.iter().find_map(|r| r.system_key(&key.id).cloned());
    let public = match &recorded {
        Some(rec) if rec.x25519_key == listed => rec.x25519_key,
        Some(_) => {
            return Err(Failure::other(format!(
                "the server lists another public key for {} than the signed roster holds: it substituted a key; nothing was changed",
                key.prefix
            ))
            .hint("tell the server's operator; re-create the key if in doubt")
            .into());
        }
        None if rosters.iter().any(|r| r.ever_listed(&principal)) => {
            return Err(Failure::other(format!(
                "{} was revoked in the signed roster, although the server still lists it: nothing was changed",
                key.prefix
            ))
            .into());
        }
        None => {
            ctx.printer.warn(&format!(
                "{} was made before signed rosters: its public key, as the server lists it, cannot be verified; re-create it (`klef keys create`) to have it recorded",
                key.prefix
            ));
            listed
        }
    };
    let environment_keys = wrap_covered(&b, &keys, &resolved.covered, &public).await?;
    let updated: ApiKeyInfo = r
        .api()
        .put(
            &routes::api_key(&key.id),
            &PutApiKeyRequest {
                scopes: resolved.scopes.clone(),
                permission: args.permission.into(),
                environment_keys,
            },
        )
        .await
        .with_context(|| format!("failed to update {}", key.prefix))?;
    if let Some(rec) = recorded {
        for r in rosters {
            if r.system_key(&key.id).is_some() {
                let record = roster::record(
                    key.id,
                    rec.x25519_key,
                    rec.signing_key,
                    &resolved.scopes,
                    args.permission.into(),
                    rec.creator,
                );
                roster::sign(&mut trust, r, record).await?;
            }
        }
    }
    trust.save().await?;
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
