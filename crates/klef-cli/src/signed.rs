//! Signed environment state as the CLI uses it (DESIGN.md §9.3): every command that reads or
//! writes values goes through [`open`], which
//!
//! 1. finds who may sign this environment's manifests: the verified roster of its workspace on
//!    a server (a member's pins, or a system key's CI anchor), or the vault owner's identity in
//!    the local vault;
//! 2. reads the values and the manifests since the head this account has seen, in one request;
//! 3. verifies the chain (`verify_update`: signatures, the signer's right to write, names, no
//!    rollback or fork, key versions never going back);
//! 4. unwraps the environment key and checks it against the manifest's key commitment before
//!    anything is decrypted or encrypted with it (a key is never trusted because it opened);
//! 5. checks every served value against the manifest (nothing replayed, swapped, dropped or
//!    injected), and moves the account's head for the environment forward.
//!
//! A writer then signs the environment's next manifest with [`Opened::next_manifest`] and sends
//! it with the write; [`Opened::written`] records the new head once it is stored.
//!
//! Environments made before manifests have none until their first write by an owner or admin
//! (the local vault's owner seals on first use; `klef env seal` does it explicitly); until then
//! values are read as before, with a warning.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use klef_core::backend::Backend as _;
use klef_core::crypto::SymmetricKey;
use klef_core::ids::{AccountId, WorkspaceId};
use klef_core::model::{
    Account, Blob, DeletedName, ManifestRecord, ManifestsSince, SecretVersion, SecretWrite,
};
use klef_core::trust::account_state::AccountState;
use klef_core::trust::identity::{Signature, SigningKey};
use klef_core::trust::manifest::{
    Authority, Expected, Manifest, ManifestBody, ManifestHead, SignedManifest, ValueRef,
    verify_update,
};
use klef_core::trust::roster::{EntryHash, PrincipalId, RosterAnchor, RosterHead, VerifiedRoster};
use klef_core::trust::secrets::DerivedSecrets;

use crate::backend::AnyBackend;
use crate::context::{Context, Target};
use crate::diagnostics::Failure;
use crate::trust::Trust;
use crate::unlock::{KeySource, Unlock};

/// What a command is about to do with the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Read values.
    Read,
    /// Read values, leaving out those that do not match the signed state instead of failing
    /// (`klef run --skip-unreadable`): the chain and the key are still checked in full.
    ReadSkipping,
    /// Write values (the caller signs the next manifest).
    Write,
}

/// Who signs a writer's manifest.
struct Signer {
    principal: PrincipalId,
    roster: Option<RosterHead>,
    key: SigningKey,
    /// May set keys and names (owners and admins; the local vault's owner).
    admin: bool,
}

/// Where this account's environment heads are kept.
enum Pins<'a> {
    /// The local vault: a sealed file of its own.
    Local(LocalPins),
    /// A server: the account's pins (`Trust`).
    Member(Box<Trust<'a>>),
    /// A system key: no state between jobs (bounded by its CI anchor, DESIGN.md §9.4).
    None,
}

/// An environment opened for reading or writing: its key (checked against the manifest's
/// commitment), its values (checked against the manifest) and its verified manifest.
pub(crate) struct Opened<'a> {
    /// The environment key.
    pub(crate) key: SymmetricKey,
    /// The latest live version of every name, sorted by name.
    pub(crate) secrets: Vec<SecretVersion>,
    /// Names whose latest version is a delete.
    deleted: Vec<DeletedName>,
    /// With [`Purpose::ReadSkipping`]: names left out because their value does not match the
    /// signed state (or the manifest lists them and they were not served).
    pub(crate) skipped: Vec<String>,
    /// The verified newest manifest; `None` for an environment made before manifests.
    manifest: Option<Manifest>,
    signer: Option<Signer>,
    pins: Pins<'a>,
    workspace: WorkspaceId,
}

/// Opens `t`'s environment: verifies its signed state and key as the module documentation
/// describes, with the password options of `global`.
pub(crate) async fn open<'a>(
    ctx: &Context,
    b: &'a AnyBackend,
    t: &Target,
    purpose: Purpose,
    global: &crate::cli::GlobalArgs,
) -> Result<Opened<'a>> {
    open_with(ctx, b, t, purpose, global, None).await
}

