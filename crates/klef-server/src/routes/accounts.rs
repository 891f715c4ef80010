//! Sign-up, sign-in (rate-limited), sign-out and the caller's own account.
//!
//! Password work is expensive (Argon2id, 19 MiB), so it comes last: a sign-up is refused
//! before any hashing when it is not allowed (closed sign-up without an invitation, a taken
//! email); then every sign-up and sign-in reserves its attempt in the database
//! (`Store::reserve_attempt`, atomic across replicas) before the password is hashed or checked,
//! and the hash or check runs under the server's `PasswordGate`. The gate admits a request
//! before its reservation (bounded workers and queue; beyond them 503 at once, with nothing
//! reserved), so a flood neither queues on the database nor holds memory.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use klef_core::crypto::token::new_session_token;
use klef_core::crypto::{PublicKey, sha256_hex, validate_kdf_params};
use klef_core::model::{Account, AccountKeys, Timestamp};
use klef_core::secrecy::ExposeSecret as _;
use klef_core::wire::{
    AccountKeyHistory, LoginRequest, MeResponse, ReplaceKeysRequest, SecretText, SessionResponse,
    SignupRequest,
};
use klef_store::server::{
    AttemptIds, AttemptLimit, AttemptScope, NewSession, Reservation, Signup, SignupOutcome,
    SignupPrecheck, now_ms,
};
use tracing::instrument;

use super::{audit_anonymous, audit_by};
use crate::AppState;
use crate::authz::Principal;
use crate::error::ApiError;
use crate::extract::ApiJson;

/// Shortest and longest accepted sign-in password, in characters.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;

/// Trims and lower-cases an email and checks its shape (`local@domain`, at most 254 bytes).
pub(super) fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(email)
    } else {
        Err(ApiError::InvalidRequest("invalid email address".into()))
    }
}

/// Checks client-made key material: usable KDF parameters, a valid X25519 public key, and
/// non-empty sealed blobs. The server cannot check more: it cannot open them.
pub(super) fn validate_keys(keys: &AccountKeys) -> Result<(), ApiError> {
    validate_kdf_params(&keys.kdf).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    PublicKey::from_slice(keys.public_key.as_bytes())
        .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    if keys.master_key_by_password.as_bytes().is_empty()
        || keys.master_key_by_recovery.as_bytes().is_empty()
        || keys.private_key_sealed.as_bytes().is_empty()
    {
        return Err(ApiError::InvalidRequest(
            "sealed key material is missing".into(),
        ));
    }
    Ok(())
}

/// A fresh session token and the row that stores its hash.
fn new_session(state: &AppState) -> (SecretText, NewSession) {
    let token = new_session_token();
    let now = now_ms();
    let ttl = i64::try_from(state.config.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let session = NewSession {
        token_hash: sha256_hex(token.expose_secret().as_bytes()),
        created_at: now,
        expires_at: now.saturating_add(ttl),
    };
    (SecretText::new(token.expose_secret()), session)
}

#[instrument(skip_all, err(level = "warn"))]
pub(super) async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<(StatusCode, axum::Json<SessionResponse>), ApiError> {
    let email = normalize_email(&req.email)?;
    if !PASSWORD_CHARS.contains(&req.password.expose().chars().count()) {
        return Err(ApiError::InvalidRequest(
            "the account password must be 8 to 1024 characters".into(),
        ));
    }
    validate_keys(&req.keys)?;
    if !req.personal_workspace.personal {
        return Err(ApiError::InvalidRequest(
            "personal_workspace must have personal: true".into(),
        ));
    }
    // Refused sign-ups cost no Argon2 work: only an allowed one is rate-limited and hashed.
    match state
        .store
        .signup_precheck(&email, !state.config.open_signup)
        .await?
    {
        SignupPrecheck::Allowed => {}
        SignupPrecheck::InvitationRequired => return Err(ApiError::SignupClosed),
        SignupPrecheck::EmailTaken => {
            return Err(ApiError::AlreadyExists(
                "an account with this email or id".into(),
            ));
        }
    }
    let address = client_address(&state, peer, &headers);
    let limit = state.config.login_limit;
    let gate = &state.config.password_gate;
    let admitted = gate.admit()?;
    // Kept whatever happens next: every sign-up attempt counts, successful ones included.
    let _reserved = reserve(
        &state,
        "sign-up attempts",
        &[
            (
                AttemptScope::Account,
                format!("signup:{email}"),
                limit.max_signups_per_email,
            ),
            (
                AttemptScope::Address,
                format!("signup:{address}"),
                limit.max_signups_per_address,
            ),
        ],
    )
    .await?;
    let password_hash = gate.hash(&admitted, req.password).await?;
    drop(admitted);
    let now = now_ms();
    if let Some(key) = &req.identity_key {
        super::identity::validate_identity_key(key)?;
    }
    let account = Account {
        id: req.account_id,
        email: Some(email.clone()),
        keys: req.keys,
        identity_key: req.identity_key,
        created_at: now,
    };
    let mut personal = req.personal_workspace;
    personal.created_at = now;
    let (token, session) = new_session(&state);
    let audit = klef_store::server::Audit {
        workspace_id: Some(personal.id),
        actor: klef_store::server::Actor {
            kind: klef_store::server::ActorKind::Account,
            id: Some(account.id.to_string()),
            label: Some(email.clone()),
        },
        action: "account.signup".into(),
        target: format!("account {} ({email})", account.id),
    };
    let outcome = state
        .store
        .signup(
            &Signup {
                account: &account,
                password_hash: &password_hash,
                personal: &personal,
                session: &session,
                require_invitation: !state.config.open_signup,
            },
            &audit,
        )
        .await?;
    match outcome {
        SignupOutcome::InvitationRequired => Err(ApiError::SignupClosed),
        SignupOutcome::Created { server_owner } => {
            tracing::info!(account = %account.id, server_owner, "account created");
            Ok((
                StatusCode::CREATED,
                axum::Json(SessionResponse {
                    token,
                    expires_at: session.expires_at,
                    account,
                }),
            ))
        }
    }
}

/// The client's address: the TCP peer, or the last `X-Forwarded-For` entry when trusted.
fn client_address(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> String {
    if state.config.trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty());
        if let Some(addr) = forwarded {
            return addr.chars().take(64).collect();
        }
    }
    peer.ip().to_string()
}

