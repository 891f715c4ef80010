//! API tokens (DESIGN.md §2): `klef_user_<id>_<secret>` and `klef_sys_<id>_<secret>`.
//!
//! * `<id>` is the [`ApiKeyId`]'s 16 bytes in lower-case Crockford base32 (26 symbols). It is
//!   public: `klef_<kind>_<id>` is the key's [`prefix`](ApiToken::prefix), shown by
//!   `klef keys list` and used to revoke it.
//! * `<secret>` is 256 random bits in lower-case Crockford base32 (52 symbols). The server keeps
//!   only [`secret_hash`](ApiToken::secret_hash), SHA-256 of the 32 secret bytes, and compares
//!   with [`ApiToken::verify_secret_hash`] in constant time.
//! * A system key's X25519 key pair is derived from the secret with HKDF-SHA256 (info
//!   `klef/v1/system-key`), so CI holding only the token can unwrap the environment keys that
//!   an admin wrapped to its public key.
//!
//! Session tokens are `klef_sess_<secret>` ([`new_session_token`]); the server stores
//! [`sha256_hex`](super::sha256_hex) of the whole token string.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use zeroize::Zeroizing;

use super::{PrivateKey, PublicKey, base32, constant_time_eq, fill_random, hkdf_sha256_key};
use crate::ids::{ApiKeyId, RawId};

/// Every token starts with this.
const PREFIX: &str = "klef_";
/// Symbols in an id.
const ID_LEN: usize = base32::encoded_len(16);
/// Symbols in a secret.
const SECRET_LEN: usize = base32::encoded_len(32);
/// HKDF `info` for a system key's key pair.
const SYSTEM_KEY_INFO: &[u8] = b"klef/v1/system-key";

/// Which kind of API key a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// `klef_user_…`: authenticates as a person; unlocking still needs their password.
    User,
    /// `klef_sys_…`: a scoped machine key (CI) that decrypts end to end with its own key pair.
    System,
}

impl TokenKind {
    /// The tag written in the token: `user` or `sys`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::User => "user",
            TokenKind::System => "sys",
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a usable API token. Messages never echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// It does not start with `klef_user_` or `klef_sys_`.
    #[error("not a klef API key: expected klef_user_… or klef_sys_…")]
    NotAToken,
    /// The `<id>` part is not 26 lower-case base32 symbols.
    #[error("malformed API key: the id part is not valid")]
    BadId,
    /// The `<secret>` part is not 52 lower-case base32 symbols.
    #[error("malformed API key: the secret part is not valid")]
    BadSecret,
    /// A key pair was asked of a user key; only system keys have one.
    #[error("only system keys (klef_sys_…) have a key pair")]
    NotASystemKey,
}

/// A parsed or freshly generated API token. The secret is zeroized on drop and never shown by
/// `Debug`.
pub struct ApiToken {
    kind: TokenKind,
    id: ApiKeyId,
    secret: SecretBox<[u8; 32]>,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("prefix", &self.prefix())
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl ApiToken {
    /// A new token with a random id and a random 256-bit secret.
    #[must_use]
    pub fn generate(kind: TokenKind) -> Self {
        let mut secret = Box::new([0u8; 32]);
        fill_random(secret.as_mut());
        Self {
            kind,
            id: ApiKeyId::random(),
            secret: SecretBox::new(secret),
        }
    }

    /// Parses `klef_<user|sys>_<id>_<secret>`. Surrounding whitespace (a trailing newline from
    /// a file or variable) is ignored; everything else must be exact lower case.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        let rest = text.strip_prefix(PREFIX).ok_or(TokenError::NotAToken)?;
        let (kind, rest) = if let Some(r) = rest.strip_prefix("user_") {
            (TokenKind::User, r)
        } else if let Some(r) = rest.strip_prefix("sys_") {
            (TokenKind::System, r)
        } else {
            return Err(TokenError::NotAToken);
        };
        let (id, secret) = rest.split_once('_').ok_or(TokenError::BadId)?;
        if id.len() != ID_LEN {
            return Err(TokenError::BadId);
        }
        let id = base32::decode_str::<16>(id, true).ok_or(TokenError::BadId)?;
        if secret.len() != SECRET_LEN {
            return Err(TokenError::BadSecret);
        }
        let secret = base32::decode_str::<32>(secret, true).ok_or(TokenError::BadSecret)?;
        let secret = SecretBox::new(Box::new(secret));
        Ok(Self {
            kind,
            id: ApiKeyId(raw_id(&id)),
            secret,
        })
    }

