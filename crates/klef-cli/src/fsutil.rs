//! Atomic file writes: a temporary file in the target's directory, written, fsynced, given its
//! final mode, then renamed over the target, and the directory fsynced. A reader sees the old
//! file or the new one, never half of one.
//!
//! On Linux the temporary file is first unnamed (`O_TMPFILE`): it is written and fsynced with
//! no name in the directory, then linked to a temporary name and renamed over the target at
//! once, so a process killed at any point leaves no temporary file behind except in the two
//! system calls between the link and the rename (instead of for the whole write and fsync).
//! Where `O_TMPFILE` is not supported (some file systems, other systems) a named temporary file
//! is written as before.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

/// Writes `bytes` to `path` atomically with the given Unix mode (0600 for anything holding
/// secrets or state).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::env::current_dir().context("failed to read the current directory")?,
    };
    #[cfg(target_os = "linux")]
    if let Some(done) = unnamed::write(&dir, path, bytes, mode) {
        return done;
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(&dir)
        .with_context(|| format!("failed to create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("failed to write {}", tmp.path().display()))?;
    set_mode(tmp.as_file(), mode)
        .with_context(|| format!("failed to set the mode of {}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("failed to write {}", path.display()))?;
    sync_dir(&dir);
    Ok(())
}

/// The prefix of every temporary file name.
const TMP_PREFIX: &str = ".klef-tmp-";

/// Makes a rename in `dir` durable; failure here leaves a correct file, so it is not an error.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// [`write_atomic`] through an unnamed temporary file (`O_TMPFILE`).
#[cfg(target_os = "linux")]
mod unnamed {
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    use std::path::Path;

    use anyhow::{Context as _, Result};
    use rustix::fs::{AtFlags, CWD, Mode, OFlags};
    use rustix::io::Errno;

    /// Writes `bytes` to `path` through an unnamed file in `dir`; `None` when this file system
    /// or kernel has no `O_TMPFILE` (the caller then uses a named temporary file).
    pub(super) fn write(dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> Option<Result<()>> {
        let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(dir, flags, Mode::from_bits_truncate(mode)) {
            Ok(fd) => fd,
            // Not supported by the kernel (EISDIR, EINVAL) or the file system (EOPNOTSUPP).
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => return None,
            Err(e) => {
                return Some(Err(std::io::Error::from(e)).with_context(|| {
                    format!("failed to create a temporary file in {}", dir.display())
                }));
            }
        };
        let mut file = std::fs::File::from(fd);
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| super::set_mode(&file, mode))
            .with_context(|| format!("failed to write a temporary file in {}", dir.display()));
        if let Err(e) = written {
            return Some(Err(e));
        }
        // Named only now, and only until the rename right after.
        let named = match link(&file, dir) {
            Ok(named) => named,
            // No /proc to link through: write a named file instead.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                return Some(Err(e).with_context(|| {
                    format!("failed to create a temporary file in {}", dir.display())
                }));
            }
        };
        if let Err(e) = std::fs::rename(&named, path) {
            let _ = std::fs::remove_file(&named);
            return Some(Err(e).with_context(|| format!("failed to write {}", path.display())));
        }
        super::sync_dir(dir);
        Some(Ok(()))
    }

    /// Links the unnamed `file` into `dir` under a fresh temporary name, returned. Through
    /// `/proc/self/fd` (`AT_EMPTY_PATH` would need `CAP_DAC_READ_SEARCH`).
    fn link(file: &std::fs::File, dir: &Path) -> std::io::Result<std::path::PathBuf> {
        let source = format!("/proc/self/fd/{}", file.as_raw_fd());
        let mut attempt = 0u32;
        loop {
            let name = dir.join(format!(
                "{}{}-{}",
                super::TMP_PREFIX,
                std::process::id(),
                unique(attempt)
            ));
            match rustix::fs::linkat(CWD, &source, CWD, &name, AtFlags::SYMLINK_FOLLOW) {
                Ok(()) => return Ok(name),
                Err(Errno::EXIST) if attempt < 16 => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A name suffix that differs between calls (the clock's nanoseconds and the attempt).
    fn unique(attempt: u32) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("{nanos:09}{attempt}")
    }
}

/// Creates `path` with `bytes` and the given mode, failing if it already exists. Not atomic
/// with respect to content, but never overwrites anything (`O_EXCL`).
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(mode);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("failed to write {}", path.display()))?;
    set_mode(&f, mode).with_context(|| format!("failed to set the mode of {}", path.display()))?;
    Ok(())
}

#[cfg(unix)]
fn set_mode(f: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_f: &std::fs::File, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".env");
        write_atomic(&p, b"A=1\n", 0o600).unwrap();
        write_atomic(&p, b"A=2\n", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"A=2\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn write_new_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("code.txt");
        write_new(&p, b"one", 0o600).unwrap();
        assert!(write_new(&p, b"two", 0o600).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
    }
}
