//! The JSON wire format of the Klef team server (`/v1`), shared by `klef-server` and the CLI's
//! remote backend. `docs/server.md` describes every route; [`routes`] builds their paths.
//!
//! Conventions:
//! - Requests and responses are JSON objects; every request type rejects unknown fields.
//! - Authenticated routes take `Authorization: Bearer <token>`: a `klef_sess_…` session token,
//!   or an API key (`klef_user_…`, `klef_sys_…`).
//! - Binary data ([`Blob`]) is standard base64; ids are lower-case UUID strings; times are unix
//!   milliseconds ([`Timestamp`]).
//! - Every error is an [`ErrorBody`] with a stable machine [`ErrorDetail::code`] (see [`codes`]).
//! - Nothing here ever carries a plaintext value, an unwrapped key or the encryption password:
//!   only the *account* (sign-in) password travels, in [`SignupRequest`] and [`LoginRequest`],
//!   and the server stores only an Argon2id hash of it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::ids::{AccountId, ApiKeyId, EnvironmentId, InviteId, ProjectId, WorkspaceId};
use crate::model::{
    Account, AccountKeys, Blob, Environment, EnvironmentKeyAccess, NewEnvironment, NewProject,
    Project, Role, SecretVersion, SecretWrite, Timestamp, Workspace,
};

/// The API version prefix of every route.
pub const API_PREFIX: &str = "/v1";

/// The largest request body the server accepts (16 MiB: a push of 10,000 secrets, or a dozen
/// values at the 1 MiB limit once base64-encoded); larger bodies get `413`
/// ([`codes::PAYLOAD_TOO_LARGE`]).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Secret-bearing strings

/// A sign-in password or a session token in transit: zeroized on drop, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    /// Wraps a string.
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self(Zeroizing::new(text.into()))
    }

    /// The text. Callers must not log or copy it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText([redacted])")
    }
}

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Stable machine-readable error codes ([`ErrorDetail::code`]).
pub mod codes {
    /// The body is not valid JSON.
    pub const INVALID_JSON: &str = "invalid_json";
    /// The JSON is well-formed but does not match the request type (missing or unknown field,
    /// wrong type), or a value is invalid (bad email, name, key version…).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// An id in the path is not a valid id.
    pub const INVALID_ID: &str = "invalid_id";
    /// The body is not `Content-Type: application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// The body is larger than [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES).
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// No credentials, or an unknown, expired or revoked token (HTTP 401).
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// Wrong email or account password (HTTP 401).
    pub const INVALID_CREDENTIALS: &str = "invalid_credentials";
    /// Signed in, but not allowed (HTTP 403); the message says why (`no access to production`).
    pub const FORBIDDEN: &str = "forbidden";
    /// Sign-up needs an invitation for this email (HTTP 403).
    pub const SIGNUP_CLOSED: &str = "signup_closed";
    /// The thing does not exist or is not visible to the caller (HTTP 404).
    pub const NOT_FOUND: &str = "not_found";
    /// No such route (HTTP 404).
    pub const NO_ROUTE: &str = "no_route";
    /// The route exists but not with this method (HTTP 405).
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// Something with that id or name already exists (HTTP 409).
    pub const ALREADY_EXISTS: &str = "already_exists";
    /// A secret write carried a stale expected version (HTTP 409, with
    /// [`ErrorDetail::conflict`](super::ErrorDetail::conflict)).
    pub const CONFLICT: &str = "conflict";
    /// A key rotation was based on a stale key version, secret set or grantee set (HTTP 409).
    pub const STALE: &str = "stale";
    /// Too many failed sign-ins (HTTP 429 with `Retry-After`).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// A server-side failure; details are only in the server's log (HTTP 500).
    pub const INTERNAL: &str = "internal";
    /// The database is unreachable (HTTP 503).
    pub const UNAVAILABLE: &str = "unavailable";
}

/// Every error response: `{"error": {"code": "…", "message": "…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable code from [`codes`].
    pub code: String,
    /// A lower-case message safe to show to a person.
    pub message: String,
    /// For [`codes::CONFLICT`]: which name, and the versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictDetail>,
    /// For [`codes::RATE_LIMITED`]: seconds until the next attempt may succeed (also in the
    /// `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// The details of a stale secret write (HTTP 409 [`codes::CONFLICT`]); maps onto
