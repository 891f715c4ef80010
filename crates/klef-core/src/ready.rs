//! The readiness line: what `klef-server` and `klef-agent` write on stdout once they serve, so
//! tests, `cargo xtask` and the CLI wait for it instead of sleeping or scraping a log.
//!
//! It is one JSON object on one line, and the only thing either process writes on stdout:
//!
//! ```text
//! {"event":"ready","listen":"127.0.0.1:8600"}          klef-server
//! {"event":"ready","socket":"/run/user/1000/klef/agent.sock"}   klef-agent
//! ```
//!
//! ```
//! use klef_core::ready::ReadyLine;
//! let line = ReadyLine::listening("127.0.0.1:8600".parse().unwrap()).to_line();
//! assert_eq!(line, r#"{"event":"ready","listen":"127.0.0.1:8600"}"#);
//! assert_eq!(ReadyLine::parse(&line).unwrap().listen.as_deref(), Some("127.0.0.1:8600"));
//! assert!(ReadyLine::parse("2026-01-01 INFO listening").is_none());
//! ```

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The value of `event` in a readiness line.
pub const READY_EVENT: &str = "ready";

/// A readiness line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyLine {
    /// Always [`READY_EVENT`].
    pub event: String,
    /// The address a server accepts connections on (the real port when it bound port 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The socket an agent accepts connections on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

impl ReadyLine {
    /// A server listening on `addr`.
    #[must_use]
    pub fn listening(addr: SocketAddr) -> Self {
        Self {
            event: READY_EVENT.into(),
            listen: Some(addr.to_string()),
            socket: None,
        }
    }

    /// An agent serving on the socket at `path`.
    #[must_use]
    pub fn socket(path: &std::path::Path) -> Self {
        Self {
            event: READY_EVENT.into(),
            listen: None,
            socket: Some(path.display().to_string()),
        }
    }

    /// The line, without its newline.
    #[must_use]
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a readiness line serializes")
    }

    /// Reads a readiness line; anything else (a log line, another event) is `None`.
    #[must_use]
    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str::<Self>(line)
            .ok()
            .filter(|r| r.event == READY_EVENT)
    }

    /// The server's address, when this is a server's line with a valid one.
    #[must_use]
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_lines() {
        let server = ReadyLine::listening("127.0.0.1:41234".parse().unwrap());
        assert_eq!(
            ReadyLine::parse(&server.to_line()).unwrap().listen_addr(),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        let agent = ReadyLine::socket(std::path::Path::new("/run/a.sock"));
        assert_eq!(
            agent.to_line(),
            r#"{"event":"ready","socket":"/run/a.sock"}"#
        );
        assert!(ReadyLine::parse(r#"{"event":"stopped"}"#).is_none());
        assert!(ReadyLine::parse("ready").is_none());
        assert!(ReadyLine::parse("{not json").is_none());
    }
}
