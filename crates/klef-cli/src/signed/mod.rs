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
mod archive;
mod personal;
mod pins;
mod write;

pub(crate) use archive::check_archive;
use pins::{LocalPins, Pins};
pub(crate) use write::{first_record, revouch};

use klef_core::model::{
    Account, Blob, DeletedName, EnvironmentKeyAccess, EnvironmentState, ManifestRecord,
    ManifestsSince, SecretVersion, SecretWrite,
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

/// An environment opened for reading or writing: its key (checked against the manifest's
/// commitment), its values (checked against the manifest) and its verified manifest.
pub(crate) struct Opened<'a> {
    /// The environment key.
    pub(crate) key: SymmetricKey,
    /// How the caller reached it (kept with `crate::snapshot`'s copy).
    pub(crate) access: EnvironmentKeyAccess,
    /// The latest live version of every name, sorted by name.
    pub(crate) secrets: Vec<SecretVersion>,
    /// Names whose latest version is a delete.
    deleted: Vec<DeletedName>,
    /// With [`Purpose::ReadSkipping`]: names left out because their value does not match the
    /// signed state (or the manifest lists them and they were not served).
    pub(crate) skipped: Vec<String>,
    /// The verified newest manifest; `None` for an environment made before manifests.
    manifest: Option<Manifest>,
    /// This account's personal overrides of the environment (`crate::personal`); `None` for a
    /// system key.
    pub(crate) personal: Option<crate::personal::Personal>,
    signer: Option<Signer>,
    /// The verified roster manifests were checked against (`None` in the local vault); boxed,
    /// as every read command's future holds an `Opened`.
    roster: Option<Box<VerifiedRoster>>,
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
    open_from(ctx, b, t, purpose, global, unlocked, None).await
}

/// A state this account verified before (the agent's copy, `crate::snapshot`): a read at the
/// same head then asks only what changed after it (`Backend::environment_changes`), merges
/// that in and verifies the result like a full read; a mismatch reads everything.
pub(crate) struct Base {
    /// The revision it was verified at.
    pub(crate) revision: u64,
    /// Its live values, sorted by name.
    pub(crate) secrets: Vec<SecretVersion>,
    /// Its deleted names.
    pub(crate) deleted: Vec<DeletedName>,
    /// What the server said changed after it, when already asked.
    pub(crate) changes: Option<EnvironmentState>,
    /// The revision of this account's personal overrides it holds (0: none).
    pub(crate) personal: u64,
}

impl Base {
    /// This state with `changes` applied: changed values replace (or add) theirs, deletes
    /// move names to the deleted list; the manifests are the served ones.
    fn merged(&self, changes: EnvironmentState) -> EnvironmentState {
        let mut live: BTreeMap<&str, &SecretVersion> =
            self.secrets.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut deleted: BTreeMap<&str, &DeletedName> =
            self.deleted.iter().map(|d| (d.name.as_str(), d)).collect();
        for s in &changes.secrets {
            deleted.remove(s.name.as_str());
            live.insert(&s.name, s);
        }
        for d in &changes.deleted {
            live.remove(d.name.as_str());
            deleted.insert(&d.name, d);
        }
        EnvironmentState {
            secrets: live.into_values().cloned().collect(),
            deleted: deleted.into_values().cloned().collect(),
            manifests: changes.manifests,
            personal: changes.personal,
        }
    }
}

