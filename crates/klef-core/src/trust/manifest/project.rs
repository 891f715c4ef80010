//! The project's signed record (DESIGN.md §9.3: "the project key has the same commitment in
//! its signed creation record").
//!
//! Environment keys of members with full access are sealed under the project key, and
//! `env create` seals the new environment's key under it. A project key the server injected
//! (wrapped to an admin by the server itself) would let the server open every environment
//! created afterwards, so a client checks an unwrapped project key against the newest verified
//! project record before sealing anything under it.
//!
//! Body, label `sig/project`: workspace id, project id, project name, revision `u64` (1 at
//! creation), previous record hash (zeros for revision 1), key version `u64`, project key
//! commitment ([`KeyCommitment::project`]), roster reference (as in a manifest), signer.
//! Every record is signed by an owner or admin at the roster entry it references; the newest
//! one's signer must still be an owner or admin at the reader's roster head.

use super::{KeyCommitment, KeyCommitmentMismatch, ManifestHash, ManifestHead};
use crate::crypto::SymmetricKey;
use crate::ids::{ProjectId, WorkspaceId};
use crate::trust::encoding::{DecodeError, Labelled, Reader};
use crate::trust::identity::{Signature, SigningKey};
use crate::trust::primitives::sha256;
use crate::trust::roster::{
    EntryHash, PrincipalId, RosterHead, VerifiedRoster, WriterError, read_principal,
    write_principal,
};

/// The label of a project record's signed body.
pub const PROJECT_LABEL: &str = "sig/project";

/// The content of a project record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectBody {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The project.
    pub project: ProjectId,
    /// Its name (a change needs an admin, like every project record).
    pub project_name: String,
    /// 1 at creation, then +1 per record.
    pub revision: u64,
    /// The previous record's hash ([`ManifestHash::ZERO`] for revision 1).
    pub previous: ManifestHash,
    /// The project key version.
    pub key_version: u64,
    /// [`KeyCommitment::project`] of the project key at `key_version`.
    pub key_commitment: KeyCommitment,
    /// The roster head it was made under.
    pub roster: RosterHead,
    /// The owner or admin who signs it.
    pub signer: PrincipalId,
}

/// A project record as stored and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedProjectRecord {
    /// The labelled body, exactly as signed.
    pub body: Vec<u8>,
    /// The signer's Ed25519 signature of `body`.
    pub signature: Signature,
}

impl SignedProjectRecord {
    /// SHA-256 of the signed body.
    #[must_use]
    pub fn hash(&self) -> ManifestHash {
        ManifestHash(sha256(&self.body))
    }
}

impl ProjectBody {
    /// The record of a new project (revision 1) committing to `key` at `key_version`.
    #[must_use]
    pub fn first(
        workspace: WorkspaceId,
        project: ProjectId,
        project_name: &str,
        key: &SymmetricKey,
        key_version: u64,
        roster: RosterHead,
        signer: PrincipalId,
    ) -> Self {
        Self {
            workspace,
            project,
            project_name: project_name.to_owned(),
            revision: 1,
            previous: ManifestHash::ZERO,
            key_version,
            key_commitment: KeyCommitment::project(key, &project, key_version),
            roster,
            signer,
        }
    }

    /// The labelled body.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let w = Labelled::new(PROJECT_LABEL)
            .id(&self.workspace.0)
            .id(&self.project.0)
            .str(&self.project_name)
            .u64(self.revision)
            .field(&self.previous.0)
            .u64(self.key_version)
            .field(&self.key_commitment.0)
            .u8(1)
            .u64(self.roster.sequence)
            .field(&self.roster.hash.0);
        write_principal(w, &self.signer).finish()
    }

    /// Signs the encoded body.
    #[must_use]
    pub fn sign(&self, key: &SigningKey) -> SignedProjectRecord {
        let body = self.encode();
        let signature = key.sign(&body);
        SignedProjectRecord { body, signature }
    }

    /// Parses a signed body (pure, panic-free, canonical).
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, PROJECT_LABEL)?;
        let workspace = WorkspaceId(r.id()?);
        let project = ProjectId(r.id()?);
        let project_name = r.str()?.to_owned();
        if project_name.is_empty() {
            return Err(DecodeError::Invalid("an empty project name"));
        }
        let revision = r.u64()?;
        let previous = ManifestHash(r.array()?);
        let key_version = r.u64()?;
        let key_commitment = KeyCommitment(r.array()?);
        if r.u8()? != 1 {
            return Err(DecodeError::Invalid(
                "a project record names no roster entry",
            ));
        }
        let roster = RosterHead {
            sequence: r.u64()?,
            hash: EntryHash(r.array()?),
        };
        let signer = read_principal(&mut r)?;
        r.finish()?;
        Ok(Self {
            workspace,
            project,
            project_name,
            revision,
            previous,
            key_version,
            key_commitment,
            roster,
            signer,
        })
    }
}

/// A project record whose chain, signatures and signers verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    hash: ManifestHash,
    body: ProjectBody,
}

impl ProjectRecord {
    /// The verified content.
    #[must_use]
    pub fn body(&self) -> &ProjectBody {
        &self.body
    }