/// [`open`] with keys the command already unlocked (`None`: unlock now, unless a system key
/// acts).
pub(crate) async fn open_with<'a>(
    ctx: &Context,
    b: &'a AnyBackend,
    t: &Target,
    purpose: Purpose,
    global: &crate::cli::GlobalArgs,
    unlocked: Option<&KeySource>,
) -> Result<Opened<'a>> {
    let workspace = t.project.workspace_id;
    // Who may sign, and where this account keeps its heads.
    let (authority_roster, mut pins, signer, keys, token) =
        if let Some(token) = crate::commands::keys::ci::system_token()? {
            let roster = crate::commands::keys::ci::verify_own_entry(ctx, b, &token, t).await?;
            let signer = roster.as_ref().map(|r| Signer {
                principal: PrincipalId::SystemKey(token.id()),
                roster: Some(r.head()),
                key: token.split().signing_key(),
                admin: false,
            });
            (roster, Pins::None, signer, None, Some(token))
        } else {
            let keys = match unlocked {
                Some(k) => KeyRef::Borrowed(k),
                None => KeyRef::Owned(ctx.keys_with(b, global, Unlock::OnFirstUse).await?),
            };
            if let Some(remote) = b.as_remote() {
                let mut trust = Trust::load(ctx, remote, keys.get()).await?;
                let roster = member_roster(ctx, b, &mut trust, t, purpose).await?;
                let signer = roster.as_ref().map(|r| Signer {
                    principal: PrincipalId::Member(trust.me().account),
                    roster: Some(r.head()),
                    key: trust.signing_key(),
                    admin: r
                        .member(&trust.me().account)
                        .is_some_and(klef_core::trust::roster::MemberRecord::is_admin),
                });
                (
                    roster,
                    Pins::Member(Box::new(trust)),
                    signer,
                    Some(keys),
                    None,
                )
            } else {
                let account = ctx.account(b).await?;
                let (derived, _) = keys.get().derived().await?;
                let signer = Signer {
                    principal: PrincipalId::Member(account.id),
                    roster: None,
                    key: derived.identity(),
                    admin: true,
                };
                let pins = LocalPins::load(ctx, &account, derived, workspace)?;
                (None, Pins::Local(pins), Some(signer), Some(keys), None)
            }
        };
    let head = pins.head(&workspace, t);
    let expected = Expected {
        workspace,
        project: t.project.id,
        project_name: &t.project.name,
        environment: t.env.id,
        environment_name: &t.env.slug,
    };
    let local_owner = match (&pins, &signer) {
        (Pins::Local(_), Some(s)) => Some(Authority::LocalOwner {
            account: match s.principal {
                PrincipalId::Member(a) => a,
                PrincipalId::SystemKey(_) => unreachable_owner(),
            },
            key: s.key.verifying_key(),
        }),
        _ => None,
    };
    let authority = match (&local_owner, &authority_roster) {
        (Some(a), _) => Some(*a),
        (None, Some(r)) => Some(Authority::Roster(r)),
        (None, None) => None,
    };
    let since = head.map_or(ManifestsSince::Anchor, |h| {
        ManifestsSince::Revision(h.revision)
    });
    // The key and the state at the same time: the agent unwraps while the server answers.
    let access = async { Ok::<_, anyhow::Error>(b.environment_key(&t.env.id).await?) };
    let state = async { Ok::<_, anyhow::Error>(b.environment_state(&t.env.id, since).await?) };
    let (access, mut state) = tokio::try_join!(access, state)?;
    let key = match (&token, &keys) {
        (Some(token), _) => {
            crate::commands::keys::ci::open_environment_key(token, &t.env, &access)?
        }
        (None, Some(keys)) => {
            keys.get()
                .environment_key(&t.project, &t.env, &access)
                .await?
        }
        (None, None) => unreachable_owner(),
    };
    if token.is_some() && authority_roster.is_none() && state.manifests.is_empty() {
        ctx.printer.warn(
            "KLEF_TOKEN's key was made before CI anchors, so this job cannot verify the workspace it acts in; re-create it with `klef keys create`",
        );
    }
    let mut manifest = None;
    let mut skipped = Vec::new();
    for attempt in 0..2 {
        if state.manifests.is_empty() {
            if head.is_some() {
                return Err(blame(
                    b,
                    Failure::other(format!(
                        "the server withheld or rolled back the signed state of {}: this account has seen revision {} of it",
                        t.describe(),
                        head.map_or(0, |h| h.revision)
                    )),
                )
                .into());
            }
            break;
        }
        let Some(authority) = &authority else {
            if token.is_some() {
                return Err(Failure::auth(format!(
                    "{} has signed state, and KLEF_TOKEN's key was made before CI anchors, so this job cannot check who signed it",
                    t.describe()
                ))
                .hint("re-create the key with `klef keys create` and put the new one in KLEF_TOKEN")
                .into());
            }
            return Err(unverifiable(t, b).into());
        };
        let served = to_signed(&state.manifests)?;
        let verified = verify_update(&expected, authority, head.as_ref(), &served)
            .map_err(|e| blame(b, Failure::other(format!("{}: {e}", t.describe()))))?;
        verified.check_key(&key).map_err(|e| {
            blame(
                b,
                Failure::other(format!(
                    "the key of {}: {e}; nothing was decrypted or written with it",
                    t.describe()
                )),
            )
        })?;
        let served_values = state.secrets.iter().filter_map(|s| {
            let ct = s.ciphertext.as_ref()?;
            Some((
                s.name.as_str(),
                u64::try_from(s.version).unwrap_or(0),
                ct.as_bytes(),
            ))
        });
        let key_version = i64::try_from(verified.body().key_version).unwrap_or(i64::MAX);
        let checked = verified
            .check_values(served_values)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                match state
                    .secrets
                    .iter()
                    .find(|s| s.ciphertext.is_some() && s.key_version != key_version)
                {
                    Some(s) => Err(format!(
                        "{}: the server says it is sealed under key version {}, the signed state under {key_version}",
                        s.name, s.key_version
                    )),
                    None => Ok(()),
                }
            });
        match checked {
            Ok(()) => {
                manifest = Some(verified);
                break;
            }
            // A write between the two reads of the state: read once more.
            Err(_) if attempt == 0 => {
                state = b.environment_state(&t.env.id, since).await?;
            }
            Err(_) if matches!(purpose, Purpose::ReadSkipping | Purpose::Write) => {
                skipped = keep_matching(&verified, &mut state.secrets);
                if purpose == Purpose::Write {
                    ctx.printer.warn(&format!(
                        "{} in {} do not match the signed state (altered, or written by a broken client) and are left as they are unless this command writes them",
                        skipped.join(", "),
                        t.describe()
                    ));
                }
                manifest = Some(verified);
                break;
            }
            Err(e) => {
                return Err(blame(
                    b,
                    Failure::other(format!("{}: {e}; nothing was decrypted", t.describe())),
                )
                .hint("`klef run --skip-unreadable -- …` starts a program without the values that do not match")
                .into());
            }
        }
    }
    if let Some(m) = &manifest {
        pins.record(&workspace, t, m.head())?;
        if m.body().revision > head.map_or(0, |h| h.revision) {
            tracing::debug!(
                revision = m.body().revision,
                hash = %short_hash(m),
                "trusted environment state"
            );
        }
        if ctx.global.verbose > 0 {
            ctx.printer.info(&format!(
                "{}: signed revision {} ({}), key version {}",
                t.describe(),
                m.body().revision,
                short_hash(m),
                m.body().key_version
            ));
        }
    }
    let mut opened = Opened {
        key,
        secrets: state.secrets,
        deleted: state.deleted,
        skipped,
        manifest,
        signer: if purpose == Purpose::Write || matches!(pins, Pins::Local(_)) {
            signer
        } else {
            None
        },
        pins,
        workspace,
    };
    if opened.manifest.is_none() {
        opened.unsealed(ctx, b, t).await?;
    }
    opened.pins.save().await?;
    Ok(opened)
}

