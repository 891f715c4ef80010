//! `klef env rotate-key [SLUG]`: a new key for the environment. Every live value is decrypted
//! and re-encrypted under it here, the new key is sealed under the project key and re-wrapped
//! for every direct grant (members restricted to some environments, system keys), and all of it
//! is sent as one request that the server applies in one transaction. Run it after removing a
//! member or revoking a key. On the local vault it re-encrypts the values the same way.

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::{self, Aad, SymmetricKey};
use klef_core::model::{KeyRotation, RotatedGrant, RotatedSecret, RotationOutcome};
use serde_json::json;

use crate::backend::AnyBackend;
use crate::context::{Context, Target};
use crate::diagnostics::{ExitStatus, Failure};
use crate::recipients::Recipient;
use crate::secrets;
use crate::unlock::KeySource;

/// Give the environment a new key and re-encrypt its values
///
/// Run it after removing a member or revoking a key: they may have kept the old key.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The environment (default: `-e`, `KLEF_ENV`, then `.klef`'s default)
    pub(crate) slug: Option<String>,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let b = ctx.backend().await?;
    let t = ctx.target_or_slug(&b, args.slug.as_deref()).await?;
    let keys = ctx.keys(&b).await?;
    let done = rotate(ctx, &b, &keys, &t).await?;
    if ctx.global.json {
        ctx.printer.json(&json!({
            "environment": t.env.slug,
            "key_version": done.key_version,
            "reencrypted": done.reencrypted,
            "grants": done.grants,
            "recipients": done.recipients.iter().map(Recipient::to_json).collect::<Vec<_>>(),
        }))?;
    }
    ctx.printer.info(&done.summary(&t));
    for r in &done.recipients {
        ctx.printer
            .info(&format!("  re-wrapped for {}", r.describe()));
    }
    Ok(ExitStatus::SUCCESS)
}

/// What one rotation did.
pub(crate) struct Rotated {
    /// The environment's new key version.
    pub(crate) key_version: i64,
    /// How many live values were re-encrypted.
    pub(crate) reencrypted: usize,
    /// How many grants the new key was wrapped for.
    pub(crate) grants: usize,
    /// Who the new key was wrapped to.
    pub(crate) recipients: Vec<Recipient>,
}

impl Rotated {
    /// The one line that says what a rotation of `t` did.
    pub(crate) fn summary(&self, t: &Target) -> String {
        format!(
            "rotated the key of {} (key version {}); re-encrypted {} value(s), re-wrapped for {} grant(s)",
            t.describe(),
            self.key_version,
            self.reencrypted,
            self.grants
        )
    }
}

/// Rotates the key of `t`: a new key, every live value re-encrypted under it here, the key
/// sealed under the project key and wrapped only to the recipients verified against the signed
/// roster ([`crate::recipients::verified`]), all sent as one request the server applies in one
/// transaction. Nothing is changed when any step fails. `klef env rotate-key` and `klef
/// workspace remove` both rotate through it.
pub(crate) async fn rotate(
    ctx: &Context,
    b: &AnyBackend,
    keys: &KeySource,
    t: &Target,
) -> Result<Rotated> {
    // The environment as stored now: its current key version is what the rotation replaces.
    let (env, access) = b.environment_with_key(&t.env.id).await?;
    let project_key = keys.project_key(&t.project, &access).await.map_err(|e| {
        e.context(Failure::permission(format!(
            "rotating the key of {} needs the project key",
            t.describe()
        )))
    })?;
    let target = Target {
        project: t.project.clone(),
        env: env.clone(),
    };
    // The old key and values as the environment's signed state vouches for them: a rotation
    // never re-encrypts a value the server slipped in, nor starts from a key it injected.
    let mut opened = crate::signed::open_with(
        ctx,
        b,
        &target,
        crate::signed::Purpose::Write,
        &ctx.global,
        Some(keys),
    )
    .await?;
    let old_key = opened.key.clone();
    let new_key = SymmetricKey::generate();
    let live: Vec<_> = opened
        .secrets
        .iter()
        .filter(|s| s.ciphertext.is_some())
        .cloned()
        .collect();
    let progress = ctx
        .printer
        .progress(format!("re-encrypting {} values", live.len()));
    let mut rotated = Vec::with_capacity(live.len());
    for sv in &live {
        let value = secrets::decrypt(&old_key, &target, sv)?;
        rotated.push(RotatedSecret {
            name: sv.name.clone(),
            expected_version: sv.version,
            ciphertext: secrets::encrypt(
                &new_key,
                &target,
                &sv.name,
                &value,
                (sv.version + 1, opened.key_version(&target) + 1),
            ),
        });
    }
    let recipients =
        crate::recipients::verified(ctx, b, keys, t, &b.environment_grants(&env.id).await?).await?;
    let mut grants = Vec::new();
    for r in &recipients {
        let wrapped = crypto::try_wrap_key(&r.public_key, &new_key, &Aad::EnvironmentKey(&env.id))
            .context("cannot wrap the new key to a grantee")?;
        grants.push(RotatedGrant {
            grantee: r.grantee,
            wrapped_key: wrapped.into(),
        });
    }
    let values: Vec<_> = rotated
        .iter()
        .map(|r| (r.name.clone(), r.expected_version + 1, r.ciphertext.clone()))
        .collect();
    let manifest = opened.rotation_manifest(&target, &new_key, &values)?;
    let req = KeyRotation {
        expected_key_version: env.key_version,
        sealed_key: crypto::seal_key(&project_key, &new_key, &Aad::EnvironmentKey(&env.id)).into(),
        secrets: rotated,
        grants,
        manifest: manifest.clone(),
    };
    let outcome = b
        .rotate_environment_key(&env.id, &req)
        .await
        .with_context(|| format!("failed to rotate the key of {}", t.describe()))?;
    let new_version = match outcome {
        RotationOutcome::Rotated(environment) => environment.key_version,
        RotationOutcome::Stale { reason } => {
            return Err(Failure::new(
                ExitStatus::CONFLICT,
                format!("the key of {} was not rotated: {reason}", t.describe()),
            )
            .hint("run the command again")
            .into());
        }
    };
    drop(progress);
    if let Some(m) = &manifest {
        opened.written(&target, m).await?;
    }
    Ok(Rotated {
        key_version: new_version,
        reencrypted: live.len(),
        grants: req.grants.len(),
        recipients,
    })
}
