//! klef-server: the Klef team server. A thin authenticated JSON API (`/v1`, described in
//! `docs/server.md` and served as `OpenAPI` at `/v1/openapi.json`) over `klef-store`, on `SQLite`
//! or `PostgreSQL`. It only ever sees metadata, hashes and sealed bytes: passwords for
//! encryption, private keys, environment keys and plaintext values never reach it.
//!
//! Everything that matters for correctness (sessions, rate-limit counters, the audit log) is in
//! the database, so several replicas can share one `PostgreSQL`. The one process-local state,
//! the [`cache::SecretListCache`], is checked against the database on every request.
//!
//! ```no_run
//! # async fn demo() -> Result<(), klef_server::ServerError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(klef_server::ServerError::Io)?;
//! let config = klef_server::Config::new("sqlite:///tmp/klef-server/server.db");
//! klef_server::launch_with_listener(listener, config, std::future::pending::<()>()).await
//! # }
//! ```

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("klef-server needs at least one of its `sqlite` and `postgres` features");

pub mod authz;
pub mod cache;
pub mod config;
pub mod error;
pub mod extract;
pub mod password;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use klef_store::{Store, StoreError};

pub use config::{Args, Config, LogFormat, LoginLimit};
pub use error::ApiError;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The settings.
    pub config: Arc<Config>,
    /// Encoded secret lists, reused while their environment's revision is unchanged.
    pub secret_lists: Arc<cache::SecretListCache>,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The database could not be opened or migrated.
    #[error("failed to open the database")]
    Store(#[from] StoreError),
    /// Serving failed.
    #[error("the HTTP server failed")]
    Io(#[source] std::io::Error),
}

/// Writes the readiness line on stdout (the only thing the server writes there) and flushes it.
fn announce_ready(address: SocketAddr) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        klef_core::ready::ReadyLine::listening(address).to_line()
    )?;
    out.flush()
}

/// Opens the database (running migrations), then serves the API on `listener` until
/// `shutdown` resolves; in-flight requests finish first, then the pool closes.
pub async fn launch_with_listener(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let store = Store::connect(&config.database_url).await?;
    let address = listener.local_addr().map_err(ServerError::Io)?;
    tracing::info!(
        database = store.backend_name(),
        %address,
        open_signup = config.open_signup,
        "klef-server listening"
    );
    if config.announce_ready {
        announce_ready(address).map_err(ServerError::Io)?;
    }
    let state_config = Arc::new(config);
    let state = AppState {
        store: store.clone(),
        secret_lists: Arc::new(cache::SecretListCache::new(state_config.secret_cache_bytes)),
        config: state_config.clone(),
    };
    let app = routes::router(state);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    store.close().await;
    if let Some(path) = &state_config.stats_file {
        let counts = state_config.password_gate.counts();
        let written = serde_json::to_vec(&counts)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(path, bytes));
        if let Err(e) = written {
            tracing::warn!(error = %e, path = %path.display(), "cannot write the stats file");
        }
    }
    tracing::info!("klef-server stopped");
    served.map_err(ServerError::Io)
}
