//! Crypto integration tests through klef-core's public API: published known-answer vectors
//! (RFC 7748, RFC 9180), interoperability vectors sealed by an independent implementation
//! (`tests/data/generate_interop.py`), a golden account, and the account lifecycle.

use std::convert::Infallible;

use hpke::rand_core::{TryCryptoRng, TryRng};
use hpke::{Deserializable as _, Kem as _, Serializable as _};
use klef_core::crypto::account::{self, UnlockedAccount};
use klef_core::crypto::recovery::RecoveryCode;
use klef_core::crypto::{
    self, Aad, CryptoError, MIN_M_COST_KIB, PrivateKey, PublicKey, SealedValue, SymmetricKey,
    WrappedKey,
};
use klef_core::ids::{AccountId, EnvironmentId, ProjectId};
use klef_core::model::{AccountKeys, Blob, KdfParams};
use klef_core::secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

fn data(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn hex_field(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(v[key].as_str().unwrap_or_else(|| panic!("missing {key}"))).unwrap()
}

fn private_key(bytes: &[u8]) -> PrivateKey {
    PrivateKey::from_bytes(Box::new(bytes.try_into().unwrap()))
}

/// Cheap KDF parameters (the accepted floor) so account tests stay fast.
fn floor_params() -> KdfParams {
    KdfParams {
        m_cost_kib: MIN_M_COST_KIB,
        t_cost: 1,
        p_cost: 1,
        ..crypto::default_kdf_params()
    }
}

#[test]
fn x25519_rfc7748_public_keys() {
    let file = data("x25519.json");
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    for v in vectors {
        let sk = private_key(&hex_field(v, "private"));
        assert_eq!(
            sk.public_key().0.to_vec(),
            hex_field(v, "public"),
            "{}",
            v["name"]
        );
        assert!(PublicKey::from_slice(&hex_field(v, "public")).is_ok());
    }
}

/// An RNG that returns fixed bytes: lets the hpke crate's `*_with_rng` API reproduce the
/// RFC's ephemeral key (the crate derives it as `DeriveKeyPair(random(32))`, and the RFC's
/// `ikmE` is exactly that input).
struct FixedRng(Vec<u8>);

impl TryRng for FixedRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("hpke only asks for bytes")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("hpke only asks for bytes")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(dst.len() <= self.0.len(), "fixed RNG exhausted");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}

impl TryCryptoRng for FixedRng {}

/// RFC 9180 A.1.1: the KEM (DHKEM(X25519, HKDF-SHA256)), KDF and key schedule Klef uses,
/// reproduced bit for bit, including the encapsulation (deterministic through `ikmE`).
#[test]
fn hpke_rfc9180_a1_base_mode() {
    type Kem = hpke::kem::X25519HkdfSha256;
    type Kdf = hpke::kdf::HkdfSha256;
    type Aead = hpke::aead::AesGcm128;
    let v = data("hpke_rfc9180_a1.json");

    // The crate keeps X25519 private keys clamped (RFC 7748 §5), the RFC prints them raw.
    let clamped = |mut sk: Vec<u8>| {
        sk[0] &= 0xf8;
        sk[31] &= 0x7f;
        sk[31] |= 0x40;
        sk
    };
    let (sk_r, pk_r) = Kem::derive_keypair(&hex_field(&v, "ikmR"));
    assert_eq!(sk_r.to_bytes().to_vec(), clamped(hex_field(&v, "skRm")));
    assert_eq!(pk_r.to_bytes().to_vec(), hex_field(&v, "pkRm"));
    let (sk_e, pk_e) = Kem::derive_keypair(&hex_field(&v, "ikmE"));
    assert_eq!(sk_e.to_bytes().to_vec(), clamped(hex_field(&v, "skEm")));
    assert_eq!(pk_e.to_bytes().to_vec(), hex_field(&v, "pkEm"));
    // Klef's own X25519 agrees with the RFC's key pair.
    assert_eq!(
        private_key(&hex_field(&v, "skRm")).public_key().0.to_vec(),
        hex_field(&v, "pkRm")
    );

    let info = hex_field(&v, "info");
    let mut rng = FixedRng(hex_field(&v, "ikmE"));
    let (enc, mut sender) =
        hpke::setup_sender_with_rng::<Aead, Kdf, Kem>(&hpke::OpModeS::Base, &pk_r, &info, &mut rng)
            .unwrap();
    assert_eq!(enc.to_bytes().to_vec(), hex_field(&v, "enc"));

    let sk_r = <Kem as hpke::Kem>::PrivateKey::from_bytes(&hex_field(&v, "skRm")).unwrap();
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&hex_field(&v, "enc")).unwrap();
    let mut receiver =
        hpke::setup_receiver::<Aead, Kdf, Kem>(&hpke::OpModeR::Base, &sk_r, &enc, &info).unwrap();
    for e in v["encryptions"].as_array().unwrap() {
        let (aad, pt, ct) = (hex_field(e, "aad"), hex_field(e, "pt"), hex_field(e, "ct"));
        assert_eq!(sender.seal(&pt, &aad).unwrap(), ct, "seq {}", e["seq"]);
        assert_eq!(receiver.open(&ct, &aad).unwrap(), pt, "seq {}", e["seq"]);
    }
}

