//! Verifying a served chain of manifests against the roster (or a vault's owner) and the
//! head this account has seen.

use super::{Manifest, ManifestBody, ManifestHash, ManifestHead, SignedManifest};
use crate::ids::{AccountId, EnvironmentId, ProjectId, WorkspaceId};
use crate::trust::encoding::DecodeError;
use crate::trust::identity::VerifyingKey;
use crate::trust::roster::{PrincipalId, VerifiedRoster, WriterError};

/// What a manifest is expected to be about: what the user asked for.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The project.
    pub project: ProjectId,
    /// The project's name as the user knows it.
    pub project_name: &'a str,
    /// The environment.
    pub environment: EnvironmentId,
    /// The environment's name as the user asked for it.
    pub environment_name: &'a str,
}

/// Who may sign manifests.
#[derive(Debug, Clone, Copy)]
pub enum Authority<'a> {
    /// A workspace on a server: the verified roster decides (DESIGN.md §9.3's rule).
    Roster(&'a VerifiedRoster),
    /// A local vault: only its owner, with no roster.
    LocalOwner {
        /// The owner's account.
        account: AccountId,
        /// The owner's identity key.
        key: VerifyingKey,
    },
}

/// Why a served manifest chain is refused. Each names what the server did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// No manifest served.
    #[error("the server sent no manifest for the environment: it withheld its signed state")]
    Empty,
    /// Not a well-formed manifest.
    #[error("a manifest is malformed ({0}): the server altered it")]
    Malformed(DecodeError),
    /// The signature does not verify under the signer's key.
    #[error(
        "the signature of manifest revision {revision} does not verify: the server forged or altered it"
    )]
    ForgedSignature {
        /// The manifest's revision.
        revision: u64,
    },
    /// The signer was not allowed to sign it.
    #[error("manifest revision {revision} was not signed by an authorised writer: {error}")]
    Unauthorised {
        /// The manifest's revision.
        revision: u64,
        /// Why.
        error: WriterError,
    },
    /// A local-vault manifest not signed by the vault's owner, or one naming a roster.
    #[error(
        "manifest revision {revision} was not signed by this vault's owner: the vault file was edited"
    )]
    NotTheOwner {
        /// The manifest's revision.
        revision: u64,
    },
    /// A workspace manifest with no roster reference.
    #[error("manifest revision {revision} references no roster: the server forged it")]
    NoRoster {
        /// The manifest's revision.
        revision: u64,
    },
    /// The manifest is about another workspace, project or environment.
    #[error(
        "the server served the manifest of another {what} than the one asked for: it relabelled or swapped environments"
    )]
    WrongEnvironment {
        /// `workspace`, `project`, `project name`, `environment` or `environment name`.
        what: &'static str,
    },
    /// Older than the head this account has seen.
    #[error(
        "the server served revision {served}, older than revision {head} this account has already seen: a rollback"
    )]
    Rollback {
        /// The head's revision.
        head: u64,
        /// The newest served revision.
        served: u64,
    },
    /// Another manifest at a revision this account has seen.
    #[error(
        "manifest revision {revision} differs from the one this account has seen: the server forked the environment's history"
    )]
    Fork {
        /// The revision.
        revision: u64,
    },
    /// A revision is missing.
    #[error(
        "manifest revision {expected} is missing (revision {found} came next): the server withheld manifests"
    )]
    Gap {
        /// The revision that should have come.
        expected: u64,
        /// The one that came.
        found: u64,
    },
    /// A manifest does not name its predecessor's hash.
    #[error(
        "manifest revision {revision} does not follow the one before it: the server inserted or replaced a manifest"
    )]
    BrokenChain {
        /// The revision.
        revision: u64,
    },
    /// The key version went down.
    #[error(
        "manifest revision {revision} goes back to key version {key_version}: the server replays a key from before a rotation"
    )]
    KeyVersionLowered {
        /// The revision.
        revision: u64,
        /// The lower key version.
        key_version: u64,
    },
    /// The key commitment changed without a new key version.
    #[error(
        "manifest revision {revision} changes the key commitment without a new key version: an injected key"
    )]
    CommitmentChanged {
        /// The revision.
        revision: u64,
    },
    /// The roster reference went back.
    #[error(
        "manifest revision {revision} references an older roster entry than the manifest before it"
    )]
    RosterWentBack {
        /// The revision.
        revision: u64,
    },
}

/// How strictly [`open`] applies the writer rule.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Check {
    /// The manifest sets the key or the names (first manifest, rotation, rename): owners and
    /// admins only.
    admin_only: bool,
    /// The newest manifest, whose values are used: its signer must still hold the right at the
    /// reader's roster head, and its names must be the ones asked for. Older manifests of a
    /// chain need the right only at the roster entry they reference (a later authorised
    /// writer's manifest vouches for them by hash) and may carry names from before a rename.
    newest: bool,
}

