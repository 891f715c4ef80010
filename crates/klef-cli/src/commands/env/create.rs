//! `klef env create SLUG [--name NAME]`: a new environment with a fresh random key sealed
//! under the project key (which needs the password).

use anyhow::{Context as _, Result};
use klef_core::backend::Backend;
use klef_core::crypto::{self, Aad, PublicKey, SymmetricKey};
use klef_core::ids::EnvironmentId;
use klef_core::model::{ApiKeyGrant, Environment, NewEnvironment};
use klef_core::names::{validate_display_name, validate_slug};

use klef_core::trust::roster::{PrincipalId, VerifiedRoster};

use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::secrets::now;
use crate::trust::Trust;

/// Add an environment to the project
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Short lower-case identifier, e.g. `qa` or `prod-eu`
    pub(crate) slug: String,

    /// Display name (default: the slug)
    #[arg(long)]
    pub(crate) name: Option<String>,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    validate_slug(&args.slug)?;
    let display = args.name.unwrap_or_else(|| args.slug.clone());
    validate_display_name("environment name", &display)?;
    let b = ctx.backend().await?;
    let pt = ctx.project(&b).await?;
    let envs = Context::environments(&b, &pt.project).await?;
    if envs.iter().any(|e| e.slug == args.slug) {
        return Err(Failure::other(format!(
            "environment \"{}\" already exists in project \"{}\"",
            args.slug, pt.project.name
        ))
        .into());
    }
    let Some(any_env) = envs.first() else {
        return Err(Failure::permission(format!(
            "project \"{}\" has no environment to reach its key through",
            pt.project.name
        ))
        .into());
    };
    let keys = ctx.keys(&b).await?;
    let access = b.environment_key(&any_env.id).await?;
    let project_key = keys.project_key(&pt.project, &access).await?;
    // The new key is sealed under the project key: it must be the project's own, not one the
    // server wrapped to this account (HPKE authenticates no sender). It is, if it opens an
    // existing environment's key that matches that environment's signed commitment.
    check_project_key(ctx, &b, &keys, &pt.project, any_env, &access, &project_key).await?;
    let env = Environment {
        id: EnvironmentId::random(),
        project_id: pt.project.id,
        slug: args.slug.clone(),
        name: display,
        key_version: 1,
        created_at: now(),
    };
    let env_key = SymmetricKey::generate();
    let sealed = crypto::seal_key(&project_key, &env_key, &Aad::EnvironmentKey(&env.id));
    // System keys scoped to `project:*` get the new key too, when the verified roster says so;
    // the creator signs the environment's first manifest (its key commitment).
    let (roster, manifest) = if let Some(remote) = b.as_remote() {
        let mut trust = Trust::load(ctx, remote, &keys).await?;
        let ws = b
            .workspaces()
            .await?
            .into_iter()
            .find(|w| w.id == pt.project.workspace_id);
        let roster = match ws {
            Some(ws) => trust.roster_or_adopt_if_owner(&ws).await?,
            None => None,
        };
        let manifest = roster.as_ref().map(|r| {
            crate::signed::first_record(
                &pt.project,
                &env,
                &env_key,
                (
                    &trust.signing_key(),
                    PrincipalId::Member(trust.me().account),
                ),
                Some(r.head()),
            )
        });
        if manifest.is_none() {
            ctx.printer.warn(&format!(
                    "environment \"{}\" gets no signed state: this account has not pinned its workspace's roster",
                    env.slug
                ));
        }
        trust.save().await?;
        (roster, manifest)
    } else {
        let account = ctx.account(&b).await?;
        let (derived, _) = keys.derived().await?;
        let manifest = crate::signed::first_record(
            &pt.project,
            &env,
            &env_key,
            (&derived.identity(), PrincipalId::Member(account.id)),
            None,
        );
        (None, Some(manifest))
    };
    create_environment(
        ctx,
        roster.as_ref(),
        &b,
        &NewEnvironment {
            environment: env,
            sealed_key: sealed.into(),
            manifest,
        },
        &env_key,
    )
    .await
    .with_context(|| format!("failed to create environment \"{}\"", args.slug))?;
    ctx.printer.info(&format!(
        "created environment \"{}\" in project \"{}\"",
        args.slug, pt.project.name
    ));
    Ok(ExitStatus::SUCCESS)
}

