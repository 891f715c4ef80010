//! The out-of-band ceremonies of DESIGN.md §9.2: invite codes (how an invitee pins a roster and
//! proves which keys are theirs without trusting the server) and the verification code of a
//! roster head (how two admins compare their rosters).
//!
//! **Invite code.** The admin's client makes `klef_inv_<84 base32 symbols>` encoding
//! `genesis hash (32) ‖ secret (16) ‖ check (4)`, where `check` is the first 4 bytes of
//! `SHA-256(labelled("invite-code", genesis hash, secret))` (it catches typos, so a mistyped code
//! is not blamed on the server). The admin sends it out of band (chat, in person), never
//! through the server. The invitee's client pins the genesis hash from it, and sends
//! `mac = HMAC-SHA256(key = secret, labelled("invite-mac", workspace id, invite id, genesis
//! hash, account id, Ed25519 identity key, X25519 key))` with its acceptance. `confirm` on the
//! admin's side recomputes it from the keys the server relays: a server that substituted any
//! key, or relayed the invite to another account, cannot produce the MAC without the secret.

use std::fmt;

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::{EntryHash, RosterHead};
use crate::crypto::fill_random;
use crate::ids::{InviteId, WorkspaceId};
use crate::trust::encoding::Labelled;
use crate::trust::identity::PublicIdentity;
use crate::trust::primitives::{hmac_sha256, hmac_sha256_verify, sha256};
use crate::trust::text::{base32, grouped_hex, parse_base32};

/// Every invite code starts with this.
pub const INVITE_PREFIX: &str = "klef_inv_";
/// Bytes of the secret (128 bits).
const SECRET_LEN: usize = 16;
/// Bytes of the typo check.
const CHECK_LEN: usize = 4;
/// Bytes encoded in a code.
const PAYLOAD_LEN: usize = 32 + SECRET_LEN + CHECK_LEN;

/// Why text is not an invite code. Never echoes the text (it holds a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InviteCodeError {
    /// Not `klef_inv_` followed by 84 base32 symbols.
    #[error("not a klef invite code: expected klef_inv_ followed by 84 letters and digits")]
    NotACode,
    /// Well-formed but the check bytes do not match: a typo or a truncated copy.
    #[error("the invite code is mistyped or incomplete (its check digits do not match)")]
    Mistyped,
}

/// A MAC over an invitee's identity, made with an invite code's secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InviteMac(pub [u8; 32]);

impl fmt::Debug for InviteMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InviteMac({})", hex::encode(self.0))
    }
}

/// The invitee's MAC does not match the identity the server relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the invitee's keys do not match their invite-code check: the server substituted their keys or relayed another account"
)]
pub struct InviteMacMismatch;

/// An invite code: the genesis hash to pin and a 128-bit secret. The secret is zeroized on
/// drop and never shown by `Debug`.
pub struct InviteCode {
    genesis: EntryHash,
    secret: Zeroizing<[u8; SECRET_LEN]>,
}

impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteCode")
            .field("genesis", &self.genesis)
            .field("secret", &"[redacted]")
            .finish()
    }
}

fn check_bytes(genesis: &EntryHash, secret: &[u8; SECRET_LEN]) -> [u8; CHECK_LEN] {
    let digest = sha256(
        Labelled::new("invite-code")
            .field(&genesis.0)
            .field(secret)
            .as_bytes(),
    );
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&digest[..CHECK_LEN]);
    out
}

impl InviteCode {
    /// A fresh code for the roster whose genesis hash is `genesis`.
    #[must_use]
    pub fn generate(genesis: EntryHash) -> Self {
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        fill_random(secret.as_mut());
        Self { genesis, secret }
    }

    /// A code from its parts (tests and stored codes).
    #[must_use]
    pub fn from_parts(genesis: EntryHash, secret: [u8; SECRET_LEN]) -> Self {
        Self {
            genesis,
            secret: Zeroizing::new(secret),
        }
    }

    /// The genesis hash the invitee pins.
    #[must_use]
    pub fn genesis(&self) -> EntryHash {
        self.genesis
    }

    /// The text to send out of band: `klef_inv_` and 84 lower-case base32 symbols.
    #[must_use]
    pub fn to_text(&self) -> SecretString {
        let mut payload = Zeroizing::new([0u8; PAYLOAD_LEN]);
        payload[..32].copy_from_slice(&self.genesis.0);
        payload[32..32 + SECRET_LEN].copy_from_slice(self.secret.as_ref());
        payload[32 + SECRET_LEN..].copy_from_slice(&check_bytes(&self.genesis, &self.secret));
        let encoded = Zeroizing::new(base32(payload.as_ref()));
        let mut out = Zeroizing::new(String::with_capacity(INVITE_PREFIX.len() + encoded.len()));
        out.push_str(INVITE_PREFIX);
        out.push_str(&encoded);
        SecretString::from(out.as_str())
    }

