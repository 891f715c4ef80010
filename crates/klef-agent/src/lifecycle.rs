//! Another agent process, seen from outside: is it alive, who holds the single-instance lock,
//! stop it. Used by `klef agent stop`, `klef lock --stop` and [`crate::client::ensure_running`]
//! when it replaces an agent of another protocol version.

use std::time::{Duration, Instant};

use crate::paths::AgentPaths;

/// Whether process `pid` still exists (a zombie counts as gone: it holds nothing any more).
#[must_use]
pub fn process_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state letter follows the parenthesised command name.
            Ok(stat) => !stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| matches!(state, "Z" | "X")),
            Err(_) => false,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let Some(target) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        !matches!(
            rustix::process::test_kill_process(target),
            Err(rustix::io::Errno::SRCH)
        )
    }
}

/// Sends SIGTERM to `pid` (an agent wipes its keys and exits); a process already gone, or a
/// pid of 0 or 1, is left alone.
pub fn terminate(pid: u32) {
    if let Some(target) = i32::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(target, rustix::process::Signal::TERM);
    }
}

/// Waits until process `pid` is gone, at most `timeout`; whether it is.
pub async fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    while process_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    true
}

/// The pid of the agent that holds the single-instance lock, when one does. A lock file left by
/// a killed agent is not held, so its stale pid is never returned.
#[must_use]
pub fn lock_holder(paths: &AgentPaths) -> Option<u32> {
    use rustix::fs::{FlockOperation, Mode, OFlags};
    let lock = paths.lock_file();
    let fd = rustix::fs::open(
        &lock,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = rustix::fs::flock(&fd, FlockOperation::Unlock);
            None
        }
        Err(_) => std::fs::read_to_string(&lock)
            .ok()
            .and_then(|s| s.trim().parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::*;

    #[test]
    fn a_running_process_is_alive_and_a_reaped_one_is_not() {
        assert!(process_alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_alive(pid));
    }

    #[test]
    fn only_a_held_lock_names_its_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = AgentPaths::in_dir(tmp.path());
        assert_eq!(lock_holder(&paths), None, "no lock file");
        std::fs::write(paths.lock_file(), "4242\n").unwrap();
        assert_eq!(lock_holder(&paths), None, "a stale lock file is not held");
        let held = OpenOptions::new()
            .read(true)
            .open(paths.lock_file())
            .unwrap();
        rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
        assert_eq!(lock_holder(&paths), Some(4242));
        // Unlock explicitly rather than by closing: another test in this process spawns
        // children, and one forked between our open and its exec shares this open file
        // description, so closing our descriptor alone would leave the lock held until it
        // execs.
        rustix::fs::flock(&held, rustix::fs::FlockOperation::Unlock).unwrap();
        drop(held);
        assert_eq!(lock_holder(&paths), None);
    }
}
