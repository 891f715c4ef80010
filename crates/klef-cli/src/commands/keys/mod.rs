//! `klef keys …`: API keys on a Klef server. `create` prints the new key once (and only the key
//! on stdout, so `KEY=$(klef keys create …)` works); `list` shows `PREFIX TYPE LABEL EMAIL
//! PERMISSION SCOPES CREATED`; `put` replaces a system key's scopes and permission; `revoke`
//! ends a key at once. A short prefix (`klef_sys_3f9a`) names a key.
//!
//! A system key decrypts end to end: `create` and `put` unlock your keys (agent or password),
//! open the environment keys its scopes cover and wrap them to the key's public key, derived
//! from its secret. `ci` is how `KLEF_TOKEN` is used by every other command.

pub(crate) mod ci;
mod create;
mod list;
mod put;
pub(crate) mod revoke;
pub(crate) mod roster;

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::token::{ApiToken, TokenError};
use klef_core::crypto::{self, Aad, PublicKey};
use klef_core::model::{Environment, Project};
use klef_core::names::validate_slug;
use klef_core::wire::{ApiKeyInfo, ApiKeyList, ApiKeyScope, WrappedEnvironmentKey, routes};

use crate::backend::AnyBackend;
use crate::context::Context;
use crate::diagnostics::{ExitStatus, Failure};
use crate::remote::RemoteBackend;
use crate::unlock::KeySource;

/// Manage API keys (server mode)
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub(crate) enum Command {
    /// Create a user key (acts as you) or a scoped system key (CI); prints it once
    Create(create::Args),
    /// List API keys: PREFIX TYPE LABEL EMAIL PERMISSION SCOPES CREATED
    List(list::Args),
    /// Replace all scopes and the permission of a system key
    Put(put::Args),
    /// Revoke a key: its next request fails
    Revoke(revoke::Args),
}

pub(crate) async fn run(cmd: Command, ctx: &Context) -> Result<ExitStatus> {
    match cmd {
        Command::Create(args) => create::run(args, ctx).await,
        Command::List(args) => list::run(&args, ctx).await,
        Command::Put(args) => put::run(args, ctx).await,
        Command::Revoke(args) => revoke::run(&args, ctx).await,
    }
}

/// The server client, or the "API keys need a server" error.
fn remote<'a>(b: &'a AnyBackend, command: &str) -> Result<&'a RemoteBackend> {
    b.as_remote().ok_or_else(|| {
        Failure::usage(format!(
            "API keys need a server: `klef keys {command}` does not work on the local vault"
        ))
        .hint("sign in with `klef login --server URL` (or `klef signup`) first")
        .into()
    })
}

/// A `--scope` as typed: `PROJECT:ENV` or `PROJECT:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScopeArg {
    /// The project's name or id.
    pub(crate) project: String,
    /// The environment slug; `None` for `*`.
    pub(crate) env: Option<String>,
}

const SCOPE_HINT: &str = "a scope is PROJECT:ENV or PROJECT:* — quote it (--scope 'my-api:*') so the shell does not expand the *";

/// Parses `PROJECT:ENV` / `PROJECT:*` (a usage error, exit 2, otherwise).
pub(crate) fn parse_scope(raw: &str) -> Result<ScopeArg> {
    let bad = |why: &str| -> anyhow::Error {
        Failure::usage(format!("invalid scope {raw:?}: {why}"))
            .hint(SCOPE_HINT)
            .into()
    };
    let mut parts = raw.split(':');
    let (Some(project), Some(env), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(if raw.contains(':') {
            "it has more than one ':'"
        } else {
            "it has no ':' between project and environment"
        }));
    };
    let project = project.trim();
    let env = env.trim();
    if project.is_empty() {
        return Err(bad("the project is missing"));
    }
    if env.is_empty() {
        return Err(bad("the environment is missing"));
    }
    if env == "*" {
        return Ok(ScopeArg {
            project: project.to_owned(),
            env: None,
        });
    }
    validate_slug(env).map_err(|e| bad(&e.to_string()))?;
    Ok(ScopeArg {
        project: project.to_owned(),
        env: Some(env.to_owned()),
    })
}

/// The scopes resolved against the server: each project, and the environments covered.
pub(crate) struct Resolved {
    /// The wire scopes.
    pub(crate) scopes: Vec<ApiKeyScope>,
    /// Every covered environment with its project.
    pub(crate) covered: Vec<(Project, Environment)>,
    /// The workspaces of the scoped projects (whose rosters record the key).
    pub(crate) workspaces: Vec<klef_core::ids::WorkspaceId>,
}

