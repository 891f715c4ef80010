//! One agent per user and profile: the `flock`ed lock file, the socket file, and their removal
//! on a clean stop.
//!
//! Whoever holds the exclusive lock on `agent.lock` owns `agent.sock`; a socket file found
//! while holding the lock is stale (its agent died) and is replaced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use rustix::fs::FlockOperation;

use crate::paths::{AgentPaths, PathsError};

/// Errors taking ownership of the runtime directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstanceError {
    /// Another agent holds the lock.
    #[error("another klef-agent holds {}", .lock.display())]
    AlreadyRunning {
        /// The lock file.
        lock: PathBuf,
        /// The pid written in the lock file, when readable.
        pid: Option<u32>,
    },
    /// The runtime directory is unusable.
    #[error(transparent)]
    Paths(#[from] PathsError),
    /// A file operation failed.
    #[error("cannot {what} {}", .path.display())]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The running agent's claim on its runtime directory. Dropping it removes the socket and the
/// lock file, then releases the lock.
#[derive(Debug)]
pub struct Instance {
    paths: AgentPaths,
    lock: File,
    listener: Option<UnixListener>,
}

impl Instance {
    /// Prepares the runtime directory, takes the single-instance lock, replaces a stale socket
    /// and binds a fresh one (mode 0600).
    pub fn acquire(paths: &AgentPaths) -> Result<Self, InstanceError> {
        paths.ensure_dir()?;
        let lock_path = paths.lock_file();
        let io = |what, path: &PathBuf| {
            let path = path.clone();
            move |source| InstanceError::Io { what, path, source }
        };
        // The lock file may be unlinked by a stopping agent between our open and our flock;
        // retry until the locked file is the one at the path.
        let mut attempts = 0;
        let lock = loop {
            attempts += 1;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits().cast_signed())
                .open(&lock_path)
                .map_err(io("open the lock file", &lock_path))?;
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    let pid = fs::read_to_string(&lock_path)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    return Err(InstanceError::AlreadyRunning {
                        lock: lock_path,
                        pid,
                    });
                }
                Err(e) => return Err(io("lock", &lock_path)(e.into())),
            }
            let held = file.metadata().map_err(io("inspect", &lock_path))?;
            match fs::symlink_metadata(&lock_path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => break file,
                _ if attempts < 5 => {}
                Ok(_) | Err(_) => {
                    return Err(io("lock", &lock_path)(io::Error::other(
                        "the lock file keeps being replaced",
                    )));
                }
            }
        };
        let mut lock_ref = &lock;
        lock.set_len(0).map_err(io("write", &lock_path))?;
        writeln!(lock_ref, "{}", std::process::id()).map_err(io("write", &lock_path))?;

        let socket = paths.socket();
        match fs::remove_file(&socket) {
            Ok(()) => tracing::info!(socket = %socket.display(), "replaced a stale socket"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove the stale socket", &socket)(e)),
        }
        let listener = UnixListener::bind(&socket).map_err(io("bind", &socket))?;
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))
            .map_err(io("set permissions on", &socket))?;
        listener
            .set_nonblocking(true)
            .map_err(io("configure", &socket))?;
        Ok(Self {
            paths: paths.clone(),
            lock,
            listener: Some(listener),
        })
    }

    /// The bound listener, to hand to [`crate::server::serve`] (once).
    pub fn take_listener(&mut self) -> Option<UnixListener> {
        self.listener.take()
    }

    /// The paths this instance owns.
    #[must_use]
    pub fn paths(&self) -> &AgentPaths {
        &self.paths
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.listener = None;
        let _ = fs::remove_file(self.paths.socket());
        let _ = fs::remove_file(self.paths.lock_file());
        let _ = rustix::fs::flock(&self.lock, FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_instance_is_refused_and_files_go_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = AgentPaths::in_dir(tmp.path().join("run"));
        let first = Instance::acquire(&paths).unwrap();
        let mode = fs::metadata(paths.socket()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        match Instance::acquire(&paths) {
            Err(InstanceError::AlreadyRunning { pid, .. }) => {
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        drop(first);
        assert!(!paths.socket().exists());
        assert!(!paths.lock_file().exists());
        let again = Instance::acquire(&paths).unwrap();
        drop(again);
    }

    #[test]
    fn stale_socket_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = AgentPaths::in_dir(tmp.path().join("run"));
        paths.ensure_dir().unwrap();
        drop(UnixListener::bind(paths.socket()).unwrap());
        assert!(paths.socket().exists());
        let mut inst = Instance::acquire(&paths).unwrap();
        let listener = inst.take_listener().unwrap();
        let _client = std::os::unix::net::UnixStream::connect(paths.socket()).unwrap();
        assert!(listener.accept().is_ok());
    }
}
