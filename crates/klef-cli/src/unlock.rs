//! How a command gets at keys: one function, [`key_source`], returns something that can unwrap
//! the account's project and environment keys.
//!
//! Order of sources:
//! 1. `KLEF_TOKEN` (an API key): only meaningful against a Klef server, refused for the local
//!    vault with a clear message;
//! 2. the agent, unless `KLEF_NO_AGENT=1`: when it runs and holds this vault's key, unwrap
//!    requests go to it and no password is asked; when it is missing, locked or broken, klef
//!    falls back to the password silently;
//! 3. the encryption password (`--password-stdin`, `KLEF_PASSWORD`, a terminal prompt), which
//!    opens the master key and then the private key in this process. Unless `KLEF_NO_AGENT=1`,
//!    the private key is then handed to the agent (started if needed) so later commands do not
//!    ask again; a failure there is only logged.
//!
//! The agent caches keys per vault under the account id.

use anyhow::{Context as _, Result};
use klef_core::crypto::{self, Aad, CryptoError, PrivateKey, SymmetricKey};
use klef_core::env::EnvVars;
use klef_core::model::{Account, Environment, EnvironmentKeyAccess, Project};

use klef_agent::client::{AgentClient, default_agent_bin, ensure_running};
use klef_agent::paths::AgentPaths;
use tokio::sync::Mutex;

use crate::cli::GlobalArgs;
use crate::diagnostics::Failure;
use crate::password;

/// Something that can unwrap keys wrapped to the account's public key.
pub(crate) enum KeySource {
    /// The account's private key, opened in this process with the password.
    Private(PrivateKey),
    /// The agent, which holds the private key for `vault`.
    Agent {
        /// The connection (requests need `&mut`).
        client: Mutex<AgentClient>,
        /// The agent's name for this vault (the account id).
        vault: String,
    },
}

impl KeySource {
    /// Unwraps an HPKE envelope bound to `aad`.
    pub(crate) async fn unwrap_key(
        &self,
        envelope: &[u8],
        aad: &Aad<'_>,
        what: &str,
    ) -> Result<SymmetricKey> {
        match self {
            KeySource::Private(private) => crypto::unwrap_key(private, envelope, aad, what)
                .with_context(|| format!("failed to open {what}")),
            KeySource::Agent { client, vault } => client
                .lock()
                .await
                .unwrap_key(vault, envelope, aad)
                .await
                .with_context(|| format!("the agent could not open {what}")),
        }
    }

    /// The project key, from any environment's key access of that project.
    pub(crate) async fn project_key(
        &self,
        project: &Project,
        access: &EnvironmentKeyAccess,
    ) -> Result<SymmetricKey> {
        match access {
            EnvironmentKeyAccess::ViaProject { project_key, .. } => {
                self.unwrap_key(
                    project_key.as_bytes(),
                    &Aad::ProjectKey(&project.id),
                    &format!("the key of project \"{}\"", project.name),
                )
                .await
            }
            EnvironmentKeyAccess::Direct { .. } => Err(Failure::permission(format!(
                "you have access to some environments of project \"{}\", not to the project key",
                project.name
            ))
            .hint("ask a workspace admin to do this")
            .into()),
        }
    }

    /// The environment key: project key → environment key, or directly wrapped.
    pub(crate) async fn environment_key(
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
                let project_key = self.project_key(project, access).await?;
                crypto::open_key(
                    &project_key,
                    environment_key.as_bytes(),
                    &Aad::EnvironmentKey(&env.id),
                    &what,
                )
                .with_context(|| format!("failed to open {what}"))
            }
            EnvironmentKeyAccess::Direct { environment_key } => {
                self.unwrap_key(
                    environment_key.as_bytes(),
                    &Aad::EnvironmentKey(&env.id),
                    &what,
                )
                .await
            }
        }
    }
}

/// Returns an unlocked key source for `account`, asking for the password if needed.
pub(crate) async fn key_source(global: &GlobalArgs, account: &Account) -> Result<KeySource> {
    if std::env::var_os(EnvVars::KLEF_TOKEN).is_some_and(|v| !v.is_empty()) {
        return Err(
            Failure::auth("KLEF_TOKEN is set, but API keys only work with a Klef server")
                .hint("unset KLEF_TOKEN to use the local vault with your encryption password")
                .into(),
        );
    }
    let vault = account.id.to_string();
    let use_agent = !agent_disabled();
    if use_agent && let Some(client) = unlocked_agent(&vault).await {
        return Ok(KeySource::Agent {
            client: Mutex::new(client),
            vault,
        });
    }
    let Some(pw) = password::current_password(global, "encryption password: ")? else {
        return Err(password::locked_error().into());
    };
    match crypto::account::unlock(&account.id, &account.keys, &pw) {
        Ok(unlocked) => {
            if use_agent {
                hand_to_agent(&vault, &unlocked.private_key).await;
            }
            Ok(KeySource::Private(unlocked.private_key))
        }
        Err(CryptoError::WrongPassword) => Err(CryptoError::WrongPassword.into()),
        Err(e) => Err(anyhow::Error::new(e).context("failed to unlock the vault")),
    }
}

/// `KLEF_NO_AGENT=1` (or `true`/`yes`) turns the agent off entirely.
fn agent_disabled() -> bool {
    std::env::var(EnvVars::KLEF_NO_AGENT)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// A connection to a running agent that holds `vault`'s key; `None` otherwise (never starts
/// one: an agent only becomes useful after an unlock).
async fn unlocked_agent(vault: &str) -> Option<AgentClient> {
    let paths = AgentPaths::from_env().ok()?;
    match AgentClient::connect(&paths).await {
        Ok(mut client) => match client.is_unlocked(vault).await {
            Ok(true) => Some(client),
            Ok(false) => None,
            Err(e) => {
                tracing::debug!(error = %e, "agent unusable, asking for the password");
                None
            }
        },
        Err(e) => {
            tracing::debug!(error = %e, "no agent, asking for the password");
            None
        }
    }
}

/// Caches the private key in the agent (starting it if needed); failures are only logged, the
/// command goes on with the key it already has.
async fn hand_to_agent(vault: &str, key: &PrivateKey) {
    let result = async {
        let paths = AgentPaths::from_env()?;
        let mut client = ensure_running(&paths, &default_agent_bin()).await?;
        client.unlock(vault, key).await
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "could not hand the key to the agent");
    }
}
