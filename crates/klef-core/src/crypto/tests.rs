//! Known-answer vectors and properties of the crypto modules.

use proptest::prelude::*;
use secrecy::SecretString;
use serde::Deserialize;

use super::aead::{self, NONCE_LEN, seal_with_nonce};
use super::kdf::argon2id;
use super::*;
use crate::ids::{AccountId, EnvironmentId, ProjectId};
use crate::model::{Blob, KdfParams};

/// The raw AES-256-GCM envelope under an [`Aad`] (what `seal_key` and `encrypt_value` build on).
fn seal(key: &SymmetricKey, plaintext: &[u8], aad: &Aad<'_>) -> Vec<u8> {
    aead::seal(key, plaintext, &aad.to_bytes())
}

/// Opens [`seal`]'s envelope.
fn open(
    key: &SymmetricKey,
    envelope: &[u8],
    aad: &Aad<'_>,
    what: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    aead::open(key, envelope, &aad.to_bytes(), what)
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector hex")
}

fn fixed_key(b: u8) -> SymmetricKey {
    SymmetricKey::from_bytes(Box::new([b; 32]))
}

/// Cheap but valid KDF parameters (the floor) for tests.
pub(crate) fn floor_params() -> KdfParams {
    KdfParams {
        m_cost_kib: MIN_M_COST_KIB,
        t_cost: 1,
        p_cost: 1,
        ..default_kdf_params()
    }
}

#[derive(Deserialize)]
struct GcmFile {
    vectors: Vec<GcmVector>,
}

#[derive(Deserialize)]
struct GcmVector {
    name: String,
    key: String,
    nonce: String,
    plaintext: String,
    aad: String,
    ciphertext: String,
    tag: String,
}

/// AES-256-GCM known answers from the GCM specification, through Klef's envelope code.
#[test]
fn aes256gcm_known_answers() {
    let file: GcmFile =
        serde_json::from_str(include_str!("../../tests/data/aes256gcm.json")).unwrap();
    assert_eq!(file.vectors.len(), 4);
    for v in &file.vectors {
        let key = SymmetricKey::from_slice(&unhex(&v.key)).unwrap();
        let nonce: [u8; NONCE_LEN] = unhex(&v.nonce).try_into().unwrap();
        let aad = unhex(&v.aad);
        let pt = unhex(&v.plaintext);
        let mut expected = vec![SUITE_AES256GCM];
        expected.extend(unhex(&v.nonce));
        expected.extend(unhex(&v.ciphertext));
        expected.extend(unhex(&v.tag));

        let envelope = seal_with_nonce(&key, &nonce, &pt, &aad);
        assert_eq!(hex::encode(&envelope), hex::encode(&expected), "{}", v.name);
        let opened = aead::open(&key, &expected, &aad, "vector").unwrap();
        assert_eq!(opened.as_slice(), pt.as_slice(), "{}", v.name);

        let mut bad_tag = expected.clone();
        *bad_tag.last_mut().unwrap() ^= 1;
        assert_eq!(
            aead::open(&key, &bad_tag, &aad, "vector").unwrap_err(),
            CryptoError::Tampered {
                what: "vector".into()
            },
            "{}",
            v.name
        );
    }
}

#[derive(Deserialize)]
struct Argon2Vector {
    password: String,
    salt: String,
    secret: String,
    associated_data: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    tag: String,
}

/// RFC 9106 §5.3 through the same Argon2id call `derive_kek` makes (with secret and AD).
#[test]
fn argon2id_rfc9106_known_answer() {
    let v: Argon2Vector =
        serde_json::from_str(include_str!("../../tests/data/argon2id_rfc9106.json")).unwrap();
    let mut out = [0u8; 32];
    argon2id(
        &unhex(&v.password),
        &unhex(&v.salt),
        &unhex(&v.secret),
        &unhex(&v.associated_data),
        (v.m_cost_kib, v.t_cost, v.p_cost),
        &mut out,
    )
    .unwrap();
    assert_eq!(hex::encode(out), v.tag);
}

