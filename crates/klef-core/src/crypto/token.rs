//! API tokens (DESIGN.md §2, §9.4): `klef_user_<id>_<secret>` and `klef_sys_<id>_<secret>`, and
//! the bearer credential derived from them, which is all the server ever sees.
//!
//! * `<id>` is the [`ApiKeyId`]'s 16 bytes in lower-case Crockford base32 (26 symbols). It is
//!   public: `klef_<kind>_<id>` is the key's [`prefix`](ApiToken::prefix), shown by
//!   `klef keys list` and used to revoke it.
//! * `<secret>` is the format symbol `2` followed by 256 random bits in lower-case Crockford
//!   base32 (1 + 52 symbols). Tokens of the first format (52 symbols, no format symbol) had
//!   their secret sent whole to the server; they parse to [`TokenError::OldFormat`] and are
//!   never used. A client of the first format refuses a token of this one (wrong length), so
//!   an outdated `klef` cannot send a new secret whole either.
//! * The secret never leaves the machine. [`ApiToken::split`] derives, by HKDF-SHA256
//!   ([`SplitSecret`]), a bearer credential, an X25519 key pair (environment keys in a system
//!   key's scopes are wrapped to its public key), an Ed25519 signing key and the CI anchor key.
//! * The `Authorization` header carries only the bearer credential, as
//!   `klef_bearer_<kind>_<id>_<bearer>` ([`ApiToken::bearer_token`], 52 base32 symbols for the
//!   32 credential bytes). The server stores SHA-256 of the credential
//!   ([`ApiToken::bearer_hash`]) and compares with [`PresentedBearer::matches_hash`] in
//!   constant time. Nothing it stores or receives opens a wrapped key or signs.
//!
//! Session tokens are `klef_sess_<secret>` ([`new_session_token`]); the server stores
//! [`sha256_hex`](super::sha256_hex) of the whole string.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use zeroize::Zeroizing;

use super::{PrivateKey, PublicKey, base32, constant_time_eq, fill_random};
use crate::ids::{ApiKeyId, RawId};
use crate::trust::api_key::SplitSecret;

/// Every token starts with this.
const PREFIX: &str = "klef_";
/// Every bearer credential starts with this.
const BEARER_PREFIX: &str = "klef_bearer_";
/// Symbols in an id.
const ID_LEN: usize = base32::encoded_len(16);
/// Symbols of 32 bytes.
const SECRET_LEN: usize = base32::encoded_len(32);
/// The format symbol that starts the `<secret>` of a token with split secrets.
const FORMAT_SPLIT: char = '2';

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

/// What to tell the holder of a key of the first format (its secret went to the server).
pub const OLD_FORMAT_ADVICE: &str = "this API key is in the old format, whose whole secret was \
     sent to the server: re-create it with `klef keys create` and rotate the environments it \
     could read (`klef env rotate-key`)";

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
    /// The `<secret>` part is not the format symbol and 52 lower-case base32 symbols.
    #[error("malformed API key: the secret part is not valid")]
    BadSecret,
    /// A well-formed token of the first format, whose secret was sent whole to the server.
    #[error("{OLD_FORMAT_ADVICE}")]
    OldFormat,
    /// A key pair was asked of a user key; only system keys have one.
    #[error("only system keys (klef_sys_…) have a key pair")]
    NotASystemKey,
    /// A bearer credential that is not `klef_bearer_<user|sys>_<id>_<52 symbols>`.
    #[error("malformed API key credential: expected klef_bearer_<user|sys>_<id>_<credential>")]
    BadBearer,
}

