//! The HTTP client of the Klef server's JSON API (`/v1`, `klef_core::wire`): one [`Api`] per
//! server, bearer authentication, and the mapping of every failure onto
//! [`BackendError`] so the CLI's exit codes hold in server mode (401 → 3, 403 → 4, 404 → 5,
//! unreachable or silent → 6, 409 → 7).
//!
//! The server is an adversary: whatever it answers (a body that is not Klef's, numbers out of
//! range, huge strings) becomes an error or a value, never a panic; a server that accepts the
//! connection and then says nothing fails after `KLEF_TIMEOUT` seconds.
//!
//! Nothing secret is logged: requests are traced by method, path and status only.

use std::time::Duration;

use klef_core::backend::{BackendError, BackendErrorKind, BackendResult};
use klef_core::env::EnvVars;
use klef_core::wire::{ErrorBody, SecretText, codes, routes};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The longest wait for a TCP/TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may stay silent (no byte of an answer) by default: `KLEF_TIMEOUT`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for a server: `(connect, silence)`, from `KLEF_TIMEOUT` (whole seconds,
/// 1 or more) or the defaults. The connection wait is the smaller of the two.
pub(crate) fn timeouts() -> BackendResult<(Duration, Duration)> {
    let Some(raw) = std::env::var_os(EnvVars::KLEF_TIMEOUT).filter(|v| !v.is_empty()) else {
        return Ok((CONNECT_TIMEOUT, DEFAULT_TIMEOUT));
    };
    let text = raw.to_string_lossy();
    let secs = text
        .trim()
        .trim_end_matches('s')
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=86_400).contains(s))
        .ok_or_else(|| {
            BackendError::Invalid(format!(
                "KLEF_TIMEOUT={text:?} is not a number of seconds between 1 and 86400 (e.g. KLEF_TIMEOUT=60)"
            ))
        })?;
    let t = Duration::from_secs(secs);
    Ok((t.min(CONNECT_TIMEOUT), t))
}

