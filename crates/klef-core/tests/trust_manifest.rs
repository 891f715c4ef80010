//! Signed environment manifests and key commitments (DESIGN.md §9.3) against a server that
//! rolls back, forks, swaps, drops, relabels, injects keys and replays removed writers.

mod trust_common;

use std::collections::BTreeMap;

use klef_core::crypto::SymmetricKey;
use klef_core::trust::manifest::{
    Authority, Expected, KeyCommitment, KeyCommitmentMismatch, Manifest, ManifestBody,
    ManifestError, ManifestHash, SignedManifest, ValueError, ValueRef, verify_update,
};
use klef_core::trust::roster::{PrincipalId, Record, WriterError};
use proptest::prelude::*;
use trust_common::{Person, Who, World};

fn env_key(byte: u8) -> SymmetricKey {
    SymmetricKey::from_bytes(Box::new([byte; 32]))
}

fn expected(world: &World) -> Expected<'_> {
    Expected {
        workspace: world.workspace,
        project: world.project,
        project_name: "api",
        environment: world.staging,
        environment_name: "staging",
    }
}

/// The first manifest of staging, signed by the admin (environment creation).
fn first(world: &World) -> ManifestBody {
    let body = ManifestBody::first(
        &expected(world),
        &env_key(1),
        1,
        Some(world.roster.head()),
        PrincipalId::Member(world.admin.account),
    );
    assert_eq!(
        body,
        ManifestBody {
            workspace: world.workspace,
            project: world.project,
            project_name: "api".into(),
            environment: world.staging,
            environment_name: "staging".into(),
            revision: 1,
            previous: ManifestHash::ZERO,
            key_version: 1,
            key_commitment: KeyCommitment::environment(&env_key(1), &world.staging, 1),
            roster: Some(world.roster.head()),
            signer: PrincipalId::Member(world.admin.account),
            values: BTreeMap::new(),
        }
    );
    body
}

fn verified(world: &World, chain: &[SignedManifest]) -> Manifest {
    verify_update(
        &expected(world),
        &Authority::Roster(&world.roster),
        None,
        chain,
    )
    .unwrap()
}

/// Staging: revision 1 by the admin (empty), revision 2 by Mia adding A and B.
struct Chain {
    world: World,
    manifests: Vec<SignedManifest>,
    values: Vec<(String, u64, Vec<u8>)>,
}

fn chain() -> Chain {
    let world = World::new();
    let r1 = first(&world).sign(&world.admin.key);
    let m1 = verified(&world, std::slice::from_ref(&r1));
    let values = vec![
        ("A".to_owned(), 1, b"ciphertext of A".to_vec()),
        ("B".to_owned(), 3, b"ciphertext of B".to_vec()),
    ];
    let mut body = m1.next_body(
        PrincipalId::Member(world.member.account),
        Some(world.roster.head()),
    );
    for (name, version, ct) in &values {
        body.values
            .insert(name.clone(), ValueRef::new(*version, ct));
    }
    let r2 = body.sign(&world.member.key);
    Chain {
        world,
        manifests: vec![r1, r2],
        values,
    }
}

fn served(values: &[(String, u64, Vec<u8>)]) -> Vec<(&str, u64, &[u8])> {
    values
        .iter()
        .map(|(n, v, c)| (n.as_str(), *v, c.as_slice()))
        .collect()
}

