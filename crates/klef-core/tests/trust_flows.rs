//! The trust records used together the way the CLI will use them (DESIGN.md §9): create a
//! workspace, invite with a code, confirm, create an environment, write, give CI a key with a
//! sealed anchor, read as CI, and carry pins to a second device, with the server's attacks at
//! each step. Each step names the command it stands for.

use std::collections::BTreeSet;

use klef_core::crypto::{PrivateKey, SymmetricKey};
use klef_core::ids::{AccountId, ApiKeyId, EnvironmentId, InviteId, ProjectId, WorkspaceId};
use klef_core::model::Role;
use klef_core::secrecy::ExposeSecret as _;
use klef_core::trust::account_state::{AccountState, MergeError};
use klef_core::trust::api_key::{CiAnchor, SplitSecret};
use klef_core::trust::identity::{Fingerprint, PublicIdentity, SigningKey};
use klef_core::trust::manifest::{
    Authority, Expected, ManifestBody, ManifestError, ValueRef, verify_update,
};
use klef_core::trust::roster::invite::{InviteCode, InviteMacMismatch};
use klef_core::trust::roster::{
    Access, MemberRecord, Permission, PrincipalId, Record, RosterError, Scope, SystemKeyRecord,
    VerifiedRoster,
};

/// What a device holds after unlocking: the master key and the keys derived or opened from it.
struct Device {
    account: AccountId,
    master: SymmetricKey,
    identity: SigningKey,
    x25519: PrivateKey,
}

impl Device {
    fn new(seed: u8) -> Self {
        let account = AccountId::random();
        let master = SymmetricKey::from_bytes(Box::new([seed; 32]));
        Self {
            account,
            identity: SigningKey::derive_identity(&master, &account),
            master,
            x25519: PrivateKey::from_bytes(Box::new([seed ^ 0x55; 32])),
        }
    }

    fn public(&self) -> PublicIdentity {
        PublicIdentity {
            account: self.account,
            identity_key: self.identity.verifying_key(),
            x25519_key: self.x25519.public_key(),
        }
    }

    fn record(&self, email: &str, role: Role, access: Access) -> MemberRecord {
        MemberRecord {
            account: self.account,
            email: email.into(),
            identity_key: self.identity.verifying_key(),
            x25519_key: self.x25519.public_key(),
            role,
            access,
        }
    }
}

