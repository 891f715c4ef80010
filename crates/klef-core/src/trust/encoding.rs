//! The labelled encoding of DESIGN.md §9.5: every signed, MAC-protected or hashed object is
//!
//! ```text
//! "klef/v1/" ‖ label ‖ 0x00 ‖ field ‖ field ‖ …      field = u32 big-endian length ‖ bytes
//! ```
//!
//! byte for byte the format of [`Aad`](crate::crypto::Aad) (a test pins that), so no signed,
//! MAC-protected, hashed or associated-data string of one kind can ever equal one of another kind:
//! labels contain no `0x00` and are all distinct, and the length prefixes make the field
//! boundaries unambiguous.
//!
//! Integers are fields of fixed width (a `u8` is a 1-byte field, a `u32` a 4-byte field, a `u64`
//! an 8-byte field, all big-endian), ids are their 16 raw bytes, text is UTF-8, hashes and keys
//! are their raw bytes. A list is a `u32` count field followed by its items' fields.
//!
//! [`Labelled`] writes; [`Reader`] parses. A reader never panics and never allocates more than
//! the input could hold: a length past the end, a fixed-width field of the wrong width, invalid
//! UTF-8 or a trailing byte is a [`DecodeError`]. Signed bytes are kept as they were signed and
//! parsed only after their signature verified (verify first, then parse; never re-serialise).

use std::fmt;

use crate::ids::RawId;

/// The common prefix of every labelled string (format version 1); the same as `Aad`'s.
pub const PREFIX: &[u8] = b"klef/v1/";

/// A labelled byte string under construction.
///
/// ```
/// use klef_core::trust::encoding::{Labelled, Reader};
/// let bytes = Labelled::new("example").str("hello").u64(7).finish();
/// assert_eq!(&bytes[..16], b"klef/v1/example\0");
/// let mut r = Reader::new(&bytes, "example").unwrap();
/// assert_eq!(r.str().unwrap(), "hello");
/// assert_eq!(r.u64().unwrap(), 7);
/// r.finish().unwrap();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Labelled {
    buf: Vec<u8>,
}

impl fmt::Debug for Labelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Labelled strings are public material (bodies to sign or hash), never secrets.
        write!(f, "Labelled({})", hex::encode(&self.buf))
    }
}

impl Labelled {
    /// Starts `"klef/v1/" ‖ label ‖ 0x00`.
    ///
    /// # Panics
    /// If `label` is empty or contains `0x00`: labels are constants of this crate, so that is a
    /// programming error, never a consequence of input.
    #[must_use]
    pub fn new(label: &'static str) -> Self {
        assert!(
            !label.is_empty() && !label.as_bytes().contains(&0),
            "a label is non-empty and has no NUL byte"
        );
        let mut buf = Vec::with_capacity(PREFIX.len() + label.len() + 1 + 64);
        buf.extend_from_slice(PREFIX);
        buf.extend_from_slice(label.as_bytes());
        buf.push(0);
        Self { buf }
    }

    /// Appends one field: its length as a big-endian `u32`, then its bytes.
    ///
    /// # Panics
    /// If `bytes` is 4 GiB or longer (nothing Klef signs comes near that).
    #[must_use]
    pub fn field(mut self, bytes: &[u8]) -> Self {
        self.push_field(bytes);
        self
    }

