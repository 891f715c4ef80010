//! Accounts and sessions: sign-up, sign-in, `me`, key replacement (`routes/accounts.rs`).

use serde::{Deserialize, Serialize};

use super::SecretText;
use crate::ids::AccountId;
use crate::model::{Account, AccountKeys, Blob, PreviousAccountKeys, Timestamp, Workspace};

/// `POST /v1/signup`: creates an account and its personal workspace, and signs in.
///
/// The first account on a server owns it; later sign-ups need a pending invitation for the
/// email unless the server runs with `--open-signup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// The sign-in email (compared case-insensitively; stored lower-case).
    pub email: String,
    /// The account (sign-in) password, at least 8 characters. Never the encryption password.
    pub password: SecretText,
    /// The account id, chosen by the client (it is bound into the sealed keys' AAD).
    pub account_id: AccountId,
    /// The sealed key material made by the client (`crypto::account::create`).
    pub keys: AccountKeys,
    /// The account's Ed25519 identity public key (32 bytes), derived by the client from the
    /// master key (DESIGN.md §9.1). Absent when the client cannot derive it yet (a sign-up
    /// from a backup); the client publishes it after its first unlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_key: Option<Blob>,
    /// The personal workspace (`personal: true`), chosen by the client.
    pub personal_workspace: Workspace,
}

/// `POST /v1/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The sign-in email.
    pub email: String,
    /// The account (sign-in) password.
    pub password: SecretText,
}

/// The answer to [`SignupRequest`] and [`LoginRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionResponse {
    /// The bearer token (`klef_sess_…`). Shown once; the server keeps only its SHA-256.
    pub token: SecretText,
    /// When the session expires.
    pub expires_at: Timestamp,
    /// The signed-in account (sealed keys, to unlock with the encryption password).
    pub account: Account,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeResponse {
    /// The caller's account.
    pub account: Account,
    /// Whether the caller owns the server (the first account).
    pub server_owner: bool,
    /// When the current session expires.
    pub session_expires_at: Timestamp,
}

/// `PUT /v1/me/identity`: publishes the caller's Ed25519 identity public key once, for an
/// account made before identity keys (a session only). A different key than the one already
/// published is refused (`409`): identity keys never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishIdentityRequest {
    /// The 32-byte Ed25519 public key.
    pub identity_key: Blob,
}

/// `GET /v1/me/state`: the caller's sealed pins (DESIGN.md §9.2), opaque to the server, and
/// their revision (0 and no `sealed` before the first write). `PUT` takes
/// [`PutAccountStateRequest`] and answers this with the new revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStateResponse {
    /// The sealed record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Blob>,
    /// How many times it was written.
    pub revision: u64,
}

/// `PUT /v1/me/state` (a session or a user key): replaces the sealed pins if `expected_revision`
/// is the stored revision (`409` otherwise: another device wrote first; merge and retry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutAccountStateRequest {
    /// The sealed record.
    pub sealed: Blob,
    /// The revision this write replaces.
    pub expected_revision: u64,
}

/// `PUT /v1/me/keys`: replaces the sealed master-key copies and KDF parameters (password change,
/// recovery). The public key and sealed private key must be unchanged.
///
/// Only a session may do it, never an API key (`403`), and only with the account (sign-in)
/// password re-entered: missing is `400`, wrong is `403`, counted with failed sign-ins (`429`
/// beyond the limit). The replaced seal is kept ([`AccountKeyHistory`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceKeysRequest {
    /// The new key material.
    pub keys: AccountKeys,
    /// The account (sign-in) password, re-entered. Never the encryption password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_password: Option<SecretText>,
}

/// `GET /v1/me/keys` (a session only): the earlier seals of the caller's master key that
/// password changes and recoveries replaced, newest first, at most
/// [`KEY_HISTORY_KEPT`](crate::model::KEY_HISTORY_KEPT). `klef recover` falls back to one of
/// them when the current seal does not open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountKeyHistory {
    /// The earlier seals, newest first.
    pub previous: Vec<PreviousAccountKeys>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_text_is_redacted_and_round_trips() {
        let req = LoginRequest {
            email: "a@example.com".into(),
            password: SecretText::new("hunter2-hunter2"),
        };
        assert!(!format!("{req:?}").contains("hunter2"));
        let json = serde_json::to_string(&req).unwrap();
        assert!(json.contains("hunter2-hunter2"));
        assert_eq!(serde_json::from_str::<LoginRequest>(&json).unwrap(), req);
    }

    #[test]
    fn requests_reject_unknown_fields() {
        let err = serde_json::from_str::<LoginRequest>(
            r#"{"email":"a@example.com","password":"x","admin":true}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