    /// What to keep as the project's head (with the environment heads of the account pins).
    #[must_use]
    pub fn head(&self) -> ManifestHead {
        ManifestHead {
            revision: self.body.revision,
            hash: self.hash,
            key_version: self.body.key_version,
        }
    }

    /// The next record's body (for a rename or a project key rotation): revision + 1, this
    /// one as predecessor, under `roster`, signed by `signer`.
    #[must_use]
    pub fn next_body(&self, signer: PrincipalId, roster: RosterHead) -> ProjectBody {
        ProjectBody {
            revision: self.body.revision.saturating_add(1),
            previous: self.hash,
            signer,
            roster,
            ..self.body.clone()
        }
    }

    /// Checks an unwrapped project key before anything is sealed under it or opened with it.
    pub fn check_key(&self, key: &SymmetricKey) -> Result<(), KeyCommitmentMismatch> {
        self.body
            .key_commitment
            .check_project(key, &self.body.project, self.body.key_version)
    }
}

/// Why served project records are refused. Each names what the server did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectRecordError {
    /// No record served.
    #[error("the server sent no signed record for the project: it withheld it")]
    Empty,
    /// Not a well-formed record.
    #[error("the project's signed record is malformed ({0}): the server altered it")]
    Malformed(DecodeError),
    /// Another workspace or project, or (for the newest) another name than asked for.
    #[error(
        "the server served the signed record of another {0} than the one asked for: it relabelled or swapped projects"
    )]
    WrongProject(&'static str),
    /// The signature does not verify.
    #[error("the signature of project record {0} does not verify: the server forged or altered it")]
    ForgedSignature(u64),
    /// The signer was not an owner or admin (then, or now for the newest).
    #[error("project record {revision} was not signed by an admin: {error}")]
    Unauthorised {
        /// The record's revision.
        revision: u64,
        /// Why.
        error: WriterError,
    },
    /// Older than the head this account has seen, a fork of it, or a hole after it.
    #[error(
        "the server served project records that do not descend from revision {head} this account has seen: a rollback, fork or withheld record"
    )]
    NotDescended {
        /// The head's revision.
        head: u64,
    },
    /// Revisions, predecessors, key versions or roster references out of order.
    #[error(
        "project record {0} does not follow the one before it (revision, predecessor, key version or roster entry): the server inserted or replaced a record"
    )]
    BrokenChain(u64),
}

/// Verifies the project records served (ascending, newest last) and returns the newest. With
/// a `head`, the list must hold that very record and run contiguously from it; without one,
/// any contiguous run ending at the newest will do (every record is admin-signed). Key
/// versions never decrease and keep their commitment; roster references never decrease.
pub fn verify_project(
    workspace: WorkspaceId,
    project: ProjectId,
    project_name: &str,
    roster: &VerifiedRoster,
    head: Option<&ManifestHead>,
    served: &[SignedProjectRecord],
) -> Result<ProjectRecord, ProjectRecordError> {
    let last = served
        .len()
        .checked_sub(1)
        .ok_or(ProjectRecordError::Empty)?;
    let start = match head {
        None => 0,
        Some(head) => served.iter().position(|s| s.hash() == head.hash).ok_or(
            ProjectRecordError::NotDescended {
                head: head.revision,
            },
        )?,
    };
    let mut current: Option<ProjectRecord> = None;
    for (i, signed) in served.iter().enumerate().skip(start) {
        let body = ProjectBody::parse(&signed.body).map_err(ProjectRecordError::Malformed)?;
        let revision = body.revision;
        if body.workspace != workspace || roster.workspace() != workspace {
            return Err(ProjectRecordError::WrongProject("workspace"));
        }
        if body.project != project {
            return Err(ProjectRecordError::WrongProject("project"));
        }
        if i == last && body.project_name != project_name {
            return Err(ProjectRecordError::WrongProject("project name"));
        }
        let key = roster
            .check_admin(&body.signer, body.roster, i == last)
            .map_err(|error| ProjectRecordError::Unauthorised { revision, error })?;
        if !key.verify(&signed.body, &signed.signature) {
            return Err(ProjectRecordError::ForgedSignature(revision));
        }
        let chained = match &current {
            None => head.is_some() || revision != 1 || body.previous == ManifestHash::ZERO,
            Some(prev) => {
                let p = &prev.body;
                Some(revision) == p.revision.checked_add(1)
                    && body.previous == prev.hash
                    && body.key_version >= p.key_version
                    && (body.key_version > p.key_version || body.key_commitment == p.key_commitment)
                    && body.roster.sequence >= p.roster.sequence
            }
        };
        if !chained || revision == 0 {
            return Err(ProjectRecordError::BrokenChain(revision));
        }
        current = Some(ProjectRecord {
            hash: signed.hash(),
            body,
        });
    }
    let newest = current.ok_or(ProjectRecordError::Empty)?;
    if let Some(head) = head
        && newest.body.key_version < head.key_version
    {
        return Err(ProjectRecordError::BrokenChain(newest.body.revision));
    }
    Ok(newest)
}
