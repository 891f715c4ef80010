//! What every command shares: global flags, the printer, directories, and the resolution of
//! "which vault, workspace, project and environment" from flags, `.klef` and config.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use klef_core::backend::{Backend as _, BackendError};
use klef_core::crypto::SymmetricKey;
use klef_core::ids::ProjectId;
use klef_core::klef_file::{self, KlefFile};
use klef_core::model::{Account, Environment, Project, SecretVersion, Workspace};

use crate::backend::AnyBackend;
use crate::cli::GlobalArgs;
use crate::config::Config;
use crate::diagnostics::Failure;
use crate::dirs::Dirs;
use crate::env_choice::{self, Choice, Source};
use crate::printer::Printer;
use crate::signed::{Opened, Purpose};
use crate::unlock::{self, KeySource, Unlock};

/// The environment used when neither `-e`, `KLEF_ENV` nor `.klef` names one.
pub(crate) const DEFAULT_ENV: &str = "development";

/// Shared state of one invocation.
pub(crate) struct Context {
    pub(crate) global: GlobalArgs,
    pub(crate) printer: Printer,
    pub(crate) dirs: Dirs,
    /// The agent connection [`Context::backend_and_agent`] opened, until a key is needed.
    early_agent: std::sync::Mutex<Option<unlock::EarlyAgent>>,
    /// The local vault this command opened, for [`Context::finish`].
    vault: std::sync::Mutex<Option<klef_store::LocalVault>>,
    /// The keys [`Context::keys_with`] unlocked, kept for the rest of the command: a command
    /// that reads several environments (references, `klef inject`) asks for the password, or
    /// reads it from `--password-stdin`, once.
    unlocked: std::sync::Mutex<Option<std::sync::Arc<KeySource>>>,
    /// For a signed-in session on a server: set once the command sent a write, and the
    /// agent's name for the account (`crate::snapshot::forget_after_writes`).
    remote_writes:
        std::sync::Mutex<Option<(std::sync::Arc<std::sync::atomic::AtomicBool>, String)>>,
    /// This account's personal overrides of each environment opened so far
    /// (`crate::personal::remember`), layered over the shared values by
    /// `crate::personal::layer`.
    pub(crate) personal: crate::personal::Remembered,
}

/// Whether a `.klef` belongs to this user (or root). One another user owns (a parent directory
/// such as `/tmp`, a shared checkout) could point klef at a server of theirs or a project of
/// their choosing, so it is skipped with a warning (once per file and process) and the search
/// goes on upwards.
#[allow(
    clippy::print_stderr,
    reason = "found before any Printer exists (a static lookup); same `warning:` form"
)]
fn owned_by_us(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() == me || meta.uid() == 0 {
        return true;
    }
    let mut warned = WARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !warned.iter().any(|p| p == path) {
        warned.push(path.to_owned());
        eprintln!(
            "warning: ignoring {}: it belongs to another user (uid {}), who could point klef at a server or project of theirs; choose explicitly with -p PROJECT (and --server URL)",
            crate::printer::sanitize(&path.display().to_string()),
            meta.uid()
        );
    }
    false
}

/// A `.klef` file found on disk.
#[derive(Debug, Clone)]
pub(crate) struct FoundKlefFile {
    pub(crate) path: PathBuf,
    pub(crate) file: KlefFile,
}

/// The project a command works on, and the `.klef` that named it (if any).
pub(crate) struct ProjectTarget {
    pub(crate) project: Project,
    pub(crate) klef: Option<FoundKlefFile>,
}

/// The project and environment a command works on.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) project: Project,
    pub(crate) env: Environment,
}

impl Target {
    /// `environment "development" of project "my-app"`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "environment \"{}\" of project \"{}\"",
            self.env.slug, self.project.name
        )
    }
}

impl Context {
    pub(crate) fn new(global: GlobalArgs, printer: Printer) -> Result<Self> {
        let dirs = Dirs::resolve(global.profile.as_deref())?;
        tracing::debug!(config = %dirs.config.display(), data = %dirs.data.display(), "directories");
        Ok(Self {
            global,
            printer,
            dirs,
            early_agent: std::sync::Mutex::new(None),
            vault: std::sync::Mutex::new(None),
            unlocked: std::sync::Mutex::new(None),
            remote_writes: std::sync::Mutex::new(None),
            personal: crate::personal::Remembered::default(),
        })
    }