/// A client of one Klef server.
pub(crate) struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<SecretText>,
    /// The silence allowed (for messages).
    timeout: Duration,
    /// Set once a request other than a read was sent (`crate::snapshot` then forgets the
    /// agent's copies).
    wrote: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Api {
    /// A client of the server at `base` (`https://klef.example.com`, no trailing slash needed),
    /// authenticating with `token` when given.
    pub(crate) fn new(base: &str, token: Option<SecretText>) -> BackendResult<Self> {
        let base = normalize_url(base)?;
        refuse_plain_http(&base)?;
        let (connect, silence) = timeouts()?;
        // A read timeout, not a total one: a rotation or a push of thousands of keys may take
        // long, but a server that says nothing for `silence` is not answering.
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .read_timeout(silence)
            .user_agent(concat!("klef/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                BackendError::caused(
                    BackendErrorKind::Other,
                    "failed to set up the HTTP client",
                    e,
                )
            })?;
        Ok(Self {
            base,
            http,
            token,
            timeout: silence,
            wrote: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    /// The server's base URL, normalised.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Set once a request other than a read was sent.
    pub(crate) fn write_flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.wrote.clone()
    }

    /// Notes a request that changes anything but the account's own pins (which every read
    /// that moves a head saves).
    fn note_method(&self, method: &Method, path: &str) {
        if method != Method::GET && path != routes::ME_STATE {
            self.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether a session token is attached.
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the attached token is an API key's bearer credential (`KLEF_TOKEN`,
    /// `klef login --key`), or a whole key a session store kept from before split secrets.
    fn uses_api_key(&self) -> bool {
        self.token.as_ref().is_some_and(|t| {
            klef_core::crypto::token::is_bearer_token(t.expose())
                || klef_core::crypto::token::is_whole_token(t.expose())
        })
    }

    /// `GET path`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> BackendResult<T> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    /// `GET path` of a conditional read: `None` for `304 Not Modified`.
    pub(crate) async fn get_if_modified<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> BackendResult<Option<T>> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.get(&url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token.expose());
        }
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        tracing::debug!(path, status = status.as_u16(), "server answered");
        if status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let retry_after = retry_after(&resp);
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        if status.is_success() {
            return self.decode(&Method::GET, path, &bytes).map(Some);
        }
        Err(self.status_error(status, &bytes, retry_after, &Method::GET, path))
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
        self.decode(&Method::POST, path, &bytes)
    }

    /// Decodes a success answer; one that is not JSON at all means the URL is not a Klef
    /// server's.
    fn decode<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        bytes: &[u8],
    ) -> BackendResult<T> {
        let json: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
        serde_json::from_slice(json).map_err(|e| {
            if serde_json::from_slice::<serde::de::IgnoredAny>(json).is_err() {
                self.not_klef(&format!("an answer that is not JSON to {method} {path}"))
            } else {
                BackendError::caused(
                    BackendErrorKind::Other,
                    format!(
                        "unexpected answer from the Klef server at {} to {method} {path}",
                        self.base
                    ),
                    e,
                )
            }
        })
    }

    /// The error for a URL whose answers are not a Klef server's.
    fn not_klef(&self, what: &str) -> BackendError {
        BackendError::Unreachable(format!(
            "{} is not a Klef server (or a proxy in front of it answered): it sent {what}",
            self.base
        ))
    }

    /// Sends a request with an optional raw body; the success body as bytes, or the mapped
    /// error.
    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> BackendResult<Vec<u8>> {
        self.note_method(&method, path);
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
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        tracing::debug!(%method, path, status = status.as_u16(), "server answered");
        let retry_after = retry_after(&resp);
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(self.status_error(status, &bytes, retry_after, &method, path))
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> BackendResult<T> {
        self.note_method(&method, path);
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        tracing::debug!(%method, path, status = status.as_u16(), "server answered");
        let retry_after = retry_after(&resp);
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        if status.is_success() {
            return self.decode(&method, path, &bytes);
        }
        Err(self.status_error(status, &bytes, retry_after, &method, path))
    }

    /// A failure to talk to the server at all; the transport error stays the source.
    fn transport_error(&self, e: reqwest::Error) -> BackendError {
        let (kind, message) = if e.is_timeout() && e.is_connect() {
            (
                BackendErrorKind::TimedOut,
                format!(
                    "could not connect to the Klef server at {} within {} s",
                    self.base,
                    self.timeout.min(CONNECT_TIMEOUT).as_secs()
                ),
            )
        } else if e.is_timeout() {
            (
                BackendErrorKind::TimedOut,
                format!(
                    "the Klef server at {} did not answer within {} s",
                    self.base,
                    self.timeout.as_secs()
                ),
            )
        } else if e.is_connect() {
            (
                BackendErrorKind::Unreachable,
                format!("cannot reach the Klef server at {}", self.base),
            )
        } else if e.is_decode() || e.is_body() {
            (
                BackendErrorKind::Unreachable,
                format!(
                    "the connection to the Klef server at {} broke off",
                    self.base
                ),
            )
        } else {
            (
                BackendErrorKind::Unreachable,
                format!("cannot talk to the Klef server at {}", self.base),
            )
        };
        BackendError::caused(kind, message, e.without_url())
    }

    /// The error for a non-success HTTP status.
    fn status_error(
        &self,
        status: StatusCode,
        body: &[u8],
        retry_after: Option<u64>,
        method: &Method,
        path: &str,
    ) -> BackendError {
        let Ok(ErrorBody { error: detail }) = serde_json::from_slice::<ErrorBody>(body) else {
            // Not a Klef error body: a web server, a proxy, or a server that is down behind
            // one. Its words are not shown (they may be a whole HTML page).
            return match status {
                StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::BAD_GATEWAY
                | StatusCode::GATEWAY_TIMEOUT => BackendError::Unreachable(format!(
                    "the Klef server at {} is not answering (a proxy in front of it said HTTP {status})",
                    self.base
                )),
                _ => self.not_klef(&format!("HTTP {status} to {method} {path}")),
            };
        };
        let message = detail.message.clone();
        let code = detail.code.as_str();
        match status {
            StatusCode::UNAUTHORIZED => {
                // A key issued before split secrets: this build's own words, not the server's.
                if code == codes::API_KEY_OUTDATED {
                    return BackendError::Unauthenticated(
                        klef_core::crypto::token::OLD_FORMAT_ADVICE.to_owned(),
                    );
                }
                // An API key's refusal says why (revoked, unknown); it names only the prefix.
                if code == codes::INVALID_CREDENTIALS || self.uses_api_key() {
                    BackendError::Unauthenticated(message)
                } else {
                    BackendError::NotSignedIn
                }
            }
            StatusCode::FORBIDDEN => BackendError::PermissionDenied(message),
            StatusCode::NOT_FOUND => BackendError::NotFound {
                what: strip_suffix(&message, " not found"),
            },
            StatusCode::CONFLICT => match detail.conflict {
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
            StatusCode::TOO_MANY_REQUESTS => BackendError::RateLimited {
                message,
                retry_after_secs: detail.retry_after_secs.or(retry_after),
            },
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

/// Refuses plain `http://` to a host other than loopback unless `KLEF_ALLOW_HTTP=1`: session
/// tokens, API keys, account passwords and ciphertext would cross the network unencrypted, and
/// anyone on the path could act as the server (DESIGN §9.4).
fn refuse_plain_http(base: &str) -> BackendResult<()> {
    let Ok(url) = reqwest::Url::parse(base) else {
        return Ok(()); // normalize_url has refused it already
    };
    if url.scheme() != "http" {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let allowed = std::env::var(klef_core::env::EnvVars::KLEF_ALLOW_HTTP)
        .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
    if loopback || allowed {
        return Ok(());
    }
    Err(BackendError::Invalid(format!(
        "refusing plain http:// to {}: credentials and ciphertext would cross the network unencrypted; use https://, or set KLEF_ALLOW_HTTP=1 on a network you trust",
        url.host_str().unwrap_or("the server")
    )))
}

fn strip_suffix(message: &str, suffix: &str) -> String {
    message.strip_suffix(suffix).unwrap_or(message).to_owned()
}

/// The seconds a `Retry-After` header asks to wait, when it gives a number.
fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://klef.example.com",
            "http://127.0.0.1:8600",
            "http://127.8.9.1",
            "http://localhost:1",
            "http://[::1]:8600",
        ] {
            assert!(refuse_plain_http(ok).is_ok(), "{ok}");
        }
        // (KLEF_ALLOW_HTTP is not set in unit tests; the e2e test covers the opt-in.)
        for bad in [
            "http://klef.example.com",
            "http://10.0.0.5:8600",
            "http://[2001:db8::1]",
        ] {
            let e = refuse_plain_http(bad).unwrap_err().to_string();
            assert!(e.contains("refusing plain http://"), "{e}");
            assert!(e.contains("KLEF_ALLOW_HTTP=1"), "{e}");
        }
    }

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

    fn status(a: &Api, status: StatusCode, body: &[u8], retry: Option<u64>) -> BackendError {
        a.status_error(status, body, retry, &Method::GET, "/v1/me")
    }

    #[test]
    fn statuses_map_to_backend_errors() {
        let a = api();
        assert_eq!(
            status(
                &a,
                StatusCode::UNAUTHORIZED,
                &body("unauthenticated", "x"),
                None
            ),
            BackendError::NotSignedIn
        );
        assert_eq!(
            status(
                &a,
                StatusCode::UNAUTHORIZED,
                &body("invalid_credentials", "wrong email or password"),
                None
            ),
            BackendError::Unauthenticated("wrong email or password".into())
        );
        assert_eq!(
            status(
                &a,
                StatusCode::FORBIDDEN,
                &body("forbidden", "no access to production"),
                None
            ),
            BackendError::PermissionDenied("no access to production".into())
        );
        assert_eq!(
            status(
                &a,
                StatusCode::NOT_FOUND,
                &body("not_found", "project x not found"),
                None
            ),
            BackendError::NotFound {
                what: "project x".into()
            }
        );
        let conflict = br#"{"error":{"code":"conflict","message":"m","conflict":{"name":"K","expected":1,"actual":2,"changed_by":"bob@example.com"}}}"#;
        let e = status(&a, StatusCode::CONFLICT, conflict, None);
        assert!(
            e.to_string()
                .contains("K was changed by bob@example.com (now version 2"),
            "{e}"
        );
        let e = status(
            &a,
            StatusCode::TOO_MANY_REQUESTS,
            &body("rate_limited", "too many failed sign-ins"),
            Some(891),
        );
        assert_eq!(
            e.to_string(),
            "too many failed sign-ins; try again in 15 min"
        );
        let e = status(&a, StatusCode::BAD_GATEWAY, b"<html>", None);
        assert!(e.to_string().contains("HTTP 502"), "{e}");
        assert_eq!(e.kind(), BackendErrorKind::Unreachable);
        let e = status(&a, StatusCode::NOT_FOUND, b"not found", None);
        assert_eq!(
            e.to_string(),
            "http://127.0.0.1:1 is not a Klef server (or a proxy in front of it answered): it sent HTTP 404 Not Found to GET /v1/me"
        );
    }

    #[test]
    fn success_answers_that_are_not_json_mean_another_server() {
        let a = api();
        let e = a
            .decode::<klef_core::wire::MeResponse>(&Method::GET, "/v1/me", b"<html>hi</html>")
            .unwrap_err();
        assert!(e.to_string().contains("is not a Klef server"), "{e}");
        let e = a
            .decode::<klef_core::wire::MeResponse>(&Method::GET, "/v1/me", b"{\"a\":1}")
            .unwrap_err();
        assert!(e.to_string().starts_with("unexpected answer"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }

    proptest::proptest! {
        /// Any status and body a server sends maps onto an error, without a panic.
        #[test]
        fn any_error_answer_maps(code in 400u16..600, body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                 retry in proptest::option::of(proptest::num::u64::ANY)) {
            let a = api();
            let s = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            let _ = status(&a, s, &body, retry).to_string();
        }

        /// Any JSON error body with hostile numbers and strings maps without a panic.
        #[test]
        fn any_klef_error_body_maps(code in 400u16..600, message in ".{0,200}",
                                    retry in proptest::option::of(proptest::num::u64::ANY),
                                    expected in proptest::num::i64::ANY, actual in proptest::num::i64::ANY) {
            let a = api();
            let body = serde_json::json!({"error": {"code": "conflict", "message": message,
                "retry_after_secs": retry,
                "conflict": {"name": message, "expected": expected, "actual": actual, "changed_by": "x"}}});
            let s = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            let _ = status(&a, s, body.to_string().as_bytes(), retry).to_string();
        }
    }

    #[tokio::test]
    async fn refused_connections_name_the_server() {
        // Port 1 on loopback: nothing listens there.
        let e = api().get::<()>("/v1/health").await.unwrap_err();
        assert_eq!(e.kind(), BackendErrorKind::Unreachable, "{e:?}");
        assert!(e.to_string().contains("http://127.0.0.1:1"), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
    }
}
