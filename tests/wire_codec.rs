//! Tests of the frame codec (`src/wire/codec.rs`): property-based round trips of every frame
//! type and of arbitrary valid readings, decoding a stream split anywhere, every malformed input
//! naming the right error, and arbitrary bytes never panicking the decoder.

use bytes::{BufMut, BytesMut};
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use tagstream::model::{DeviceEvent, Position, PositionSource, Reading, ReadingBody, TacSample};
use tagstream::wire::{
    check_reading_encodable, decode_frame, decode_record, encode_frame, encode_record,
    max_batch_readings, try_encode_batch, try_encode_frame, ErrorCode, Frame, FrameCodec,
    FrameType, RecordError, WireError, DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION, RECORD_LEN,
};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

// ---------------------------------------------------------------------------------------------
// Strategies

/// Uniform over `range`, with its ends and zero (when inside) drawn often.
fn edgy_i32(min: i32, max: i32) -> impl Strategy<Value = i32> {
    prop_oneof![
        1 => Just(min),
        1 => Just(max),
        1 => Just(0i32.clamp(min, max)),
        6 => min..=max,
    ]
}

fn arb_source() -> impl Strategy<Value = PositionSource> {
    prop::sample::select(PositionSource::ALL.to_vec())
}

fn arb_position() -> impl Strategy<Value = Position> {
    (
        edgy_i32(-900_000_000, 900_000_000),
        edgy_i32(-1_800_000_000, 1_800_000_000),
        prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
        arb_source(),
        prop::option::of(prop_oneof![Just(0u16), Just(0xFFFE), 0u16..0xFFFF]),
        prop::option::of(prop_oneof![Just(0u16), Just(35_999), 0u16..36_000]),
        prop::option::of(prop_oneof![Just(0u8), Just(0xFE), 0u8..0xFF]),
    )
        .prop_map(
            |(lat_e7, lon_e7, precision_cm, source, speed_ckmh, heading_cdeg, satellites)| {
                Position {
                    lat_e7,
                    lon_e7,
                    precision_cm,
                    source,
                    speed_ckmh,
                    heading_cdeg,
                    satellites,
                }
            },
        )
}

fn arb_body() -> impl Strategy<Value = ReadingBody> {
    prop_oneof![
        arb_position().prop_map(ReadingBody::Position),
        (
            edgy_i32(i32::MIN, i32::MAX),
            edgy_i32(i32::MIN, i32::MAX),
            edgy_i32(i32::MIN, i32::MAX)
        )
            .prop_map(|(tac_ugdl, ir_uv, temp_mc)| ReadingBody::Tac(TacSample {
                tac_ugdl,
                ir_uv,
                temp_mc
            })),
        any::<bool>().prop_map(|in_range| ReadingBody::Rf { in_range }),
        prop::sample::select(DeviceEvent::ALL.to_vec()).prop_map(ReadingBody::Event),
    ]
}

fn arb_reading() -> impl Strategy<Value = Reading> {
    (
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0i64), any::<i64>()],
        prop::option::of(0u8..=100),
        arb_body(),
    )
        .prop_map(|(t_ms, battery_pct, body)| Reading {
            t_ms,
            battery_pct,
            body,
        })
}

fn arb_tag() -> impl Strategy<Value = String> {
    // Up to 16 chars of up to 4 bytes each: always within the 64-byte limit.
    prop_oneof!["[A-Za-z0-9_-]{1,64}", "\\PC{1,16}"]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<u16>(),
            arb_tag(),
            "\\PC{0,32}",
            prop_oneof![Just(0u32), any::<u32>()]
        )
            .prop_map(|(protocol_version, tag, secret, epoch)| Frame::Hello {
                protocol_version,
                tag,
                secret,
                epoch,
            }),
        any::<u64>().prop_map(|last_seq| Frame::HelloOk { last_seq }),
        (1..=u64::MAX, prop::collection::vec(arb_reading(), 1..40))
            .prop_map(|(seq, readings)| Frame::Batch { seq, readings }),
        any::<u64>().prop_map(|seq| Frame::Ack { seq }),
        (prop::sample::select(ErrorCode::ALL.to_vec()), "\\PC{0,100}")
            .prop_map(|(code, message)| Frame::Error { code, message }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn encode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(frame, &mut out);
    out
}

