//! Where the session token is kept (DESIGN.md §4, §8): the OS keyring (Secret Service over
//! D-Bus, through `keyring-core`), or a 0600 file in a 0700 directory under the config
//! directory where no keyring answers.
//!
//! The keyring is tried with a short timeout (3 s, as the gh CLI does) and a set/get probe; any
//! failure (no D-Bus session bus on CI, SSH or in containers: `PlatformFailure`; a bus without a
//! Secret Service provider: `ServiceUnknown`; a locked collection; a hang) falls back to the
//! file, and the caller says so once. `KLEF_TOKEN_STORE=file|keyring` forces one. The store a
//! token went to is recorded with the session, so later commands read it back from the same
//! place without probing again.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use klef_core::env::EnvVars;
use klef_core::wire::SecretText;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::diagnostics::Failure;

/// How long a keyring operation may take before klef gives up on the keyring.
#[cfg(feature = "keyring")]
const KEYRING_TIMEOUT: Duration = Duration::from_secs(3);

/// The keyring service name of every klef entry.
#[cfg(feature = "keyring")]
const SERVICE: &str = "klef";

/// The longest token file klef reads (tokens are well under 100 bytes).
const MAX_TOKEN_LEN: u64 = 4096;

/// Which store holds a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StoreKind {
    /// The OS keyring.
    Keyring,
    /// A 0600 file under the config directory.
    File,
}

impl StoreKind {
    /// `keyring` or `file`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StoreKind::Keyring => "keyring",
            StoreKind::File => "file",
        }
    }
}

/// A token store rooted in one config directory.
#[derive(Debug, Clone)]
pub(crate) struct TokenStore {
    kind: StoreKind,
    dir: PathBuf,
}

/// What [`TokenStore::choose`] found, for the one-line note.
pub(crate) struct Choice {
    /// The store to use.
    pub(crate) store: TokenStore,
    /// Why the keyring was passed over, when it was tried and failed.
    pub(crate) fallback_reason: Option<String>,
}

impl TokenStore {
    /// A store of a known kind (as recorded with a session).
    pub(crate) fn of_kind(kind: StoreKind, config_dir: &Path) -> Self {
        Self {
            kind,
            dir: config_dir.join("credentials"),
        }
    }

    /// Picks the store for a new token: `KLEF_TOKEN_STORE` when set, else the keyring if a
    /// probe succeeds within the timeout, else the file.
    pub(crate) fn choose(config_dir: &Path) -> Result<Choice> {
        let forced = std::env::var(EnvVars::KLEF_TOKEN_STORE).ok();
        match forced.as_deref().map(str::trim) {
            None | Some("") => {}
            Some("file") => {
                return Ok(Choice {
                    store: Self::of_kind(StoreKind::File, config_dir),
                    fallback_reason: None,
                });
            }
            Some("keyring") => {
                if let Err(reason) = keyring::probe() {
                    return Err(Failure::auth(format!(
                        "KLEF_TOKEN_STORE=keyring, but the OS keyring is not usable: {reason}"
                    ))
                    .hint("unset KLEF_TOKEN_STORE (or set it to `file`) to keep the token in a 0600 file")
                    .into());
                }
                return Ok(Choice {
                    store: Self::of_kind(StoreKind::Keyring, config_dir),
                    fallback_reason: None,
                });
            }
            Some(other) => {
                return Err(Failure::usage(format!(
                    "KLEF_TOKEN_STORE={other:?} is not a token store"
                ))
                .hint("use `file` or `keyring`")
                .into());
            }
        }
        match keyring::probe() {
            Ok(()) => Ok(Choice {
                store: Self::of_kind(StoreKind::Keyring, config_dir),
                fallback_reason: None,
            }),
            Err(reason) => Ok(Choice {
                store: Self::of_kind(StoreKind::File, config_dir),
                fallback_reason: Some(reason),
            }),
        }
    }

    /// Which store this is.
    pub(crate) fn kind(&self) -> StoreKind {
        self.kind
    }

    /// Where the file store keeps the token (also shown by `klef whoami`).
    pub(crate) fn file_path(&self) -> PathBuf {
        self.dir.join("session-token")
    }

