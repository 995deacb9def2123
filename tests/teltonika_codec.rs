//! Properties of the Teltonika codecs (`tagstream::devices::teltonika`): whatever bytes arrive,
//! the server's decoder never panics and never allocates past its bound; what the device's
//! encoder writes, the server's decoder reads back unchanged; any one corrupted byte of a packet
//! is refused by its CRC.
//!
//! Allocation is measured by a counting global allocator, per thread (the test harness runs
//! tests on several threads), around each `decode` call only.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tagstream::devices::teltonika::{
    AvlPacket, AvlRecord, Codec, DeviceCodec, DeviceMessage, GpsElement, Imei, Incoming, IoElement,
    IoValue, Priority, ServerCodec, ServerReply, TeltonikaError,
};
use tokio_util::codec::{Decoder, Encoder};

struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<usize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get() + size;
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn note_free(size: usize) {
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get().saturating_sub(size)));
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        note_free(layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result and the most bytes it had allocated at once (above what was
/// live when it started) on this thread.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|peak| peak.set(base));
    let out = f();
    (out, PEAK_BYTES.with(Cell::get) - base)
}

/// The most the decoder may allocate for one call under a data limit of `max_data_bytes`: the
/// packet's bytes (buffered once), and the decoded records, whose IO elements take at most
/// 24 bytes of memory per byte on the wire (a 1-byte Codec 8 element is 2 wire bytes and a
/// 40-byte `IoElement`, doubled once by `Vec` growth), plus a fixed allowance.
fn decode_bound_bytes(max_data_bytes: usize) -> usize {
    max_data_bytes * 48 + 64 * 1024
}

/// 256 cases a property, or `PROPTEST_CASES` for a long run (`with_cases` would ignore it).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

const HANDSHAKE: &[u8] = b"\x00\x0f123456789012345";

/// Feeds `input` in `chunk`-byte pieces to a server codec (after the handshake if `handshake`),
/// decoding all it can after each piece, until the stream ends or errs. Returns what was decoded
/// and the largest allocation peak of one `decode` call.
fn feed(
    input: &[u8],
    chunk: usize,
    handshake: bool,
    max_data_bytes: usize,
) -> (Vec<Incoming>, usize) {
    let mut codec = ServerCodec::new(max_data_bytes);
    let mut src = BytesMut::new();
    let mut decoded = Vec::new();
    let mut worst_peak = 0;
    let mut pieces: Vec<&[u8]> = input.chunks(chunk.max(1)).collect();
    if handshake {
        pieces.insert(0, HANDSHAKE);
    }
    'pieces: for piece in pieces {
        src.extend_from_slice(piece);
        loop {
            let (result, peak) = peak_allocation(|| codec.decode(&mut src));
            worst_peak = worst_peak.max(peak);
            match result {
                Ok(Some(incoming)) => decoded.push(incoming),
                Ok(None) => break,
                Err(_) => break 'pieces,
            }
        }
    }
    (decoded, worst_peak)
}

fn io_value(group: usize) -> BoxedStrategy<IoValue> {
    match group {
        0 => any::<u8>().prop_map(IoValue::U8).boxed(),
        1 => any::<u16>().prop_map(IoValue::U16).boxed(),
        2 => any::<u32>().prop_map(IoValue::U32).boxed(),
        3 => any::<u64>().prop_map(IoValue::U64).boxed(),
        _ => proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(|v| IoValue::Bytes(Bytes::from(v)))
            .boxed(),
    }
}

fn record(codec: Codec) -> impl Strategy<Value = AvlRecord> {
    let (max_id, groups) = match codec {
        Codec::Codec8 => (u16::from(u8::MAX), 4usize),
        Codec::Codec8Extended => (u16::MAX, 5),
    };
    let element = (0..groups, 0..=max_id).prop_flat_map(|(group, id)| {
        io_value(group).prop_map(move |value| (group, IoElement { id, value }))
    });
    (
        0..=i64::MAX,
        any::<u8>(),
        any::<(i32, i32, i16, u16, u8, u16)>(),
        0..=max_id,
        proptest::collection::vec(element, 0..24),
    )
        .prop_map(|(t_ms, priority, gps, event_io_id, mut io)| {
            // Sent grouped by width: the order a decoder reads them back in.
            io.sort_by_key(|(group, _)| *group);
            let (longitude_e7, latitude_e7, altitude_m, angle_deg, satellites, speed_kmh) = gps;
            AvlRecord {
                t_ms,
                priority: Priority::from_byte(priority),
                gps: GpsElement {
                    longitude_e7,
                    latitude_e7,
                    altitude_m,
                    angle_deg,
                    satellites,
                    speed_kmh,
                },
                event_io_id,
                io: io.into_iter().map(|(_, element)| element).collect(),
            }
        })
}

fn packet() -> impl Strategy<Value = AvlPacket> {
    prop_oneof![Just(Codec::Codec8), Just(Codec::Codec8Extended)].prop_flat_map(|codec| {
        proptest::collection::vec(record(codec), 1..12)
            .prop_map(move |records| AvlPacket { codec, records })
    })
}