    /// The kind of key.
    #[must_use]
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The key's id (public).
    #[must_use]
    pub fn id(&self) -> ApiKeyId {
        self.id
    }

    /// The public part, `klef_<kind>_<id>`: safe to show, store and log.
    #[must_use]
    pub fn prefix(&self) -> String {
        prefix_of(self.kind, &self.id)
    }

    /// The whole token, to show once at creation or to send as a bearer token.
    #[must_use]
    pub fn display(&self) -> SecretString {
        let mut secret = Zeroizing::new(base32::encode(self.secret.expose_secret()));
        secret.make_ascii_lowercase();
        let mut out = Zeroizing::new(self.prefix());
        out.push('_');
        out.push_str(&secret);
        SecretString::from(out.as_str())
    }

    /// SHA-256 of the 32 secret bytes as lower-case hex: what the server stores.
    #[must_use]
    pub fn secret_hash(&self) -> String {
        super::sha256_hex(self.secret.expose_secret())
    }

    /// Whether `stored_hash` (from [`secret_hash`](Self::secret_hash)) matches this token's
    /// secret, compared in constant time.
    #[must_use]
    pub fn verify_secret_hash(&self, stored_hash: &str) -> bool {
        constant_time_eq(self.secret_hash().as_bytes(), stored_hash.as_bytes())
    }

    /// A system key's X25519 key pair: the private key is HKDF-SHA256(secret, info
    /// `klef/v1/system-key`). User keys have none ([`TokenError::NotASystemKey`]).
    pub fn derive_keypair(&self) -> Result<(PrivateKey, PublicKey), TokenError> {
        if self.kind != TokenKind::System {
            return Err(TokenError::NotASystemKey);
        }
        let okm = hkdf_sha256_key(self.secret.expose_secret(), SYSTEM_KEY_INFO);
        let private = PrivateKey::from_bytes(Box::new(*okm.expose()));
        let public = private.public_key();
        Ok((private, public))
    }
}

/// The public prefix `klef_<kind>_<id>` of a key, from its kind and id (for listings).
#[must_use]
pub fn prefix_of(kind: TokenKind, id: &ApiKeyId) -> String {
    let mut out = String::with_capacity(PREFIX.len() + 5 + ID_LEN);
    out.push_str(PREFIX);
    out.push_str(kind.as_str());
    out.push('_');
    out.push_str(&base32::encode(id.0.as_bytes()).to_ascii_lowercase());
    out
}

/// Parses a public prefix `klef_<kind>_<id>` (as typed for `klef keys revoke`).
pub fn parse_prefix(text: &str) -> Result<(TokenKind, ApiKeyId), TokenError> {
    let text = text.trim();
    let rest = text.strip_prefix(PREFIX).ok_or(TokenError::NotAToken)?;
    let (kind, id) = if let Some(r) = rest.strip_prefix("user_") {
        (TokenKind::User, r)
    } else if let Some(r) = rest.strip_prefix("sys_") {
        (TokenKind::System, r)
    } else {
        return Err(TokenError::NotAToken);
    };
    if id.len() != ID_LEN {
        return Err(TokenError::BadId);
    }
    let id = base32::decode_str::<16>(id, true).ok_or(TokenError::BadId)?;
    Ok((kind, ApiKeyId(raw_id(&id))))
}

/// Builds a [`RawId`] from its 16 bytes (through its canonical text form, the only public
/// constructor).
fn raw_id(bytes: &[u8; 16]) -> RawId {
    let h = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
    .parse()
    .expect("32 hex digits in UUID layout always parse")
}