/// A frame with the given type byte and payload, whatever they hold.
fn raw_frame(type_code: u8, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_u32_le(payload.len() as u32 + 1);
    out.put_u8(type_code);
    out.put_slice(payload);
    out
}

fn decode_one(mut bytes: BytesMut) -> Result<Option<Frame>, WireError> {
    decode_frame(&mut bytes, DEFAULT_MAX_FRAME_BYTES)
}

fn decode_err(bytes: BytesMut) -> WireError {
    match decode_one(bytes) {
        Err(e) => e,
        Ok(frame) => panic!("expected an error, decoded {frame:?}"),
    }
}

fn gps_reading() -> Reading {
    Reading {
        t_ms: 1_774_722_600_000,
        battery_pct: Some(87),
        body: ReadingBody::Position(Position {
            lat_e7: 514_545_000,
            lon_e7: -25_879_000,
            precision_cm: 800,
            source: PositionSource::Gps,
            speed_ckmh: Some(410),
            heading_cdeg: Some(9000),
            satellites: Some(9),
        }),
    }
}

fn event_reading() -> Reading {
    Reading {
        t_ms: 1_774_722_615_000,
        battery_pct: None,
        body: ReadingBody::Event(DeviceEvent::StrapOpen),
    }
}

/// Batch payload: seq, count, records as given.
fn batch_payload(seq: u64, count: u32, records: &[[u8; RECORD_LEN]]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&seq.to_le_bytes());
    p.extend_from_slice(&count.to_le_bytes());
    for r in records {
        p.extend_from_slice(r);
    }
    p
}

/// Hello payload from raw parts.
fn hello_payload(version: u16, tag: &[u8], secret: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&version.to_le_bytes());
    p.push(tag.len() as u8);
    p.extend_from_slice(tag);
    p.push(secret.len() as u8);
    p.extend_from_slice(secret);
    p
}

// ---------------------------------------------------------------------------------------------
// Round trips

proptest! {
    #[test]
    fn every_frame_round_trips(frame in arb_frame()) {
        let mut bytes = encode(&frame);
        prop_assert_eq!(bytes.len(), 4 + frame.encoded_len());
        let decoded = decode_frame(&mut bytes, DEFAULT_MAX_FRAME_BYTES);
        prop_assert_eq!(decoded.ok().flatten(), Some(frame));
        prop_assert!(bytes.is_empty());
    }

    #[test]
    fn valid_readings_round_trip_through_a_record(reading in arb_reading()) {
        prop_assert_eq!(check_reading_encodable(&reading), Ok(()));
        prop_assert_eq!(decode_record(&encode_record(&reading)), Ok(reading));
    }

    #[test]
    fn stream_split_anywhere_decodes_to_the_same_frames(
        frames in prop::collection::vec(arb_frame(), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = BytesMut::new();
        for f in &frames {
            encode_frame(f, &mut stream);
        }
        let mut cut_at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cut_at.push(stream.len());
        cut_at.sort_unstable();

        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut from = 0;
        for to in cut_at {
            buf.extend_from_slice(&stream[from..to]);
            from = to;
            while let Some(frame) = codec.decode(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? {
                decoded.push(frame);
            }
        }
        prop_assert_eq!(codec.decode_eof(&mut buf).ok(), Some(None));
        prop_assert_eq!(decoded, frames);
    }

    /// Random bytes never panic the decoder; whatever decodes re-encodes to the same frame.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_arbitrary_input(&bytes)?;
    }

    /// Valid frames with a byte changed, or cut short, never panic the decoder either.
    #[test]
    fn mutated_frames_never_panic(
        frame in arb_frame(),
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
        keep in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&frame).to_vec();
        let i = at.index(bytes.len());
        bytes[i] = value;
        check_arbitrary_input(&bytes)?;
        bytes.truncate(keep.index(bytes.len()));
        check_arbitrary_input(&bytes)?;
    }
}

fn check_arbitrary_input(bytes: &[u8]) -> Result<(), TestCaseError> {
    let max_frame_bytes = 4096;
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = buf.len();
        match decode_frame(&mut buf, max_frame_bytes) {
            Ok(Some(frame)) => {
                let mut again = BytesMut::new();
                try_encode_frame(&frame, &mut again, max_frame_bytes).map_err(|e| {
                    TestCaseError::fail(format!("{frame:?} does not re-encode: {e}"))
                })?;
                let back = decode_frame(&mut again, max_frame_bytes).ok().flatten();
                prop_assert_eq!(back, Some(frame));
            }
            Ok(None) => break,
            Err(WireError::FrameTooLarge { .. }) => {
                prop_assert_eq!(buf.len(), before, "oversize frames are not consumed");
                break;
            }
            Err(_) => prop_assert!(buf.len() < before, "a bad frame is consumed"),
        }
    }
    Ok(())
}

