//! Fuzz target for the Teltonika server codec (`tagstream::devices::teltonika::ServerCodec`):
//! arbitrary bytes, after a valid IMEI handshake or not, decoded message after message, must
//! never panic; every decoded AVL packet must re-encode to exactly the bytes it came from and
//! map to readings without panicking; and feeding the bytes in small chunks must decode exactly
//! as feeding them whole.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tagstream::devices::teltonika::{
    encode_avl_packet, readings_of, DeviceMessage, Incoming, MappingConfig, ServerCodec,
};
use tokio_util::codec::Decoder;

/// Small enough that both oversize and full-size packets are reachable by the fuzzer.
const MAX_DATA_BYTES: usize = 2048;

const HANDSHAKE: &[u8] = b"\x00\x0f123456789012345";

/// What one decode step produced, comparable across feeding strategies.
#[derive(Debug, PartialEq)]
enum Step {
    Incoming(Incoming),
    Fatal(String),
}

fn decode_all(data: &[u8], chunk_bytes: usize) -> Vec<Step> {
    let mut codec = ServerCodec::new(MAX_DATA_BYTES);
    let mut steps = Vec::new();
    let mut buf = BytesMut::new();
    for chunk in data.chunks(chunk_bytes.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.clone();
            match codec.decode(&mut buf) {
                Ok(Some(incoming)) => {
                    if let Incoming::Message(DeviceMessage::Avl(packet)) = &incoming {
                        check_re_encodes(packet, &before[..before.len() - buf.len()]);
                        for record in &packet.records {
                            let _ = readings_of(record, &MappingConfig::default());
                        }
                    }
                    steps.push(Step::Incoming(incoming));
                }
                Ok(None) => break,
                Err(error) => {
                    steps.push(Step::Fatal(error.to_string()));
                    return steps;
                }
            }
        }
    }
    steps
}

/// A decoded packet re-encodes to its own bytes, except that the redundant IO total is
/// rewritten true, so compare by decoding again when the bytes differ.
fn check_re_encodes(packet: &tagstream::devices::teltonika::AvlPacket, consumed: &[u8]) {
    let mut out = BytesMut::new();
    encode_avl_packet(packet, &mut out, MAX_DATA_BYTES).expect("a decoded packet re-encodes");
    if &out[..] != consumed {
        let mut codec = ServerCodec::new(MAX_DATA_BYTES);
        let mut again = BytesMut::from(HANDSHAKE);
        again.extend_from_slice(&out);
        codec.decode(&mut again).expect("handshake").expect("whole");
        match codec.decode(&mut again) {
            Ok(Some(Incoming::Message(DeviceMessage::Avl(back)))) => assert_eq!(&back, packet),
            other => panic!("re-encoded packet does not decode: {other:?}"),
        }
    }
}

fuzz_target!(|input: &[u8]| {
    // The first byte picks the chunk size and whether a valid handshake comes first.
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let mut stream = Vec::with_capacity(HANDSHAKE.len() + data.len());
    if control & 0x80 != 0 {
        stream.extend_from_slice(HANDSHAKE);
    }
    stream.extend_from_slice(data);
    let whole = decode_all(&stream, stream.len());
    let chunked = decode_all(&stream, usize::from(control % 64) + 1);
    assert_eq!(whole, chunked, "decoding depends on how the bytes arrived");
});
