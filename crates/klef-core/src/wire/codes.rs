//! Stable machine-readable error codes ([`ErrorDetail::code`](super::ErrorDetail::code)).

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
/// An API key registered before split secrets (its whole secret was sent to the server), or
/// a whole token sent as the bearer by a client of that time (HTTP 401): re-create the key with
/// `klef keys create` and rotate the environments it could read.
pub const API_KEY_OUTDATED: &str = "api_key_outdated";
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
