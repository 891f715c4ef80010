//! The HTTP client of the Klef server's JSON API (`/v1`, `klef_core::wire`): one [`Api`] per
//! server, bearer authentication, and the mapping of every failure onto
//! [`BackendError`] so the CLI's exit codes hold in server mode (401 → 3, 403 → 4, 404 → 5,
//! unreachable → 6, 409 → 7).
//!
//! Nothing secret is logged: requests are traced by method, path and status only.

use std::time::Duration;

use klef_core::backend::{BackendError, BackendResult};
use klef_core::wire::{ErrorBody, SecretText, codes};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long to wait for a TCP/TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take in total (a rotation re-encrypts and uploads a whole
/// environment, so this is generous).
const REQUEST_TIMEOUT: Duration = Duration::from_mins(2);

/// The message for a missing, expired or revoked session.
pub(crate) const NOT_SIGNED_IN: &str = "not signed in or session expired";

/// A client of one Klef server.
pub(crate) struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<SecretText>,
}

impl Api {
    /// A client of the server at `base` (`https://klef.example.com`, no trailing slash needed),
    /// authenticating with `token` when given.
    pub(crate) fn new(base: &str, token: Option<SecretText>) -> BackendResult<Self> {
        let base = normalize_url(base)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("klef/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BackendError::Other(format!("failed to set up the HTTP client: {e}")))?;
        Ok(Self { base, http, token })
    }

    /// The server's base URL, normalised.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Whether a session token is attached.
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the attached token is an API key (`KLEF_TOKEN`, `klef login --key`).
    fn uses_api_key(&self) -> bool {
        self.token.as_ref().is_some_and(|t| {
            t.expose().starts_with("klef_user_") || t.expose().starts_with("klef_sys_")
        })
    }

    /// `GET path`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> BackendResult<T> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> BackendResult<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `POST path` without a body.
    pub(crate) async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> BackendResult<T> {
        self.call::<(), T>(Method::POST, path, None).await
    }

    /// `PUT path` with a JSON body.
    pub(crate) async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> BackendResult<T> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> BackendResult<T> {
        self.call::<(), T>(Method::DELETE, path, None).await
    }

    /// `GET path`, answering raw bytes (a backup archive) instead of JSON.
    pub(crate) async fn get_bytes(&self, path: &str) -> BackendResult<Vec<u8>> {
        self.send_raw(Method::GET, path, None).await
    }

    /// `POST path` with a raw body of `content_type` (a backup archive), answering JSON.
    pub(crate) async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> BackendResult<T> {
        let bytes = self
            .send_raw(Method::POST, path, Some((content_type, body)))
            .await?;
        let json: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(json).map_err(|e| {
            BackendError::Other(format!(
                "unexpected answer from the Klef server at {} to POST {path}: {e}",
                self.base
            ))
        })
    }

    /// Sends a request with an optional raw body; the success body as bytes, or the mapped
    /// error.
    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> BackendResult<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token.expose());
        }
        if let Some((content_type, bytes)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        tracing::debug!(%method, path, status = status.as_u16(), "server answered");
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(self.status_error(status, &bytes, retry_after))
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> BackendResult<T> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        tracing::debug!(%method, path, status = status.as_u16(), "server answered");
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(&e))?;
        if status.is_success() {
            let json: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(json).map_err(|e| {
                BackendError::Other(format!(
                    "unexpected answer from the Klef server at {} to {method} {path}: {e}",
                    self.base
                ))
            });
        }
        Err(self.status_error(status, &bytes, retry_after))
    }

    /// A failure to talk to the server at all.
    fn transport_error(&self, e: &reqwest::Error) -> BackendError {
        if e.is_timeout() {
            BackendError::Unreachable(format!(
                "the Klef server at {} did not answer in time",
                self.base
            ))
        } else if e.is_connect() {
            BackendError::Unreachable(format!(
                "cannot reach the Klef server at {} (connection failed)",
                self.base
            ))
        } else if e.is_decode() || e.is_body() {
            BackendError::Unreachable(format!(
                "the connection to the Klef server at {} broke off",
                self.base
            ))
        } else {
            BackendError::Unreachable(format!(
                "cannot reach the Klef server at {}: {}",
                self.base,
                without_url(e)
            ))
        }
    }

    /// The error for a non-success HTTP status.
    fn status_error(
        &self,
        status: StatusCode,
        body: &[u8],
        retry_after: Option<u64>,
    ) -> BackendError {
        let detail = serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .map(|b| b.error);
        let message = detail.as_ref().map_or_else(
            || format!("the Klef server at {} answered HTTP {status}", self.base),
            |d| d.message.clone(),
        );
        let code = detail.as_ref().map_or_else(String::new, |d| d.code.clone());
        let code = code.as_str();
        match status {
            StatusCode::UNAUTHORIZED => {
                // An API key's refusal says why (revoked, unknown); it names only the prefix.
                if code == codes::INVALID_CREDENTIALS || self.uses_api_key() {
                    BackendError::Unauthenticated(message)
                } else {
                    BackendError::Unauthenticated(NOT_SIGNED_IN.into())
                }
            }
            StatusCode::FORBIDDEN => BackendError::PermissionDenied(message),
            StatusCode::NOT_FOUND => BackendError::NotFound {
                what: strip_suffix(&message, " not found"),
            },
            StatusCode::CONFLICT => match detail.and_then(|d| d.conflict) {
                Some(c) => BackendError::Conflict {
                    name: c.name,
                    expected: c.expected,
                    actual: c.actual,
                    changed_by: c.changed_by,
                },
                None if code == codes::ALREADY_EXISTS => BackendError::AlreadyExists {
                    what: strip_suffix(&message, " already exists"),
                },
                None => BackendError::Other(message),
            },
            StatusCode::TOO_MANY_REQUESTS => {
                let secs = detail
                    .as_ref()
                    .and_then(|d| d.retry_after_secs)
                    .or(retry_after);
                BackendError::Other(match secs {
                    Some(s) => format!("{message}; try again in {}", humane_secs(s)),
                    None => format!("{message}; try again later"),
                })
            }
            StatusCode::SERVICE_UNAVAILABLE => BackendError::Unreachable(format!(
                "the Klef server at {} cannot reach its database",
                self.base
            )),
            s if s.is_client_error() => BackendError::Invalid(message),
            _ => BackendError::Other(format!(
                "the Klef server at {} failed (HTTP {status}): {message}",
                self.base
            )),
        }
    }
}

