//! The workspace roster (DESIGN.md §9.2) against a server that forges, reorders, drops,
//! truncates, forks and replays entries, through klef-core's public API.

mod trust_common;

use std::collections::BTreeSet;

use klef_core::ids::{AccountId, WorkspaceId};
use klef_core::model::Role;
use klef_core::trust::roster::{
    Access, EntryBody, EntryHash, OwnEntryError, Permission, PrincipalId, Record, RosterAnchor,
    RosterError, RosterHead, Scope, SignedEntry, VerifiedRoster, WriterError,
};
use proptest::prelude::*;
use trust_common::{Machine, Person, Who, World};

fn anchor(world: &World, head: Option<RosterHead>) -> RosterAnchor {
    RosterAnchor {
        workspace: world.workspace,
        genesis: world.entries[0].hash(),
        head,
    }
}

fn verify(world: &World, entries: &[SignedEntry]) -> Result<VerifiedRoster, RosterError> {
    VerifiedRoster::verify(&anchor(world, None), entries)
}

/// An entry continuing `world`'s head, signed by `signer` with `key`, with no validation.
fn raw_next(world: &World, record: Record, signer: &Person) -> SignedEntry {
    let head = world.roster.head();
    EntryBody {
        workspace: world.workspace,
        sequence: head.sequence + 1,
        previous: head.hash,
        signer: signer.account,
        record,
    }
    .sign(&signer.key)
}

#[test]
fn a_valid_chain_folds_into_the_principals() {
    let world = World::new();
    let roster = verify(&world, &world.entries).unwrap();
    assert_eq!(roster.head(), world.roster.head());
    assert_eq!(roster.head().sequence, 3);
    assert_eq!(roster.workspace(), world.workspace);
    assert_eq!(roster.owner(), world.owner.account);
    assert_eq!(roster.genesis(), world.entries[0].hash());
    assert_eq!(roster.members().count(), 3);
    assert_eq!(
        roster.member(&world.admin.account).unwrap().role,
        Role::Admin
    );
    let ci = roster.system_key(&world.ci.id).unwrap();
    assert_eq!(ci.creator, world.admin.account);
    assert_eq!(
        roster.system_keys_created_by(world.admin.account).count(),
        1
    );

    // The pinned anchor with the head verifies; so does extending a verified prefix.
    let pinned = VerifiedRoster::verify(&roster.anchor(), &world.entries).unwrap();
    assert_eq!(pinned.head(), roster.head());
    let prefix = verify(&world, &world.entries[..2]).unwrap();
    let extended = prefix.extended(&world.entries[2..]).unwrap();
    assert_eq!(extended.head(), roster.head());
    assert_eq!(
        format!("{extended:?}"),
        format!("{roster:?}"),
        "fold is deterministic"
    );

    // Readers: staging → owner, admin, member; production → owner, admin, CI.
    let staging: BTreeSet<_> = roster
        .readers(&world.project, &world.staging)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        staging,
        BTreeSet::from([
            PrincipalId::Member(world.owner.account),
            PrincipalId::Member(world.admin.account),
            PrincipalId::Member(world.member.account),
        ])
    );
    let production: BTreeSet<_> = roster
        .readers(&world.project, &world.production)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(production.contains(&PrincipalId::SystemKey(world.ci.id)));
    assert!(!production.contains(&PrincipalId::Member(world.member.account)));
    assert_eq!(roster.full_access_members().count(), 2);
}

#[test]
fn a_forged_genesis_is_refused() {
    let world = World::new();
    // The server makes its own workspace with the same id and its own owner.
    let mallory = Person::new(66, "mallory@example.com");
    let (fake, _) = VerifiedRoster::create(
        world.workspace,
        mallory.record(Role::Owner, Access::All),
        &mallory.key,
    )
    .unwrap();
    assert_eq!(
        verify(&world, &[fake]).unwrap_err(),
        RosterError::ForgedGenesis
    );
    // A forged genesis that lists the member's real identity as owner, signed by the server.
    let mut fake_body = EntryBody::parse(&world.entries[0].body).unwrap();
    fake_body.record = Record::Member(world.member.record(Role::Owner, Access::All));
    fake_body.signer = world.member.account;
    let forged = fake_body.sign(&mallory.key);
    assert_eq!(
        verify(&world, std::slice::from_ref(&forged)).unwrap_err(),
        RosterError::ForgedGenesis
    );
    // Even pinned as genesis (a client that pinned it), its signature does not verify.
    let pinned = RosterAnchor {
        workspace: world.workspace,
        genesis: forged.hash(),
        head: None,
    };
    assert_eq!(
        VerifiedRoster::verify(&pinned, &[forged]).unwrap_err(),
        RosterError::ForgedSignature { sequence: 0 }
    );
    assert_eq!(verify(&world, &[]).unwrap_err(), RosterError::Empty);
}