    /// Stores `token` for the session `label` (`<server>#<account id>`).
    pub(crate) fn save(&self, label: &str, token: &SecretText) -> Result<()> {
        match self.kind {
            StoreKind::Keyring => {
                keyring::set(&self.entry_user(label), token.expose()).map_err(|reason| {
                    anyhow::anyhow!("failed to store the session token in the OS keyring: {reason}")
                })
            }
            StoreKind::File => {
                let mut text = Zeroizing::new(String::with_capacity(label.len() + 100));
                text.push_str(label);
                text.push('\n');
                text.push_str(token.expose());
                text.push('\n');
                write_private(&self.dir, &self.file_path(), text.as_bytes())
            }
        }
    }

    /// The token stored for `label`, if any.
    pub(crate) fn load(&self, label: &str) -> Result<Option<SecretText>> {
        match self.kind {
            StoreKind::Keyring => keyring::get(&self.entry_user(label))
                .map(|t| t.map(SecretText::new))
                .map_err(|reason| {
                    anyhow::anyhow!(
                        "failed to read the session token from the OS keyring: {reason}"
                    )
                }),
            StoreKind::File => {
                let Some(text) = read_private(&self.file_path())? else {
                    return Ok(None);
                };
                let mut lines = text.lines();
                if lines.next() != Some(label) {
                    return Ok(None);
                }
                Ok(lines
                    .next()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(SecretText::new))
            }
        }
    }

    /// Deletes the token for `label` (no error when there is none).
    pub(crate) fn delete(&self, label: &str) -> Result<()> {
        match self.kind {
            StoreKind::Keyring => keyring::delete(&self.entry_user(label)).map_err(|reason| {
                anyhow::anyhow!("failed to delete the session token from the OS keyring: {reason}")
            }),
            StoreKind::File => match fs_err::remove_file(self.file_path()) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// The keyring "user" of an entry: the session label plus the config directory, so
    /// profiles and `KLEF_HOME`s never share a token.
    fn entry_user(&self, label: &str) -> String {
        format!("{label} ({})", self.dir.display())
    }
}

/// Writes `bytes` to `path` atomically with mode 0600, in `dir` (created 0700). The temporary
/// file is opened with `O_CREAT|O_EXCL|O_NOFOLLOW`, so a planted symlink is never followed, and
/// the rename replaces whatever is at `path` without following it either.
fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    crate::dirs::create_private_dir(dir)?;
    check_private_dir(dir)?;
    let mut tmp_name = [0u8; 8];
    klef_core::crypto::fill_random(&mut tmp_name);
    let tmp = dir.join(format!(".session-token-{}", hex_lower(&tmp_name)));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600).custom_flags(nofollow_flag());
    }
    let result = (|| -> Result<()> {
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("failed to create {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("failed to write {}", tmp.display()))?;
        fs_err::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads the token file (never through a symlink), refusing one that others can read.
fn read_private(path: &Path) -> Result<Option<Zeroizing<String>>> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.custom_flags(nofollow_flag());
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "failed to read the session token file {} (is it a symlink?)",
                path.display()
            )));
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file
            .metadata()
            .with_context(|| format!("failed to read {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Failure::auth(format!(
                "the session token file {} is readable by other users (mode {:o})",
                path.display(),
                mode & 0o777
            ))
            .hint("run `klef logout` and `klef login` again to replace it")
            .into());
        }
    }
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_TOKEN_LEN)
        .read_to_end(&mut buf)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let text = std::str::from_utf8(&buf)
        .with_context(|| format!("{} is not a klef session token file", path.display()))?;
    Ok(Some(Zeroizing::new(text.to_owned())))
}

/// Refuses a credentials directory that is a symlink or open to others.
fn check_private_dir(dir: &Path) -> Result<()> {
    let meta = fs_err::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Err(Failure::other(format!(
            "{} is not a directory klef created (a symlink?)",
            dir.display()
        ))
        .into());
    }
    Ok(())
}

