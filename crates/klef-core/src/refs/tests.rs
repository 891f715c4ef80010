//! Unit and property tests of reference resolution.

use proptest::prelude::*;

use super::*;

fn entries(pairs: &[(&str, &str)]) -> Vec<Entry> {
    pairs.iter().map(|(k, v)| Entry::new(*k, *v)).collect()
}

/// Resolves `entries` with other environments served from `others` (`None` = no access).
fn resolve_with(
    entries: &[Entry],
    others: &[(EnvAddr, Option<Vec<Entry>>)],
) -> Result<(Vec<Entry>, Vec<EnvAddr>), RefError> {
    let mut r = Resolver::new("my-app", "development", entries);
    let mut loaded = Vec::new();
    loop {
        match r.resolve_all(entries)? {
            Outcome::Done(out) => return Ok((out, loaded)),
            Outcome::Need(addr) => {
                assert!(!loaded.contains(&addr), "{addr:?} asked for twice");
                loaded.push(addr.clone());
                let found = others.iter().find(|(a, _)| *a == addr);
                let value = match found {
                    None => Err(Unreadable::EnvironmentNotFound),
                    Some((_, None)) => Err(Unreadable::NoAccess),
                    Some((_, Some(e))) => Ok(e.clone()),
                };
                r.provide(addr, value);
            }
        }
    }
}

fn value<'a>(out: &'a [Entry], name: &str) -> &'a str {
    out.iter()
        .find(|e| e.name == name)
        .expect("entry")
        .value
        .as_str()
}

fn env(project: Option<&str>, env: &str) -> EnvAddr {
    EnvAddr {
        project: project.map(str::to_owned),
        env: env.to_owned(),
    }
}

#[test]
fn parses_the_three_forms_and_the_escape() {
    let p = parse("a${K}b${staging.K2}c${other app/prod.K3}$${LIT}$$ $x").unwrap();
    assert_eq!(
        p,
        vec![
            Piece::Text("a"),
            Piece::Ref(Reference {
                project: None,
                env: None,
                key: "K".into()
            }),
            Piece::Text("b"),
            Piece::Ref(Reference {
                project: None,
                env: Some("staging".into()),
                key: "K2".into()
            }),
            Piece::Text("c"),
            Piece::Ref(Reference {
                project: Some("other app".into()),
                env: Some("prod".into()),
                key: "K3".into()
            }),
            Piece::Text("${"),
            Piece::Text("LIT}$$ $x"),
        ]
    );
    assert_eq!(
        Reference::parse("other app/prod.K3").unwrap().to_string(),
        "other app/prod.K3"
    );
}

#[test]
fn malformed_references_are_errors_with_an_offset() {
    for (bad, offset) in [
        ("x${", 1),
        ("${A", 0),
        ("ab${}", 2),
        ("${1A}", 0),
        ("${Staging.A}", 0),
        ("${p/A}", 0),
        ("${/e.A}", 0),
        ("${A:-x}", 0),
        ("${ A }", 0),
    ] {
        let e = parse(bad).unwrap_err();
        assert_eq!(e.offset, offset, "{bad}");
    }
}

#[test]
fn resolves_same_environment_and_builds_urls() {
    let e = entries(&[
        ("DB_USER", "app"),
        ("DB_HOST", "db.internal"),
        ("DB_URL", "postgres://${DB_USER}@${DB_HOST}/app"),
        ("NESTED", "[${DB_URL}]"),
        ("LITERAL", "$${DB_HOST} costs $$5"),
    ]);
    let (out, loaded) = resolve_with(&e, &[]).unwrap();
    assert!(loaded.is_empty());
    assert_eq!(value(&out, "DB_URL"), "postgres://app@db.internal/app");
    assert_eq!(value(&out, "NESTED"), "[postgres://app@db.internal/app]");
    assert_eq!(value(&out, "LITERAL"), "${DB_HOST} costs $$5");
}

#[test]
fn other_environments_are_loaded_once_and_read_relative_to_themselves() {
    let e = entries(&[
        ("A", "${staging.URL}"),
        ("B", "${staging.HOST}:${staging.PORT}"),
        ("C", "${billing/production.KEY}"),
    ]);
    let staging = entries(&[
        ("URL", "https://${HOST}:${PORT}"),
        ("HOST", "stg"),
        ("PORT", "${production.PORT}"),
    ]);
    let prod = entries(&[("PORT", "443")]);
    let billing = entries(&[("KEY", "${OTHER}"), ("OTHER", "bk")]);
    let (out, loaded) = resolve_with(
        &e,
        &[
            (env(None, "staging"), Some(staging)),
            (env(None, "production"), Some(prod)),
            (env(Some("billing"), "production"), Some(billing)),
        ],
    )
    .unwrap();
    assert_eq!(value(&out, "A"), "https://stg:443");
    assert_eq!(value(&out, "B"), "stg:443");
    assert_eq!(value(&out, "C"), "bk");
    assert_eq!(loaded.len(), 3);
}

#[test]
fn a_reference_to_the_own_project_by_name_is_the_same_environment() {
    let e = entries(&[("A", "${my-app/development.B}"), ("B", "b")]);
    let (out, loaded) = resolve_with(&e, &[]).unwrap();
    assert_eq!(value(&out, "A"), "b");
    assert!(loaded.is_empty());
}

