//! Fuzz target for the frame decoder (`tagstream::wire::decode_frame`): arbitrary bytes, decoded
//! frame after frame, must never panic; every decoded frame must re-encode and decode back to
//! itself; and feeding the same bytes in small chunks must decode exactly as feeding them whole.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tagstream::wire::{decode_frame, try_encode_frame, ErrorCode, Frame, WireError};

/// Small enough that both oversize and full-size frames are reachable by the fuzzer.
const MAX_FRAME_BYTES: usize = 2048;

/// What one decode step produced, comparable across feeding strategies.
#[derive(Debug, PartialEq)]
enum Step {
    Frame(Frame),
    Error(ErrorCode, String),
}

/// Decodes `data` fed `chunk_bytes` at a time (all at once if 0); stops at an oversize frame,
/// which leaves the stream unsynchronised.
fn decode_all(data: &[u8], chunk_bytes: usize) -> Vec<Step> {
    let chunk_bytes = if chunk_bytes == 0 {
        data.len().max(1)
    } else {
        chunk_bytes
    };
    let mut steps = Vec::new();
    let mut buf = BytesMut::new();
    for chunk in data.chunks(chunk_bytes) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decode_frame(&mut buf, MAX_FRAME_BYTES) {
                Ok(Some(frame)) => {
                    check_round_trip(&frame);
                    steps.push(Step::Frame(frame));
                }
                Ok(None) => break,
                Err(error @ WireError::FrameTooLarge { .. }) => {
                    assert_eq!(buf.len(), before, "an oversize frame is not consumed");
                    steps.push(Step::Error(error.code(), error.to_string()));
                    return steps;
                }
                Err(error) => {
                    assert!(buf.len() < before, "a bad frame is consumed");
                    // Every error can be reported to the peer in a valid error frame.
                    let mut out = BytesMut::new();
                    try_encode_frame(&error.to_error_frame(), &mut out, MAX_FRAME_BYTES)
                        .expect("error frames always encode");
                    steps.push(Step::Error(error.code(), error.to_string()));
                }
            }
        }
    }
    steps
}

fn check_round_trip(frame: &Frame) {
    let mut out = BytesMut::new();
    if let Err(e) = try_encode_frame(frame, &mut out, MAX_FRAME_BYTES) {
        panic!("decoded frame does not re-encode: {e}: {frame:?}");
    }
    let back = decode_frame(&mut out, MAX_FRAME_BYTES).expect("re-encoded frame decodes");
    assert_eq!(back.as_ref(), Some(frame));
    assert!(out.is_empty());
}

fuzz_target!(|input: &[u8]| {
    // The first byte picks the chunk size for the incremental run; the rest is the stream.
    let Some((&chunk_bytes, data)) = input.split_first() else {
        return;
    };
    let whole = decode_all(data, 0);
    let chunked = decode_all(data, usize::from(chunk_bytes % 64) + 1);
    assert_eq!(whole, chunked, "decoding depends on how the bytes arrived");
});
