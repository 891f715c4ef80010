//! Split API-key secrets and the sealed CI anchor (DESIGN.md §9.4).
//!
//! A token `klef_{sys,user}_<id>_<secret>` never leaves the machine whole. From its 32 secret
//! bytes, HKDF-SHA256 (no salt) derives independent keys under distinct `info` labels:
//!
//! | output | `info` |
//! |---|---|
//! | bearer credential (the only part ever sent; the server stores its SHA-256) | `klef/v1/api-key/bearer` |
//! | X25519 private key (environment keys in scope are wrapped to its public key) | `klef/v1/api-key/x25519` |
//! | Ed25519 seed (signs the manifests of a read-write key's writes) | `klef/v1/api-key/ed25519` |
//! | AES-256-GCM key of the sealed CI anchor | `klef/v1/api-key/anchor` |
//!
//! So a server (or a proxy logging headers) that records every bearer credential learns
//! nothing that decrypts or signs.
//!
//! **CI anchor.** At `keys create` the admin's client seals `(workspace id, genesis hash,
//! roster sequence, roster hash)` under the anchor key, with associated data
//! `labelled("api-key/anchor", key id)`, and stores it on the server. A `klef_sys_` client opens
//! it, verifies the served roster as an extension of that head, and finds its own entry
//! carrying its own derived public keys before using anything: a server cannot fabricate a
//! workspace, a key or a value for a CI job. (It can still serve any genuine state since the
//! key was made.)

use std::fmt;

use secrecy::{ExposeSecret as _, SecretBox};
use zeroize::Zeroizing;

use super::encoding::{Labelled, Reader};
use super::identity::SigningKey;
use super::primitives::{hkdf_key, hkdf32, open, seal, sha256};
use super::roster::{EntryHash, RosterAnchor, RosterHead};
use crate::crypto::{PrivateKey, PublicKey};
use crate::ids::{ApiKeyId, WorkspaceId};

/// HKDF `info` of the bearer credential.
pub const BEARER_INFO: &[u8] = b"klef/v1/api-key/bearer";
/// HKDF `info` of the X25519 private key.
pub const X25519_INFO: &[u8] = b"klef/v1/api-key/x25519";
/// HKDF `info` of the Ed25519 seed.
pub const ED25519_INFO: &[u8] = b"klef/v1/api-key/ed25519";
/// HKDF `info` of the anchor's AEAD key.
pub const ANCHOR_INFO: &[u8] = b"klef/v1/api-key/anchor";

/// The 32 secret bytes of an API token, and everything derived from them. Zeroized on drop;
/// `Debug` shows nothing secret.
pub struct SplitSecret(Zeroizing<[u8; 32]>);

impl fmt::Debug for SplitSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SplitSecret([redacted])")
    }
}

/// The bearer credential: what is sent in `Authorization`, nothing else of the token.
pub struct BearerCredential(SecretBox<[u8; 32]>);

impl fmt::Debug for BearerCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerCredential([redacted])")
    }
}

impl BearerCredential {
    /// The credential bytes (to encode into the `Authorization` header).
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    /// SHA-256 of the credential as lower-case hex: what the server stores and compares.
    #[must_use]
    pub fn hash_hex(&self) -> String {
        hex::encode(sha256(self.expose()))
    }
}

/// The sealed anchor did not open, or is not an anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server's sealed anchor for this key does not open with this token: the server replaced it, or it belongs to another key"
)]
pub struct AnchorError;

/// What a CI token trusts: the workspace, its roster's genesis, and the roster head when the
/// key was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CiAnchor {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The roster's genesis hash.
    pub genesis: EntryHash,
    /// The roster head at creation (must include the key's own entry).
    pub head: RosterHead,
}

impl CiAnchor {
    /// The pin to verify a served roster against.
    #[must_use]
    pub fn roster_anchor(&self) -> RosterAnchor {
        RosterAnchor {
            workspace: self.workspace,
            genesis: self.genesis,
            head: Some(self.head),
        }
    }

    fn encode(&self) -> Vec<u8> {
        Labelled::new("api-key/anchor-state")
            .id(&self.workspace.0)
            .field(&self.genesis.0)
            .u64(self.head.sequence)
            .field(&self.head.hash.0)
            .finish()
    }

    fn parse(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader::new(bytes, "api-key/anchor-state").ok()?;
        let anchor = Self {
            workspace: WorkspaceId(r.id().ok()?),
            genesis: EntryHash(r.array().ok()?),
            head: RosterHead {
                sequence: r.u64().ok()?,
                hash: EntryHash(r.array().ok()?),
            },
        };
        r.finish().ok()?;
        Some(anchor)
    }
}

