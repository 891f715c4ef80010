//! References between values (`${KEY}`, `${staging.KEY}`, `${project/env.KEY}`), resolved after
//! decryption with `klef_core::refs`. Another environment is read exactly as any command reads
//! its own: the project and environment looked up as `Context::target` does, then
//! `Context::current_secrets_and_key` and `secrets::decrypt_all`, so every check made there (key
//! scopes, signatures) holds for what a reference reads too. Each environment is read at most
//! once per command; one the caller may not read ends the chain with "(no access)" and nothing
//! of it is shown.

use anyhow::Result;
use klef_core::dotenv::Entry;
use klef_core::refs::{EnvAddr, Outcome, RefError, Reference, Resolver, Unreadable};
use zeroize::Zeroizing;

use crate::backend::AnyBackend;
use crate::context::{Context, Target};
use crate::diagnostics::{ExitStatus, Failure, exit_status};
use crate::secrets;

/// The resolver of one command, over the environment `t` whose values it was given.
pub(crate) struct References<'a> {
    ctx: &'a Context,
    b: &'a AnyBackend,
    t: &'a Target,
    resolver: Resolver,
}

impl<'a> References<'a> {
    pub(crate) fn new(
        ctx: &'a Context,
        b: &'a AnyBackend,
        t: &'a Target,
        entries: &[Entry],
    ) -> Self {
        Self {
            ctx,
            b,
            t,
            resolver: Resolver::new(&t.project.name, &t.env.slug, entries),
        }
    }

    /// Every value of `entries` (the environment's) with its references resolved.
    pub(crate) async fn all(&mut self, entries: &[Entry]) -> Result<Vec<Entry>> {
        loop {
            match self
                .resolver
                .resolve_all(entries)
                .map_err(|e| failure(&e))?
            {
                Outcome::Done(out) => return Ok(out),
                Outcome::Need(addr) => self.load(addr).await?,
            }
        }
    }

    /// One key of the environment, resolved.
    pub(crate) async fn key(&mut self, key: &str) -> Result<Zeroizing<String>> {
        loop {
            match self.resolver.resolve_key(key).map_err(|e| failure(&e))? {
                Outcome::Done(v) => return Ok(v),
                Outcome::Need(addr) => self.load(addr).await?,
            }
        }
    }

    /// A reference relative to the environment (a template's placeholder), resolved; the
    /// [`RefError`] is returned as is so the caller can gather unknown names.
    pub(crate) async fn reference(
        &mut self,
        r: &Reference,
    ) -> Result<std::result::Result<Zeroizing<String>, RefError>> {
        loop {
            match self.resolver.resolve_reference(r) {
                Err(e) => return Ok(Err(e)),
                Ok(Outcome::Done(v)) => return Ok(Ok(v)),
                Ok(Outcome::Need(addr)) => self.load(addr).await?,
            }
        }
    }

    /// Reads the environment `addr` and hands it to the resolver; what the caller may not read
    /// (or what does not exist) is handed over as such, any other failure ends the command.
    async fn load(&mut self, addr: EnvAddr) -> Result<()> {
        tracing::debug!(project = ?addr.project, env = %addr.env, "reading a referenced environment");
        let loaded = load(self.ctx, self.b, self.t, &addr).await?;
        self.resolver.provide(addr, loaded);
        Ok(())
    }
}

/// Whether a failure means the caller may not read what was asked for (permission denied, or
/// a key that is not there for them), rather than a failure of the command (the network, a
/// wrong password, tampering), which ends it.
fn out_of_reach(e: &anyhow::Error) -> bool {
    matches!(
        exit_status(e),
        ExitStatus::PERMISSION | ExitStatus::NOT_FOUND
    )
}

/// The values of the environment `addr` (relative to `t`), read as any command reads its own,
/// or why the caller cannot have them.
async fn load(
    ctx: &Context,
    b: &AnyBackend,
    t: &Target,
    addr: &EnvAddr,
) -> Result<std::result::Result<Vec<Entry>, Unreadable>> {
    let project = match &addr.project {
        None => t.project.clone(),
        Some(name) => match ctx.find_project(b, name).await {
            Ok(p) => p,
            Err(e) if exit_status(&e) == ExitStatus::NOT_FOUND => {
                return Ok(Err(Unreadable::ProjectNotFound));
            }
            Err(e) if out_of_reach(&e) => return Ok(Err(Unreadable::NoAccess)),
            Err(e) => return Err(e),
        },
    };
    let envs = match Context::environments(b, &project).await {
        Ok(envs) => envs,
        Err(e) if out_of_reach(&e) => return Ok(Err(Unreadable::NoAccess)),
        Err(e) => return Err(e),
    };
    let Some(env) = envs.iter().find(|e| e.slug == addr.env).cloned() else {
        // What the server hides from this caller is told apart as `Context::target` does: a
        // system key out of its scopes, a member restricted to other environments.
        if crate::commands::keys::ci::out_of_scope(b, &project, &addr.env)
            .await?
            .is_some()
        {
            return Ok(Err(Unreadable::NoAccess));
        }
        let missing = crate::context::find_env(&envs, &addr.env, &project)
            .err()
            .unwrap_or_else(|| Failure::not_found("environment not found").into());
        let e = crate::remote::explain_missing_env(b, &envs, &addr.env, missing).await;
        return Ok(Err(if exit_status(&e) == ExitStatus::PERMISSION {
            Unreadable::NoAccess
        } else {
            Unreadable::EnvironmentNotFound
        }));
    };
    let target = Target { project, env };
    let (current, key) = match ctx.current_secrets_and_key(b, &target).await {
        Ok(read) => read,
        Err(e) if out_of_reach(&e) => return Ok(Err(Unreadable::NoAccess)),
        Err(e) => return Err(e),
    };
    let entries = secrets::decrypt_all(&key, &target, &current)?;
    Ok(Ok(crate::personal::layer_referenced(ctx, &target, entries)))
}

/// The one-line error for a reference that cannot be resolved: the chain, never a value.
pub(crate) fn failure(e: &RefError) -> anyhow::Error {
    let (status, hint) = match e {
        RefError::NotFound { .. } => (
            ExitStatus::NOT_FOUND,
            "set the missing key, or store the text as it is with `$${` for a literal `${`",
        ),
        RefError::Unreadable {
            reason: Unreadable::NoAccess,
            ..
        } => (
            ExitStatus::PERMISSION,
            "ask an admin for access to that environment; `--raw` uses the stored text without resolving",
        ),
        RefError::Unreadable { .. } => (
            ExitStatus::NOT_FOUND,
            "check the project and environment names (`klef projects list`, `klef env list`)",
        ),
        RefError::Cycle { .. } => (
            ExitStatus::FAILURE,
            "change one of these values so that the chain ends (`klef set KEY`)",
        ),
        RefError::Syntax { .. } => (
            ExitStatus::FAILURE,
            "references are ${KEY}, ${env.KEY} or ${project/env.KEY}; write $${ for a literal ${, or pass --raw",
        ),
        _ => (
            ExitStatus::FAILURE,
            "references may not nest deeper than 32 or grow a value beyond 1 MiB; `--raw` uses the stored text",
        ),
    };
    Failure::new(status, e.to_string()).hint(hint).into()
}