    /// [`field`](Self::field) on a borrowed writer (for loops).
    pub fn push_field(&mut self, bytes: &[u8]) {
        let len = u32::try_from(bytes.len()).expect("a labelled field shorter than 4 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    /// Appends a 1-byte field.
    #[must_use]
    pub fn u8(self, value: u8) -> Self {
        self.field(&[value])
    }

    /// Appends a 4-byte big-endian field.
    #[must_use]
    pub fn u32(self, value: u32) -> Self {
        self.field(&value.to_be_bytes())
    }

    /// Appends an 8-byte big-endian field.
    #[must_use]
    pub fn u64(self, value: u64) -> Self {
        self.field(&value.to_be_bytes())
    }

    /// Appends an id's 16 raw bytes.
    #[must_use]
    pub fn id(self, id: &RawId) -> Self {
        self.field(id.as_bytes())
    }

    /// Appends UTF-8 text.
    #[must_use]
    pub fn str(self, text: &str) -> Self {
        self.field(text.as_bytes())
    }

    /// A list's `u32` count field.
    ///
    /// # Panics
    /// If `count` does not fit a `u32`.
    #[must_use]
    pub fn count(self, count: usize) -> Self {
        self.u32(u32::try_from(count).expect("a list shorter than 2^32 items"))
    }

    /// The bytes written so far.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The finished byte string.
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Why bytes are not a valid labelled string of the expected kind. Carries no input bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes do not start with `"klef/v1/" ‖ label ‖ 0x00` for the expected label.
    #[error("not a {expected} record (wrong label or format version)")]
    WrongLabel {
        /// The label that was expected.
        expected: &'static str,
    },
    /// The input ended inside a length prefix or a field, or a field is longer than the rest.
    #[error("truncated record")]
    Truncated,
    /// A fixed-width field (integer, id, key, hash) has another width.
    #[error("a field has the wrong length")]
    BadLength,
    /// Text that is not UTF-8, a tag with an unknown value, an unsorted or repeated list.
    #[error("invalid field: {0}")]
    Invalid(&'static str),
    /// Bytes left after the last field.
    #[error("trailing bytes after the record")]
    Trailing,
}

/// Parses a labelled string field by field. Every method consumes input only on success.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks the `"klef/v1/" ‖ label ‖ 0x00` header and positions at the first field.
    pub fn new(bytes: &'a [u8], label: &'static str) -> Result<Self, DecodeError> {
        let wrong = DecodeError::WrongLabel { expected: label };
        let rest = bytes.strip_prefix(PREFIX).ok_or(wrong)?;
        let rest = rest.strip_prefix(label.as_bytes()).ok_or(wrong)?;
        let rest = rest.strip_prefix(&[0u8]).ok_or(wrong)?;
        Ok(Self { rest })
    }

    /// The next field's bytes.
    pub fn field(&mut self) -> Result<&'a [u8], DecodeError> {
        let (len, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(DecodeError::Truncated)?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| DecodeError::Truncated)?;
        if len > rest.len() {
            return Err(DecodeError::Truncated);
        }
        let (field, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(field)
    }

    /// The next field, which must be exactly `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut probe = self.clone();
        let field = probe.field()?;
        let out = <[u8; N]>::try_from(field).map_err(|_| DecodeError::BadLength)?;
        *self = probe;
        Ok(out)
    }

    /// A 1-byte field.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array::<1>().map(|[b]| b)
    }

