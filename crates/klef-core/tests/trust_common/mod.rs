//! Shared fixtures for the trust-record tests: people with derived identity keys, a system key,
//! and a workspace roster built through the public API.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;

use klef_core::crypto::{PrivateKey, SymmetricKey};
use klef_core::ids::{AccountId, ApiKeyId, EnvironmentId, ProjectId, WorkspaceId};
use klef_core::model::Role;
use klef_core::trust::identity::SigningKey;
use klef_core::trust::roster::{
    Access, MemberRecord, Permission, Record, Scope, SignedEntry, SystemKeyRecord, VerifiedRoster,
};

/// A person: an account with a master key, its derived identity key and an X25519 key pair.
pub struct Person {
    pub account: AccountId,
    pub key: SigningKey,
    pub x25519: PrivateKey,
    pub email: String,
}

impl Person {
    /// A person whose keys all come from `seed` (deterministic).
    pub fn new(seed: u8, email: &str) -> Self {
        let account = AccountId(
            format!("00000000-0000-4000-8000-0000000000{seed:02x}")
                .parse()
                .unwrap(),
        );
        let master = SymmetricKey::from_bytes(Box::new([seed; 32]));
        Self {
            account,
            key: SigningKey::derive_identity(&master, &account),
            x25519: PrivateKey::from_bytes(Box::new([seed.wrapping_add(100); 32])),
            email: email.to_owned(),
        }
    }

    pub fn record(&self, role: Role, access: Access) -> MemberRecord {
        MemberRecord {
            account: self.account,
            email: self.email.clone(),
            identity_key: self.key.verifying_key(),
            x25519_key: self.x25519.public_key(),
            role,
            access,
        }
    }
}

/// A system key with keys from `seed`.
pub struct Machine {
    pub id: ApiKeyId,
    pub key: SigningKey,
    pub x25519: PrivateKey,
}

impl Machine {
    pub fn new(seed: u8) -> Self {
        let master = SymmetricKey::from_bytes(Box::new([seed; 32]));
        let id = ApiKeyId(
            format!("10000000-0000-4000-8000-0000000000{seed:02x}")
                .parse()
                .unwrap(),
        );
        Self {
            id,
            // Any Ed25519 key will do for the roster tests; api_key tests derive the real ones.
            key: SigningKey::derive_identity(&master, &AccountId(id.0)),
            x25519: PrivateKey::from_bytes(Box::new([seed.wrapping_add(50); 32])),
        }
    }

    pub fn record(
        &self,
        scopes: &[Scope],
        permission: Permission,
        creator: AccountId,
    ) -> SystemKeyRecord {
        SystemKeyRecord {
            key: self.id,
            x25519_key: self.x25519.public_key(),
            signing_key: self.key.verifying_key(),
            scopes: scopes.iter().copied().collect(),
            permission,
            creator,
        }
    }
}

/// A small workspace: owner Olivia, admin Adam, member Mia restricted to `staging`, and a
/// read-write CI key created by Adam scoped to `production`.
pub struct World {
    pub workspace: WorkspaceId,
    pub project: ProjectId,
    pub staging: EnvironmentId,
    pub production: EnvironmentId,
    pub owner: Person,
    pub admin: Person,
    pub member: Person,
    pub ci: Machine,
    pub entries: Vec<SignedEntry>,
    pub roster: VerifiedRoster,
}

impl World {
    pub fn new() -> Self {
        let workspace: WorkspaceId = "20000000-0000-4000-8000-000000000001".parse().unwrap();
        let project: ProjectId = "30000000-0000-4000-8000-000000000001".parse().unwrap();
        let staging: EnvironmentId = "40000000-0000-4000-8000-000000000001".parse().unwrap();
        let production: EnvironmentId = "40000000-0000-4000-8000-000000000002".parse().unwrap();
        let owner = Person::new(1, "olivia@example.com");
        let admin = Person::new(2, "adam@example.com");
        let member = Person::new(3, "mia@example.com");
        let ci = Machine::new(4);
        let (genesis, roster) = VerifiedRoster::create(
            workspace,
            owner.record(Role::Owner, Access::All),
            &owner.key,
        )
        .unwrap();
        let mut world = Self {
            workspace,
            project,
            staging,
            production,
            owner,
            admin,
            member,
            ci,
            entries: vec![genesis],
            roster,
        };
        let admin_record = Record::Member(world.admin.record(Role::Admin, Access::All));
        world.append(admin_record, Who::Owner);
        let member_record = Record::Member(
            world
                .member
                .record(Role::Member, Access::Only(BTreeSet::from([world.staging]))),
        );
        world.append(member_record, Who::Admin);
        let ci_record = Record::SystemKey(world.ci.record(
            &[Scope {
                project: world.project,
                environment: Some(world.production),
            }],
            Permission::ReadWrite,
            world.admin.account,
        ));
        world.append(ci_record, Who::Admin);
        world
    }

    pub fn person(&self, who: Who) -> &Person {
        match who {
            Who::Owner => &self.owner,
            Who::Admin => &self.admin,
            Who::Member => &self.member,
        }
    }

    /// Appends an entry signed by `who` through the public API (it must be valid).
    pub fn append(&mut self, record: Record, who: Who) -> SignedEntry {
        let p = self.person(who);
        let (entry, roster) = self.roster.append(record, p.account, &p.key).unwrap();
        self.entries.push(entry.clone());
        self.roster = roster;
        entry
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Who {
    Owner,
    Admin,
    Member,
}