/// Keys unlocked here, or by the caller.
enum KeyRef<'k> {
    Owned(std::sync::Arc<KeySource>),
    Borrowed(&'k KeySource),
}

impl KeyRef<'_> {
    fn get(&self) -> &KeySource {
        match self {
            KeyRef::Owned(k) => k,
            KeyRef::Borrowed(k) => k,
        }
    }
}

/// The first 8 bytes of a manifest's hash in hex, for `--verbose` and logs: what a team compares
/// to see they trust the same state.
fn short_hash(m: &Manifest) -> String {
    use std::fmt::Write as _;
    m.hash().0[..8].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Keeps the served values that match `m` and returns the names left out (sorted): those that
/// do not match, and those `m` lists that were not served.
fn keep_matching(m: &Manifest, secrets: &mut Vec<SecretVersion>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut skipped = std::collections::BTreeSet::new();
    secrets.retain(|s| {
        let Some(ct) = &s.ciphertext else {
            return true;
        };
        let version = u64::try_from(s.version).unwrap_or(0);
        let key_version = u64::try_from(s.key_version).unwrap_or(0);
        if m.check_value(&s.name, version, ct.as_bytes()).is_ok()
            && key_version == m.body().key_version
            && seen.insert(s.name.clone())
        {
            true
        } else {
            skipped.insert(s.name.clone());
            false
        }
    });
    for name in m.body().values.keys() {
        if !seen.contains(name) {
            skipped.insert(name.clone());
        }
    }
    skipped.into_iter().collect()
}

/// The local vault's owner is always a member; a system key never opens a local vault.
fn unreachable_owner() -> ! {
    unreachable!("a local vault is opened by its owner, a system key only on a server")
}

/// The verified roster a member checks manifests against: pinned, or (for a write by the
/// owner of a workspace made before rosters) adopted now; `None` for a workspace without one.
async fn member_roster(
    ctx: &Context,
    b: &AnyBackend,
    trust: &mut Trust<'_>,
    t: &Target,
    purpose: Purpose,
) -> Result<Option<VerifiedRoster>> {
    let ws = t.project.workspace_id;
    if trust.anchor(&ws).is_some() {
        return trust.roster(&ws, &t.project.name).await.map(Some);
    }
    if purpose == Purpose::Write {
        let Some(workspace) = b.workspaces().await?.into_iter().find(|w| w.id == ws) else {
            return Ok(None);
        };
        return trust.roster_or_adopt_if_owner(&workspace).await;
    }
    let _ = ctx;
    Ok(None)
}

/// A verification failure as the user should read it: on a server, the server did it; in the
/// local vault, whoever edited the vault file did (the messages of `klef_core::trust` say "the
/// server").
fn blame(b: &AnyBackend, failure: Failure) -> Failure {
    match b.as_remote() {
        Some(_) => failure.hint("if it persists, the server is misbehaving: tell its operator"),
        None => failure
            .map_message(|m| m.replace("the server", "the vault file"))
            .hint("the vault file was edited or replaced: restore it from a backup (`klef backup import`)"),
    }
}

/// Signed state exists but this account has nothing to check it against.
fn unverifiable(t: &Target, b: &AnyBackend) -> Failure {
    match b.as_remote() {
        Some(_) => Failure::other(format!(
            "{} has signed state, but this account has not pinned its workspace's roster, so it cannot check who signed it",
            t.describe()
        ))
        .hint("accept the workspace's invitation with its invite code (`klef workspace accept`), or ask its owner to run `klef workspace verify` once"),
        None => Failure::other(format!("{} cannot be verified here", t.describe())),
    }
}

impl Opened<'_> {
    /// An environment made before manifests: the local vault's owner seals it now (the first
    /// manifest lists the values as they are); elsewhere a warning says it is not verified.
    async fn unsealed(&mut self, ctx: &Context, b: &AnyBackend, t: &Target) -> Result<()> {
        if matches!(self.pins, Pins::Local(_)) && self.signer.is_some() {
            let record = self.seal_record(t)?;
            b.write_secrets(&t.env.id, &[], Some(&record)).await?;
            let m = self.adopt(&record, t)?;
            self.pins.record(&self.workspace, t, m.head())?;
            self.manifest = Some(m);
            return Ok(());
        }
        ctx.printer.warn(&format!(
            "{} has no signed state yet (made before signed manifests): its values cannot be verified; an owner or admin seals it with `klef env seal {}`",
            t.describe(),
            t.env.slug
        ));
        Ok(())
    }

    /// The first manifest of an environment made before manifests, listing its values as they
    /// are now (an owner or admin vouches for them by signing).
    fn seal_record(&self, t: &Target) -> Result<ManifestRecord> {
        let signer = self.admin_signer(t)?;
        let expected = expected(t);
        let key_version = u64::try_from(t.env.key_version).unwrap_or(1);
        let mut body = ManifestBody::first(
            &expected,
            &self.key,
            key_version,
            signer.roster,
            signer.principal,
        );
        body.values = self.current_values();
        Ok(record(&body.sign(&signer.key), true, 1))
    }

    fn admin_signer(&self, t: &Target) -> Result<&Signer> {
        match &self.signer {
            Some(s) if s.admin => Ok(s),
            _ => Err(Failure::permission(format!(
                "only an owner or admin can sign the first state of {}",
                t.describe()
            ))
            .hint("ask a workspace admin to run `klef env seal`")
            .into()),
        }
    }

    /// The live values as manifest entries.
    fn current_values(&self) -> BTreeMap<String, ValueRef> {
        self.secrets
            .iter()
            .filter_map(|s| {
                let ct = s.ciphertext.as_ref()?;
                Some((
                    s.name.clone(),
                    ValueRef::new(u64::try_from(s.version).unwrap_or(0), ct.as_bytes()),
                ))
            })
            .collect()
    }

    /// A manifest this command just signed and stored, as verified state.
    /// (The local vault only: its owner is the only signer.)
    fn adopt(&self, record: &ManifestRecord, t: &Target) -> Result<Manifest> {
        let Some(Signer {
            principal: PrincipalId::Member(account),
            key,
            ..
        }) = &self.signer
        else {
            return Err(Failure::other("only a vault's owner signs its state").into());
        };
        let signed = to_signed(std::slice::from_ref(record))?;
        let authority = Authority::LocalOwner {
            account: *account,
            key: key.verifying_key(),
        };
        verify_update(&expected(t), &authority, None, &signed)
            .map_err(|e| Failure::other(format!("{}: {e}", t.describe())).into())
    }

    /// Signs and stores the first manifest of an environment made before manifests, listing
    /// its values as they are now (an owner or admin vouches for them); returns its revision.
    /// An environment that has signed state already is left as it is.
    pub(crate) async fn seal(&mut self, b: &AnyBackend, t: &Target) -> Result<u64> {
        if let Some(m) = &self.manifest {
            return Ok(m.body().revision);
        }
        let record = self.seal_record(t)?;
        b.write_secrets(&t.env.id, &[], Some(&record))
            .await
            .with_context(|| format!("failed to seal {}", t.describe()))?;
        self.written(t, &record).await?;
        Ok(record.revision)
    }

    /// The names whose latest version is a delete (they had values once).
    pub(crate) fn deleted_names(&self) -> impl Iterator<Item = &str> {
        self.deleted.iter().map(|d| d.name.as_str())
    }

    /// The verified manifest's revision, if any.
    pub(crate) fn revision(&self) -> Option<u64> {
        self.manifest.as_ref().map(|m| m.body().revision)
    }

    /// The key version values are sealed under now: the signed state's, else (an environment
    /// not sealed yet) the server's.
    pub(crate) fn key_version(&self, t: &Target) -> i64 {
        self.manifest.as_ref().map_or(t.env.key_version, |m| {
            i64::try_from(m.body().key_version).unwrap_or(i64::MAX)
        })
    }

    /// Where the next write of `name` goes: `(version, key version)`, for
    /// `secrets::encrypt`.
    pub(crate) fn next_place(&self, t: &Target, name: &str) -> (i64, i64) {
        (self.next_version(name), self.key_version(t))
    }

    /// The version the next write of `name` gets (one more than its latest, a delete included).
    pub(crate) fn next_version(&self, name: &str) -> i64 {
        let live = self
            .secrets
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.version)
            .or_else(|| {
                // A value left out for not matching the signed state: its listed version.
                let m = self.manifest.as_ref()?;
                m.body()
                    .values
                    .get(name)
                    .and_then(|v| i64::try_from(v.version).ok())
            });
        let deleted = self
            .deleted
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.version);
        live.or(deleted).unwrap_or(0) + 1
    }

    /// The manifest to send with `writes` (name, new version, sealed value or `None` for a
    /// delete): the verified manifest's successor with those changes, signed by this writer.
    /// `None` for an environment that has no signed state yet and a writer who may not seal
    /// it (a warning says so). The local vault's environments are sealed when opened.
    pub(crate) fn next_manifest(
        &self,
        ctx: &Context,
        t: &Target,
        writes: &[(String, i64, Option<Blob>)],
    ) -> Result<Option<ManifestRecord>> {
        let Some(signer) = &self.signer else {
            if self.manifest.is_some() {
                return Err(not_a_writer(t).into());
            }
            return Ok(None);
        };
        let (mut body, anchor) = if let Some(m) = &self.manifest {
            (m.next_body(signer.principal, signer.roster), false)
        } else {
            if !signer.admin {
                ctx.printer.warn(&format!(
                    "{} has no signed state yet: this write is not signed; an owner or admin seals it with `klef env seal {}`",
                    t.describe(),
                    t.env.slug
                ));
                return Ok(None);
            }
            let expected = expected(t);
            let key_version = u64::try_from(t.env.key_version).unwrap_or(1);
            let mut body = ManifestBody::first(
                &expected,
                &self.key,
                key_version,
                signer.roster,
                signer.principal,
            );
            body.values = self.current_values();
            (body, true)
        };
        for (name, version, ciphertext) in writes {
            match ciphertext {
                Some(ct) => {
                    let version = u64::try_from(*version)
                        .map_err(|_| Failure::other(format!("{name}: a version out of range")))?;
                    body.values
                        .insert(name.clone(), ValueRef::new(version, ct.as_bytes()));
                }
                None => {
                    body.values.remove(name);
                }
            }
        }
        let revision = body.revision;
        Ok(Some(record(&body.sign(&signer.key), anchor, revision)))
    }

    /// The manifest of a key rotation to `new_key`: key version + 1 and its commitment, every
    /// live value at `versions` (name, new version, new ciphertext), signed by an owner or
    /// admin.
    pub(crate) fn rotation_manifest(
        &self,
        t: &Target,
        new_key: &SymmetricKey,
        values: &[(String, i64, Blob)],
    ) -> Result<Option<ManifestRecord>> {
        let signer = match &self.signer {
            Some(s) if s.admin => s,
            Some(_) | None if self.manifest.is_none() => return Ok(None),
            _ => {
                return Err(Failure::permission(format!(
                    "only an owner or admin can rotate the key of {}",
                    t.describe()
                ))
                .into());
            }
        };
        let mut body = if let Some(m) = &self.manifest {
            m.rotation_body(new_key, signer.principal, signer.roster)
        } else {
            let key_version = u64::try_from(t.env.key_version + 1).unwrap_or(1);
            ManifestBody::first(
                &expected(t),
                new_key,
                key_version,
                signer.roster,
                signer.principal,
            )
        };
        body.values = values
            .iter()
            .map(|(name, version, ct)| {
                (
                    name.clone(),
                    ValueRef::new(u64::try_from(*version).unwrap_or(0), ct.as_bytes()),
                )
            })
            .collect();
        let revision = body.revision;
        Ok(Some(record(&body.sign(&signer.key), true, revision)))
    }

    /// Writes `writes` with the environment's next manifest in one request: each write gets
    /// the version after the name's latest (a write without an expected version is pinned to
    /// it, so a concurrent writer makes it fail with a conflict instead of slipping under the
    /// signature), and the new head is recorded once stored.
    pub(crate) async fn write(
        &mut self,
        ctx: &Context,
        b: &AnyBackend,
        t: &Target,
        writes: &mut [SecretWrite],
    ) -> Result<Vec<SecretVersion>> {
        let mut next: HashMap<String, i64> = HashMap::with_capacity(writes.len());
        let mut planned = Vec::with_capacity(writes.len());
        for w in writes.iter_mut() {
            let version = match next.get(&w.name) {
                Some(v) => *v,
                None => self.next_version(&w.name),
            };
            if w.expected_version.is_none() {
                w.expected_version = Some(version - 1);
            }
            planned.push((w.name.clone(), version, w.ciphertext.clone()));
            next.insert(w.name.clone(), version + 1);
        }
        let manifest = self.next_manifest(ctx, t, &planned)?;
        let written = b
            .write_secrets(&t.env.id, writes, manifest.as_ref())
            .await?;
        if let Some(m) = &manifest {
            self.written(t, m).await?;
        }
        Ok(written)
    }

    /// The manifest of a rename: the same state under a new project name or environment slug,
    /// signed by an owner or admin (readers check the names they asked for against it).
    /// `None` for an environment without signed state.
    pub(crate) fn renamed_manifest(
        &self,
        t: &Target,
        project_name: Option<&str>,
        slug: Option<&str>,
    ) -> Result<Option<ManifestRecord>> {
        let Some(m) = &self.manifest else {
            return Ok(None);
        };
        let signer = match &self.signer {
            Some(s) if s.admin => s,
            _ => {
                return Err(Failure::permission(format!(
                    "only an owner or admin can rename {}",
                    t.describe()
                ))
                .into());
            }
        };
        let mut body = m.next_body(signer.principal, signer.roster);
        if let Some(name) = project_name {
            name.clone_into(&mut body.project_name);
        }
        if let Some(slug) = slug {
            slug.clone_into(&mut body.environment_name);
        }
        let revision = body.revision;
        Ok(Some(record(&body.sign(&signer.key), true, revision)))
    }

    /// Records a manifest this command stored as the environment's new head.
    pub(crate) async fn written(&mut self, t: &Target, record: &ManifestRecord) -> Result<()> {
        let signed = to_signed(std::slice::from_ref(record))?;
        let hash = signed[0].hash();
        let body = ManifestBody::parse(&record.body.0)
            .map_err(|e| Failure::other(format!("a manifest this command made: {e}")))?;
        self.pins.record(
            &self.workspace,
            t,
            ManifestHead {
                revision: body.revision,
                hash,
                key_version: body.key_version,
            },
        )?;
        self.pins.save().await
    }
}