/// Creates an environment whose key is `key`, wrapped in the same request to every system key
/// scoped to all of the project's environments (`proj:*`), so those keys reach the new
/// environment end to end (the local vault has none).
async fn create_environment(
    ctx: &Context,
    roster: Option<&VerifiedRoster>,
    b: &impl Backend,
    new: &NewEnvironment,
    key: &SymmetricKey,
) -> Result<()> {
    let env = &new.environment;
    let recipients = b.environment_recipients(&env.project_id).await?;
    let mut grants = Vec::with_capacity(recipients.len());
    for k in recipients {
        let public = PublicKey::from_slice(k.public_key.as_bytes()).map_err(|e| {
            Failure::other(format!(
                "the server sent a bad public key for {}: {e}",
                k.prefix
            ))
        })?;
        let verified = crate::recipients::check_system_key(
            roster,
            &k.api_key_id,
            &k.prefix,
            &public,
            &env.project_id,
            &env.id,
        )?;
        if !verified {
            ctx.printer.warn(&format!(
                "wrapping the new key to system key {} as the server lists it: it is not in a signed roster, so its public key cannot be verified",
                k.prefix
            ));
        }
        grants.push(ApiKeyGrant {
            api_key_id: k.api_key_id,
            wrapped_key: crypto::wrap_key(&public, key, &Aad::EnvironmentKey(&env.id)).into(),
        });
    }
    b.create_environment(new, &grants).await?;
    Ok(())
}

/// Checks `project_key` (opened from `access`, served for `env`) against `env`'s signed state:
/// the environment key it opens must be the one `env`'s verified manifest commits to. A project
/// key the server made opens no such key. An environment without signed state cannot vouch for
/// it: a warning says so.
async fn check_project_key(
    ctx: &Context,
    b: &crate::backend::AnyBackend,
    keys: &crate::unlock::KeySource,
    project: &klef_core::model::Project,
    env: &Environment,
    access: &klef_core::model::EnvironmentKeyAccess,
    project_key: &SymmetricKey,
) -> Result<()> {
    let klef_core::model::EnvironmentKeyAccess::ViaProject {
        environment_key, ..
    } = access
    else {
        return Ok(());
    };
    let t = crate::context::Target {
        project: project.clone(),
        env: env.clone(),
    };
    let opened = crate::signed::open_with(
        ctx,
        b,
        &t,
        crate::signed::Purpose::Read,
        &ctx.global,
        Some(keys),
    )
    .await
    .map_err(|e| {
        e.context(Failure::other(format!(
            "the project key of project \"{}\" cannot be checked against {}'s signed state: the server may have injected a key; nothing was created",
            project.name,
            t.describe()
        )))
    })?;
    if opened.revision().is_none() {
        ctx.printer.warn(&format!(
            "the project key cannot be checked: {} has no signed state yet (`klef env seal`)",
            t.describe()
        ));
        return Ok(());
    }
    let what = format!("the key of environment \"{}\"", env.slug);
    let via_this = crypto::open_key(
        project_key,
        &klef_core::crypto::SealedKey::from(environment_key),
        &Aad::EnvironmentKey(&env.id),
        &what,
    )
    .ok();
    if !via_this
        .is_some_and(|k| klef_core::crypto::constant_time_eq(k.expose(), opened.key.expose()))
    {
        return Err(Failure::other(format!(
            "the project key the server provided for project \"{}\" is not the one its environments' signed state commits to: the server injected a key; nothing was created",
            project.name
        ))
        .hint("tell the server's operator")
        .into());
    }
    Ok(())
}