/// Checks and normalises a server URL: `http(s)://host[:port][/prefix]`, no trailing slash.
pub(crate) fn normalize_url(raw: &str) -> BackendResult<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| {
        BackendError::Invalid(format!(
            "{raw:?} is not a server URL ({e}); expected e.g. https://klef.example.com"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(BackendError::Invalid(format!(
            "{raw:?} is not a server URL; expected e.g. https://klef.example.com"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(BackendError::Invalid(
            "the server URL must not contain a user name or password".into(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(BackendError::Invalid(format!(
            "{raw:?} is not a server URL: it has a query or fragment"
        )));
    }
    Ok(trimmed.to_owned())
}

fn strip_suffix(message: &str, suffix: &str) -> String {
    message.strip_suffix(suffix).unwrap_or(message).to_owned()
}

fn humane_secs(s: u64) -> String {
    if s < 120 {
        format!("{s} s")
    } else {
        format!("{} min", s.div_ceil(60))
    }
}

/// A reqwest error's text without the URL it embeds (we name the server ourselves).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(&format!(" ({url})"), "");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Api {
        Api::new("http://127.0.0.1:1/", None).unwrap()
    }

    fn body(code: &str, message: &str) -> Vec<u8> {
        format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#).into_bytes()
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        assert_eq!(
            normalize_url("https://klef.example.com/").unwrap(),
            "https://klef.example.com"
        );
        assert_eq!(
            normalize_url(" http://127.0.0.1:8600 ").unwrap(),
            "http://127.0.0.1:8600"
        );
        for bad in [
            "klef.example.com",
            "ftp://x",
            "https://u:p@x.example",
            "https://x?a=1",
        ] {
            assert!(normalize_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_backend_errors() {
        let a = api();
        assert_eq!(
            a.status_error(
                StatusCode::UNAUTHORIZED,
                &body("unauthenticated", "x"),
                None
            ),
            BackendError::Unauthenticated(NOT_SIGNED_IN.into())
        );
        assert_eq!(
            a.status_error(
                StatusCode::UNAUTHORIZED,
                &body("invalid_credentials", "wrong email or password"),
                None
            ),
            BackendError::Unauthenticated("wrong email or password".into())
        );
        assert_eq!(
            a.status_error(
                StatusCode::FORBIDDEN,
                &body("forbidden", "no access to production"),
                None
            ),
            BackendError::PermissionDenied("no access to production".into())
        );
        assert_eq!(
            a.status_error(
                StatusCode::NOT_FOUND,
                &body("not_found", "project x not found"),
                None
            ),
            BackendError::NotFound {
                what: "project x".into()
            }
        );
        let conflict = br#"{"error":{"code":"conflict","message":"m","conflict":{"name":"K","expected":1,"actual":2,"changed_by":"bob@example.com"}}}"#;
        let e = a.status_error(StatusCode::CONFLICT, conflict, None);
        assert!(
            e.to_string()
                .contains("K was changed by bob@example.com (now version 2"),
            "{e}"
        );
        let e = a.status_error(
            StatusCode::TOO_MANY_REQUESTS,
            &body("rate_limited", "too many failed sign-ins"),
            Some(30),
        );
        assert_eq!(e.to_string(), "too many failed sign-ins; try again in 30 s");
        let e = a.status_error(StatusCode::BAD_GATEWAY, b"<html>", None);
        assert!(e.to_string().contains("HTTP 502"), "{e}");
    }

    #[tokio::test]
    async fn refused_connections_name_the_server() {
        // Port 1 on loopback: nothing listens there.
        let e = api().get::<()>("/v1/health").await.unwrap_err();
        assert!(matches!(e, BackendError::Unreachable(_)), "{e:?}");
        assert!(e.to_string().contains("http://127.0.0.1:1"), "{e}");
    }
}