/// A fresh session token, `klef_sess_<52 base32 symbols>` (256 random bits). The server keeps
/// [`sha256_hex`](super::sha256_hex) of the whole string.
#[must_use]
pub fn new_session_token() -> SecretString {
    let mut secret = Zeroizing::new([0u8; 32]);
    fill_random(secret.as_mut());
    let mut encoded = Zeroizing::new(base32::encode(secret.as_ref()));
    encoded.make_ascii_lowercase();
    let mut out = Zeroizing::new(String::with_capacity(10 + SECRET_LEN));
    out.push_str("klef_sess_");
    out.push_str(&encoded);
    SecretString::from(out.as_str())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn format_and_parts() {
        for kind in [TokenKind::User, TokenKind::System] {
            let token = ApiToken::generate(kind);
            let shown = token.display();
            let text = shown.expose_secret();
            let tag = kind.as_str();
            assert!(text.starts_with(&format!("klef_{tag}_")), "{kind}");
            assert_eq!(text.len(), 5 + tag.len() + 1 + 26 + 1 + 52);
            assert!(text.starts_with(&token.prefix()));
            assert_eq!(token.prefix().len(), 5 + tag.len() + 1 + 26);
            assert!(
                text.bytes()
                    .all(|c| c == b'_' || c.is_ascii_digit() || c.is_ascii_lowercase())
            );
            assert_eq!(parse_prefix(&token.prefix()).unwrap(), (kind, token.id()));
            assert_eq!(token.secret_hash().len(), 64);
            assert!(token.verify_secret_hash(&token.secret_hash()));
            assert!(!token.verify_secret_hash(&ApiToken::generate(kind).secret_hash()));
            assert!(!format!("{token:?}").contains(&text[token.prefix().len() + 1..]));
        }
    }

    #[test]
    fn parse_errors_are_specific() {
        let token = ApiToken::generate(TokenKind::System);
        let shown = token.display();
        let text = shown.expose_secret();
        let (prefix, secret) = text.rsplit_once('_').unwrap();
        assert_eq!(
            ApiToken::parse("ghp_abc").err(),
            Some(TokenError::NotAToken)
        );
        assert_eq!(
            ApiToken::parse("klef_admin_x_y").err(),
            Some(TokenError::NotAToken)
        );
        assert_eq!(ApiToken::parse(prefix).err(), Some(TokenError::BadId));
        assert_eq!(
            ApiToken::parse(&format!("{prefix}_{}", &secret[1..])).err(),
            Some(TokenError::BadSecret)
        );
        assert_eq!(
            ApiToken::parse(
                &text
                    .to_ascii_uppercase()
                    .replacen("KLEF_SYS_", "klef_sys_", 1)
            )
            .err(),
            Some(TokenError::BadId)
        );
        // 'u' is not a Crockford symbol.
        assert_eq!(
            ApiToken::parse(&format!("{prefix}_u{}", &secret[1..])).err(),
            Some(TokenError::BadSecret)
        );
        // Surrounding whitespace (a trailing newline from a file) is fine.
        let parsed = ApiToken::parse(&format!("{text}\n")).unwrap();
        assert_eq!(parsed.secret_hash(), token.secret_hash());
    }

    #[test]
    fn system_keys_derive_a_stable_keypair() {
        let token = ApiToken::generate(TokenKind::System);
        let (sk, pk) = token.derive_keypair().unwrap();
        assert_eq!(sk.public_key(), pk);
        let again = ApiToken::parse(token.display().expose_secret()).unwrap();
        assert_eq!(again.derive_keypair().unwrap().1, pk);
        assert_ne!(
            ApiToken::generate(TokenKind::System)
                .derive_keypair()
                .unwrap()
                .1,
            pk
        );
        assert_eq!(
            ApiToken::generate(TokenKind::User).derive_keypair().err(),
            Some(TokenError::NotASystemKey)
        );
    }

    #[test]
    fn system_key_derivation_is_pinned() {
        // Secret = 32 zero bytes → "klef_sys_<id>_" + 52 × '0'. Private key =
        // HKDF-SHA256(zeros, info "klef/v1/system-key"), computed independently.
        let text = format!(
            "{}_{}",
            prefix_of(TokenKind::System, &ApiKeyId::random()),
            "0".repeat(52)
        );
        let token = ApiToken::parse(&text).unwrap();
        let (sk, _) = token.derive_keypair().unwrap();
        assert_eq!(
            hex::encode(sk.expose()),
            include_str!("../../tests/data/system_key_zero.hex").trim()
        );
        assert_eq!(
            token.secret_hash(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn session_tokens() {
        let a = new_session_token();
        let b = new_session_token();
        assert!(a.expose_secret().starts_with("klef_sess_"));
        assert_eq!(a.expose_secret().len(), 10 + 52);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(
            super::super::sha256_hex(a.expose_secret().as_bytes()).len(),
            64
        );
    }

    proptest! {
        #[test]
        fn token_round_trip(secret in proptest::array::uniform32(any::<u8>()), system in any::<bool>()) {
            let kind = if system { TokenKind::System } else { TokenKind::User };
            let token = ApiToken { kind, id: ApiKeyId::random(), secret: SecretBox::new(Box::new(secret)) };
            let parsed = ApiToken::parse(token.display().expose_secret()).unwrap();
            prop_assert_eq!(parsed.kind(), kind);
            prop_assert_eq!(parsed.id(), token.id());
            prop_assert_eq!(parsed.secret.expose_secret(), &secret);
        }
    }
}
