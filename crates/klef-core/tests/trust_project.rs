//! The project's signed record and its key commitment (DESIGN.md §9.3): a project key the
//! server injected is refused before anything is sealed under it.

mod trust_common;

use klef_core::crypto::SymmetricKey;
use klef_core::trust::manifest::project::{
    ProjectBody, ProjectRecordError, SignedProjectRecord, verify_project,
};
use klef_core::trust::manifest::{KeyCommitment, ManifestHash, ManifestHead};
use klef_core::trust::roster::{PrincipalId, Record, WriterError};
use proptest::prelude::*;
use trust_common::{Who, World};

fn key(byte: u8) -> SymmetricKey {
    SymmetricKey::from_bytes(Box::new([byte; 32]))
}

fn created(world: &World) -> SignedProjectRecord {
    ProjectBody::first(
        world.workspace,
        world.project,
        "api",
        &key(1),
        1,
        world.roster.head(),
        PrincipalId::Member(world.owner.account),
    )
    .sign(&world.owner.key)
}

#[test]
fn a_project_key_is_checked_against_the_admin_signed_record() {
    let world = World::new();
    let r1 = created(&world);
    let verify = |head: Option<ManifestHead>, served: &[SignedProjectRecord]| {
        verify_project(
            world.workspace,
            world.project,
            "api",
            &world.roster,
            head.as_ref(),
            served,
        )
    };
    let p1 = verify(None, std::slice::from_ref(&r1)).unwrap();
    p1.check_key(&key(1)).unwrap();
    // The server wraps its own project key to an admin: refused before `env create` seals
    // the new environment's key under it.
    assert!(p1.check_key(&key(66)).is_err());

    // An admin rotates the project key; a reader with the old head follows.
    let mut rotation = p1.next_body(
        PrincipalId::Member(world.admin.account),
        world.roster.head(),
    );
    rotation.key_version = 2;
    rotation.key_commitment = KeyCommitment::project(&key(2), &world.project, 2);
    let r2 = rotation.sign(&world.admin.key);
    let p2 = verify(Some(p1.head()), &[r1.clone(), r2.clone()]).unwrap();
    p2.check_key(&key(2)).unwrap();
    // Rolled back to the first record, or the head withheld.
    assert_eq!(
        verify(Some(p2.head()), std::slice::from_ref(&r1)).unwrap_err(),
        ProjectRecordError::NotDescended { head: 2 }
    );
    // A member's record: refused.
    let mut by_member = p1.next_body(
        PrincipalId::Member(world.member.account),
        world.roster.head(),
    );
    by_member.key_version = 2;
    let err = verify(
        Some(p1.head()),
        &[r1.clone(), by_member.sign(&world.member.key)],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ProjectRecordError::Unauthorised {
                revision: 2,
                error: WriterError::NotAuthorised { .. }
            }
        ),
        "{err:?}"
    );
    // A new commitment under the same key version (an injected key): refused.
    let mut injected = p1.next_body(
        PrincipalId::Member(world.admin.account),
        world.roster.head(),
    );
    injected.key_commitment = KeyCommitment::project(&key(66), &world.project, 1);
    assert_eq!(
        verify(
            Some(p1.head()),
            &[r1.clone(), injected.sign(&world.admin.key)]
        )
        .unwrap_err(),
        ProjectRecordError::BrokenChain(2)
    );
    // Another project's record, or asked for under another name.
    assert_eq!(
        verify_project(
            world.workspace,
            klef_core::ids::ProjectId::random(),
            "api",
            &world.roster,
            None,
            std::slice::from_ref(&r1)
        )
        .unwrap_err(),
        ProjectRecordError::WrongProject("project")
    );
    assert_eq!(
        verify_project(
            world.workspace,
            world.project,
            "web",
            &world.roster,
            None,
            std::slice::from_ref(&r1)
        )
        .unwrap_err(),
        ProjectRecordError::WrongProject("project name")
    );
    // Signed by the server, claiming the owner.
    let mallory = trust_common::Person::new(66, "m@example.com");
    let forged = ProjectBody::parse(&r1.body).unwrap().sign(&mallory.key);
    assert_eq!(
        verify(None, &[forged]).unwrap_err(),
        ProjectRecordError::ForgedSignature(1)
    );
    assert_eq!(verify(None, &[]).unwrap_err(), ProjectRecordError::Empty);
}

#[test]
fn the_newest_record_needs_a_signer_who_is_still_an_admin() {
    let mut world = World::new();
    let r1 = ProjectBody::first(
        world.workspace,
        world.project,
        "api",
        &key(1),
        1,
        world.roster.head(),
        PrincipalId::Member(world.admin.account),
    )
    .sign(&world.admin.key);
    // The admin is demoted: their newest record no longer vouches for the key, an owner's
    // re-signed record does, and the old one still chains under it.
    world.append(
        Record::Member(world.admin.record(
            klef_core::model::Role::Member,
            klef_core::trust::roster::Access::All,
        )),
        Who::Owner,
    );
    let verify = |served: &[SignedProjectRecord]| {
        verify_project(
            world.workspace,
            world.project,
            "api",
            &world.roster,
            None,
            served,
        )
    };
    assert!(matches!(
        verify(std::slice::from_ref(&r1)),
        Err(ProjectRecordError::Unauthorised {
            error: WriterError::RevokedSince { sequence: 4, .. },
            ..
        })
    ));
    let mut body = ProjectBody::parse(&r1.body).unwrap();
    body.revision = 2;
    body.previous = r1.hash();
    body.roster = world.roster.head();
    body.signer = PrincipalId::Member(world.owner.account);
    let r2 = body.sign(&world.owner.key);
    let p = verify(&[r1, r2]).unwrap();
    p.check_key(&key(1)).unwrap();
    assert_ne!(p.head().hash, ManifestHash::ZERO);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_tampered_bit_is_refused_and_parsing_is_canonical(at in any::<proptest::sample::Index>(), bit in 0u8..8, junk in proptest::collection::vec(any::<u8>(), 0..4)) {
        let world = World::new();
        let mut r1 = created(&world);
        let i = at.index(r1.body.len());
        let mut mangled = r1.body[..i].to_vec();
        mangled.extend_from_slice(&junk);
        if let Ok(parsed) = ProjectBody::parse(&mangled) {
            prop_assert_eq!(parsed.encode(), mangled);
        }
        r1.body[i] ^= 1 << bit;
        prop_assert!(verify_project(world.workspace, world.project, "api", &world.roster, None, &[r1]).is_err());
    }
}
