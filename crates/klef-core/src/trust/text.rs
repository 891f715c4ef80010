//! Text forms people read, type and paste: grouped hex (fingerprints, verification codes) and
//! lower-case Crockford base32 (invite codes, like API tokens).

/// `bytes` as lower-case hex in groups of four digits joined by `-`: `3f2a-91c0-…`.
pub(crate) fn grouped_hex(bytes: &[u8]) -> String {
    let digits = hex::encode(bytes);
    let mut out = String::with_capacity(digits.len() + digits.len() / 4);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Parses exactly `N` bytes of hex, ignoring case and any spaces, tabs, `-`, `:` or `_`
/// between digits (as people copy fingerprints). `None` for anything else.
pub(crate) fn parse_loose_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !matches!(c, b' ' | b'\t' | b'-' | b':' | b'_'))
        .collect();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(&digits, &mut out).ok()?;
    Some(out)
}

/// Crockford base32 symbols, lower case.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// `bytes` in lower-case Crockford base32, most significant bit first, no padding.
pub(crate) fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes exactly `N` bytes of Crockford base32 (either case, `o` read as 0, `i`/`l` as 1).
/// The unused low bits of the last symbol must be zero, so each value has one spelling.
pub(crate) fn parse_base32<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != (N * 8).div_ceil(5) {
        return None;
    }
    let mut out = [0u8; N];
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut at = 0;
    for c in text.bytes() {
        let c = match c.to_ascii_lowercase() {
            b'o' => b'0',
            b'i' | b'l' => b'1',
            other => other,
        };
        let v = ALPHABET.iter().position(|&a| a == c)?;
        acc = (acc << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(at)? = (acc >> bits) as u8;
            at += 1;
            acc &= (1 << bits) - 1;
        }
    }
    (at == N && acc == 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn forms() {
        assert_eq!(grouped_hex(&[0x3f, 0x2a, 0x91, 0xc0, 0x01]), "3f2a-91c0-01");
        assert_eq!(
            parse_loose_hex::<4>(" 3F2A 91:c0 "),
            Some([0x3f, 0x2a, 0x91, 0xc0])
        );
        assert_eq!(parse_loose_hex::<4>("3f2a91c"), None);
        assert_eq!(parse_loose_hex::<4>("3f2a91cg"), None);
        assert_eq!(parse_loose_hex::<4>("3f2a.91c0"), None);
        assert_eq!(base32(&[0xff]), "zw");
        assert_eq!(parse_base32::<1>("ZW"), Some([0xff]));
        assert_eq!(parse_base32::<1>("zz"), None, "non-zero padding bits");
        assert_eq!(parse_base32::<1>("zwx"), None);
        assert_eq!(parse_base32::<1>("uw"), None);
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::array::uniform20(any::<u8>())) {
            prop_assert_eq!(parse_base32::<20>(&base32(&bytes)), Some(bytes));
            prop_assert_eq!(parse_loose_hex::<20>(&grouped_hex(&bytes)), Some(bytes));
            prop_assert_eq!(parse_loose_hex::<20>(&grouped_hex(&bytes).to_uppercase().replace('-', " ")), Some(bytes));
        }

        #[test]
        fn parsers_never_panic(text in "\\PC{0,80}") {
            let _ = parse_base32::<16>(&text);
            let _ = parse_loose_hex::<16>(&text);
        }
    }
}
