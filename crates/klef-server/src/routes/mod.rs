//! The router: every route of `/v1`, built from the one route table
//! ([`klef_core::wire::routes::Endpoint`], documented in `openapi.json`), the layers (trace,
//! JSON errors, panic catching, body limits) and the health and `OpenAPI` handlers.

mod accounts;
mod api_keys;
mod backup;
mod content;
mod identity;
mod lifecycle;
mod shapes;
mod teams;

use std::convert::Infallible;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use klef_core::wire::HealthResponse;
use klef_core::wire::routes::{Endpoint, Method};
use klef_store::server::{Actor, ActorKind, Audit};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::authz::Principal;
use crate::error::ApiError;

/// The `OpenAPI` 3.1 document served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// The application: every [`Endpoint`] of the route table with its handler and body limit,
/// the state and the layers.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for &endpoint in Endpoint::ALL {
        let limit = endpoint.max_body();
        let method = match endpoint.method() {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
            Method::Delete => MethodFilter::DELETE,
        };
        let route: MethodRouter<AppState> = handler(endpoint, method)
            .layer::<_, Infallible>(DefaultBodyLimit::max(limit))
            .layer(RequestBodyLimitLayer::new(limit));
        router = router.route(endpoint.path(), route);
    }
    router
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

/// The handler of each endpoint, on its method. Exhaustive: a new [`Endpoint`] does not
/// compile until it has a handler.
fn handler(endpoint: Endpoint, method: MethodFilter) -> MethodRouter<AppState> {
    use Endpoint as E;
    match endpoint {
        E::Health => on(method, health),
        E::OpenApi => on(method, openapi),
        E::Signup => on(method, accounts::signup),
        E::Login => on(method, accounts::login),
        E::Logout => on(method, accounts::logout),
        E::Me => on(method, accounts::me),
        E::AccountKeyHistory => on(method, accounts::key_history),
        E::ReplaceKeys => on(method, accounts::replace_keys),
        E::PublishIdentity => on(method, identity::publish_identity),
        E::AccountState => on(method, identity::account_state),
        E::PutAccountState => on(method, identity::put_account_state),
        E::Roster => on(method, identity::roster),
        E::AppendRoster => on(method, identity::append_roster),
        E::Workspaces => on(method, content::workspaces),
        E::CreateWorkspace => on(method, content::create_workspace),
        E::Projects => on(method, content::projects),
        E::CreateProject => on(method, content::create_project),
        E::Project => on(method, content::project),
        E::Environments => on(method, content::environments),
        E::CreateEnvironment => on(method, content::create_environment),
        E::EnvironmentKey => on(method, content::environment_key),
        E::Secrets => on(method, content::secrets),
        E::WriteSecrets => on(method, content::write_secrets),
        E::SecretHistory => on(method, content::secret_history),
        E::PutPersonal => on(method, content::put_personal),
        E::Grants => on(method, content::grants),
        E::Rotate => on(method, content::rotate),
        E::RotateProjectKey => on(method, content::rotate_project_key),
        E::Invite => on(method, teams::invite),
        E::CancelInvitation => on(method, teams::cancel_invitation),
        E::MyInvitations => on(method, teams::my_invitations),
        E::AcceptInvitation => on(method, teams::accept),
        E::Members => on(method, teams::members),
        E::ConfirmMember => on(method, teams::confirm),
        E::RemoveMember => on(method, teams::remove),
        E::Audit => on(method, teams::audit),
        E::ApiKeys => on(method, api_keys::list),
        E::CreateApiKey => on(method, api_keys::create),
        E::PutApiKey => on(method, api_keys::put),
        E::RevokeApiKey => on(method, api_keys::revoke),
        E::CurrentApiKey => on(method, api_keys::current),
        E::ApiKeyRecipients => on(method, content::api_key_recipients),
        E::ExportWorkspace => on(method, backup::export),
        E::ImportBackup => on(method, backup::import),
        E::RenameWorkspace => on(method, lifecycle::rename_workspace),
        E::DeleteWorkspace => on(method, lifecycle::delete_workspace),
        E::RenameProject => on(method, lifecycle::rename_project),
        E::DeleteProject => on(method, lifecycle::delete_project),
        E::RenameEnvironment => on(method, lifecycle::rename_environment),
        E::DeleteEnvironment => on(method, lifecycle::delete_environment),
    }
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