/// [`BackendError::Conflict`](crate::backend::BackendError::Conflict).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictDetail {
    /// The key name.
    pub name: String,
    /// The version the writer expected.
    pub expected: i64,
    /// The current version.
    pub actual: i64,
    /// Who wrote the current version (an email, a key label, or `someone else`).
    pub changed_by: String,
}

// ---------------------------------------------------------------------------------------------
// Health

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `ok` when the database answers.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// `sqlite` or `postgres`.
    pub database: String,
}

// ---------------------------------------------------------------------------------------------
// Accounts and sessions

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

/// `PUT /v1/me/keys`: replaces the sealed master-key copies and KDF parameters (password change,
/// recovery). The public key and sealed private key must be unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceKeysRequest {
    /// The new key material.
    pub keys: AccountKeys,
}

// ---------------------------------------------------------------------------------------------
// Workspaces, projects, environments

/// `GET /v1/workspaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceList {
    /// The caller's workspaces, the personal one first.
    pub workspaces: Vec<Workspace>,
}

/// `POST /v1/workspaces` (the caller becomes its owner). Answers `201` with the [`Workspace`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    /// The workspace (id chosen by the client; `personal` must be false).
    pub workspace: Workspace,
}

/// `GET /v1/workspaces/{workspace_id}/projects`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectList {
    /// The projects, by name.
    pub projects: Vec<Project>,
}

/// `POST /v1/workspaces/{workspace_id}/projects` (admins). Answers `201` with the [`Project`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// The project (its `workspace_id` must be the path's), its key wrapped to the caller,
    /// and its first environments.
    pub project: NewProject,
}

/// `GET /v1/projects/{project_id}/environments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentList {
    /// The environments the caller can reach (all, or those granted directly), oldest first.
    pub environments: Vec<Environment>,
}

/// `POST /v1/projects/{project_id}/environments` (admins holding the project key). Answers
/// `201` with the [`Environment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironmentRequest {
    /// The environment (its `project_id` must be the path's) and its key sealed under the
    /// project key.
    pub environment: NewEnvironment,
    /// The new environment key wrapped (HPKE, `Aad::EnvironmentKey`) to every live system key
    /// whose scope covers the whole project (`proj:*`), as listed by
    /// `GET /v1/projects/{project_id}/api-key-recipients`. Must name exactly those keys (else
    /// `409` [`codes::STALE`] and nothing is written); absent in older clients' bodies, which
    /// is fine while the project has no such key.
    #[serde(default)]
    pub api_key_grants: Vec<ApiKeyGrant>,
}

/// `GET /v1/environments/{environment_id}/key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentKeyResponse {
    /// The environment (its current `key_version`).
    pub environment: Environment,
    /// How the caller reaches its key.
    pub access: EnvironmentKeyAccess,
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// `GET /v1/environments/{environment_id}/secrets` and
/// `GET /v1/environments/{environment_id}/secrets/{name}/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretList {
    /// Latest live versions by name, or one name's history oldest first.
    pub secrets: Vec<SecretVersion>,
}

/// `POST /v1/environments/{environment_id}/secrets`: all writes in one transaction; a stale
/// `expected_version` fails the whole batch with `409` [`codes::CONFLICT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteSecretsRequest {
    /// The writes (at least one).
    pub writes: Vec<SecretWrite>,
}

/// The answer to [`WriteSecretsRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteSecretsResponse {
    /// The versions written, in request order.
    pub written: Vec<SecretVersion>,
}

// ---------------------------------------------------------------------------------------------
// Teams

/// `POST /v1/workspaces/{workspace_id}/invitations` (admins). Answers `201` with the
/// [`Invitation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationRequest {
    /// Who is invited.
    pub email: String,
    /// `admin` or `member` (a workspace has one owner).
    pub role: Role,
    /// Restricts the member to these environments (of this workspace); absent = full access.
    #[serde(default)]
    pub environments: Option<Vec<EnvironmentId>>,
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    /// Waiting for the invitee to accept.
    Pending,
    /// Accepted; waiting for an admin to confirm (and wrap keys).
    Accepted,
}

/// An invitation to a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// The id (used to accept it).
    pub id: InviteId,
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The workspace's name.
    pub workspace_name: String,
    /// Who is invited.
    pub email: String,
    /// The role they will have.
    pub role: Role,
    /// The environments they are restricted to; `None` = full access.
    pub environments: Option<Vec<EnvironmentId>>,
    /// The inviter's email.
    pub invited_by: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// Pending or accepted.
    pub status: InvitationStatus,
}