#[cfg(unix)]
fn nofollow_flag() -> i32 {
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(0)
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The OS keyring, each call on its own thread with a timeout so a hung D-Bus never hangs klef.
#[cfg(feature = "keyring")]
mod keyring {
    use std::sync::OnceLock;
    use std::sync::mpsc;

    use zeroize::Zeroizing;

    use super::{KEYRING_TIMEOUT, SERVICE};

    /// Whether the default store was registered (once per process), or why not.
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

    /// Runs `f` on a helper thread; gives up after the timeout.
    fn with_timeout<T: Send + 'static>(
        f: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("klef-keyring".into())
            .spawn(move || {
                let _ = tx.send(f());
            })
            .map_err(|e| format!("cannot start the keyring thread: {e}"))?;
        rx.recv_timeout(KEYRING_TIMEOUT).unwrap_or_else(|_| {
            Err(format!(
                "the keyring did not answer within {} s",
                KEYRING_TIMEOUT.as_secs()
            ))
        })
    }

    fn register() -> Result<(), String> {
        REGISTERED
            .get_or_init(|| {
                with_timeout(|| {
                    let store = zbus_secret_service_keyring_store::Store::new()
                        .map_err(|e| describe(&e))?;
                    keyring_core::set_default_store(store);
                    Ok(())
                })
            })
            .clone()
    }

    fn describe(e: &keyring_core::Error) -> String {
        let text = e.to_string();
        text.lines().next().unwrap_or("unknown error").to_owned()
    }

    fn entry(user: &str) -> Result<keyring_core::Entry, String> {
        keyring_core::Entry::new(SERVICE, user).map_err(|e| describe(&e))
    }

    /// Registers the store and writes, reads back and deletes a probe entry.
    pub(super) fn probe() -> Result<(), String> {
        register()?;
        with_timeout(|| {
            let mut nonce = [0u8; 8];
            klef_core::crypto::fill_random(&mut nonce);
            let value = super::hex_lower(&nonce);
            let e = entry(&format!("probe-{value}"))?;
            e.set_password(&value).map_err(|err| describe(&err))?;
            let back = e.get_password().map_err(|err| describe(&err));
            let _ = e.delete_credential();
            if back? == value {
                Ok(())
            } else {
                Err("the keyring returned something else than was stored".into())
            }
        })
    }

    pub(super) fn set(user: &str, secret: &str) -> Result<(), String> {
        register()?;
        let user = user.to_owned();
        let secret = Zeroizing::new(secret.to_owned());
        with_timeout(move || {
            entry(&user)?
                .set_password(&secret)
                .map_err(|e| describe(&e))
        })
    }

    pub(super) fn get(user: &str) -> Result<Option<String>, String> {
        register()?;
        let user = user.to_owned();
        with_timeout(move || match entry(&user)?.get_password() {
            Ok(s) => Ok(Some(s)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(describe(&e)),
        })
    }

    pub(super) fn delete(user: &str) -> Result<(), String> {
        register()?;
        let user = user.to_owned();
        with_timeout(move || match entry(&user)?.delete_credential() {
            Ok(()) | Err(keyring_core::Error::NoEntry) => Ok(()),
            Err(e) => Err(describe(&e)),
        })
    }
}

/// Built without the `keyring` feature: the file store only.
#[cfg(not(feature = "keyring"))]
mod keyring {
    const WHY: &str = "this klef was built without the `keyring` feature";

    pub(super) fn probe() -> Result<(), String> {
        Err(WHY.into())
    }

    pub(super) fn set(_user: &str, _secret: &str) -> Result<(), String> {
        Err(WHY.into())
    }

    pub(super) fn get(_user: &str) -> Result<Option<String>, String> {
        Err(WHY.into())
    }

    pub(super) fn delete(_user: &str) -> Result<(), String> {
        Err(WHY.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::of_kind(StoreKind::File, dir.path());
        let label = "http://127.0.0.1:8600#0f8fad5b-d9cb-469f-a165-70867728950e";
        assert!(store.load(label).unwrap().is_none());
        store
            .save(label, &SecretText::new("klef_sess_abc"))
            .unwrap();
        assert_eq!(
            store.load(label).unwrap().unwrap().expose(),
            "klef_sess_abc"
        );
        assert!(store.load("http://other#x").unwrap().is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&store.file_path()), 0o600);
            assert_eq!(mode(&dir.path().join("credentials")), 0o700);
        }
        store.delete(label).unwrap();
        store.delete(label).unwrap();
        assert!(store.load(label).unwrap().is_none());
    }

    #[cfg(unix)]
    #[test]
    fn file_store_never_follows_symlinks_and_refuses_open_modes() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::of_kind(StoreKind::File, dir.path());
        std::fs::create_dir_all(dir.path().join("credentials")).unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "label\nstolen\n").unwrap();
        std::os::unix::fs::symlink(&target, store.file_path()).unwrap();
        assert!(store.load("label").is_err(), "a symlink is not followed");
        // Saving replaces the link itself; the target is untouched.
        store.save("label", &SecretText::new("t")).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "label\nstolen\n");
        assert!(
            !std::fs::symlink_metadata(store.file_path())
                .unwrap()
                .file_type()
                .is_symlink()
        );
        std::fs::set_permissions(store.file_path(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        assert!(
            store.load("label").is_err(),
            "a world-readable token is refused"
        );
    }
}