/// Splits `klef_<user|sys>_<rest>` (after `prefix`) into the kind and the rest.
fn kind_and_rest<'a>(text: &'a str, prefix: &str) -> Option<(TokenKind, &'a str)> {
    let rest = text.strip_prefix(prefix)?;
    if let Some(r) = rest.strip_prefix("user_") {
        Some((TokenKind::User, r))
    } else {
        rest.strip_prefix("sys_").map(|r| (TokenKind::System, r))
    }
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
        Self::from_parts(kind, ApiKeyId::random(), secret)
    }

    /// A token from its parts (test vectors, and tests that need a fixed secret).
    #[must_use]
    pub fn from_parts(kind: TokenKind, id: ApiKeyId, secret: Box<[u8; 32]>) -> Self {
        Self {
            kind,
            id,
            secret: SecretBox::new(secret),
        }
    }

    /// Parses `klef_<user|sys>_<id>_2<secret>`. Surrounding whitespace (a trailing newline from
    /// a file or variable) is ignored; everything else must be exact lower case. A well-formed
    /// token of the first format (no format symbol) is [`TokenError::OldFormat`].
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        let (kind, rest) = kind_and_rest(text, PREFIX).ok_or(TokenError::NotAToken)?;
        let (id, secret) = rest.split_once('_').ok_or(TokenError::BadId)?;
        if id.len() != ID_LEN {
            return Err(TokenError::BadId);
        }
        let id = base32::decode_str::<16>(id, true).ok_or(TokenError::BadId)?;
        if secret.len() == SECRET_LEN && base32::decode_str::<32>(secret, true).is_some() {
            return Err(TokenError::OldFormat);
        }
        let secret = secret
            .strip_prefix(FORMAT_SPLIT)
            .filter(|s| s.len() == SECRET_LEN)
            .and_then(|s| base32::decode_str::<32>(s, true))
            .ok_or(TokenError::BadSecret)?;
        Ok(Self::from_parts(
            kind,
            ApiKeyId(raw_id(&id)),
            Box::new(secret),
        ))
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

    /// The whole token, to show once at creation. Never sent anywhere: send
    /// [`bearer_token`](Self::bearer_token).
    #[must_use]
    pub fn display(&self) -> SecretString {
        let mut secret = Zeroizing::new(base32::encode(self.secret.expose_secret()));
        secret.make_ascii_lowercase();
        let mut out = Zeroizing::new(self.prefix());
        out.push('_');
        out.push(FORMAT_SPLIT);
        out.push_str(&secret);
        SecretString::from(out.as_str())
    }

    /// The keys derived from the secret (DESIGN.md §9.4).
    #[must_use]
    pub fn split(&self) -> SplitSecret {
        SplitSecret::new(*self.secret.expose_secret())
    }

    /// What goes in `Authorization: Bearer …`: `klef_bearer_<kind>_<id>_<credential>`, the
    /// credential `HKDF(secret, "klef/v1/api-key/bearer")` in lower-case base32.
    #[must_use]
    pub fn bearer_token(&self) -> SecretString {
        let bearer = self.split().bearer();
        let mut encoded = Zeroizing::new(base32::encode(bearer.expose()));
        encoded.make_ascii_lowercase();
        let mut out = Zeroizing::new(String::with_capacity(
            BEARER_PREFIX.len() + 5 + ID_LEN + 1 + SECRET_LEN,
        ));
        out.push_str(BEARER_PREFIX);
        out.push_str(self.kind.as_str());
        out.push('_');
        out.push_str(&base32::encode(self.id.0.as_bytes()).to_ascii_lowercase());
        out.push('_');
        out.push_str(&encoded);
        SecretString::from(out.as_str())
    }

    /// SHA-256 of the bearer credential as lower-case hex: what the client registers and the
    /// server stores. It is not SHA-256 of the secret, and nothing about the secret follows
    /// from it.
    #[must_use]
    pub fn bearer_hash(&self) -> String {
        self.split().bearer().hash_hex()
    }

    /// A system key's X25519 key pair: the private key is HKDF-SHA256(secret, info
    /// `klef/v1/api-key/x25519`). User keys have none ([`TokenError::NotASystemKey`]).
    pub fn keypair(&self) -> Result<(PrivateKey, PublicKey), TokenError> {
        if self.kind != TokenKind::System {
            return Err(TokenError::NotASystemKey);
        }
        Ok(self.split().x25519())
    }

    /// A system key's Ed25519 public key (its seed is HKDF-SHA256(secret, info
    /// `klef/v1/api-key/ed25519`)). User keys have none ([`TokenError::NotASystemKey`]).
    pub fn signing_public_key(&self) -> Result<[u8; 32], TokenError> {
        if self.kind != TokenKind::System {
            return Err(TokenError::NotASystemKey);
        }
        Ok(self.split().signing_key().verifying_key().to_bytes())
    }
}

/// Whether `text` is a whole API token (`klef_user_…`, `klef_sys_…`) rather than a bearer
/// credential: what a client of the first format sends. The server refuses it without
/// looking at it further.
#[must_use]
pub fn is_whole_token(text: &str) -> bool {
    kind_and_rest(text.trim(), PREFIX).is_some()
}

