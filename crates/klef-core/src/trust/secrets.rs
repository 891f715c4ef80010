//! The secrets a device derives from an account's unlocked master key and keeps while unlocked
//! (in the CLI for one command, or in the agent for its session): the identity seed (DESIGN.md
//! §9.1) and the key that seals the account's pins (§9.2). The master key itself is dropped
//! once these are derived.

use std::fmt;

use zeroize::Zeroizing;

use super::account_state::{ACCOUNT_STATE_INFO, AccountState, SealedStateError};
use super::encoding::Labelled;
use super::identity::{IDENTITY_INFO, SigningKey};
use super::primitives::{hkdf_key, hkdf32, open, seal};
use super::roster::invite::InviteCode;
use crate::crypto::SymmetricKey;
use crate::ids::{AccountId, InviteId, WorkspaceId};
use secrecy::ExposeSecret as _;

/// HKDF `info` (over the account-state key) of the key sealing issued invite codes.
pub const INVITE_NOTE_INFO: &[u8] = b"klef/v1/invite-note";

/// HKDF `info` (over the account-state key) of the key sealing the offline copies a device
/// keeps of the environments it read (`KLEF_OFFLINE_COPY=1`).
pub const OFFLINE_COPY_INFO: &[u8] = b"klef/v1/offline-copy";

fn offline_aad(account: &AccountId, label: &str) -> Vec<u8> {
    Labelled::new("offline-copy")
        .id(&account.0)
        .str(label)
        .finish()
}

fn invite_aad(ws: &WorkspaceId, invite: &InviteId) -> Vec<u8> {
    Labelled::new("invite-note")
        .id(&ws.0)
        .id(&invite.0)
        .finish()
}

/// The identity seed and the account-state key of one account. Zeroized on drop; `Debug`
/// shows nothing secret.
pub struct DerivedSecrets {
    identity_seed: Zeroizing<[u8; 32]>,
    state_key: SymmetricKey,
}

impl fmt::Debug for DerivedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DerivedSecrets")
            .field("identity", &self.identity().verifying_key())
            .finish_non_exhaustive()
    }
}

/// What an admin's device keeps of an invitation it issued: the invite code, the role and
/// the access (`None`: every environment; else these environment ids). Plaintext: three lines,
/// the code's text, the role (`owner`, `admin`, `member`), and `*` or the environment ids
/// separated by `,`; sealed by [`DerivedSecrets::seal_invite`].
pub struct InviteNote {
    /// The code sent out of band.
    pub code: InviteCode,
    /// The role invited as.
    pub role: crate::model::Role,
    /// The environments shared (`None`: all).
    pub environments: Option<std::collections::BTreeSet<crate::ids::EnvironmentId>>,
}

impl InviteNote {
    fn encode(&self) -> Zeroizing<String> {
        let text = self.code.to_text();
        let access = match &self.environments {
            None => "*".to_owned(),
            Some(ids) => ids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        };
        Zeroizing::new(format!(
            "{}\n{}\n{access}",
            text.expose_secret(),
            self.role.as_str()
        ))
    }

    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.split('\n');
        let code = InviteCode::parse(lines.next()?).ok()?;
        let role = lines.next()?.parse().ok()?;
        let environments = match lines.next()? {
            "*" => None,
            "" => Some(std::collections::BTreeSet::new()),
            ids => Some(
                ids.split(',')
                    .map(|id| id.parse().ok())
                    .collect::<Option<_>>()?,
            ),
        };
        if lines.next().is_some() {
            return None;
        }
        Some(Self {
            code,
            role,
            environments,
        })
    }
}

impl DerivedSecrets {
    /// Derives both from the unlocked master key of `account`.
    #[must_use]
    pub fn derive(master_key: &SymmetricKey, account: &AccountId) -> Self {
        let mut info = Vec::with_capacity(IDENTITY_INFO.len() + 16);
        info.extend_from_slice(IDENTITY_INFO);
        info.extend_from_slice(account.0.as_bytes());
        Self {
            identity_seed: hkdf32(master_key.expose(), &info),
            state_key: hkdf_key(master_key.expose(), ACCOUNT_STATE_INFO),
        }
    }

    /// Rebuilds them from the bytes [`identity_seed`](Self::identity_seed) and
    /// [`state_key`](Self::state_key) exposed (the agent hands them back to its own user's
    /// `klef` process for one command).
    #[must_use]
    pub fn from_bytes(identity_seed: &[u8; 32], state_key: &[u8; 32]) -> Self {
        Self {
            identity_seed: Zeroizing::new(*identity_seed),
            state_key: SymmetricKey::from_bytes(Box::new(*state_key)),
        }
    }

    /// The identity signing key.
    #[must_use]
    pub fn identity(&self) -> SigningKey {
        SigningKey::from_seed(&self.identity_seed)
    }

    /// The identity seed's bytes (to hand to the agent).
    #[must_use]
    pub fn identity_seed(&self) -> &[u8; 32] {
        &self.identity_seed
    }

    /// The account-state key's bytes (to hand to the agent).
    #[must_use]
    pub fn state_key(&self) -> &[u8; 32] {
        self.state_key.expose()
    }

    /// Seals the account's pins.
    #[must_use]
    pub fn seal_state(&self, state: &AccountState, account: &AccountId) -> Vec<u8> {
        state.seal_with(&self.state_key, account)
    }

    /// Seals what this account issued with an invitation, to find it again at `klef workspace
    /// confirm` (kept on the issuing device only; the server never sees the code's secret):
    /// the code, and the role and access granted, which the server must not change.
    #[must_use]
    pub fn seal_invite(&self, ws: &WorkspaceId, invite: &InviteId, note: &InviteNote) -> Vec<u8> {
        let key = hkdf_key(self.state_key.expose(), INVITE_NOTE_INFO);
        seal(&key, &invite_aad(ws, invite), note.encode().as_bytes())
    }

