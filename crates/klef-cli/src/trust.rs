//! What this device trusts on a Klef server (DESIGN.md §9.1, §9.2): its own identity, computed
//! from its own unlocked keys, and the account's pins (each workspace's roster genesis and the
//! newest entry this account has verified), kept sealed under a key derived from the master key
//! both in a local file and on the server, merged by maximum so a second device inherits them.
//!
//! Every roster a command uses comes through [`Trust::roster`], which verifies the served
//! entries against the pins and records the new head. A server cannot forge an entry, rewrite
//! or shorten the chain, substitute a member's keys or show a device a genesis it did not pin;
//! what it can do is refuse to answer.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use klef_core::backend::BackendErrorKind;
use klef_core::ids::{EnvironmentId, WorkspaceId};
use klef_core::model::{Account, Blob, Role, RosterEntry, Workspace};
use klef_core::trust::account_state::{AccountState, MergeError};
use klef_core::trust::identity::{PublicIdentity, Signature};
use klef_core::trust::manifest::ManifestHead;
use klef_core::trust::roster::{Access, MemberRecord};
use klef_core::trust::roster::{RosterAnchor, SignedEntry, VerifiedRoster};
use klef_core::trust::secrets::DerivedSecrets;
use klef_core::wire::MemberStatus;

use crate::context::Context;
use crate::diagnostics::Failure;
use crate::remote::RemoteBackend;
use crate::unlock::KeySource;

/// The unlocked view of one account on one server: its identity and its pins.
pub(crate) struct Trust<'a> {
    remote: &'a RemoteBackend,
    account: Account,
    derived: DerivedSecrets,
    me: PublicIdentity,
    state: AccountState,
    /// The server's revision of the sealed pins this device last read.
    server_revision: u64,
    local: PathBuf,
    dirty: bool,
    printer: crate::printer::Printer,
}

