//! The `klef-server` binary's log and readiness line, as a supervisor or a log shipper sees
//! them: stderr on a pipe (not a terminal), stdout holding only the readiness line.

use std::process::Command;
use std::time::Duration;

use klef_testkit::{Hermetic, Started, spawn_until_ready};
use serde_json::Value;

fn start(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Started {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_klef-server"));
    Hermetic::new(dir.join("home")).apply(&mut cmd);
    cmd.env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .args(["--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", dir.join("server.db").display()))
        .args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    spawn_until_ready(cmd, Duration::from_mins(1)).expect("klef-server gets ready")
}

fn stop(server: Started) -> String {
    server.stop()
}

#[test]
fn the_readiness_line_names_the_bound_port_and_the_log_is_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[], &[]);
    let addr = server.addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    assert_eq!(server.ready.event, "ready");
    // The address it announced is the one it serves.
    std::net::TcpStream::connect(addr).expect("the announced address accepts connections");
    let log = stop(server);
    assert!(log.contains("klef-server listening"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "escape codes in a piped log: {log:?}"
    );
    assert!(log.contains(&format!("address={addr}")), "{log}");
    assert!(!log.contains("Some("), "a Debug-formatted field: {log}");
}

#[test]
fn no_color_keeps_the_text_log_plain() {
    let dir = tempfile::tempdir().unwrap();
    let log = stop(start(dir.path(), &[], &[("NO_COLOR", "1")]));
    assert!(log.contains("klef-server listening"), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    for how in [&["--log-format", "json"][..], &["--log-json"][..]] {
        let server = start(dir.path(), how, &[]);
        let addr = server.addr();
        let log = stop(server);
        let lines: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        let listening = lines
            .iter()
            .find(|v| v["fields"]["message"] == "klef-server listening")
            .unwrap_or_else(|| panic!("no listening line: {log}"));
        assert_eq!(listening["fields"]["address"], addr.to_string());
        assert_eq!(listening["level"], "INFO");
    }
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_klef-server"))
        .args(["--log-format", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("text") && err.contains("json"), "{err}");
}