#[test]
fn a_batch_of_the_maximum_size_round_trips_and_one_more_is_refused() {
    let max_frame_bytes = 1 + 12 + 3 * RECORD_LEN;
    assert_eq!(max_batch_readings(max_frame_bytes), 3);
    let mut codec = FrameCodec::with_max_frame_bytes(max_frame_bytes);
    let full = Frame::Batch {
        seq: 1,
        readings: vec![gps_reading(); 3],
    };
    let mut buf = BytesMut::new();
    codec.encode(&full, &mut buf).expect("3 readings fit");
    assert_eq!(codec.decode(&mut buf).expect("decodes"), Some(full));

    let over = Frame::Batch {
        seq: 1,
        readings: vec![gps_reading(); 4],
    };
    let err = codec
        .encode(&over, &mut buf)
        .expect_err("4 readings do not fit");
    assert!(matches!(err, WireError::FrameTooLarge { .. }));
    assert!(buf.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Malformed input

#[test]
fn oversize_length_is_refused_from_the_prefix_alone() {
    let max_frame_bytes = 1000;
    let mut buf = BytesMut::new();
    buf.put_u32_le(1001);
    let err = decode_frame(&mut buf, max_frame_bytes).expect_err("too large");
    assert!(matches!(
        err,
        WireError::FrameTooLarge {
            len_bytes: 1001,
            max_bytes: 1000
        }
    ));
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    assert_eq!(buf.len(), 4, "nothing consumed, no body awaited");

    // The default limit: a 4 GiB length is refused immediately too.
    let mut buf = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
    let err = FrameCodec::new().decode(&mut buf).expect_err("too large");
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    assert!(buf.capacity() < 1 << 16, "no room reserved for the body");

    // Exactly the limit is fine: the decoder waits for the body.
    let mut buf = BytesMut::new();
    buf.put_u32_le(1000);
    assert!(matches!(decode_frame(&mut buf, max_frame_bytes), Ok(None)));
}

#[test]
fn unknown_frame_type_is_named() {
    for type_code in [0u8, 6, 0x80, 0xFF] {
        let err = decode_err(raw_frame(type_code, &[1, 2, 3]));
        assert!(matches!(err, WireError::UnknownFrameType(t) if t == type_code));
        assert_eq!(err.code(), ErrorCode::UnknownFrameType);
    }
}

#[test]
fn zero_length_frame_is_a_length_mismatch() {
    let err = decode_err(BytesMut::from(&[0u8, 0, 0, 0][..]));
    assert!(matches!(err, WireError::EmptyFrame));
    assert_eq!(err.code(), ErrorCode::LengthMismatch);
}

#[test]
fn fixed_size_payloads_must_match_exactly() {
    for (frame_type, len) in [
        (FrameType::Ack, 7),
        (FrameType::Ack, 9),
        (FrameType::HelloOk, 0),
        (FrameType::Batch, 11),
        (FrameType::Error, 3),
        (FrameType::Hello, 1),
    ] {
        let err = decode_err(raw_frame(frame_type.code(), &vec![1u8; len]));
        assert!(
            matches!(err, WireError::PayloadLength { frame, actual_bytes, .. } if frame == frame_type && actual_bytes == len),
            "{frame_type} with {len} bytes: {err}"
        );
        assert_eq!(err.code(), ErrorCode::LengthMismatch);
    }
}

#[test]
fn batch_count_must_match_the_records_present() {
    let rec = encode_record(&gps_reading());
    let err = decode_err(raw_frame(3, &batch_payload(1, 3, &[rec, rec])));
    assert!(matches!(
        err,
        WireError::CountMismatch {
            count: 3,
            record_bytes: 64
        }
    ));
    assert_eq!(err.code(), ErrorCode::LengthMismatch);

    let mut payload = batch_payload(1, 1, &[rec]);
    payload.push(0);
    let err = decode_err(raw_frame(3, &payload));
    assert!(matches!(
        err,
        WireError::CountMismatch {
            count: 1,
            record_bytes: 33
        }
    ));

    let err = decode_err(raw_frame(3, &batch_payload(1, u32::MAX, &[rec])));
    assert!(matches!(
        err,
        WireError::CountMismatch {
            count: u32::MAX,
            ..
        }
    ));
}

#[test]
fn bad_record_names_its_index_and_problem() {
    let good = encode_record(&gps_reading());
    let mut bad = encode_record(&event_reading());
    bad[8] = 9; // unknown kind
    let err = decode_err(raw_frame(3, &batch_payload(5, 3, &[good, bad, good])));
    assert!(matches!(
        err,
        WireError::BadRecord {
            index: 1,
            error: RecordError::UnknownKind(9)
        }
    ));
    assert_eq!(err.code(), ErrorCode::BadRecord);
    assert_eq!(err.to_string(), "record 1: unknown reading kind 9");

    let mut reserved = good;
    reserved[31] = 1;
    let err = decode_err(raw_frame(3, &batch_payload(5, 2, &[good, reserved])));
    assert!(matches!(
        err,
        WireError::BadRecord {
            index: 1,
            error: RecordError::ReservedNotZero
        }
    ));
}

#[test]
fn empty_batch_and_seq_zero_are_refused() {
    let err = decode_err(raw_frame(3, &batch_payload(1, 0, &[])));
    assert!(matches!(err, WireError::EmptyBatch));
    assert_eq!(err.code(), ErrorCode::EmptyBatch);

    let rec = encode_record(&gps_reading());
    let err = decode_err(raw_frame(3, &batch_payload(0, 1, &[rec])));
    assert!(matches!(err, WireError::SeqZero));
    assert_eq!(err.code(), ErrorCode::SeqZero);
}

#[test]
fn bad_hellos_are_named() {
    type IsExpected = fn(&WireError) -> bool;
    let cases: Vec<(Vec<u8>, IsExpected)> = vec![
        (hello_payload(1, &[0xFF, 0xFE], b""), |e| {
            matches!(e, WireError::TagNotUtf8)
        }),
        (hello_payload(1, b"", b""), |e| {
            matches!(e, WireError::EmptyTag)
        }),
        (hello_payload(1, &[b'a'; 65], b""), |e| {
            matches!(e, WireError::TagTooLong { len_bytes: 65 })
        }),
        (hello_payload(1, b"T1", &[b's'; 129]), |e| {
            matches!(e, WireError::SecretTooLong { len_bytes: 129 })
        }),
        (hello_payload(1, b"T1", &[0xC3]), |e| {
            matches!(e, WireError::SecretNotUtf8)
        }),
    ];
    for (payload, is_expected) in cases {
        let err = decode_err(raw_frame(1, &payload));
        assert!(is_expected(&err), "unexpected {err:?}");
        assert_eq!(err.code(), ErrorCode::BadHello);
    }

    // A tag of exactly 64 bytes and a secret of exactly 128 are fine.
    let frame = decode_one(raw_frame(1, &hello_payload(1, &[b'a'; 64], &[b's'; 128])));
    assert!(matches!(frame, Ok(Some(Frame::Hello { .. }))));

    // Lengths that disagree with the payload.
    let mut payload = hello_payload(1, b"T1", b"x");
    payload.push(0);
    let err = decode_err(raw_frame(1, &payload));
    assert!(matches!(
        err,
        WireError::PayloadLength {
            frame: FrameType::Hello,
            ..
        }
    ));
    let err = decode_err(raw_frame(1, &hello_payload(1, b"T1", b"x")[..5]));
    assert!(matches!(
        err,
        WireError::PayloadLength {
            frame: FrameType::Hello,
            ..
        }
    ));
}

#[test]
fn a_hello_may_end_with_a_session_epoch() {
    // Without the field: epoch 0, the hello of before epochs existed.
    let frame = decode_one(raw_frame(1, &hello_payload(1, b"T1", b"s")));
    assert!(matches!(frame, Ok(Some(Frame::Hello { epoch: 0, .. }))));
    let mut payload = hello_payload(1, b"T1", b"s");
    payload.extend_from_slice(&7u32.to_le_bytes());
    let frame = decode_one(raw_frame(1, &payload));
    assert!(matches!(frame, Ok(Some(Frame::Hello { epoch: 7, ref tag, .. })) if tag == "T1"));
    // Epoch 0 is encoded by leaving the field out.
    let mut out = BytesMut::new();
    encode_frame(&Frame::hello_in_epoch("T1", "s", 0), &mut out);
    assert_eq!(
        &out[4..],
        &raw_frame(1, &hello_payload(1, b"T1", b"s"))[4..]
    );
    // Anything else after the secret is a length mismatch.
    for extra in [1usize, 3, 5] {
        let mut payload = hello_payload(1, b"T1", b"s");
        payload.extend(std::iter::repeat_n(0u8, extra));
        let err = decode_err(raw_frame(1, &payload));
        assert_eq!(err.code(), ErrorCode::LengthMismatch, "{extra} extra bytes");
    }
}

#[test]
fn the_codec_decodes_the_version_and_leaves_the_check_to_the_session() {
    let frame = decode_one(raw_frame(1, &hello_payload(2, b"T1", b"")));
    assert!(matches!(
        frame,
        Ok(Some(Frame::Hello {
            protocol_version: 2,
            ..
        }))
    ));
    // A hello of another version that does not parse as ours is reported as the version.
    let mut payload = 7u16.to_le_bytes().to_vec();
    payload.extend_from_slice(&[200, 1, 2]);
    let err = decode_err(raw_frame(1, &payload));
    assert!(matches!(
        err,
        WireError::UnsupportedVersion {
            got: 7,
            supported: PROTOCOL_VERSION
        }
    ));
    assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
}

#[test]
fn bad_error_frames_are_named() {
    let mut payload = 999u16.to_le_bytes().to_vec();
    payload.extend_from_slice(&0u16.to_le_bytes());
    let err = decode_err(raw_frame(5, &payload));
    assert!(matches!(err, WireError::UnknownErrorCode(999)));
    assert_eq!(err.code(), ErrorCode::BadErrorFrame);

    let mut payload = ErrorCode::Internal.as_u16().to_le_bytes().to_vec();
    payload.extend_from_slice(&2u16.to_le_bytes());
    payload.extend_from_slice(&[0xFF, 0xFF]);
    let err = decode_err(raw_frame(5, &payload));
    assert!(matches!(err, WireError::ErrorMessageNotUtf8));

    let mut payload = ErrorCode::Internal.as_u16().to_le_bytes().to_vec();
    payload.extend_from_slice(&1025u16.to_le_bytes());
    payload.extend_from_slice(&[b'x'; 1025]);
    let err = decode_err(raw_frame(5, &payload));
    assert!(matches!(
        err,
        WireError::ErrorMessageTooLong { len_bytes: 1025 }
    ));
}

#[test]
fn a_stream_ending_inside_a_frame_is_truncated() {
    let mut codec = FrameCodec::new();
    let bytes = encode(&Frame::Ack { seq: 9 });
    for keep in 1..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..keep]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        let err = codec.decode_eof(&mut buf).expect_err("truncated");
        assert!(
            matches!(err, WireError::Truncated { available_bytes, .. } if available_bytes == keep),
            "{err}"
        );
        assert_eq!(err.code(), ErrorCode::LengthMismatch);
        assert!(buf.is_empty());
    }
}

