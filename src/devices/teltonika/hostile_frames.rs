//! Hostile and damaged input: each refused with the error the listener acts on (answer 0x00 to
//! a bad handshake, acknowledge 0 records of a refused packet, close on lost framing), and
//! nothing decoded from it.

use super::crc::crc16_ibm;
use super::frame::{DeviceMessage, Incoming, ServerCodec, TeltonikaStreamError};
use super::public_vectors::{bytes_of, decode_after_handshake, CODEC8_ONE_RECORD, HANDSHAKE};
use super::*;
use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// The data field (codec id … second count) of the one-record vector.
fn one_record_data() -> Vec<u8> {
    let packet = hex::decode(CODEC8_ONE_RECORD).unwrap();
    packet[8..packet.len() - 4].to_vec()
}

/// A packet around `data` with a true length and CRC.
fn frame(data: &[u8]) -> String {
    frame_with(data, data.len() as u32, crc16_ibm(data))
}

fn frame_with(data: &[u8], data_len: u32, crc: u16) -> String {
    let mut packet = vec![0u8; 4];
    packet.extend_from_slice(&data_len.to_be_bytes());
    packet.extend_from_slice(data);
    packet.extend_from_slice(&u32::from(crc).to_be_bytes());
    hex::encode(packet)
}

fn refused(packet_hex: &str) -> TeltonikaError {
    match decode_after_handshake(packet_hex) {
        Incoming::Refused(error) => {
            assert_eq!(error.answer(), ErrorAnswer::AckZero, "{error}");
            error
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Feeds a handshake then `bytes` and returns the error that ends the stream.
fn stream_error(bytes: &[u8]) -> (TeltonikaError, BytesMut) {
    let mut codec = ServerCodec::default();
    let mut src = bytes_of(HANDSHAKE);
    codec.decode(&mut src).unwrap().unwrap();
    src.extend_from_slice(bytes);
    match codec.decode(&mut src) {
        Err(TeltonikaStreamError::Protocol(error)) => (error, src),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn bad_crc_is_refused_and_the_next_packet_still_decodes() {
    let data = one_record_data();
    let bad = frame_with(&data, data.len() as u32, 0xee8c);
    let mut codec = ServerCodec::default();
    let mut src = bytes_of(HANDSHAKE);
    codec.decode(&mut src).unwrap().unwrap();
    src.extend_from_slice(&bytes_of(&bad));
    src.extend_from_slice(&bytes_of(CODEC8_ONE_RECORD));
    assert_eq!(
        codec.decode(&mut src).unwrap(),
        Some(Incoming::Refused(TeltonikaError::CrcMismatch {
            received: 0xee8c,
            computed: 0xee8d,
            offset: 8 + 76,
        }))
    );
    assert_eq!(
        TeltonikaError::CrcMismatch {
            received: 0,
            computed: 0,
            offset: 0
        }
        .answer(),
        ErrorAnswer::AckZero
    );
    match codec.decode(&mut src).unwrap() {
        Some(Incoming::Message(DeviceMessage::Avl(packet))) => assert_eq!(packet.records.len(), 1),
        other => panic!("the next packet should decode, got {other:?}"),
    }
}

#[test]
fn a_flipped_bit_in_the_records_fails_the_crc() {
    let mut data = one_record_data();
    let crc = crc16_ibm(&data);
    data[20] ^= 0x01; // inside the GNSS element
    assert!(matches!(
        refused(&frame_with(&data, data.len() as u32, crc)),
        TeltonikaError::CrcMismatch { .. }
    ));
}

#[test]
fn a_length_longer_than_the_records_is_refused() {
    // One stray byte after the second count, inside the length and the CRC.
    let mut data = one_record_data();
    data.push(0x00);
    assert_eq!(
        refused(&frame(&data)),
        TeltonikaError::TrailingBytes {
            extra_bytes: 1,
            offset: 8 + 76,
        }
    );
}

#[test]
fn a_length_shorter_than_the_records_is_refused() {
    // The length stops before the second count (and the CRC agrees with the shortened data).
    let mut data = one_record_data();
    data.pop();
    assert_eq!(
        refused(&frame(&data)),
        TeltonikaError::Truncated {
            record: 0,
            field: "record count",
            offset: 8 + 75,
            needed_bytes: 1,
            available_bytes: 0,
        }
    );
    // Shortened without a matching CRC, the CRC check refuses it first.
    let data = one_record_data();
    let short = frame_with(
        &data[..data.len() - 4],
        (data.len() - 4) as u32,
        crc16_ibm(&data),
    );
    assert!(matches!(
        refused(&short),
        TeltonikaError::CrcMismatch { .. }
    ));
}

#[test]
fn a_huge_length_is_refused_before_anything_is_buffered() {
    let mut header = vec![0u8; 4];
    header.extend_from_slice(&u32::MAX.to_be_bytes());
    let (error, src) = stream_error(&header);
    assert_eq!(
        error,
        TeltonikaError::PacketTooLarge {
            len_bytes: u64::from(u32::MAX),
            max_bytes: DEFAULT_MAX_DATA_BYTES,
        }
    );
    assert_eq!(error.answer(), ErrorAnswer::Close);
    assert!(src.capacity() < 1024, "reserved {} bytes", src.capacity());
}

#[test]
fn a_length_just_over_the_limit_is_refused() {
    let mut codec = ServerCodec::new(100);
    let mut src = bytes_of(HANDSHAKE);
    codec.decode(&mut src).unwrap().unwrap();
    src.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 101]);
    assert!(matches!(
        codec.decode(&mut src),
        Err(TeltonikaStreamError::Protocol(
            TeltonikaError::PacketTooLarge {
                len_bytes: 101,
                max_bytes: 100
            }
        ))
    ));
}

#[test]
fn a_zero_length_is_refused() {
    // Traccar's "invalid length and checksum" vector.
    let packet = hex::decode("0000000000000000080100000113fc208dff00209cca800f14f650006f00d60400040004030101150316030001460000015d000100000000").unwrap();
    let (error, _) = stream_error(&packet);
    assert_eq!(
        error,
        TeltonikaError::PacketTooShort {
            len_bytes: 0,
            min_bytes: 3
        }
    );
    assert_eq!(error.answer(), ErrorAnswer::Close);
}

#[test]
fn a_non_zero_preamble_is_refused_on_its_first_byte() {
    let (error, _) = stream_error(&[0x00, 0x07]);
    assert_eq!(
        error,
        TeltonikaError::PreambleNotZero { byte: 7, offset: 1 }
    );
    assert_eq!(error.answer(), ErrorAnswer::Close);
}

#[test]
fn a_wrong_codec_id_is_refused() {
    for codec_id in [0x07, 0x0c, 0x10, 0x8f] {
        let mut data = one_record_data();
        data[0] = codec_id;
        assert_eq!(
            refused(&frame(&data)),
            TeltonikaError::UnknownCodec { codec_id }
        );
    }
}

#[test]
fn record_counts_that_disagree_are_refused() {
    let mut data = one_record_data();
    *data.last_mut().unwrap() = 2;
    assert_eq!(
        refused(&frame(&data)),
        TeltonikaError::RecordCountMismatch {
            first: 1,
            second: 2,
            offset: 8 + 75,
        }
    );
}

#[test]
fn a_count_of_more_records_than_sent_is_refused_as_truncated() {
    let mut data = one_record_data();
    data[1] = 2;
    assert_eq!(
        refused(&frame(&data)),
        TeltonikaError::Truncated {
            record: 1,
            field: "timestamp",
            offset: 8 + 75,
            needed_bytes: 8,
            available_bytes: 1,
        }
    );
}

#[test]
fn zero_records_are_refused() {
    assert_eq!(
        refused(&frame(&[0x08, 0x00, 0x00])),
        TeltonikaError::NoRecords
    );
}

#[test]
fn a_record_cut_inside_its_io_elements_is_refused() {
    // Cut the record after the first 2-byte element's id; the counts still say 1.
    let data = one_record_data();
    let mut cut = data[..2 + 8 + 1 + 15 + 2 + 1 + 12 + 1 + 1].to_vec();
    cut.push(1);
    assert_eq!(
        refused(&frame(&cut)),
        TeltonikaError::Truncated {
            record: 0,
            field: "IO value",
            offset: 8 + 43,
            needed_bytes: 2,
            available_bytes: 1,
        }
    );
}

#[test]
fn a_variable_length_value_longer_than_the_packet_is_refused() {
    // Codec 8E record, no fixed-width elements, one NX element claiming 65535 bytes.
    let mut data = vec![0x8e, 0x01];
    data.extend_from_slice(&[0; 8 + 1 + 15]);
    data.extend_from_slice(&[
        0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 7, 0xff, 0xff, 0xaa,
    ]);
    data.push(0x01);
    assert_eq!(
        refused(&frame(&data)),
        TeltonikaError::Truncated {
            record: 0,
            field: "variable-length IO value",
            offset: 8 + 2 + 24 + 18,
            needed_bytes: 0xffff,
            available_bytes: 2,
        }
    );
}

#[test]
fn an_imei_with_a_letter_is_refused() {
    let mut codec = ServerCodec::default();
    let mut src = bytes_of("000F3132333435363738393031323334");
    src.extend_from_slice(b"A");
    match codec.decode(&mut src) {
        Err(TeltonikaStreamError::Protocol(error)) => {
            assert_eq!(
                error,
                TeltonikaError::ImeiNotDigit {
                    byte: b'A',
                    offset: 16
                }
            );
            assert_eq!(error.answer(), ErrorAnswer::RefuseImei);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_imei_of_the_wrong_length_is_refused_on_its_length() {
    for len_bytes in [0u16, 14, 16, 0xffff] {
        let mut codec = ServerCodec::default();
        let mut src = BytesMut::from(&len_bytes.to_be_bytes()[..]);
        match codec.decode(&mut src) {
            Err(TeltonikaStreamError::Protocol(error)) => {
                assert_eq!(
                    error,
                    TeltonikaError::ImeiLength {
                        len_bytes,
                        expected: 15
                    }
                );
                assert_eq!(error.answer(), ErrorAnswer::RefuseImei);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn a_timestamp_past_i64_is_refused() {
    let mut data = one_record_data();
    data[2] = 0x80;
    assert!(matches!(
        refused(&frame(&data)),
        TeltonikaError::TimestampOutOfRange {
            record: 0,
            offset: 10,
            ..
        }
    ));
}

#[test]
fn partial_input_waits_for_more() {
    let whole = bytes_of(CODEC8_ONE_RECORD);
    let mut codec = ServerCodec::default();
    let mut src = bytes_of(HANDSHAKE);
    codec.decode(&mut src).unwrap().unwrap();
    for byte in &whole[..whole.len() - 1] {
        src.extend_from_slice(&[*byte]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
    }
    src.extend_from_slice(&whole[whole.len() - 1..]);
    assert!(matches!(
        codec.decode(&mut src).unwrap(),
        Some(Incoming::Message(DeviceMessage::Avl(_)))
    ));
}
