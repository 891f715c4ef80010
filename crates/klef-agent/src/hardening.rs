//! Process and memory hardening (DESIGN.md §3 and §8, STYLE.md rule 30). The only module of
//! the workspace with `unsafe` code: `mlock`/`munlock` of the pages that hold cached keys and the
//! `setsid` pre-exec hook used when the client spawns the agent.
//!
//! * [`harden_process`]: `PR_SET_DUMPABLE 0` (no core dumps, no `ptrace` attach by
//!   same-uid processes, `/proc/<pid>/mem` closed) and `RLIMIT_CORE 0`, before any key exists.
//! * [`LockedPages`]: keeps the pages under a key resident (never swapped). Pages are
//!   reference-counted because two small allocations can share one page. When `mlock` fails
//!   (e.g. a small `RLIMIT_MEMLOCK`), a warning is logged once and the agent carries on.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// What [`harden_process`] managed to do; failures are reported, not fatal.
#[derive(Debug, Default)]
pub struct HardeningReport {
    /// Errors from `prctl(PR_SET_DUMPABLE, 0)` (Linux only).
    pub dumpable: Option<io::Error>,
    /// Errors from `setrlimit(RLIMIT_CORE, 0)`.
    pub core_limit: Option<io::Error>,
}

/// Disables core dumps and ptrace attachment for this process. Call first thing in `main`.
#[must_use]
pub fn harden_process() -> HardeningReport {
    let mut report = HardeningReport::default();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        report.dumpable =
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
                .err()
                .map(io::Error::from);
    }
    report.core_limit = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .err()
    .map(io::Error::from);
    report
}

/// Makes `cmd` start its child in a new session (`setsid`), detached from the caller's
/// terminal and process group, so closing the terminal or pressing Ctrl-C does not reach it.
pub(crate) fn start_new_session(cmd: &mut tokio::process::Command) {
    #[expect(unsafe_code, reason = "pre_exec is unsafe; the hook only calls setsid")]
    // SAFETY: the closure runs in the forked child before exec. It calls only `setsid(2)`, a
    // single async-signal-safe system call made through rustix without allocating or taking
    // locks, which is what `pre_exec` requires.
    unsafe {
        cmd.as_std_mut()
            .pre_exec(|| rustix::process::setsid().map(drop).map_err(io::Error::from));
    }
}

static PAGE_COUNTS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());
static WARNED: AtomicBool = AtomicBool::new(false);

fn page_size() -> usize {
    rustix::param::page_size()
}

/// Keeps the pages spanning a memory range locked in RAM while it lives.
///
/// The range must stay allocated for the guard's lifetime; drop the guard *after* zeroizing
/// and before freeing the memory (declare it after the key in a struct).
#[derive(Debug)]
pub struct LockedPages {
    pages: Vec<usize>,
}

impl LockedPages {
    /// Locks the pages spanning `len` bytes at `ptr`. Never fails: when the kernel refuses, a
    /// warning is logged once and the returned guard simply holds nothing.
    #[must_use]
    pub fn lock(ptr: *const u8, len: usize) -> Self {
        if len == 0 {
            return Self { pages: Vec::new() };
        }
        let size = page_size();
        let first = (ptr as usize) & !(size - 1);
        let last = (ptr as usize + len - 1) & !(size - 1);
        let mut locked = Vec::new();
        let mut counts = PAGE_COUNTS.lock().unwrap_or_else(PoisonError::into_inner);
        let pages = (first..=last).step_by(size);
        for page in pages {
            let count = counts.entry(page).or_insert(0);
            if *count == 0
                && let Err(e) = mlock_page(page, size)
            {
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        "cannot lock key memory in RAM (RLIMIT_MEMLOCK too small?): keys may \
                         reach swap; continuing"
                    );
                }
                counts.remove(&page);
                continue;
            }
            *count += 1;
            locked.push(page);
        }
        Self { pages: locked }
    }

    /// How many pages this guard holds locked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether nothing could be locked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}

impl Drop for LockedPages {
    fn drop(&mut self) {
        let size = page_size();
        let mut counts = PAGE_COUNTS.lock().unwrap_or_else(PoisonError::into_inner);
        for page in self.pages.drain(..) {
            if let Some(count) = counts.get_mut(&page) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&page);
                    munlock_page(page, size);
                }
            }
        }
    }
}

fn mlock_page(page: usize, size: usize) -> io::Result<()> {
    #[expect(unsafe_code, reason = "mlock takes a raw address range")]
    // SAFETY: `page` is the page-aligned start of a page containing live memory owned by this
    // process (the key allocation passed to `LockedPages::lock`). mlock only changes the page's
    // residency; it neither reads nor writes memory, so no Rust aliasing rules are involved.
    let r = unsafe { rustix::mm::mlock(page as *mut core::ffi::c_void, size) };
    r.map_err(io::Error::from)
}

fn munlock_page(page: usize, size: usize) {
    #[expect(unsafe_code, reason = "munlock takes a raw address range")]
    // SAFETY: as for `mlock_page`: the page was locked by us and munlock only changes its
    // residency. Called before the memory is freed (the guard drops before the allocation).
    let r = unsafe { rustix::mm::munlock(page as *mut core::ffi::c_void, size) };
    if let Err(e) = r {
        tracing::debug!(error = %io::Error::from(e), "munlock failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked_kib() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmLck:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    #[test]
    fn pages_are_locked_and_released_with_refcounts() {
        // A page-sized, page-aligned buffer of our own so other tests cannot share its pages.
        let size = page_size();
        let buf = vec![0u8; size * 3];
        let start = (buf.as_ptr() as usize + size - 1) & !(size - 1);
        let ptr = start as *const u8;
        let a = LockedPages::lock(ptr, 32);
        if a.is_empty() {
            // mlock refused by this environment: the guard degrades to a no-op.
            return;
        }
        assert_eq!(a.len(), 1);
        let b = LockedPages::lock(ptr.wrapping_add(64), 32);
        assert_eq!(PAGE_COUNTS.lock().unwrap().get(&start), Some(&2));
        drop(a);
        assert_eq!(PAGE_COUNTS.lock().unwrap().get(&start), Some(&1));
        drop(b);
        assert_eq!(PAGE_COUNTS.lock().unwrap().get(&start), None);
        let spanning = LockedPages::lock((start + size - 8) as *const u8, 16);
        assert_eq!(spanning.len(), 2);
        if let Some(kib) = locked_kib() {
            assert!(kib >= 8, "VmLck is {kib} kB");
        }
        drop(spanning);
        drop(buf);
    }
}
