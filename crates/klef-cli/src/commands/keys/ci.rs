//! `KLEF_TOKEN`: an API key instead of a session, for CI. A system key (`klef_sys_…`) needs no
//! password and no agent: its key pair is derived from the token, and the environment keys of
//! its scopes were wrapped to it when it was made. A user key (`klef_user_…`) acts as its
//! owner; unlocking still needs the owner's encryption password.
//!
//! The token never leaves this machine: the server gets only the bearer credential derived
//! from it (`ApiToken::bearer_token`), from which nothing that decrypts or signs follows
//! (DESIGN.md §9.4). A token of the first format, whose secret was sent whole, is refused
//! here before anything is sent.
//!
//! Without a `.klef` or `-p`, a system key whose scopes name one project uses it; without
//! `-e`, one environment of that project in scope is the default.

use anyhow::{Context as _, Result};
use klef_core::crypto::token::{ApiToken, TokenError, TokenKind};
use klef_core::crypto::{self, Aad, SymmetricKey, WrappedKey};
use klef_core::env::EnvVars;
use klef_core::model::{Environment, EnvironmentKeyAccess, Project};
use klef_core::wire::{ApiKeyInfo, SecretText, routes};

use klef_core::trust::roster::VerifiedRoster;

use crate::backend::AnyBackend;
use crate::diagnostics::Failure;

/// The API key in `KLEF_TOKEN`, if set (a malformed one is an authentication error, exit 3).
pub(crate) fn token() -> Result<Option<ApiToken>> {
    let Some(raw) = std::env::var_os(EnvVars::KLEF_TOKEN).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .ok_or_else(|| Failure::auth("KLEF_TOKEN is not a klef API key: it is not valid UTF-8"))?;
    let token = ApiToken::parse(raw).map_err(|e| match e {
        TokenError::OldFormat => Failure::auth(format!("KLEF_TOKEN: {e}")),
        e => Failure::auth(format!("KLEF_TOKEN is not a klef API key: {e}"))
            .hint("API keys look like klef_sys_<id>_<secret> or klef_user_<id>_<secret> (`klef keys create`)"),
    })?;
    Ok(Some(token))
}

/// The bearer credential of `KLEF_TOKEN` to send, if set: never the token itself.
pub(crate) fn bearer() -> Result<Option<SecretText>> {
    Ok(token()?.map(|t| {
        use klef_core::secrecy::ExposeSecret as _;
        SecretText::new(t.bearer_token().expose_secret().to_owned())
    }))
}

/// `KLEF_TOKEN` when it holds a system key.
pub(crate) fn system_token() -> Result<Option<ApiToken>> {
    Ok(token()?.filter(|t| t.kind() == TokenKind::System))
}

/// The error for `KLEF_TOKEN` without a server.
pub(crate) fn needs_server() -> anyhow::Error {
    Failure::auth("KLEF_TOKEN is set, but API keys need a Klef server and klef is using the local vault")
        .hint("set KLEF_SERVER=https://… (or run where a .klef names the server), or unset KLEF_TOKEN to use the local vault")
        .into()
}

/// The error for a command that needs an account (its keys or its identity) run with a system
/// key in `KLEF_TOKEN`, which has neither.
pub(crate) fn no_account() -> anyhow::Error {
    Failure::permission(
        "KLEF_TOKEN holds a system key, which has no account: it can read and write the values in its scopes, nothing else",
    )
    .hint("run this command signed in as a person (`klef login`), or with a user key (klef_user_…) in KLEF_TOKEN")
    .into()
}

/// Opens an environment key wrapped to a system key, with the key pair derived from `token`.
pub(crate) fn open_environment_key(
    token: &ApiToken,
    env: &Environment,
    access: &EnvironmentKeyAccess,
) -> Result<SymmetricKey> {
    let EnvironmentKeyAccess::Direct { environment_key } = access else {
        return Err(Failure::other(format!(
            "the server offered the key of environment \"{}\" through a project key, which a system key cannot hold",
            env.slug
        ))
        .into());
    };
    let (private, _) = token.keypair()?;
    crypto::unwrap_key(
        &private,
        &WrappedKey::from(environment_key),
        &Aad::EnvironmentKey(&env.id),
        &format!("the key of environment \"{}\"", env.slug),
    )
    .with_context(|| {
        format!(
            "failed to open the key of environment \"{}\" with KLEF_TOKEN",
            env.slug
        )
    })
}

