//! How a command gets at keys: one function, [`key_source`], returns something that can unwrap
//! the account's project and environment keys.
//!
//! Order of sources:
//! 1. `KLEF_TOKEN` (an API key): only meaningful against a Klef server, refused for the local
//!    vault with a clear message;
//! 2. the agent, unless `KLEF_NO_AGENT=1` (integration point: [`KeySource`] gains an `Agent`
//!    variant that forwards unwrap requests; until then this step is skipped);
//! 3. the encryption password (`--password-stdin`, `KLEF_PASSWORD`, a terminal prompt), which
//!    opens the master key and then the private key in this process.

use anyhow::{Context as _, Result};
use klef_core::crypto::{self, Aad, CryptoError, PrivateKey, SymmetricKey};
use klef_core::env::EnvVars;
use klef_core::model::{Account, Environment, EnvironmentKeyAccess, Project};

use crate::cli::GlobalArgs;
use crate::diagnostics::Failure;
use crate::password;

/// Something that can unwrap keys wrapped to the account's public key.
pub(crate) enum KeySource {
    /// The account's private key, opened in this process with the password.
    Private(PrivateKey),
}

impl KeySource {
    /// Unwraps an HPKE envelope bound to `aad`.
    pub(crate) fn unwrap_key(
        &self,
        envelope: &[u8],
        aad: &Aad<'_>,
        what: &str,
    ) -> Result<SymmetricKey> {
        match self {
            KeySource::Private(private) => crypto::unwrap_key(private, envelope, aad, what)
                .with_context(|| format!("failed to open {what}")),
        }
    }

    /// The project key, from any environment's key access of that project.
    pub(crate) fn project_key(
        &self,
        project: &Project,
        access: &EnvironmentKeyAccess,
    ) -> Result<SymmetricKey> {
        match access {
            EnvironmentKeyAccess::ViaProject { project_key, .. } => self.unwrap_key(
                project_key.as_bytes(),
                &Aad::ProjectKey(&project.id),
                &format!("the key of project \"{}\"", project.name),
            ),
            EnvironmentKeyAccess::Direct { .. } => Err(Failure::permission(format!(
                "you have access to some environments of project \"{}\", not to the project key",
                project.name
            ))
            .hint("ask a workspace admin to do this")
            .into()),
        }
    }

    /// The environment key: project key → environment key, or directly wrapped.
    pub(crate) fn environment_key(
        &self,
        project: &Project,
        env: &Environment,
        access: &EnvironmentKeyAccess,
    ) -> Result<SymmetricKey> {
        let what = format!("the key of environment \"{}\"", env.slug);
        match access {
            EnvironmentKeyAccess::ViaProject {
                environment_key, ..
            } => {
                let project_key = self.project_key(project, access)?;
                crypto::open_key(
                    &project_key,
                    environment_key.as_bytes(),
                    &Aad::EnvironmentKey(&env.id),
                    &what,
                )
                .with_context(|| format!("failed to open {what}"))
            }
            EnvironmentKeyAccess::Direct { environment_key } => self.unwrap_key(
                environment_key.as_bytes(),
                &Aad::EnvironmentKey(&env.id),
                &what,
            ),
        }
    }
}

/// Returns an unlocked key source for `account`, asking for the password if needed.
pub(crate) fn key_source(global: &GlobalArgs, account: &Account) -> Result<KeySource> {
    if std::env::var_os(EnvVars::KLEF_TOKEN).is_some_and(|v| !v.is_empty()) {
        return Err(
            Failure::auth("KLEF_TOKEN is set, but API keys only work with a Klef server")
                .hint("unset KLEF_TOKEN to use the local vault with your encryption password")
                .into(),
        );
    }
    // Agent: not consulted yet (see the module docs); the password path below always works.
    let Some(pw) = password::current_password(global, "encryption password: ")? else {
        return Err(password::locked_error().into());
    };
    match crypto::account::unlock(&account.id, &account.keys, &pw) {
        Ok(unlocked) => Ok(KeySource::Private(unlocked.private_key)),
        Err(CryptoError::WrongPassword) => Err(CryptoError::WrongPassword.into()),
        Err(e) => Err(anyhow::Error::new(e).context("failed to unlock the vault")),
    }
}
