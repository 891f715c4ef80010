//! [`ApiError`]: the one error type of every handler. It renders as
//! `{"error":{"code":"…","message":"…"}}` ([`klef_core::wire::ErrorBody`]) with a stable code;
//! internal detail (database errors) is logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use klef_core::wire::{ConflictDetail, ErrorBody, ErrorDetail, codes};
use klef_store::StoreError;

/// An error answer. Messages are lower-case, safe to show, and never contain a token, a
/// password, a blob or a database detail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is not JSON.
    #[error("{0}")]
    InvalidJson(String),
    /// The body does not match the request type, or a value is invalid.
    #[error("{0}")]
    InvalidRequest(String),
    /// A path id is not an id.
    #[error("{0}")]
    InvalidId(String),
    /// Not `application/json`.
    #[error("expected a request with Content-Type: application/json")]
    UnsupportedMediaType,
    /// The body is too large.
    #[error(
        "the request body is larger than {} bytes",
        klef_core::wire::MAX_BODY_BYTES
    )]
    PayloadTooLarge,
    /// No valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// An API key of the first format: issued before split secrets (its whole secret reached
    /// the server), or sent whole by an old client. The message names only the prefix.
    #[error("{0}")]
    ApiKeyOutdated(String),
    /// Wrong email or password.
    #[error("wrong email or password")]
    InvalidCredentials,
    /// Not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Sign-up needs an invitation.
    #[error("sign-up on this server needs an invitation for this email")]
    SignupClosed,
    /// Not found (or not visible).
    #[error("{0} not found")]
    NotFound(String),
    /// No such route.
    #[error("no such route")]
    NoRoute,
    /// Wrong method for the route.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// Exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A stale secret write.
    #[error(
        "{} was changed by {} (now version {}, you expected {})",
        .0.name, .0.changed_by, .0.actual, .0.expected
    )]
    Conflict(ConflictDetail),
    /// A stale rotation.
    #[error("{0}")]
    Stale(String),
    /// Too many failed sign-ins, or sign-ups, for an email or an address.
    /// (The wait is in `retry_after_secs` and the `Retry-After` header, not the message.)
    #[error("too many {what}")]
    RateLimited {
        /// What was counted (`failed sign-ins`, `sign-up attempts`).
        what: &'static str,
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Every password worker is busy and the queue is full (503 with `Retry-After`).
    #[error("the server is busy checking passwords")]
    Busy {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The database is unreachable.
    #[error("the database is unavailable")]
    Unavailable,
    /// Anything else; the detail is logged when the error is built, never sent.
    #[error("internal server error")]
    Internal,
}

impl ApiError {
    /// A 500 whose `detail` goes only to the log.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        ApiError::Internal
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) | ApiError::InvalidRequest(_) | ApiError::InvalidId(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthenticated(_)
            | ApiError::ApiKeyOutdated(_)
            | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::SignupClosed => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::AlreadyExists(_) | ApiError::Conflict(_) | ApiError::Stale(_) => {
                StatusCode::CONFLICT
            }
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code ([`codes`]).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => codes::INVALID_JSON,
            ApiError::InvalidRequest(_) => codes::INVALID_REQUEST,
            ApiError::InvalidId(_) => codes::INVALID_ID,
            ApiError::UnsupportedMediaType => codes::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => codes::PAYLOAD_TOO_LARGE,
            ApiError::Unauthenticated(_) => codes::UNAUTHENTICATED,
            ApiError::ApiKeyOutdated(_) => codes::API_KEY_OUTDATED,
            ApiError::InvalidCredentials => codes::INVALID_CREDENTIALS,
            ApiError::Forbidden(_) => codes::FORBIDDEN,
            ApiError::SignupClosed => codes::SIGNUP_CLOSED,
            ApiError::NotFound(_) => codes::NOT_FOUND,
            ApiError::NoRoute => codes::NO_ROUTE,
            ApiError::MethodNotAllowed => codes::METHOD_NOT_ALLOWED,
            ApiError::AlreadyExists(_) => codes::ALREADY_EXISTS,
            ApiError::Conflict(_) => codes::CONFLICT,
            ApiError::Stale(_) => codes::STALE,
            ApiError::RateLimited { .. } => codes::RATE_LIMITED,
            ApiError::Unavailable | ApiError::Busy { .. } => codes::UNAVAILABLE,
            ApiError::Internal => codes::INTERNAL,
        }
    }

    /// The wire body.
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                conflict: match self {
                    ApiError::Conflict(c) => Some(c.clone()),
                    _ => None,
                },
                retry_after_secs: match self {
                    ApiError::RateLimited {
                        retry_after_secs, ..
                    }
                    | ApiError::Busy { retry_after_secs } => Some(*retry_after_secs),
                    _ => None,
                },
            },
        }
    }

    /// The error a bare status (from a layer or axum itself) stands for.
    #[must_use]
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::NOT_FOUND => ApiError::NoRoute,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            StatusCode::UNAUTHORIZED => ApiError::Unauthenticated("sign in first".into()),
            s if s.is_client_error() => ApiError::InvalidRequest(
                s.canonical_reason().unwrap_or("bad request").to_lowercase(),
            ),
            _ => ApiError::Internal,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        if let ApiError::RateLimited {
            retry_after_secs, ..
        }
        | ApiError::Busy { retry_after_secs } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => ApiError::NotFound(what),
            StoreError::AlreadyExists { what } => ApiError::AlreadyExists(what),
            StoreError::Conflict {
                name,
                expected,
                actual,
                changed_by,
            } => ApiError::Conflict(ConflictDetail {
                name,
                expected,
                actual,
                changed_by,
            }),
            StoreError::Invalid { reason } => ApiError::InvalidRequest(reason),
            StoreError::Connect { .. } => {
                tracing::error!(error = %klef_store::error::Chain(&e), "database unreachable");
                ApiError::Unavailable
            }
            other => ApiError::internal(&klef_store::error::Chain(&other)),
        }
    }
}
