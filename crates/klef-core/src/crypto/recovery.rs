//! Recovery codes: 256 random bits a person can write down and type back, grouped, with a
//! per-group checksum so a typo is caught (and its group named) before any crypto runs.

use std::fmt;

use zeroize::Zeroizing;

use super::{CryptoError, SymmetricKey, base32};

/// A recovery code's 256 bits. Zeroized on drop; no `Debug`/`Display`.
pub struct RecoveryCode(SymmetricKey);

/// Number of groups in a printed code.
pub const GROUPS: usize = 13;
/// Data symbols per group (the fifth symbol of each group is its check symbol).
const DATA_PER_GROUP: usize = 4;
/// Symbols per printed group.
const GROUP_LEN: usize = DATA_PER_GROUP + 1;
/// HKDF `info` for the recovery key.
const RECOVERY_INFO: &[u8] = b"klef/v1/recovery";

/// Why a typed recovery code was rejected. `Debug` and `Display` never show the typed text: it
/// is part of a secret.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryCodeError {
    /// The code has the wrong number of groups or characters.
    #[error("the recovery code must have {expected} groups, found {found}")]
    WrongLength {
        /// Expected group count.
        expected: usize,
        /// Found group count.
        found: usize,
    },
    /// One group's checksum does not match: a typo in that group (1-based).
    #[error("group {group} of the recovery code has a typo")]
    BadGroup {
        /// 1-based index of the bad group.
        group: usize,
        /// The group as typed (upper-cased). Part of the secret: show it only to the person
        /// typing, never log it.
        text: String,
    },
}

impl fmt::Debug for RecoveryCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongLength { expected, found } => f
                .debug_struct("WrongLength")
                .field("expected", expected)
                .field("found", found)
                .finish(),
            Self::BadGroup { group, .. } => f
                .debug_struct("BadGroup")
                .field("group", group)
                .field("text", &"[redacted]")
                .finish(),
        }
    }
}

impl RecoveryCode {
    /// A fresh random code.
    #[must_use]
    pub fn generate() -> Self {
        Self(SymmetricKey::generate())
    }

    /// The printable form: 13 groups of five Crockford base32 symbols (four data symbols and a
    /// check symbol) separated by `-`, e.g. `7K3QD-…`.
    #[must_use]
    pub fn display(&self) -> secrecy::SecretString {
        let data = Zeroizing::new(base32::encode(self.0.expose()));
        let data = data.as_bytes();
        let mut out = Zeroizing::new(String::with_capacity(GROUPS * (GROUP_LEN + 1)));
        for (g, chunk) in data.chunks(DATA_PER_GROUP).enumerate() {
            if g > 0 {
                out.push('-');
            }
            let mut values = Zeroizing::new([0u8; DATA_PER_GROUP]);
            for (v, &c) in values.iter_mut().zip(chunk) {
                *v = base32::symbol_value(c).expect("encode emits alphabet symbols");
            }
            for &c in chunk {
                out.push(char::from(c));
            }
            out.push(char::from(
                base32::ALPHABET[usize::from(check_symbol(g, values.as_slice()))],
            ));
        }
        secrecy::SecretString::from(out.as_str())
    }

    /// Parses a typed code: case-insensitive, spaces and dashes between groups ignored, `O`
    /// read as `0` and `I`/`L` as `1`. Every group's check symbol is verified before anything
    /// else, so a typo is reported as [`RecoveryCodeError::BadGroup`] naming its group.
    pub fn parse(text: &str) -> Result<Self, RecoveryCodeError> {
        let tokens: Vec<&str> = text
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        let joined = Zeroizing::new(tokens.concat());
        let groups: Vec<&[u8]> = if tokens.len() == GROUPS {
            tokens.iter().map(|t| t.as_bytes()).collect()
        } else if joined.len() == GROUPS * GROUP_LEN || tokens.len() == 1 {
            joined.as_bytes().chunks(GROUP_LEN).collect()
        } else {
            return Err(RecoveryCodeError::WrongLength {
                expected: GROUPS,
                found: tokens.len(),
            });
        };
        if groups.len() != GROUPS {
            return Err(RecoveryCodeError::WrongLength {
                expected: GROUPS,
                found: groups.len(),
            });
        }

        let mut data = Zeroizing::new(Vec::with_capacity(GROUPS * DATA_PER_GROUP));
        for (g, group) in groups.iter().enumerate() {
            let bad = || RecoveryCodeError::BadGroup {
                group: g + 1,
                text: String::from_utf8_lossy(group).to_ascii_uppercase(),
            };
            if group.len() != GROUP_LEN {
                return Err(bad());
            }
            let mut values = Zeroizing::new([0u8; GROUP_LEN]);
            for (v, &c) in values.iter_mut().zip(group.iter()) {
                *v = base32::symbol_value(c).ok_or_else(bad)?;
            }
            let (payload, check) = values.split_at(DATA_PER_GROUP);
            if check_symbol(g, payload) != check[0] {
                return Err(bad());
            }
            data.extend_from_slice(payload);
        }
        // 52 symbols carry 260 bits; the last 4 must be zero. A code we printed always passes, so
        // a failure here is a typo in the last group that happened to keep its checksum valid.
        let bytes =
            base32::decode_values::<32>(&data).ok_or_else(|| RecoveryCodeError::BadGroup {
                group: GROUPS,
                text: String::from_utf8_lossy(groups[GROUPS - 1]).to_ascii_uppercase(),
            })?;
        Ok(Self(SymmetricKey::from_bytes(Box::new(bytes))))
    }

