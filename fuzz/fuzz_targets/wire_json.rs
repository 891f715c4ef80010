//! Fuzzes the server's JSON request bodies (`klef_core::wire`), which `klef-server` parses from
//! untrusted clients: arbitrary bytes must never panic, and every body a request type accepts
//! must serialize and parse back to the same value (no field silently lost or altered).
#![no_main]

use klef_core::wire::{
    ConfirmMemberRequest, CreateApiKeyRequest, CreateEnvironmentRequest, CreateInvitationRequest,
    CreateProjectRequest, CreateWorkspaceRequest, LoginRequest, PutApiKeyRequest,
    ReplaceKeysRequest, RotateRequest, SignupRequest, WriteSecretsRequest,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned>(data: &[u8]) {
    let Ok(parsed) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let json = serde_json::to_vec(&parsed).expect("an accepted body must serialize");
    let again: T = serde_json::from_slice(&json).expect("a serialized body must parse");
    let json_again = serde_json::to_vec(&again).expect("serialize");
    assert_eq!(json, json_again, "request body did not round-trip");
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the request type, so one corpus exercises them all.
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 12 {
        0 => round_trip::<SignupRequest>(body),
        1 => round_trip::<LoginRequest>(body),
        2 => round_trip::<ReplaceKeysRequest>(body),
        3 => round_trip::<CreateWorkspaceRequest>(body),
        4 => round_trip::<CreateProjectRequest>(body),
        5 => round_trip::<CreateEnvironmentRequest>(body),
        6 => round_trip::<WriteSecretsRequest>(body),
        7 => round_trip::<CreateInvitationRequest>(body),
        8 => round_trip::<ConfirmMemberRequest>(body),
        9 => round_trip::<RotateRequest>(body),
        10 => round_trip::<CreateApiKeyRequest>(body),
        _ => round_trip::<PutApiKeyRequest>(body),
    }
});
