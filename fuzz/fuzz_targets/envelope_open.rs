//! Fuzzes envelope opening and recovery-code parsing.
//!
//! * Arbitrary bytes given to [`open_key`], [`open_private_key`], [`decrypt_value`] and
//!   [`unwrap_key`] under fixed keys must be rejected with `Tampered`, `Malformed` or
//!   `UnsupportedSuite`, never a panic.
//! * The input as a value: encrypting then decrypting gives it back, and flipping any one bit
//!   of the envelope makes decrypting fail. The same for sealed and HPKE-wrapped keys.
//! * A public key read with [`PublicKey::from_slice`] can always be wrapped to.
//! * The input as a typed recovery code: a code that parses prints back to a code that parses
//!   to the same key.
#![no_main]

use std::sync::OnceLock;

use klef_core::crypto::recovery::RecoveryCode;
use klef_core::crypto::{
    Aad, CryptoError, PrivateKey, PublicKey, SealedKey, SealedValue, SymmetricKey, WrappedKey,
    decrypt_value, encrypt_value, open_key, open_private_key, seal_key, try_wrap_key, unwrap_key,
};
use klef_core::ids::{AccountId, EnvironmentId, ProjectId};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret as _;

const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

/// The public key of the fixed private key, computed once.
static OUR_PUBLIC: OnceLock<PublicKey> = OnceLock::new();

/// The context picked by the input's first byte, so every AAD layout gets exercised.
fn aad_for<'a>(
    selector: u8,
    account: &'a AccountId,
    project: &'a ProjectId,
    environment: &'a EnvironmentId,
) -> Aad<'a> {
    match selector % 7 {
        0 => Aad::MasterKeyByPassword(account),
        1 => Aad::MasterKeyByRecovery(account),
        2 => Aad::PrivateKey(account),
        3 => Aad::ProjectKey(project),
        4 => Aad::EnvironmentKey(environment),
        5 => Aad::SecretValue {
            environment,
            name: "API_KEY",
        },
        _ => Aad::Other("fuzz"),
    }
}

/// Flips bit `bit` (modulo the envelope's length in bits) of `envelope`.
fn flip(envelope: &[u8], bit: usize) -> Vec<u8> {
    let mut out = envelope.to_vec();
    let bit = bit % (out.len() * 8);
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

fn is_rejection(e: &CryptoError) -> bool {
    matches!(
        e,
        CryptoError::Tampered { .. }
            | CryptoError::Malformed { .. }
            | CryptoError::UnsupportedSuite(_)
    )
}

fuzz_target!(|data: &[u8]| {
    let (Ok(account), Ok(project), Ok(environment)) = (
        ID.parse::<AccountId>(),
        ID.parse::<ProjectId>(),
        ID.parse::<EnvironmentId>(),
    ) else {
        panic!("the fixed id must parse");
    };
    let key = SymmetricKey::from_bytes(Box::new([0x42; 32]));
    let private = PrivateKey::from_bytes(Box::new([0x24; 32]));
    let selector = data.first().copied().unwrap_or(0);
    let aad = aad_for(selector, &account, &project, &environment);

    // Arbitrary bytes as an envelope: an error of the documented kinds, never a panic. (The
    // seed corpus holds genuine envelopes under these keys, which do open.)
    for result in [
        open_private_key(&key, &SealedKey::from_bytes(data.to_vec()), &aad, "fuzz private key")
            .map(|_| ()),
        open_key(&key, &SealedKey::from_bytes(data.to_vec()), &aad, "fuzz key").map(|_| ()),
        decrypt_value(&key, &environment, "API_KEY", &SealedValue::from_bytes(data.to_vec()))
            .map(|_| ()),
        unwrap_key(&private, &WrappedKey::from_bytes(data.to_vec()), &aad, "fuzz wrapped key")
            .map(|_| ()),
    ] {
        if let Err(err) = result {
            assert!(is_rejection(&err), "unexpected error kind: {err:?}");
        }
    }

    // The input as a value: encrypt/decrypt round-trips and any bit flip is caught.
    let sealed = encrypt_value(&key, &environment, "API_KEY", data);
    let opened = decrypt_value(&key, &environment, "API_KEY", &sealed)
        .expect("a sealed value must open");
    assert_eq!(opened.as_slice(), data);
    let bit = data.iter().map(|&b| usize::from(b)).sum::<usize>();
    let flipped = SealedValue::from_bytes(flip(sealed.as_bytes(), bit));
    let err = decrypt_value(&key, &environment, "API_KEY", &flipped)
        .expect_err("a modified envelope was accepted");
    assert!(is_rejection(&err));

    if let Ok(inner) = SymmetricKey::from_slice(data.get(..32).unwrap_or_default()) {
        let sealed = seal_key(&key, &inner, &aad);
        let back = open_key(&key, &sealed, &aad, "sealed key").expect("a sealed key must open");
        assert_eq!(back.expose(), inner.expose());

        // X25519 is slow next to everything else here: do the HPKE checks for a quarter of the
        // inputs each, chosen by the selector byte, so the cheap parsers get most executions.
        match selector / 7 % 4 {
            0 => {
                let public = OUR_PUBLIC.get_or_init(|| private.public_key());
                let wrapped = try_wrap_key(public, &inner, &aad).expect("our own public key works");
                let back = unwrap_key(&private, &wrapped, &aad, "wrapped key")
                    .expect("a wrapped key must unwrap");
                assert_eq!(back.expose(), inner.expose());
                let flipped = WrappedKey::from_bytes(flip(wrapped.as_bytes(), bit));
                match unwrap_key(&private, &flipped, &aad, "flipped") {
                    Ok(_) => panic!("a modified wrapped key was accepted"),
                    Err(err) => assert!(is_rejection(&err), "unexpected error kind: {err:?}"),
                }
            }
            1 => {
                // Any public key that passes validation can be wrapped to.
                if let Ok(public) = PublicKey::from_slice(&data[..32]) {
                    try_wrap_key(&public, &inner, &aad)
                        .expect("a validated public key must be usable");
                }
            }
            _ => {}
        }
    }

    // The input as a typed recovery code.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(code) = RecoveryCode::parse(text)
    {
        let printed = code.display();
        let again = RecoveryCode::parse(printed.expose_secret()).expect("a printed code parses");
        let (Ok(a), Ok(b)) = (code.recovery_key(), again.recovery_key()) else {
            panic!("a parsed code must give a recovery key");
        };
        assert_eq!(a.expose(), b.expose(), "the printed code is another code");
    }
});
