//! The one test and ops kit of the workspace (docs/decisions/0015-test-kit.md):
//!
//! * [`Hermetic`]: a command environment that cannot touch the developer's real files: `HOME`
//!   and every `XDG_*` directory inside a temporary directory, and no inherited `KLEF_*`
//!   variable (nor `XDG_*`, `RUST_LOG`, `NO_COLOR`, the D-Bus session).
//! * [`spawn_until_ready`]: start a Klef daemon (`klef-server`, `klef-agent`) and wait for its
//!   readiness line ([`klef_core::ready::ReadyLine`]) on stdout, with no sleep and no log
//!   scraping; its stderr is collected for the failure message.
//!
//! Used by `klef-cli`'s and `klef-agent`'s tests, the end-to-end suite (`tests/`), and
//! `cargo xtask bench` / `soak`. No production crate depends on it.

mod hermetic;
mod ready;

pub use hermetic::{Hermetic, scrub_inherited};
pub use ready::{Started, spawn_until_ready, spawn_until_ready_logging};
