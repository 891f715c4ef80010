//! Signed environment state (DESIGN.md §9.3): key commitments and manifests.
//!
//! * **Key commitment.** `kc = HMAC-SHA256(environment key, labelled("key-commit", environment
//!   id, key version))`; a project key's is `HMAC-SHA256(project key,
//!   labelled("project-key-commit", project id, key version))`. A client checks every key it
//!   unwrapped against the latest verified commitment before decrypting **or encrypting** with
//!   it: HPKE authenticates no sender, so a key is never trusted because it opened.
//! * **Manifest.** After every write the writer signs the environment's next state: ids and
//!   names of workspace, project and environment, revision, previous manifest hash, key version,
//!   key commitment, the roster head it was made under, the signer, and every live name with
//!   its version and the SHA-256 of its ciphertext, sorted by name. The ciphertext hashes matter:
//!   every reader holds the symmetric key and could forge a ciphertext, so only the writer's
//!   signature authenticates a value.
//! * **Verification** ([`verify_update`]): the signature, the signer's right to write that
//!   environment at the roster entry it references and ever since (up to the reader's verified
//!   head), the names asked for, descent from the head this account has seen (rollback and fork
//!   detection), key versions never going back, key changes only by admins, and then every
//!   served value against the manifest ([`Manifest::check_values`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub mod project;
mod verify;

pub use verify::{Authority, Expected, ManifestError, verify_update};

use super::encoding::{DecodeError, Labelled, Reader};
use super::identity::{Signature, SigningKey};
use super::primitives::{hmac_sha256, sha256};
use super::roster::{EntryHash, PrincipalId, RosterHead, read_principal, write_principal};
use crate::crypto::SymmetricKey;
use crate::ids::{EnvironmentId, ProjectId, WorkspaceId};

/// The label of a manifest's signed body.
pub const MANIFEST_LABEL: &str = "sig/manifest";

/// SHA-256 of a manifest's signed body.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ManifestHash(pub [u8; 32]);

impl ManifestHash {
    /// What the first manifest (revision 1) names as its predecessor.
    pub const ZERO: ManifestHash = ManifestHash([0; 32]);
}

impl fmt::Debug for ManifestHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestHash({})", hex::encode(self.0))
    }
}

/// The newest manifest an account has verified for an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestHead {
    /// Its revision (1 for the first manifest).
    pub revision: u64,
    /// Its hash.
    pub hash: ManifestHash,
    /// Its key version (a later manifest may not go below it).
    pub key_version: u64,
}

/// A key commitment: an HMAC of a key over what it is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyCommitment(pub [u8; 32]);

impl fmt::Debug for KeyCommitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyCommitment({})", hex::encode(self.0))
    }
}

/// An unwrapped key does not match the signed commitment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the key the server provided does not match the signed key commitment: the server injected or replayed a key"
)]
pub struct KeyCommitmentMismatch;

impl KeyCommitment {
    /// The commitment to an environment key at `key_version`.
    #[must_use]
    pub fn environment(key: &SymmetricKey, environment: &EnvironmentId, key_version: u64) -> Self {
        let message = Labelled::new("key-commit")
            .id(&environment.0)
            .u64(key_version)
            .finish();
        Self(hmac_sha256(key.expose(), &message))
    }

    /// The commitment to a project key at `key_version`.
    #[must_use]
    pub fn project(key: &SymmetricKey, project: &ProjectId, key_version: u64) -> Self {
        let message = Labelled::new("project-key-commit")
            .id(&project.0)
            .u64(key_version)
            .finish();
        Self(hmac_sha256(key.expose(), &message))
    }

    /// Whether `key` is the environment key this commits to (constant time).
    pub fn check_environment(
        &self,
        key: &SymmetricKey,
        environment: &EnvironmentId,
        key_version: u64,
    ) -> Result<(), KeyCommitmentMismatch> {
        let expected = Self::environment(key, environment, key_version);
        if crate::crypto::constant_time_eq(&expected.0, &self.0) {
            Ok(())
        } else {
            Err(KeyCommitmentMismatch)
        }
    }

    /// Whether `key` is the project key this commits to (constant time).
    pub fn check_project(
        &self,
        key: &SymmetricKey,
        project: &ProjectId,
        key_version: u64,
    ) -> Result<(), KeyCommitmentMismatch> {
        let expected = Self::project(key, project, key_version);
        if crate::crypto::constant_time_eq(&expected.0, &self.0) {
            Ok(())
        } else {
            Err(KeyCommitmentMismatch)
        }
    }
}

/// What a manifest says about one live name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueRef {
    /// The version (1 for the first write of the name).
    pub version: u64,
    /// SHA-256 of the sealed value, exactly as stored.
    pub ciphertext_hash: [u8; 32],
}

impl ValueRef {
    /// The reference to `ciphertext` at `version`.
    #[must_use]
    pub fn new(version: u64, ciphertext: &[u8]) -> Self {
        Self {
            version,
            ciphertext_hash: sha256(ciphertext),
        }
    }
}