/// Envelopes sealed by pyca/cryptography (OpenSSL) with Klef's suite and AAD encoding open
/// here: checks the HPKE suite, the info/aad choice, the envelope layout and the AAD bytes
/// against an independent implementation.
#[test]
fn interop_with_an_independent_implementation() {
    let v = data("interop.json");
    let sk = private_key(&hex_field(&v, "private_key"));
    assert_eq!(sk.public_key().0.to_vec(), hex_field(&v, "public_key"));
    let env: EnvironmentId = v["environment_id"].as_str().unwrap().parse().unwrap();
    let project: ProjectId = v["project_id"].as_str().unwrap().parse().unwrap();

    let env_key = crypto::unwrap_key(
        &sk,
        &WrappedKey::from_bytes(hex_field(&v, "wrapped_environment_key")),
        &Aad::EnvironmentKey(&env),
        "the environment key",
    )
    .unwrap();
    assert_eq!(env_key.expose().to_vec(), hex_field(&v, "environment_key"));
    let project_key = crypto::unwrap_key(
        &sk,
        &WrappedKey::from_bytes(hex_field(&v, "wrapped_project_key")),
        &Aad::ProjectKey(&project),
        "the project key",
    )
    .unwrap();
    assert_eq!(project_key.expose().to_vec(), hex_field(&v, "project_key"));
    // The same envelope in another context is refused.
    assert!(matches!(
        crypto::unwrap_key(
            &sk,
            &WrappedKey::from_bytes(hex_field(&v, "wrapped_environment_key")),
            &Aad::EnvironmentKey(&EnvironmentId(project.0)),
            "k"
        ),
        Err(CryptoError::Tampered { .. })
    ));

    let name = v["secret_name"].as_str().unwrap();
    let value = crypto::decrypt_value(
        &env_key,
        &env,
        name,
        &SealedValue::from_bytes(hex_field(&v, "sealed_value")),
    )
    .unwrap();
    assert_eq!(value.to_vec(), hex_field(&v, "secret_value"));
    assert_eq!(
        crypto::decrypt_value(
            &env_key,
            &env,
            "OTHER",
            &SealedValue::from_bytes(hex_field(&v, "sealed_value"))
        )
        .err(),
        Some(CryptoError::Tampered {
            what: "the value of OTHER".into()
        })
    );
}

/// An account created by an earlier build (`tests/data/golden_account.json`) still unlocks
/// with its password and its recovery code: the stored format is stable.
#[test]
fn golden_account_still_unlocks() {
    let v = data("golden_account.json");
    let id: AccountId = v["account_id"].as_str().unwrap().parse().unwrap();
    let keys: AccountKeys = serde_json::from_value(v["keys"].clone()).unwrap();
    let password = SecretString::from(v["password"].as_str().unwrap());
    let unlocked = account::unlock(&id, &keys, &password).unwrap();
    assert_eq!(
        unlocked.master_key.expose().to_vec(),
        hex_field(&v, "master_key")
    );
    assert_eq!(
        unlocked.private_key.public_key().0.to_vec(),
        keys.public_key.0
    );
    let code = RecoveryCode::parse(v["recovery_code"].as_str().unwrap()).unwrap();
    let recovered = account::unlock_with_recovery(&id, &keys, &code).unwrap();
    assert_eq!(recovered.master_key.expose(), unlocked.master_key.expose());
    assert_eq!(
        account::unlock(&id, &keys, &SecretString::from("not it"))
            .err()
            .map(|e| e.to_string()),
        Some("wrong password".to_owned())
    );
}

fn assert_wrong_password(result: Result<UnlockedAccount, CryptoError>) {
    match result {
        Err(CryptoError::WrongPassword) => {}
        Err(other) => panic!("expected WrongPassword, got {other:?}"),
        Ok(_) => panic!("expected WrongPassword, got an unlocked account"),
    }
}