    /// Opens a note sealed by [`seal_invite`](Self::seal_invite) for the same invite.
    #[must_use]
    pub fn open_invite(
        &self,
        ws: &WorkspaceId,
        invite: &InviteId,
        sealed: &[u8],
    ) -> Option<InviteNote> {
        let key = hkdf_key(self.state_key.expose(), INVITE_NOTE_INFO);
        let text = Zeroizing::new(open(&key, &invite_aad(ws, invite), sealed)?);
        InviteNote::parse(std::str::from_utf8(&text).ok()?)
    }

    /// Seals an offline copy of an environment (ciphertexts and verified state, as the agent
    /// keeps it) for this device's disk, bound to the account and to `label` (which server,
    /// project and environment it is a copy of).
    #[must_use]
    pub fn seal_offline_copy(&self, account: &AccountId, label: &str, copy: &[u8]) -> Vec<u8> {
        let key = hkdf_key(self.state_key.expose(), OFFLINE_COPY_INFO);
        seal(&key, &offline_aad(account, label), copy)
    }

    /// Opens a copy sealed by [`seal_offline_copy`](Self::seal_offline_copy) for the same
    /// account and label; `None` when altered, moved or sealed by another account.
    #[must_use]
    pub fn open_offline_copy(
        &self,
        account: &AccountId,
        label: &str,
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let key = hkdf_key(self.state_key.expose(), OFFLINE_COPY_INFO);
        open(&key, &offline_aad(account, label), sealed)
    }

    /// Seals `account`'s personal overrides of `env` as its record at `revision` (see
    /// [`personal`](super::personal)): only this account's unlocked devices can open it.
    #[must_use]
    pub fn seal_personal(
        &self,
        account: &AccountId,
        env: &crate::ids::EnvironmentId,
        revision: u64,
        overrides: &super::personal::Overrides,
    ) -> Vec<u8> {
        super::personal::seal_with(&self.state_key, account, env, revision, overrides)
    }

    /// Opens a record sealed by [`seal_personal`](Self::seal_personal) for the same account,
    /// environment and revision.
    pub fn open_personal(
        &self,
        account: &AccountId,
        env: &crate::ids::EnvironmentId,
        revision: u64,
        sealed: &[u8],
    ) -> Result<super::personal::Overrides, super::personal::PersonalError> {
        super::personal::open_with(&self.state_key, account, env, revision, sealed)
    }

    /// Opens the account's sealed pins.
    pub fn open_state(
        &self,
        account: &AccountId,
        sealed: &[u8],
    ) -> Result<AccountState, SealedStateError> {
        AccountState::open_with(&self.state_key, account, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_copies_open_only_for_their_account_and_label() {
        let account = AccountId::random();
        let secrets = DerivedSecrets::from_bytes(&[1; 32], &[2; 32]);
        let sealed = secrets.seal_offline_copy(&account, "s#a\nid:p\ndev", b"copy");
        assert_eq!(
            secrets
                .open_offline_copy(&account, "s#a\nid:p\ndev", &sealed)
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"copy"[..])
        );
        assert!(
            secrets
                .open_offline_copy(&account, "s#a\nid:p\nprod", &sealed)
                .is_none()
        );
        assert!(
            secrets
                .open_offline_copy(&AccountId::random(), "s#a\nid:p\ndev", &sealed)
                .is_none()
        );
        let other = DerivedSecrets::from_bytes(&[1; 32], &[3; 32]);
        assert!(
            other
                .open_offline_copy(&account, "s#a\nid:p\ndev", &sealed)
                .is_none()
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(
            secrets
                .open_offline_copy(&account, "s#a\nid:p\ndev", &tampered)
                .is_none()
        );
    }

    #[test]
    fn derived_like_the_trust_records_derive_them() {
        let master = SymmetricKey::from_bytes(Box::new([7; 32]));
        let account = AccountId::random();
        let secrets = DerivedSecrets::derive(&master, &account);
        assert_eq!(
            secrets.identity().verifying_key(),
            SigningKey::derive_identity(&master, &account).verifying_key()
        );
        let state = AccountState::default();
        let sealed = secrets.seal_state(&state, &account);
        assert_eq!(
            AccountState::open(&master, &account, &sealed).unwrap(),
            state
        );
        let again = DerivedSecrets::from_bytes(secrets.identity_seed(), secrets.state_key());
        assert_eq!(again.open_state(&account, &sealed).unwrap(), state);
        assert!(again.open_state(&AccountId::random(), &sealed).is_err());

        let (ws, invite) = (WorkspaceId::random(), InviteId::random());
        let code = InviteCode::generate(crate::trust::roster::EntryHash([3; 32]));
        let staging = crate::ids::EnvironmentId::random();
        for environments in [None, Some([staging].into_iter().collect())] {
            let note = InviteNote {
                code: InviteCode::parse(code.to_text().expose_secret()).unwrap(),
                role: crate::model::Role::Member,
                environments: environments.clone(),
            };
            let sealed = secrets.seal_invite(&ws, &invite, &note);
            let back = again.open_invite(&ws, &invite, &sealed).unwrap();
            assert_eq!(
                back.code.to_text().expose_secret(),
                code.to_text().expose_secret()
            );
            assert_eq!(back.role, crate::model::Role::Member);
            assert_eq!(back.environments, environments);
            assert!(
                again
                    .open_invite(&ws, &InviteId::random(), &sealed)
                    .is_none()
            );
        }
    }
}
