//! The labels of the trust records (DESIGN.md §9.5) are pairwise distinct, and exactly the
//! ones `docs/crypto.md` documents: a new or renamed label fails here
//! until the format record says so.

use std::collections::BTreeSet;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Label literals outside comments and test modules: `(writers, readers)`, where a writer is a
/// `Labelled::new("…")` literal or a `…LABEL: &str = "…"` constant and a reader is a
/// `Reader::new(bytes, "…")` literal.
fn labels_in_code(dir: &Path, writers: &mut Vec<String>, readers: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            labels_in_code(&path, writers, readers);
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (marker, is_writer) in [
                ("Labelled::new(\"", true),
                ("LABEL: &str = \"", true),
                ("Reader::new(bytes, \"", false),
            ] {
                for (at, _) in line.match_indices(marker) {
                    let rest = &line[at + marker.len()..];
                    let label = rest[..rest.find('"').unwrap()].to_owned();
                    if is_writer {
                        writers.push(label);
                    } else {
                        readers.push(label);
                    }
                }
            }
        }
    }
}

/// The backticked names of the record's "Labels in use" paragraph.
fn labels_in_record() -> BTreeSet<String> {
    let path = format!("{ROOT}/../../docs/crypto.md");
    let record = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (if the trust-record formats moved, update this test)")
    });
    let section = record.split("## Labels in use").nth(1).unwrap();
    let paragraph = section.split("HKDF infos").next().unwrap();
    paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.contains(' ') && !s.contains('.'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn labels_are_distinct_and_documented() {
    let (mut writers, mut readers) = (Vec::new(), Vec::new());
    labels_in_code(
        Path::new(&format!("{ROOT}/src/trust")),
        &mut writers,
        &mut readers,
    );
    let unique: BTreeSet<String> = writers.iter().cloned().collect();
    // Each label is written at exactly one place: no two kinds of object share one.
    assert_eq!(
        unique.len(),
        writers.len(),
        "a label is reused: {writers:?}"
    );
    assert!(unique.len() >= 12, "found only {unique:?}");
    for label in &readers {
        assert!(unique.contains(label), "{label} is read but never written");
    }
    assert_eq!(unique, labels_in_record());
    // No trust label collides with an AEAD label of `crypto::Aad`.
    for aead in [
        "master-key-by-password",
        "master-key-by-recovery",
        "private-key",
        "project-key",
        "environment-key",
        "secret-value",
        "other",
    ] {
        assert!(!unique.contains(aead), "{aead}");
    }
}
