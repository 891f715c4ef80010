//! `klef init [NAME]`: creates the local account on first use, then a project with the
//! `development`, `staging` and `production` environments, and writes `.klef` here.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::{self, Aad, PublicKey, SymmetricKey};
use klef_core::env::EnvVars;
use klef_core::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::klef_file::{self, KlefFile};
use klef_core::model::{Account, Environment, NewEnvironment, NewProject, Project, Workspace};
use klef_core::names::validate_display_name;
use klef_core::trust::roster::PrincipalId;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::backend::AnyBackend;
use crate::config::Config;
use crate::context::{Context, DEFAULT_ENV};
use crate::diagnostics::{ExitStatus, Failure};
use crate::fsutil;
use crate::password;
use crate::secrets::now;
use crate::trust::Trust;

/// The environments every new project starts with: (slug, display name).
const INITIAL_ENVS: &[(&str, &str)] = &[
    ("development", "Development"),
    ("staging", "Staging"),
    ("production", "Production"),
];

/// Create a project here, with development, staging and production environments
///
/// On first use this also creates your local account: you choose an encryption password
/// (asked twice) and get a recovery code, shown once.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The project name (default: the current directory's name)
    pub(crate) name: Option<String>,

    /// Also write the recovery code to FILE (mode 0600; never overwrites)
    #[arg(long, value_name = "FILE")]
    pub(crate) recovery_file: Option<PathBuf>,

    /// Replace an existing `.klef` in this directory
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) async fn run(args: Args, ctx: &Context) -> Result<ExitStatus> {
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    let klef_path = cwd.join(klef_file::FILE_NAME);
    if klef_path.exists() && !args.force {
        return Err(Failure::other(format!("{} already exists", klef_path.display()))
            .hint("pass --force to replace it, or `klef link PROJECT` to point it at another project")
            .into());
    }
    let name = match args.name {
        Some(n) => n,
        None => cwd
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                Failure::usage("cannot derive a project name from this directory")
                    .hint("pass a NAME")
            })?,
    };
    validate_display_name("project name", &name)?;
    let default_env = ctx
        .global
        .env
        .clone()
        .unwrap_or_else(|| DEFAULT_ENV.to_owned());
    if !INITIAL_ENVS.iter().any(|(s, _)| *s == default_env) {
        let slugs: Vec<&str> = INITIAL_ENVS.iter().map(|(s, _)| *s).collect();
        return Err(Failure::not_found(format!(
            "environment \"{default_env}\" is not created by klef init"
        ))
        .hint(format!(
            "choose one of {}; `klef env create` adds more later",
            slugs.join(", ")
        ))
        .into());
    }
    if let Some(f) = &args.recovery_file
        && f.exists()
    {
        return Err(Failure::other(format!("{} already exists", f.display()))
            .hint("choose a new file for the recovery code; klef never overwrites one")
            .into());
    }

    let b = ctx.backend().await?;
    let account = match b.account().await? {
        Some(a) => {
            if args.recovery_file.is_some() {
                return Err(Failure::usage("the local account already exists")
                    .hint("its recovery code was shown once when it was created; --recovery-file only applies then")
                    .into());
            }
            a
        }
        None => create_account(ctx, &b, args.recovery_file.as_deref()).await?,
    };

    let ws = ctx.current_workspace(&b).await?;
    if b.projects(&ws.id).await?.iter().any(|p| p.name == name) {
        return Err(Failure::other(format!(
            "project \"{name}\" already exists in workspace \"{}\"",
            ws.name
        ))
        .hint(format!(
            "run `klef link {name}` to use it here, or choose another NAME"
        ))
        .into());
    }

    let public = PublicKey::from_slice(account.keys.public_key.as_bytes())
        .context("the account's public key is malformed")?;
    let project = Project {
        id: ProjectId::random(),
        workspace_id: ws.id,
        name: name.clone(),
        created_at: now(),
    };
    let project_key = SymmetricKey::generate();
    let wrapped = crypto::wrap_key(&public, &project_key, &Aad::ProjectKey(&project.id));
    // On a server, the creator signs each environment's first manifest (its key commitment)
    // now, while it alone knows the keys: a key the server made later would not match it. The
    // local vault's owner seals them on first use instead (no second unlock for a new user).
    let signer = match b.as_remote() {
        Some(remote) => {
            let keys = ctx.keys(&b).await?;
            let mut trust = Trust::load(ctx, remote, &keys).await?;
            let roster = trust.roster_or_adopt_if_owner(&ws).await?;
            let signer = roster.map(|r| {
                (
                    trust.signing_key(),
                    PrincipalId::Member(trust.me().account),
                    r.head(),
                )
            });
            trust.save().await?;
            signer
        }
        None => None,
    };
    let environments = INITIAL_ENVS
        .iter()
        .map(|(slug, display)| {
            let env = Environment {
                id: EnvironmentId::random(),
                project_id: project.id,
                slug: (*slug).to_owned(),
                name: (*display).to_owned(),
                key_version: 1,
                created_at: now(),
            };
            let env_key = SymmetricKey::generate();
            let sealed = crypto::seal_key(&project_key, &env_key, &Aad::EnvironmentKey(&env.id));
            let manifest = signer.as_ref().map(|(key, principal, head)| {
                crate::signed::first_record(
                    &project,
                    &env,
                    &env_key,
                    (key, *principal),
                    Some(*head),
                )
            });
            NewEnvironment {
                environment: env,
                sealed_key: sealed.into(),
                manifest,
            }
        })
        .collect::<Vec<_>>();
    let new = NewProject {
        project: project.clone(),
        project_key: wrapped.into(),
        environments,
    };
    b.create_project(&new)
        .await
        .with_context(|| format!("failed to create project \"{name}\""))?;

    let file = KlefFile::new(
        project.id,
        default_env.clone(),
        b.server().map(str::to_owned),
    );
    fsutil::write_atomic(&klef_path, file.render().as_bytes(), 0o644)?;

    let slugs: Vec<&str> = INITIAL_ENVS.iter().map(|(s, _)| *s).collect();
    if ctx.global.json {
        ctx.printer.json(&json!({
            "project": { "id": project.id, "name": project.name, "workspace_id": project.workspace_id },
            "environments": slugs,
            "default_environment": default_env,
            "klef_file": klef_path,
        }))?;
    }
    ctx.printer.info(&format!(
        "created project \"{name}\" with environments {} in workspace \"{}\"",
        slugs.join(", "),
        ws.name
    ));
    ctx.printer.info(&format!(
        "wrote {} (default environment: {default_env}); commit it",
        klef_path.display()
    ));
    Ok(ExitStatus::SUCCESS)
}

