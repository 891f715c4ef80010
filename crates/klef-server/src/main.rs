//! The `klef-server` binary: parses flags, installs logging, binds, and serves until SIGTERM or
//! SIGINT (see the library, `klef_server`).

use std::process::ExitCode;

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::Parser as _;
use klef_server::LogFormat;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = klef_server::Args::parse();
    init_logging(args.log_format());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "failed to start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "klef-server failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: klef_server::Args) -> anyhow::Result<()> {
    let config = klef_server::Config::from_args(&args)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    klef_server::launch_with_listener(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// Logs go to stderr: JSON lines, or text with colour only when stderr is a terminal and
/// `NO_COLOR` is unset (<https://no-color.org>), so a redirected log holds no escape codes.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Text => {
            let colour = klef_server::config::log_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            );
            builder.with_ansi(colour).init();
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