/// `GET /v1/invitations`: the open invitations for the caller's email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationList {
    /// The invitations.
    pub invitations: Vec<Invitation>,
}

/// A member's standing in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Invited, not yet accepted (no account id yet, or no acceptance).
    Invited,
    /// Accepted; an admin must compare the fingerprint and confirm.
    Accepted,
    /// Confirmed: a member with keys wrapped to them.
    Confirmed,
}

/// One row of `GET /v1/workspaces/{workspace_id}/members` (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The account, once the invitation is accepted.
    pub account_id: Option<AccountId>,
    /// The email.
    pub email: String,
    /// The role.
    pub role: Role,
    /// Invited, accepted or confirmed.
    pub status: MemberStatus,
    /// The account's X25519 public key (to wrap keys to, and to show a fingerprint of).
    pub public_key: Option<Blob>,
    /// The invitation, while not confirmed.
    pub invitation_id: Option<InviteId>,
    /// For an invited/accepted member: the environments the invitation restricts them to
    /// (`None` = full access). For a confirmed member: the environments granted directly when
    /// they hold no project key, else `None`.
    pub environments: Option<Vec<EnvironmentId>>,
}

/// `GET /v1/workspaces/{workspace_id}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberList {
    /// Confirmed members first (owner, admins, members), then accepted and invited ones.
    pub members: Vec<Member>,
}

/// A project key wrapped (HPKE, `Aad::ProjectKey`) to a member's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedProjectKey {
    /// The project (of this workspace).
    pub project_id: ProjectId,
    /// The wrapped key.
    pub wrapped_key: Blob,
}

/// An environment key wrapped (HPKE, `Aad::EnvironmentKey`) directly to a public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedEnvironmentKey {
    /// The environment.
    pub environment_id: EnvironmentId,
    /// The key version wrapped; must be the environment's current one.
    pub key_version: i64,
    /// The wrapped key.
    pub wrapped_key: Blob,
}

/// `POST /v1/workspaces/{workspace_id}/members/{account_id}/confirm` (admins): makes an
/// accepted invitee a member and stores the keys the admin's client wrapped to them. Full
/// access: the project keys; restricted access: per-environment keys (and no project key).
/// Answers with the confirmed [`Member`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmMemberRequest {
    /// Project keys wrapped to the member (full access). Must be empty for an invitation
    /// restricted to some environments.
    #[serde(default)]
    pub project_keys: Vec<WrappedProjectKey>,
    /// Environment keys wrapped to the member (restricted access): only environments the
    /// invitation lists.
    #[serde(default)]
    pub environment_keys: Vec<WrappedEnvironmentKey>,
}

/// An environment named in a [`RemoveMemberResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentRef {
    /// The environment.
    pub id: EnvironmentId,
    /// Its project.
    pub project_id: ProjectId,
    /// Its slug.
    pub slug: String,
}

/// `DELETE /v1/workspaces/{workspace_id}/members/{account_id}` (admins): removes the member
/// and every key wrapped to them in the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveMemberResponse {
    /// Who was removed.
    pub account_id: AccountId,
    /// The environments they could decrypt: rotate these keys
    /// (`POST /v1/environments/{id}/rotate`), since they may have kept a copy.
    pub rotate: Vec<EnvironmentRef>,
    /// A human-readable reminder to rotate.
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Key rotation

/// Who holds a direct environment grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    /// A member restricted to some environments.
    Account(AccountId),
    /// A system API key.
    ApiKey(ApiKeyId),
}

/// One direct grant of an environment, as `GET /v1/environments/{environment_id}/grants`
/// lists them for the rotating admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    /// Who holds it.
    pub grantee: Grantee,
    /// Their public key (to wrap the new key to).
    pub public_key: Blob,
    /// The key version they hold.
    pub key_version: i64,
}

/// `GET /v1/environments/{environment_id}/grants` (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantList {
    /// The direct grants.
    pub grants: Vec<GrantInfo>,
}

/// A live secret re-encrypted under the new environment key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatedSecret {
    /// The key name.
    pub name: String,
    /// The version that was re-encrypted (must still be the latest).
    pub expected_version: i64,
    /// The value sealed under the new key.
    pub ciphertext: Blob,
}

/// A direct grant re-wrapped for the new key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotatedGrant {
    /// Who it is for (must be one of the current grantees).
    pub grantee: Grantee,
    /// The new environment key wrapped to their public key.
    pub wrapped_key: Blob,
}

