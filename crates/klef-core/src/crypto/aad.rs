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
    /// Free-form context for other envelopes (backups, tests); the label must be unique.
    Other(&'a str),
}

impl Aad<'_> {
    /// The associated-data bytes: `"klef/v1/" ‖ label ‖ 0x00 ‖ fields`, each field a
    /// big-endian `u32` length followed by its bytes, so no two contexts can produce the same
    /// bytes (labels contain no `0x00`; ids are their 16 raw bytes; names are UTF-8).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let (label, fields): (&str, [&[u8]; 2]) = match self {
            Aad::MasterKeyByPassword(a) => ("master-key-by-password", [a.0.as_bytes(), &[]]),
            Aad::MasterKeyByRecovery(a) => ("master-key-by-recovery", [a.0.as_bytes(), &[]]),
            Aad::PrivateKey(a) => ("private-key", [a.0.as_bytes(), &[]]),
            Aad::ProjectKey(p) => ("project-key", [p.0.as_bytes(), &[]]),
            Aad::EnvironmentKey(e) => ("environment-key", [e.0.as_bytes(), &[]]),
            Aad::SecretValue { environment, name } => {
                ("secret-value", [environment.0.as_bytes(), name.as_bytes()])
            }
            Aad::Other(label) => ("other", [label.as_bytes(), &[]]),
        };
        let count = match self {
            Aad::SecretValue { .. } => 2,
            _ => 1,
        };
        let mut out = Vec::with_capacity(AAD_PREFIX.len() + label.len() + 1 + 40);
        out.extend_from_slice(AAD_PREFIX);
        out.extend_from_slice(label.as_bytes());
        out.push(0);
        for field in &fields[..count] {
            let len = u32::try_from(field.len()).expect("an AAD field longer than 4 GiB");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }
}

/// The common prefix of every associated-data string (format version 1).
const AAD_PREFIX: &[u8] = b"klef/v1/";