#[test]
fn an_invalid_genesis_is_refused_even_when_pinned() {
    let world = World::new();
    let ws = world.workspace;
    let cases: Vec<(EntryBody, &str)> = vec![
        (
            EntryBody {
                workspace: ws,
                sequence: 0,
                previous: EntryHash::ZERO,
                signer: world.owner.account,
                record: Record::Member(world.owner.record(Role::Admin, Access::All)),
            },
            "not owner",
        ),
        (
            EntryBody {
                workspace: ws,
                sequence: 1,
                previous: EntryHash::ZERO,
                signer: world.owner.account,
                record: Record::Member(world.owner.record(Role::Owner, Access::All)),
            },
            "sequence 1",
        ),
        (
            EntryBody {
                workspace: ws,
                sequence: 0,
                previous: EntryHash::ZERO,
                signer: world.admin.account,
                record: Record::Member(world.owner.record(Role::Owner, Access::All)),
            },
            "signed by another",
        ),
        (
            EntryBody {
                workspace: ws,
                sequence: 0,
                previous: EntryHash::ZERO,
                signer: world.owner.account,
                record: Record::Removed(PrincipalId::Member(world.owner.account)),
            },
            "a removal",
        ),
    ];
    for (body, what) in cases {
        let entry = body.sign(&world.owner.key);
        let pinned = RosterAnchor {
            workspace: ws,
            genesis: entry.hash(),
            head: None,
        };
        assert!(
            matches!(
                VerifiedRoster::verify(&pinned, &[entry]),
                Err(RosterError::InvalidGenesis(_))
            ),
            "{what}"
        );
    }
}

#[test]
fn reordered_dropped_repeated_and_replaced_entries_are_refused() {
    let world = World::new();
    let e = &world.entries;
    let swapped = [e[0].clone(), e[2].clone(), e[1].clone(), e[3].clone()];
    assert_eq!(
        verify(&world, &swapped).unwrap_err(),
        RosterError::Gap {
            expected: 1,
            found: 2
        }
    );
    let dropped = [e[0].clone(), e[1].clone(), e[3].clone()];
    assert_eq!(
        verify(&world, &dropped).unwrap_err(),
        RosterError::Gap {
            expected: 2,
            found: 3
        }
    );
    let repeated = [e[0].clone(), e[1].clone(), e[1].clone()];
    assert_eq!(
        verify(&world, &repeated).unwrap_err(),
        RosterError::Reordered {
            expected: 2,
            found: 1
        }
    );
    // An entry re-signed by a real admin but pointing at a different predecessor.
    let mut body = EntryBody::parse(&e[2].body).unwrap();
    body.previous = EntryHash([1; 32]);
    let replaced = body.sign(&world.admin.key);
    let chain = [e[0].clone(), e[1].clone(), replaced];
    assert_eq!(
        verify(&world, &chain).unwrap_err(),
        RosterError::BrokenChain { sequence: 2 }
    );
}

#[test]
fn a_served_chain_must_extend_the_pinned_head() {
    let mut world = World::new();
    let pinned = world.roster.head();
    // Truncated below the pin (rollback).
    assert_eq!(
        VerifiedRoster::verify(&anchor(&world, Some(pinned)), &world.entries[..3]).unwrap_err(),
        RosterError::Truncated {
            pinned: 3,
            served: 2
        }
    );
    // A fork: the pinned entry 3 is replaced by another valid admin-signed entry 3.
    let mut fork = world.entries[..3].to_vec();
    let before = verify(&world, &fork).unwrap();
    let other = Machine::new(9);
    let (fork_entry, _) = before
        .append(
            Record::SystemKey(other.record(
                &[Scope {
                    project: world.project,
                    environment: None,
                }],
                Permission::Read,
                world.admin.account,
            )),
            world.admin.account,
            &world.admin.key,
        )
        .unwrap();
    fork.push(fork_entry);
    assert_eq!(
        VerifiedRoster::verify(&anchor(&world, Some(pinned)), &fork).unwrap_err(),
        RosterError::Forked { sequence: 3 }
    );
    // Extending past the pin is fine.
    world.append(
        Record::Removed(PrincipalId::SystemKey(world.ci.id)),
        Who::Owner,
    );
    let roster = VerifiedRoster::verify(&anchor(&world, Some(pinned)), &world.entries).unwrap();
    assert_eq!(roster.head().sequence, 4);
    assert!(roster.system_key(&world.ci.id).is_none());
}