/// Verifies one manifest: parse, find the signer's key (and right) from `authority`, check
/// the signature, then that it is about what was asked for.
fn open(
    signed: &SignedManifest,
    expected: &Expected<'_>,
    authority: &Authority<'_>,
    check: Check,
) -> Result<Manifest, ManifestError> {
    let body = ManifestBody::parse(&signed.body).map_err(ManifestError::Malformed)?;
    let revision = body.revision;
    let key = match authority {
        Authority::Roster(roster) => {
            if body.workspace != roster.workspace() {
                return Err(ManifestError::WrongEnvironment { what: "workspace" });
            }
            let at = body.roster.ok_or(ManifestError::NoRoster { revision })?;
            let result = if check.newest {
                roster.check_writer(
                    &body.signer,
                    &body.project,
                    &body.environment,
                    at,
                    check.admin_only,
                )
            } else {
                roster.check_writer_at(
                    &body.signer,
                    &body.project,
                    &body.environment,
                    at,
                    check.admin_only,
                )
            };
            result.map_err(|error| ManifestError::Unauthorised { revision, error })?
        }
        Authority::LocalOwner { account, key } => {
            if body.signer != PrincipalId::Member(*account) || body.roster.is_some() {
                return Err(ManifestError::NotTheOwner { revision });
            }
            *key
        }
    };
    if !key.verify(&signed.body, &signed.signature) {
        return Err(ManifestError::ForgedSignature { revision });
    }
    let checks = [
        (body.workspace == expected.workspace, "workspace"),
        (body.project == expected.project, "project"),
        (
            !check.newest || body.project_name == expected.project_name,
            "project name",
        ),
        (body.environment == expected.environment, "environment"),
        (
            !check.newest || body.environment_name == expected.environment_name,
            "environment name",
        ),
    ];
    if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(ManifestError::WrongEnvironment { what });
    }
    if revision == 0 || (revision == 1) != (body.previous == ManifestHash::ZERO) {
        return Err(ManifestError::BrokenChain { revision });
    }
    Ok(Manifest {
        hash: signed.hash(),
        body,
    })
}

/// Verifies the manifests an environment's server (or vault) serves and returns the newest.
///
/// `served` is ascending by revision and ends with the newest. With a `head` (what this
/// account has seen), it must hold that very manifest (same revision and hash) and run
/// contiguously from it to the newest (manifests before the head are ignored); without one (a
/// fresh client, a CI job) it must start at a manifest an owner or admin signed (the
/// environment's creation, its latest rotation or rename: the server serves the newest one
/// that set the current key version and names), so every key commitment and name a client
/// uses was set by an admin; the
/// rest may then skip ahead to the newest (a fresh client has no head to descend from, so it
/// needs no history it cannot check). Along the chain: revisions +1, each names its
/// predecessor's hash, key versions never decrease, a new key version or a new project or
/// environment name needs an admin signer, the same key version keeps the same commitment,
/// roster references never decrease; each manifest's signer could write at the roster entry it
/// references and every manifest has the ids of `expected`; the newest one's signer still can
/// write at the reader's roster head, and it carries the names of `expected`.
pub fn verify_update(
    expected: &Expected<'_>,
    authority: &Authority<'_>,
    head: Option<&ManifestHead>,
    served: &[SignedManifest],
) -> Result<Manifest, ManifestError> {
    let last = served.len().checked_sub(1).ok_or(ManifestError::Empty)?;
    let check = |i: usize, admin_only: bool| Check {
        admin_only,
        newest: i == last,
    };
    let start = match head {
        None => 0,
        Some(head) => {
            let revisions: Vec<Option<u64>> = served
                .iter()
                .map(|m| ManifestBody::parse(&m.body).ok().map(|b| b.revision))
                .collect();
            let newest = ManifestBody::parse(&served[last].body)
                .map_err(ManifestError::Malformed)?
                .revision;
            if newest < head.revision {
                return Err(ManifestError::Rollback {
                    head: head.revision,
                    served: newest,
                });
            }
            let at = revisions
                .iter()
                .position(|r| *r == Some(head.revision))
                .ok_or_else(|| ManifestError::Gap {
                    expected: head.revision,
                    found: revisions
                        .iter()
                        .flatten()
                        .copied()
                        .find(|r| *r > head.revision)
                        .unwrap_or(newest),
                })?;
            if served[at].hash() != head.hash {
                return Err(ManifestError::Fork {
                    revision: head.revision,
                });
            }
            at
        }
    };
    let mut current = open(
        &served[start],
        expected,
        authority,
        check(start, head.is_none()),
    )?;
    if let Some(head) = head
        && current.body.key_version < head.key_version
    {
        return Err(ManifestError::KeyVersionLowered {
            revision: current.body.revision,
            key_version: current.body.key_version,
        });
    }
    for (i, signed) in served.iter().enumerate().skip(start + 1) {
        let body = ManifestBody::parse(&signed.body).map_err(ManifestError::Malformed)?;
        let prev = &current.body;
        let revision = body.revision;
        let expected_revision = prev
            .revision
            .checked_add(1)
            .ok_or(ManifestError::BrokenChain { revision })?;
        // A fresh client may skip from the admin-signed manifest to the newest ones: it has no
        // head to descend from, and the key rules below still hold across the gap.
        let skip = head.is_none() && i == start + 1 && revision > expected_revision;
        if revision > expected_revision && !skip {
            return Err(ManifestError::Gap {
                expected: expected_revision,
                found: revision,
            });
        }
        if revision < expected_revision {
            return Err(ManifestError::BrokenChain { revision });
        }
        if body.key_version < prev.key_version {
            return Err(ManifestError::KeyVersionLowered {
                revision,
                key_version: body.key_version,
            });
        }
        let new_key = body.key_version > prev.key_version;
        if !new_key && body.key_commitment != prev.key_commitment {
            return Err(ManifestError::CommitmentChanged { revision });
        }
        let renamed = body.project_name != prev.project_name
            || body.environment_name != prev.environment_name;
        let next = open(signed, expected, authority, check(i, new_key || renamed))?;
        if next.body.previous != current.hash && !skip {
            return Err(ManifestError::BrokenChain { revision });
        }
        if let (Some(a), Some(b)) = (prev.roster, next.body.roster)
            && b.sequence < a.sequence
        {
            return Err(ManifestError::RosterWentBack { revision });
        }
        current = next;
    }
    Ok(current)
}