/// `derive_kek` is Argon2id with no secret and no AD over the UTF-8 password: pin one
/// output at the floor parameters so a change of encoding or algorithm is caught.
#[test]
fn derive_kek_is_stable() {
    let params = KdfParams {
        salt: Blob(vec![0x02; 16]),
        ..floor_params()
    };
    let kek = derive_kek(&SecretString::from("correct horse battery staple"), &params).unwrap();
    let mut raw = [0u8; 32];
    argon2id(
        b"correct horse battery staple",
        &[0x02; 16],
        &[],
        &[],
        (MIN_M_COST_KIB, 1, 1),
        &mut raw,
    )
    .unwrap();
    assert_eq!(kek.expose(), &raw);
    assert_eq!(
        hex::encode(kek.expose()),
        include_str!("../../tests/data/derive_kek_floor.hex").trim()
    );
    let other = derive_kek(
        &SecretString::from("correct horse battery stapler"),
        &params,
    )
    .unwrap();
    assert_ne!(kek.expose(), other.expose());
}

/// One run at the real defaults (m = 64 MiB, t = 3, p = 4); prints the time so
/// docs/crypto.md can quote it (`cargo test -p klef-core -- --nocapture derive_kek_default`).
#[test]
fn derive_kek_default_params() {
    let params = default_kdf_params();
    assert_eq!(
        (params.m_cost_kib, params.t_cost, params.p_cost),
        (65_536, 3, 4)
    );
    assert_eq!(params.salt.as_bytes().len(), 16);
    let started = std::time::Instant::now();
    let a = derive_kek(&SecretString::from("pw"), &params).unwrap();
    eprintln!("derive_kek at default params: {:?}", started.elapsed());
    let b = derive_kek(&SecretString::from("pw"), &floor_params()).unwrap();
    assert_ne!(a.expose(), b.expose());
    // Fresh salts differ.
    assert_ne!(default_kdf_params().salt, default_kdf_params().salt);
}

#[test]
fn kdf_params_are_bounded() {
    let pw = SecretString::from("pw");
    let cases = [
        KdfParams {
            m_cost_kib: MIN_M_COST_KIB - 1,
            ..floor_params()
        },
        KdfParams {
            m_cost_kib: MAX_M_COST_KIB + 1,
            ..floor_params()
        },
        KdfParams {
            t_cost: 0,
            ..floor_params()
        },
        KdfParams {
            t_cost: MAX_T_COST + 1,
            ..floor_params()
        },
        KdfParams {
            p_cost: 0,
            ..floor_params()
        },
        KdfParams {
            p_cost: MAX_P_COST + 1,
            ..floor_params()
        },
        KdfParams {
            salt: Blob(vec![1; 8]),
            ..floor_params()
        },
        KdfParams {
            salt: Blob(vec![1; 65]),
            ..floor_params()
        },
    ];
    for params in &cases {
        let err = derive_kek(&pw, params).err().expect("must be refused");
        assert!(
            matches!(err, CryptoError::InvalidKdfParams(_)),
            "{params:?}: {err:?}"
        );
    }
    assert!(validate_kdf_params(&floor_params()).is_ok());
    assert!(validate_kdf_params(&default_kdf_params()).is_ok());
    assert!(kdf_params_below_default(&floor_params()));
    assert!(!kdf_params_below_default(&default_kdf_params()));
}

