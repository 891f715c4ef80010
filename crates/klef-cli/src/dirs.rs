//! Where Klef keeps its files (STYLE.md rules 19–21).
//!
//! * `KLEF_HOME` set: config in `$KLEF_HOME/config`, data in `$KLEF_HOME/data`;
//! * otherwise the platform's base directories via `etcetera` (XDG on Linux and macOS:
//!   `~/.config/klef`, `~/.local/share/klef`), `XDG_*` honoured only when absolute;
//! * `KLEF_CONFIG_DIR` / `KLEF_DATA_DIR` override either;
//! * `KLEF_PROFILE=NAME` namespaces every path (`…/klef-NAME`, or `$KLEF_HOME/profiles/NAME`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use etcetera::BaseStrategy as _;
use klef_core::env::EnvVars;

use crate::diagnostics::Failure;

/// The resolved directories.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    /// Configuration (`config.json`).
    pub(crate) config: PathBuf,
    /// Data (`vault.db`).
    pub(crate) data: PathBuf,
}

impl Dirs {
    /// Resolves the directories from the environment and the `--profile` value.
    pub(crate) fn resolve(profile: Option<&str>) -> Result<Self> {
        if let Some(p) = profile {
            validate_profile(p)?;
        }
        let (mut config, mut data) = if let Some(home) = env_path(EnvVars::KLEF_HOME) {
            let root = match profile {
                Some(p) => home.join("profiles").join(p),
                None => home,
            };
            (root.join("config"), root.join("data"))
        } else {
            let base = etcetera::choose_base_strategy().map_err(|_| {
                Failure::other("cannot find the home directory")
                    .hint("set KLEF_HOME to choose where klef keeps its files")
            })?;
            let app = match profile {
                Some(p) => format!("klef-{p}"),
                None => "klef".to_owned(),
            };
            (base.config_dir().join(&app), base.data_dir().join(&app))
        };
        if let Some(c) = env_path(EnvVars::KLEF_CONFIG_DIR) {
            config = c;
        }
        if let Some(d) = env_path(EnvVars::KLEF_DATA_DIR) {
            data = d;
        }
        Ok(Self { config, data })
    }

    /// The local vault file.
    pub(crate) fn vault(&self) -> PathBuf {
        self.data.join("vault.db")
    }

    /// The CLI's small state/config file.
    pub(crate) fn config_file(&self) -> PathBuf {
        self.config.join("config.json")
    }
}

/// Creates `dir` (and parents) with mode 0700, then tightens an existing one's mode too.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("failed to create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn env_path(var: &str) -> Option<PathBuf> {
    let v = std::env::var_os(var)?;
    if v.is_empty() {
        return None;
    }
    let p = PathBuf::from(v);
    if p.is_absolute() {
        Some(p)
    } else {
        std::env::current_dir().ok().map(|cwd| cwd.join(p))
    }
}

fn validate_profile(p: &str) -> Result<()> {
    if klef_core::names::is_valid_profile_name(p) {
        Ok(())
    } else {
        Err(Failure::usage(format!("invalid profile name {p:?}"))
            .hint("profile names use letters, digits, '-' and '_' (at most 64)")
            .into())
    }
}
