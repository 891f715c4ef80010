//! Known-answer vectors for the trust records (DESIGN.md §9, docs/decisions/0013-trust-records.md),
//! table-driven from `tests/data/trust-vectors.json`: every case holds its inputs and the
//! expected outputs; this test recomputes the outputs through klef-core's public API.
//!
//! To regenerate after a deliberate format change (then review the diff and bump the format):
//! `KLEF_REGENERATE_TRUST_VECTORS=1 cargo nextest run -p klef-core -E 'binary(trust_vectors)'`.
//! `tests/data/check_trust_vectors.py` recomputes the hashes, derivations and signatures with an
//! independent implementation (Python `cryptography`).

use std::str::FromStr as _;

use klef_core::crypto::{PrivateKey, SymmetricKey};
use klef_core::ids::AccountId;
use klef_core::trust::encoding::Labelled;
use klef_core::trust::identity::{Fingerprint, PublicIdentity, SigningKey};
use serde_json::{Value, json};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/trust-vectors.json");

fn regenerate() -> bool {
    std::env::var_os("KLEF_REGENERATE_TRUST_VECTORS").is_some_and(|v| v == "1")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key} in {v}"))
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(s(v, key)).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn key32(v: &Value, key: &str) -> [u8; 32] {
    bytes(v, key).try_into().expect("32 bytes")
}

/// The inputs of every case, used when the file does not exist yet.
fn default_inputs() -> Value {
    json!({
        "encoding": [
            {"label": "example", "fields": ["", "00", "68656c6c6f"]},
            {"label": "secret-value", "fields": ["0f8fad5bd9cb469fa16570867728950e", "4150495f4b4559"]},
        ],
        "identity": [
            {
                "master_key": "00".repeat(32),
                "account_id": "00000000-0000-4000-8000-000000000000",
                "x25519_private": "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
            },
            {
                "master_key": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "account_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
                "x25519_private": "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
            },
        ],
    })
}

/// Computes every output of `cases` from its inputs.
fn compute(mut cases: Value) -> Value {
    for case in cases["encoding"].as_array_mut().unwrap() {
        let label: &'static str = Box::leak(s(case, "label").to_owned().into_boxed_str());
        let mut w = Labelled::new(label);
        for f in case["fields"].as_array().unwrap() {
            w.push_field(&hex::decode(f.as_str().unwrap()).unwrap());
        }
        case["bytes"] = json!(hex::encode(w.finish()));
    }
    for case in cases["identity"].as_array_mut().unwrap() {
        let master = SymmetricKey::from_bytes(Box::new(key32(case, "master_key")));
        let account = AccountId::from_str(s(case, "account_id")).unwrap();
        let signing = SigningKey::derive_identity(&master, &account);
        let x25519 = PrivateKey::from_bytes(Box::new(key32(case, "x25519_private"))).public_key();
        let identity = PublicIdentity {
            account,
            identity_key: signing.verifying_key(),
            x25519_key: x25519,
        };
        case["identity_public"] = json!(hex::encode(identity.identity_key.to_bytes()));
        case["x25519_public"] = json!(hex::encode(x25519.0));
        case["fingerprint"] = json!(identity.fingerprint().to_string());
    }
    cases
}

#[test]
fn trust_vectors() {
    let stored: Option<Value> = std::fs::read_to_string(FILE)
        .ok()
        .map(|text| serde_json::from_str(&text).expect("trust-vectors.json is JSON"));
    let inputs = stored.clone().unwrap_or_else(default_inputs);
    let computed = compute(inputs);
    if regenerate() {
        let text = serde_json::to_string_pretty(&computed).unwrap() + "\n";
        std::fs::write(FILE, text).expect("write trust-vectors.json");
        return;
    }
    let stored = stored.unwrap_or_else(|| {
        panic!("{FILE} is missing: run with KLEF_REGENERATE_TRUST_VECTORS=1 to create it")
    });
    for section in ["encoding", "identity"] {
        let (want, got) = (&stored[section], &computed[section]);
        assert!(
            want.as_array().is_some_and(|a| !a.is_empty()),
            "section {section} is empty"
        );
        for (i, (w, g)) in want
            .as_array()
            .unwrap()
            .iter()
            .zip(got.as_array().unwrap())
            .enumerate()
        {
            assert_eq!(w, g, "{section}[{i}] differs from the known answer");
        }
    }
}

#[test]
fn fingerprints_in_the_file_parse_back() {
    let text = std::fs::read_to_string(FILE).expect("trust-vectors.json");
    let file: Value = serde_json::from_str(&text).unwrap();
    for case in file["identity"].as_array().unwrap() {
        let fp = Fingerprint::from_str(s(case, "fingerprint")).unwrap();
        assert_eq!(fp.to_string(), s(case, "fingerprint"));
        let spaced = s(case, "fingerprint").replace('-', " ").to_uppercase();
        assert_eq!(Fingerprint::from_str(&spaced).unwrap(), fp);
    }
}