#[test]
fn aad_encoding_is_pinned_and_distinct() {
    let env: EnvironmentId = "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap();
    let bytes = Aad::SecretValue {
        environment: &env,
        name: "API_KEY",
    }
    .to_bytes();
    let mut expected = b"klef/v1/secret-value\0".to_vec();
    expected.extend([0, 0, 0, 16]);
    expected.extend(env.0.as_bytes());
    expected.extend([0, 0, 0, 7]);
    expected.extend(b"API_KEY");
    assert_eq!(bytes, expected);

    let account = AccountId(env.0);
    let project = ProjectId(env.0);
    let all = [
        Aad::MasterKeyByPassword(&account).to_bytes(),
        Aad::MasterKeyByRecovery(&account).to_bytes(),
        Aad::PrivateKey(&account).to_bytes(),
        Aad::ProjectKey(&project).to_bytes(),
        Aad::EnvironmentKey(&env).to_bytes(),
        Aad::SecretValue {
            environment: &env,
            name: "",
        }
        .to_bytes(),
        Aad::SecretValue {
            environment: &env,
            name: "A",
        }
        .to_bytes(),
        Aad::Other("").to_bytes(),
        Aad::Other("backup").to_bytes(),
    ];
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn open_reports_malformed_and_unknown_suites() {
    let key = fixed_key(7);
    let aad = Aad::Other("test");
    assert_eq!(
        open(&key, &[], &aad, "x").unwrap_err(),
        CryptoError::Malformed { what: "x".into() }
    );
    assert_eq!(
        open(&key, &[SUITE_AES256GCM; 28], &aad, "x").unwrap_err(),
        CryptoError::Malformed { what: "x".into() }
    );
    assert_eq!(
        open(&key, &[0x7f; 64], &aad, "x").unwrap_err(),
        CryptoError::UnsupportedSuite(0x7f)
    );
    let (sk, pk) = generate_keypair();
    let wrapped = wrap_key(&pk, &key, &aad);
    assert_eq!(
        open(&key, wrapped.as_bytes(), &aad, "x").unwrap_err(),
        CryptoError::Malformed { what: "x".into() }
    );
    let sealed = seal(&key, b"abc", &aad);
    assert_eq!(sealed.len(), 1 + 12 + 3 + 16);
    assert!(matches!(
        unwrap_key(&sk, &WrappedKey::from_bytes(sealed), &aad, "x"),
        Err(CryptoError::Malformed { .. })
    ));
    assert!(matches!(
        unwrap_key(
            &sk,
            &WrappedKey::from_bytes(wrapped.as_bytes()[..1 + 32 + 15].to_vec()),
            &aad,
            "x"
        ),
        Err(CryptoError::Malformed { .. })
    ));
    assert_eq!(
        try_wrap_key(&pk, &key, &aad).unwrap().as_bytes().len(),
        1 + 32 + 32 + 16
    );
}

#[test]
fn values_are_bound_to_name_and_environment() {
    let key = fixed_key(1);
    let env = EnvironmentId::random();
    let other_env = EnvironmentId::random();
    let ct = encrypt_value(&key, &env, "API_KEY", b"s3cr3t");
    assert_eq!(
        decrypt_value(&key, &env, "API_KEY", &ct)
            .unwrap()
            .as_slice(),
        b"s3cr3t"
    );
    assert_eq!(
        decrypt_value(&key, &env, "OTHER_KEY", &ct).unwrap_err(),
        CryptoError::Tampered {
            what: "the value of OTHER_KEY".into()
        }
    );
    assert!(matches!(
        decrypt_value(&key, &other_env, "API_KEY", &ct),
        Err(CryptoError::Tampered { .. })
    ));
    assert!(matches!(
        decrypt_value(&fixed_key(2), &env, "API_KEY", &ct),
        Err(CryptoError::Tampered { .. })
    ));
    // Two seals of the same value differ (random nonce).
    assert_ne!(ct, encrypt_value(&key, &env, "API_KEY", b"s3cr3t"));
}

#[test]
fn keys_wrapped_to_one_context_do_not_open_in_another() {
    let (sk, pk) = generate_keypair();
    let (other_sk, _) = generate_keypair();
    let env_key = SymmetricKey::generate();
    let env = EnvironmentId::random();
    let other = EnvironmentId::random();
    let wrapped = wrap_key(&pk, &env_key, &Aad::EnvironmentKey(&env));
    assert_eq!(wrapped.as_bytes().len(), 1 + 32 + 32 + 16);
    assert_eq!(wrapped.as_bytes()[0], SUITE_HPKE_X25519_SHA256_AES256GCM);
    let opened = unwrap_key(&sk, &wrapped, &Aad::EnvironmentKey(&env), "k").unwrap();
    assert_eq!(opened.expose(), env_key.expose());
    for (key, aad) in [
        (&sk, Aad::EnvironmentKey(&other)),
        (&sk, Aad::ProjectKey(&ProjectId(env.0))),
        (&other_sk, Aad::EnvironmentKey(&env)),
    ] {
        assert_eq!(
            unwrap_key(key, &wrapped, &aad, "k").err(),
            Some(CryptoError::Tampered { what: "k".into() })
        );
    }
    let project_key = SymmetricKey::generate();
    let sealed = seal_key(&project_key, &env_key, &Aad::EnvironmentKey(&env));
    assert_eq!(
        open_key(&project_key, &sealed, &Aad::EnvironmentKey(&env), "k")
            .unwrap()
            .expose(),
        env_key.expose()
    );
}

#[test]
fn low_order_public_keys_are_refused() {
    // The all-zero point and the order-8 point from RFC 7748's discussion.
    let zero = [0u8; 32];
    let mut order8 = [0u8; 32];
    order8[0] = 1;
    for bad in [zero, order8] {
        assert!(matches!(
            PublicKey::from_slice(&bad),
            Err(CryptoError::Malformed { .. })
        ));
        assert!(try_wrap_key(&PublicKey(bad), &fixed_key(1), &Aad::Other("t")).is_err());
    }
    assert!(PublicKey::from_slice(&[1u8; 31]).is_err());
    let (_, pk) = generate_keypair();
    assert_eq!(PublicKey::from_slice(&pk.0).unwrap(), pk);
}

#[test]
fn fingerprint_format() {
    let pk = PublicKey([0u8; 32]);
    // SHA-256 of 32 zero bytes starts 66687aadf862bd776c8fc18b8e9f8e20.
    assert_eq!(pk.fingerprint(), "6668-7aad-f862-bd77-6c8f-c18b-8e9f-8e20");
    let (_, other) = generate_keypair();
    assert_ne!(other.fingerprint(), pk.fingerprint());
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
}

proptest! {
    #[test]
    fn seal_open_round_trip(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        label in "\\PC{0,40}",
        key in proptest::array::uniform32(any::<u8>()),
    ) {
        let key = SymmetricKey::from_bytes(Box::new(key));
        let aad = Aad::Other(&label);
        let env = seal(&key, &data, &aad);
        let opened = open(&key, &env, &aad, "t").unwrap();
        prop_assert_eq!(opened.as_slice(), data.as_slice());
        let other = format!("{label}!");
        prop_assert!(open(&key, &env, &Aad::Other(&other), "t").is_err());
    }

    #[test]
    fn any_flipped_bit_in_a_sealed_envelope_is_detected(
        data in proptest::collection::vec(any::<u8>(), 0..256),
        bit in any::<proptest::sample::Index>(),
    ) {
        let key = fixed_key(9);
        let aad = Aad::Other("flip");
        let mut env = seal(&key, &data, &aad);
        let i = bit.index(env.len() * 8);
        env[i / 8] ^= 1 << (i % 8);
        prop_assert!(open(&key, &env, &aad, "t").is_err());
    }

    #[test]
    fn any_flipped_bit_in_a_wrapped_key_is_detected(bit in any::<proptest::sample::Index>()) {
        let (sk, pk) = generate_keypair();
        let aad = Aad::Other("flip");
        let mut env = wrap_key(&pk, &fixed_key(3), &aad).into_bytes();
        let i = bit.index(env.len() * 8);
        env[i / 8] ^= 1 << (i % 8);
        prop_assert!(unwrap_key(&sk, &WrappedKey::from_bytes(env), &aad, "t").is_err());
    }

    #[test]
    fn wrap_unwrap_round_trip(key in proptest::array::uniform32(any::<u8>())) {
        let (sk, pk) = generate_keypair();
        let key = SymmetricKey::from_bytes(Box::new(key));
        let project = ProjectId::random();
        let env = wrap_key(&pk, &key, &Aad::ProjectKey(&project));
        let opened = unwrap_key(&sk, &env, &Aad::ProjectKey(&project), "t").unwrap();
        prop_assert_eq!(opened.expose(), key.expose());
    }

    #[test]
    fn swapped_names_never_open(a in "[A-Z_][A-Z0-9_]{0,20}", b in "[A-Z_][A-Z0-9_]{0,20}") {
        prop_assume!(a != b);
        let key = fixed_key(4);
        let env = EnvironmentId::random();
        let ct = encrypt_value(&key, &env, &a, b"v");
        prop_assert!(decrypt_value(&key, &env, &b, &ct).is_err());
    }
}