/// A member without write access, or a read-only system key.
fn not_a_writer(t: &Target) -> Failure {
    Failure::permission(format!(
        "you may not write {}: the workspace's signed roster does not let you",
        t.describe()
    ))
}

/// What `t` must be, for manifests.
fn expected(t: &Target) -> Expected<'_> {
    Expected {
        workspace: t.project.workspace_id,
        project: t.project.id,
        project_name: &t.project.name,
        environment: t.env.id,
        environment_name: &t.env.slug,
    }
}

/// The first manifest of a new environment (revision 1, no values, a commitment to `key` at
/// key version 1), signed by its creating owner or admin.
pub(crate) fn first_record(
    project: &klef_core::model::Project,
    env: &klef_core::model::Environment,
    key: &SymmetricKey,
    signer: (&SigningKey, PrincipalId),
    roster: Option<RosterHead>,
) -> ManifestRecord {
    let expected = Expected {
        workspace: project.workspace_id,
        project: project.id,
        project_name: &project.name,
        environment: env.id,
        environment_name: &env.slug,
    };
    let key_version = u64::try_from(env.key_version).unwrap_or(1);
    let body = ManifestBody::first(&expected, key, key_version, roster, signer.1);
    record(&body.sign(signer.0), true, 1)
}

/// A signed manifest as sent to the store.
fn record(signed: &SignedManifest, anchor: bool, revision: u64) -> ManifestRecord {
    ManifestRecord {
        revision,
        anchor,
        body: Blob(signed.body.clone()),
        signature: Blob(signed.signature.0.to_vec()),
    }
}

