//! Micro-benchmarks of klef-core's hot paths, run by `cargo xtask bench` (which reads the
//! results from `target/criterion/<group>/<name>/new/estimates.json`, so keep the ids stable):
//!
//! * `kdf/argon2id_default` — [`derive_kek`] at [`default_kdf_params`] (the unlock cost);
//! * `value/encrypt_1KiB`, `value/encrypt_1MiB`, `value/decrypt_1KiB`, `value/decrypt_1MiB` —
//!   [`encrypt_value`] / [`decrypt_value`];
//! * `key/unwrap` — [`unwrap_key`] of an HPKE-wrapped environment key;
//! * `dotenv/parse_10k`, `dotenv/render_10k` — [`dotenv::parse`] / [`dotenv::render`] of a
//!   10,000-line `.env` (what `klef push` / `klef pull` do with a large environment).
//!
//! Run one by hand with `cargo bench -p klef-core --bench core -- value/`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use klef_core::crypto::{
    Aad, SymmetricKey, decrypt_value, default_kdf_params, derive_kek, encrypt_value,
    generate_keypair, unwrap_key, wrap_key,
};
use klef_core::dotenv::{self, Format};
use klef_core::ids::EnvironmentId;
use secrecy::SecretString;

/// Lines in the large `.env` benchmark.
const DOTENV_LINES: usize = 10_000;

fn kdf(c: &mut Criterion) {
    let params = default_kdf_params();
    let password = SecretString::from("correct horse battery staple");
    let mut group = c.benchmark_group("kdf");
    // One derivation takes a few hundred milliseconds: flat sampling with the minimum sample
    // count keeps the run short without changing what is measured.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500));
    group.bench_function("argon2id_default", |b| {
        b.iter(|| derive_kek(black_box(&password), black_box(&params)).expect("valid params"));
    });
    group.finish();
}

fn value(c: &mut Criterion) {
    let key = SymmetricKey::generate();
    let env = EnvironmentId::random();
    let mut group = c.benchmark_group("value");
    for (label, len) in [("1KiB", 1024_usize), ("1MiB", 1024 * 1024)] {
        let plaintext = vec![0x5a_u8; len];
        let ciphertext = encrypt_value(&key, &env, "DATABASE_URL", &plaintext);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("encrypt_{label}"), |b| {
            b.iter(|| encrypt_value(&key, &env, black_box("DATABASE_URL"), black_box(&plaintext)));
        });
        group.bench_function(format!("decrypt_{label}"), |b| {
            b.iter(|| {
                decrypt_value(
                    &key,
                    &env,
                    black_box("DATABASE_URL"),
                    black_box(&ciphertext),
                )
                .expect("the envelope was made with this key")
            });
        });
    }
    group.finish();
}

fn key(c: &mut Criterion) {
    let (private, public) = generate_keypair();
    let env = EnvironmentId::random();
    let env_key = SymmetricKey::generate();
    let aad = Aad::EnvironmentKey(&env);
    let envelope = wrap_key(&public, &env_key, &aad);
    let mut group = c.benchmark_group("key");
    group.bench_function("unwrap", |b| {
        b.iter(|| {
            unwrap_key(&private, black_box(&envelope), &aad, "the environment key")
                .expect("wrapped to this key pair")
        });
    });
    group.finish();
}

/// A 10,000-line `.env` mixing the quoting styles people use.
fn large_dotenv() -> String {
    let mut text = String::with_capacity(DOTENV_LINES * 48);
    for i in 0..DOTENV_LINES {
        // Writing to a String cannot fail.
        let _ = match i % 5 {
            0 => writeln!(text, "KEY_{i:05}=plain-value-{i}-abcdefghijklmnop"),
            1 => writeln!(text, "KEY_{i:05}='single quoted {i} $NOT_EXPANDED'"),
            2 => writeln!(text, "KEY_{i:05}=\"double quoted {i}\\nsecond line\""),
            3 => writeln!(text, "export KEY_{i:05}=exported-{i} # a comment"),
            _ => writeln!(text, "# comment line {i}\nKEY_{i:05}=after-comment-{i}"),
        };
    }
    text
}

fn dotenv_bench(c: &mut Criterion) {
    let text = large_dotenv();
    let entries = dotenv::parse(&text).expect("the generated file is valid");
    assert_eq!(entries.len(), DOTENV_LINES);
    let mut group = c.benchmark_group("dotenv");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("parse_10k", |b| {
        b.iter(|| dotenv::parse(black_box(&text)).expect("valid"));
    });
    group.bench_function("render_10k", |b| {
        b.iter(|| dotenv::render(black_box(&entries), Format::Dotenv));
    });
    group.finish();
}

criterion_group!(benches, kdf, value, key, dotenv_bench);
criterion_main!(benches);