    /// Ends the command, just before the process exits: folds the local vault's write-ahead
    /// log when the command (or a writer killed before it) left one, and exits without
    /// closing the vault. See `Store::release_at_exit`.
    pub(crate) async fn finish(self) {
        crate::snapshot::forget_after_writes(&self).await;
        let vault = self
            .vault
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(vault) = vault {
            vault.release_at_exit().await;
        }
    }

    /// Opens the backend: a Klef server when one is named (`--server`, `KLEF_SERVER`, `.klef`,
    /// the signed-in session; see `remote::server_for`), else the local vault.
    pub(crate) async fn backend(&self) -> Result<AnyBackend> {
        if let Some(server) = crate::remote::server_for(self)? {
            let remote = crate::remote::connect(self, &server)?;
            if let Some(account) = remote.session_account() {
                *self
                    .remote_writes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((
                    remote.api().write_flag(),
                    crate::remote::session::vault_label(remote.server(), account),
                ));
            }
            return Ok(AnyBackend::Remote(Box::new(remote)));
        }
        if crate::commands::keys::ci::token()?.is_some() {
            return Err(crate::commands::keys::ci::needs_server());
        }
        let b = AnyBackend::open_local(&self.dirs.vault()).await?;
        if let AnyBackend::Local(vault) = &b {
            *self
                .vault
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(vault.clone());
        }
        Ok(b)
    }

    /// [`Context::backend`] for a command that will decrypt: connects to the agent while the
    /// vault opens (or the server answers), two waits on other processes at the same time.
    /// The connection is used by the first [`Context::environment_key`].
    pub(crate) async fn backend_and_agent(&self) -> Result<AnyBackend> {
        if crate::commands::keys::ci::system_token()?.is_some() {
            // A system key decrypts by itself; no agent is involved.
            return self.backend().await;
        }
        let (b, early) = tokio::join!(self.backend(), unlock::connect_early(&self.global));
        *self
            .early_agent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = early;
        b
    }

    /// The account, or a "run klef init" error when the vault has none yet.
    pub(crate) async fn account(&self, b: &AnyBackend) -> Result<Account> {
        if crate::commands::keys::ci::system_token()?.is_some() {
            return Err(crate::commands::keys::ci::no_account());
        }
        b.account().await?.ok_or_else(|| {
            Failure::auth("there is no local account yet")
                .hint("run `klef init` to create your account and a first project")
                .into()
        })
    }

    /// Unlocks the account's keys (the agent, or the password asked now).
    pub(crate) async fn keys(&self, b: &AnyBackend) -> Result<std::sync::Arc<KeySource>> {
        self.keys_with(b, &self.global, Unlock::Upfront).await
    }

    /// [`Self::keys`] when they can be had without a dead end: from the agent, `KLEF_PASSWORD`,
    /// `--password-stdin` or a prompt at a terminal; `None` for a script with none of these
    /// (the caller then does without what needs them, and says so).
    pub(crate) async fn keys_if_available(&self, b: &AnyBackend) -> Result<Option<KeySource>> {
        let account = self.account(b).await?;
        unlock::key_source_if_available(&self.global, &account, b.vault_id(&account)).await
    }

    /// [`Self::keys`] with adjusted password options (see `klef run`) and a choice of when the
    /// password is asked.
    pub(crate) async fn keys_with(
        &self,
        b: &AnyBackend,
        global: &GlobalArgs,
        when: Unlock,
    ) -> Result<std::sync::Arc<KeySource>> {
        let own = std::ptr::eq(global, &raw const self.global);
        if own
            && let Some(keys) = self
                .unlocked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        {
            return Ok(keys);
        }
        let account = self.account(b).await?;
        let early = self
            .early_agent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let keys = std::sync::Arc::new(
            unlock::key_source(global, &account, b.vault_id(&account), when, early).await?,
        );
        if own {
            *self
                .unlocked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(keys.clone());
        }
        Ok(keys)
    }