#[test]
fn entries_from_another_workspace_are_refused() {
    let world = World::new();
    let head = world.roster.head();
    let replayed = EntryBody {
        workspace: WorkspaceId::random(),
        sequence: head.sequence + 1,
        previous: head.hash,
        signer: world.admin.account,
        record: Record::Removed(PrincipalId::Member(world.member.account)),
    }
    .sign(&world.admin.key);
    let mut chain = world.entries.clone();
    chain.push(replayed);
    assert_eq!(
        verify(&world, &chain).unwrap_err(),
        RosterError::ForeignWorkspace { sequence: 4 }
    );
    // The genesis of the right chain under another pinned workspace id.
    let wrong = RosterAnchor {
        workspace: WorkspaceId::random(),
        ..anchor(&world, None)
    };
    assert_eq!(
        VerifiedRoster::verify(&wrong, &world.entries).unwrap_err(),
        RosterError::ForeignWorkspace { sequence: 0 }
    );
}

#[test]
fn only_admins_established_earlier_may_sign() {
    let mut world = World::new();
    let mallory = Person::new(66, "mallory@example.com");
    let record = Record::Member(mallory.record(Role::Admin, Access::All));

    // Signed by someone not in the roster (the server's own key).
    let mut chain = world.entries.clone();
    chain.push(raw_next(&world, record.clone(), &mallory));
    assert_eq!(
        verify(&world, &chain).unwrap_err(),
        RosterError::UnknownSigner { sequence: 4 }
    );

    // Claims the admin as signer but the server signed it.
    let mut body = EntryBody::parse(&raw_next(&world, record.clone(), &world.admin).body).unwrap();
    body.signer = world.admin.account;
    let forged = SignedEntry {
        body: body.encode(),
        signature: body.sign(&mallory.key).signature,
    };
    let mut chain = world.entries.clone();
    chain.push(forged);
    assert_eq!(
        verify(&world, &chain).unwrap_err(),
        RosterError::ForgedSignature { sequence: 4 }
    );

    // Signed by a real member who is not an admin.
    let mut chain = world.entries.clone();
    chain.push(raw_next(&world, record.clone(), &world.member));
    assert_eq!(
        verify(&world, &chain).unwrap_err(),
        RosterError::UnauthorisedSigner { sequence: 4 }
    );
    assert!(
        world
            .roster
            .append(record.clone(), world.member.account, &world.member.key)
            .is_err()
    );

    // An admin removed earlier can no longer sign.
    world.append(
        Record::Removed(PrincipalId::Member(world.admin.account)),
        Who::Owner,
    );
    let mut chain = world.entries.clone();
    chain.push(raw_next(&world, record.clone(), &world.admin));
    assert_eq!(
        verify(&world, &chain).unwrap_err(),
        RosterError::UnknownSigner { sequence: 5 }
    );

    // A member demoted earlier can no longer sign.
    let mut world = World::new();
    world.append(
        Record::Member(world.admin.record(Role::Member, Access::All)),
        Who::Owner,
    );
    let mut chain = world.entries.clone();
    chain.push(raw_next(&world, record, &world.admin));
    assert_eq!(
        verify(&world, &chain).unwrap_err(),
        RosterError::UnauthorisedSigner { sequence: 5 }
    );
}