    /// Parses a code as pasted: surrounding whitespace is ignored, symbols in either case.
    pub fn parse(text: &str) -> Result<Self, InviteCodeError> {
        let rest = text
            .trim()
            .strip_prefix(INVITE_PREFIX)
            .ok_or(InviteCodeError::NotACode)?;
        // The right length in the right alphabet that does not decode (its last symbol carries
        // non-zero padding bits) is a typo, like a wrong check, not another kind of text.
        let payload = Zeroizing::new(parse_base32::<PAYLOAD_LEN>(rest).ok_or_else(|| {
            if rest.len() == (PAYLOAD_LEN * 8).div_ceil(5)
                && rest.chars().all(|c| c.is_ascii_alphanumeric())
            {
                InviteCodeError::Mistyped
            } else {
                InviteCodeError::NotACode
            }
        })?);
        let genesis = EntryHash(
            payload[..32]
                .try_into()
                .map_err(|_| InviteCodeError::NotACode)?,
        );
        let secret: Zeroizing<[u8; SECRET_LEN]> = Zeroizing::new(
            payload[32..32 + SECRET_LEN]
                .try_into()
                .map_err(|_| InviteCodeError::NotACode)?,
        );
        if !crate::crypto::constant_time_eq(
            &check_bytes(&genesis, &secret),
            &payload[32 + SECRET_LEN..],
        ) {
            return Err(InviteCodeError::Mistyped);
        }
        Ok(Self { genesis, secret })
    }

    fn mac_message(
        &self,
        workspace: &WorkspaceId,
        invite: &InviteId,
        identity: &PublicIdentity,
    ) -> Vec<u8> {
        Labelled::new("invite-mac")
            .id(&workspace.0)
            .id(&invite.0)
            .field(&self.genesis.0)
            .id(&identity.account.0)
            .field(&identity.identity_key.to_bytes())
            .field(&identity.x25519_key.0)
            .finish()
    }

    /// The invitee's MAC over its own identity (computed from its unlocked keys).
    #[must_use]
    pub fn mac(
        &self,
        workspace: &WorkspaceId,
        invite: &InviteId,
        identity: &PublicIdentity,
    ) -> InviteMac {
        InviteMac(hmac_sha256(
            self.secret.as_ref(),
            &self.mac_message(workspace, invite, identity),
        ))
    }

    /// The admin's check of the MAC against the identity the server relays (constant time).
    pub fn check(
        &self,
        workspace: &WorkspaceId,
        invite: &InviteId,
        identity: &PublicIdentity,
        mac: &InviteMac,
    ) -> Result<(), InviteMacMismatch> {
        if hmac_sha256_verify(
            self.secret.as_ref(),
            &self.mac_message(workspace, invite, identity),
            &mac.0,
        ) {
            Ok(())
        } else {
            Err(InviteMacMismatch)
        }
    }
}

/// A short code naming a roster head, for two admins to compare out of band
/// (`klef workspace verify`): the first 8 bytes of
/// `SHA-256(labelled("roster-code", workspace id, sequence, entry hash))`, shown as four groups
/// of four hex digits. Equal codes at equal sequence numbers mean the same roster (a forger
/// would need a second preimage of 64 bits *under entries signed by admins*, which the server
/// cannot produce at will).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationCode {
    /// The head's sequence number (shown next to the code).
    pub sequence: u64,
    /// The code bytes.
    pub code: [u8; 8],
}

impl VerificationCode {
    /// The code of `head` in `workspace`.
    #[must_use]
    pub fn of(workspace: &WorkspaceId, head: &RosterHead) -> Self {
        let digest = sha256(
            Labelled::new("roster-code")
                .id(&workspace.0)
                .u64(head.sequence)
                .field(&head.hash.0)
                .as_bytes(),
        );
        let mut code = [0u8; 8];
        code.copy_from_slice(&digest[..8]);
        Self {
            sequence: head.sequence,
            code,
        }
    }
}

impl fmt::Display for VerificationCode {
    /// `3f2a-91c0-77de-0b41`; the sequence is shown separately by the caller.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&grouped_hex(&self.code))
    }
}

impl fmt::Debug for VerificationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerificationCode(entry {}, {self})", self.sequence)
    }
}