#[test]
fn account_lifecycle() {
    let id = AccountId::random();
    let pw = SecretString::from("correct horse battery staple");
    let (keys, code, unlocked) = account::create_with_params(&id, &pw, floor_params()).unwrap();
    assert_eq!(
        keys.public_key.0,
        unlocked.private_key.public_key().0.to_vec()
    );

    let again = account::unlock(&id, &keys, &pw).unwrap();
    assert_eq!(again.master_key.expose(), unlocked.master_key.expose());
    assert_eq!(again.private_key.expose(), unlocked.private_key.expose());

    assert_wrong_password(account::unlock(&id, &keys, &SecretString::from("wrong")));
    assert_wrong_password(account::unlock_with_recovery(
        &id,
        &keys,
        &RecoveryCode::generate(),
    ));
    // The same sealed keys under another account id do not open (bound to the account).
    assert_wrong_password(account::unlock(&AccountId::random(), &keys, &pw));

    let parsed = RecoveryCode::parse(code.display().expose_secret()).unwrap();
    let recovered = account::unlock_with_recovery(&id, &keys, &parsed).unwrap();
    assert_eq!(recovered.master_key.expose(), unlocked.master_key.expose());

    // Password change: only the password copy and the KDF change; defaults are raised.
    let new_pw = SecretString::from("a new password");
    let resealed = account::reseal_with_password(&id, &keys, &recovered, &new_pw).unwrap();
    assert_eq!(resealed.master_key_by_recovery, keys.master_key_by_recovery);
    assert_eq!(resealed.public_key, keys.public_key);
    assert_eq!(resealed.private_key_sealed, keys.private_key_sealed);
    assert_ne!(resealed.master_key_by_password, keys.master_key_by_password);
    assert_eq!(
        (
            resealed.kdf.m_cost_kib,
            resealed.kdf.t_cost,
            resealed.kdf.p_cost
        ),
        (
            crypto::DEFAULT_M_COST_KIB,
            crypto::DEFAULT_T_COST,
            crypto::DEFAULT_P_COST
        )
    );
    assert_ne!(resealed.kdf.salt, keys.kdf.salt);
    assert_wrong_password(account::unlock(&id, &resealed, &pw));
    let after = account::unlock(&id, &resealed, &new_pw).unwrap();
    assert_eq!(after.master_key.expose(), unlocked.master_key.expose());
    // The recovery code still works after a password change.
    assert!(account::unlock_with_recovery(&id, &resealed, &parsed).is_ok());
}

#[test]
fn account_tampering_is_not_reported_as_a_wrong_password() {
    let id = AccountId::random();
    let pw = SecretString::from("pw");
    let (keys, _, unlocked) = account::create_with_params(&id, &pw, floor_params()).unwrap();

    let mut sealed_private = keys.clone();
    let last = sealed_private.private_key_sealed.0.len() - 1;
    sealed_private.private_key_sealed.0[last] ^= 1;
    assert!(matches!(
        account::unlock(&id, &sealed_private, &pw),
        Err(CryptoError::Tampered { .. })
    ));

    let mut swapped_public = keys.clone();
    swapped_public.public_key = Blob(crypto::generate_keypair().1.0.to_vec());
    assert!(matches!(
        account::unlock(&id, &swapped_public, &pw),
        Err(CryptoError::Tampered { .. })
    ));

    let mut weak = keys.clone();
    weak.kdf.m_cost_kib = 64;
    assert!(matches!(
        account::unlock(&id, &weak, &pw),
        Err(CryptoError::InvalidKdfParams(_))
    ));

    let mut unknown = keys.clone();
    unknown.master_key_by_password.0[0] = 0x42;
    assert_eq!(
        account::unlock(&id, &unknown, &pw).err(),
        Some(CryptoError::UnsupportedSuite(0x42))
    );

    // Re-sealing someone else's master key is refused rather than locking the person out.
    let foreign = UnlockedAccount {
        master_key: SymmetricKey::generate(),
        private_key: unlocked.private_key.clone(),
    };
    assert!(matches!(
        account::reseal_with_password(&id, &keys, &foreign, &pw),
        Err(CryptoError::Tampered { .. })
    ));
}

/// Writes a fresh golden account when `KLEF_WRITE_GOLDEN=1` (then commit the file); otherwise
/// checks the file exists. Run: `KLEF_WRITE_GOLDEN=1 cargo test -p klef-core --test crypto`.
#[test]
fn golden_account_file() {
    let path = format!(
        "{}/tests/data/golden_account.json",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("KLEF_WRITE_GOLDEN").is_some() {
        let id = AccountId::random();
        let password = "golden password ✓";
        let (keys, code, unlocked) =
            account::create_with_params(&id, &SecretString::from(password), floor_params())
                .unwrap();
        let out = serde_json::json!({
            "note": "written by golden_account_file with KLEF_WRITE_GOLDEN=1; floor KDF params",
            "account_id": id.to_string(),
            "password": password,
            "recovery_code": code.display().expose_secret(),
            "master_key": hex::encode(unlocked.master_key.expose()),
            "keys": keys,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap() + "\n").unwrap();
    }
    assert!(std::path::Path::new(&path).exists(), "{path} is missing");
}

#[test]
fn password_change_never_lowers_stronger_kdf_params() {
    let id = AccountId::random();
    let pw = SecretString::from("pw");
    let strong = KdfParams {
        t_cost: crypto::DEFAULT_T_COST + 1,
        ..crypto::default_kdf_params()
    };
    let (keys, _, unlocked) = account::create_with_params(&id, &pw, strong).unwrap();
    let resealed =
        account::reseal_with_password(&id, &keys, &unlocked, &SecretString::from("new")).unwrap();
    assert_eq!(resealed.kdf.t_cost, crypto::DEFAULT_T_COST + 1, "kept");
    assert_eq!(resealed.kdf.m_cost_kib, crypto::DEFAULT_M_COST_KIB);
    assert_ne!(resealed.kdf.salt, keys.kdf.salt, "fresh salt");
}
