//! The agent's wire protocol (`docs/decisions/0001-agent-wire-format.md`).
//!
//! A frame is a `u32` little-endian body length followed by a [postcard] body of at most
//! [`MAX_FRAME_LEN`] bytes. The client's first request must be [`Request::Hello`]; the agent
//! answers [`Response::Hello`] with its own version and pid, and closes the connection when the
//! versions differ. `Hello` is variant 0 of both enums in every protocol version, so any two
//! versions can always complete the handshake and tell each other apart.
//!
//! Key bytes travel in [`KeyBytes`], which is zeroized on drop and never printed. The account's
//! private key goes *into* the agent with [`Request::Unlock`]; no request returns it.

use std::fmt;
use std::time::Duration;

use klef_core::crypto::{Aad, PrivateKey, SymmetricKey, WrappedKey};
use klef_core::ids::{AccountId, EnvironmentId, ProjectId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::{Zeroize, Zeroizing};

/// The protocol version. Bump it on any change to [`Request`] or [`Response`].
pub const PROTOCOL_VERSION: u32 = 3;

/// The largest frame body accepted, in bytes (64 MiB: an environment of 10,000 large values
/// travels in one [`Request::PutSnapshot`]). Only the agent's own user can connect.
pub const MAX_FRAME_LEN: usize = 64 << 20;

/// Small messages (every key-bearing one) are encoded into a pre-sized buffer so the key bytes
/// are never left behind in a reallocated, unzeroized `Vec`.
const SMALL_FRAME: usize = 4096;

/// A request from a client to the agent.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// The handshake; must be the first request on every connection. Always variant 0.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// Caches the account private key for `vault` with the secrets derived from the same
    /// master key (replacing any earlier ones), starting their idle and hard-cap clocks.
    /// Answered by [`Response::Ok`].
    Unlock {
        /// The vault or account the key belongs to (an opaque name chosen by the CLI).
        vault: String,
        /// The X25519 private key.
        private_key: KeyBytes,
        /// The identity seed (`klef_core::trust::secrets::DerivedSecrets`).
        identity_seed: KeyBytes,
        /// The account-state key.
        state_key: KeyBytes,
    },
    /// Unwraps an HPKE envelope (a project or environment key wrapped to the vault's public
    /// key) with the cached private key. Answered by [`Response::Key`]; resets the idle clock.
    Unwrap {
        /// The vault whose key to use.
        vault: String,
        /// The envelope made by `klef_core::crypto::wrap_key` (on the wire: its bytes).
        envelope: WrappedKey,
        /// The context the envelope is bound to.
        context: OwnedAad,
    },
    /// The identity seed and account-state key of `vault`, for the user's own `klef` process
    /// to sign roster entries and manifests and to seal the account's pins for one command.
    /// Answered by [`Response::Derived`]; counts as a use.
    Derived {
        /// The vault.
        vault: String,
    },
    /// Whether `vault` has a cached key. Answered by [`Response::Unlocked`]; does not count as a
    /// use (the idle clock keeps running).
    IsUnlocked {
        /// The vault.
        vault: String,
    },
    /// Wipes every cached key; the agent keeps running. Answered by [`Response::Ok`].
    Lock,
    /// Wipes one vault's key. Answered by [`Response::Ok`].
    LockVault {
        /// The vault.
        vault: String,
    },
    /// Answered by [`Response::Status`].
    Status,
    /// Wipes every key and exits. Answered by [`Response::Ok`] before the agent stops.
    Stop,
    /// Keeps `body`, an environment as its reader verified it (ciphertexts, the signed head,
    /// the wrapped key: opaque to the agent, never plaintext), with `vault`'s keys: wiped with
    /// them (lock, expiry, stop). Replaces an earlier one of `environment`; findable by any of
    /// `aliases`. Its age starts at zero. Answered by [`Response::Ok`] (or `Locked`); a use.
    PutSnapshot {
        /// The vault.
        vault: String,
        /// The environment's id (what writes drop it by).
        environment: String,
        /// Names the reader looks it up by (the project and environment as the command named
        /// them).
        aliases: Vec<String>,
        /// The encoded snapshot.
        body: Vec<u8>,
    },
    /// The snapshot of `vault` found by `alias`. Answered by [`Response::Snapshot`] or
    /// [`Response::NoSnapshot`] (or `Locked`); a use.
    GetSnapshot {
        /// The vault.
        vault: String,
        /// One of the aliases it was stored with.
        alias: String,
    },
    /// The server confirmed that `environment`'s snapshot is still current: its age restarts.
    /// Answered by [`Response::Ok`].
    TouchSnapshot {
        /// The vault.
        vault: String,
        /// The environment's id.
        environment: String,
    },
    /// Forgets `environment`'s snapshot, or every snapshot of `vault` (`None`): after a
    /// write, or when the server refused a revalidation. Answered by [`Response::Ok`].
    DropSnapshots {
        /// The vault.
        vault: String,
        /// The environment's id; `None` for all.
        environment: Option<String>,
    },
}

