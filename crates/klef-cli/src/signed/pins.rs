//! Where this account's environment heads are kept: the account's pins on a server, a sealed
//! file for the local vault.

use super::*;
/// Where this account's environment heads are kept.
pub(super) enum Pins<'a> {
    /// The local vault: a sealed file of its own.
    Local(LocalPins),
    /// A server: the account's pins (`Trust`).
    Member(Box<Trust<'a>>),
    /// A system key: no state between jobs (bounded by its CI anchor, DESIGN.md §9.4).
    None,
}

impl Pins<'_> {
    pub(super) fn head(&self, ws: &WorkspaceId, t: &Target) -> Option<ManifestHead> {
        match self {
            Pins::Local(p) => p.state.environment_head(ws, &t.env.id),
            Pins::Member(trust) => trust.environment_head(ws, &t.env.id),
            Pins::None => None,
        }
    }

    pub(super) fn record(
        &mut self,
        ws: &WorkspaceId,
        t: &Target,
        head: ManifestHead,
    ) -> Result<()> {
        let fork = |e: klef_core::trust::account_state::MergeError| {
            Failure::other(format!(
                "{}: the signed state differs from the one this account has seen ({e}): the server forked its history",
                t.describe()
            ))
        };
        match self {
            Pins::Local(p) => {
                // Unchanged on most reads: the file is written only when the head moved.
                if p.state.environment_head(ws, &t.env.id) != Some(head)
                    && p.state
                        .record_environment(ws, t.env.id, head)
                        .map_err(fork)?
                {
                    p.dirty = true;
                }
            }
            Pins::Member(trust) => trust.record_environment(ws, t.env.id, head).map_err(fork)?,
            Pins::None => {}
        }
        Ok(())
    }

    pub(super) async fn save(&mut self) -> Result<()> {
        match self {
            Pins::Local(p) => p.save(),
            Pins::Member(trust) => trust.save().await,
            Pins::None => Ok(()),
        }
    }
}

/// The local vault's heads: an [`AccountState`] sealed under the owner's account-state key in
/// `<data>/pins/local-<account>.bin`, with the vault's workspaces pinned to an all-zero
/// genesis (the local vault has no roster). Someone who can edit the vault file can delete
/// this file too (the vault then reads as a fresh client would), but cannot forge it.
pub(super) struct LocalPins {
    pub(super) path: PathBuf,
    pub(super) account: AccountId,
    pub(super) derived: DerivedSecrets,
    pub(super) state: AccountState,
    pub(super) dirty: bool,
}

impl LocalPins {
    pub(super) fn load(
        ctx: &Context,
        account: &Account,
        derived: DerivedSecrets,
        ws: WorkspaceId,
    ) -> Result<Self> {
        let path = Self::path_of(ctx, &account.id);
        let state = crate::trust::read_pins_file(
            &path,
            &derived,
            &account.id,
            "vault",
            "move it away to start again (this vault's history is then checked as new)",
        )?;
        let mut pins = Self {
            path,
            account: account.id,
            derived,
            state,
            dirty: false,
        };
        pins.ensure_workspace(ws)?;
        Ok(pins)
    }

    /// The path of `account`'s local pins.
    pub(super) fn path_of(ctx: &Context, account: &AccountId) -> PathBuf {
        ctx.dirs
            .data
            .join("pins")
            .join(format!("local-{account}.bin"))
    }

    /// Pins `ws` to the all-zero genesis the local vault uses (its heads hang off it).
    pub(super) fn ensure_workspace(&mut self, ws: WorkspaceId) -> Result<()> {
        if self.state.anchor(&ws).is_none() {
            let zero = EntryHash([0; 32]);
            self.state
                .record_roster(&RosterAnchor {
                    workspace: ws,
                    genesis: zero,
                    head: Some(RosterHead {
                        sequence: 0,
                        hash: zero,
                    }),
                })
                .map_err(|e| Failure::other(format!("{}: {e}", self.path.display())))?;
            self.dirty = true;
        }
        Ok(())
    }

    pub(super) fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        crate::trust::write_pins_file(&self.path, &self.derived, &self.state, &self.account)?;
        self.dirty = false;
        Ok(())
    }
}