#[test]
fn a_team_and_its_ci_from_creation_to_a_verified_read() {
    let ws = WorkspaceId::random();
    let project = ProjectId::random();
    let production = EnvironmentId::random();
    let olivia = Device::new(1);
    let bob = Device::new(2);
    let mallory = Device::new(66); // the server's own keys

    // `klef workspace create`: genesis, pinned at once.
    let (genesis, roster) = VerifiedRoster::create(
        ws,
        olivia.record("olivia@example.com", Role::Owner, Access::All),
        &olivia.identity,
    )
    .unwrap();
    let mut served = vec![genesis];
    let mut olivia_pins = AccountState::default();
    olivia_pins.record_roster(&roster.anchor()).unwrap();

    // `klef workspace invite bob@example.com`: an invite code sent out of band.
    let invite = InviteId::random();
    let code = InviteCode::generate(roster.genesis());
    let text = code.to_text();

    // `klef workspace accept` on Bob's device: the code pins the genesis, so a forged roster
    // is refused, and Bob sees Olivia's fingerprint from the verified genesis.
    let bobs_code = InviteCode::parse(text.expose_secret()).unwrap();
    let (fake_genesis, _) = VerifiedRoster::create(
        ws,
        mallory.record("olivia@example.com", Role::Owner, Access::All),
        &mallory.identity,
    )
    .unwrap();
    let pin = klef_core::trust::roster::RosterAnchor {
        workspace: ws,
        genesis: bobs_code.genesis(),
        head: None,
    };
    assert_eq!(
        VerifiedRoster::verify(&pin, &[fake_genesis]).unwrap_err(),
        RosterError::ForgedGenesis
    );
    let bobs_view = VerifiedRoster::verify(&pin, &served).unwrap();
    assert_eq!(
        bobs_view
            .member(&olivia.account)
            .unwrap()
            .identity()
            .fingerprint(),
        olivia.public().fingerprint()
    );
    let mac = bobs_code.mac(&ws, &invite, &bob.public());

    // `klef workspace confirm bob@example.com` on Olivia's device: the server relays Bob's
    // keys; a substituted key fails the MAC, the real ones pass.
    let substituted = PublicIdentity {
        x25519_key: mallory.x25519.public_key(),
        ..bob.public()
    };
    assert_eq!(
        code.check(&ws, &invite, &substituted, &mac),
        Err(InviteMacMismatch)
    );
    code.check(&ws, &invite, &bob.public(), &mac).unwrap();
    // Without a code, the fingerprint Bob reads out must match the relayed keys.
    let read_out: Fingerprint = bob.public().fingerprint().to_string().parse().unwrap();
    assert!(!read_out.matches(&substituted.fingerprint()));
    let bob_record = bob.record(
        "bob@example.com",
        Role::Member,
        Access::Only(BTreeSet::from([production])),
    );
    let (entry, roster) = roster
        .append(Record::Member(bob_record), olivia.account, &olivia.identity)
        .unwrap();
    served.push(entry);
    olivia_pins.record_roster(&roster.anchor()).unwrap();
    // Only verified recipients get production's key.
    let recipients: BTreeSet<_> = roster
        .readers(&project, &production)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        recipients,
        BTreeSet::from([
            PrincipalId::Member(olivia.account),
            PrincipalId::Member(bob.account)
        ])
    );

    // `klef env create production`: the admin-signed first manifest with the key commitment.
    let expected = Expected {
        workspace: ws,
        project,
        project_name: "api",
        environment: production,
        environment_name: "production",
    };
    let env_key = SymmetricKey::generate();
    let m1 = ManifestBody::first(
        &expected,
        &env_key,
        1,
        Some(roster.head()),
        PrincipalId::Member(olivia.account),
    )
    .sign(&olivia.identity);
    let auth = Authority::Roster(&roster);
    let v1 = verify_update(&expected, &auth, None, std::slice::from_ref(&m1)).unwrap();

    // `klef set DATABASE_URL` by Bob: checks the key before encrypting, signs revision 2.
    v1.check_key(&env_key).unwrap();
    let ciphertext = b"sealed DATABASE_URL".to_vec();
    let mut body = v1.next_body(PrincipalId::Member(bob.account), Some(roster.head()));
    body.values
        .insert("DATABASE_URL".into(), ValueRef::new(1, &ciphertext));
    let m2 = body.sign(&bob.identity);
    let v2 = verify_update(
        &expected,
        &auth,
        Some(&v1.head()),
        &[m1.clone(), m2.clone()],
    )
    .unwrap();
    olivia_pins
        .record_environment(&ws, production, v2.head())
        .unwrap();

    // `klef keys create ci --scope api:production` by Olivia: the CI key enters the roster and
    // its anchor is sealed under the token's secret.
    let token_secret = [9u8; 32];
    let ci = SplitSecret::new(token_secret);
    let ci_id = ApiKeyId::random();
    let (entry, roster) = roster
        .append(
            Record::SystemKey(SystemKeyRecord {
                key: ci_id,
                x25519_key: ci.x25519().1,
                signing_key: ci.signing_key().verifying_key(),
                scopes: BTreeSet::from([Scope {
                    project,
                    environment: Some(production),
                }]),
                permission: Permission::Read,
                creator: olivia.account,
            }),
            olivia.account,
            &olivia.identity,
        )
        .unwrap();
    served.push(entry);
    let sealed_anchor = ci.seal_anchor(
        &ci_id,
        &CiAnchor {
            workspace: ws,
            genesis: roster.genesis(),
            head: roster.head(),
        },
    );
    // The server stores only the bearer's hash: it cannot open the anchor or a wrap with it.
    let bearer = ci.bearer();
    assert_ne!(bearer.expose(), ci.x25519().0.expose());

    // A CI job: open the anchor, verify the roster from it, find its own entry, then read.
    let job = SplitSecret::new(token_secret);
    let anchor = job.open_anchor(&ci_id, &sealed_anchor).unwrap();
    let ci_roster = VerifiedRoster::verify(&anchor.roster_anchor(), &served).unwrap();
    ci_roster
        .check_own_system_key(&ci_id, &job.x25519().1, &job.signing_key().verifying_key())
        .unwrap();
    // The server withholds the entry that made the CI key: refused below the anchor.
    assert!(matches!(
        VerifiedRoster::verify(&anchor.roster_anchor(), &served[..2]),
        Err(RosterError::Truncated { .. })
    ));
    let ci_auth = Authority::Roster(&ci_roster);
    let read = verify_update(&expected, &ci_auth, None, &[m1.clone(), m2.clone()]).unwrap();
    read.check_values([("DATABASE_URL", 1, ciphertext.as_slice())])
        .unwrap();
    read.check_key(&env_key).unwrap();
    // A key the server made and wrapped to the CI key is refused before any decryption.
    assert!(read.check_key(&SymmetricKey::generate()).is_err());

    // Olivia's second laptop: the pins come back through the server, sealed.
    let sealed = olivia_pins.seal(&olivia.master, &olivia.account);
    let laptop = AccountState::open(&olivia.master, &olivia.account, &sealed).unwrap();
    let merged = AccountState::default().merge(&laptop).unwrap();
    // A rollback served to the laptop is caught by the inherited head.
    let head = merged.environment_head(&ws, &production).unwrap();
    assert_eq!(
        verify_update(&expected, &auth, Some(&head), std::slice::from_ref(&m1)).unwrap_err(),
        ManifestError::Rollback { head: 2, served: 1 }
    );
    // Pins the server forged for another genesis do not merge.
    let mut forged = laptop.clone();
    forged.workspaces.get_mut(&ws).unwrap().genesis = mallory_genesis(&mallory, ws);
    assert_eq!(
        merged.merge(&forged).unwrap_err(),
        MergeError::ConflictingGenesis(ws)
    );
}

fn mallory_genesis(mallory: &Device, ws: WorkspaceId) -> klef_core::trust::roster::EntryHash {
    VerifiedRoster::create(
        ws,
        mallory.record("m@example.com", Role::Owner, Access::All),
        &mallory.identity,
    )
    .unwrap()
    .1
    .genesis()
}
