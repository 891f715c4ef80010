//! Where the agent keeps its runtime files (socket, lock file, log), shared by the agent and
//! the CLI so both resolve the same directory.
//!
//! Resolution, first match wins (DESIGN.md §3, STYLE.md rules 20 and 21):
//! 1. `$KLEF_HOME/run` when `KLEF_HOME` is set and non-empty (tests isolate with it);
//! 2. `$XDG_RUNTIME_DIR/klef` when `XDG_RUNTIME_DIR` is absolute and non-empty;
//! 3. `<temp dir>/klef-<uid>`.
//!
//! With `KLEF_PROFILE=NAME` the leaf gets a `-NAME` suffix (`run-NAME`, `klef-NAME`,
//! `klef-<uid>-NAME`), so several independent agents can coexist for one user.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use klef_core::env::EnvVars;

/// File name of the agent's socket inside the runtime directory.
pub const SOCKET_NAME: &str = "agent.sock";
/// File name of the single-instance lock file inside the runtime directory.
pub const LOCK_NAME: &str = "agent.lock";
/// File name of the detached agent's log inside the runtime directory.
pub const LOG_NAME: &str = "agent.log";

/// Longest socket path a Unix domain socket address holds (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Errors resolving or preparing the runtime directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathsError {
    /// `KLEF_PROFILE` holds characters that cannot be part of a directory name.
    #[error(
        "invalid KLEF_PROFILE {0:?}: profile names use letters, digits, '-' and '_' (at most 64)"
    )]
    InvalidProfile(String),
    /// The socket path would not fit in a Unix socket address.
    #[error("socket path {} is too long for a unix socket ({len} bytes, at most {MAX_SOCKET_PATH})", .path.display())]
    SocketPathTooLong {
        /// The socket path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// The runtime directory could not be created or inspected.
    #[error("cannot prepare the agent's runtime directory {}", .path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The runtime directory exists but is not safe to use.
    #[error("refusing to use the agent's runtime directory {}: {reason}", .path.display())]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// Why it is refused (another owner, group/world-writable, a symlink…).
        reason: String,
    },
}

/// The agent's runtime files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPaths {
    dir: PathBuf,
}

impl AgentPaths {
    /// Resolves the runtime directory from the process environment (see the module docs).
    /// Does not touch the file system.
    pub fn from_env() -> Result<Self, PathsError> {
        Self::resolve(|name| std::env::var_os(name), std::env::temp_dir(), euid())
    }

    /// Uses `dir` as the runtime directory as is (tests, embedding).
    #[must_use]
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Resolution with every input explicit, so it is testable without touching the process
    /// environment.
    pub fn resolve(
        var: impl Fn(&str) -> Option<OsString>,
        temp_dir: PathBuf,
        uid: u32,
    ) -> Result<Self, PathsError> {
        let non_empty = |name: &str| var(name).filter(|v| !v.is_empty());
        let profile = match non_empty(EnvVars::KLEF_PROFILE) {
            Some(p) => {
                let p = p
                    .into_string()
                    .map_err(|p| PathsError::InvalidProfile(p.to_string_lossy().into_owned()))?;
                if !klef_core::names::is_valid_profile_name(&p) {
                    return Err(PathsError::InvalidProfile(p));
                }
                Some(p)
            }
            None => None,
        };
        let (parent, leaf) = if let Some(home) = non_empty(EnvVars::KLEF_HOME) {
            (PathBuf::from(home), "run".to_owned())
        } else if let Some(xdg) = non_empty("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
        {
            (xdg, "klef".to_owned())
        } else {
            (temp_dir, format!("klef-{uid}"))
        };
        let leaf = match profile {
            Some(p) => format!("{leaf}-{p}"),
            None => leaf,
        };
        Ok(Self {
            dir: parent.join(leaf),
        })
    }

    /// The runtime directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The agent's socket.
    #[must_use]
    pub fn socket(&self) -> PathBuf {
        self.dir.join(SOCKET_NAME)
    }

    /// The single-instance lock file (holds the agent's pid while it runs).
    #[must_use]
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join(LOCK_NAME)
    }

    /// The detached agent's log file.
    #[must_use]
    pub fn log_file(&self) -> PathBuf {
        self.dir.join(LOG_NAME)
    }