impl<'a> Trust<'a> {
    /// Unlocks the account's identity and pins: derives the identity from the unlocked keys,
    /// refuses a server whose copy of them differs, publishes the identity key of an account
    /// made before identity keys, and merges the local and the server's pins.
    pub(crate) async fn load(
        ctx: &Context,
        remote: &'a RemoteBackend,
        keys: &KeySource,
    ) -> Result<Trust<'a>> {
        let account = remote.me().await?.account.clone();
        let (derived, x25519_key) = keys.derived().await?;
        let me = PublicIdentity {
            account: account.id,
            identity_key: derived.identity().verifying_key(),
            x25519_key,
        };
        check_own_account(&me, &account)?;
        if account.identity_key.is_none() {
            publish_identity(remote, &me).await?;
        }
        let local = pins_path(ctx, remote.server(), &account);
        let mut state = read_pins_file(
            &local,
            &derived,
            &account.id,
            "account",
            "move it away to start again from the copy on the server",
        )?;
        let server = remote.account_state().await?;
        if let Some(sealed) = &server.sealed {
            match derived.open_state(&account.id, sealed.as_bytes()) {
                Ok(theirs) => {
                    state = state.merge(&theirs).map_err(|e| {
                        Failure::other(format!(
                            "the server's copy of this account's pins disagrees with this device's: {e}; the server showed two devices different histories"
                        ))
                    })?;
                }
                Err(_) => ctx.printer.warn(
                    "the server's copy of this account's pins does not open: it was altered; this device keeps its own",
                ),
            }
        }
        Ok(Trust {
            remote,
            account,
            derived,
            me,
            state,
            server_revision: server.revision,
            local,
            dirty: false,
            printer: ctx.printer.clone(),
        })
    }

    /// The server this trust is about.
    pub(crate) fn remote(&self) -> &'a RemoteBackend {
        self.remote
    }

    /// This device's identity, from its own keys.
    pub(crate) fn me(&self) -> &PublicIdentity {
        &self.me
    }

    /// The account (as the server answered it; its keys were checked against this device's).
    pub(crate) fn account(&self) -> &Account {
        &self.account
    }

    /// The secrets derived from the master key.
    pub(crate) fn derived(&self) -> &DerivedSecrets {
        &self.derived
    }

    /// The identity signing key.
    pub(crate) fn signing_key(&self) -> klef_core::trust::identity::SigningKey {
        self.derived.identity()
    }

    /// The pin of `ws`, if this account has one.
    pub(crate) fn anchor(&self, ws: &WorkspaceId) -> Option<RosterAnchor> {
        self.state.anchor(ws)
    }

    /// The environment head this account has seen, if any.
    pub(crate) fn environment_head(
        &self,
        ws: &WorkspaceId,
        env: &EnvironmentId,
    ) -> Option<ManifestHead> {
        self.state.environment_head(ws, env)
    }

    /// Records a verified environment head (the maximum of what was pinned and this; a
    /// different manifest at a pinned revision is a fork).
    pub(crate) fn record_environment(
        &mut self,
        ws: &WorkspaceId,
        env: EnvironmentId,
        head: ManifestHead,
    ) -> Result<(), MergeError> {
        if self.state.environment_head(ws, &env) == Some(head) {
            return Ok(());
        }
        if self.state.record_environment(ws, env, head)? {
            self.dirty = true;
        }
        Ok(())
    }

    /// The highest revision of this account's personal overrides of `env` seen, if any.
    pub(crate) fn personal_revision(&self, env: &EnvironmentId) -> Option<u64> {
        self.state.personal_revision(env)
    }

    /// Records a revision of this account's personal overrides of `env` as seen (never
    /// lowering it).
    pub(crate) fn record_personal(&mut self, env: EnvironmentId, revision: u64) {
        if self.state.record_personal(env, revision) {
            self.dirty = true;
        }
    }

    /// Forgets an environment's head (`klef backup import --allow-older`): this device accepts
    /// an older state of it from now on. Other devices keep theirs until they see this copy.
    pub(crate) fn forget_environment(&mut self, ws: &WorkspaceId, env: &EnvironmentId) {
        self.state.forget_environment(ws, env);
        self.dirty = true;
    }

    /// Records a verified roster's head as this account's pin of its workspace (the maximum of
    /// what was pinned and this).
    pub(crate) fn pin(&mut self, roster: &VerifiedRoster) -> Result<()> {
        let before = self.state.anchor(&roster.workspace());
        self.state.record_roster(&roster.anchor()).map_err(|e| {
            Failure::other(format!(
                "the roster of workspace {} disagrees with this account's pin: {e}",
                roster.workspace()
            ))
        })?;
        // Written back only when the pin moved: most commands re-verify an unchanged roster.
        if self.state.anchor(&roster.workspace()) != before {
            self.dirty = true;
        }
        Ok(())
    }

    /// The verified roster of `ws` (named `name` in messages): every entry the server serves is
    /// checked against this account's pin, and the pin moves to the new head.
    pub(crate) async fn roster(&mut self, ws: &WorkspaceId, name: &str) -> Result<VerifiedRoster> {
        let Some(anchor) = self.anchor(ws) else {
            return Err(not_pinned(name).into());
        };
        let entries = self.remote.roster(ws, None).await?;
        let roster = verify_served(&anchor, &entries)
            .map_err(|e| Failure::other(format!("workspace \"{name}\": {e}")))?;
        self.pin(&roster)?;
        Ok(roster)
    }

    /// [`Trust::roster`] for a workspace this account has pinned, else `None` (a workspace made
    /// before signed rosters, or one this device never verified: nothing from it is trusted).
    pub(crate) async fn roster_if_pinned(
        &mut self,
        ws: &WorkspaceId,
        name: &str,
    ) -> Result<Option<VerifiedRoster>> {
        if self.anchor(ws).is_none() {
            return Ok(None);
        }
        self.roster(ws, name).await.map(Some)
    }

    /// [`Trust::roster`], or, for a workspace made before signed rosters (the server has no
    /// entry and this account pinned none), a new roster its owner starts now: a genesis
    /// listing only the owner, signed here, stored and pinned. Nobody else is trusted by it;
    /// members confirmed before it are vouched for again with `klef workspace confirm`. Anyone
    /// else gets an error naming the owner.
    pub(crate) async fn roster_or_adopt(&mut self, ws: &Workspace) -> Result<VerifiedRoster> {
        match self.roster_or_adopt_if_owner(ws).await? {
            Some(roster) => Ok(roster),
            None => Err(no_roster_yet(ws).into()),
        }
    }

    /// [`Trust::roster_or_adopt`], with `None` instead of an error for a workspace made before
    /// signed rosters whose owner is someone else.
    pub(crate) async fn roster_or_adopt_if_owner(
        &mut self,
        ws: &Workspace,
    ) -> Result<Option<VerifiedRoster>> {
        if self.anchor(&ws.id).is_some() {
            return self.roster(&ws.id, &ws.name).await.map(Some);
        }
        if !self.remote.roster(&ws.id, None).await?.is_empty() {
            return Err(not_pinned(&ws.name).into());
        }
        let members = self.remote.members(&ws.id).await.unwrap_or_default();
        let me = self.me;
        if members
            .iter()
            .find(|m| m.account_id == Some(me.account))
            .is_none_or(|m| m.role != Role::Owner)
            && !ws.personal
        {
            return Ok(None);
        }
        let record = MemberRecord {
            account: me.account,
            email: self.account.email.clone().unwrap_or_default(),
            identity_key: me.identity_key,
            x25519_key: me.x25519_key,
            role: Role::Owner,
            access: Access::All,
        };
        let (genesis, roster) = VerifiedRoster::create(ws.id, record, &self.signing_key())
            .map_err(|e| {
                Failure::other(format!("cannot start the roster of \"{}\": {e}", ws.name))
            })?;
        self.remote
            .append_roster(&ws.id, vec![to_wire(&genesis, 0)])
            .await
            .with_context(|| format!("failed to store the new roster of \"{}\"", ws.name))?;
        self.pin(&roster)?;
        let earlier = members
            .iter()
            .filter(|m| m.account_id != Some(me.account) && m.status == MemberStatus::Confirmed)
            .map(|m| m.email.as_str())
            .collect::<Vec<_>>();
        if !earlier.is_empty() {
            self.printer.warn(&format!(
                "started a signed roster for workspace \"{}\" with you as its owner; vouch for the members confirmed before it ({}) with `klef workspace confirm EMAIL --fingerprint FP`, or keys will not be wrapped to them",
                ws.name,
                earlier.join(", ")
            ));
        }
        Ok(Some(roster))
    }

    /// Writes the pins back (locally, then to the server) when they changed. A server copy
    /// written meanwhile by another device is merged in first.
    pub(crate) async fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        write_pins_file(&self.local, &self.derived, &self.state, &self.account.id)?;
        for _ in 0..3 {
            let sealed = self.derived.seal_state(&self.state, &self.account.id);
            match self
                .remote
                .put_account_state(Blob(sealed), self.server_revision)
                .await
            {
                Ok(done) => {
                    self.server_revision = done.revision;
                    self.dirty = false;
                    return Ok(());
                }
                Err(e) if e.kind() == BackendErrorKind::Conflict => {
                    let server = self.remote.account_state().await?;
                    if let Some(theirs) = server
                        .sealed
                        .as_ref()
                        .and_then(|s| self.derived.open_state(&self.account.id, s.as_bytes()).ok())
                    {
                        self.state = self.state.merge(&theirs).map_err(|e| {
                            Failure::other(format!(
                                "the server's copy of this account's pins disagrees with this device's: {e}"
                            ))
                        })?;
                    }
                    self.server_revision = server.revision;
                }
                Err(e) => {
                    return Err(e).context("failed to store this account's pins on the server");
                }
            }
        }
        Err(
            Failure::other("failed to store this account's pins: other devices kept writing")
                .into(),
        )
    }
}