/// Reserves one attempt against each `(scope, subject, max)` within the configured window, or
/// answers 429 with the time until the oldest counted attempt leaves it. `what` names the
/// attempts in that answer.
async fn reserve(
    state: &AppState,
    what: &'static str,
    limits: &[(AttemptScope, String, i64)],
) -> Result<AttemptIds, ApiError> {
    let window_ms = i64::try_from(state.config.login_limit.window.as_millis()).unwrap_or(i64::MAX);
    let now = now_ms();
    let limits: Vec<AttemptLimit<'_>> = limits
        .iter()
        .map(|(scope, subject, max)| AttemptLimit {
            scope: *scope,
            subject,
            max: *max,
        })
        .collect();
    match state
        .store
        .reserve_attempt(&limits, now.saturating_sub(window_ms))
        .await?
    {
        Reservation::Reserved(ids) => Ok(ids),
        Reservation::Refused { scope, oldest } => {
            tracing::warn!(?scope, what, "rate limit reached");
            Err(ApiError::RateLimited {
                what,
                retry_after_secs: retry_after(oldest, window_ms, now),
            })
        }
    }
}

/// Seconds until the oldest counted failure leaves the window (at least 1).
fn retry_after(oldest: Option<Timestamp>, window_ms: i64, now: Timestamp) -> u64 {
    let until = oldest
        .unwrap_or(now)
        .saturating_add(window_ms)
        .saturating_sub(now);
    u64::try_from(until.max(0))
        .unwrap_or(0)
        .div_ceil(1000)
        .max(1)
}

