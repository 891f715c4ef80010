//! Known-answer vectors for the trust records (DESIGN.md §9, docs/crypto.md (trust records)),
//! table-driven from `tests/data/trust-vectors.json`: every case holds its inputs and the
//! expected outputs; this test recomputes the outputs through klef-core's public API.
//!
//! To regenerate after a deliberate format change (then review the diff and bump the format):
//! `KLEF_REGENERATE_TRUST_VECTORS=1 cargo nextest run -p klef-core -E 'binary(trust_vectors)'`.
//! `tests/data/check_trust_vectors.py` recomputes the hashes, derivations and signatures with an
//! independent implementation (Python `cryptography`).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr as _;

use klef_core::crypto::{PrivateKey, SymmetricKey};
use klef_core::ids::{AccountId, ApiKeyId, EnvironmentId, InviteId, ProjectId, WorkspaceId};
use klef_core::model::Role;
use klef_core::secrecy::ExposeSecret as _;
use klef_core::trust::account_state::{AccountState, WorkspacePins};
use klef_core::trust::api_key::{CiAnchor, SplitSecret};
use klef_core::trust::encoding::Labelled;
use klef_core::trust::identity::{Fingerprint, PublicIdentity, Signature, SigningKey};
use klef_core::trust::manifest::project::{ProjectBody, SignedProjectRecord, verify_project};
use klef_core::trust::manifest::{
    Authority, Expected, KeyCommitment, ManifestBody, ManifestHash, ManifestHead, SignedManifest,
    ValueRef, verify_update,
};
use klef_core::trust::roster::invite::{InviteCode, VerificationCode};
use klef_core::trust::roster::{
    Access, EntryBody, EntryHash, MemberRecord, Permission, PrincipalId, Record, RosterAnchor,
    RosterHead, Scope, SignedEntry, SystemKeyRecord, VerifiedRoster,
};
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
        "roster": [{
            "workspace_id": "20000000-0000-4000-8000-000000000001",
            "project_id": "30000000-0000-4000-8000-000000000001",
            "environment_id": "40000000-0000-4000-8000-000000000001",
            "owner": {"account_id": "00000000-0000-4000-8000-000000000001", "master_key": "01".repeat(32),
                      "x25519_private": "65".repeat(32), "email": "olivia@example.com"},
            "admin": {"account_id": "00000000-0000-4000-8000-000000000002", "master_key": "02".repeat(32),
                      "x25519_private": "66".repeat(32), "email": "adam@example.com"},
            "member": {"account_id": "00000000-0000-4000-8000-000000000003", "master_key": "03".repeat(32),
                      "x25519_private": "67".repeat(32), "email": "mia@example.com"},
            "system_key": {"key_id": "10000000-0000-4000-8000-000000000004", "secret": "04".repeat(32)},
        }],
        "invite": [{
            "genesis_hash": "ab".repeat(32),
            "secret": "000102030405060708090a0b0c0d0e0f",
            "workspace_id": "20000000-0000-4000-8000-000000000001",
            "invite_id": "50000000-0000-4000-8000-000000000001",
            "identity": 0,
        }],
        "key_commitment": [{
            "key": "11".repeat(32),
            "environment_id": "40000000-0000-4000-8000-000000000001",
            "project_id": "30000000-0000-4000-8000-000000000001",
            "key_version": 3,
        }],
        "api_key": [{
            "secret": "00".repeat(32),
            "key_id": "10000000-0000-4000-8000-000000000004",
            "workspace_id": "20000000-0000-4000-8000-000000000001",
            "genesis_hash": "ab".repeat(32),
            "roster_sequence": 7,
            "roster_hash": "cd".repeat(32),
        }],
        "account_state": [{
            "master_key": "01".repeat(32),
            "account_id": "00000000-0000-4000-8000-000000000001",
            "workspace_id": "20000000-0000-4000-8000-000000000001",
            "genesis_hash": "ab".repeat(32),
            "roster_sequence": 7,
            "roster_hash": "cd".repeat(32),
            "environment_id": "40000000-0000-4000-8000-000000000001",
            "revision": 12,
            "manifest_hash": "ef".repeat(32),
            "key_version": 2,
            "project_id": "30000000-0000-4000-8000-000000000001",
            "project_revision": 3,
            "project_record_hash": "12".repeat(32),
            "project_key_version": 1,
        }],
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
    let identities = cases["identity"].clone();
    for case in cases["roster"].as_array_mut().unwrap() {
        compute_roster(case);
    }
    for case in cases["invite"].as_array_mut().unwrap() {
        let code = InviteCode::from_parts(
            EntryHash(key32(case, "genesis_hash")),
            bytes(case, "secret").try_into().unwrap(),
        );
        let who = &identities[usize::try_from(case["identity"].as_u64().unwrap()).unwrap()];
        let identity = PublicIdentity {
            account: AccountId::from_str(s(who, "account_id")).unwrap(),
            identity_key: klef_core::trust::identity::VerifyingKey::from_bytes(&key32(
                who,
                "identity_public",
            ))
            .unwrap(),
            x25519_key: klef_core::crypto::PublicKey(key32(who, "x25519_public")),
        };
        let ws = WorkspaceId::from_str(s(case, "workspace_id")).unwrap();
        let invite = InviteId::from_str(s(case, "invite_id")).unwrap();
        case["code"] = json!(code.to_text().expose_secret());
        case["mac"] = json!(hex::encode(code.mac(&ws, &invite, &identity).0));
    }
    for case in cases["key_commitment"].as_array_mut().unwrap() {
        let key = SymmetricKey::from_bytes(Box::new(key32(case, "key")));
        let env = EnvironmentId::from_str(s(case, "environment_id")).unwrap();
        let project = ProjectId::from_str(s(case, "project_id")).unwrap();
        let version = case["key_version"].as_u64().unwrap();
        case["environment_commitment"] = json!(hex::encode(
            KeyCommitment::environment(&key, &env, version).0
        ));
        case["project_commitment"] = json!(hex::encode(
            KeyCommitment::project(&key, &project, version).0
        ));
    }
    for case in cases["api_key"].as_array_mut().unwrap() {
        let secret = SplitSecret::new(key32(case, "secret"));
        let bearer = secret.bearer();
        case["bearer"] = json!(hex::encode(bearer.expose()));
        case["bearer_hash"] = json!(bearer.hash_hex());
        case["x25519_public"] = json!(hex::encode(secret.x25519().1.0));
        case["ed25519_public"] =
            json!(hex::encode(secret.signing_key().verifying_key().to_bytes()));
        let key_id = ApiKeyId::from_str(s(case, "key_id")).unwrap();
        let anchor = CiAnchor {
            workspace: WorkspaceId::from_str(s(case, "workspace_id")).unwrap(),
            genesis: EntryHash(key32(case, "genesis_hash")),
            head: RosterHead {
                sequence: case["roster_sequence"].as_u64().unwrap(),
                hash: EntryHash(key32(case, "roster_hash")),
            },
        };
        // AEAD output is randomised: keep the stored envelope while it still opens to the
        // same anchor, so regenerating does not churn the file.
        let keep = case["sealed_anchor"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .filter(|sealed| secret.open_anchor(&key_id, sealed) == Ok(anchor));
        let sealed = keep.unwrap_or_else(|| secret.seal_anchor(&key_id, &anchor));
        case["sealed_anchor"] = json!(hex::encode(sealed));
    }
    for case in cases["account_state"].as_array_mut().unwrap() {
        let master = SymmetricKey::from_bytes(Box::new(key32(case, "master_key")));
        let account = AccountId::from_str(s(case, "account_id")).unwrap();
        let state = AccountState {
            workspaces: BTreeMap::from([(
                WorkspaceId::from_str(s(case, "workspace_id")).unwrap(),
                WorkspacePins {
                    genesis: EntryHash(key32(case, "genesis_hash")),
                    roster: RosterHead {
                        sequence: case["roster_sequence"].as_u64().unwrap(),
                        hash: EntryHash(key32(case, "roster_hash")),
                    },
                    environments: BTreeMap::from([(
                        EnvironmentId::from_str(s(case, "environment_id")).unwrap(),
                        ManifestHead {
                            revision: case["revision"].as_u64().unwrap(),
                            hash: ManifestHash(key32(case, "manifest_hash")),
                            key_version: case["key_version"].as_u64().unwrap(),
                        },
                    )]),
                    projects: BTreeMap::from([(
                        ProjectId::from_str(s(case, "project_id")).unwrap(),
                        ManifestHead {
                            revision: case["project_revision"].as_u64().unwrap(),
                            hash: ManifestHash(key32(case, "project_record_hash")),
                            key_version: case["project_key_version"].as_u64().unwrap(),
                        },
                    )]),
                },
            )]),
            personal: BTreeMap::new(),
        };
        case["plaintext"] = json!(hex::encode(state.encode()));
        let keep = case["sealed"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .filter(|sealed| AccountState::open(&master, &account, sealed).as_ref() == Ok(&state));
        let sealed = keep.unwrap_or_else(|| state.seal(&master, &account));
        case["sealed"] = json!(hex::encode(sealed));
    }
    cases
}

struct Keys {
    account: AccountId,
    key: SigningKey,
    x25519: PrivateKey,
    email: String,
}

fn keys(v: &Value) -> Keys {
    let account = AccountId::from_str(s(v, "account_id")).unwrap();
    let master = SymmetricKey::from_bytes(Box::new(key32(v, "master_key")));
    Keys {
        account,
        key: SigningKey::derive_identity(&master, &account),
        x25519: PrivateKey::from_bytes(Box::new(key32(v, "x25519_private"))),
        email: s(v, "email").to_owned(),
    }
}

fn member_record(k: &Keys, role: Role, access: Access) -> MemberRecord {
    MemberRecord {
        account: k.account,
        email: k.email.clone(),
        identity_key: k.key.verifying_key(),
        x25519_key: k.x25519.public_key(),
        role,
        access,
    }
}

fn member(k: &Keys, role: Role, access: Access) -> Record {
    Record::Member(member_record(k, role, access))
}

/// A five-entry roster (every record kind) and a manifest made under its head.
fn compute_roster(case: &mut Value) {
    let ws = WorkspaceId::from_str(s(case, "workspace_id")).unwrap();
    let project = ProjectId::from_str(s(case, "project_id")).unwrap();
    let env = EnvironmentId::from_str(s(case, "environment_id")).unwrap();
    let (owner, admin, mia) = (
        keys(&case["owner"]),
        keys(&case["admin"]),
        keys(&case["member"]),
    );
    let sys = SplitSecret::new(key32(&case["system_key"], "secret"));
    let sys_id = ApiKeyId::from_str(s(&case["system_key"], "key_id")).unwrap();
    let owner_record = member_record(&owner, Role::Owner, Access::All);
    let (genesis, mut roster) = VerifiedRoster::create(ws, owner_record, &owner.key).unwrap();
    let mut entries = vec![genesis];
    let steps: Vec<(Record, &Keys)> = vec![
        (member(&admin, Role::Admin, Access::All), &owner),
        (
            member(&mia, Role::Member, Access::Only(BTreeSet::from([env]))),
            &admin,
        ),
        (
            Record::SystemKey(SystemKeyRecord {
                key: sys_id,
                x25519_key: sys.x25519().1,
                signing_key: sys.signing_key().verifying_key(),
                scopes: BTreeSet::from([
                    Scope {
                        project,
                        environment: None,
                    },
                    Scope {
                        project,
                        environment: Some(env),
                    },
                ]),
                permission: Permission::ReadWrite,
                creator: admin.account,
            }),
            &admin,
        ),
        (Record::Removed(PrincipalId::SystemKey(sys_id)), &owner),
    ];
    for (record, signer) in steps {
        let (entry, next) = roster.append(record, signer.account, &signer.key).unwrap();
        entries.push(entry);
        roster = next;
    }
    case["entries"] = json!(
        entries
            .iter()
            .map(|e| json!({
                "body": hex::encode(&e.body),
                "signature": hex::encode(e.signature.0),
                "hash": hex::encode(e.hash().0),
            }))
            .collect::<Vec<_>>()
    );
    let code = roster.verification_code();
    case["verification_code"] = json!(format!("{} {code}", code.sequence));

    let env_key = SymmetricKey::from_bytes(Box::new([0x11; 32]));
    let manifest = ManifestBody {
        workspace: ws,
        project,
        project_name: "api".into(),
        environment: env,
        environment_name: "staging".into(),
        revision: 1,
        previous: ManifestHash::ZERO,
        key_version: 1,
        key_commitment: KeyCommitment::environment(&env_key, &env, 1),
        roster: Some(roster.head()),
        signer: PrincipalId::Member(admin.account),
        values: BTreeMap::from([
            ("API_KEY".to_owned(), ValueRef::new(1, b"ciphertext-1")),
            ("DB_URL".to_owned(), ValueRef::new(2, b"ciphertext-2")),
        ]),
    }
    .sign(&admin.key);
    let project_record = ProjectBody::first(
        ws,
        project,
        "api",
        &SymmetricKey::from_bytes(Box::new([0x22; 32])),
        1,
        roster.head(),
        PrincipalId::Member(owner.account),
    )
    .sign(&owner.key);
    case["project_record"] = json!({
        "project_key": hex::encode([0x22; 32]),
        "body": hex::encode(&project_record.body),
        "signature": hex::encode(project_record.signature.0),
        "hash": hex::encode(project_record.hash().0),
    });
    case["manifest"] = json!({
        "environment_key": hex::encode([0x11; 32]),
        "values": {"API_KEY": [1, hex::encode(b"ciphertext-1")], "DB_URL": [2, hex::encode(b"ciphertext-2")]},
        "body": hex::encode(&manifest.body),
        "signature": hex::encode(manifest.signature.0),
        "hash": hex::encode(manifest.hash().0),
    });
}

/// The stored roster and manifest bytes verify through the readers' code paths.
fn verify_stored_roster(case: &Value) {
    let entries: Vec<SignedEntry> = case["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| SignedEntry {
            body: bytes(e, "body"),
            signature: Signature::from_slice(&bytes(e, "signature")).unwrap(),
        })
        .collect();
    let anchor = RosterAnchor {
        workspace: WorkspaceId::from_str(s(case, "workspace_id")).unwrap(),
        genesis: EntryHash(key32(&case["entries"][0], "hash")),
        head: None,
    };
    let roster = VerifiedRoster::verify(&anchor, &entries).unwrap();
    for e in &entries {
        assert_eq!(EntryBody::parse(&e.body).unwrap().encode(), e.body);
    }
    let code: VerificationCode = roster.verification_code();
    assert_eq!(
        format!("{} {code}", code.sequence),
        s(case, "verification_code")
    );
    let p = &case["project_record"];
    let record = verify_project(
        anchor.workspace,
        ProjectId::from_str(s(case, "project_id")).unwrap(),
        "api",
        &roster,
        None,
        &[SignedProjectRecord {
            body: bytes(p, "body"),
            signature: Signature::from_slice(&bytes(p, "signature")).unwrap(),
        }],
    )
    .unwrap();
    record
        .check_key(&SymmetricKey::from_bytes(Box::new(key32(p, "project_key"))))
        .unwrap();
    let m = &case["manifest"];
    let signed = SignedManifest {
        body: bytes(m, "body"),
        signature: Signature::from_slice(&bytes(m, "signature")).unwrap(),
    };
    let expected = Expected {
        workspace: anchor.workspace,
        project: ProjectId::from_str(s(case, "project_id")).unwrap(),
        project_name: "api",
        environment: EnvironmentId::from_str(s(case, "environment_id")).unwrap(),
        environment_name: "staging",
    };
    let manifest = verify_update(&expected, &Authority::Roster(&roster), None, &[signed]).unwrap();
    manifest
        .check_key(&SymmetricKey::from_bytes(Box::new(key32(
            m,
            "environment_key",
        ))))
        .unwrap();
    let values: Vec<(String, u64, Vec<u8>)> = m["values"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, v)| {
            (
                name.clone(),
                v[0].as_u64().unwrap(),
                hex::decode(v[1].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    manifest
        .check_values(
            values
                .iter()
                .map(|(n, v, c)| (n.as_str(), *v, c.as_slice())),
        )
        .unwrap();
}

#[test]
fn trust_vectors() {
    let stored: Option<Value> = std::fs::read_to_string(FILE)
        .ok()
        .map(|text| serde_json::from_str(&text).expect("trust-vectors.json is JSON"));
    // Sections added since the file was written take their default inputs.
    let mut inputs = stored.clone().unwrap_or_else(default_inputs);
    for (section, value) in default_inputs().as_object().unwrap() {
        if inputs.get(section).is_none() {
            inputs[section] = value.clone();
        }
    }
    let computed = compute(inputs);
    if regenerate() {
        let text = serde_json::to_string_pretty(&computed).unwrap() + "\n";
        std::fs::write(FILE, text).expect("write trust-vectors.json");
        return;
    }
    let stored = stored.unwrap_or_else(|| {
        panic!("{FILE} is missing: run with KLEF_REGENERATE_TRUST_VECTORS=1 to create it")
    });
    for section in [
        "encoding",
        "identity",
        "roster",
        "invite",
        "key_commitment",
        "api_key",
        "account_state",
    ] {
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
    for case in stored["roster"].as_array().unwrap() {
        verify_stored_roster(case);
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