#[test]
fn a_fresh_client_verifies_from_an_admin_signed_manifest() {
    let c = chain();
    let newest = verified(&c.world, &c.manifests);
    assert_eq!(newest.body().revision, 2);
    assert_eq!(newest.head().revision, 2);
    assert_eq!(newest.head().hash, c.manifests[1].hash());
    newest.check_values(served(&c.values)).unwrap();
    newest.check_key(&env_key(1)).unwrap();
    assert_eq!(newest.check_key(&env_key(2)), Err(KeyCommitmentMismatch));

    // Starting at a member-signed manifest, a fresh client cannot tell who set the key.
    let err = verify_update(
        &expected(&c.world),
        &Authority::Roster(&c.world.roster),
        None,
        &c.manifests[1..],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ManifestError::Unauthorised {
                revision: 2,
                error: WriterError::NotAuthorised { .. }
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        verify_update(
            &expected(&c.world),
            &Authority::Roster(&c.world.roster),
            None,
            &[]
        ),
        Err(ManifestError::Empty)
    );
}

#[test]
fn heads_detect_rollback_fork_and_withheld_manifests() {
    let c = chain();
    let w = &c.world;
    let auth = Authority::Roster(&w.roster);
    let m1 = verified(w, &c.manifests[..1]);
    let m2 = verified(w, &c.manifests);
    let h1 = m1.head();
    let h2 = m2.head();

    assert_eq!(
        verify_update(&expected(w), &auth, Some(&h1), &c.manifests).unwrap(),
        m2
    );
    assert_eq!(
        verify_update(&expected(w), &auth, Some(&h2), &c.manifests[1..]).unwrap(),
        m2
    );
    // The head not re-served: withheld.
    assert_eq!(
        verify_update(&expected(w), &auth, Some(&h1), &c.manifests[1..]).unwrap_err(),
        ManifestError::Gap {
            expected: 1,
            found: 2
        }
    );
    // An older state than the head: rollback.
    assert_eq!(
        verify_update(&expected(w), &auth, Some(&h2), &c.manifests[..1]).unwrap_err(),
        ManifestError::Rollback { head: 2, served: 1 }
    );
    // Another revision 2: fork.
    let mut other = m1.next_body(PrincipalId::Member(w.member.account), Some(w.roster.head()));
    other
        .values
        .insert("A".into(), ValueRef::new(1, b"something else"));
    let fork = vec![c.manifests[0].clone(), other.sign(&w.member.key)];
    assert_eq!(
        verify_update(&expected(w), &auth, Some(&h2), &fork).unwrap_err(),
        ManifestError::Fork { revision: 2 }
    );
    // Revision 3 served without revision 2.
    let m3 = m2.next_body(PrincipalId::Member(w.member.account), Some(w.roster.head()));
    let gap = vec![c.manifests[0].clone(), m3.sign(&w.member.key)];
    assert_eq!(
        verify_update(&expected(w), &auth, Some(&h1), &gap).unwrap_err(),
        ManifestError::Gap {
            expected: 2,
            found: 3
        }
    );
    // A revision 2 that names another predecessor.
    let mut stray = m1.next_body(PrincipalId::Member(w.member.account), Some(w.roster.head()));
    stray.previous = ManifestHash([5; 32]);
    let broken = vec![c.manifests[0].clone(), stray.sign(&w.member.key)];
    assert_eq!(
        verify_update(&expected(w), &auth, Some(&h1), &broken).unwrap_err(),
        ManifestError::BrokenChain { revision: 2 }
    );
}

#[test]
fn names_must_be_the_ones_asked_for() {
    let c = chain();
    let w = &c.world;
    let auth = Authority::Roster(&w.roster);
    // Staging's real manifests asked for as production (by name or id).
    let as_production = Expected {
        environment_name: "production",
        ..expected(w)
    };
    assert_eq!(
        verify_update(&as_production, &auth, None, &c.manifests).unwrap_err(),
        ManifestError::WrongEnvironment {
            what: "environment name"
        }
    );
    let other_env = Expected {
        environment: w.production,
        ..expected(w)
    };
    assert_eq!(
        verify_update(&other_env, &auth, None, &c.manifests).unwrap_err(),
        ManifestError::WrongEnvironment {
            what: "environment"
        }
    );
    let other_project = Expected {
        project_name: "web",
        ..expected(w)
    };
    assert_eq!(
        verify_update(&other_project, &auth, None, &c.manifests).unwrap_err(),
        ManifestError::WrongEnvironment {
            what: "project name"
        }
    );
}

#[test]
fn keys_change_only_forward_and_only_by_admins() {
    let c = chain();
    let w = &c.world;
    let auth = Authority::Roster(&w.roster);
    let m2 = verified(w, &c.manifests);
    let admin = PrincipalId::Member(w.admin.account);
    let mia = PrincipalId::Member(w.member.account);

    // An admin's rotation to key version 2 verifies; the new key is the committed one.
    let rotation = m2.rotation_body(&env_key(2), admin, Some(w.roster.head()));
    assert_eq!(rotation.key_version, 2);
    assert_eq!(
        rotation.key_commitment,
        KeyCommitment::environment(&env_key(2), &w.staging, 2)
    );
    let mut chain = c.manifests.clone();
    chain.push(rotation.sign(&w.admin.key));
    let m3 = verify_update(&expected(w), &auth, Some(&m2.head()), &chain[1..]).unwrap();
    m3.check_key(&env_key(2)).unwrap();
    assert!(
        m3.check_key(&env_key(1)).is_err(),
        "the pre-rotation key is refused"
    );

    // The same rotation signed by a member (or the CI key): refused.
    let mut by_member = rotation.clone();
    by_member.signer = mia;
    let chain = vec![c.manifests[1].clone(), by_member.sign(&w.member.key)];
    assert!(matches!(
        verify_update(&expected(w), &auth, Some(&m2.head()), &chain),
        Err(ManifestError::Unauthorised { revision: 3, .. })
    ));
    // A new commitment under the same key version (an injected key): refused.
    let mut injected = m2.next_body(admin, Some(w.roster.head()));
    injected.key_commitment = KeyCommitment::environment(&env_key(9), &w.staging, 1);
    let chain = vec![c.manifests[1].clone(), injected.sign(&w.admin.key)];
    assert_eq!(
        verify_update(&expected(w), &auth, Some(&m2.head()), &chain).unwrap_err(),
        ManifestError::CommitmentChanged { revision: 3 }
    );
    // Back to key version 0 (serving a pre-rotation key): refused.
    let mut lowered = m2.next_body(admin, Some(w.roster.head()));
    lowered.key_version = 0;
    let chain = vec![c.manifests[1].clone(), lowered.sign(&w.admin.key)];
    assert_eq!(
        verify_update(&expected(w), &auth, Some(&m2.head()), &chain).unwrap_err(),
        ManifestError::KeyVersionLowered {
            revision: 3,
            key_version: 0
        }
    );
    // A head with a higher key version than what is served.
    let mut high = m2.head();
    high.key_version = 5;
    assert!(matches!(
        verify_update(&expected(w), &auth, Some(&high), &c.manifests[1..]),
        Err(ManifestError::KeyVersionLowered { .. })
    ));
}

#[test]
fn a_removed_writer_s_newest_manifest_is_refused_until_an_admin_re_signs() {
    let mut c = chain();
    let mia = PrincipalId::Member(c.world.member.account);
    c.world.append(Record::Removed(mia), Who::Admin);
    let w = &c.world;
    let auth = Authority::Roster(&w.roster);
    let err = verify_update(&expected(w), &auth, None, &c.manifests).unwrap_err();
    assert!(
        matches!(
            err,
            ManifestError::Unauthorised {
                revision: 2,
                error: WriterError::RevokedSince { sequence: 4, .. }
            }
        ),
        "{err:?}"
    );
    // A manifest Mia signs after her removal, naming the old roster head, is refused too.
    let m2 = verify_update(
        &expected(w),
        &Authority::Roster(&World::new().roster),
        None,
        &c.manifests,
    )
    .unwrap();
    let mut late = m2.next_body(mia, Some(c.manifests_roster_head()));
    late.values.remove("B");
    let mut forged = c.manifests.clone();
    forged.push(late.sign(&w.member.key));
    assert!(verify_update(&expected(w), &auth, None, &forged).is_err());
    // The admin re-signs (as `workspace remove` does): the chain verifies again.
    let resign = m2.next_body(PrincipalId::Member(w.admin.account), Some(w.roster.head()));
    let mut chain = c.manifests.clone();
    chain.push(resign.sign(&w.admin.key));
    let m3 = verify_update(&expected(w), &auth, None, &chain).unwrap();
    m3.check_values(served(&c.values)).unwrap();
}

impl Chain {
    /// The roster head the chain's manifests were made under (before any later entry).
    fn manifests_roster_head(&self) -> klef_core::trust::roster::RosterHead {
        ManifestBody::parse(&self.manifests[1].body)
            .unwrap()
            .roster
            .unwrap()
    }
}

#[test]
fn roster_references_never_go_back() {
    let mut c = chain();
    let old_head = c.manifests_roster_head();
    c.world.append(
        Record::Member(c.world.member.record(
            klef_core::model::Role::Member,
            klef_core::trust::roster::Access::All,
        )),
        Who::Admin,
    );
    let w = &c.world;
    let auth = Authority::Roster(&w.roster);
    let m2 = verified(w, &c.manifests);
    let m3 = m2.next_body(PrincipalId::Member(w.member.account), Some(w.roster.head()));
    let m3s = m3.sign(&w.member.key);
    let m3v = verify_update(
        &expected(w),
        &auth,
        Some(&m2.head()),
        &[c.manifests[1].clone(), m3s.clone()],
    )
    .unwrap();
    let back = m3v.next_body(PrincipalId::Member(w.member.account), Some(old_head));
    let chain = vec![m3s, back.sign(&w.member.key)];
    assert_eq!(
        verify_update(&expected(w), &auth, Some(&m3v.head()), &chain).unwrap_err(),
        ManifestError::RosterWentBack { revision: 4 }
    );
}

#[test]
fn every_served_value_must_match_the_manifest() {
    let c = chain();
    let m = verified(&c.world, &c.manifests);
    let good = served(&c.values);
    m.check_values(good.clone()).unwrap();
    let a = b"ciphertext of A".as_slice();
    let b = b"ciphertext of B".as_slice();

    // Two keys' values swapped.
    assert_eq!(
        m.check_values([("A", 1, b), ("B", 3, a)]).unwrap_err(),
        ValueError::Replaced { name: "A".into() }
    );
    // An older version replayed as the newest.
    assert_eq!(
        m.check_values([("A", 1, a), ("B", 2, b)]).unwrap_err(),
        ValueError::WrongVersion {
            name: "B".into(),
            listed: 3,
            served: 2
        }
    );
    // Dropped (tombstone or deleted row).
    assert_eq!(
        m.check_values([("A", 1, a)]).unwrap_err(),
        ValueError::Missing { name: "B".into() }
    );
    // Injected.
    assert_eq!(
        m.check_values([("A", 1, a), ("B", 3, b), ("C", 1, a)])
            .unwrap_err(),
        ValueError::Unlisted { name: "C".into() }
    );
    // Served twice.
    assert_eq!(
        m.check_values([("A", 1, a), ("A", 1, a), ("B", 3, b)])
            .unwrap_err(),
        ValueError::Duplicate { name: "A".into() }
    );
    // Overwritten in place with garbage.
    assert_eq!(
        m.check_value("A", 1, b"\x01garbage").unwrap_err(),
        ValueError::Replaced { name: "A".into() }
    );
    assert!(
        ValueError::Replaced { name: "A".into() }
            .to_string()
            .starts_with("A: ")
    );
}

#[test]
fn a_local_vault_accepts_only_its_owner() {
    let world = World::new();
    let owner = &world.owner;
    let auth = Authority::LocalOwner {
        account: owner.account,
        key: owner.key.verifying_key(),
    };
    let mut body = first(&world);
    body.roster = None;
    body.signer = PrincipalId::Member(owner.account);
    let m = verify_update(&expected(&world), &auth, None, &[body.sign(&owner.key)]).unwrap();
    assert_eq!(m.body().revision, 1);
    // Edited vault: signed by another key, another signer, or naming a roster.
    let mallory = Person::new(66, "m@example.com");
    assert_eq!(
        verify_update(&expected(&world), &auth, None, &[body.sign(&mallory.key)]).unwrap_err(),
        ManifestError::ForgedSignature { revision: 1 }
    );
    let mut other = body.clone();
    other.signer = PrincipalId::Member(mallory.account);
    assert_eq!(
        verify_update(&expected(&world), &auth, None, &[other.sign(&mallory.key)]).unwrap_err(),
        ManifestError::NotTheOwner { revision: 1 }
    );
    let mut with_roster = body.clone();
    with_roster.roster = Some(world.roster.head());
    assert_eq!(
        verify_update(
            &expected(&world),
            &auth,
            None,
            &[with_roster.sign(&owner.key)]
        )
        .unwrap_err(),
        ManifestError::NotTheOwner { revision: 1 }
    );
    // A workspace manifest without a roster reference.
    assert_eq!(
        verify_update(
            &expected(&world),
            &Authority::Roster(&world.roster),
            None,
            &[body.sign(&owner.key)]
        )
        .unwrap_err(),
        ManifestError::NoRoster { revision: 1 }
    );
}

#[test]
fn key_commitments_bind_key_environment_version_and_kind() {
    let world = World::new();
    let kc = KeyCommitment::environment(&env_key(1), &world.staging, 1);
    kc.check_environment(&env_key(1), &world.staging, 1)
        .unwrap();
    assert!(
        kc.check_environment(&env_key(1), &world.production, 1)
            .is_err()
    );
    assert!(
        kc.check_environment(&env_key(1), &world.staging, 2)
            .is_err()
    );
    assert!(
        kc.check_environment(&env_key(2), &world.staging, 1)
            .is_err()
    );
    let pk = KeyCommitment::project(&env_key(1), &world.project, 1);
    pk.check_project(&env_key(1), &world.project, 1).unwrap();
    assert!(pk.check_project(&env_key(2), &world.project, 1).is_err());
    // Same id bytes and version, other kind: different commitments.
    let same_bytes = klef_core::ids::EnvironmentId(world.project.0);
    assert_ne!(KeyCommitment::environment(&env_key(1), &same_bytes, 1), pk);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any flipped bit in a served manifest (body or signature) is refused.
    #[test]
    fn any_tampered_bit_is_refused(which in 0usize..2, at in any::<proptest::sample::Index>(), bit in 0u8..8, in_signature in any::<bool>()) {
        let c = chain();
        let mut chain = c.manifests.clone();
        if in_signature {
            chain[which].signature.0[at.index(64)] ^= 1 << bit;
        } else {
            let i = at.index(chain[which].body.len());
            chain[which].body[i] ^= 1 << bit;
        }
        let result = verify_update(&expected(&c.world), &Authority::Roster(&c.world.roster), None, &chain);
        prop_assert!(result.is_err());
    }

    /// Parsing arbitrary prefixes plus junk never panics, and what parses re-encodes exactly.
    #[test]
    fn parsing_is_total_and_canonical(cut in any::<proptest::sample::Index>(), junk in proptest::collection::vec(any::<u8>(), 0..8)) {
        let c = chain();
        let body = &c.manifests[1].body;
        let mut mangled = body[..cut.index(body.len() + 1)].to_vec();
        mangled.extend_from_slice(&junk);
        if let Ok(parsed) = ManifestBody::parse(&mangled) {
            prop_assert_eq!(parsed.encode(), mangled);
        }
    }
}

#[test]
fn a_fresh_client_may_skip_from_the_key_s_admin_manifest_to_the_newest() {
    let c = chain();
    let w = &c.world;
    let auth = Authority::Roster(&w.roster);
    let mia = PrincipalId::Member(w.member.account);
    let m2 = verified(w, &c.manifests);
    let m3 = m2.next_body(mia, Some(w.roster.head())).sign(&w.member.key);
    let m3v = verify_update(
        &expected(w),
        &auth,
        Some(&m2.head()),
        &[c.manifests[1].clone(), m3.clone()],
    )
    .unwrap();
    // Revision 1 (admin, sets the key) then straight to revision 3.
    let skipped = verify_update(&expected(w), &auth, None, &[c.manifests[0].clone(), m3]).unwrap();
    assert_eq!(skipped, m3v);
    // Across the gap the key rules still hold: a new commitment under the same key version,
    // or a new key version signed by a member, is refused.
    let mut injected = m3v.next_body(mia, Some(w.roster.head()));
    injected.key_commitment = KeyCommitment::environment(&env_key(9), &w.staging, 1);
    assert_eq!(
        verify_update(
            &expected(w),
            &auth,
            None,
            &[c.manifests[0].clone(), injected.sign(&w.member.key)]
        )
        .unwrap_err(),
        ManifestError::CommitmentChanged { revision: 4 }
    );
    let mut rotated = m3v.next_body(mia, Some(w.roster.head()));
    rotated.key_version = 2;
    rotated.key_commitment = KeyCommitment::environment(&env_key(9), &w.staging, 2);
    assert!(matches!(
        verify_update(
            &expected(w),
            &auth,
            None,
            &[c.manifests[0].clone(), rotated.sign(&w.member.key)]
        ),
        Err(ManifestError::Unauthorised { revision: 4, .. })
    ));
    // Only one skip, right after the first manifest.
    let m4 = m3v
        .next_body(mia, Some(w.roster.head()))
        .sign(&w.member.key);
    assert!(matches!(
        verify_update(
            &expected(w),
            &auth,
            None,
            &[c.manifests[0].clone(), c.manifests[1].clone(), m4]
        ),
        Err(ManifestError::Gap {
            expected: 3,
            found: 4
        })
    ));
}

#[test]
fn revisions_at_the_top_of_the_range_do_not_wrap() {
    let world = World::new();
    let auth = Authority::Roster(&world.roster);
    let mut top = first(&world);
    top.revision = u64::MAX;
    top.previous = ManifestHash([1; 32]);
    let top = top.sign(&world.admin.key);
    let m = verify_update(&expected(&world), &auth, None, std::slice::from_ref(&top)).unwrap();
    let next = m
        .next_body(
            PrincipalId::Member(world.admin.account),
            Some(world.roster.head()),
        )
        .sign(&world.admin.key);
    assert_eq!(
        verify_update(&expected(&world), &auth, Some(&m.head()), &[top, next]).unwrap_err(),
        ManifestError::BrokenChain { revision: u64::MAX }
    );
}

#[test]
fn renames_need_an_admin_and_do_not_break_older_heads() {
    let c = chain();
    let w = &c.world;
    let auth = Authority::Roster(&w.roster);
    let m2 = verified(w, &c.manifests);
    let admin = PrincipalId::Member(w.admin.account);
    let mia = PrincipalId::Member(w.member.account);
    let renamed = Expected {
        environment_name: "stage",
        ..expected(w)
    };

    // An admin renames staging to stage (`klef env rename`); a reader whose head still has
    // the old name follows it, then Mia writes under the new name.
    let mut rename = m2.next_body(admin, Some(w.roster.head()));
    rename.environment_name = "stage".into();
    let m3 = rename.sign(&w.admin.key);
    let v3 = verify_update(
        &renamed,
        &auth,
        Some(&m2.head()),
        &[c.manifests[1].clone(), m3.clone()],
    )
    .unwrap();
    let m4 = v3.next_body(mia, Some(w.roster.head())).sign(&w.member.key);
    let v4 = verify_update(
        &renamed,
        &auth,
        Some(&m2.head()),
        &[c.manifests[1].clone(), m3.clone(), m4.clone()],
    )
    .unwrap();
    assert_eq!(v4.body().environment_name, "stage");
    // Asked for by its old name, the renamed environment is refused.
    assert_eq!(
        verify_update(
            &expected(w),
            &auth,
            Some(&m2.head()),
            &[c.manifests[1].clone(), m3.clone()]
        )
        .unwrap_err(),
        ManifestError::WrongEnvironment {
            what: "environment name"
        }
    );
    // A fresh client starts from the admin's rename and skips to the newest.
    assert_eq!(
        verify_update(&renamed, &auth, None, &[m3.clone(), m4.clone()]).unwrap(),
        v4
    );
    // Starting from the creation manifest, the name changes in the gap under a member's
    // signature: refused (the server must serve the rename).
    assert!(matches!(
        verify_update(&renamed, &auth, None, &[c.manifests[0].clone(), m4]),
        Err(ManifestError::Unauthorised { revision: 4, .. })
    ));

    // A member relabels staging as production by signing the new name herself: refused.
    let mut relabel = m2.next_body(mia, Some(w.roster.head()));
    relabel.environment_name = "production".into();
    let as_production = Expected {
        environment_name: "production",
        ..expected(w)
    };
    let err = verify_update(
        &as_production,
        &auth,
        Some(&m2.head()),
        &[c.manifests[1].clone(), relabel.sign(&w.member.key)],
    )
    .unwrap_err();
    assert!(
        matches!(err, ManifestError::Unauthorised { revision: 3, error: WriterError::NotAuthorised { what, .. } } if what.contains("names")),
        "{err:?}"
    );
    let mut project_relabel = m2.next_body(mia, Some(w.roster.head()));
    project_relabel.project_name = "billing".into();
    let as_billing = Expected {
        project_name: "billing",
        ..expected(w)
    };
    assert!(matches!(
        verify_update(
            &as_billing,
            &auth,
            Some(&m2.head()),
            &[c.manifests[1].clone(), project_relabel.sign(&w.member.key)]
        ),
        Err(ManifestError::Unauthorised { revision: 3, .. })
    ));
}
