//! Crockford base32 (<https://www.crockford.com/base32.html>) without padding or check symbols:
//! the alphabet `0123456789ABCDEFGHJKMNPQRSTVWXYZ`, most significant bit first. Recovery codes
//! and API tokens use it because it has no `I`, `L`, `O` or `U` to misread.
//!
//! Encoding `n` bytes gives `ceil(8n / 5)` symbols; the unused low bits of the last symbol are
//! zero, and [`decode_values`] insists on that so every byte string has exactly one spelling.

/// The 32 symbols, upper case.
pub(crate) const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The value of one symbol, case-insensitive, with Crockford's confusables (`O` → 0, `I`/`L` →
/// 1). `None` for anything else (including `U`).
pub(crate) fn symbol_value(c: u8) -> Option<u8> {
    let c = c.to_ascii_uppercase();
    let c = match c {
        b'O' => b'0',
        b'I' | b'L' => b'1',
        other => other,
    };
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u8)
}

/// Number of symbols needed for `len` bytes.
pub(crate) const fn encoded_len(len: usize) -> usize {
    (len * 8).div_ceil(5)
}

/// Encodes `bytes` as upper-case symbols.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(encoded_len(bytes.len()));
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

/// Decodes symbol values (each `< 32`) into exactly `N` bytes. `None` when the count is wrong
/// or the padding bits of the last symbol are not zero.
pub(crate) fn decode_values<const N: usize>(values: &[u8]) -> Option<[u8; N]> {
    if values.len() != encoded_len(N) {
        return None;
    }
    let mut out = [0u8; N];
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut i = 0;
    for &v in values {
        if v >= 32 {
            return None;
        }
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out[i] = (acc >> bits) as u8;
            i += 1;
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits are padding and must be zero (canonical encoding).
    (acc == 0).then_some(out)
}

/// Decodes a string of exactly `encoded_len(N)` symbols. Only lower-case symbols are accepted
/// when `lowercase_only` is set (tokens are canonical lower case).
pub(crate) fn decode_str<const N: usize>(s: &str, lowercase_only: bool) -> Option<[u8; N]> {
    let mut values = Vec::with_capacity(s.len());
    for c in s.bytes() {
        if lowercase_only && !(c.is_ascii_digit() || c.is_ascii_lowercase()) {
            return None;
        }
        // Only the canonical alphabet here: confusables are for people typing recovery codes.
        let upper = c.to_ascii_uppercase();
        let v = ALPHABET.iter().position(|&a| a == upper)?;
        values.push(v as u8);
    }
    decode_values::<N>(&values)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_encodings() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(&[0xff]), "ZW");
        assert_eq!(encode(&[0, 0, 0, 0, 0]), "00000000");
        assert_eq!(encode(&[0x08, 0x86, 0x42, 0x98, 0xe8]), "12345678");
        assert_eq!(
            decode_str::<5>("12345678", false),
            Some([0x08, 0x86, 0x42, 0x98, 0xe8])
        );
    }

    #[test]
    fn non_canonical_padding_is_rejected() {
        // "ZW" is 0xff; "ZZ" sets padding bits.
        assert_eq!(decode_str::<1>("ZW", false), Some([0xff]));
        assert_eq!(decode_str::<1>("ZZ", false), None);
        assert_eq!(decode_str::<1>("Z", false), None);
        assert_eq!(decode_str::<1>("zw", true), Some([0xff]));
        assert_eq!(decode_str::<1>("ZW", true), None);
        assert_eq!(decode_str::<1>("ZU", false), None);
    }

    #[test]
    fn confusables_map_to_digits() {
        assert_eq!(symbol_value(b'o'), Some(0));
        assert_eq!(symbol_value(b'I'), Some(1));
        assert_eq!(symbol_value(b'l'), Some(1));
        assert_eq!(symbol_value(b'u'), None);
        assert_eq!(symbol_value(b'-'), None);
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let s = encode(&bytes);
            prop_assert_eq!(s.len(), 52);
            prop_assert_eq!(decode_str::<32>(&s, false), Some(bytes));
            prop_assert_eq!(decode_str::<32>(&s.to_ascii_lowercase(), true), Some(bytes));
        }
    }
}