/// `POST /v1/environments/{environment_id}/rotate` (admins holding the project key): in one
/// transaction, `key_version` becomes `expected_key_version + 1`, the sealed key is replaced,
/// every live secret gets a new version re-encrypted by the client, and the direct grants are
/// replaced. A stale key version, a secret changed since it was read, or a grantee set that
/// differs from the current one gives `409` [`codes::STALE`] (or [`codes::CONFLICT`] for a
/// secret) and nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// The key version the client rotated from.
    pub expected_key_version: i64,
    /// The new environment key sealed (`Aad::EnvironmentKey`) under the project key.
    pub sealed_key: Blob,
    /// Every live secret, re-encrypted.
    pub secrets: Vec<RotatedSecret>,
    /// Every current direct grant, re-wrapped (grantees may be left out to drop them).
    pub grants: Vec<RotatedGrant>,
}

/// The answer to [`RotateRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateResponse {
    /// The environment with its new key version.
    pub environment: Environment,
    /// The re-encrypted versions written.
    pub written: Vec<SecretVersion>,
}

// ---------------------------------------------------------------------------------------------
// API keys

/// The kind of an API key (`klef_user_…` or `klef_sys_…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyKind {
    /// Authenticates as the person who made it (full access as them; unlocking still needs
    /// their encryption password).
    User,
    /// A scoped machine key with its own key pair: decrypts end to end within its scopes.
    System,
}

impl ApiKeyKind {
    /// `user` or `system`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyKind::User => "user",
            ApiKeyKind::System => "system",
        }
    }
}

/// What a system key may do within its scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyPermission {
    /// List, get and read the history of secrets, and reach the environment keys.
    Read,
    /// [`Read`](Self::Read), and write secrets.
    Readwrite,
}

impl ApiKeyPermission {
    /// `read` or `readwrite`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyPermission::Read => "read",
            ApiKeyPermission::Readwrite => "readwrite",
        }
    }
}

/// One scope of a system key: an environment of a project, or every environment of it
/// (`environment_id: null`, written `proj:*`), including environments created later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyScope {
    /// The project.
    pub project_id: ProjectId,
    /// The environment, or `None` for every environment of the project.
    #[serde(default)]
    pub environment_id: Option<EnvironmentId>,
}

/// An environment key wrapped (HPKE, `Aad::EnvironmentKey`) to a system key's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyGrant {
    /// The system key.
    pub api_key_id: ApiKeyId,
    /// The environment key, wrapped to the key's public key.
    pub wrapped_key: Blob,
}

/// `POST /v1/api-keys`: registers a key the client generated (`ApiToken::generate`). The
/// server never sees the secret: only its SHA-256 and, for a system key, the public key
/// derived from it. Answers `201` with the [`ApiKeyInfo`].
///
/// A user key takes no scopes, permission or environment keys. A system key needs at least
/// one scope, a permission, and `environment_keys` for exactly the environments its scopes
/// cover (each at its current key version), wrapped by the creating admin's client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// The key's id (the `<id>` part of the token).
    pub id: ApiKeyId,
    /// User or system.
    pub kind: ApiKeyKind,
    /// A label shown in `klef keys list` (1–128 characters, no control characters).
    pub label: String,
    /// SHA-256 (64 lower-case hex digits) of the token's 32 secret bytes.
    pub secret_hash: String,
    /// A system key's X25519 public key (32 bytes), derived from its secret.
    #[serde(default)]
    pub public_key: Option<Blob>,
    /// A system key's permission.
    #[serde(default)]
    pub permission: Option<ApiKeyPermission>,
    /// A system key's scopes.
    #[serde(default)]
    pub scopes: Vec<ApiKeyScope>,
    /// A system key's environment keys, wrapped to `public_key`.
    #[serde(default)]
    pub environment_keys: Vec<WrappedEnvironmentKey>,
}

/// `PUT /v1/api-keys/{api_key_id}`: replaces all scopes and the permission of a system key
/// (user keys are refused). `environment_keys` must wrap every environment the new scopes
/// cover that the key does not hold yet; grants of environments no longer covered are deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutApiKeyRequest {
    /// The new scopes (at least one).
    pub scopes: Vec<ApiKeyScope>,
    /// The new permission.
    pub permission: ApiKeyPermission,
    /// Environment keys for newly covered environments, wrapped to the key's public key.
    #[serde(default)]
    pub environment_keys: Vec<WrappedEnvironmentKey>,
}