#[test]
fn decoding_goes_on_after_a_bad_frame() {
    let mut buf = raw_frame(9, b"junk");
    encode_frame(&Frame::Ack { seq: 3 }, &mut buf);
    assert!(matches!(
        decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES),
        Err(WireError::UnknownFrameType(9))
    ));
    assert_eq!(
        decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES)
            .ok()
            .flatten(),
        Some(Frame::Ack { seq: 3 })
    );
}

#[test]
fn every_wire_error_turns_into_a_valid_error_frame() {
    let err = decode_err(raw_frame(3, &batch_payload(0, 0, &[])));
    let frame = err.to_error_frame();
    assert_eq!(
        frame,
        Frame::Error {
            code: ErrorCode::SeqZero,
            message: "batch seq 0: batches are numbered from 1".into()
        }
    );
    let bytes = encode(&frame);
    assert_eq!(decode_one(bytes).ok().flatten(), Some(frame));
}

// ---------------------------------------------------------------------------------------------
// Encoding refusals

#[test]
fn invalid_frames_are_refused_by_the_encoder_and_nothing_is_written() {
    let mut bad_lat = gps_reading();
    if let ReadingBody::Position(p) = &mut bad_lat.body {
        p.lat_e7 = 900_000_001;
    }
    let mut sentinel_sats = gps_reading();
    if let ReadingBody::Position(p) = &mut sentinel_sats.body {
        p.satellites = Some(0xFF);
    }
    let cases: Vec<(Frame, ErrorCode)> = vec![
        (Frame::hello("", ""), ErrorCode::BadHello),
        (Frame::hello("x".repeat(65), ""), ErrorCode::BadHello),
        (Frame::hello("T1", "s".repeat(129)), ErrorCode::BadHello),
        (
            Frame::Batch {
                seq: 0,
                readings: vec![gps_reading()],
            },
            ErrorCode::SeqZero,
        ),
        (
            Frame::Batch {
                seq: 1,
                readings: vec![],
            },
            ErrorCode::EmptyBatch,
        ),
        (
            Frame::Batch {
                seq: 1,
                readings: vec![gps_reading(), bad_lat],
            },
            ErrorCode::BadRecord,
        ),
        (
            Frame::Batch {
                seq: 1,
                readings: vec![sentinel_sats],
            },
            ErrorCode::BadRecord,
        ),
        (
            Frame::Error {
                code: ErrorCode::Internal,
                message: "x".repeat(1025),
            },
            ErrorCode::BadErrorFrame,
        ),
    ];
    for (frame, code) in cases {
        let mut out = BytesMut::from(&b"kept"[..]);
        let err = try_encode_frame(&frame, &mut out, DEFAULT_MAX_FRAME_BYTES).expect_err("invalid");
        assert_eq!(err.code(), code, "{frame:?}");
        assert_eq!(&out[..], b"kept");
        assert_eq!(
            frame
                .validate(DEFAULT_MAX_FRAME_BYTES)
                .map_err(|e| e.code()),
            Err(code)
        );
    }

    let mut out = BytesMut::new();
    let err = try_encode_batch(
        1,
        &[gps_reading(), bad_lat],
        &mut out,
        DEFAULT_MAX_FRAME_BYTES,
    )
    .expect_err("bad latitude");
    assert!(matches!(
        err,
        WireError::BadRecord {
            index: 1,
            error: RecordError::LatitudeOutOfRange(900_000_001)
        }
    ));
    assert!(out.is_empty());
}

