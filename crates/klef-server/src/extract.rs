//! Extractors that turn every client mistake into an [`ApiError`] (never axum's plain-text
//! rejections): [`ApiJson`] for bodies, [`ApiPath`] for ids in the path, and the
//! [`Principal`](crate::authz::Principal) from the bearer token.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Longest serde message echoed back (it names the field, and at most a short piece of input).
const MAX_MESSAGE: usize = 200;

fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_MESSAGE).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// A JSON body; rejections become `400 invalid_json` / `400 invalid_request`,
/// `413 payload_too_large` or `415 unsupported_media_type`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    tracing::debug!(kind = rejection_kind(rejection), "rejected request body");
    match rejection {
        JsonRejection::JsonSyntaxError(e) => ApiError::InvalidJson(format!(
            "the body is not valid JSON: {}",
            shorten(&source_text(e))
        )),
        JsonRejection::JsonDataError(e) => {
            ApiError::InvalidRequest(format!("invalid request: {}", shorten(&source_text(e))))
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        other => ApiError::InvalidRequest(format!("could not read the body ({})", other.status())),
    }
}

fn rejection_kind(rejection: &JsonRejection) -> &'static str {
    match rejection {
        JsonRejection::JsonSyntaxError(_) => "syntax",
        JsonRejection::JsonDataError(_) => "data",
        JsonRejection::MissingJsonContentType(_) => "content-type",
        _ => "body",
    }
}

/// The innermost error message (serde's), without axum's wrapper text.
fn source_text(e: &dyn std::error::Error) -> String {
    let mut current: &dyn std::error::Error = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Path parameters; a bad id becomes `400 invalid_id`.
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::InvalidId(shorten(&e.body_text())))
            }
            Err(other) => Err(ApiError::InvalidId(shorten(&other.body_text()))),
        }
    }
}