#[test]
fn invalid_changes_are_refused() {
    let world = World::new();
    let admin = world.admin.account;
    let owner_id = PrincipalId::Member(world.owner.account);
    let cases: Vec<(Record, &Person, &str)> = vec![
        (
            Record::Removed(owner_id),
            &world.admin,
            "the owner cannot be removed",
        ),
        (
            Record::Member(world.owner.record(Role::Admin, Access::All)),
            &world.owner,
            "the owner cannot be demoted",
        ),
        (
            Record::Member(world.owner.record(Role::Owner, Access::All)),
            &world.admin,
            "only the owner",
        ),
        (
            Record::Member(world.admin.record(Role::Owner, Access::All)),
            &world.owner,
            "one owner",
        ),
        (
            Record::Member(
                world
                    .member
                    .record(Role::Admin, Access::Only(BTreeSet::new())),
            ),
            &world.owner,
            "every environment",
        ),
        (
            Record::Removed(PrincipalId::Member(AccountId::random())),
            &world.owner,
            "not in the roster",
        ),
        (
            Record::SystemKey(world.ci.record(&[], Permission::Read, admin)),
            &world.admin,
            "at least one scope",
        ),
        (
            Record::SystemKey(Machine::new(10).record(
                &[Scope {
                    project: world.project,
                    environment: None,
                }],
                Permission::Read,
                admin,
            )),
            &world.owner,
            "name its signer as creator",
        ),
        (
            Record::SystemKey({
                let mut r = world.ci.record(
                    &[Scope {
                        project: world.project,
                        environment: None,
                    }],
                    Permission::Read,
                    admin,
                );
                r.x25519_key = world.member.x25519.public_key();
                r
            }),
            &world.owner,
            "public keys never change",
        ),
        (
            Record::SystemKey(world.ci.record(
                &[Scope {
                    project: world.project,
                    environment: None,
                }],
                Permission::Read,
                world.owner.account,
            )),
            &world.owner,
            "creator never changes",
        ),
    ];
    for (record, signer, reason) in cases {
        let mut chain = world.entries.clone();
        chain.push(raw_next(&world, record.clone(), signer));
        match verify(&world, &chain) {
            Err(RosterError::InvalidChange {
                sequence: 4,
                reason: got,
            }) => {
                assert!(got.contains(reason), "{reason}: got {got}");
            }
            other => panic!("{reason}: {other:?}"),
        }
        assert!(
            world
                .roster
                .append(record, signer.account, &signer.key)
                .is_err(),
            "{reason}"
        );
    }

    // A revoked system key cannot come back; a removed member can be re-invited.
    let mut world = World::new();
    world.append(
        Record::Removed(PrincipalId::SystemKey(world.ci.id)),
        Who::Admin,
    );
    let again = Record::SystemKey(world.ci.record(
        &[Scope {
            project: world.project,
            environment: None,
        }],
        Permission::Read,
        world.admin.account,
    ));
    assert!(matches!(
        world.roster.append(again, world.admin.account, &world.admin.key),
        Err(RosterError::InvalidChange { reason, .. }) if reason.contains("cannot be restored")
    ));
    world.append(
        Record::Removed(PrincipalId::Member(world.member.account)),
        Who::Admin,
    );
    assert!(world.roster.member(&world.member.account).is_none());
    world.append(
        Record::Member(world.member.record(Role::Member, Access::All)),
        Who::Admin,
    );
    assert!(world.roster.member(&world.member.account).is_some());
}