/// A workspace made before signed rosters, for someone who is not its owner.
pub(crate) fn no_roster_yet(ws: &Workspace) -> Failure {
    Failure::other(format!(
        "workspace \"{}\" has no signed roster yet (it was made before signed rosters)",
        ws.name
    ))
    .hint("its owner starts one by running `klef workspace verify` in it")
}

/// The roster of an unpinned workspace is never trusted on first sight.
pub(crate) fn not_pinned(name: &str) -> Failure {
    Failure::other(format!(
        "this account has not pinned the roster of workspace \"{name}\" yet, so its members' keys cannot be verified"
    ))
    .hint("accept the invitation with the invite code an admin sent you (`klef workspace accept ID --code …`), or compare the owner's fingerprint (`--owner-fingerprint`)")
}

/// Verifies served entries against `anchor`.
pub(crate) fn verify_served(
    anchor: &RosterAnchor,
    entries: &[RosterEntry],
) -> Result<VerifiedRoster, String> {
    let signed = to_signed(entries)?;
    VerifiedRoster::verify(anchor, &signed).map_err(|e| e.to_string())
}

/// Served entries as signed entries (a signature of the wrong length is the server's doing).
pub(crate) fn to_signed(entries: &[RosterEntry]) -> Result<Vec<SignedEntry>, String> {
    entries
        .iter()
        .map(|e| {
            Ok(SignedEntry {
                body: e.body.as_bytes().to_vec(),
                signature: Signature::from_slice(e.signature.as_bytes()).ok_or_else(|| {
                    format!(
                        "roster entry {} carries a malformed signature: the server altered it",
                        e.sequence
                    )
                })?,
            })
        })
        .collect()
}

