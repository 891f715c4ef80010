//! The trust records of DESIGN.md §9: what lets a Klef client hold up against a malicious
//! server. Pure and I/O-free; the CLI, agent, store and server call it.
//!
//! The rule behind all of it: **a key is never trusted because it opened.** Every key a client
//! uses, and every value it accepts, must be committed to by a record signed by someone the
//! verified roster authorises.
//!
//! * [`encoding`]: the labelled encoding every signed, MAC-protected or hashed object uses (§9.5).
//! * [`identity`]: Ed25519 identity keys derived from the master key, and fingerprints (§9.1).
//! * [`roster`]: the signed, hash-chained workspace roster, invite codes and verification codes
//!   (§9.2).
//! * [`manifest`]: key commitments and signed environment manifests (§9.3).
//! * [`api_key`]: split API-key secrets and the sealed CI anchor (§9.4).
//! * [`personal`]: a member's personal overrides of a shared environment, sealed to them alone.
//! * [`secrets`]: the identity seed and account-state key a device derives on unlock.
//! * [`account_state`]: the account's pins and heads, sealed under the master key and merged
//!   by maximum across devices (§9.2).
//!
//! The byte-level format and the attack each check stops are in
//! `docs/crypto.md` ("Trust records"); known-answer vectors in
//! `crates/klef-core/tests/data/trust-vectors.json`.

pub mod account_state;
pub mod api_key;
pub mod encoding;
pub mod identity;
pub mod manifest;
pub mod personal;
mod primitives;
pub mod roster;
pub mod secrets;
mod text;

use crate::ids::RawId;

/// Builds a [`RawId`] from its 16 bytes, through its canonical text form (the only public
/// constructor of `RawId`).
pub(crate) fn raw_id(bytes: &[u8; 16]) -> RawId {
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
    .parse()
    .expect("32 hex digits in UUID layout always parse")
}