#[test]
fn the_writer_rule_follows_the_roster() {
    let mut world = World::new();
    let at = world.roster.head();
    let (p, s, prod) = (world.project, world.staging, world.production);
    let mia = PrincipalId::Member(world.member.account);
    let ci = PrincipalId::SystemKey(world.ci.id);
    let adam = PrincipalId::Member(world.admin.account);
    let r = &world.roster;
    assert_eq!(
        r.check_writer(&mia, &p, &s, at, false),
        Ok(world.member.key.verifying_key())
    );
    assert!(matches!(
        r.check_writer(&mia, &p, &prod, at, false),
        Err(WriterError::NotAuthorised { .. })
    ));
    assert!(matches!(
        r.check_writer(&mia, &p, &s, at, true),
        Err(WriterError::NotAuthorised { .. })
    ));
    assert_eq!(
        r.check_writer(&ci, &p, &prod, at, false),
        Ok(world.ci.key.verifying_key())
    );
    assert!(matches!(
        r.check_writer(&ci, &p, &s, at, false),
        Err(WriterError::NotAuthorised { .. })
    ));
    assert!(matches!(
        r.check_writer(&ci, &p, &prod, at, true),
        Err(WriterError::NotAuthorised { .. })
    ));
    assert!(r.check_writer(&adam, &p, &prod, at, true).is_ok());
    // Before Mia joined (entry 1) she was not a principal.
    let early = RosterHead {
        sequence: 1,
        hash: world.entries[1].hash(),
    };
    assert!(matches!(
        r.check_writer(&mia, &p, &s, early, false),
        Err(WriterError::NotAPrincipal { .. })
    ));
    // A reference past the verified head, or to a forked entry.
    let ahead = RosterHead {
        sequence: 9,
        hash: EntryHash([0; 32]),
    };
    assert!(matches!(
        r.check_writer(&mia, &p, &s, ahead, false),
        Err(WriterError::RosterAhead { .. })
    ));
    let forked = RosterHead {
        sequence: 3,
        hash: EntryHash([1; 32]),
    };
    assert!(matches!(
        r.check_writer(&mia, &p, &s, forked, false),
        Err(WriterError::RosterMismatch { .. })
    ));

    // Removed later: a manifest she signed referencing the old entry is refused.
    world.append(Record::Removed(mia), Who::Admin);
    assert_eq!(
        world.roster.check_writer(&mia, &p, &s, at, false),
        Err(WriterError::RevokedSince {
            principal: mia,
            sequence: 4
        })
    );
    // Re-invited later: still refused (removal anywhere up to the head).
    world.append(
        Record::Member(world.member.record(Role::Member, Access::All)),
        Who::Admin,
    );
    assert!(world.roster.check_writer(&mia, &p, &s, at, false).is_err());
    // The CI key narrowed to read-only later: refused; Adam demoted: no key changes any more.
    world.append(
        Record::SystemKey(world.ci.record(
            &[Scope {
                project: p,
                environment: Some(prod),
            }],
            Permission::Read,
            world.admin.account,
        )),
        Who::Owner,
    );
    assert!(matches!(
        world.roster.check_writer(&ci, &p, &prod, at, false),
        Err(WriterError::RevokedSince { sequence: 6, .. })
    ));
    // Adam demoted to a member who keeps access: what he signed as admin stays vouched for;
    // anything he signs under the new entry may not set a key.
    world.append(
        Record::Member(world.admin.record(Role::Member, Access::All)),
        Who::Owner,
    );
    assert!(
        world
            .roster
            .check_writer(&adam, &p, &prod, at, true)
            .is_ok()
    );
    assert!(
        world
            .roster
            .check_writer(&adam, &p, &prod, at, false)
            .is_ok()
    );
    let now = world.roster.head();
    assert!(matches!(
        world.roster.check_writer(&adam, &p, &prod, now, true),
        Err(WriterError::NotAuthorised { sequence: 7, .. })
    ));
    // Then narrowed to staging only: production is revoked since entry 8.
    world.append(
        Record::Member(
            world
                .admin
                .record(Role::Member, Access::Only(BTreeSet::from([s]))),
        ),
        Who::Owner,
    );
    assert!(matches!(
        world.roster.check_writer(&adam, &p, &prod, at, false),
        Err(WriterError::RevokedSince { sequence: 8, .. })
    ));
}

#[test]
fn devices_check_their_own_entries() {
    let world = World::new();
    let me = world
        .roster
        .member(&world.member.account)
        .unwrap()
        .identity();
    assert!(world.roster.check_own_member(&me).is_ok());
    let other = Person::new(77, "x@example.com");
    let substituted = klef_core::trust::identity::PublicIdentity {
        x25519_key: other.x25519.public_key(),
        ..me
    };
    assert_eq!(
        world.roster.check_own_member(&substituted).unwrap_err(),
        OwnEntryError::KeysDiffer(PrincipalId::Member(world.member.account))
    );
    let stranger = klef_core::trust::identity::PublicIdentity {
        account: other.account,
        ..me
    };
    assert!(matches!(
        world.roster.check_own_member(&stranger),
        Err(OwnEntryError::NotListed(_))
    ));
    let ci = &world.ci;
    assert!(
        world
            .roster
            .check_own_system_key(&ci.id, &ci.x25519.public_key(), &ci.key.verifying_key())
            .is_ok()
    );
    assert!(
        world
            .roster
            .check_own_system_key(&ci.id, &other.x25519.public_key(), &ci.key.verifying_key())
            .is_err()
    );
}

