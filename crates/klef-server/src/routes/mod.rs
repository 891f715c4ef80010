//! The router: every route of `/v1` ([`ROUTES`], documented in `openapi.json`), the layers
//! (trace, JSON errors, panic catching, body limit) and the health and `OpenAPI` handlers.

mod accounts;
mod api_keys;
mod backup;
mod content;
mod teams;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use klef_core::wire::{HealthResponse, MAX_BODY_BYTES};
use klef_store::server::{Actor, ActorKind, Audit};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::authz::Principal;
use crate::error::ApiError;

/// The `OpenAPI` 3.1 document served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Every route as (method, path), in the order of `docs/server.md`. A test checks that each
/// is served and appears in [`OPENAPI_JSON`].
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/health"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/signup"),
    ("POST", "/v1/login"),
    ("POST", "/v1/logout"),
    ("GET", "/v1/me"),
    ("PUT", "/v1/me/keys"),
    ("GET", "/v1/workspaces"),
    ("POST", "/v1/workspaces"),
    ("GET", "/v1/workspaces/{workspace_id}/projects"),
    ("POST", "/v1/workspaces/{workspace_id}/projects"),
    ("GET", "/v1/projects/{project_id}"),
    ("GET", "/v1/projects/{project_id}/environments"),
    ("POST", "/v1/projects/{project_id}/environments"),
    ("GET", "/v1/environments/{environment_id}/key"),
    ("GET", "/v1/environments/{environment_id}/secrets"),
    ("POST", "/v1/environments/{environment_id}/secrets"),
    (
        "GET",
        "/v1/environments/{environment_id}/secrets/{name}/history",
    ),
    ("GET", "/v1/environments/{environment_id}/grants"),
    ("POST", "/v1/environments/{environment_id}/rotate"),
    ("POST", "/v1/workspaces/{workspace_id}/invitations"),
    ("GET", "/v1/invitations"),
    ("POST", "/v1/invitations/{invitation_id}/accept"),
    ("GET", "/v1/workspaces/{workspace_id}/members"),
    (
        "POST",
        "/v1/workspaces/{workspace_id}/members/{account_id}/confirm",
    ),
    (
        "DELETE",
        "/v1/workspaces/{workspace_id}/members/{account_id}",
    ),
    ("GET", "/v1/workspaces/{workspace_id}/audit"),
    ("GET", "/v1/api-keys"),
    ("POST", "/v1/api-keys"),
    ("PUT", "/v1/api-keys/{api_key_id}"),
    ("DELETE", "/v1/api-keys/{api_key_id}"),
    ("GET", "/v1/me/api-key"),
    ("GET", "/v1/projects/{project_id}/api-key-recipients"),
    ("GET", "/v1/workspaces/{workspace_id}/export"),
    ("POST", "/v1/import"),
];

/// The application: routes, state and layers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/signup", post(accounts::signup))
        .route("/v1/login", post(accounts::login))
        .route("/v1/logout", post(accounts::logout))
        .route("/v1/me", get(accounts::me))
        .route("/v1/me/keys", put(accounts::replace_keys))
        .route(
            "/v1/workspaces",
            get(content::workspaces).post(content::create_workspace),
        )
        .route(
            "/v1/workspaces/{workspace_id}/projects",
            get(content::projects).post(content::create_project),
        )
        .route("/v1/projects/{project_id}", get(content::project))
        .route(
            "/v1/projects/{project_id}/environments",
            get(content::environments).post(content::create_environment),
        )
        .route(
            "/v1/environments/{environment_id}/key",
            get(content::environment_key),
        )
        .route(
            "/v1/environments/{environment_id}/secrets",
            get(content::secrets).post(content::write_secrets),
        )
        .route(
            "/v1/environments/{environment_id}/secrets/{name}/history",
            get(content::secret_history),
        )
        .route(
            "/v1/environments/{environment_id}/grants",
            get(content::grants),
        )
        .route(
            "/v1/environments/{environment_id}/rotate",
            post(content::rotate),
        )
        .route(
            "/v1/workspaces/{workspace_id}/invitations",
            post(teams::invite),
        )
        .route("/v1/invitations", get(teams::my_invitations))
        .route(
            "/v1/invitations/{invitation_id}/accept",
            post(teams::accept),
        )
        .route("/v1/workspaces/{workspace_id}/members", get(teams::members))
        .route(
            "/v1/workspaces/{workspace_id}/members/{account_id}/confirm",
            post(teams::confirm),
        )
        .route(
            "/v1/workspaces/{workspace_id}/members/{account_id}",
            delete(teams::remove),
        )
        .route("/v1/workspaces/{workspace_id}/audit", get(teams::audit))
        .route("/v1/api-keys", get(api_keys::list).post(api_keys::create))
        .route(
            "/v1/api-keys/{api_key_id}",
            put(api_keys::put).delete(api_keys::revoke),
        )
        .route("/v1/me/api-key", get(api_keys::current))
        .route(
            "/v1/projects/{project_id}/api-key-recipients",
            get(content::api_key_recipients),
        )
        // The body limit covers every route above; the backup routes below have their own.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .merge(backup::router())
        .fallback(no_route)
        .with_state(state)
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("a handler panicked");
                ApiError::Internal.into_response()
            },
        ))
        .layer(axum::middleware::map_response(json_errors))
        .layer(TraceLayer::new_for_http())
}

async fn no_route() -> ApiError {
    ApiError::NoRoute
}

/// Gives every error response a JSON [`ErrorBody`](klef_core::wire::ErrorBody), including the
/// bare ones made by axum (405) and tower-http (413).
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let mut replaced = ApiError::from_status(status).into_response();
        *replaced.status_mut() = status;
        return replaced;
    }
    response
}

async fn health(State(state): State<AppState>) -> Result<axum::Json<HealthResponse>, ApiError> {
    state.store.ping().await?;
    Ok(axum::Json(HealthResponse {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: state.store.backend_name().into(),
    }))
}

async fn openapi() -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}

/// An audit entry by `principal`.
fn audit_by(
    principal: &Principal,
    workspace_id: Option<klef_core::ids::WorkspaceId>,
    action: &str,
    target: String,
) -> Audit {
    Audit {
        workspace_id,
        actor: principal.actor(),
        action: action.into(),
        target,
    }
}

/// An audit entry by nobody signed in.
fn audit_anonymous(action: &str, target: String) -> Audit {
    Audit {
        workspace_id: None,
        actor: Actor {
            kind: ActorKind::Anonymous,
            id: None,
            label: None,
        },
        action: action.into(),
        target,
    }
}

/// `201 Created` with a JSON body.
fn created<T: serde::Serialize>(body: T) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}