/// [`open_with`] starting from `base` when it is at this account's head.
pub(crate) async fn open_from<'a>(
    ctx: &Context,
    b: &'a AnyBackend,
    t: &Target,
    purpose: Purpose,
    global: &crate::cli::GlobalArgs,
    unlocked: Option<&KeySource>,
    mut base: Option<Base>,
) -> Result<Opened<'a>> {
    let workspace = t.project.workspace_id;
    let Principal {
        roster: mut authority_roster,
        mut pins,
        mut signer,
        keys,
        token,
        roster_pending,
    } = principal(ctx, b, t, global, unlocked).await?;
    let head = pins.head(&workspace, t);
    let expected = Expected {
        workspace,
        project: t.project.id,
        project_name: &t.project.name,
        environment: t.env.id,
        environment_name: &t.env.slug,
    };
    let since = head.map_or(ManifestsSince::Anchor, |h| {
        ManifestsSince::Revision(h.revision)
    });
    // The key and the state at the same time: the agent unwraps while the server answers.
    let access = async { Ok::<_, anyhow::Error>(b.environment_key(&t.env.id).await?) };
    // Changes the caller already asked for (taken here, so the base is only borrowed below).
    let asked = base.as_mut().and_then(|b| b.changes.take());
    let state = async {
        if let (Some(base), Some(h)) = (&base, head)
            && base.revision == h.revision
        {
            let changes = match asked {
                Some(c) => Some(c),
                None => {
                    b.environment_changes(&t.env.id, h.revision, base.personal)
                        .await?
                }
            };
            if let Some(changes) = changes {
                return Ok::<_, anyhow::Error>(base.merged(changes));
            }
        }
        Ok(b.environment_state(&t.env.id, since).await?)
    };
    // A member's roster too: three requests in one round trip.
    let roster = async {
        match &mut pins {
            Pins::Member(trust) if roster_pending => member_roster(ctx, b, trust, t, purpose).await,
            _ => Ok(None),
        }
    };
    let (access, mut state, fetched) = tokio::try_join!(access, state, roster)?;
    if roster_pending && let Pins::Member(trust) = &pins {
        signer = fetched.as_ref().map(|r| Signer {
            principal: PrincipalId::Member(trust.me().account),
            roster: Some(r.head()),
            key: trust.signing_key(),
            admin: r
                .member(&trust.me().account)
                .is_some_and(klef_core::trust::roster::MemberRecord::is_admin),
        });
        authority_roster = fetched;
    }
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
        let checked = check_values(&verified, &state.secrets);
        match checked {
            Ok(()) => {
                manifest = Some(verified);
                break;
            }
            // A write between the two reads of the state: read once more.
            Err(_) if attempt == 0 => {
                state = b.environment_state(&t.env.id, since).await?;
            }
            Err(_) if purpose == Purpose::ReadSkipping => {
                skipped = keep_matching(&verified, &mut state.secrets);
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
    let personal = personal::open_served(
        b,
        t,
        &mut pins,
        state.personal.take(),
        crate::personal::starting_over(ctx),
    )?;
    crate::personal::remember(ctx, t, personal.as_ref());
    let mut opened = Opened {
        key,
        access,
        secrets: state.secrets,
        deleted: state.deleted,
        skipped,
        manifest,
        personal,
        signer: if purpose == Purpose::Write || matches!(pins, Pins::Local(_)) {
            signer
        } else {
            None
        },
        roster: authority_roster.map(Box::new),
        pins,
        workspace,
    };
    if opened.manifest.is_none() {
        opened.unsealed(ctx, b, t).await?;
    }
    opened.pins.save().await?;
    Ok(opened)
}

/// Who acts and where the heads are kept: a system key (its CI anchor's roster, no heads), a
/// member on a server (the roster they pinned, the account's pins) or the local vault's owner
/// (their identity, the vault's pins file).
struct Principal<'a, 'k> {
    /// The verified roster that authorises signers (`None` in the local vault, for a
    /// workspace this account has not pinned, or a CI key without an anchor).
    roster: Option<VerifiedRoster>,
    pins: Pins<'a>,
    /// Who would sign a write (`None` without a roster on a server).
    signer: Option<Signer>,
    /// The account's keys (`None` for a system key, which derives its own).
    keys: Option<KeyRef<'k>>,
    /// The system key in `KLEF_TOKEN`.
    token: Option<klef_core::crypto::token::ApiToken>,
    /// A member's roster (and so the signer) is still to be fetched: [`open_from`] asks for
    /// it together with the key and the state.
    roster_pending: bool,
}

async fn principal<'a, 'k>(
    ctx: &Context,
    b: &'a AnyBackend,
    t: &Target,
    global: &crate::cli::GlobalArgs,
    unlocked: Option<&'k KeySource>,
) -> Result<Principal<'a, 'k>> {
    if let Some(token) = crate::commands::keys::ci::system_token()? {
        let roster = crate::commands::keys::ci::verify_own_entry(ctx, b, &token, t).await?;
        let signer = roster.as_ref().map(|r| Signer {
            principal: PrincipalId::SystemKey(token.id()),
            roster: Some(r.head()),
            key: token.split().signing_key(),
            admin: false,
        });
        return Ok(Principal {
            roster,
            pins: Pins::None,
            signer,
            keys: None,
            token: Some(token),
            roster_pending: false,
        });
    }
    let keys = match unlocked {
        Some(k) => KeyRef::Borrowed(k),
        None => KeyRef::Owned(ctx.keys_with(b, global, Unlock::OnFirstUse).await?),
    };
    if let Some(remote) = b.as_remote() {
        let trust = Trust::load(ctx, remote, keys.get()).await?;
        return Ok(Principal {
            roster: None,
            pins: Pins::Member(Box::new(trust)),
            signer: None,
            keys: Some(keys),
            token: None,
            roster_pending: true,
        });
    }
    let account = ctx.account(b).await?;
    let (derived, _) = keys.get().derived().await?;
    let signer = Signer {
        principal: PrincipalId::Member(account.id),
        roster: None,
        key: derived.identity(),
        admin: true,
    };
    let pins = LocalPins::load(ctx, &account, derived, t.project.workspace_id)?;
    Ok(Principal {
        roster: None,
        pins: Pins::Local(pins),
        signer: Some(signer),
        keys: Some(keys),
        token: None,
        roster_pending: false,
    })
}

/// Every served live value against the verified manifest (name, version, ciphertext hash,
/// none missing or added) and the manifest's key version; the failure says which value.
fn check_values(verified: &Manifest, secrets: &[SecretVersion]) -> Result<(), String> {
    let served = secrets.iter().filter_map(|s| {
        let ct = s.ciphertext.as_ref()?;
        Some((
            s.name.as_str(),
            u64::try_from(s.version).unwrap_or(0),
            ct.as_bytes(),
        ))
    });
    verified.check_values(served).map_err(|e| e.to_string())?;
    let key_version = i64::try_from(verified.body().key_version).unwrap_or(i64::MAX);
    match secrets
        .iter()
        .find(|s| s.ciphertext.is_some() && s.key_version != key_version)
    {
        Some(s) => Err(format!(
            "{}: the server says it is sealed under key version {}, the signed state under {key_version}",
            s.name, s.key_version
        )),
        None => Ok(()),
    }
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
            .map_message(|m| {
                m.replace("the server served", "the vault file holds")
                    .replace("the server did not serve", "the vault file does not hold")
                    .replace("the server replaced or altered", "an edit of the vault file replaced or altered")
                    .replace("the server", "the vault file")
            })
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

/// What `t` must be, for manifests.
fn expected(t: &Target) -> Expected<'_> {
    expected_of(&t.project, &t.env)
}

/// What the manifests of `env` of `project` must name.
fn expected_of<'e>(
    project: &'e klef_core::model::Project,
    env: &'e klef_core::model::Environment,
) -> Expected<'e> {
    Expected {
        workspace: project.workspace_id,
        project: project.id,
        project_name: &project.name,
        environment: env.id,
        environment_name: &env.slug,
    }
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

