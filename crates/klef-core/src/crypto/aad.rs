//! [`Aad`]: the context every envelope is bound to.

use crate::ids::{AccountId, EnvironmentId, ProjectId};

/// The context an envelope is bound to. It becomes the AEAD associated data (and HPKE `info`),
/// so an envelope moved to another name, environment or account fails to open.
#[derive(Debug, Clone, Copy)]
pub enum Aad<'a> {
    /// The master key sealed under the password-derived KEK.
    MasterKeyByPassword(&'a AccountId),
    /// The master key sealed under the recovery key.
    MasterKeyByRecovery(&'a AccountId),
    /// The private key sealed under the master key.
    PrivateKey(&'a AccountId),
    /// A project key wrapped to an account or API key public key.
    ProjectKey(&'a ProjectId),
    /// An environment key sealed under the project key or wrapped to a public key.
    EnvironmentKey(&'a EnvironmentId),
    /// A secret value.
    SecretValue {
        /// The environment.
        environment: &'a EnvironmentId,
        /// The key name.
        name: &'a str,
    },
    /// A secret value at its place in the environment's signed history (suite `0x02`):
    /// environment, name, version and the environment key version that seals it, so a value
    /// moved to another version (a replay) fails to open even before the manifest is checked.
    SecretValueAt {
        /// The environment.
        environment: &'a EnvironmentId,
        /// The key name.
        name: &'a str,
        /// The value's version.
        version: u64,
        /// The environment key version sealing it.
        key_version: u64,
    },
    /// Free-form context for other envelopes (backups, tests); the label must be unique.
    Other(&'a str),
}

impl Aad<'_> {
    /// The associated-data bytes: `"klef/v1/" ‖ label ‖ 0x00 ‖ fields`, each field a
    /// big-endian `u32` length followed by its bytes, so no two contexts can produce the same
    /// bytes (labels contain no `0x00`; ids are their 16 raw bytes; names are UTF-8).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Aad::MasterKeyByPassword(a) => labelled("master-key-by-password", &[a.0.as_bytes()]),
            Aad::MasterKeyByRecovery(a) => labelled("master-key-by-recovery", &[a.0.as_bytes()]),
            Aad::PrivateKey(a) => labelled("private-key", &[a.0.as_bytes()]),
            Aad::ProjectKey(p) => labelled("project-key", &[p.0.as_bytes()]),
            Aad::EnvironmentKey(e) => labelled("environment-key", &[e.0.as_bytes()]),
            Aad::SecretValue { environment, name } => {
                labelled("secret-value", &[environment.0.as_bytes(), name.as_bytes()])
            }
            Aad::SecretValueAt {
                environment,
                name,
                version,
                key_version,
            } => labelled(
                "secret-value-at",
                &[
                    environment.0.as_bytes(),
                    name.as_bytes(),
                    &version.to_be_bytes(),
                    &key_version.to_be_bytes(),
                ],
            ),
            Aad::Other(label) => labelled("other", &[label.as_bytes()]),
        }
    }
}

/// `"klef/v1/" ‖ label ‖ 0x00 ‖ (u32 length ‖ field)…`.
fn labelled(label: &str, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_PREFIX.len() + label.len() + 1 + 48);
    out.extend_from_slice(AAD_PREFIX);
    out.extend_from_slice(label.as_bytes());
    out.push(0);
    for field in fields {
        let len = u32::try_from(field.len()).expect("an AAD field longer than 4 GiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// The common prefix of every associated-data string (format version 1).
const AAD_PREFIX: &[u8] = b"klef/v1/";
