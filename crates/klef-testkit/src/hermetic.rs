//! Hermetic environments for the binaries under test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables never inherited from the caller, besides every `KLEF_*` and `XDG_*` one.
const SCRUBBED: &[&str] = &["RUST_LOG", "NO_COLOR", "DBUS_SESSION_BUS_ADDRESS"];

/// Removes from `cmd` every inherited variable that could point a binary at the caller's real
/// files or change its output: every `KLEF_*` and `XDG_*` variable, `RUST_LOG`, `NO_COLOR`
/// and `DBUS_SESSION_BUS_ADDRESS` (the session keyring).
pub fn scrub_inherited(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("KLEF_") || k.starts_with("XDG_") || SCRUBBED.contains(&&*k) {
            cmd.env_remove(&*k);
        }
    }
}

/// A temporary home: commands configured with [`Hermetic::apply`] see `HOME` and every
/// `XDG_*_HOME` inside it, `NO_COLOR=1`, and nothing of the caller's Klef settings.
#[derive(Debug, Clone)]
pub struct Hermetic {
    home: PathBuf,
}

impl Hermetic {
    /// A hermetic environment whose `HOME` is `home` (created if missing).
    ///
    /// # Panics
    /// If `home` cannot be created.
    #[must_use]
    pub fn new(home: impl Into<PathBuf>) -> Self {
        let home = home.into();
        std::fs::create_dir_all(&home).expect("create the hermetic home");
        Self { home }
    }

    /// `HOME`.
    #[must_use]
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The variables this environment sets, in order.
    #[must_use]
    pub fn vars(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("HOME", self.home.clone()),
            ("XDG_CONFIG_HOME", self.home.join(".config")),
            ("XDG_DATA_HOME", self.home.join(".local/share")),
            ("XDG_CACHE_HOME", self.home.join(".cache")),
            ("XDG_STATE_HOME", self.home.join(".local/state")),
        ]
    }

    /// Scrubs `cmd` ([`scrub_inherited`]) and points it at this environment. Set `KLEF_HOME`
    /// and other variables afterwards.
    pub fn apply<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        scrub_inherited(cmd);
        for (k, v) in self.vars() {
            cmd.env(k, v);
        }
        cmd.env("NO_COLOR", "1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_of_the_caller_leaks_through() {
        let dir = std::env::temp_dir().join(format!("klef-testkit-{}", std::process::id()));
        let env = Hermetic::new(&dir);
        let mut cmd = Command::new("env");
        env.apply(&mut cmd);
        // Simulate a caller variable: scrub_inherited works on the process environment, so
        // check on the command's explicit settings instead.
        let set: Vec<_> = cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_string_lossy().into_owned(), v?.to_owned())))
            .collect();
        assert!(set.iter().any(|(k, v)| k == "HOME" && v == dir.as_os_str()));
        assert!(
            set.iter()
                .all(|(k, v)| !k.starts_with("XDG_") || Path::new(v).starts_with(&dir))
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
