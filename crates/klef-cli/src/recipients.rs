//! Who an environment key may be wrapped to (DESIGN.md §9.2: every wrap goes to a verified
//! key). The server lists an environment's direct grants with public keys; that list is a
//! claim. In a workspace with a signed roster, each member recipient must be a reader of the
//! environment in the verified roster with the same X25519 key, or nothing is wrapped: a server
//! that slips in its own key, or keeps a removed member on the list, is named in the error.
//!
//! System keys are checked the same way against their roster records ([`check_system_key`]).
//! A key made before signed rosters, or any recipient in a workspace without a roster, is
//! still wrapped to as the server lists it, and named as unverified.

use anyhow::Result;
use klef_core::backend::Backend as _;
use klef_core::crypto::PublicKey;
use klef_core::model::{GrantInfo, Grantee};
use klef_core::trust::roster::PrincipalId;
use serde_json::{Value, json};

use crate::backend::AnyBackend;
use crate::context::{Context, Target};
use crate::diagnostics::Failure;
use crate::trust::Trust;
use crate::unlock::KeySource;

/// One recipient of an environment key.
pub(crate) struct Recipient {
    /// Who, as the grant names them.
    pub(crate) grantee: Grantee,
    /// The key to wrap to.
    pub(crate) public_key: PublicKey,
    /// An email or a key id, for messages.
    pub(crate) label: String,
    /// Whether the key was checked against the verified roster.
    pub(crate) verified: bool,
}

impl Recipient {
    /// One line for the user.
    pub(crate) fn describe(&self) -> String {
        let kind = match self.grantee {
            Grantee::Account(_) => "member",
            Grantee::ApiKey(_) => "system key",
        };
        if self.verified {
            format!("{kind} {} (verified in the signed roster)", self.label)
        } else {
            format!(
                "{kind} {} (not verified: not in a signed roster)",
                self.label
            )
        }
    }

    /// The `--json` form.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "grantee": self.grantee,
            "label": self.label,
            "verified": self.verified,
        })
    }
}

/// Checks the grants the server lists for `t` and returns whom to wrap its new key to.
pub(crate) async fn verified(
    ctx: &Context,
    b: &AnyBackend,
    keys: &KeySource,
    t: &Target,
    grants: &[GrantInfo],
) -> Result<Vec<Recipient>> {
    let mut listed = Vec::with_capacity(grants.len());
    for g in grants {
        let key = PublicKey::from_slice(g.public_key.as_bytes()).map_err(|_| {
            Failure::other(format!(
                "the server sent a malformed public key for a grantee of {}: it altered the grant list; nothing was rotated",
                t.describe()
            ))
        })?;
        listed.push((g.grantee, key));
    }
    let Some(remote) = b.as_remote() else {
        // The local vault: this machine's own records.
        return Ok(as_listed(listed, true));
    };
    let ws_id = t.project.workspace_id;
    let ws_name = b
        .workspaces()
        .await?
        .into_iter()
        .find(|w| w.id == ws_id)
        .map_or_else(|| ws_id.to_string(), |w| w.name);
    let mut trust = Trust::load(ctx, remote, keys).await?;
    let Some(roster) = trust.roster_if_pinned(&ws_id, &ws_name).await? else {
        if !listed.is_empty() {
            ctx.printer.warn(&format!(
                "workspace \"{ws_name}\" has no signed roster (it was made before signed rosters), so the {} recipient(s) the server lists cannot be verified",
                listed.len()
            ));
        }
        return Ok(as_listed(listed, false));
    };
    trust.save().await?;
    let readers = roster.readers(&t.project.id, &t.env.id);
    let mut out = Vec::with_capacity(listed.len());
    for (grantee, public_key) in listed {
        let principal = match &grantee {
            Grantee::Account(a) => PrincipalId::Member(*a),
            Grantee::ApiKey(k) => PrincipalId::SystemKey(*k),
        };
        let label = match &grantee {
            Grantee::Account(a) => roster
                .member(a)
                .map_or_else(|| a.to_string(), |m| m.email.clone()),
            Grantee::ApiKey(_) => label_of(&grantee),
        };
        if let Grantee::ApiKey(key) = &grantee {
            let verified = check_system_key(
                Some(&roster),
                key,
                &label,
                &public_key,
                &t.project.id,
                &t.env.id,
            )?;
            out.push(Recipient {
                grantee,
                public_key,
                label,
                verified,
            });
            continue;
        }
        match readers.iter().find(|(p, _)| *p == principal) {
            Some((_, key)) if *key == public_key => out.push(Recipient {
                grantee,
                public_key,
                label,
                verified: true,
            }),
            Some(_) => {
                return Err(Failure::other(format!(
                    "the server lists another public key for {label} than the signed roster of \"{ws_name}\" holds: it substituted a key; nothing was rotated"
                ))
                .hint("tell the server's operator; do not share keys through this server until it is resolved")
                .into());
            }
            None => {
                return Err(Failure::other(format!(
                    "the server lists {label} as a recipient of {}, but the signed roster of \"{ws_name}\" gives them no access (never confirmed, restricted elsewhere, or removed): nothing was rotated",
                    t.describe()
                ))
                .hint(format!("if {label} was confirmed before the workspace had a signed roster, vouch for them with `klef workspace confirm EMAIL --fingerprint FP`; otherwise tell the server's operator"))
                .into());
            }
        }
    }
    Ok(out)
}