/// The content of a manifest, before signing or after verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBody {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The project.
    pub project: ProjectId,
    /// The project's name (readers check it is the one they asked for; changing it needs an
    /// owner's or admin's signature).
    pub project_name: String,
    /// The environment.
    pub environment: EnvironmentId,
    /// The environment's name, the slug users type (readers check it is the one they asked
    /// for, so staging cannot be relabelled production; changing it needs an owner's or
    /// admin's signature).
    pub environment_name: String,
    /// 1 for the first manifest, then +1 per write.
    pub revision: u64,
    /// The previous manifest's hash ([`ManifestHash::ZERO`] for revision 1).
    pub previous: ManifestHash,
    /// The environment key version values are sealed under.
    pub key_version: u64,
    /// The commitment to that key.
    pub key_commitment: KeyCommitment,
    /// The roster head it was made under (`None` in a local vault, which has no roster).
    pub roster: Option<RosterHead>,
    /// Who signs it: a member (identity key) or a read-write system key (its signing key).
    pub signer: PrincipalId,
    /// Every live name, sorted by name.
    pub values: BTreeMap<String, ValueRef>,
}

/// A manifest as stored and served: the exact signed bytes and the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedManifest {
    /// The labelled body, exactly as signed.
    pub body: Vec<u8>,
    /// The signer's Ed25519 signature of `body`.
    pub signature: Signature,
}

impl fmt::Debug for SignedManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedManifest")
            .field("hash", &self.hash())
            .finish_non_exhaustive()
    }
}

impl SignedManifest {
    /// SHA-256 of the signed body.
    #[must_use]
    pub fn hash(&self) -> ManifestHash {
        ManifestHash(sha256(&self.body))
    }
}

/// Longest project or environment name a manifest may carry.
const MAX_NAME_LEN: usize = 1024;

impl ManifestBody {
    /// The first manifest of a new environment (revision 1, no values, a commitment to `key`
    /// at `key_version`): what `env create` signs, as an owner or admin.
    #[must_use]
    pub fn first(
        expected: &Expected<'_>,
        key: &SymmetricKey,
        key_version: u64,
        roster: Option<RosterHead>,
        signer: PrincipalId,
    ) -> Self {
        Self {
            workspace: expected.workspace,
            project: expected.project,
            project_name: expected.project_name.to_owned(),
            environment: expected.environment,
            environment_name: expected.environment_name.to_owned(),
            revision: 1,
            previous: ManifestHash::ZERO,
            key_version,
            key_commitment: KeyCommitment::environment(key, &expected.environment, key_version),
            roster,
            signer,
            values: BTreeMap::new(),
        }
    }

    /// The labelled body (label `sig/manifest`); see the decision record for the field order.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let w = Labelled::new(MANIFEST_LABEL)
            .id(&self.workspace.0)
            .id(&self.project.0)
            .str(&self.project_name)
            .id(&self.environment.0)
            .str(&self.environment_name)
            .u64(self.revision)
            .field(&self.previous.0)
            .u64(self.key_version)
            .field(&self.key_commitment.0);
        let w = match &self.roster {
            None => w.u8(0),
            Some(head) => w.u8(1).u64(head.sequence).field(&head.hash.0),
        };
        let mut w = write_principal(w, &self.signer).count(self.values.len());
        for (name, value) in &self.values {
            w.push_field(name.as_bytes());
            w.push_field(&value.version.to_be_bytes());
            w.push_field(&value.ciphertext_hash);
        }
        w.finish()
    }

    /// Signs the encoded body.
    #[must_use]
    pub fn sign(&self, key: &SigningKey) -> SignedManifest {
        let body = self.encode();
        let signature = key.sign(&body);
        SignedManifest { body, signature }
    }

    /// Parses a signed body. Pure and panic-free; nothing but the signer is used before the
    /// signature verified.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, MANIFEST_LABEL)?;
        let workspace = WorkspaceId(r.id()?);
        let project = ProjectId(r.id()?);
        let project_name = read_name(&mut r)?;
        let environment = EnvironmentId(r.id()?);
        let environment_name = read_name(&mut r)?;
        let revision = r.u64()?;
        let previous = ManifestHash(r.array()?);
        let key_version = r.u64()?;
        let key_commitment = KeyCommitment(r.array()?);
        let roster = match r.u8()? {
            0 => None,
            1 => Some(RosterHead {
                sequence: r.u64()?,
                hash: EntryHash(r.array()?),
            }),
            _ => return Err(DecodeError::Invalid("unknown roster reference kind")),
        };
        let signer = read_principal(&mut r)?;
        // Each value is at least an empty name (4), a version (12) and a hash (36).
        let n = r.count(52)?;
        let mut values = BTreeMap::new();
        for _ in 0..n {
            let name = r.str()?;
            if name.is_empty() {
                return Err(DecodeError::Invalid("an empty key name"));
            }
            let version = r.u64()?;
            let ciphertext_hash = r.array()?;
            if values
                .last_key_value()
                .is_some_and(|(last, _): (&String, _)| last.as_str() >= name)
            {
                return Err(DecodeError::Invalid("names not in ascending order"));
            }
            values.insert(
                name.to_owned(),
                ValueRef {
                    version,
                    ciphertext_hash,
                },
            );
        }
        r.finish()?;
        Ok(Self {
            workspace,
            project,
            project_name,
            environment,
            environment_name,
            revision,
            previous,
            key_version,
            key_commitment,
            roster,
            signer,
            values,
        })
    }
}