/// A scope as listed, with names for display (`proj:env`, `proj:*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyScopeInfo {
    /// The project.
    pub project_id: ProjectId,
    /// The project's name.
    pub project_name: String,
    /// The environment, or `None` for every environment (`*`).
    pub environment_id: Option<EnvironmentId>,
    /// The environment's slug, or `None` for `*`.
    pub environment_slug: Option<String>,
}

impl fmt::Display for ApiKeyScopeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.project_name,
            self.environment_slug.as_deref().unwrap_or("*")
        )
    }
}

/// An API key as `klef keys list` shows it. Never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// The id.
    pub id: ApiKeyId,
    /// The public prefix `klef_user_<id>` / `klef_sys_<id>`.
    pub prefix: String,
    /// User or system.
    pub kind: ApiKeyKind,
    /// The label.
    pub label: String,
    /// The creator's email (`None` when unknown).
    pub created_by_email: Option<String>,
    /// A system key's permission; `None` for a user key (full access as its owner).
    pub permission: Option<ApiKeyPermission>,
    /// A system key's scopes (empty for a user key).
    pub scopes: Vec<ApiKeyScopeInfo>,
    /// A system key's public key.
    pub public_key: Option<Blob>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// `GET /v1/api-keys`: the live keys the caller created, and the system keys scoped to
/// projects of workspaces the caller administers; oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyList {
    /// The keys.
    pub keys: Vec<ApiKeyInfo>,
}

/// One system key that must receive a new environment's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecipient {
    /// The key.
    pub api_key_id: ApiKeyId,
    /// Its public prefix (for messages).
    pub prefix: String,
    /// Its X25519 public key.
    pub public_key: Blob,
}

/// `GET /v1/projects/{project_id}/api-key-recipients` (admins holding the project key): the
/// live system keys scoped to every environment of the project (`proj:*`). A client creating
/// an environment wraps its key to each of them in
/// [`CreateEnvironmentRequest::api_key_grants`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecipientList {
    /// The keys.
    pub keys: Vec<ApiKeyRecipient>,
}

// ---------------------------------------------------------------------------------------------
// Audit

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditActor {
    /// `account`, `api_key` or `anonymous`.
    pub kind: String,
    /// The account or key id.
    pub id: Option<String>,
    /// The email or key label.
    pub label: Option<String>,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing id (for paging with `before`).
    pub id: i64,
    /// The workspace, for workspace events.
    pub workspace_id: Option<WorkspaceId>,
    /// Who.
    pub actor: AuditActor,
    /// What, e.g. `secrets.write`, `member.confirm`, `environment.rotate`.
    pub action: String,
    /// On what, e.g. `environment 0f8f… (production): API_KEY, DB_URL`.
    pub target: String,
    /// When.
    pub created_at: Timestamp,
}

/// `GET /v1/workspaces/{workspace_id}/audit?limit=N&before=ID` (admins), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditList {
    /// The entries.
    pub entries: Vec<AuditEntry>,
}

// ---------------------------------------------------------------------------------------------
// Routes

/// Paths of every route, for clients. Each function returns the path to append to the server's
/// base URL.
pub mod routes {
    use crate::ids::{AccountId, ApiKeyId, EnvironmentId, InviteId, ProjectId, WorkspaceId};

    /// `GET`: liveness and database check, no authentication.
    pub const HEALTH: &str = "/v1/health";
    /// `GET`: the `OpenAPI` 3.1 document, no authentication.
    pub const OPENAPI: &str = "/v1/openapi.json";
    /// `POST` [`SignupRequest`](super::SignupRequest).
    pub const SIGNUP: &str = "/v1/signup";
    /// `POST` [`LoginRequest`](super::LoginRequest).
    pub const LOGIN: &str = "/v1/login";
    /// `POST`: revokes the current session (`204`).
    pub const LOGOUT: &str = "/v1/logout";
    /// `GET` [`MeResponse`](super::MeResponse).
    pub const ME: &str = "/v1/me";
    /// `PUT` [`ReplaceKeysRequest`](super::ReplaceKeysRequest) (`204`).
    pub const ME_KEYS: &str = "/v1/me/keys";
    /// `GET` [`WorkspaceList`](super::WorkspaceList), `POST`
    /// [`CreateWorkspaceRequest`](super::CreateWorkspaceRequest).
    pub const WORKSPACES: &str = "/v1/workspaces";
    /// `GET` [`InvitationList`](super::InvitationList).
    pub const INVITATIONS: &str = "/v1/invitations";