/// Whether the keys are at hand without asking anyone (a system key, the agent holding them,
/// a password given): reads that are useful without keys (`klef list`, `klef history`)
/// verify then, and say they did not otherwise.
pub(crate) async fn keys_at_hand(ctx: &Context, b: &AnyBackend) -> Result<bool> {
    if crate::commands::keys::ci::system_token()?.is_some() {
        return Ok(true);
    }
    // On a server the session names the account: no request needed.
    let vault = match b.as_remote().and_then(|r| {
        r.session_account()
            .map(|a| crate::remote::session::vault_label(r.server(), a))
    }) {
        Some(vault) => vault,
        None => match b.account().await? {
            Some(account) => b.vault_id(&account),
            None => return Ok(false),
        },
    };
    Ok(crate::unlock::unlocked_without_asking(&ctx.global, &vault).await)
}

impl Opened<'_> {
    /// The verified head (`None` for an environment made before manifests).
    pub(crate) fn head(&self) -> Option<ManifestHead> {
        self.manifest.as_ref().map(Manifest::head)
    }

    /// The names whose latest version is a delete.
    pub(crate) fn deleted(&self) -> &[DeletedName] {
        &self.deleted
    }

    /// The environment's manifests from revision `from` up to the verified head, ascending,
    /// as verified bodies. The server serves them; each is proven by the next one, which
    /// signed its hash as `previous`, up to the head this read verified (so one changed
    /// byte, a missing or reordered revision, or another environment's chain is refused).
    /// Never empty; an environment made before manifests has no past to read (exit 5).
    pub(crate) async fn past(
        &self,
        b: &AnyBackend,
        t: &Target,
        from: u64,
    ) -> Result<Vec<ManifestBody>> {
        let Some(head) = self.head() else {
            return Err(Failure::not_found(format!(
                "{} has no signed revisions yet (it was made before signed state)",
                t.describe()
            ))
            .hint("`klef env seal` signs its state, and every write after it is a revision; `klef diff --at TIME` compares with a time, `klef history KEY` shows a key's versions")
            .into());
        };
        if from == 0 || from > head.revision {
            return Err(Failure::usage(format!(
                "{} has signed revisions 1 to {}; there is no revision {from}",
                t.describe(),
                head.revision
            ))
            .hint("`klef history` lists the revisions")
            .into());
        }
        let served = b
            .environment_state(&t.env.id, ManifestsSince::Revision(from))
            .await?
            .manifests;
        let altered = |what: &str| -> anyhow::Error {
            Failure::other(format!(
                "{}: the server's earlier signed states do not lead to the verified one ({what}): they were altered or withheld",
                t.describe()
            ))
            .into()
        };
        // A write since this read may have added newer ones: stop at the verified head.
        let upto = usize::try_from(head.revision - from + 1).map_err(|_| altered("too many"))?;
        if served.len() < upto {
            return Err(altered("some are missing"));
        }
        let signed = to_signed(&served[..upto])?;
        if signed.last().map(SignedManifest::hash) != Some(head.hash) {
            return Err(altered("the newest is not the verified head"));
        }
        let bodies = signed
            .iter()
            .map(|m| ManifestBody::parse(&m.body).map_err(|_| altered("one does not parse")))
            .collect::<Result<Vec<_>>>()?;
        for (i, body) in bodies.iter().enumerate() {
            if body.revision != from + i as u64 || body.environment != t.env.id {
                return Err(altered("out of order, or of another environment"));
            }
        }
        if signed
            .iter()
            .zip(bodies.iter().skip(1))
            .any(|(m, next)| next.previous != m.hash())
        {
            return Err(altered("a link of the chain does not match"));
        }
        Ok(bodies)
    }

    /// Who signed `body`, for showing: the member's email as the verified roster recorded it
    /// when they signed (removed since or not), a system key's id, or the local vault's owner.
    pub(crate) fn signed_by(&self, body: &ManifestBody) -> String {
        use klef_core::trust::roster::Record;
        let Some(roster) = &self.roster else {
            return if matches!(self.pins, Pins::Local(_)) {
                "vault owner".into()
            } else {
                body.signer.to_string()
            };
        };
        let sequence = body.roster.map_or(roster.head().sequence, |h| h.sequence);
        match roster.record_as_of(&body.signer, sequence) {
            Some(Record::Member(m)) => m.email.clone(),
            _ => body.signer.to_string(),
        }
    }

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
