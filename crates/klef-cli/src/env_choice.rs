//! Which environment a command uses, decided in one place.
//!
//! Precedence, highest first: `-e SLUG`, `KLEF_ENV`, the user's own choice for the directory
//! (`klef env use SLUG`), the team default in the committed `.klef` (`klef env use SLUG
//! --save`), then a system key's only scoped environment, then `development`.
//!
//! The user's choices are kept per directory (the one holding `.klef`) in
//! `<config>/environments.json`, mode 0600, written atomically under an exclusive lock so two
//! `klef env use` at once both land. A choice only counts while that `.klef` still names the
//! project it was made for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use klef_core::env::EnvVars;
use klef_core::ids::ProjectId;
use serde::{Deserialize, Serialize};

use crate::context::FoundKlefFile;
use crate::diagnostics::Failure;
use crate::dirs::Dirs;
use crate::fsutil;

/// Where the environment in use comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `-e SLUG`.
    Flag,
    /// `KLEF_ENV`.
    EnvVar,
    /// The user's choice for this directory (`klef env use`), kept in this file.
    User(PathBuf),
    /// The team default in this `.klef`.
    KlefFile(PathBuf),
    /// A system key scoped to one environment.
    KeyScope,
    /// Nothing named one.
    Default,
}

impl Source {
    /// A stable machine name for `--json`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Self::Flag => "flag",
            Self::EnvVar => "env_var",
            Self::User(_) => "user",
            Self::KlefFile(_) => "klef_file",
            Self::KeyScope => "key_scope",
            Self::Default => "default",
        }
    }

    /// For messages: `your choice for this directory (klef env use)`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Flag => "-e".to_owned(),
            Self::EnvVar => "KLEF_ENV".to_owned(),
            Self::User(_) => "your choice for this directory (`klef env use`)".to_owned(),
            Self::KlefFile(p) => format!("the team default in {}", p.display()),
            Self::KeyScope => "the only environment the system key may use".to_owned(),
            Self::Default => "the default, as nothing names one".to_owned(),
        }
    }
}

/// The environment in use and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub(crate) slug: String,
    pub(crate) source: Source,
}

/// The environment named by `-e`/`KLEF_ENV` (`flag_or_var`, as clap merged them), the user's
/// choice for `klef`'s directory, or `klef` itself, in that order; `None` when none does.
pub(crate) fn resolve(
    dirs: &Dirs,
    flag_or_var: Option<&str>,
    klef: Option<&FoundKlefFile>,
) -> Result<Option<Choice>> {
    if let Some(slug) = flag_or_var {
        let from_var = std::env::var(EnvVars::KLEF_ENV).is_ok_and(|v| v == slug);
        return Ok(Some(Choice {
            slug: slug.to_owned(),
            source: if from_var {
                Source::EnvVar
            } else {
                Source::Flag
            },
        }));
    }
    let Some(klef) = klef else {
        return Ok(None);
    };
    if let Some(slug) = user_choice(dirs, klef)? {
        return Ok(Some(Choice {
            slug,
            source: Source::User(file(dirs)),
        }));
    }
    Ok(Some(Choice {
        slug: klef.file.environment.clone(),
        source: Source::KlefFile(klef.path.clone()),
    }))
}

/// The file holding the user's choices.
pub(crate) fn file(dirs: &Dirs) -> PathBuf {
    dirs.config.join("environments.json")
}

/// Contents of `environments.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Choices {
    /// By directory (the absolute path of the directory holding `.klef`).
    #[serde(default)]
    directories: BTreeMap<String, DirChoice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirChoice {
    project: ProjectId,
    environment: String,
}

/// The key of a `.klef`'s directory: its canonical path (symlinks resolved), so every way of
/// reaching the directory finds the same choice.
fn dir_key(klef: &FoundKlefFile) -> String {
    let dir = klef.path.parent().unwrap_or_else(|| Path::new("/"));
    let dir = fs_err::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.to_string_lossy().into_owned()
}

fn load(path: &Path) -> Result<Choices> {
    match fs_err::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Failure::other(format!("failed to parse {}: {e}", path.display()))
                .hint(format!(
                    "delete {} to forget every directory's `klef env use` choice",
                    path.display()
                ))
                .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Choices::default()),
        Err(e) => Err(e.into()),
    }
}

/// The user's choice for `klef`'s directory, if one was made for the project it names.
pub(crate) fn user_choice(dirs: &Dirs, klef: &FoundKlefFile) -> Result<Option<String>> {
    let choices = load(&file(dirs))?;
    Ok(choices
        .directories
        .get(&dir_key(klef))
        .filter(|c| c.project == klef.file.project)
        .map(|c| c.environment.clone()))
}

/// Records (`Some`) or forgets (`None`) the user's choice for `klef`'s directory.
pub(crate) fn set_user_choice(dirs: &Dirs, klef: &FoundKlefFile, slug: Option<&str>) -> Result<()> {
    let key = dir_key(klef);
    let project = klef.file.project;
    update(dirs, |choices| match slug {
        Some(slug) => {
            choices.directories.insert(
                key,
                DirChoice {
                    project,
                    environment: slug.to_owned(),
                },
            );
        }
        None => {
            choices.directories.remove(&key);
        }
    })
}

