//! The envelope shape of every ciphertext and key a client sends (suite byte and lengths,
//! `klef_core::crypto::check_shape`): bytes no client could ever open are refused with `400`
//! naming the field, instead of being stored for every reader of the environment to trip over
//! (issue #22: one member could otherwise break every teammate's `klef run` with `AQ==`). The
//! server cannot check more than the shape: authenticity is for the clients that open them.

use klef_core::crypto::{EnvelopeShape, check_shape};
use klef_core::model::Blob;

use crate::error::ApiError;

/// Refuses `blob` unless it has `shape`; `what` names the field in the error.
pub(super) fn check(what: &str, blob: &Blob, shape: EnvelopeShape) -> Result<(), ApiError> {
    check_shape(blob.as_bytes(), shape).map_err(|_| {
        let kind = match shape {
            EnvelopeShape::Value => "an encrypted value",
            EnvelopeShape::SealedKey => "a sealed 32-byte key",
            EnvelopeShape::WrappedKey => "a 32-byte key wrapped with HPKE",
        };
        let bytes = blob.as_bytes();
        let seen = match bytes.first() {
            Some(suite) => format!("{} bytes, suite byte 0x{suite:02x}", bytes.len()),
            None => "empty".to_owned(),
        };
        ApiError::InvalidRequest(format!(
            "{what}: not {kind} ({seen}); a klef client writes these, never hand-made bytes"
        ))
    })
}