/// Creates the local account and its personal workspace; shows the recovery code once.
async fn create_account(
    ctx: &Context,
    b: &AnyBackend,
    recovery_file: Option<&std::path::Path>,
) -> Result<Account> {
    ctx.printer.info(
        "creating your local vault; choose an encryption password (it never leaves this machine)",
    );
    let pw = password::new_password(&ctx.global, EnvVars::KLEF_PASSWORD)?;
    if pw.expose_secret().chars().count() < 12 {
        ctx.printer
            .warn("this password is short; everything in the vault is as strong as it is");
    }
    let id = AccountId::random();
    let (keys, code, unlocked) =
        crypto::account::create(&id, &pw).context("failed to create the account keys")?;
    let display = code.display();
    if let Some(path) = recovery_file {
        let mut text = zeroize::Zeroizing::new(String::from("klef recovery code\n"));
        text.push_str(display.expose_secret());
        text.push('\n');
        fsutil::write_new(path, text.as_bytes(), 0o600)?;
    }
    let secrets = crate::unlock::AccountSecrets::of(&id, unlocked);
    let account = Account {
        id,
        email: None,
        keys,
        identity_key: Some(identity_blob(&secrets)),
        created_at: now(),
    };
    let personal = Workspace {
        id: WorkspaceId::random(),
        name: "Personal".into(),
        personal: true,
        created_at: now(),
    };
    b.create_account(&account, &personal)
        .await
        .context("failed to create the local account")?;
    ctx.save_config(&Config {
        workspace: Some(personal.id),
    })?;

    ctx.printer
        .recovery_code(display.expose_secret(), recovery_file);
    // The password was just typed: unlock the session now, as `klef unlock` would.
    crate::unlock::remember_in_agent(&ctx.global, &b.vault_id(&account), &secrets).await;
    Ok(account)
}

/// The identity public key of freshly unlocked account secrets, as stored with the account.
pub(crate) fn identity_blob(secrets: &crate::unlock::AccountSecrets) -> klef_core::model::Blob {
    klef_core::model::Blob(
        secrets
            .derived
            .identity()
            .verifying_key()
            .to_bytes()
            .to_vec(),
    )
}