/// Before a system key uses anything the server serves for environment `t`: opens the CI
/// anchor sealed at the key's creation (DESIGN.md §9.4), verifies the served roster as an
/// extension of it, finds the key's own entry carrying the keys derived from the token, and
/// checks that the environment is in that entry's signed scopes and in the anchored workspace.
/// A server can then not fabricate a workspace, a key or a scope for a CI job. A key made before
/// anchors gets a warning and is used as before (`None`: nothing to check manifests against).
pub(crate) async fn verify_own_entry(
    ctx: &crate::context::Context,
    b: &AnyBackend,
    token: &ApiToken,
    t: &crate::context::Target,
) -> Result<Option<VerifiedRoster>> {
    let Some(r) = b.as_remote() else {
        return Err(needs_server());
    };
    let Some(info) = describe(b).await? else {
        return Ok(None);
    };
    let Some(sealed) = info.anchor else {
        // The caller says what this means for the environment it reads.
        let _ = ctx;
        return Ok(None);
    };
    let split = token.split();
    let anchor = split.open_anchor(&token.id(), sealed.as_bytes()).map_err(|_| {
        Failure::other(
            "the server returned a CI anchor that KLEF_TOKEN cannot open: it altered or replaced it",
        )
    })?;
    let entries = r.roster(&anchor.workspace, None).await?;
    let signed = crate::trust::to_signed(&entries).map_err(Failure::other)?;
    let roster = VerifiedRoster::verify(&anchor.roster_anchor(), &signed).map_err(|e| {
        Failure::other(format!(
            "the roster the server serves for KLEF_TOKEN's workspace is not the one the key was made in: {e}"
        ))
    })?;
    let (_, x25519) = split.x25519();
    let record = roster
        .check_own_system_key(&token.id(), &x25519, &split.signing_key().verifying_key())
        .map_err(|e| {
            Failure::auth(format!(
                "KLEF_TOKEN's key is not live in its workspace's signed roster ({e}): it was revoked, or the server substituted it"
            ))
        })?;
    if t.project.workspace_id != anchor.workspace {
        return Err(Failure::other(format!(
            "the server serves project \"{}\" from another workspace than the one KLEF_TOKEN's key was made in",
            t.project.name
        ))
        .into());
    }
    if !record.covers(&t.project.id, &t.env.id) {
        return Err(Failure::permission(format!(
            "{} is outside the scopes the workspace's admins signed for KLEF_TOKEN's key, although the server serves it",
            t.describe()
        ))
        .into());
    }
    Ok(Some(roster))
}

/// What the system key in `KLEF_TOKEN` may reach (`GET /v1/me/api-key`), if one is set.
async fn describe(b: &AnyBackend) -> Result<Option<ApiKeyInfo>> {
    if system_token()?.is_none() {
        return Ok(None);
    }
    let Some(r) = b.as_remote() else {
        return Err(needs_server());
    };
    let info: ApiKeyInfo = r
        .api()
        .get(routes::ME_API_KEY)
        .await
        .context("failed to read KLEF_TOKEN's key (its scopes and anchor)")?;
    Ok(Some(info))
}

/// The project named `name` among a system key's scopes (a system key cannot list
/// workspaces, so a name is looked up in what the key reaches).
pub(crate) async fn scoped_project_named(b: &AnyBackend, name: &str) -> Result<Option<Project>> {
    let Some(info) = describe(b).await? else {
        return Ok(None);
    };
    let Some(scope) = info.scopes.iter().find(|s| s.project_name == name) else {
        let names: Vec<&str> = info
            .scopes
            .iter()
            .map(|s| s.project_name.as_str())
            .collect();
        return Err(Failure::not_found(format!(
            "project \"{name}\" not found among KLEF_TOKEN's scopes"
        ))
        .hint(format!(
            "this key reaches: {}",
            if names.is_empty() {
                "nothing".to_owned()
            } else {
                names.join(", ")
            }
        ))
        .into());
    };
    Ok(Some(
        klef_core::backend::Backend::project(b, &scope.project_id).await?,
    ))
}

/// For a system key that does not reach environment `slug` of `project`, the error saying which
/// environments of it the key does reach and how to pick one.
pub(crate) async fn out_of_scope(
    b: &AnyBackend,
    project: &Project,
    slug: &str,
) -> Result<Option<anyhow::Error>> {
    let Some(info) = describe(b).await? else {
        return Ok(None);
    };
    let reached: Vec<&str> = info
        .scopes
        .iter()
        .filter(|s| s.project_id == project.id)
        .filter_map(|s| s.environment_slug.as_deref())
        .collect();
    if reached.is_empty() || reached.contains(&slug) {
        return Ok(None);
    }
    let hint = match reached.as_slice() {
        [only] => format!(
            "pass `-e {only}` (or set KLEF_ENV={only}): that is the environment this key reaches"
        ),
        many => format!(
            "pass -e with one of the environments this key reaches: {}",
            many.join(", ")
        ),
    };
    Ok(Some(
        Failure::permission(format!(
            "KLEF_TOKEN's key does not reach environment \"{slug}\" of project \"{}\"",
            project.name
        ))
        .hint(hint)
        .into(),
    ))
}

/// The project of a system key whose scopes name exactly one project.
pub(crate) async fn scoped_project(b: &AnyBackend) -> Result<Option<Project>> {
    let Some(info) = describe(b).await? else {
        return Ok(None);
    };
    let mut projects: Vec<_> = info.scopes.iter().map(|s| s.project_id).collect();
    projects.sort();
    projects.dedup();
    match projects.as_slice() {
        [only] => {
            use klef_core::backend::Backend as _;
            Ok(Some(b.project(only).await?))
        }
        _ => Ok(None),
    }
}

/// The environment a system key reaches in `project` when its scopes name exactly one.
pub(crate) async fn scoped_environment(
    b: &AnyBackend,
    project: &Project,
) -> Result<Option<String>> {
    let Some(info) = describe(b).await? else {
        return Ok(None);
    };
    let slugs: Vec<&str> = info
        .scopes
        .iter()
        .filter(|s| s.project_id == project.id)
        .filter_map(|s| s.environment_slug.as_deref())
        .collect();
    let wildcard = info
        .scopes
        .iter()
        .any(|s| s.project_id == project.id && s.environment_id.is_none());
    match (slugs.as_slice(), wildcard) {
        ([only], false) => Ok(Some((*only).to_owned())),
        _ => Ok(None),
    }
}
