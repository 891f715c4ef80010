//! A new project key after a member with full access left (`klef workspace remove`). That
//! member held the old one, and every environment key is sealed under it on the server, so a
//! server colluding with them could otherwise hand them each new environment key. Every
//! environment key is re-sealed here under a new project key, wrapped only to the full-access
//! members of the verified roster (or, in a workspace without one, to the full-access members
//! the server lists, named as unverified), and the server swaps it all in in one transaction.

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::{self, Aad, PublicKey, SymmetricKey};
use klef_core::model::{Project, Workspace};
use klef_core::trust::roster::VerifiedRoster;
use klef_core::wire::{
    HolderProjectKey, MemberStatus, ResealedEnvironment, RotateProjectKeyRequest,
};

use crate::backend::AnyBackend;
use crate::context::Context;
use crate::diagnostics::Failure;
use crate::unlock::KeySource;

/// Replaces `project`'s key; answers how many holders got the new one (0: nothing to do, the
/// project has no environment to reach its key through).
pub(crate) async fn rotate(
    ctx: &Context,
    b: &AnyBackend,
    keys: &KeySource,
    roster: Option<&VerifiedRoster>,
    ws: &Workspace,
    project: &Project,
) -> Result<usize> {
    let remote = b.remote("workspace remove")?;
    let envs = b.environments(&project.id).await?;
    let Some(first) = envs.first() else {
        return Ok(0);
    };
    let access = b.environment_key(&first.id).await?;
    let old = keys.project_key(project, &access).await?;
    let new = SymmetricKey::generate();
    let mut environments = Vec::with_capacity(envs.len());
    for env in &envs {
        let (env, access) = b.environment_with_key(&env.id).await?;
        let key = keys.environment_key(project, &env, &access).await?;
        environments.push(ResealedEnvironment {
            environment_id: env.id,
            key_version: env.key_version,
            sealed_key: crypto::seal_key(&new, &key, &Aad::EnvironmentKey(&env.id)).into(),
        });
    }
    drop(old);
    let holders: Vec<(klef_core::ids::AccountId, PublicKey, String)> = if let Some(roster) = roster
    {
        roster
            .full_access_members()
            .map(|m| (m.account, m.x25519_key, m.email.clone()))
            .collect()
    } else {
        let listed: Vec<_> = remote
            .members(&ws.id)
            .await?
            .into_iter()
            .filter(|m| m.status == MemberStatus::Confirmed && m.environments.is_none())
            .filter_map(|m| {
                let key = m.public_key.as_ref()?;
                Some((
                    m.account_id?,
                    PublicKey::from_slice(key.as_bytes()).ok()?,
                    m.email,
                ))
            })
            .collect();
        ctx.printer.warn(&format!(
            "workspace \"{}\" has no signed roster, so the new key of project \"{}\" goes to the full-access members the server lists, unverified: {}",
            ws.name,
            project.name,
            listed.iter().map(|(_, _, e)| e.as_str()).collect::<Vec<_>>().join(", ")
        ));
        listed
    };
    let mut project_keys = Vec::with_capacity(holders.len());
    for (account, public, email) in &holders {
        let wrapped = crypto::try_wrap_key(public, &new, &Aad::ProjectKey(&project.id))
            .with_context(|| format!("cannot wrap the new project key to {email}"))?;
        project_keys.push(HolderProjectKey {
            account_id: *account,
            wrapped_key: wrapped.into(),
        });
    }
    remote
        .rotate_project_key(
            &project.id,
            &RotateProjectKeyRequest {
                environments,
                project_keys,
            },
        )
        .await
        .map_err(|e| {
            anyhow::Error::from(e).context(Failure::other(format!(
                "the key of project \"{}\" was not replaced",
                project.name
            )))
        })?;
    Ok(holders.len())
}
