//! Differential test against npm `dotenv` (pinned in `tests/node/package-lock.json`): a corpus
//! of real-world `.env` quirks must parse the same in node and in `klef_core::dotenv::parse`,
//! inputs node reads in surprising ways must be errors here, and node must read back what
//! `render(.., Format::Dotenv)` writes for every value that is not `Portability::KlefOnly`.
//!
//! Needs `node` and `tests/node/node_modules` (`npm ci --prefix tests/node`). Without them the
//! test fails when `CI=true` and is skipped with a note otherwise.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use klef_core::dotenv::{Entry, Format, Portability, parse, portability, render};

type Object = BTreeMap<String, String>;

/// Returns the path of `tests/node`, or `None` (after a skip note) when node is unavailable.
fn node_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/node");
    let has_module = dir.join("node_modules/dotenv/package.json").is_file();
    let has_node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_module && has_node {
        return Some(dir);
    }
    let missing = if has_node {
        "tests/node/node_modules"
    } else {
        "node"
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{missing} is missing: run `npm ci --prefix tests/node` (and install node) before the tests"
    );
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests.
    let note = format!(
        "note: skipping the node dotenv differential test: {missing} is missing \
         (run `npm ci --prefix tests/node`)\n"
    );
    let _ = std::io::stderr().write_all(note.as_bytes());
    None
}

/// Runs node `dotenv.parse` over each input and returns the objects in order.
fn node_parse(dir: &Path, inputs: &[&[u8]]) -> Vec<Object> {
    let tmp = tempfile::tempdir().expect("temp dir");
    let files: Vec<PathBuf> = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let file = tmp.path().join(format!("{i}.env"));
            std::fs::write(&file, input).expect("write corpus file");
            file
        })
        .collect();
    let out = Command::new("node")
        .arg(dir.join("parse.js"))
        .args(&files)
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 from node");
    let objects: Vec<Object> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("node printed a JSON object"))
        .collect();
    assert_eq!(objects.len(), inputs.len());
    objects
}

fn ours(input: &str) -> Result<Object, String> {
    parse(input)
        .map(|entries| {
            entries
                .into_iter()
                .map(|e| (e.name, e.value.to_string()))
                .collect()
        })
        .map_err(|e| e.to_string())
}

/// Inputs users write, which node reads without skipping a line and we accept.
const AGREED: &[(&str, &str)] = &[
    ("basic", "A=1\nB=hello\n"),
    ("unquoted with spaces", "GREETING=hello big   world  \n"),
    ("spaces around =", "  A   =   b  \n"),
    ("export", "export A=1\nexport   B='two'\n"),
    ("export as key", "export=x\n"),
    ("colon form", "A: one\nB:\t'two'\n"),
    (
        "inline comments",
        "A=1 # one\nB='x' # two\nC=\"y\"# three\nD= # empty\n",
    ),
    ("full-line comments", "# top\n   # indented\nA=1\n#B=2\n"),
    ("empty values", "A=\nB=''\nC=\"\"\nD=``\nE=   \n"),
    ("single quotes raw", "A='$HOME \\n \\\\ \"x\" `y`'\n"),
    ("double quote escapes", "A=\"line1\\nline2\\rend\\t\"\n"),
    (
        "double keeps other escapes",
        "A=\"c:\\\\dir \\$x \\\"q\\\"\"\n",
    ),
    ("backticks", "A=`it's \"both\"`\n"),
    ("quotes inside unquoted", "A=it's\nB=say \"hi\"\nC=a'b'c\n"),
    (
        "multi-line double",
        "KEY=\"-----BEGIN KEY-----\nabc\n# not a comment\n-----END KEY-----\"\nB=1\n",
    ),
    ("multi-line single", "A='one\ntwo\n'\nB=2\n"),
    ("multi-line backtick", "A=`one\n  two`\n"),
    ("crlf", "A=1\r\nB=\"x\r\ny\"\r\nC='z'\r\n"),
    ("lone cr", "A=1\rB=2\r"),
    ("no trailing newline", "A=1\nB=last"),
    ("blank lines", "\n\nA=1\n\n\n  \nB=2\n\n"),
    ("duplicates", "A=1\nB=2\nA=3\n"),
    ("bom", "\u{feff}A=1\n"),
    ("non-ascii", "A=héllo wörld ✓ 😀\nB='日本語'\n"),
    (
        "equals in value",
        "URL=postgres://u:p@h/db?x=1&y=2\nB='a=b'\n",
    ),
    ("dollar signs", "A=$HOME\nB=${X}\nC=\"$Y\"\n"),
    ("json in single quotes", "A='{\"k\": [1, 2]}'\n"),
    ("escaped quote pair", "A='it\\'s'\nB=\"say \\\"hi\\\"\"\n"),
    ("backslash before closing quote", "A='dir\\' # c\nB='x'\n"),
    ("tabs", "A=\tx\ty\t\n"),
    ("nbsp trimmed", "A=\u{a0}x\u{a0}\n"),
    ("hash after space", "A=abc #def\nB=abc\t#def\n"),
    ("value starting with hash", "A=#comment only\n"),
    ("key shapes", "_=1\na_b_C9=2\n"),
];