/// Served manifests as signed manifests (a signature of the wrong length is the server's
/// doing).
pub(crate) fn to_signed(records: &[ManifestRecord]) -> Result<Vec<SignedManifest>> {
    records
        .iter()
        .map(|m| {
            Ok(SignedManifest {
                body: m.body.as_bytes().to_vec(),
                signature: Signature::from_slice(m.signature.as_bytes()).ok_or_else(|| {
                    Failure::other(format!(
                        "manifest revision {} carries a malformed signature: the server altered it",
                        m.revision
                    ))
                })?,
            })
        })
        .collect()
}

impl Pins<'_> {
    fn head(&self, ws: &WorkspaceId, t: &Target) -> Option<ManifestHead> {
        match self {
            Pins::Local(p) => p.state.environment_head(ws, &t.env.id),
            Pins::Member(trust) => trust.environment_head(ws, &t.env.id),
            Pins::None => None,
        }
    }

    fn record(&mut self, ws: &WorkspaceId, t: &Target, head: ManifestHead) -> Result<()> {
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

    async fn save(&mut self) -> Result<()> {
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
struct LocalPins {
    path: PathBuf,
    account: AccountId,
    derived: DerivedSecrets,
    state: AccountState,
    dirty: bool,
}

impl LocalPins {
    fn load(
        ctx: &Context,
        account: &Account,
        derived: DerivedSecrets,
        ws: WorkspaceId,
    ) -> Result<Self> {
        let path = Self::path_of(ctx, &account.id);
        let state = match std::fs::read(&path) {
            Ok(bytes) => derived.open_state(&account.id, &bytes).map_err(|_| {
                Failure::other(format!(
                    "{} does not open with this vault's keys: it was altered or belongs to another vault",
                    path.display()
                ))
                .hint("move it away to start again (this vault's history is then checked as new)")
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AccountState::default(),
            Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
        };
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
    fn path_of(ctx: &Context, account: &AccountId) -> PathBuf {
        ctx.dirs
            .data
            .join("pins")
            .join(format!("local-{account}.bin"))
    }

    /// Pins `ws` to the all-zero genesis the local vault uses (its heads hang off it).
    fn ensure_workspace(&mut self, ws: WorkspaceId) -> Result<()> {
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

    fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            crate::dirs::create_private_dir(dir)?;
        }
        let sealed = self.derived.seal_state(&self.state, &self.account);
        crate::fsutil::write_atomic(&self.path, &sealed, 0o600)?;
        self.dirty = false;
        Ok(())
    }
}

/// Before a backup is restored: verifies the manifest chains it carries against the heads this
/// account has seen (its own identity in the local vault; the roster it carries, verified
/// against this account's pin, on a server) and refuses an archive older than them, or forked
/// from them. `allow_older` (the local vault only) restores an older state on purpose and
/// forgets this machine's newer heads for it. Nothing to check when this account has seen
/// none of the archive's environments (a new machine).
pub(crate) async fn check_archive(
    ctx: &Context,
    b: &AnyBackend,
    archive: &klef_core::backup::Archive,
    allow_older: bool,
    unlocked: Option<&KeySource>,
) -> Result<()> {
    if archive.manifests.is_empty() && archive.roster.is_empty() {
        return Ok(());
    }
    match b.as_remote() {
        None => {
            let [account] = archive.accounts.as_slice() else {
                return Ok(());
            };
            if !LocalPins::path_of(ctx, &account.id).exists() {
                return Ok(());
            }
            let keys = crate::unlock::key_source(
                &ctx.global,
                account,
                account.id.to_string(),
                Unlock::Upfront,
                None,
            )
            .await?;
            let (derived, _) = keys.derived().await?;
            let authority = Authority::LocalOwner {
                account: account.id,
                key: derived.identity().verifying_key(),
            };
            let Some(ws) = archive.workspaces.first() else {
                return Ok(());
            };
            let mut pins = LocalPins::load(ctx, account, derived, ws.id)?;
            for ws in &archive.workspaces {
                pins.ensure_workspace(ws.id)?;
            }
            let mut older = Vec::new();
            for (ws, project, env, served) in archived_chains(archive) {
                let head = pins.state.environment_head(&ws, &env.id);
                match verify_archived(&authority, head.as_ref(), &project, &env, &served)? {
                    Archived::Verified(m) => {
                        let _ = pins.state.record_environment(&ws, env.id, m.head());
                    }
                    Archived::Older { seen, newest } => {
                        if !allow_older {
                            return Err(older_backup(&project, &env, seen, newest, true).into());
                        }
                        pins.state.forget_environment(&ws, &env.id);
                        older.push(env.slug.clone());
                    }
                }
                pins.dirty = true;
            }
            if !older.is_empty() {
                ctx.printer.warn(&format!(
                    "restoring an older state of {} than this machine has seen (--allow-older)",
                    older.join(", ")
                ));
            }
            pins.save()
        }
        Some(remote) => {
            let keys = match unlocked {
                Some(k) => KeyRef::Borrowed(k),
                None => KeyRef::Owned(ctx.keys(b).await?),
            };
            let mut trust = Trust::load(ctx, remote, keys.get()).await?;
            for ws in &archive.workspaces {
                let entries: Vec<klef_core::model::RosterEntry> = archive
                    .roster
                    .iter()
                    .filter(|e| e.workspace_id == ws.id)
                    .map(|e| e.entry.clone())
                    .collect();
                let anchor = match trust.anchor(&ws.id) {
                    Some(anchor) => anchor,
                    // Not pinned here (a new server, a new device): a roster whose genesis is
                    // this account's own, signed with its own identity key, is pinned now: only
                    // this account could have made it.
                    None => match own_genesis(&trust, &ws.id, &entries)? {
                        Some(anchor) => anchor,
                        None => continue,
                    },
                };
                let roster = crate::trust::verify_served(&anchor, &entries).map_err(|e| {
                    Failure::other(format!(
                        "the backup's roster of workspace \"{}\" is not the one this account has pinned: {e}",
                        ws.name
                    ))
                    .hint("restore a newer backup of this workspace")
                })?;
                trust.pin(&roster)?;
                let authority = Authority::Roster(&roster);
                for (w, project, env, served) in archived_chains(archive) {
                    if w != ws.id {
                        continue;
                    }
                    let head = trust.environment_head(&w, &env.id);
                    match verify_archived(&authority, head.as_ref(), &project, &env, &served)? {
                        Archived::Verified(m) => {
                            let _ = trust.record_environment(&w, env.id, m.head());
                        }
                        Archived::Older { seen, newest } => {
                            if !allow_older {
                                return Err(
                                    older_backup(&project, &env, seen, newest, false).into()
                                );
                            }
                            trust.forget_environment(&w, &env.id);
                            ctx.printer.warn(&format!(
                                "restoring revision {newest} of environment \"{}\", older than revision {seen} this account has seen (--allow-older): teammates' klef that saw the newer state will refuse this one as a rollback",
                                env.slug
                            ));
                        }
                    }
                }
            }
            trust.save().await
        }
    }
}

/// What an archived chain is, against this account's head.
enum Archived {
    Verified(Box<Manifest>),
    Older { seen: u64, newest: u64 },
}

/// Each archived environment with manifests: its workspace, project, environment and chain.
fn archived_chains(
    archive: &klef_core::backup::Archive,
) -> Vec<(
    WorkspaceId,
    klef_core::model::Project,
    klef_core::model::Environment,
    Vec<ManifestRecord>,
)> {
    let mut out = Vec::new();
    for e in &archive.environments {
        let env = &e.environment;
        let chain: Vec<ManifestRecord> = archive
            .manifests
            .iter()
            .filter(|m| m.environment_id == env.id)
            .map(|m| m.manifest.clone())
            .collect();
        let Some(project) = archive.projects.iter().find(|p| p.id == env.project_id) else {
            continue;
        };
        if !chain.is_empty() {
            out.push((project.workspace_id, project.clone(), env.clone(), chain));
        }
    }
    out
}

fn verify_archived(
    authority: &Authority<'_>,
    head: Option<&ManifestHead>,
    project: &klef_core::model::Project,
    env: &klef_core::model::Environment,
    chain: &[ManifestRecord],
) -> Result<Archived> {
    let newest = chain.last().map_or(0, |m| m.revision);
    if let Some(h) = head
        && newest < h.revision
    {
        return Ok(Archived::Older {
            seen: h.revision,
            newest,
        });
    }
    let expected = Expected {
        workspace: project.workspace_id,
        project: project.id,
        project_name: &project.name,
        environment: env.id,
        environment_name: &env.slug,
    };
    let served = to_signed(chain)?;
    verify_update(&expected, authority, head, &served)
        .map(|m| Archived::Verified(Box::new(m)))
        .map_err(|e| {
            Failure::other(format!(
                "the backup's signed state of environment \"{}\" of project \"{}\" does not verify: {e}",
                env.slug, project.name
            ))
            .hint("the file was altered, or it is not from this account's workspace; nothing was restored")
            .into()
        })
}

fn older_backup(
    project: &klef_core::model::Project,
    env: &klef_core::model::Environment,
    seen: u64,
    newest: u64,
    local: bool,
) -> Failure {
    let f = Failure::other(format!(
        "the backup holds revision {newest} of environment \"{}\" of project \"{}\", older than revision {seen} this account has seen; nothing was restored",
        env.slug, project.name
    ));
    if local {
        f.hint("restore a newer backup, or pass --allow-older to go back to this one on purpose")
    } else {
        f.hint("restore a newer backup; --allow-older goes back to this one on purpose, and teammates who saw the newer state will see a rollback")
    }
}

/// Before principals are signed out of workspace `ws`'s roster (a member removed, a system key
/// revoked): every environment of `ws` whose newest manifest one of `leaving` signed gets a new
/// manifest with the same values, signed by this owner or admin. Readers refuse a newest
/// manifest whose signer was removed since (DESIGN.md §9.3), so without this the environment
/// would be unreadable until its next write. Returns the environments re-signed; one that
/// cannot be opened is named in a warning and left as it is.
pub(crate) async fn revouch(
    ctx: &Context,
    b: &AnyBackend,
    keys: &KeySource,
    ws: &WorkspaceId,
    leaving: &[PrincipalId],
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for project in b.projects(ws).await? {
        for env in Context::environments(b, &project).await? {
            let t = Target {
                project: project.clone(),
                env,
            };
            let mut opened =
                match open_with(ctx, b, &t, Purpose::Write, &ctx.global, Some(keys)).await {
                    Ok(o) => o,
                    Err(e) => {
                        ctx.printer
                            .warn(&format!("{} was not re-signed: {e:#}", t.describe()));
                        continue;
                    }
                };
            let Some(m) = &opened.manifest else {
                continue;
            };
            if !leaving.contains(&m.body().signer) {
                continue;
            }
            let Some(signer) = &opened.signer else {
                continue;
            };
            let body = m.next_body(signer.principal, signer.roster);
            let revision = body.revision;
            let record = record(&body.sign(&signer.key), false, revision);
            b.write_secrets(&t.env.id, &[], Some(&record))
                .await
                .with_context(|| format!("failed to re-sign {}", t.describe()))?;
            opened.written(&t, &record).await?;
            done.push(format!("{}/{}", t.project.name, t.env.slug));
        }
    }
    Ok(done)
}

/// Whether the keys are at hand without asking anyone (a system key, the agent holding them,
/// a password given): reads that are useful without keys (`klef list`, `klef history`)
/// verify then, and say they did not otherwise.
pub(crate) async fn keys_at_hand(ctx: &Context, b: &AnyBackend) -> Result<bool> {
    if crate::commands::keys::ci::system_token()?.is_some() {
        return Ok(true);
    }
    let Some(account) = b.account().await? else {
        return Ok(false);
    };
    Ok(crate::unlock::unlocked_without_asking(&ctx.global, &b.vault_id(&account)).await)
}

impl Opened<'_> {
    /// Checks a name's history as the server serves it against the verified state: the
    /// version the signed state lists must be there with the same ciphertext, and nothing
    /// newer may be. Older versions are not covered by the signed state (they are shown as
    /// the server has them).
    pub(crate) fn check_history(
        &self,
        t: &Target,
        name: &str,
        history: &[SecretVersion],
    ) -> Result<()> {
        let Some(m) = &self.manifest else {
            return Ok(());
        };
        let listed = m.body().values.get(name);
        let current = self.secrets.iter().find(|s| s.name == name);
        let newest_allowed = match listed {
            Some(v) => i64::try_from(v.version).unwrap_or(i64::MAX),
            None => self.next_version(name) - 1,
        };
        for h in history {
            if h.version > newest_allowed {
                return Err(Failure::other(format!(
                    "{}: the history of {name} lists version {}, which the signed state does not know: it was added behind the writers' backs",
                    t.describe(),
                    h.version
                ))
                .into());
            }
            if let (Some(c), true) = (current, listed.is_some())
                && h.version == c.version
                && h.ciphertext != c.ciphertext
            {
                return Err(Failure::other(format!(
                    "{}: version {} of {name} in its history is not the value the signed state lists: it was altered",
                    t.describe(),
                    h.version
                ))
                .into());
            }
        }
        if let Some(v) = listed
            && !history
                .iter()
                .any(|h| u64::try_from(h.version).ok() == Some(v.version))
        {
            return Err(Failure::other(format!(
                "{}: the history of {name} lacks version {}, the current one: it was withheld",
                t.describe(),
                v.version
            ))
            .into());
        }
        Ok(())
    }
}

/// The anchor of `entries` when their genesis is this account's own (its owner record carries
/// this device's keys); `None` when there is no roster or it is someone else's.
fn own_genesis(
    trust: &Trust<'_>,
    ws: &WorkspaceId,
    entries: &[klef_core::model::RosterEntry],
) -> Result<Option<RosterAnchor>> {
    let signed = crate::trust::to_signed(entries).map_err(Failure::other)?;
    let Some(first) = signed.first() else {
        return Ok(None);
    };
    let anchor = RosterAnchor {
        workspace: *ws,
        genesis: first.hash(),
        head: None,
    };
    let Ok(roster) = VerifiedRoster::verify(&anchor, &signed[..1]) else {
        return Ok(None);
    };
    if roster.owner() != trust.me().account || roster.check_own_member(trust.me()).is_err() {
        return Ok(None);
    }
    Ok(Some(anchor))
}
