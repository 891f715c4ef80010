//! The CLI's single tracing subscriber (STYLE.md rules 24–25): off by default, `-v` gives
//! `klef*=debug`, `-vv` gives trace, and `RUST_LOG` always wins. Logs go to stderr.

use tracing_subscriber::EnvFilter;

use crate::cli::GlobalArgs;

const CRATES: &[&str] = &["klef_cli", "klef_core", "klef_store", "klef_agent"];

/// Installs the subscriber. Safe to call once per process. When logging is off (no `-v`, no
/// `RUST_LOG`) none is installed: every event is then dropped at its call site, and a command
/// does not pay for building a filter and a formatter it never uses.
pub(crate) fn init(global: &GlobalArgs, ansi: bool) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::new(v),
        _ => {
            let level = match global.verbose {
                0 => return,
                1 => "debug",
                _ => "trace",
            };
            EnvFilter::new(
                CRATES
                    .iter()
                    .map(|c| format!("{c}={level}"))
                    .collect::<Vec<_>>()
                    .join(","),
            )
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(true)
        .without_time()
        .try_init();
}