impl Request {
    /// A short name for logs (never includes any field).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Unlock { .. } => "unlock",
            Self::Unwrap { .. } => "unwrap",
            Self::Derived { .. } => "derived",
            Self::IsUnlocked { .. } => "is-unlocked",
            Self::Lock => "lock",
            Self::LockVault { .. } => "lock-vault",
            Self::Status => "status",
            Self::Stop => "stop",
            Self::PutSnapshot { .. } => "put-snapshot",
            Self::GetSnapshot { .. } => "get-snapshot",
            Self::TouchSnapshot { .. } => "touch-snapshot",
            Self::DropSnapshots { .. } => "drop-snapshots",
        }
    }
}

/// The agent's answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// The handshake answer. Always variant 0.
    Hello {
        /// The agent's [`PROTOCOL_VERSION`].
        version: u32,
        /// The agent's process id.
        pid: u32,
    },
    /// The request succeeded and has no data.
    Ok,
    /// An unwrapped key.
    Key {
        /// The key bytes.
        bytes: KeyBytes,
    },
    /// Answer to [`Request::Derived`].
    Derived {
        /// The identity seed.
        identity_seed: KeyBytes,
        /// The account-state key.
        state_key: KeyBytes,
        /// The X25519 public key of the cached private key (so the client learns its own
        /// public key from its own keys, never from the server).
        x25519_public: [u8; 32],
    },
    /// Answer to [`Request::IsUnlocked`].
    Unlocked {
        /// Whether the vault has a cached key.
        unlocked: bool,
    },
    /// Answer to [`Request::Status`].
    Status(AgentStatus),
    /// The request failed.
    Error {
        /// A machine-readable code.
        code: ErrorCode,
        /// A human-readable message (never contains key material).
        message: String,
    },
    /// Answer to [`Request::GetSnapshot`].
    Snapshot {
        /// The environment's id.
        environment: String,
        /// Time since it was stored or last confirmed ([`Request::TouchSnapshot`]).
        age: Duration,
        /// The encoded snapshot.
        body: Vec<u8>,
    },
    /// Answer to [`Request::GetSnapshot`]: none under that alias.
    NoSnapshot,
}

/// Why the agent refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The client speaks another protocol version.
    VersionMismatch,
    /// The first request was not `Hello`.
    HelloRequired,
    /// The frame could not be decoded (garbage, truncated or an unknown request).
    BadFrame,
    /// The frame announced a body longer than [`MAX_FRAME_LEN`].
    FrameTooLarge,
    /// The vault has no cached key (never unlocked, locked or expired).
    Locked,
    /// The envelope did not open with the cached key (tampered, moved or malformed).
    Crypto,
    /// The connecting process does not belong to the agent's user.
    PermissionDenied,
    /// The agent failed internally.
    Internal,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::VersionMismatch => "version-mismatch",
            Self::HelloRequired => "hello-required",
            Self::BadFrame => "bad-frame",
            Self::FrameTooLarge => "frame-too-large",
            Self::Locked => "locked",
            Self::Crypto => "crypto",
            Self::PermissionDenied => "permission-denied",
            Self::Internal => "internal",
        })
    }
}

/// What `klef agent status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's process id.
    pub pid: u32,
    /// The agent's crate version (`klef-agent --version`).
    pub version: String,
    /// The agent's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The configured idle timeout.
    pub idle_timeout: Duration,
    /// The configured hard cap after unlock.
    pub max_lifetime: Duration,
    /// Unlocked vaults, sorted by name.
    pub vaults: Vec<VaultStatus>,
}