#[test]
fn verification_codes_differ_per_head() {
    let mut world = World::new();
    let before = world.roster.verification_code();
    assert_eq!(before.sequence, 3);
    world.append(
        Record::Removed(PrincipalId::SystemKey(world.ci.id)),
        Who::Admin,
    );
    assert_ne!(world.roster.verification_code(), before);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any flipped bit anywhere in any served entry (body or signature) makes verification
    /// fail: no tampering goes unnoticed.
    #[test]
    fn any_tampered_bit_is_refused(entry in 0usize..4, at in any::<proptest::sample::Index>(), bit in 0u8..8, in_signature in any::<bool>()) {
        let world = World::new();
        let mut chain = world.entries.clone();
        if in_signature {
            let i = at.index(64);
            chain[entry].signature.0[i] ^= 1 << bit;
        } else {
            let i = at.index(chain[entry].body.len());
            chain[entry].body[i] ^= 1 << bit;
        }
        prop_assert!(verify(&world, &chain).is_err());
    }

    /// Parsing arbitrary bodies never panics, and whatever parses re-encodes to the same bytes
    /// (one encoding per record).
    #[test]
    fn parsing_is_total_and_canonical(entry in 0usize..4, cut in any::<proptest::sample::Index>(), junk in proptest::collection::vec(any::<u8>(), 0..8)) {
        let world = World::new();
        let body = &world.entries[entry].body;
        let mut mangled = body[..cut.index(body.len() + 1)].to_vec();
        mangled.extend_from_slice(&junk);
        if let Ok(parsed) = EntryBody::parse(&mangled) {
            prop_assert_eq!(parsed.encode(), mangled);
        }
        prop_assert_eq!(EntryBody::parse(body).unwrap().encode(), body.clone());
    }
}

/// One random roster operation: what it sets, and which person (by index) signs it.
#[derive(Debug, Clone)]
enum Op {
    Member {
        who: usize,
        admin: bool,
        only: Option<bool>,
        signer: usize,
    },
    Remove {
        who: usize,
        signer: usize,
    },
    Key {
        which: usize,
        write: bool,
        whole_project: bool,
        signer: usize,
    },
    Revoke {
        which: usize,
        signer: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0usize..4,
            any::<bool>(),
            proptest::option::of(any::<bool>()),
            0usize..4
        )
            .prop_map(|(who, admin, only, signer)| Op::Member {
                who,
                admin,
                only,
                signer
            }),
        (0usize..4, 0usize..4).prop_map(|(who, signer)| Op::Remove { who, signer }),
        (0usize..2, any::<bool>(), any::<bool>(), 0usize..4).prop_map(
            |(which, write, whole_project, signer)| Op::Key {
                which,
                write,
                whole_project,
                signer
            }
        ),
        (0usize..2, 0usize..4).prop_map(|(which, signer)| Op::Revoke { which, signer }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random histories (invalid operations are refused by `append` and skipped): the chain
    /// verifies from its anchor to the same state however it is split into a verified prefix
    /// and an extension, and pinned at any of its entries.
    #[test]
    fn fold_is_deterministic_over_random_histories(ops in proptest::collection::vec(op(), 0..24), split in any::<proptest::sample::Index>()) {
        let world = World::new();
        let people = [&world.owner, &world.admin, &world.member, &Person::new(5, "p5@example.com")];
        let machines = [Machine::new(6), Machine::new(7)];
        let mut roster = world.roster.clone();
        let mut entries = world.entries.clone();
        for op in ops {
            let (record, signer) = match op {
                Op::Member { who, admin, only, signer } => {
                    let access = match only {
                        None => Access::All,
                        Some(prod) => Access::Only(BTreeSet::from([if prod { world.production } else { world.staging }])),
                    };
                    let role = if admin { Role::Admin } else { Role::Member };
                    (Record::Member(people[who].record(role, access)), signer)
                }
                Op::Remove { who, signer } => (Record::Removed(PrincipalId::Member(people[who].account)), signer),
                Op::Key { which, write, whole_project, signer } => {
                    let scope = Scope { project: world.project, environment: (!whole_project).then_some(world.production) };
                    let permission = if write { Permission::ReadWrite } else { Permission::Read };
                    (Record::SystemKey(machines[which].record(&[scope], permission, people[signer].account)), signer)
                }
                Op::Revoke { which, signer } => (Record::Removed(PrincipalId::SystemKey(machines[which].id)), signer),
            };
            if let Ok((entry, next)) = roster.append(record, people[signer].account, &people[signer].key) {
                entries.push(entry);
                roster = next;
            }
        }
        let full = verify(&world, &entries).unwrap();
        prop_assert_eq!(format!("{full:?}"), format!("{roster:?}"));
        let k = split.index(entries.len()) + 1;
        let prefix = verify(&world, &entries[..k]).unwrap();
        let extended = prefix.extended(&entries[k..]).unwrap();
        prop_assert_eq!(format!("{extended:?}"), format!("{roster:?}"));
        let pinned = RosterAnchor { head: Some(prefix.head()), ..anchor(&world, None) };
        prop_assert_eq!(VerifiedRoster::verify(&pinned, &entries).unwrap().head(), roster.head());
        // The owner is always there, and always the owner.
        prop_assert_eq!(full.member(&world.owner.account).map(|m| m.role), Some(Role::Owner));
    }
}