fn anchor_aad(key: &ApiKeyId) -> Vec<u8> {
    Labelled::new("api-key/anchor").id(&key.0).finish()
}

impl SplitSecret {
    /// Wraps a token's 32 secret bytes.
    #[must_use]
    pub fn new(secret: [u8; 32]) -> Self {
        Self(Zeroizing::new(secret))
    }

    /// The bearer credential.
    #[must_use]
    pub fn bearer(&self) -> BearerCredential {
        BearerCredential(SecretBox::new(Box::new(*hkdf32(
            self.0.as_ref(),
            BEARER_INFO,
        ))))
    }

    /// The X25519 key pair (a system key's; wraps of environment keys go to its public key).
    #[must_use]
    pub fn x25519(&self) -> (PrivateKey, PublicKey) {
        let private = PrivateKey::from_bytes(Box::new(*hkdf32(self.0.as_ref(), X25519_INFO)));
        let public = private.public_key();
        (private, public)
    }

    /// The Ed25519 signing key.
    #[must_use]
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_seed(&hkdf32(self.0.as_ref(), ED25519_INFO))
    }

    /// Seals `anchor` for the key `key` (done by the admin's client at `keys create`).
    #[must_use]
    pub fn seal_anchor(&self, key: &ApiKeyId, anchor: &CiAnchor) -> Vec<u8> {
        let aead_key = hkdf_key(self.0.as_ref(), ANCHOR_INFO);
        seal(&aead_key, &anchor_aad(key), &anchor.encode())
    }

    /// Opens a sealed anchor (done by the CI client before it trusts anything).
    pub fn open_anchor(&self, key: &ApiKeyId, sealed: &[u8]) -> Result<CiAnchor, AnchorError> {
        let aead_key = hkdf_key(self.0.as_ref(), ANCHOR_INFO);
        let plain = open(&aead_key, &anchor_aad(key), sealed).ok_or(AnchorError)?;
        CiAnchor::parse(&plain).ok_or(AnchorError)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn anchor() -> CiAnchor {
        CiAnchor {
            workspace: WorkspaceId::random(),
            genesis: EntryHash([1; 32]),
            head: RosterHead {
                sequence: 4,
                hash: EntryHash([2; 32]),
            },
        }
    }

    #[test]
    fn derivations_are_independent_and_stable() {
        let s = SplitSecret::new([7; 32]);
        let bearer = *s.bearer().expose();
        let (x_priv, x_pub) = s.x25519();
        let ed = s.signing_key().verifying_key().to_bytes();
        let outputs = [bearer, *x_priv.expose(), ed, [7; 32]];
        for (i, a) in outputs.iter().enumerate() {
            for b in &outputs[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(*SplitSecret::new([7; 32]).bearer().expose(), bearer);
        assert_eq!(SplitSecret::new([7; 32]).x25519().1, x_pub);
        assert_ne!(*SplitSecret::new([8; 32]).bearer().expose(), bearer);
        assert_eq!(s.bearer().hash_hex(), hex::encode(sha256(&bearer)));
        assert!(!format!("{s:?}{:?}", s.bearer()).contains("07"));
    }

    #[test]
    fn the_anchor_opens_only_with_its_token_and_key_id() {
        let s = SplitSecret::new([7; 32]);
        let id = ApiKeyId::random();
        let a = anchor();
        let sealed = s.seal_anchor(&id, &a);
        assert_eq!(s.open_anchor(&id, &sealed), Ok(a));
        assert_eq!(a.roster_anchor().head, Some(a.head));
        // Another key's anchor moved onto this key, another token, garbage.
        assert_eq!(
            s.open_anchor(&ApiKeyId::random(), &sealed),
            Err(AnchorError)
        );
        assert_eq!(
            SplitSecret::new([8; 32]).open_anchor(&id, &sealed),
            Err(AnchorError)
        );
        assert_eq!(s.open_anchor(&id, b""), Err(AnchorError));
        // The server's fabricated anchor, sealed under the bearer credential it saw.
        let forged = seal(
            &crate::crypto::SymmetricKey::from_bytes(Box::new(*s.bearer().expose())),
            &anchor_aad(&id),
            &anchor().encode(),
        );
        assert_eq!(s.open_anchor(&id, &forged), Err(AnchorError));
    }

    proptest! {
        #[test]
        fn any_flipped_bit_in_a_sealed_anchor_is_refused(at in any::<proptest::sample::Index>(), bit in 0u8..8) {
            let s = SplitSecret::new([3; 32]);
            let id = ApiKeyId::random();
            let mut sealed = s.seal_anchor(&id, &anchor());
            let i = at.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert_eq!(s.open_anchor(&id, &sealed), Err(AnchorError));
        }
    }
}
