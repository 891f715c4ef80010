//! A growable string for secret text that zeroizes every buffer it leaves behind.
//!
//! `String` reallocates as it grows and frees the old buffer without wiping it; [`SecretBuf`]
//! copies into a larger [`Zeroizing`] buffer instead, so the old copy is wiped on drop.

use zeroize::Zeroizing;

/// An append-only string whose every allocation is zeroized when released.
pub(super) struct SecretBuf(Zeroizing<String>);

impl SecretBuf {
    /// An empty buffer with room for `capacity` bytes.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self(Zeroizing::new(String::with_capacity(capacity)))
    }

    fn reserve(&mut self, additional: usize) {
        let needed = self.0.len() + additional;
        if needed > self.0.capacity() {
            let mut grown =
                Zeroizing::new(String::with_capacity(needed.max(self.0.capacity() * 2)));
            grown.push_str(&self.0);
            // The old buffer is wiped when `self.0` is replaced and dropped here.
            self.0 = grown;
        }
    }

    /// Appends one character.
    pub(super) fn push(&mut self, c: char) {
        self.reserve(c.len_utf8());
        self.0.push(c);
    }

    /// Appends a string.
    pub(super) fn push_str(&mut self, s: &str) {
        self.reserve(s.len());
        self.0.push_str(s);
    }

    /// The text so far.
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// The finished text.
    pub(super) fn into_inner(self) -> Zeroizing<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::SecretBuf;

    #[test]
    fn grows_and_keeps_content() {
        let mut buf = SecretBuf::with_capacity(1);
        for _ in 0..100 {
            buf.push_str("ab");
            buf.push('é');
        }
        assert_eq!(buf.as_str(), "abé".repeat(100));
        assert_eq!(buf.into_inner().as_str(), "abé".repeat(100));
    }
}