/// Inputs node reads without complaint but in a surprising way; we report the line instead.
const REJECTED: &[(&str, &str, usize)] = &[
    ("hash glued to value", "A=abc#def\n", 1),
    ("text after closing quote", "A=1\nB='it's'\n", 2),
    ("two quoted parts", "A=\"a\" \"b\"\n", 1),
    ("unterminated double", "A=\"abc\nB=2\n", 1),
    ("colon at end of line", "K:\nV=1\n", 1),
    ("dotted key", "APP.NAME=x\n", 1),
    ("dashed key", "MY-KEY=x\n", 1),
    ("garbage line", "A=1\nthis is not an assignment\nB=2\n", 2),
    ("value on next line", "A=\n'x'\n", 2),
];

#[test]
fn node_and_klef_agree_on_the_corpus() {
    let Some(dir) = node_dir() else { return };
    let inputs: Vec<&[u8]> = AGREED.iter().map(|(_, input)| input.as_bytes()).collect();
    let node = node_parse(&dir, &inputs);
    for ((what, input), node) in AGREED.iter().zip(node) {
        assert_eq!(ours(input), Ok(node), "{what}: {input:?}");
    }
}

#[test]
fn node_quirks_are_errors_here() {
    let Some(dir) = node_dir() else { return };
    let inputs: Vec<&[u8]> = REJECTED
        .iter()
        .map(|(_, input, _)| input.as_bytes())
        .collect();
    let node = node_parse(&dir, &inputs);
    for ((what, input, line), node) in REJECTED.iter().zip(node) {
        assert!(!node.is_empty(), "{what}: node read nothing from {input:?}");
        let err = parse(input).expect_err(what);
        assert_eq!(err.line, *line, "{what}: {err}");
    }
}

fn fixed_values(count: usize, seed: u64) -> Vec<String> {
    const TRICKY: &[char] = &[
        'a', 'Z', '0', ' ', '\t', '\n', '\r', '\'', '"', '`', '\\', '#', '$', '=', '{', '}', 'n',
        'r', ':', 'é', '✓', '😀', '\u{a0}', '\u{85}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{0}',
    ];
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

#[test]
fn node_reads_back_rendered_values() {
    let Some(dir) = node_dir() else { return };
    let mut values: Vec<String> = [
        "",
        "plain",
        " padded ",
        "it's",
        "say \"hi\"",
        "it's \"both\"",
        "`all' \"three\"`",
        "$HOME",
        "it's $HOME",
        "#hash",
        "a # b",
        "C:\\dir\\",
        "C:\\dir\\\\",
        "line\nbreak",
        "\n",
        "crlf\r\n",
        "\\n literal",
        "it's \\n",
        "'\"`\\n\r",
        "=",
        "héllo ✓ 😀",
        "\u{2028}",
        "x\u{feff}",
    ]
    .map(str::to_owned)
    .to_vec();
    values.extend(fixed_values(2000, 5));
    // Two files with different neighbours for every value.
    let forward: Vec<Entry> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Entry::new(format!("K{i}"), v.clone()))
        .collect();
    let mut backward = forward.clone();
    backward.reverse();
    let files = [
        render(&forward, Format::Dotenv),
        render(&backward, Format::Dotenv),
    ];
    let inputs: Vec<&[u8]> = files.iter().map(|f| f.as_bytes()).collect();
    let mut checked = 0;
    for node in node_parse(&dir, &inputs) {
        assert_eq!(node.len(), forward.len(), "node lost or merged keys");
        for entry in &forward {
            let got = node.get(&entry.name).map(String::as_str);
            if portability(&entry.value) == Portability::KlefOnly {
                assert!(got.is_some(), "{}", entry.name);
            } else {
                assert_eq!(
                    got,
                    Some(entry.value.as_str()),
                    "{} ({:?})",
                    entry.name,
                    entry.value
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 3000, "only {checked} values checked");
}

/// Random files built from the grammar's tokens: wherever we accept one, node must agree.
#[test]
fn node_agrees_whenever_klef_accepts_random_input() {
    const TOKENS: &[&str] = &[
        "A", "B", "export ", "=", ": ", ":", " = ", "'", "\"", "`", "\\", "\\n", "\\r", "#", " #c",
        " ", "\t", "\n", "\r\n", "\r", "x", "y z", "$X", "é", "\u{a0}", "\u{2028}", "\n# c\n",
        "A=", "B='", "A=\"",
    ];
    let Some(dir) = node_dir() else { return };
    let mut state = 42_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        usize::try_from((z ^ (z >> 31)) % 1_000_000).unwrap_or(0)
    };
    let inputs: Vec<String> = (0..4000)
        .map(|_| {
            let len = 1 + next() % 14;
            (0..len).map(|_| TOKENS[next() % TOKENS.len()]).collect()
        })
        .collect();
    let bytes: Vec<&[u8]> = inputs.iter().map(String::as_bytes).collect();
    let mut accepted = 0;
    for (input, node) in inputs.iter().zip(node_parse(&dir, &bytes)) {
        if let Ok(ours) = ours(input) {
            assert_eq!(ours, node, "{input:?}");
            accepted += 1;
        }
    }
    assert!(
        accepted > 400,
        "only {accepted} of 4000 random inputs accepted"
    );
}
