//! klef-agent: caches unlocked account keys in hardened memory so a person unlocks once per
//! session (DESIGN.md §3, `docs/agent.md`).
//!
//! * [`client`]: what `klef` calls — [`client::ensure_running`], [`client::AgentClient`].
//! * [`protocol`]: the framed postcard wire format and [`protocol::PROTOCOL_VERSION`].
//! * [`server`]: [`server::serve`], the testable serving loop, and [`server::AgentState`].
//! * [`cache`]: per-vault keys with idle and hard-cap expiry.
//! * [`paths`]: the runtime directory shared by the agent and the CLI.
//! * [`instance`]: the single-instance lock and the socket file.
//! * [`hardening`]: no core dumps, no ptrace, mlocked key pages.
//! * [`daemon`]: the `klef-agent` program itself.
//!
//! The agent uses Unix domain sockets (tokio's `UnixListener`, peer uid via `SO_PEERCRED` /
//! `getpeereid`); Windows named pipes are not implemented yet.
//!
//! ```
//! use klef_agent::protocol::{Request, decode, encode};
//! let body = encode(&Request::Status).unwrap();
//! assert!(matches!(decode::<Request>(&body).unwrap(), Request::Status));
//! ```
#![cfg(unix)]

pub mod cache;
pub mod client;
pub mod daemon;
pub mod hardening;
pub mod instance;
pub mod lifecycle;
pub mod paths;
pub mod protocol;
pub mod server;