impl super::VerifiedRoster {
    /// The verification code of this roster's head.
    #[must_use]
    pub fn verification_code(&self) -> VerificationCode {
        VerificationCode::of(&self.workspace(), &self.head())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_typo_in_the_last_symbol_is_mistyped_not_another_kind_of_text() {
        let code = InviteCode::generate(EntryHash([7; 32]));
        let text = code.to_text();
        let text = text.expose_secret();
        // The last symbol carries 4 padding bits, which must be zero: every other symbol there
        // is a typo.
        let last = text.chars().last().unwrap();
        let typo: String = text[..text.len() - 1]
            .chars()
            .chain(std::iter::once(if last == 'z' { 'y' } else { 'z' }))
            .collect();
        assert_eq!(
            InviteCode::parse(&typo).unwrap_err(),
            InviteCodeError::Mistyped
        );
        assert_eq!(
            InviteCode::parse("klef_inv_short").unwrap_err(),
            InviteCodeError::NotACode
        );
    }

    use proptest::prelude::*;
    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::crypto::{SymmetricKey, generate_keypair};
    use crate::ids::AccountId;
    use crate::trust::identity::SigningKey;

    fn identity() -> PublicIdentity {
        let account = AccountId::random();
        PublicIdentity {
            account,
            identity_key: SigningKey::derive_identity(&SymmetricKey::generate(), &account)
                .verifying_key(),
            x25519_key: generate_keypair().1,
        }
    }

    #[test]
    fn code_text_round_trips_and_catches_typos() {
        let code = InviteCode::generate(EntryHash([7; 32]));
        let text = code.to_text();
        let text = text.expose_secret();
        assert!(text.starts_with(INVITE_PREFIX));
        assert_eq!(text.len(), INVITE_PREFIX.len() + 84);
        let back = InviteCode::parse(&format!(
            "  {}\n",
            text.to_uppercase().replace("KLEF_INV_", "klef_inv_")
        ))
        .unwrap();
        assert_eq!(back.genesis(), code.genesis());
        assert_eq!(*back.secret, *code.secret);
        assert!(!format!("{code:?}").contains(&hex::encode(*code.secret)));

        // One symbol changed: caught by the check bytes.
        let mut typo = text.to_owned().into_bytes();
        let at = INVITE_PREFIX.len() + 60;
        typo[at] = if typo[at] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            InviteCode::parse(std::str::from_utf8(&typo).unwrap()).unwrap_err(),
            InviteCodeError::Mistyped
        );
        assert_eq!(
            InviteCode::parse(&text[..text.len() - 1]).unwrap_err(),
            InviteCodeError::NotACode
        );
        assert_eq!(
            InviteCode::parse("klef_sys_abc").unwrap_err(),
            InviteCodeError::NotACode
        );
    }

    #[test]
    fn mac_binds_every_input() {
        let code = InviteCode::generate(EntryHash([1; 32]));
        let ws = WorkspaceId::random();
        let invite = InviteId::random();
        let me = identity();
        let mac = code.mac(&ws, &invite, &me);
        assert_eq!(code.check(&ws, &invite, &me, &mac), Ok(()));
        let other = identity();
        let substituted_x = PublicIdentity {
            x25519_key: other.x25519_key,
            ..me
        };
        let substituted_ed = PublicIdentity {
            identity_key: other.identity_key,
            ..me
        };
        let relayed = PublicIdentity {
            account: other.account,
            ..me
        };
        for (what, ident) in [
            ("x25519", substituted_x),
            ("ed25519", substituted_ed),
            ("account", relayed),
        ] {
            assert_eq!(
                code.check(&ws, &invite, &ident, &mac),
                Err(InviteMacMismatch),
                "{what}"
            );
        }
        assert!(
            code.check(&WorkspaceId::random(), &invite, &me, &mac)
                .is_err()
        );
        assert!(code.check(&ws, &InviteId::random(), &me, &mac).is_err());
        let other_code = InviteCode::generate(EntryHash([1; 32]));
        assert!(other_code.check(&ws, &invite, &me, &mac).is_err());
    }

    #[test]
    fn verification_codes() {
        let ws = WorkspaceId::random();
        let head = RosterHead {
            sequence: 3,
            hash: EntryHash([9; 32]),
        };
        let code = VerificationCode::of(&ws, &head);
        assert_eq!(code.to_string().len(), 19);
        assert_eq!(code, VerificationCode::of(&ws, &head));
        assert_ne!(
            code,
            VerificationCode::of(
                &ws,
                &RosterHead {
                    sequence: 4,
                    ..head
                }
            )
        );
        assert_ne!(
            code,
            VerificationCode::of(
                &ws,
                &RosterHead {
                    hash: EntryHash([8; 32]),
                    ..head
                }
            )
        );
        assert_ne!(code, VerificationCode::of(&WorkspaceId::random(), &head));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "klef_inv_[0-9a-zA-Z]{0,90}") {
            let _ = InviteCode::parse(&text);
        }
    }
}
