//! The ceiling for `cargo xtask bench`'s server load case: the smallest axum server this
//! machine can run, with the same runtime as `klef-server` (tokio's multi-threaded runtime, one
//! worker per core) and the same axum build, answering `GET /` with a fixed `hello`. Whatever
//! `klef-server` does on top (authentication, authorization, the database, JSON) shows up as the
//! distance between its requests per second and this one's.
//!
//! A plain `harness = false` binary, built with the bench profile (optimised like the release
//! build). It binds `127.0.0.1` on a port the kernel picks (loopback only), prints the readiness
//! line `klef-server` prints (`{"event":"ready","listen":"127.0.0.1:PORT"}`) on stdout, and
//! serves until it is killed; `cargo bench`'s own `--bench` argument is ignored.
//!
//! `cargo bench -p klef-server --bench ceiling` (then e.g. `curl http://127.0.0.1:PORT/`).

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use axum::Router;
use axum::routing::get;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ceiling: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ceiling: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> std::io::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{}",
        klef_core::ready::ReadyLine::listening(addr).to_line()
    )?;
    stdout.flush()?;
    drop(stdout);
    let app = Router::new().route("/", get(|| async { "hello" }));
    axum::serve(listener, app).await
}
