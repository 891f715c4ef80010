//! Round-trip properties of `klef_core::dotenv`: every renderer's output read back by our own
//! parser (`.env`), the `dotenvy` crate (portable `.env` values), `serde_json`, a YAML parser,
//! and real POSIX shells (`eval`).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use klef_core::dotenv::{Entry, Format, Portability, parse, portability, render};
use proptest::prelude::*;

/// Characters that stress quoting: quotes, escapes, comment and expansion markers, whitespace
/// of every kind, line breaks, and non-ASCII.
const TRICKY: &[char] = &[
    'a', 'Z', '0', ' ', '\t', '\n', '\r', '\'', '"', '`', '\\', '#', '$', '=', '{', '}', 'n', 'r',
    ':', 'é', '✓', '😀', '\u{a0}', '\u{85}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{3000}',
    '\u{7f}', '\u{1}',
];

fn value_strategy() -> impl Strategy<Value = String> {
    let ch = prop_oneof![8 => prop::sample::select(TRICKY), 2 => any::<char>()];
    prop::collection::vec(ch, 0..40).prop_map(String::from_iter)
}

fn entries_strategy() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec(value_strategy(), 0..12).prop_map(|values| {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| Entry::new(format!("KEY_{i}"), v))
            .collect()
    })
}

/// The same tricky values, from a fixed seed, for the tests that run external programs once.
fn fixed_values(count: usize, seed: u64) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        usize::try_from((z ^ (z >> 31)) % 1_000_000).unwrap_or(0)
    };
    (0..count)
        .map(|_| {
            let len = next() % 24;
            (0..len).map(|_| TRICKY[next() % TRICKY.len()]).collect()
        })
        .collect()
}

fn as_pairs(entries: &[Entry]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| (e.name.clone(), e.value.to_string()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dotenv_reads_back_exactly(entries in entries_strategy()) {
        let text = render(&entries, Format::Dotenv);
        let back = parse(&text).map(|e| as_pairs(&e));
        prop_assert_eq!(back, Ok(as_pairs(&entries)), "{:?}", text.as_str());
    }

    #[test]
    fn dotenvy_reads_portable_values(entries in entries_strategy()) {
        let portable: Vec<Entry> =
            entries.into_iter().filter(|e| portability(&e.value) == Portability::Portable).collect();
        let text = render(&portable, Format::Dotenv);
        let read: Result<Vec<(String, String)>, _> =
            dotenvy::from_read_iter(text.as_bytes()).collect();
        prop_assert_eq!(read.map_err(|e| e.to_string()), Ok(as_pairs(&portable)), "{:?}", text.as_str());
    }

    #[test]
    fn json_reads_back(entries in entries_strategy()) {
        let text = render(&entries, Format::Json);
        let back: Result<BTreeMap<String, String>, _> = serde_json::from_str(&text);
        let expected: BTreeMap<String, String> = as_pairs(&entries).into_iter().collect();
        prop_assert_eq!(back.map_err(|e| e.to_string()), Ok(expected));
    }

    #[test]
    fn yaml_reads_back(entries in entries_strategy()) {
        let text = render(&entries, Format::Yaml);
        let docs = yaml_rust2::YamlLoader::load_from_str(&text);
        let docs = docs.map_err(|e| e.to_string());
        prop_assert!(docs.is_ok(), "{:?}: {:?}", text.as_str(), docs);
        let docs = docs.unwrap_or_default();
        prop_assert_eq!(docs.len(), 1);
        let Some(map) = docs[0].as_hash() else {
            return Err(TestCaseError::fail(format!("not a mapping: {:?}", text.as_str())));
        };
        let back: Vec<(String, String)> = map
            .iter()
            .map(|(k, v)| {
                (k.as_str().unwrap_or("<not a string>").to_owned(),
                 v.as_str().unwrap_or("<not a string>").to_owned())
            })
            .collect();
        prop_assert_eq!(back, as_pairs(&entries), "{:?}", text.as_str());
    }
}

#[test]
fn dotenvy_reads_every_portable_fixed_value() {
    let entries: Vec<Entry> = fixed_values(3000, 7)
        .into_iter()
        .filter(|v| portability(v) == Portability::Portable)
        .enumerate()
        .map(|(i, v)| Entry::new(format!("K{i}"), v))
        .collect();
    assert!(
        entries.len() > 500,
        "too few portable values: {}",
        entries.len()
    );
    let text = render(&entries, Format::Dotenv);
    let read: Vec<(String, String)> = dotenvy::from_read_iter(text.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("dotenvy failed: {e}"));
    assert_eq!(read, as_pairs(&entries));
}

#[test]
fn every_portability_level_is_generated() {
    let values = fixed_values(3000, 11);
    for level in [
        Portability::Portable,
        Portability::NodeOnly,
        Portability::KlefOnly,
    ] {
        let count = values.iter().filter(|v| portability(v) == level).count();
        assert!(count >= 20, "{level:?}: only {count} of 3000");
    }
}

/// Evaluates `render(.., Shell)` in `shell` and prints every value NUL-terminated.
fn eval_in_shell(shell: &str, entries: &[Entry]) -> Option<Vec<String>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("env.sh");
    std::fs::write(&file, render(entries, Format::Shell).as_bytes()).expect("write env.sh");
    let mut script = String::from("set -eu\neval \"$(cat \"$1\")\"\n");
    for e in entries {
        script.push_str("printf '%s\\0' \"$");
        script.push_str(&e.name);
        script.push_str("\"\n");
    }
    let child = match Command::new(shell)
        .arg("-c")
        .arg(&script)
        .arg(shell)
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("note: skipping {shell}: {e}");
            return None;
        }
    };
    let out = child.wait_with_output().expect("shell output");
    assert!(out.status.success(), "{shell} failed: {:?}", out.status);
    let text = String::from_utf8(out.stdout).expect("utf-8 from shell");
    let mut values: Vec<String> = text.split('\0').map(str::to_owned).collect();
    assert_eq!(values.pop().as_deref(), Some(""), "NUL-terminated output");
    Some(values)
}

#[test]
fn shell_output_evals_to_the_same_values() {
    let mut values: Vec<String> = fixed_values(400, 3)
        .into_iter()
        .filter(|v| !v.contains('\0'))
        .collect();
    values.extend(
        [
            "",
            "'",
            "''",
            "'\\''",
            "$(echo pwned)",
            "`echo pwned`",
            "a\nb\n",
            "\n",
            "\\",
            "!!",
            "${HOME}",
            "*",
        ]
        .map(str::to_owned),
    );
    let entries: Vec<Entry> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Entry::new(format!("K{i}"), v.clone()))
        .collect();
    let mut ran = 0;
    for shell in ["/bin/sh", "bash", "dash", "zsh"] {
        if let Some(got) = eval_in_shell(shell, &entries) {
            assert_eq!(got, values, "{shell}");
            ran += 1;
        }
    }
    assert!(ran > 0, "no POSIX shell found");
}