    /// The key that seals the master key's recovery copy: HKDF-SHA256 (RFC 5869, no salt) of
    /// the code's 256 bits with info `klef/v1/recovery`. No password hashing is needed: the
    /// code has 256 bits of entropy.
    pub fn recovery_key(&self) -> Result<SymmetricKey, CryptoError> {
        Ok(super::hkdf_sha256_key(self.0.expose(), RECOVERY_INFO))
    }
}

/// The check symbol of group `g` (0-based): `(g + 1) ⊕ Σ αⁱ·vᵢ` in GF(32) with the primitive
/// polynomial x⁵ + x² + 1. Each data symbol has a distinct non-zero coefficient, so any single
/// changed symbol and any swap of two different adjacent data symbols changes the check, and
/// the group number makes groups typed in the wrong order fail too.
fn check_symbol(g: usize, values: &[u8]) -> u8 {
    const COEFFS: [u8; DATA_PER_GROUP] = [1, 2, 4, 8];
    let mut acc = (g as u8 + 1) & 31;
    for (&c, &v) in COEFFS.iter().zip(values) {
        acc ^= gf32_mul(c, v);
    }
    acc
}

/// Multiplication in GF(2⁵) modulo x⁵ + x² + 1.
fn gf32_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..5 {
        if b & 1 == 1 {
            product ^= a;
        }
        b >>= 1;
        a <<= 1;
        if a & 0x20 != 0 {
            a ^= 0x25;
        }
    }
    product & 31
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use secrecy::ExposeSecret as _;

    use super::*;

    fn code_from(bytes: [u8; 32]) -> RecoveryCode {
        RecoveryCode(SymmetricKey::from_bytes(Box::new(bytes)))
    }

    #[test]
    fn display_shape() {
        let code = RecoveryCode::generate();
        let shown = code.display();
        let groups: Vec<&str> = shown.expose_secret().split('-').collect();
        assert_eq!(groups.len(), GROUPS);
        assert!(groups.iter().all(|g| g.len() == GROUP_LEN));
        assert!(
            shown
                .expose_secret()
                .bytes()
                .all(|c| c == b'-' || base32::ALPHABET.contains(&c))
        );
    }

    #[test]
    fn known_code() {
        // All-zero bits: every data symbol is 0, so each check symbol is the group number.
        let shown = code_from([0; 32]).display();
        assert_eq!(
            shown.expose_secret(),
            "00001-00002-00003-00004-00005-00006-00007-00008-00009-0000A-0000B-0000C-0000D"
        );
    }

    #[test]
    fn parse_is_forgiving_about_case_spacing_and_confusables() {
        let code = RecoveryCode::generate();
        let shown = code.display();
        let text = shown.expose_secret();
        let key = code.recovery_key().unwrap();
        let variants = [
            text.to_owned(),
            text.to_ascii_lowercase(),
            text.replace('-', " "),
            text.replace('-', ""),
            format!("  {}\n", text.replace('-', " - ")),
            text.replace('0', "O").replace('1', "l"),
            text.replace('1', "I"),
        ];
        for v in &variants {
            let parsed = RecoveryCode::parse(v).unwrap();
            assert_eq!(parsed.recovery_key().unwrap().expose(), key.expose());
        }
    }

    #[test]
    fn wrong_lengths() {
        let shown = code_from([7; 32]).display();
        let text = shown.expose_secret();
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(
            RecoveryCode::parse(&groups[..12].join("-")).err(),
            Some(RecoveryCodeError::WrongLength {
                expected: 13,
                found: 12
            })
        );
        assert_eq!(
            RecoveryCode::parse(&format!("{text}-00001")).err(),
            Some(RecoveryCodeError::WrongLength {
                expected: 13,
                found: 14
            })
        );
        assert_eq!(
            RecoveryCode::parse("").err(),
            Some(RecoveryCodeError::WrongLength {
                expected: 13,
                found: 0
            })
        );
        // A dropped character inside group 4 (groups still separated) names group 4.
        let mut short: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        short[3].pop();
        assert!(matches!(
            RecoveryCode::parse(&short.join("-")),
            Err(RecoveryCodeError::BadGroup { group: 4, .. })
        ));
    }

    #[test]
    fn invalid_characters_and_swapped_groups_name_a_group() {
        let shown = code_from([0xa5; 32]).display();
        let text = shown.expose_secret();
        let mut groups: Vec<String> = text.split('-').map(str::to_owned).collect();
        let mut with_u = groups.clone();
        with_u[5].replace_range(0..1, "U");
        assert!(matches!(
            RecoveryCode::parse(&with_u.join("-")),
            Err(RecoveryCodeError::BadGroup { group: 6, .. })
        ));
        groups.swap(1, 2);
        assert!(matches!(
            RecoveryCode::parse(&groups.join("-")),
            Err(RecoveryCodeError::BadGroup { group: 2, .. })
        ));
    }

    #[test]
    fn errors_do_not_show_the_typed_text() {
        let err = RecoveryCodeError::BadGroup {
            group: 3,
            text: "ABCDE".into(),
        };
        assert_eq!(err.to_string(), "group 3 of the recovery code has a typo");
        assert!(!format!("{err:?}").contains("ABCDE"));
    }

    #[test]
    fn recovery_key_is_hkdf_of_the_bits() {
        // HKDF-SHA256(IKM = 32 zero bytes, no salt, info "klef/v1/recovery"), pinned.
        let key = code_from([0; 32]).recovery_key().unwrap();
        assert_eq!(
            hex::encode(key.expose()),
            include_str!("../../tests/data/recovery_key_zero.hex").trim()
        );
        assert_ne!(
            code_from([1; 32]).recovery_key().unwrap().expose(),
            key.expose()
        );
    }

    #[test]
    fn gf32_is_a_field() {
        for a in 1..32u8 {
            let inverses = (1..32u8).filter(|&b| gf32_mul(a, b) == 1).count();
            assert_eq!(inverses, 1, "{a} must have exactly one inverse");
        }
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let code = code_from(bytes);
            let parsed = RecoveryCode::parse(code.display().expose_secret()).unwrap();
            prop_assert_eq!(parsed.0.expose(), &bytes);
        }

        #[test]
        fn a_single_typo_names_its_group(
            bytes in proptest::array::uniform32(any::<u8>()),
            pos in 0..GROUPS * GROUP_LEN,
            replacement in 0..32u8,
        ) {
            let shown = code_from(bytes).display();
            let mut compact: Vec<u8> =
                shown.expose_secret().bytes().filter(|&c| c != b'-').collect();
            let new = base32::ALPHABET[usize::from(replacement)];
            prop_assume!(compact[pos] != new);
            compact[pos] = new;
            let typed = String::from_utf8(compact).unwrap();
            match RecoveryCode::parse(&typed) {
                Err(RecoveryCodeError::BadGroup { group, .. }) => {
                    prop_assert_eq!(group, pos / GROUP_LEN + 1);
                }
                other => prop_assert!(false, "expected BadGroup, got {:?}", other.err()),
            }
        }

        #[test]
        fn adjacent_swaps_are_caught(
            bytes in proptest::array::uniform32(any::<u8>()),
            group in 0..GROUPS,
            at in 0..DATA_PER_GROUP - 1,
        ) {
            let shown = code_from(bytes).display();
            let mut groups: Vec<Vec<u8>> =
                shown.expose_secret().split('-').map(|g| g.as_bytes().to_vec()).collect();
            prop_assume!(groups[group][at] != groups[group][at + 1]);
            groups[group].swap(at, at + 1);
            let typed: Vec<String> =
                groups.into_iter().map(|g| String::from_utf8(g).unwrap()).collect();
            let is_bad_group = matches!(
                RecoveryCode::parse(&typed.join("-")),
                Err(RecoveryCodeError::BadGroup { group: g, .. }) if g == group + 1
            );
            prop_assert!(is_bad_group);
        }
    }
}