#[test]
fn errors_name_the_chain() {
    let cycle = entries(&[("A", "${B}"), ("B", "x${A}")]);
    let err = resolve_with(&cycle, &[]).unwrap_err();
    assert_eq!(err.to_string(), "reference cycle: A → B → A");

    let self_ref = entries(&[("A", "${A}")]);
    assert_eq!(
        resolve_with(&self_ref, &[]).unwrap_err().to_string(),
        "reference cycle: A → A"
    );

    let missing = entries(&[("DB_URL", "${staging.DB_HOST}")]);
    let err = resolve_with(&missing, &[(env(None, "staging"), Some(entries(&[])))]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unresolved reference: DB_URL → staging.DB_HOST (not found)"
    );

    let err = resolve_with(&missing, &[(env(None, "staging"), None)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unresolved reference: DB_URL → staging.DB_HOST (no access)"
    );
    let err = resolve_with(&missing, &[]).unwrap_err();
    assert!(
        err.to_string().ends_with("(environment not found)"),
        "{err}"
    );

    let bad = entries(&[("A", "${B}"), ("B", "secret-${")]);
    let err = resolve_with(&bad, &[]).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid reference in A → B: "),
        "{err}"
    );
    assert!(!err.to_string().contains("secret-"), "{err}");
}

#[test]
fn cross_environment_cycles_are_found() {
    let e = entries(&[("A", "${staging.A}")]);
    let staging = entries(&[("A", "${development.A}")]);
    let err = resolve_with(&e, &[(env(None, "staging"), Some(staging))]).unwrap_err();
    assert_eq!(err.to_string(), "reference cycle: A → staging.A → A");
}

#[test]
fn depth_is_bounded() {
    let n = MAX_DEPTH + 5;
    let pairs: Vec<(String, String)> = (0..n)
        .map(|i| (format!("K{i}"), format!("${{K{}}}", i + 1)))
        .chain(std::iter::once((format!("K{n}"), "end".to_owned())))
        .collect();
    let e: Vec<Entry> = pairs.iter().map(|(k, v)| Entry::new(k, v)).collect();
    let err = resolve_with(&e, &[]).unwrap_err();
    assert!(matches!(err, RefError::TooDeep { .. }), "{err}");
}

#[test]
fn exponential_expansion_is_capped() {
    // K0 = ${K1}${K1}, K1 = ${K2}${K2}, …: K0 would be 2^30 bytes.
    let mut pairs: Vec<(String, String)> = (0..30)
        .map(|i| (format!("K{i}"), format!("${{K{0}}}${{K{0}}}", i + 1)))
        .collect();
    pairs.push(("K30".into(), "x".into()));
    let e: Vec<Entry> = pairs.iter().map(|(k, v)| Entry::new(k, v)).collect();
    let err = resolve_with(&e, &[]).unwrap_err();
    assert!(
        matches!(err, RefError::TooLarge { limit, .. } if limit == MAX_RESOLVED_LEN),
        "{err}"
    );

    // Many values each just under the per-value limit hit the total limit.
    let e = entries(&[
        ("A", "${X}"),
        ("B", "${X}${X}"),
        ("C", "${B}"),
        ("X", &"y".repeat(50)),
    ]);
    let mut r = Resolver::new("p", "e", &e).with_limits(100, 200);
    let Err(err) = r.resolve_all(&e) else {
        panic!("expected the total limit")
    };
    assert!(
        matches!(err, RefError::TooLarge { limit: 200, .. }),
        "{err}"
    );
}

/// Environments of random values, each a mix of text and references to keys `K0`…`K5` of
/// environments `development`/`staging` (so cycles, missing keys and chains all occur).
fn arb_env() -> impl Strategy<Value = Vec<(String, String)>> {
    let piece = prop_oneof![
        "[a-z $/{}.]{0,6}",
        (0..7u8).prop_map(|k| format!("${{K{k}}}")),
        (0..7u8).prop_map(|k| format!("${{staging.K{k}}}")),
        Just("$${".to_owned()),
        Just("${".to_owned()),
    ];
    let value = prop::collection::vec(piece, 0..5).prop_map(|p| p.concat());
    prop::collection::vec(value, 0..6).prop_map(|vals| {
        vals.into_iter()
            .enumerate()
            .map(|(i, v)| (format!("K{i}"), v))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any environment either resolves or fails with an error, and never asks for an
    /// environment twice.
    #[test]
    fn resolution_terminates(dev in arb_env(), stg in arb_env()) {
        let dev: Vec<Entry> = dev.iter().map(|(k, v)| Entry::new(k, v)).collect();
        let stg: Vec<Entry> = stg.iter().map(|(k, v)| Entry::new(k, v)).collect();
        let _ = resolve_with(&dev, &[(env(None, "staging"), Some(stg))]);
    }

    /// Resolved output without `${` resolves to itself.
    #[test]
    fn resolution_is_idempotent(dev in arb_env(), stg in arb_env()) {
        let dev: Vec<Entry> = dev.iter().map(|(k, v)| Entry::new(k, v)).collect();
        let stg: Vec<Entry> = stg.iter().map(|(k, v)| Entry::new(k, v)).collect();
        if let Ok((out, _)) = resolve_with(&dev, &[(env(None, "staging"), Some(stg))]) {
            let plain: Vec<Entry> = out.iter().filter(|e| !e.value.contains("${")).cloned().collect();
            let (again, loaded) = resolve_with(&plain, &[]).expect("plain values resolve");
            prop_assert!(loaded.is_empty());
            prop_assert_eq!(again, plain);
        }
    }

    /// Any string at all parses or fails cleanly, and a string without `${` is one text.
    #[test]
    fn parse_never_panics(s in any::<String>()) {
        match parse(&s) {
            Ok(pieces) if !s.contains("${") => {
                let text: String = pieces.iter().map(|p| match p {
                    Piece::Text(t) => *t,
                    Piece::Ref(_) => unreachable!(),
                }).collect();
                prop_assert_eq!(text, s);
            }
            Ok(_) => {}
            Err(e) => prop_assert!(e.offset < s.len()),
        }
    }
}