fn read_name(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let name = r.str()?;
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(DecodeError::Invalid("a project or environment name"));
    }
    Ok(name.to_owned())
}

/// A manifest whose signature and signer verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    hash: ManifestHash,
    body: ManifestBody,
}

impl Manifest {
    /// The verified content.
    #[must_use]
    pub fn body(&self) -> &ManifestBody {
        &self.body
    }

    /// The hash of its signed body.
    #[must_use]
    pub fn hash(&self) -> ManifestHash {
        self.hash
    }

    /// What to store as this environment's head.
    #[must_use]
    pub fn head(&self) -> ManifestHead {
        ManifestHead {
            revision: self.body.revision,
            hash: self.hash,
            key_version: self.body.key_version,
        }
    }

    /// The next manifest's body: revision + 1, this one as predecessor, the same key and
    /// values, for `signer` under `roster`. The writer then edits `values` (or the key, for a
    /// rotation) and signs.
    #[must_use]
    pub fn next_body(&self, signer: PrincipalId, roster: Option<RosterHead>) -> ManifestBody {
        ManifestBody {
            revision: self.body.revision.saturating_add(1),
            previous: self.hash,
            signer,
            roster,
            ..self.body.clone()
        }
    }

    /// The next manifest's body for a key rotation to `new_key`: key version + 1 and its
    /// commitment. The caller re-encrypts every value under the new key and replaces `values`
    /// with the new versions before an owner or admin signs.
    #[must_use]
    pub fn rotation_body(
        &self,
        new_key: &SymmetricKey,
        signer: PrincipalId,
        roster: Option<RosterHead>,
    ) -> ManifestBody {
        let key_version = self.body.key_version.saturating_add(1);
        ManifestBody {
            key_version,
            key_commitment: KeyCommitment::environment(
                new_key,
                &self.body.environment,
                key_version,
            ),
            ..self.next_body(signer, roster)
        }
    }

    /// Checks an unwrapped environment key against this manifest's commitment before it is
    /// used to decrypt or encrypt anything.
    pub fn check_key(&self, key: &SymmetricKey) -> Result<(), KeyCommitmentMismatch> {
        self.body.key_commitment.check_environment(
            key,
            &self.body.environment,
            self.body.key_version,
        )
    }

    /// Checks one served value (name, version, sealed bytes) against the manifest.
    pub fn check_value(
        &self,
        name: &str,
        version: u64,
        ciphertext: &[u8],
    ) -> Result<(), ValueError> {
        let listed = self
            .body
            .values
            .get(name)
            .ok_or_else(|| ValueError::Unlisted {
                name: name.to_owned(),
            })?;
        if listed.version != version {
            return Err(ValueError::WrongVersion {
                name: name.to_owned(),
                listed: listed.version,
                served: version,
            });
        }
        if !crate::crypto::constant_time_eq(&sha256(ciphertext), &listed.ciphertext_hash) {
            return Err(ValueError::Replaced {
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// Checks the complete served set of live values: each matches, none is served twice, and
    /// every listed name is there (nothing dropped).
    pub fn check_values<'a>(
        &self,
        served: impl IntoIterator<Item = (&'a str, u64, &'a [u8])>,
    ) -> Result<(), ValueError> {
        let mut seen = BTreeSet::new();
        for (name, version, ciphertext) in served {
            self.check_value(name, version, ciphertext)?;
            if !seen.insert(name) {
                return Err(ValueError::Duplicate {
                    name: name.to_owned(),
                });
            }
        }
        match self.body.values.keys().find(|n| !seen.contains(n.as_str())) {
            Some(missing) => Err(ValueError::Missing {
                name: missing.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// A served value that does not match the verified manifest. Each names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The manifest does not list the name.
    #[error("{name}: the server served a value the signed manifest does not list (injected)")]
    Unlisted {
        /// The key name.
        name: String,
    },
    /// The manifest lists the name but it was not served.
    #[error("{name}: the signed manifest lists it but the server did not serve it (dropped)")]
    Missing {
        /// The key name.
        name: String,
    },
    /// The name was served twice.
    #[error("{name}: the server served it twice")]
    Duplicate {
        /// The key name.
        name: String,
    },
    /// Another version than the manifest lists.
    #[error(
        "{name}: the server served version {served} but the signed manifest lists version {listed} (replayed or rolled back)"
    )]
    WrongVersion {
        /// The key name.
        name: String,
        /// The version the manifest lists.
        listed: u64,
        /// The version served.
        served: u64,
    },
    /// The ciphertext's hash differs from the manifest's.
    #[error(
        "{name}: the value does not match the signed manifest: the server replaced or altered it"
    )]
    Replaced {
        /// The key name.
        name: String,
    },
}