/// The recipients as the server listed them, `verified` or not.
fn as_listed(listed: Vec<(Grantee, PublicKey)>, verified: bool) -> Vec<Recipient> {
    listed
        .into_iter()
        .map(|(grantee, public_key)| Recipient {
            label: label_of(&grantee),
            grantee,
            public_key,
            verified,
        })
        .collect()
}

fn label_of(grantee: &Grantee) -> String {
    match grantee {
        Grantee::Account(a) => a.to_string(),
        // As `klef keys list` shows it.
        Grantee::ApiKey(k) => crate::commands::keys::short_prefix(
            &klef_core::crypto::token::prefix_of(klef_core::crypto::token::TokenKind::System, k),
        ),
    }
}

/// Checks a system key the server lists as a recipient of `environment` of `project` against
/// `roster` (`None`: a workspace without a signed roster). `Ok(true)`: its verified record
/// covers the environment with this very key; `Ok(false)`: the roster has never heard of it (a
/// key made before signed rosters), to be named as unverified; an error when the server
/// substituted its key, or lists it after its removal or outside its recorded scopes.
pub(crate) fn check_system_key(
    roster: Option<&klef_core::trust::roster::VerifiedRoster>,
    key: &klef_core::ids::ApiKeyId,
    label: &str,
    public: &PublicKey,
    project: &klef_core::ids::ProjectId,
    environment: &klef_core::ids::EnvironmentId,
) -> Result<bool> {
    let Some(roster) = roster else {
        return Ok(false);
    };
    match roster.system_key(key) {
        Some(rec) if rec.x25519_key != *public => Err(Failure::other(format!(
            "the server lists another public key for {label} than the signed roster holds: it substituted a key; nothing was changed"
        ))
        .hint("tell the server's operator; do not share keys through this server until it is resolved")
        .into()),
        Some(rec) if !rec.covers(project, environment) => Err(Failure::other(format!(
            "the server lists {label} as a recipient, but its record in the signed roster does not cover this environment: nothing was changed"
        ))
        .into()),
        Some(_) => Ok(true),
        None if roster.ever_listed(&PrincipalId::SystemKey(*key)) => Err(Failure::other(format!(
            "the server lists {label} as a recipient, but it was revoked in the signed roster: nothing was changed"
        ))
        .into()),
        None => Ok(false),
    }
}