    /// `GET` [`ProjectList`](super::ProjectList), `POST`
    /// [`CreateProjectRequest`](super::CreateProjectRequest).
    #[must_use]
    pub fn projects(ws: &WorkspaceId) -> String {
        format!("/v1/workspaces/{ws}/projects")
    }

    /// `GET` a [`Project`](crate::model::Project).
    #[must_use]
    pub fn project(id: &ProjectId) -> String {
        format!("/v1/projects/{id}")
    }

    /// `GET` [`EnvironmentList`](super::EnvironmentList), `POST`
    /// [`CreateEnvironmentRequest`](super::CreateEnvironmentRequest).
    #[must_use]
    pub fn environments(project: &ProjectId) -> String {
        format!("/v1/projects/{project}/environments")
    }

    /// `GET` [`EnvironmentKeyResponse`](super::EnvironmentKeyResponse).
    #[must_use]
    pub fn environment_key(env: &EnvironmentId) -> String {
        format!("/v1/environments/{env}/key")
    }

    /// `GET` [`SecretList`](super::SecretList), `POST`
    /// [`WriteSecretsRequest`](super::WriteSecretsRequest).
    #[must_use]
    pub fn secrets(env: &EnvironmentId) -> String {
        format!("/v1/environments/{env}/secrets")
    }

    /// `GET` [`SecretList`](super::SecretList) of one name's history. `name` is a validated
    /// key name (`[A-Za-z_][A-Za-z0-9_]*`), so it needs no percent-encoding.
    #[must_use]
    pub fn secret_history(env: &EnvironmentId, name: &str) -> String {
        format!("/v1/environments/{env}/secrets/{name}/history")
    }

    /// `GET` [`GrantList`](super::GrantList).
    #[must_use]
    pub fn grants(env: &EnvironmentId) -> String {
        format!("/v1/environments/{env}/grants")
    }

    /// `POST` [`RotateRequest`](super::RotateRequest).
    #[must_use]
    pub fn rotate(env: &EnvironmentId) -> String {
        format!("/v1/environments/{env}/rotate")
    }

    /// `POST` [`CreateInvitationRequest`](super::CreateInvitationRequest).
    #[must_use]
    pub fn invitations(ws: &WorkspaceId) -> String {
        format!("/v1/workspaces/{ws}/invitations")
    }

    /// `POST`: accepts an invitation, answers the [`Invitation`](super::Invitation).
    #[must_use]
    pub fn accept_invitation(id: &InviteId) -> String {
        format!("/v1/invitations/{id}/accept")
    }

    /// `GET` [`MemberList`](super::MemberList).
    #[must_use]
    pub fn members(ws: &WorkspaceId) -> String {
        format!("/v1/workspaces/{ws}/members")
    }

    /// `DELETE`: removes a member, answers [`RemoveMemberResponse`](super::RemoveMemberResponse).
    #[must_use]
    pub fn member(ws: &WorkspaceId, account: &AccountId) -> String {
        format!("/v1/workspaces/{ws}/members/{account}")
    }

    /// `POST` [`ConfirmMemberRequest`](super::ConfirmMemberRequest).
    #[must_use]
    pub fn confirm_member(ws: &WorkspaceId, account: &AccountId) -> String {
        format!("/v1/workspaces/{ws}/members/{account}/confirm")
    }

    /// `GET` [`AuditList`](super::AuditList).
    #[must_use]
    pub fn audit(ws: &WorkspaceId) -> String {
        format!("/v1/workspaces/{ws}/audit")
    }

    /// `GET` [`ApiKeyList`](super::ApiKeyList), `POST`
    /// [`CreateApiKeyRequest`](super::CreateApiKeyRequest).
    pub const API_KEYS: &str = "/v1/api-keys";

    /// `GET` the [`ApiKeyInfo`](super::ApiKeyInfo) of the API key making the request.
    pub const ME_API_KEY: &str = "/v1/me/api-key";

    /// `PUT` [`PutApiKeyRequest`](super::PutApiKeyRequest), `DELETE` (revoke); both answer the
    /// [`ApiKeyInfo`](super::ApiKeyInfo).
    #[must_use]
    pub fn api_key(id: &ApiKeyId) -> String {
        format!("/v1/api-keys/{id}")
    }

