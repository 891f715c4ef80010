//! Fuzzes the parsers of the trust records (DESIGN.md §9: roster entries, manifests, project
//! records, account pins, invite codes, fingerprints), which read bytes a malicious server
//! chose. The first byte picks the parser. Arbitrary input must never panic; whatever a parser
//! accepts must re-encode to exactly the input (one encoding per record, so a hash or signature
//! over the received bytes names one record); a roster chain that verifies is consistent with
//! its own head.
#![no_main]

use klef_core::trust::account_state::AccountState;
use klef_core::trust::identity::{Fingerprint, Signature};
use klef_core::trust::manifest::ManifestBody;
use klef_core::trust::manifest::project::ProjectBody;
use klef_core::trust::roster::invite::InviteCode;
use klef_core::trust::roster::{EntryBody, RosterAnchor, SignedEntry, VerifiedRoster};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret as _;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 7 {
        0 => {
            if let Ok(entry) = EntryBody::parse(body) {
                assert_eq!(entry.encode(), body, "a roster entry must be canonical");
            }
        }
        1 => {
            if let Ok(manifest) = ManifestBody::parse(body) {
                assert_eq!(manifest.encode(), body, "a manifest must be canonical");
            }
        }
        2 => {
            if let Ok(state) = AccountState::parse(body) {
                assert_eq!(state.encode(), body, "account pins must be canonical");
            }
        }
        4 => {
            if let Ok(record) = ProjectBody::parse(body) {
                assert_eq!(record.encode(), body, "a project record must be canonical");
            }
        }
        3 => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            if let Ok(code) = InviteCode::parse(text) {
                let again = InviteCode::parse(code.to_text().expose_secret())
                    .expect("a printed invite code parses");
                assert_eq!(again.genesis(), code.genesis());
            }
            if let Ok(fp) = text.parse::<Fingerprint>() {
                assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
            }
        }
        _ => {
            // A chain of entries, each `u16 length ‖ body ‖ 64-byte signature`, pinned to the
            // first entry's own hash (the strongest position a forger can be in).
            let mut entries = Vec::new();
            let mut rest = body;
            while let Some((len, tail)) = rest.split_first_chunk::<2>() {
                let len = usize::from(u16::from_be_bytes(*len));
                if tail.len() < len + 64 {
                    break;
                }
                let (entry, tail) = tail.split_at(len);
                let (sig, tail) = tail.split_at(64);
                entries.push(SignedEntry {
                    body: entry.to_vec(),
                    signature: Signature::from_slice(sig).expect("64 bytes"),
                });
                rest = tail;
            }
            let Some(first) = entries.first() else {
                return;
            };
            let Ok(genesis) = EntryBody::parse(&first.body) else {
                return;
            };
            let anchor = RosterAnchor {
                workspace: genesis.workspace,
                genesis: first.hash(),
                head: None,
            };
            // Whatever verifies is a consistent chain: its head is the last entry, and it
            // verifies again pinned at that head.
            if let Ok(roster) = VerifiedRoster::verify(&anchor, &entries) {
                let last = entries.last().expect("non-empty");
                assert_eq!(roster.head().hash, last.hash());
                assert_eq!(roster.head().sequence + 1, entries.len() as u64);
                assert!(VerifiedRoster::verify(&roster.anchor(), &entries).is_ok());
            }
        }
    }
});