/// A signed entry as sent to the server.
pub(crate) fn to_wire(entry: &SignedEntry, sequence: u64) -> RosterEntry {
    RosterEntry {
        sequence,
        body: Blob(entry.body.clone()),
        signature: Blob(entry.signature.0.to_vec()),
    }
}

/// Refuses a server whose copy of this account's keys differs from the ones this device holds.
fn check_own_account(me: &PublicIdentity, account: &Account) -> Result<()> {
    let identity = account.identity_key.as_ref().map_or_else(
        || me.identity_key.to_bytes().to_vec(),
        |k| k.as_bytes().to_vec(),
    );
    me.check_server_copy(&identity, account.keys.public_key.as_bytes())
        .map_err(|e| {
            Failure::other(format!("{e} (account {})", account.id))
                .hint("do not confirm, share or invite anything through this server; tell its operator")
                .into()
        })
}

async fn publish_identity(remote: &RemoteBackend, me: &PublicIdentity) -> Result<()> {
    remote
        .publish_identity(Blob(me.identity_key.to_bytes().to_vec()))
        .await
        .context("failed to publish this account's identity key")
}

/// Reads a sealed pins file (a missing one is empty pins); one that does not open with
/// `derived` is an error naming the file, the `owner` (`account`, `vault`) and what to do.
pub(crate) fn read_pins_file(
    path: &std::path::Path,
    derived: &DerivedSecrets,
    account: &klef_core::ids::AccountId,
    owner: &str,
    hint: &str,
) -> Result<AccountState> {
    match std::fs::read(path) {
        Ok(bytes) => derived.open_state(account, &bytes).map_err(|_| {
            Failure::other(format!(
                "{} does not open with this {owner}'s keys: it was altered or belongs to another {owner}",
                path.display()
            ))
            .hint(hint)
            .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AccountState::default()),
        Err(e) => Err(e).with_context(|| format!("failed to read {}", path.display())),
    }
}

/// Seals `state` and writes it to `path` atomically (mode 0600, private directory).
pub(crate) fn write_pins_file(
    path: &std::path::Path,
    derived: &DerivedSecrets,
    state: &AccountState,
    account: &klef_core::ids::AccountId,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        crate::dirs::create_private_dir(dir)?;
    }
    crate::fsutil::write_atomic(path, &derived.seal_state(state, account), 0o600)
}

/// `<data>/pins/<server hash>-<account id>.bin`.
fn pins_path(ctx: &Context, server: &str, account: &Account) -> PathBuf {
    let server_hash = &klef_core::crypto::sha256_hex(server.as_bytes())[..16];
    ctx.dirs
        .data
        .join("pins")
        .join(format!("{server_hash}-{}.bin", account.id))
}