/// Whether `text` is shaped like a bearer credential (`klef_bearer_…`).
#[must_use]
pub fn is_bearer_token(text: &str) -> bool {
    text.trim().starts_with(BEARER_PREFIX)
}

/// A bearer credential as the server receives it.
pub struct PresentedBearer {
    kind: TokenKind,
    id: ApiKeyId,
    credential: SecretBox<[u8; 32]>,
}

impl fmt::Debug for PresentedBearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedBearer")
            .field("prefix", &self.prefix())
            .field("credential", &"[redacted]")
            .finish()
    }
}

impl PresentedBearer {
    /// Parses `klef_bearer_<user|sys>_<id>_<52 symbols>` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let (kind, rest) =
            kind_and_rest(text.trim(), BEARER_PREFIX).ok_or(TokenError::BadBearer)?;
        let (id, credential) = rest.split_once('_').ok_or(TokenError::BadBearer)?;
        if id.len() != ID_LEN || credential.len() != SECRET_LEN {
            return Err(TokenError::BadBearer);
        }
        let id = base32::decode_str::<16>(id, true).ok_or(TokenError::BadBearer)?;
        let credential = base32::decode_str::<32>(credential, true).ok_or(TokenError::BadBearer)?;
        Ok(Self {
            kind,
            id: ApiKeyId(raw_id(&id)),
            credential: SecretBox::new(Box::new(credential)),
        })
    }

    /// The kind of key it claims to be.
    #[must_use]
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The key's id.
    #[must_use]
    pub fn id(&self) -> ApiKeyId {
        self.id
    }

    /// The key's public prefix.
    #[must_use]
    pub fn prefix(&self) -> String {
        prefix_of(self.kind, &self.id)
    }

    /// Whether SHA-256 of the credential is `stored_hash` ([`ApiToken::bearer_hash`]),
    /// compared in constant time.
    #[must_use]
    pub fn matches_hash(&self, stored_hash: &str) -> bool {
        let hash = super::sha256_hex(self.credential.expose_secret());
        constant_time_eq(hash.as_bytes(), stored_hash.as_bytes())
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
    let (kind, id) = kind_and_rest(text.trim(), PREFIX).ok_or(TokenError::NotAToken)?;
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
    use std::str::FromStr as _;

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
            assert_eq!(text.len(), 5 + tag.len() + 1 + 26 + 1 + 1 + 52);
            assert!(text.starts_with(&format!("{}_2", token.prefix())));
            assert_eq!(token.prefix().len(), 5 + tag.len() + 1 + 26);
            assert!(
                text.bytes()
                    .all(|c| c == b'_' || c.is_ascii_digit() || c.is_ascii_lowercase())
            );
            assert_eq!(parse_prefix(&token.prefix()).unwrap(), (kind, token.id()));
            assert!(!format!("{token:?}").contains(&text[token.prefix().len() + 1..]));

            // The bearer credential: its own prefix, the id, and nothing of the secret.
            let bearer = token.bearer_token();
            let bearer = bearer.expose_secret();
            let id_part = &token.prefix()[5 + tag.len() + 1..];
            assert_eq!(
                bearer.len(),
                "klef_bearer_".len() + tag.len() + 1 + 26 + 1 + 52
            );
            assert!(bearer.starts_with(&format!("klef_bearer_{tag}_{id_part}_")));
            assert!(!bearer.contains(&text[token.prefix().len() + 2..]));
            assert!(is_bearer_token(bearer) && !is_whole_token(bearer));
            assert!(is_whole_token(text) && !is_bearer_token(text));
            let presented = PresentedBearer::parse(bearer).unwrap();
            assert_eq!((presented.kind(), presented.id()), (kind, token.id()));
            assert_eq!(presented.prefix(), token.prefix());
            assert!(presented.matches_hash(&token.bearer_hash()));
            assert!(!presented.matches_hash(&ApiToken::generate(kind).bearer_hash()));
            assert!(!format!("{presented:?}").contains(&bearer[bearer.len() - 52..]));
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
            ApiToken::parse(&format!("{prefix}_{}", &secret[1..secret.len() - 1])).err(),
            Some(TokenError::BadSecret)
        );
        // The first format: no format symbol, 52 symbols. Refused with the advice.
        assert_eq!(
            ApiToken::parse(&format!("{prefix}_{}", &secret[1..])).err(),
            Some(TokenError::OldFormat)
        );
        assert!(
            TokenError::OldFormat
                .to_string()
                .contains("klef keys create")
        );
        // Another format symbol.
        assert_eq!(
            ApiToken::parse(&format!("{prefix}_3{}", &secret[1..])).err(),
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
            ApiToken::parse(&format!("{prefix}_2u{}", &secret[2..])).err(),
            Some(TokenError::BadSecret)
        );
        // A bearer credential is not a token, and a token is not a bearer credential.
        assert_eq!(
            ApiToken::parse(token.bearer_token().expose_secret()).err(),
            Some(TokenError::NotAToken)
        );
        assert_eq!(
            PresentedBearer::parse(text).err(),
            Some(TokenError::BadBearer)
        );
        let bearer = token.bearer_token();
        let bearer = bearer.expose_secret();
        assert_eq!(
            PresentedBearer::parse(&bearer[..bearer.len() - 1]).err(),
            Some(TokenError::BadBearer)
        );
        // Surrounding whitespace (a trailing newline from a file) is fine.
        let parsed = ApiToken::parse(&format!("{text}\n")).unwrap();
        assert_eq!(parsed.bearer_hash(), token.bearer_hash());
    }

    #[test]
    fn system_keys_derive_a_stable_keypair_and_signing_key() {
        let token = ApiToken::generate(TokenKind::System);
        let (sk, pk) = token.keypair().unwrap();
        assert_eq!(sk.public_key(), pk);
        let again = ApiToken::parse(token.display().expose_secret()).unwrap();
        assert_eq!(again.keypair().unwrap().1, pk);
        assert_eq!(
            again.signing_public_key().unwrap(),
            token.signing_public_key().unwrap()
        );
        assert_ne!(
            ApiToken::generate(TokenKind::System).keypair().unwrap().1,
            pk
        );
        let user = ApiToken::generate(TokenKind::User);
        assert_eq!(user.keypair().err(), Some(TokenError::NotASystemKey));
        assert_eq!(
            user.signing_public_key().err(),
            Some(TokenError::NotASystemKey)
        );
    }

    /// The vector of docs/crypto.md and `tests/data/trust-vectors.json` (`api_key`): secret =
    /// 32 zero bytes, key id `10000000-0000-4000-8000-000000000004`.
    #[test]
    fn split_derivation_is_pinned() {
        let id = ApiKeyId::from_str("10000000-0000-4000-8000-000000000004").unwrap();
        let token = ApiToken::from_parts(TokenKind::System, id, Box::new([0; 32]));
        assert_eq!(
            token.display().expose_secret(),
            &format!("klef_sys_{ZERO_ID}_2{}", "0".repeat(52))
        );
        assert_eq!(
            token.bearer_token().expose_secret(),
            &format!("klef_bearer_sys_{ZERO_ID}_{ZERO_BEARER}")
        );
        assert_eq!(
            token.bearer_hash(),
            "3241613027c3d7742b320fc8e675150582f487e29f147ad0f4ae4578470bb26f"
        );
        // Not SHA-256 of the secret (what the first format stored).
        assert_ne!(
            token.bearer_hash(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        assert_eq!(
            hex::encode(token.keypair().unwrap().1.0),
            "a46dd968a28b263e1d27fb4ab6a076ed6bea24e420086aa99ad95cec3559e219"
        );
        assert_eq!(
            hex::encode(token.signing_public_key().unwrap()),
            "535ddff7915db20a7fb688d45d81e946b7ba57c8f77c903601b1b654fb06b958"
        );
    }

    const ZERO_ID: &str = "2000000001001000000000000g";
    const ZERO_BEARER: &str = "7fj2ankwptgbf4tq93v5zdp3wst5q47pv0by3vg8cm40tge7v1wg";

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
            let token = ApiToken::from_parts(kind, ApiKeyId::random(), Box::new(secret));
            let parsed = ApiToken::parse(token.display().expose_secret()).unwrap();
            prop_assert_eq!(parsed.kind(), kind);
            prop_assert_eq!(parsed.id(), token.id());
            prop_assert_eq!(parsed.secret.expose_secret(), &secret);
            let presented = PresentedBearer::parse(token.bearer_token().expose_secret()).unwrap();
            prop_assert!(presented.matches_hash(&token.bearer_hash()));
        }
    }
}
