//! Fuzzes API-token, bearer-credential and key-prefix parsing. Every accepted token must have exactly one
//! spelling: showing it again gives back the (trimmed) input, and its prefix parses to the same
//! kind and id.
#![no_main]

use klef_core::crypto::token::{ApiToken, PresentedBearer, parse_prefix, prefix_of};
use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret as _;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(token) = ApiToken::parse(text) {
        assert_eq!(
            token.display().expose_secret(),
            text.trim(),
            "an accepted token must be canonical"
        );
        let (kind, id) = parse_prefix(&token.prefix()).expect("a token's prefix must parse");
        assert_eq!((kind, id), (token.kind(), token.id()));
        let bearer = token.bearer_token();
        let presented =
            PresentedBearer::parse(bearer.expose_secret()).expect("a token's bearer must parse");
        assert!(presented.matches_hash(&token.bearer_hash()));
        // Only system keys have a key pair; deriving one must not panic.
        assert_eq!(
            token.keypair().is_ok(),
            token.kind() == klef_core::crypto::token::TokenKind::System
        );
    }

    if let Ok(presented) = PresentedBearer::parse(text) {
        let (kind, id) = parse_prefix(&presented.prefix()).expect("a bearer's prefix must parse");
        assert_eq!((kind, id), (presented.kind(), presented.id()));
    }

    if let Ok((kind, id)) = parse_prefix(text) {
        assert_eq!(
            prefix_of(kind, &id),
            text.trim(),
            "an accepted prefix must be canonical"
        );
    }
});