    /// A 4-byte big-endian field.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array::<4>().map(u32::from_be_bytes)
    }

    /// An 8-byte big-endian field.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array::<8>().map(u64::from_be_bytes)
    }

    /// A 16-byte id.
    pub fn id(&mut self) -> Result<RawId, DecodeError> {
        self.array::<16>().map(|b| super::raw_id(&b))
    }

    /// A UTF-8 text field.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let mut probe = self.clone();
        let text = std::str::from_utf8(probe.field()?)
            .map_err(|_| DecodeError::Invalid("text is not UTF-8"))?;
        *self = probe;
        Ok(text)
    }

    /// A list's count, checked against what is left: each item takes at least
    /// `min_item_len` bytes (its fields' length prefixes at least), so a huge count in a short
    /// input is refused before anything is allocated for it.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize, DecodeError> {
        let mut probe = self.clone();
        let n = usize::try_from(probe.u32()?).map_err(|_| DecodeError::Truncated)?;
        if n.saturating_mul(min_item_len.max(1)) > probe.rest.len() {
            return Err(DecodeError::Truncated);
        }
        *self = probe;
        Ok(n)
    }

    /// Whether every field has been read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Ends parsing: any byte left over is [`DecodeError::Trailing`].
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::crypto::Aad;
    use crate::ids::{AccountId, EnvironmentId};

    #[test]
    fn matches_the_aad_encoding_byte_for_byte() {
        let env = EnvironmentId::random();
        let account = AccountId::random();
        assert_eq!(
            Labelled::new("secret-value")
                .id(&env.0)
                .str("API_KEY")
                .finish(),
            Aad::SecretValue {
                environment: &env,
                name: "API_KEY"
            }
            .to_bytes()
        );
        assert_eq!(
            Labelled::new("private-key").id(&account.0).finish(),
            Aad::PrivateKey(&account).to_bytes()
        );
    }

    #[test]
    fn pinned_layout() {
        let bytes = Labelled::new("t").u8(1).u32(2).u64(3).str("ab").finish();
        assert_eq!(
            hex::encode(&bytes),
            "6b6c65662f76312f7400\
             0000000101\
             0000000400000002\
             000000080000000000000003\
             000000026162"
        );
    }

    #[test]
    fn reader_refuses_what_it_must() {
        let good = Labelled::new("t").u32(5).str("x").finish();
        assert_eq!(
            Reader::new(&good, "u").unwrap_err(),
            DecodeError::WrongLabel { expected: "u" }
        );
        assert!(Reader::new(b"klef/v1/t", "t").is_err());
        assert!(Reader::new(b"klef/v2/t\0", "t").is_err());
        // A label that is a prefix of the real one.
        assert!(Reader::new(&Labelled::new("tt").finish(), "t").is_err());

        let mut r = Reader::new(&good, "t").unwrap();
        assert_eq!(r.u64().unwrap_err(), DecodeError::BadLength);
        assert_eq!(r.u32().unwrap(), 5, "a failed read consumes nothing");
        assert_eq!(r.str().unwrap(), "x");
        assert_eq!(r.field().unwrap_err(), DecodeError::Truncated);
        r.finish().unwrap();

        let mut trailing = good.clone();
        trailing.push(0);
        let mut r = Reader::new(&trailing, "t").unwrap();
        r.u32().unwrap();
        r.str().unwrap();
        assert_eq!(r.finish().unwrap_err(), DecodeError::Trailing);

        // A length far past the end.
        let mut huge = Labelled::new("t").finish();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        huge.extend_from_slice(b"abc");
        let mut r = Reader::new(&huge, "t").unwrap();
        assert_eq!(r.field().unwrap_err(), DecodeError::Truncated);
        let mut r = Reader::new(&huge, "t").unwrap();
        assert_eq!(r.count(4).unwrap_err(), DecodeError::Truncated);

        let bad_utf8 = Labelled::new("t").field(&[0xff]).finish();
        let mut r = Reader::new(&bad_utf8, "t").unwrap();
        assert!(matches!(r.str(), Err(DecodeError::Invalid(_))));

        // A count larger than the input could hold is refused before allocating.
        let many = Labelled::new("t").u32(1_000_000).finish();
        let mut r = Reader::new(&many, "t").unwrap();
        assert_eq!(r.count(4).unwrap_err(), DecodeError::Truncated);
    }

    #[test]
    #[should_panic(expected = "NUL")]
    fn labels_with_nul_are_a_programming_error() {
        let _ = Labelled::new("a\0b");
    }

    proptest! {
        #[test]
        fn fields_round_trip(fields in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8)) {
            let mut w = Labelled::new("prop");
            for f in &fields {
                w.push_field(f);
            }
            let bytes = w.finish();
            let mut r = Reader::new(&bytes, "prop").unwrap();
            for f in &fields {
                prop_assert_eq!(r.field().unwrap(), f.as_slice());
            }
            r.finish().unwrap();
        }

        #[test]
        fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut input = PREFIX.to_vec();
            input.extend_from_slice(b"prop\0");
            input.extend_from_slice(&bytes);
            let mut r = Reader::new(&input, "prop").unwrap();
            for _ in 0..8 {
                let _ = r.count(1);
                let _ = r.str();
                let _ = r.u64();
                let _ = r.field();
            }
        }
    }
}