    /// Creates the runtime directory (0700) if needed and checks it is safe: a real directory
    /// (not a symlink), owned by this user, and not writable by group or others. Missing parents
    /// are created too. Also checks the socket path fits in a socket address.
    pub fn ensure_dir(&self) -> Result<(), PathsError> {
        let io_err = |source| PathsError::Io {
            path: self.dir.clone(),
            source,
        };
        let socket = self.socket();
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(PathsError::SocketPathTooLong { path: socket, len });
        }
        if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err)?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(e)),
        }
        let meta = fs::symlink_metadata(&self.dir).map_err(io_err)?;
        let refuse = |reason: String| PathsError::Unsafe {
            path: self.dir.clone(),
            reason,
        };
        if meta.file_type().is_symlink() {
            return Err(refuse("it is a symbolic link".into()));
        }
        if !meta.is_dir() {
            return Err(refuse("it is not a directory".into()));
        }
        if meta.uid() != euid() {
            return Err(refuse(format!(
                "it is owned by uid {}, not by us ({})",
                meta.uid(),
                euid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "it is writable by group or others (mode {:o})",
                meta.mode() & 0o7777
            )));
        }
        if meta.mode() & 0o077 != 0 {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(io_err)?;
        }
        Ok(())
    }
}

/// This process's effective uid.
#[must_use]
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> Result<AgentPaths, PathsError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        AgentPaths::resolve(
            |name| {
                vars.iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| OsString::from(v))
            },
            PathBuf::from("/tmp"),
            1000,
        )
    }

    #[test]
    fn klef_home_wins() {
        let p = resolve(&[("KLEF_HOME", "/h"), ("XDG_RUNTIME_DIR", "/run/user/1000")]).unwrap();
        assert_eq!(p.dir(), Path::new("/h/run"));
        assert_eq!(p.socket(), PathBuf::from("/h/run/agent.sock"));
        assert_eq!(p.lock_file(), PathBuf::from("/h/run/agent.lock"));
    }

    #[test]
    fn xdg_runtime_dir_must_be_absolute_and_non_empty() {
        let p = resolve(&[("XDG_RUNTIME_DIR", "/run/user/1000")]).unwrap();
        assert_eq!(p.dir(), Path::new("/run/user/1000/klef"));
        let p = resolve(&[("XDG_RUNTIME_DIR", "relative")]).unwrap();
        assert_eq!(p.dir(), Path::new("/tmp/klef-1000"));
        let p = resolve(&[("XDG_RUNTIME_DIR", ""), ("KLEF_HOME", "")]).unwrap();
        assert_eq!(p.dir(), Path::new("/tmp/klef-1000"));
    }

    #[test]
    fn profile_suffixes_the_leaf() {
        let p = resolve(&[("KLEF_HOME", "/h"), ("KLEF_PROFILE", "work")]).unwrap();
        assert_eq!(p.dir(), Path::new("/h/run-work"));
        let p = resolve(&[("KLEF_PROFILE", "t-1")]).unwrap();
        assert_eq!(p.dir(), Path::new("/tmp/klef-1000-t-1"));
    }

    #[test]
    fn bad_profiles_are_refused() {
        for bad in ["../x", ".hidden", "a/b", "sp ace", "a.b"] {
            assert!(
                matches!(
                    resolve(&[("KLEF_PROFILE", bad)]),
                    Err(PathsError::InvalidProfile(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn ensure_dir_creates_0700_and_tightens() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = AgentPaths::in_dir(tmp.path().join("a/run"));
        paths.ensure_dir().unwrap();
        let mode = fs::metadata(paths.dir()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::set_permissions(paths.dir(), fs::Permissions::from_mode(0o750)).unwrap();
        paths.ensure_dir().unwrap();
        assert_eq!(fs::metadata(paths.dir()).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn ensure_dir_refuses_world_writable_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = AgentPaths::in_dir(&dir).ensure_dir().unwrap_err();
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );

        let target = tmp.path().join("target");
        fs::create_dir(&target).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = AgentPaths::in_dir(&link).ensure_dir().unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn long_socket_paths_are_refused() {
        let paths = AgentPaths::in_dir(PathBuf::from("/").join("x".repeat(120)));
        assert!(matches!(
            paths.ensure_dir(),
            Err(PathsError::SocketPathTooLong { .. })
        ));
    }
}
