//! Fuzzes the agent's wire protocol: the frame reader on an arbitrary byte stream, and postcard
//! decoding of [`Request`] (what a local client sends) and [`Response`] (what the CLI reads back).
//!
//! Every decoded message must re-encode, and decoding that encoding must give the same bytes
//! again (encoding is a function of the decoded value). Frames longer than [`MAX_FRAME_LEN`]
//! must be refused before their body is read.
#![no_main]

use std::future::Future as _;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use klef_agent::protocol::{
    FrameError, MAX_FRAME_LEN, Request, Response, decode, encode, read_frame,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads every frame in `stream`. A byte slice is always ready, so each poll completes; the
/// loop is bounded by the stream length.
fn frames(mut stream: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
    let mut out = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        let before = stream.len();
        let result = {
            let mut fut = pin!(read_frame(&mut stream));
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(r) => r,
                Poll::Pending => panic!("reading from a byte slice never waits"),
            }
        };
        match result {
            Ok(None) => return out,
            Ok(Some(body)) => {
                assert!(body.len() <= MAX_FRAME_LEN, "an oversized body was read");
                assert!(stream.len() < before, "a frame consumed no input");
                out.push(Ok(body.to_vec()));
            }
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

/// Decodes `body` as `T`; when it decodes, checks that re-encoding is stable.
fn check<T: Serialize + DeserializeOwned>(body: &[u8]) -> Option<T> {
    let msg: T = decode(body).ok()?;
    let first = encode(&msg).expect("a decoded message must re-encode");
    let again: T = decode(&first).expect("an encoded message must decode");
    let second = encode(&again).expect("a decoded message must re-encode");
    assert_eq!(&first[..], &second[..], "encoding is not stable");
    Some(msg)
}

fuzz_target!(|data: &[u8]| {
    // The raw input as one frame body.
    if let Some(req) = check::<Request>(data) {
        let _ = req.kind();
        if let Request::Unwrap { context, .. } = &req {
            let _ = context.as_aad().to_bytes();
            let _ = context.describe();
        }
    }
    let _ = check::<Response>(data);

    // The raw input as a byte stream of length-prefixed frames.
    for frame in frames(data) {
        match frame {
            Ok(body) => {
                let _ = check::<Request>(&body);
                let _ = check::<Response>(&body);
            }
            Err(FrameError::TooLarge(n)) => assert!(n > MAX_FRAME_LEN as u64),
            Err(FrameError::Truncated) => {}
            Err(e) => panic!("unexpected frame error from a byte slice: {e}"),
        }
    }
});