/// One unlocked vault in [`AgentStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultStatus {
    /// The vault name.
    pub vault: String,
    /// Time until the key is wiped if unused.
    pub idle_left: Duration,
    /// Time until the key is wiped regardless of use.
    pub hard_cap_left: Duration,
    /// Environments kept for this vault (`klef get` and friends answered without the server).
    pub environments: u32,
}

/// 32 key bytes on the heap, zeroized on drop, redacted in `Debug`.
pub struct KeyBytes(Box<[u8; 32]>);

impl KeyBytes {
    /// Copies the bytes of a private key.
    #[must_use]
    pub fn from_private_key(key: &PrivateKey) -> Self {
        Self(Box::new(*key.expose()))
    }

    /// Copies 32 key bytes.
    #[must_use]
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Box::new(*bytes))
    }

    /// Copies the bytes of a symmetric key.
    #[must_use]
    pub fn from_symmetric_key(key: &SymmetricKey) -> Self {
        Self(Box::new(*key.expose()))
    }

    /// Turns the bytes into a private key (no copy).
    #[must_use]
    pub fn into_private_key(mut self) -> PrivateKey {
        PrivateKey::from_bytes(self.take())
    }

    /// Turns the bytes into a symmetric key (no copy).
    #[must_use]
    pub fn into_symmetric_key(mut self) -> SymmetricKey {
        SymmetricKey::from_bytes(self.take())
    }

    /// The bytes.
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    #[expect(
        clippy::unnecessary_box_returns,
        reason = "moving the box avoids copying key bytes"
    )]
    fn take(&mut self) -> Box<[u8; 32]> {
        std::mem::replace(&mut self.0, Box::new([0; 32]))
    }
}

impl Drop for KeyBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBytes([redacted])")
    }
}

impl Serialize for KeyBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0[..])
    }
}

impl<'de> Deserialize<'de> for KeyBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = KeyBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("32 key bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<KeyBytes, E> {
                let mut k = Box::new([0u8; 32]);
                if v.len() != 32 {
                    return Err(E::invalid_length(v.len(), &self));
                }
                k.copy_from_slice(v);
                Ok(KeyBytes(k))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// An owned mirror of [`klef_core::crypto::Aad`], so a context can cross the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OwnedAad {
    /// See [`Aad::MasterKeyByPassword`].
    MasterKeyByPassword(AccountId),
    /// See [`Aad::MasterKeyByRecovery`].
    MasterKeyByRecovery(AccountId),
    /// See [`Aad::PrivateKey`].
    PrivateKey(AccountId),
    /// See [`Aad::ProjectKey`].
    ProjectKey(ProjectId),
    /// See [`Aad::EnvironmentKey`].
    EnvironmentKey(EnvironmentId),
    /// See [`Aad::SecretValue`].
    SecretValue {
        /// The environment.
        environment: EnvironmentId,
        /// The key name.
        name: String,
    },
    /// See [`Aad::Other`].
    Other(String),
    /// See [`Aad::SecretValueAt`] (last, so the earlier variants keep their wire tags).
    SecretValueAt {
        /// The environment.
        environment: EnvironmentId,
        /// The key name.
        name: String,
        /// The value's version.
        version: u64,
        /// The environment key version.
        key_version: u64,
    },
}

impl OwnedAad {
    /// The borrowed form that klef-core's crypto functions take.
    #[must_use]
    pub fn as_aad(&self) -> Aad<'_> {
        match self {
            Self::MasterKeyByPassword(a) => Aad::MasterKeyByPassword(a),
            Self::MasterKeyByRecovery(a) => Aad::MasterKeyByRecovery(a),
            Self::PrivateKey(a) => Aad::PrivateKey(a),
            Self::ProjectKey(p) => Aad::ProjectKey(p),
            Self::EnvironmentKey(e) => Aad::EnvironmentKey(e),
            Self::SecretValue { environment, name } => Aad::SecretValue { environment, name },
            Self::Other(label) => Aad::Other(label),
            Self::SecretValueAt {
                environment,
                name,
                version,
                key_version,
            } => Aad::SecretValueAt {
                environment,
                name,
                version: *version,
                key_version: *key_version,
            },
        }
    }

    /// What the context describes, for error messages (`the key of environment …`).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::MasterKeyByPassword(a) | Self::MasterKeyByRecovery(a) => {
                format!("the master key of account {a}")
            }
            Self::PrivateKey(a) => format!("the private key of account {a}"),
            Self::ProjectKey(p) => format!("the key of project {p}"),
            Self::EnvironmentKey(e) => format!("the key of environment {e}"),
            Self::SecretValue { name, .. } | Self::SecretValueAt { name, .. } => {
                format!("the value of {name}")
            }
            Self::Other(label) => format!("the {label} envelope"),
        }
    }
}