    /// The agent connection [`Context::backend_and_agent`] opened, taken (give it back with
    /// [`Context::return_early_agent`] when unused).
    pub(crate) fn take_early_agent(&self) -> Option<unlock::EarlyAgent> {
        self.early_agent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Gives back an agent connection taken with [`Context::take_early_agent`].
    pub(crate) fn return_early_agent(&self, early: unlock::EarlyAgent) {
        *self
            .early_agent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(early);
    }

    /// Keys reached another way (the agent, through `crate::snapshot`), for the rest of the
    /// command.
    pub(crate) fn set_keys(&self, keys: std::sync::Arc<KeySource>) {
        *self
            .unlocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(keys);
    }

    /// The agent's name for the signed-in account, when this command sent its server a write.
    pub(crate) fn wrote_to_server(&self) -> Option<String> {
        self.remote_writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|(wrote, _)| wrote.load(std::sync::atomic::Ordering::Relaxed))
            .map(|(_, vault)| vault.clone())
    }

    /// The keys this command unlocked so far, if any.
    pub(crate) fn keys_so_far(&self) -> Option<std::sync::Arc<KeySource>> {
        self.unlocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Opens the target environment: its signed state verified, its key checked against the
    /// manifest's commitment, its values against the manifest (see `crate::signed`).
    pub(crate) async fn open_environment<'a>(
        &self,
        b: &'a AnyBackend,
        t: &Target,
        purpose: Purpose,
    ) -> Result<Opened<'a>> {
        crate::signed::open(self, b, t, purpose, &self.global).await
    }

    /// The environment's current secrets (ciphertext) and its key, for commands that decrypt
    /// all of them, both verified against the environment's signed state.
    pub(crate) async fn current_secrets_and_key(
        &self,
        b: &AnyBackend,
        t: &Target,
    ) -> Result<(Vec<SecretVersion>, SymmetricKey)> {
        let opened = self.open_environment(b, t, Purpose::Read).await?;
        Ok((opened.secrets, opened.key))
    }

    pub(crate) fn config(&self) -> Result<Config> {
        Config::load(&self.dirs.config_file())
    }

    pub(crate) fn save_config(&self, c: &Config) -> Result<()> {
        c.save(&self.dirs.config_file())
    }

    /// The current workspace: the one in config if it still exists, else the personal one.
    pub(crate) async fn current_workspace(&self, b: &AnyBackend) -> Result<Workspace> {
        let all = b.workspaces().await?;
        let config = self.config()?;
        if let Some(id) = config.workspace
            && let Some(ws) = all.iter().find(|w| w.id == id)
        {
            return Ok(ws.clone());
        }
        all.iter()
            .find(|w| w.personal)
            .or_else(|| all.first())
            .cloned()
            .ok_or_else(|| {
                Failure::auth("there is no workspace yet")
                    .hint("run `klef init` to create your account and a first project")
                    .into()
            })
    }

    /// Finds `.klef` in the current directory or the nearest parent.
    pub(crate) fn find_klef_file() -> Result<Option<FoundKlefFile>> {
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        for dir in cwd.ancestors() {
            let path = dir.join(klef_file::FILE_NAME);
            match fs_err::read(&path) {
                Ok(_) if !owned_by_us(&path) => {}
                Ok(bytes) => {
                    let file = KlefFile::parse(&bytes)
                        .with_context(|| format!("failed to read {}", path.display()))?;
                    return Ok(Some(FoundKlefFile { path, file }));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// Looks a project up by id or name (current workspace first, then every workspace).
    pub(crate) async fn find_project(&self, b: &AnyBackend, needle: &str) -> Result<Project> {
        if let Ok(id) = needle.parse::<ProjectId>() {
            return match b.project(&id).await {
                Ok(p) => Ok(p),
                Err(BackendError::NotFound { .. }) => Err(project_not_found(needle)),
                Err(e) => Err(e.into()),
            };
        }
        if let Some(p) = crate::commands::keys::ci::scoped_project_named(b, needle).await? {
            return Ok(p);
        }
        let current = self.current_workspace(b).await?;
        let mut matches: Vec<Project> = b
            .projects(&current.id)
            .await?
            .into_iter()
            .filter(|p| p.name == needle)
            .collect();
        if matches.is_empty() {
            for ws in b.workspaces().await? {
                if ws.id != current.id {
                    matches.extend(
                        b.projects(&ws.id)
                            .await?
                            .into_iter()
                            .filter(|p| p.name == needle),
                    );
                }
            }
        }
        match matches.len() {
            0 => Err(project_not_found(needle)),
            1 => Ok(matches.remove(0)),
            _ => Err(
                Failure::usage(format!("several projects are named \"{needle}\""))
                    .hint("pass the project id instead (see `klef projects list --json`)")
                    .into(),
            ),
        }
    }

    /// The project: `-p`/`KLEF_PROJECT` if given, else the nearest `.klef`.
    pub(crate) async fn project(&self, b: &AnyBackend) -> Result<ProjectTarget> {
        let klef = Self::find_klef_file()?;
        if let Some(needle) = self.global.project.as_deref() {
            let project = self.find_project(b, needle).await?;
            let klef = klef.filter(|k| k.file.project == project.id);
            return Ok(ProjectTarget { project, klef });
        }
        if klef.is_none()
            && let Some(project) = crate::commands::keys::ci::scoped_project(b).await?
        {
            return Ok(ProjectTarget {
                project,
                klef: None,
            });
        }
        let Some(located) = klef else {
            let cwd = std::env::current_dir().unwrap_or_default();
            return Err(Failure::not_found(format!(
                "no .klef file found in {} or any parent directory",
                cwd.display()
            ))
            .hint("run `klef init` to create a project here, `klef link PROJECT` to use an existing one, or pass -p PROJECT")
            .into());
        };
        if let Some(server) = &located.file.server
            && b.server() != Some(server.trim_end_matches('/'))
        {
            return Err(Failure::other(format!(
                "{} names a project on the Klef server {server}, and klef is using {}",
                located.path.display(),
                b.server().unwrap_or("the local vault")
            ))
            .hint("drop --server/KLEF_SERVER, or `klef link --force` to point this directory elsewhere")
            .into());
        }
        let project = match b.project(&located.file.project).await {
            Ok(p) => p,
            Err(BackendError::NotFound { .. } | BackendError::PermissionDenied(_))
                if let Some(server) = b.server() =>
            {
                return Err(Failure::permission(format!(
                    "no access to project {} (named in {}) on {server}: your access was removed, or the project was deleted",
                    located.file.project,
                    located.path.display()
                ))
                .hint("ask an admin of its workspace to invite you again; `klef link PROJECT` points this directory at another project")
                .into());
            }
            Err(BackendError::NotFound { .. }) => {
                return Err(Failure::not_found(format!(
                    "project {} named in {} is not in the local vault",
                    located.file.project,
                    located.path.display()
                ))
                .hint("`klef link PROJECT` points this directory at another project")
                .into());
            }
            Err(e) => return Err(e.into()),
        };
        Ok(ProjectTarget {
            project,
            klef: Some(located),
        })
    }

    /// The environments of a project, sorted by slug.
    pub(crate) async fn environments(
        b: &AnyBackend,
        project: &Project,
    ) -> Result<Vec<Environment>> {
        let mut envs = b.environments(&project.id).await?;
        envs.sort_by(|a, c| a.slug.cmp(&c.slug));
        Ok(envs)
    }

    /// Which environment this command uses and why (see `env_choice` for the precedence:
    /// `-e` > `KLEF_ENV` > the user's choice > `.klef` > a system key's scope > `development`).
    pub(crate) async fn env_choice(&self, b: &AnyBackend, pt: &ProjectTarget) -> Result<Choice> {
        if let Some(choice) =
            env_choice::resolve(&self.dirs, self.global.env.as_deref(), pt.klef.as_ref())?
        {
            return Ok(choice);
        }
        Ok(
            match crate::commands::keys::ci::scoped_environment(b, &pt.project).await? {
                Some(slug) => Choice {
                    slug,
                    source: Source::KeyScope,
                },
                None => Choice {
                    slug: DEFAULT_ENV.to_owned(),
                    source: Source::Default,
                },
            },
        )
    }

    /// The target of a command that names its environment as an optional argument
    /// (`klef env rotate-key [SLUG]`): that environment of the project, else [`Context::target`].
    pub(crate) async fn target_or_slug(
        &self,
        b: &AnyBackend,
        slug: Option<&str>,
    ) -> Result<Target> {
        let Some(slug) = slug else {
            return self.target(b).await;
        };
        let pt = self.project(b).await?;
        let envs = Self::environments(b, &pt.project).await?;
        let env = find_env(&envs, slug, &pt.project)?;
        Ok(Target {
            project: pt.project,
            env,
        })
    }

    /// The project and environment (see [`Context::env_choice`]).
    pub(crate) async fn target(&self, b: &AnyBackend) -> Result<Target> {
        // With the project's id at hand (`.klef`), its environments are asked at the same
        // time as the project (a round trip fewer to a distant server); errors are reported
        // as the project's, as when asked one after the other.
        let known = match &self.global.project {
            Some(_) => None,
            None => Self::find_klef_file()?.map(|k| k.file.project),
        };
        let (pt, early_envs) = match known {
            Some(id) => {
                let (pt, envs) = tokio::join!(self.project(b), b.environments(&id));
                let pt = pt?;
                let envs = envs.ok().filter(|_| pt.project.id == id);
                (pt, envs)
            }
            None => (self.project(b).await?, None),
        };
        let choice = self.env_choice(b, &pt).await?;
        let envs = match early_envs {
            Some(mut envs) => {
                envs.sort_by(|a, c| a.slug.cmp(&c.slug));
                envs
            }
            None => Self::environments(b, &pt.project).await?,
        };
        let env = match find_env(&envs, &choice.slug, &pt.project) {
            Ok(env) => env,
            Err(e) => {
                if let Some(e) =
                    crate::commands::keys::ci::out_of_scope(b, &pt.project, &choice.slug).await?
                {
                    return Err(e);
                }
                let e = crate::remote::explain_missing_env(b, &envs, &choice.slug, e).await;
                if matches!(choice.source, Source::User(_))
                    && crate::diagnostics::exit_status(&e)
                        == crate::diagnostics::ExitStatus::NOT_FOUND
                {
                    let names: Vec<&str> = envs.iter().map(|e| e.slug.as_str()).collect();
                    return Err(Failure::not_found(format!(
                        "environment \"{}\", your choice for this directory, is not in project \"{}\" any more",
                        choice.slug, pt.project.name
                    ))
                    .hint(format!("available environments: {}", names.join(", ")))
                    .hint("`klef env use SLUG` chooses another; `klef env use --reset` follows the team default in .klef")
                    .into());
                }
                return Err(e);
            }
        };
        Ok(Target {
            project: pt.project,
            env,
        })
    }
}

impl Context {
    /// Another environment named on the command line (`klef diff B`, `klef promote --from A`):
    /// `SLUG` in `project`, or `PROJECT/SLUG` in another project the caller can read. What the
    /// caller may not see is told apart from what does not exist, as [`Context::target`] does.
    pub(crate) async fn other_target(
        &self,
        b: &AnyBackend,
        project: &Project,
        spec: &str,
    ) -> Result<Target> {
        let (project, slug) = match spec.split_once('/') {
            Some((p, s)) if !p.is_empty() && !s.is_empty() && !s.contains('/') => {
                (self.find_project(b, p).await?, s)
            }
            Some(_) => {
                return Err(Failure::usage(format!(
                    "\"{spec}\" is not an environment: write SLUG or PROJECT/SLUG"
                ))
                .hint("`klef env list` shows the environments of this project")
                .into());
            }
            None => (project.clone(), spec),
        };
        let envs = Self::environments(b, &project).await?;
        match find_env(&envs, slug, &project) {
            Ok(env) => Ok(Target { project, env }),
            Err(e) => {
                if let Some(e) = crate::commands::keys::ci::out_of_scope(b, &project, slug).await? {
                    return Err(e);
                }
                Err(crate::remote::explain_missing_env(b, &envs, slug, e).await)
            }
        }
    }
}

/// Finds an environment by slug, or a not-found error listing the available ones.
pub(crate) fn find_env(envs: &[Environment], slug: &str, project: &Project) -> Result<Environment> {
    envs.iter()
        .find(|e| e.slug == slug)
        .cloned()
        .ok_or_else(|| {
            let names: Vec<&str> = envs.iter().map(|e| e.slug.as_str()).collect();
            Failure::not_found(format!(
                "environment \"{slug}\" not found in project \"{}\"",
                project.name
            ))
            .hint(format!("available environments: {}", names.join(", ")))
            .into()
        })
}

fn project_not_found(needle: &str) -> anyhow::Error {
    Failure::not_found(format!("project \"{needle}\" not found"))
        .hint("`klef projects list` shows the projects of the current workspace")
        .into()
}