/// After an environment of `project` was renamed (`Some(new)`) or deleted (`None`): every
/// choice of it follows the new slug or is forgotten. Returns how many choices changed.
pub(crate) fn environment_changed(
    dirs: &Dirs,
    project: &ProjectId,
    old: &str,
    new: Option<&str>,
) -> Result<usize> {
    if !file(dirs).exists() {
        return Ok(0);
    }
    let mut changed = 0;
    update(dirs, |choices| {
        choices.directories.retain(|_, c| {
            if &c.project != project || c.environment != old {
                return true;
            }
            changed += 1;
            match new {
                Some(new) => {
                    new.clone_into(&mut c.environment);
                    true
                }
                None => false,
            }
        });
    })?;
    Ok(changed)
}

/// After a project was deleted: forgets every choice made for it.
pub(crate) fn project_deleted(dirs: &Dirs, project: &ProjectId) -> Result<()> {
    if !file(dirs).exists() {
        return Ok(());
    }
    update(dirs, |choices| {
        choices.directories.retain(|_, c| &c.project != project);
    })
}

/// Read, change and write the file under an exclusive lock. Choices for directories whose
/// `.klef` is gone are dropped on the way.
fn update(dirs: &Dirs, change: impl FnOnce(&mut Choices)) -> Result<()> {
    crate::dirs::create_private_dir(&dirs.config)?;
    let path = file(dirs);
    let lock_path = dirs.config.join("environments.json.lock");
    let lock = lock_file(&lock_path)?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("failed to lock {}", lock_path.display()))?;
    let mut choices = load(&path)?;
    change(&mut choices);
    choices.directories.retain(|dir, _| {
        Path::new(dir)
            .join(klef_core::klef_file::FILE_NAME)
            .exists()
    });
    let mut text = serde_json::to_string_pretty(&choices)?;
    text.push('\n');
    fsutil::write_atomic(&path, text.as_bytes(), 0o600)
    // The lock is released when `lock` is closed.
}

fn lock_file(path: &Path) -> Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path)
        .with_context(|| format!("failed to open {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use klef_core::klef_file::KlefFile;

    fn located(dir: &Path, project: &ProjectId, env: &str) -> FoundKlefFile {
        let file = KlefFile {
            version: 1,
            project: *project,
            environment: env.to_owned(),
            server: None,
            mask: None,
        };
        let path = dir.join(klef_core::klef_file::FILE_NAME);
        std::fs::write(&path, file.render()).unwrap();
        FoundKlefFile { path, file }
    }

    #[test]
    fn choices_per_directory_follow_renames_and_deletes() {
        let root = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            config: root.path().join("config"),
            data: root.path().join("data"),
        };
        let p = ProjectId::random();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let (ka, kb) = (
            located(&a, &p, "development"),
            located(&b, &p, "development"),
        );
        assert_eq!(user_choice(&dirs, &ka).unwrap(), None);
        set_user_choice(&dirs, &ka, Some("staging")).unwrap();
        set_user_choice(&dirs, &kb, Some("production")).unwrap();
        assert_eq!(user_choice(&dirs, &ka).unwrap().as_deref(), Some("staging"));
        assert_eq!(
            resolve(&dirs, None, Some(&kb)).unwrap().unwrap().source,
            Source::User(file(&dirs))
        );
        // A flag wins over the choice.
        let flag = resolve(&dirs, Some("qa"), Some(&ka)).unwrap().unwrap();
        assert_eq!(flag.slug, "qa");
        // Another project linked in the same directory does not inherit it.
        let other = located(&a, &ProjectId::random(), "development");
        assert_eq!(user_choice(&dirs, &other).unwrap(), None);
        let ka = located(&a, &p, "development");

        assert_eq!(
            environment_changed(&dirs, &p, "staging", Some("stage")).unwrap(),
            1
        );
        assert_eq!(user_choice(&dirs, &ka).unwrap().as_deref(), Some("stage"));
        assert_eq!(
            environment_changed(&dirs, &p, "production", None).unwrap(),
            1
        );
        assert_eq!(user_choice(&dirs, &kb).unwrap(), None);
        let team = resolve(&dirs, None, Some(&kb)).unwrap().unwrap();
        assert_eq!(team.slug, "development");
        assert_eq!(team.source, Source::KlefFile(kb.path.clone()));

        // A directory whose .klef is gone is dropped at the next write.
        std::fs::remove_file(&ka.path).unwrap();
        set_user_choice(&dirs, &kb, Some("staging")).unwrap();
        let raw = std::fs::read_to_string(file(&dirs)).unwrap();
        assert!(!raw.contains(&dir_key(&ka)), "{raw}");
        project_deleted(&dirs, &p).unwrap();
        assert_eq!(user_choice(&dirs, &kb).unwrap(), None);

        std::fs::write(file(&dirs), "{not json").unwrap();
        assert!(user_choice(&dirs, &kb).is_err());
    }
}