fn encode(messages: &[DeviceMessage]) -> BytesMut {
    let mut codec = DeviceCodec::default();
    let mut out = BytesMut::new();
    for message in messages {
        codec.encode(message, &mut out).expect("encodable");
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic_nor_allocate_past_the_bound(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
        chunk in 1usize..600,
        handshake in any::<bool>(),
        max_data_bytes in 3usize..=8192,
    ) {
        let (_, peak) = feed(&input, chunk, handshake, max_data_bytes);
        prop_assert!(peak <= decode_bound_bytes(max_data_bytes), "peak {peak} bytes");
    }

    #[test]
    fn plausible_headers_with_any_length_stay_within_the_bound(
        data_len in any::<u32>(),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        chunk in 1usize..600,
        max_data_bytes in 3usize..=(64 * 1024),
    ) {
        let mut input = vec![0, 0, 0, 0];
        input.extend_from_slice(&data_len.to_be_bytes());
        input.extend_from_slice(&body);
        let (decoded, peak) = feed(&input, chunk, true, max_data_bytes);
        prop_assert!(peak <= decode_bound_bytes(max_data_bytes), "peak {peak} bytes");
        // Random data past a header passes its CRC only by chance; it must never be taken whole
        // when the length is over the limit.
        if data_len as usize > max_data_bytes {
            prop_assert_eq!(decoded.len(), 1, "only the handshake");
        }
    }

    #[test]
    fn encoded_packets_decode_to_themselves(
        packets in proptest::collection::vec(packet(), 1..4),
        chunk in 1usize..2000,
    ) {
        let imei: Imei = "356307042441013".parse().unwrap();
        let mut messages = vec![DeviceMessage::Imei(imei)];
        messages.extend(packets.into_iter().map(DeviceMessage::Avl));
        let bytes = encode(&messages);
        let (decoded, _) = feed(&bytes, chunk, false, 64 * 1024);
        let expected: Vec<Incoming> = messages.into_iter().map(Incoming::Message).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn any_corrupted_byte_of_the_data_or_crc_is_refused(
        packet in packet(),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = encode(&[DeviceMessage::Avl(packet)]);
        // Past the preamble and length: the data and the CRC field.
        let index = 8 + position.index(bytes.len() - 8);
        bytes[index] ^= flip;
        let (decoded, _) = feed(&bytes, bytes.len(), true, 64 * 1024);
        prop_assert_eq!(decoded.len(), 2);
        prop_assert!(
            matches!(decoded[1], Incoming::Refused(TeltonikaError::CrcMismatch { .. })),
            "{:?}", decoded[1]
        );
    }

    #[test]
    fn server_replies_reach_the_device(acks in proptest::collection::vec(any::<u32>(), 0..10)) {
        let mut server = ServerCodec::default();
        let mut wire = BytesMut::new();
        let mut replies = vec![ServerReply::ImeiAccepted];
        replies.extend(acks.iter().map(|&records| ServerReply::Ack { records }));
        for reply in &replies {
            server.encode(*reply, &mut wire).unwrap();
        }
        let mut device = DeviceCodec::default();
        let mut heard = Vec::new();
        while let Some(reply) = device.decode(&mut wire).unwrap() {
            heard.push(reply);
        }
        prop_assert_eq!(heard, replies);
    }
}

/// The densest packet the limit allows (Codec 8, every IO element 1 byte wide): the decoder's
/// largest allocation per wire byte, checked against the bound.
#[test]
fn the_densest_packet_allocates_within_the_bound() {
    let max_data_bytes = 64 * 1024;
    // 255 records × 255 1-byte elements of 2 wire bytes each: about 140 KB of data, over the
    // limit; take as many records as fit.
    let dense = |records: usize| AvlPacket {
        codec: Codec::Codec8,
        records: (0..records)
            .map(|i| AvlRecord {
                t_ms: 1_700_000_000_000 + i as i64,
                priority: Priority::Low,
                gps: GpsElement::default(),
                event_io_id: 0,
                io: (0..255)
                    .map(|id| IoElement {
                        id,
                        value: IoValue::U8(id as u8),
                    })
                    .collect(),
            })
            .collect(),
    };
    let records = (1..=255)
        .take_while(|n| {
            let mut out = BytesMut::new();
            tagstream::devices::teltonika::encode_avl_packet(&dense(*n), &mut out, max_data_bytes)
                .is_ok()
        })
        .last()
        .unwrap();
    let bytes = encode(&[DeviceMessage::Avl(dense(records))]);
    let (decoded, peak) = feed(&bytes, bytes.len(), true, max_data_bytes);
    assert_eq!(decoded.len(), 2);
    assert!(
        matches!(&decoded[1], Incoming::Message(DeviceMessage::Avl(p)) if p.records.len() == records)
    );
    eprintln!(
        "densest packet: {records} records, {} bytes on the wire, decode peak {peak} bytes ({:.1} per wire byte)",
        bytes.len(),
        peak as f64 / bytes.len() as f64
    );
    assert!(
        peak <= decode_bound_bytes(max_data_bytes),
        "peak {peak} bytes"
    );
}