impl From<&Aad<'_>> for OwnedAad {
    fn from(aad: &Aad<'_>) -> Self {
        match *aad {
            Aad::MasterKeyByPassword(a) => Self::MasterKeyByPassword(*a),
            Aad::MasterKeyByRecovery(a) => Self::MasterKeyByRecovery(*a),
            Aad::PrivateKey(a) => Self::PrivateKey(*a),
            Aad::ProjectKey(p) => Self::ProjectKey(*p),
            Aad::EnvironmentKey(e) => Self::EnvironmentKey(*e),
            Aad::SecretValue { environment, name } => Self::SecretValue {
                environment: *environment,
                name: name.to_owned(),
            },
            Aad::Other(label) => Self::Other(label.to_owned()),
            Aad::SecretValueAt {
                environment,
                name,
                version,
                key_version,
            } => Self::SecretValueAt {
                environment: *environment,
                name: name.to_owned(),
                version,
                key_version,
            },
        }
    }
}

/// Errors reading, writing or decoding frames.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer announced a body longer than [`MAX_FRAME_LEN`] (nothing was allocated).
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(u64),
    /// The connection ended in the middle of a frame.
    #[error("truncated frame")]
    Truncated,
    /// The body is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(#[source] postcard::Error),
    /// The socket failed.
    #[error("agent connection failed")]
    Io(#[from] std::io::Error),
}

/// Encodes a message into a frame body. Key-bearing messages are small and are written into
/// a pre-sized zeroizing buffer.
pub fn encode<T: Serialize>(msg: &T) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let mut buf = Zeroizing::new(vec![0u8; SMALL_FRAME]);
    match postcard::to_slice(msg, &mut buf[..]) {
        Ok(used) => {
            let n = used.len();
            buf.truncate(n);
            Ok(buf)
        }
        Err(postcard::Error::SerializeBufferFull) => {
            let body = Zeroizing::new(postcard::to_allocvec(msg).map_err(FrameError::Malformed)?);
            if body.len() > MAX_FRAME_LEN {
                return Err(FrameError::TooLarge(body.len() as u64));
            }
            Ok(body)
        }
        Err(e) => Err(FrameError::Malformed(e)),
    }
}

/// Decodes a frame body; trailing bytes are an error.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes(body) {
        Ok((msg, [])) => Ok(msg),
        Ok(_) => Err(FrameError::Malformed(
            postcard::Error::DeserializeBadEncoding,
        )),
        Err(e) => Err(FrameError::Malformed(e)),
    }
}

/// Writes one frame (length prefix and body in a single write).
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(body.len() as u64));
    }
    let mut frame = Zeroizing::new(Vec::with_capacity(4 + body.len()));
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(body);
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(())
}

/// Reads the 4-byte length prefix of the next frame. `Ok(None)` means the peer closed the
/// connection cleanly between frames. The length is checked against [`MAX_FRAME_LEN`] here,
/// before anything is allocated.
pub async fn read_frame_len<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<usize>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(FrameError::Truncated),
            n => got += n,
        }
    }
    let len = u32::from_le_bytes(len);
    if len as usize > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(u64::from(len)));
    }
    Ok(Some(len as usize))
}

/// Reads a frame body of `len` bytes (from [`read_frame_len`]) into a zeroizing buffer.
pub async fn read_frame_body<R: AsyncRead + Unpin>(
    r: &mut R,
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let mut body = Zeroizing::new(vec![0u8; len]);
    match r.read_exact(&mut body).await {
        Ok(_) => Ok(body),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(FrameError::Io(e)),
    }
}