    /// `GET` [`ApiKeyRecipientList`](super::ApiKeyRecipientList).
    #[must_use]
    pub fn api_key_recipients(project: &ProjectId) -> String {
        format!("/v1/projects/{project}/api-key-recipients")
    }

    /// `POST` a backup archive (`application/octet-stream`, at most
    /// [`MAX_BACKUP_BYTES`](super::MAX_BACKUP_BYTES)); query [`ImportBackupParams`](super::ImportBackupParams);
    /// answers [`ImportBackupResponse`](super::ImportBackupResponse).
    pub const IMPORT: &str = "/v1/import";

    /// `GET`: the workspace's backup archive (`application/octet-stream`, the format of
    /// [`crate::backup`]); admins and the owner only.
    #[must_use]
    pub fn workspace_export(ws: &WorkspaceId) -> String {
        format!("/v1/workspaces/{ws}/export")
    }
}

// ---------------------------------------------------------------------------------------------
// Backups (`klef backup export` / `klef backup import` in server mode)

/// The largest backup archive `POST /v1/import` accepts (64 MiB); the route has this limit
/// instead of [`MAX_BODY_BYTES`].
pub const MAX_BACKUP_BYTES: usize = 64 * 1024 * 1024;

/// The media type of a backup archive on the wire (export answers and import bodies).
pub const BACKUP_MEDIA_TYPE: &str = "application/octet-stream";

/// The query of `POST /v1/import`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportBackupParams {
    /// Replace the workspace's contents when it already holds projects on the server.
    #[serde(default)]
    pub force: bool,
}

/// The answer to `POST /v1/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportBackupResponse {
    /// The restored workspace as the server now has it.
    pub workspace: Workspace,
    /// Whether an existing workspace's contents were replaced.
    pub replaced: bool,
    /// Members restored (the caller included).
    pub members: u64,
    /// Projects restored.
    pub projects: u64,
    /// Environments restored.
    pub environments: u64,
    /// Secret versions restored (history and deletes included).
    pub secret_versions: u64,
    /// What was left out or changed, one sentence each (members skipped, grants dropped).
    pub notes: Vec<String>,
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

    #[test]
    fn grantee_and_errors_have_stable_shapes() {
        let id: AccountId = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&Grantee::Account(id)).unwrap(),
            r#"{"kind":"account","id":"0f8fad5b-d9cb-469f-a165-70867728950e"}"#
        );
        let body = ErrorBody {
            error: ErrorDetail {
                code: codes::NOT_FOUND.into(),
                message: "project x not found".into(),
                conflict: None,
                retry_after_secs: None,
            },
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"error":{"code":"not_found","message":"project x not found"}}"#
        );
    }

    #[test]
    fn old_create_environment_bodies_still_parse() {
        let body = r#"{"environment":{"environment":{"id":"0f8fad5b-d9cb-469f-a165-70867728950e",
            "project_id":"0f8fad5b-d9cb-469f-a165-70867728950f","slug":"dev","name":"dev",
            "key_version":1,"created_at":0},"sealed_key":"AAAA"}}"#;
        let req: CreateEnvironmentRequest = serde_json::from_str(body).unwrap();
        assert!(req.api_key_grants.is_empty());
    }

    #[test]
    fn api_key_shapes() {
        let scope: ApiKeyScope = serde_json::from_str(
            r#"{"project_id":"0f8fad5b-d9cb-469f-a165-70867728950e","environment_id":null}"#,
        )
        .unwrap();
        assert_eq!(scope.environment_id, None);
        assert_eq!(
            serde_json::to_string(&ApiKeyPermission::Readwrite).unwrap(),
            r#""readwrite""#
        );
        assert_eq!(
            serde_json::to_string(&ApiKeyKind::System).unwrap(),
            r#""system""#
        );
        let info = ApiKeyScopeInfo {
            project_id: scope.project_id,
            project_name: "api".into(),
            environment_id: None,
            environment_slug: None,
        };
        assert_eq!(info.to_string(), "api:*");
    }

    #[test]
    fn routes_are_under_the_prefix() {
        let ws = WorkspaceId::random();
        for path in [
            routes::projects(&ws),
            routes::members(&ws),
            routes::audit(&ws),
            routes::HEALTH.to_owned(),
        ] {
            assert!(path.starts_with(API_PREFIX), "{path}");
        }
    }
}