#[test]
#[should_panic(expected = "invalid batch frame")]
fn encode_frame_panics_on_an_invalid_frame() {
    encode(&Frame::Batch {
        seq: 0,
        readings: vec![gps_reading()],
    });
}

#[test]
fn error_constructor_always_yields_an_encodable_frame() {
    let frame = Frame::error(ErrorCode::Internal, "ü".repeat(2000));
    let mut out = BytesMut::new();
    try_encode_frame(&frame, &mut out, DEFAULT_MAX_FRAME_BYTES).expect("valid");
}

// ---------------------------------------------------------------------------------------------
// With tokio

#[tokio::test]
async fn frames_cross_a_framed_stream() {
    let (client, server) = tokio::io::duplex(64);
    let frames = vec![
        Frame::hello("T1", "secret"),
        Frame::Batch {
            seq: 1,
            readings: vec![gps_reading(), event_reading()],
        },
        Frame::Batch {
            seq: 2,
            readings: vec![event_reading(); 100],
        },
    ];
    let to_send = frames.clone();
    let writer = tokio::spawn(async move {
        let mut sink = FramedWrite::new(client, FrameCodec::new());
        for f in &to_send {
            sink.send(f).await.expect("send");
        }
    });
    let mut stream = FramedRead::new(server, FrameCodec::new());
    let mut received = Vec::new();
    while let Some(frame) = stream.next().await {
        received.push(frame.expect("valid frame"));
    }
    writer.await.expect("writer");
    assert_eq!(received, frames);
}

#[tokio::test]
async fn a_framed_stream_reports_a_truncated_frame_at_eof() {
    let bytes = encode(&Frame::Ack { seq: 1 });
    let cut = bytes[..bytes.len() - 1].to_vec();
    let mut stream = FramedRead::new(&cut[..], FrameCodec::new());
    let err = stream
        .next()
        .await
        .expect("an item")
        .expect_err("truncated");
    assert!(matches!(err, WireError::Truncated { .. }));
}
