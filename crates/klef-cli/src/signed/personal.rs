//! This account's personal overrides of an opened environment (`crate::personal`): opened from
//! the record served with the environment's state, checked against the highest revision this
//! account has seen (kept in its sealed pins), and written back as the next revision.

use klef_core::trust::personal::Overrides;

use super::*;
use crate::personal::Personal;

impl Pins<'_> {
    /// The account whose overrides these pins guard, its derived secrets and the highest
    /// revision of its overrides of `env` it has seen; `None` for a system key (no overrides).
    fn personal_keys(
        &self,
        env: &klef_core::ids::EnvironmentId,
    ) -> Option<(AccountId, &DerivedSecrets, Option<u64>)> {
        match self {
            Pins::Local(p) => Some((p.account, &p.derived, p.state.personal_revision(env))),
            Pins::Member(trust) => Some((
                trust.account().id,
                trust.derived(),
                trust.personal_revision(env),
            )),
            Pins::None => None,
        }
    }

    /// Records a revision of this account's overrides of `env` as seen.
    fn record_personal(&mut self, env: klef_core::ids::EnvironmentId, revision: u64) {
        match self {
            Pins::Local(p) => {
                if p.state.record_personal(env, revision) {
                    p.dirty = true;
                }
            }
            Pins::Member(trust) => trust.record_personal(env, revision),
            Pins::None => {}
        }
    }
}

/// What to do when this account says to start again: `klef unset --personal --all` after its
/// record was lost (a restored backup) or is withheld.
const START_OVER: &str =
    "if they were lost (a restored backup), `klef unset --personal --all` starts them again, empty";

/// Opens the served record of this account's overrides of `t`'s environment: `None` for a
/// system key; else the overrides (empty when there is no record). A record that does not
/// open, or one older than this account has seen (or none when it has seen one), is refused:
/// the server rolled it back or withheld it. With `start_over` (`klef unset --personal --all`)
/// such a record is set aside instead: the overrides read as empty, and the next write goes
/// above every revision seen.
pub(super) fn open_served(
    b: &AnyBackend,
    t: &Target,
    pins: &mut Pins<'_>,
    served: Option<klef_core::model::PersonalRecord>,
    start_over: bool,
) -> Result<Option<Personal>> {
    let Some((account, derived, seen)) = pins.personal_keys(&t.env.id) else {
        return Ok(None);
    };
    let seen = seen.unwrap_or(0);
    let stored = served.as_ref().map_or(0, |r| r.revision);
    let lost = || {
        Ok(Some(Personal {
            revision: seen.max(stored),
            stored,
            overrides: Overrides::new(),
            lost: true,
        }))
    };
    let Some(record) = served else {
        if seen > 0 {
            if start_over {
                return lost();
            }
            return Err(blame(
                b,
                Failure::other(format!(
                    "the server withheld your personal overrides of {}: this account has seen revision {seen} of them; nothing was read",
                    t.describe()
                )),
            )
            .hint(START_OVER)
            .into());
        }
        return Ok(Some(Personal::default()));
    };
    if record.revision < seen {
        if start_over {
            return lost();
        }
        return Err(blame(
            b,
            Failure::other(format!(
                "the server served an older copy of your personal overrides of {} (revision {}; this account has seen revision {seen}): it rolled them back; nothing was read",
                t.describe(),
                record.revision
            )),
        )
        .hint(START_OVER)
        .into());
    }
    let overrides = match derived.open_personal(
        &account,
        &t.env.id,
        record.revision,
        record.sealed.as_bytes(),
    ) {
        Ok(o) => o,
        Err(_) if start_over => return lost(),
        Err(e) => {
            return Err(blame(b, Failure::other(format!("{}: {e}", t.describe())))
                .hint(START_OVER)
                .into());
        }
    };
    pins.record_personal(t.env.id, record.revision);
    Ok(Some(Personal {
        revision: record.revision,
        stored: record.revision,
        overrides,
        lost: false,
    }))
}

impl Opened<'_> {
    /// Seals `overrides` as this account's next record of `t`'s environment, stores it
    /// (compare-and-swap on the revision read: a write by another device in between is a
    /// conflict, nothing is lost) and records the new revision in the pins. A system key has
    /// no overrides: an error.
    pub(crate) async fn write_personal(
        &mut self,
        b: &AnyBackend,
        t: &Target,
        overrides: &Overrides,
    ) -> Result<u64> {
        // Above both the stored revision (compare-and-swap on it) and every revision this
        // account has seen (when starting again after a lost record).
        let (stored, seen) = self
            .personal
            .as_ref()
            .map_or((0, 0), |p| (p.stored, p.revision));
        let next = stored.max(seen) + 1;
        let Some((account, derived, _)) = self.pins.personal_keys(&t.env.id) else {
            return Err(crate::personal::not_for_system_keys());
        };
        let sealed = derived.seal_personal(&account, &t.env.id, next, overrides);
        let stored = b
            .put_personal(&t.env.id, &Blob(sealed), stored, next)
            .await
            .with_context(|| {
                format!(
                    "failed to store your personal overrides of {}",
                    t.describe()
                )
            })?;
        if stored.revision != next {
            return Err(blame(
                b,
                Failure::other(format!(
                    "the server stored your personal overrides of {} as revision {} instead of {next}",
                    t.describe(),
                    stored.revision
                )),
            )
            .into());
        }
        self.pins.record_personal(t.env.id, next);
        self.pins.save().await?;
        self.personal = Some(Personal {
            revision: next,
            stored: next,
            overrides: overrides.clone(),
            lost: false,
        });
        Ok(next)
    }
}
