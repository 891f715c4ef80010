//! The body of every error response.

use serde::{Deserialize, Serialize};

/// Every error response: `{"error": {"code": "…", "message": "…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable code from [`codes`](super::codes).
    pub code: String,
    /// A lower-case message safe to show to a person.
    pub message: String,
    /// For [`codes::CONFLICT`](super::codes::CONFLICT): which name, and the versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ConflictDetail>,
    /// For [`codes::RATE_LIMITED`](super::codes::RATE_LIMITED): seconds until the next attempt may succeed (also in the
    /// `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// The details of a stale secret write (HTTP 409 [`codes::CONFLICT`](super::codes::CONFLICT)); maps onto
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codes;

    #[test]
    fn errors_have_a_stable_shape() {
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
}