/// Reads one whole frame; `Ok(None)` on a clean close between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<Zeroizing<Vec<u8>>>, FrameError> {
    match read_frame_len(r).await? {
        None => Ok(None),
        Some(len) => read_frame_body(r, len).await.map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(req: &Request) -> Request {
        let body = encode(req).unwrap();
        decode(&body).unwrap()
    }

    #[test]
    fn hello_is_variant_zero_in_both_directions() {
        // The handshake must stay decodable across versions: variant 0, then the version.
        assert_eq!(
            &encode(&Request::Hello { version: 7 }).unwrap()[..],
            &[0, 7]
        );
        assert_eq!(
            &encode(&Response::Hello { version: 7, pid: 1 }).unwrap()[..],
            &[0, 7, 1]
        );
    }

    #[test]
    fn requests_round_trip() {
        let env = EnvironmentId::random();
        let req = Request::Unwrap {
            vault: "v".into(),
            envelope: WrappedKey::from_bytes(vec![1, 2, 3]),
            context: OwnedAad::SecretValue {
                environment: env,
                name: "API_KEY".into(),
            },
        };
        match round_trip(&req) {
            Request::Unwrap {
                vault,
                envelope,
                context,
            } => {
                assert_eq!(vault, "v");
                assert_eq!(envelope.as_bytes(), [1, 2, 3]);
                assert_eq!(
                    context,
                    OwnedAad::SecretValue {
                        environment: env,
                        name: "API_KEY".into()
                    }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let key = KeyBytes(Box::new([9; 32]));
        match round_trip(&Request::Unlock {
            vault: "v".into(),
            private_key: key,
            identity_seed: KeyBytes::from_bytes(&[10; 32]),
            state_key: KeyBytes::from_bytes(&[11; 32]),
        }) {
            Request::Unlock {
                private_key,
                identity_seed,
                state_key,
                ..
            } => {
                assert_eq!(private_key.expose(), &[9; 32]);
                assert_eq!(identity_seed.expose(), &[10; 32]);
                assert_eq!(state_key.expose(), &[11; 32]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn key_bytes_must_be_32_long_and_are_redacted() {
        #[derive(Serialize)]
        enum Fake {
            #[expect(dead_code, reason = "only the second variant is encoded")]
            Hello(u32),
            Unlock {
                vault: String,
                private_key: Vec<u8>,
            },
        }
        let body = encode(&Fake::Unlock {
            vault: "v".into(),
            private_key: vec![1; 31],
        })
        .unwrap();
        assert!(decode::<Request>(&body).is_err());
        let k = KeyBytes(Box::new([0xab; 32]));
        assert_eq!(format!("{k:?}"), "KeyBytes([redacted])");
    }

    #[test]
    fn owned_aad_mirrors_aad() {
        let p = ProjectId::random();
        let owned = OwnedAad::ProjectKey(p);
        assert!(matches!(owned.as_aad(), Aad::ProjectKey(x) if *x == p));
        assert_eq!(OwnedAad::from(&owned.as_aad()), owned);
        let o = OwnedAad::Other("backup".into());
        assert_eq!(OwnedAad::from(&o.as_aad()), o);
    }

    #[test]
    fn trailing_bytes_and_garbage_are_rejected() {
        let mut body = encode(&Request::Status).unwrap().to_vec();
        body.push(0);
        assert!(decode::<Request>(&body).is_err());
        assert!(decode::<Request>(&[200, 200, 200]).is_err());
        assert!(decode::<Request>(&[]).is_err());
    }

    #[tokio::test]
    async fn frames_check_length_before_allocating() {
        let mut oversized: &[u8] = &(u32::MAX).to_le_bytes();
        assert!(matches!(
            read_frame(&mut oversized).await,
            Err(FrameError::TooLarge(_))
        ));
        let mut truncated: &[u8] = &[10, 0, 0, 0, 1, 2];
        assert!(matches!(
            read_frame(&mut truncated).await,
            Err(FrameError::Truncated)
        ));
        let mut half_len: &[u8] = &[10, 0];
        assert!(matches!(
            read_frame(&mut half_len).await,
            Err(FrameError::Truncated)
        ));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty).await.unwrap().is_none());

        let mut out = Vec::new();
        write_frame(&mut out, b"abc").await.unwrap();
        assert_eq!(out, [3, 0, 0, 0, b'a', b'b', b'c']);
        let mut r: &[u8] = &out;
        assert_eq!(&read_frame(&mut r).await.unwrap().unwrap()[..], b"abc");
    }
}