#[instrument(skip_all, err(level = "warn"))]
pub(super) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<axum::Json<SessionResponse>, ApiError> {
    let email = normalize_email(&req.email).map_err(|_| ApiError::InvalidCredentials)?;
    let address = client_address(&state, peer, &headers);
    let failure = audit_anonymous("login.failed", format!("email {email}"));
    let Some(account_id) =
        check_account_password(&state, &address, &email, req.password, None, failure).await?
    else {
        return Err(ApiError::InvalidCredentials);
    };
    let account = state
        .store
        .account(&account_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("account {account_id}")))?;
    let (token, session) = new_session(&state);
    let audit = klef_store::server::Audit {
        workspace_id: None,
        actor: klef_store::server::Actor {
            kind: klef_store::server::ActorKind::Account,
            id: Some(account_id.to_string()),
            label: Some(email.clone()),
        },
        action: "session.create".into(),
        target: format!("account {account_id}"),
    };
    state
        .store
        .create_session(&account_id, &session, &audit)
        .await?;
    Ok(axum::Json(SessionResponse {
        token,
        expires_at: session.expires_at,
        account,
    }))
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn logout(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    match &principal {
        Principal::Session(s) => {
            let audit = audit_by(
                &principal,
                None,
                "session.revoke",
                format!("account {}", s.account),
            );
            state.store.revoke_session(&s.token_hash, &audit).await?;
        }
        Principal::UserKey(_) | Principal::SystemKey(_) => {
            return Err(ApiError::Forbidden(
                "an API key is not a session: revoke it with klef keys revoke".into(),
            ));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn me(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<MeResponse>, ApiError> {
    if let Principal::SystemKey(_) = principal {
        return Err(ApiError::Forbidden(
            "a system key has no account; GET /v1/me/api-key describes the key".into(),
        ));
    }
    let id = *principal.account()?;
    let account = state
        .store
        .account(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("account {id}")))?;
    let server_owner = state.store.server_owner().await? == Some(id);
    let session_expires_at = match &principal {
        Principal::Session(s) => s.expires_at,
        // API keys do not expire: they are revoked.
        Principal::UserKey(_) | Principal::SystemKey(_) => i64::MAX,
    };
    Ok(axum::Json(MeResponse {
        account,
        server_owner,
        session_expires_at,
    }))
}

/// The refusal of an account-key route to anything but a session.
const KEYS_NEED_SESSION: &str = "an API key cannot read or replace the account's sealed keys: sign in with `klef login` and use that session";

#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn key_history(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<axum::Json<AccountKeyHistory>, ApiError> {
    let Principal::Session(session) = &principal else {
        return Err(ApiError::Forbidden(KEYS_NEED_SESSION.into()));
    };
    let previous = state.store.account_key_history(&session.account).await?;
    Ok(axum::Json(AccountKeyHistory { previous }))
}

/// `PUT /v1/me/keys`: a session only, with the account password re-entered and checked like a
/// sign-in (the same failure limiter, so a stolen session cannot guess it). A wrong password
/// is audited and changes nothing; the replaced seal is kept in the account's key history
/// (DESIGN.md §9.4).
#[instrument(skip_all, err(level = "warn"), fields(principal = %principal.id()))]
pub(super) async fn replace_keys(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    principal: Principal,
    ApiJson(req): ApiJson<ReplaceKeysRequest>,
) -> Result<StatusCode, ApiError> {
    let Principal::Session(session) = &principal else {
        return Err(ApiError::Forbidden(KEYS_NEED_SESSION.into()));
    };
    let id = session.account;
    validate_keys(&req.keys)?;
    let Some(password) = req.account_password else {
        return Err(ApiError::InvalidRequest(
            "account_password is required: re-enter the account (sign-in) password to replace the sealed keys".into(),
        ));
    };
    let email = session.email.clone();
    let address = client_address(&state, peer, &headers);
    // Counted with failed sign-ins: a stolen session cannot guess it faster than a sign-in.
    let failure = audit_by(
        &principal,
        None,
        "account.keys.refused",
        format!("account {id}: wrong account password"),
    );
    if check_account_password(&state, &address, &email, password, Some(id), failure)
        .await?
        .is_none()
    {
        return Err(ApiError::Forbidden(
            "the account password is wrong; the sealed keys were not replaced".into(),
        ));
    }
    let audit = audit_by(
        &principal,
        None,
        "account.keys.replace",
        format!("account {id}"),
    );
    state
        .store
        .replace_account_keys(&id, &req.keys, Some(&audit))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the account password of `email` the one way sign-in and key replacement share:
/// admitted by the password gate first (503 beyond its queue), reserved against the failure
/// limits of the account and of the client address before the check (429 at a limit; N
/// parallel guesses check at most the limit), then verified. A wrong password (or, with
/// `expected`, another account's) stays counted and is recorded with `failure`; a right one
/// releases the reservation and clears the account's failures. Answers the account when the
/// password is right.
async fn check_account_password(
    state: &AppState,
    address: &str,
    email: &str,
    password: SecretText,
    expected: Option<klef_core::ids::AccountId>,
    failure: klef_store::server::Audit,
) -> Result<Option<klef_core::ids::AccountId>, ApiError> {
    let limit = state.config.login_limit;
    let account_subject = format!("login:{email}");
    // Admitted before the database is touched: beyond the gate's queue, 503 at once.
    let gate = &state.config.password_gate;
    let admitted = gate.admit()?;
    // Reserved before the password is checked: N parallel guesses check at most the limit.
    let reserved = reserve(
        state,
        "failed sign-ins",
        &[
            (
                AttemptScope::Account,
                account_subject.clone(),
                limit.max_failures,
            ),
            (
                AttemptScope::Address,
                format!("login:{address}"),
                limit.address_max_failures,
            ),
        ],
    )
    .await?;
    let found = state
        .store
        .login_lookup(email)
        .await?
        .filter(|(account, _)| expected.is_none_or(|e| e == *account));
    let stored_hash = found.as_ref().and_then(|(_, hash)| hash.clone());
    let ok = gate.verify(&admitted, password, stored_hash).await?;
    drop(admitted);
    let Some((account_id, _)) = found.filter(|_| ok) else {
        // The reserved rows stay: they are this failure.
        let window_ms = i64::try_from(limit.window.as_millis()).unwrap_or(i64::MAX);
        state
            .store
            .record_failed_attempt(
                now_ms().saturating_sub(window_ms.saturating_mul(4)),
                &failure,
            )
            .await?;
        return Ok(None);
    };
    state.store.release_attempt(&reserved).await?;
    state
        .store
        .clear_login_failures(AttemptScope::Account, &account_subject)
        .await?;
    Ok(Some(account_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@localhost",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after(Some(1_000), 900_000, 1_000), 900);
        assert_eq!(retry_after(Some(1_000), 900_000, 900_500), 1);
        assert_eq!(retry_after(None, 900_000, 5), 900);
    }
}