/// Finds the projects and environments the scopes name (not found: exit 5).
pub(crate) async fn resolve(ctx: &Context, b: &AnyBackend, args: &[ScopeArg]) -> Result<Resolved> {
    let mut scopes = Vec::new();
    let mut covered: Vec<(Project, Environment)> = Vec::new();
    let mut workspaces = Vec::new();
    for a in args {
        let project = ctx.find_project(b, &a.project).await?;
        if !workspaces.contains(&project.workspace_id) {
            workspaces.push(project.workspace_id);
        }
        let envs = Context::environments(b, &project).await?;
        match &a.env {
            None => {
                scopes.push(ApiKeyScope {
                    project_id: project.id,
                    environment_id: None,
                });
                for e in envs {
                    if !covered.iter().any(|(_, c)| c.id == e.id) {
                        covered.push((project.clone(), e));
                    }
                }
            }
            Some(slug) => {
                let env = crate::context::find_env(&envs, slug, &project)?;
                scopes.push(ApiKeyScope {
                    project_id: project.id,
                    environment_id: Some(env.id),
                });
                if !covered.iter().any(|(_, c)| c.id == env.id) {
                    covered.push((project.clone(), env));
                }
            }
        }
    }
    Ok(Resolved {
        scopes,
        covered,
        workspaces,
    })
}

/// Opens each covered environment key with your keys (agent or password) and wraps it to
/// `public`.
pub(crate) async fn wrap_covered(
    b: &AnyBackend,
    keys: &KeySource,
    covered: &[(Project, Environment)],
    public: &PublicKey,
) -> Result<Vec<WrappedEnvironmentKey>> {
    let mut out = Vec::with_capacity(covered.len());
    for (project, env) in covered {
        let access = b.environment_key(&env.id).await?;
        let key = keys.environment_key(project, env, &access).await?;
        out.push(WrappedEnvironmentKey {
            environment_id: env.id,
            key_version: env.key_version,
            wrapped_key: crypto::wrap_key(public, &key, &Aad::EnvironmentKey(&env.id)).into(),
        });
    }
    Ok(out)
}

/// The listed keys (`GET /v1/api-keys`).
pub(crate) async fn list_keys(r: &RemoteBackend) -> Result<Vec<ApiKeyInfo>> {
    let list: ApiKeyList = r
        .api()
        .get(routes::API_KEYS)
        .await
        .context("failed to list API keys")?;
    Ok(list.keys)
}

/// The one key `needle` names: a prefix of its `klef_<kind>_<id>` (a whole key works too).
pub(crate) async fn find_key(r: &RemoteBackend, needle: &str) -> Result<ApiKeyInfo> {
    let needle = needle.trim();
    let wanted = match ApiToken::parse(needle) {
        Ok(token) => token.prefix(),
        // A whole key of the first format (to revoke it): its prefix, never its secret.
        Err(TokenError::OldFormat) => needle[..needle.rfind('_').unwrap_or(0)].to_owned(),
        Err(_) => needle.to_ascii_lowercase(),
    };
    if !wanted.starts_with("klef_user_") && !wanted.starts_with("klef_sys_") {
        return Err(Failure::usage(format!(
            "{wanted:?} is not an API key prefix: expected klef_user_… or klef_sys_…"
        ))
        .hint("`klef keys list` shows the prefixes")
        .into());
    }
    let keys = list_keys(r).await?;
    let mut matches: Vec<ApiKeyInfo> = keys
        .into_iter()
        .filter(|k| k.prefix.starts_with(&wanted))
        .collect();
    match matches.len() {
        0 => Err(Failure::not_found(format!("no API key matches {wanted}"))
            .hint("`klef keys list` shows the keys you can manage")
            .into()),
        1 => Ok(matches.remove(0)),
        n => {
            let names: Vec<&str> = matches.iter().map(|k| k.prefix.as_str()).collect();
            Err(
                Failure::usage(format!("{wanted} matches {n} keys: {}", names.join(", ")))
                    .hint("type more of the prefix")
                    .into(),
            )
        }
    }
}

/// How `klef keys list` shows a prefix: the kind and the first 8 symbols of the id.
pub(crate) fn short_prefix(prefix: &str) -> String {
    let cut = prefix
        .match_indices('_')
        .nth(1)
        .map_or(prefix.len(), |(i, _)| i + 1);
    prefix.chars().take(cut + 8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_or_explain() {
        assert_eq!(
            parse_scope("api:production").unwrap(),
            ScopeArg {
                project: "api".into(),
                env: Some("production".into())
            }
        );
        assert_eq!(parse_scope("api:*").unwrap().env, None);
        for (bad, why) in [
            ("api", "no ':'"),
            (":production", "project is missing"),
            ("api:", "environment is missing"),
            ("api:prod:x", "more than one"),
            ("README.md", "no ':'"),
            ("api:notes.txt", "invalid scope"),
        ] {
            let err = parse_scope(bad).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(why), "{bad}: {text}");
            assert_eq!(
                crate::diagnostics::exit_status(&err),
                ExitStatus::USAGE,
                "{bad}"
            );
        }
    }

    #[test]
    fn short_prefixes() {
        assert_eq!(
            short_prefix("klef_sys_abcdefghjkmnpqrstvwxyz0123"),
            "klef_sys_abcdefgh"
        );
        assert_eq!(short_prefix("klef_user_0123456789"), "klef_user_01234567");
    }
}
