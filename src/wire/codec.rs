//! The byte encoding of frames: `u32` LE length (type byte + payload), `u8` type, payload, all
//! integers little-endian. Owns [`encode_frame`]/[`decode_frame`] (sync, usable without tokio)
//! and [`FrameCodec`], the `tokio_util` codec built on them. Specified in `docs/protocol.md`.
//!
//! Decoding parses straight out of the receive buffer and then advances past the frame: the
//! payload is never copied, and a batch's readings are decoded into one `Vec` reserved once.
//! The length prefix is checked against the maximum frame size as soon as its four bytes have
//! arrived, before any of the body is buffered.

use super::frame::{
    check_secret, check_tag, ErrorCode, Frame, FrameType, WireError, BATCH_HEADER_BYTES,
    DEFAULT_MAX_FRAME_BYTES, HELLO_EPOCH_BYTES, LENGTH_PREFIX_BYTES, MAX_ERROR_MESSAGE_BYTES,
    PROTOCOL_VERSION, TYPE_BYTES,
};
use super::record::{decode_record, encode_record, RECORD_LEN};
use crate::model::Reading;
use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Encodes `frame` onto the end of `out`.
///
/// # Panics
/// If the frame is invalid (see [`Frame::validate`]): such a frame would be refused by any
/// receiver, so producing one is a bug in the caller. Use [`try_encode_frame`] (or
/// [`FrameCodec`]) where the frame's contents come from outside.
pub fn encode_frame(frame: &Frame, out: &mut BytesMut) {
    if let Err(error) = try_encode_frame(frame, out, u32::MAX as usize) {
        panic!(
            "encode_frame: invalid {} frame: {error}",
            frame.frame_type()
        );
    }
}

/// Encodes `frame` onto the end of `out` if it is valid under a frame-length limit of
/// `max_frame_bytes` (see [`Frame::validate`]); on error `out` is left as it was.
pub fn try_encode_frame(
    frame: &Frame,
    out: &mut BytesMut,
    max_frame_bytes: usize,
) -> Result<(), WireError> {
    if let Frame::Batch { seq, readings } = frame {
        return try_encode_batch(*seq, readings, out, max_frame_bytes);
    }
    frame.validate(max_frame_bytes)?;
    put_header(frame.frame_type(), frame.encoded_len(), out);
    match frame {
        Frame::Hello {
            protocol_version,
            tag,
            secret,
            epoch,
        } => {
            out.put_u16_le(*protocol_version);
            out.put_u8(tag.len() as u8);
            out.put_slice(tag.as_bytes());
            out.put_u8(secret.len() as u8);
            out.put_slice(secret.as_bytes());
            // Epoch 0 is left out: such a hello is byte for byte what it was before epochs.
            if *epoch != 0 {
                out.put_u32_le(*epoch);
            }
        }
        Frame::HelloOk { last_seq } => out.put_u64_le(*last_seq),
        Frame::Ack { seq } => out.put_u64_le(*seq),
        Frame::Error { code, message } => {
            out.put_u16_le(code.as_u16());
            out.put_u16_le(message.len() as u16);
            out.put_slice(message.as_bytes());
        }
        Frame::Batch { .. } => {} // encoded by try_encode_batch
    }
    Ok(())
}

/// Encodes a `Batch` frame from borrowed readings (what [`try_encode_frame`] does for
/// `Frame::Batch`, without needing an owned `Vec`); on error `out` is left as it was.
///
/// Each reading is checked as it is encoded (one encode and one decode each, see
/// [`Frame::validate`]) and the partial frame removed if one fails.
pub fn try_encode_batch(
    seq: u64,
    readings: &[Reading],
    out: &mut BytesMut,
    max_frame_bytes: usize,
) -> Result<(), WireError> {
    let len_bytes = TYPE_BYTES + BATCH_HEADER_BYTES + readings.len() * RECORD_LEN;
    let limit_bytes = max_frame_bytes.min(u32::MAX as usize);
    if len_bytes > limit_bytes {
        return Err(WireError::FrameTooLarge {
            len_bytes: len_bytes as u64,
            max_bytes: limit_bytes,
        });
    }
    if seq == 0 {
        return Err(WireError::SeqZero);
    }
    if readings.is_empty() {
        return Err(WireError::EmptyBatch);
    }
    let start_len = out.len();
    put_header(FrameType::Batch, len_bytes, out);
    out.put_u64_le(seq);
    out.put_u32_le(readings.len() as u32);
    if let Err(error) = put_records(readings, out) {
        out.truncate(start_len);
        return Err(error);
    }
    Ok(())
}

/// Reserves the whole frame and writes the length prefix and type byte.
fn put_header(frame_type: FrameType, len_bytes: usize, out: &mut BytesMut) {
    out.reserve(LENGTH_PREFIX_BYTES + len_bytes);
    out.put_u32_le(len_bytes as u32);
    out.put_u8(frame_type.code());
}

fn put_records(readings: &[Reading], out: &mut BytesMut) -> Result<(), WireError> {
    for (index, reading) in readings.iter().enumerate() {
        let record = encode_record(reading);
        match decode_record(&record) {
            Ok(back) if back == *reading => out.put_slice(&record),
            Ok(_) => return Err(WireError::UnencodableReading { index }),
            Err(error) => return Err(WireError::BadRecord { index, error }),
        }
    }
    Ok(())
}

/// Decodes the first frame in `buf` if it has fully arrived, advancing `buf` past it.
///
/// `Ok(None)`: more bytes are needed (and `buf` has reserved room for the rest of the frame).
/// `Err(FrameTooLarge)` is returned as soon as the length prefix is in, and leaves `buf` as it
/// was: the stream cannot be resynchronised. Any other error consumes the offending frame, so
/// frame boundaries stay intact (the protocol closes the connection after an error anyway).
pub fn decode_frame(
    buf: &mut BytesMut,
    max_frame_bytes: usize,
) -> Result<Option<Frame>, WireError> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX_BYTES) else {
        return Ok(None);
    };
    let len_bytes = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let frame_bytes = len_bytes as usize;
    if frame_bytes > max_frame_bytes {
        return Err(WireError::FrameTooLarge {
            len_bytes: u64::from(len_bytes),
            max_bytes: max_frame_bytes,
        });
    }
    if frame_bytes == 0 {
        buf.advance(LENGTH_PREFIX_BYTES);
        return Err(WireError::EmptyFrame);
    }
    let Some(total_bytes) = frame_bytes.checked_add(LENGTH_PREFIX_BYTES) else {
        return Err(WireError::FrameTooLarge {
            len_bytes: u64::from(len_bytes),
            max_bytes: max_frame_bytes,
        });
    };
    if buf.len() < total_bytes {
        buf.reserve(total_bytes - buf.len());
        return Ok(None);
    }
    let result = parse_frame(&buf[LENGTH_PREFIX_BYTES..total_bytes]);
    buf.advance(total_bytes);
    result.map(Some)
}

/// Decodes one frame from its type byte and payload (`bytes` is what the length prefix covers,
/// non-empty).
fn parse_frame(bytes: &[u8]) -> Result<Frame, WireError> {
    let Some((&type_code, payload)) = bytes.split_first() else {
        return Err(WireError::EmptyFrame);
    };
    match FrameType::from_code(type_code) {
        Some(FrameType::Batch) => parse_batch(payload),
        Some(FrameType::Hello) => parse_hello(payload),
        Some(FrameType::HelloOk) => Ok(Frame::HelloOk {
            last_seq: parse_u64_only(FrameType::HelloOk, payload)?,
        }),
        Some(FrameType::Ack) => Ok(Frame::Ack {
            seq: parse_u64_only(FrameType::Ack, payload)?,
        }),
        Some(FrameType::Error) => parse_error(payload),
        None => Err(WireError::UnknownFrameType(type_code)),
    }
}

fn u16_at(p: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([p[at], p[at + 1]])
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn u64_at(p: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[at..at + 8]);
    u64::from_le_bytes(b)
}

fn payload_length(frame: FrameType, expected_bytes: usize, payload: &[u8]) -> WireError {
    WireError::PayloadLength {
        frame,
        expected_bytes,
        actual_bytes: payload.len(),
    }
}

fn parse_u64_only(frame: FrameType, payload: &[u8]) -> Result<u64, WireError> {
    if payload.len() != 8 {
        return Err(payload_length(frame, 8, payload));
    }
    Ok(u64_at(payload, 0))
}

fn parse_batch(payload: &[u8]) -> Result<Frame, WireError> {
    if payload.len() < BATCH_HEADER_BYTES {
        return Err(payload_length(
            FrameType::Batch,
            BATCH_HEADER_BYTES,
            payload,
        ));
    }
    let seq = u64_at(payload, 0);
    let count = u32_at(payload, 8);
    let records = &payload[BATCH_HEADER_BYTES..];
    if seq == 0 {
        return Err(WireError::SeqZero);
    }
    if u64::from(count) * RECORD_LEN as u64 != records.len() as u64 {
        return Err(WireError::CountMismatch {
            count,
            record_bytes: records.len(),
        });
    }
    if count == 0 {
        return Err(WireError::EmptyBatch);
    }
    let mut readings = Vec::with_capacity(count as usize);
    for (index, chunk) in records.chunks_exact(RECORD_LEN).enumerate() {
        let record: &[u8; RECORD_LEN] = chunk.try_into().map_err(|_| WireError::CountMismatch {
            count,
            record_bytes: records.len(),
        })?;
        match decode_record(record) {
            Ok(reading) => readings.push(reading),
            Err(error) => return Err(WireError::BadRecord { index, error }),
        }
    }
    Ok(Frame::Batch { seq, readings })
}

/// A hello is `u16 version, u8 tag_len, tag, u8 secret_len, secret`, optionally followed by
/// `u32 epoch` (absent = epoch 0). If a hello cannot be
/// parsed and its version is not ours, the version is what is reported: a later version may lay
/// its hello out differently.
fn parse_hello(payload: &[u8]) -> Result<Frame, WireError> {
    const MIN_BYTES: usize = 2 + 1 + 1;
    if payload.len() < 2 {
        return Err(payload_length(FrameType::Hello, MIN_BYTES, payload));
    }
    let protocol_version = u16_at(payload, 0);
    parse_hello_v1(protocol_version, payload).map_err(|error| {
        if protocol_version == PROTOCOL_VERSION {
            error
        } else {
            WireError::UnsupportedVersion {
                got: protocol_version,
                supported: PROTOCOL_VERSION,
            }
        }
    })
}

fn parse_hello_v1(protocol_version: u16, payload: &[u8]) -> Result<Frame, WireError> {
    let Some(&tag_len) = payload.get(2) else {
        return Err(payload_length(FrameType::Hello, 2 + 1 + 1, payload));
    };
    let tag_end = 3 + usize::from(tag_len);
    let Some(&secret_len) = payload.get(tag_end) else {
        return Err(payload_length(FrameType::Hello, tag_end + 1, payload));
    };
    let secret_start = tag_end + 1;
    let secret_end = secret_start + usize::from(secret_len);
    let epoch = if payload.len() == secret_end {
        0
    } else if payload.len() == secret_end + HELLO_EPOCH_BYTES {
        u32_at(payload, secret_end)
    } else {
        return Err(payload_length(FrameType::Hello, secret_end, payload));
    };
    let tag = check_tag(&payload[3..tag_end])?;
    let secret = check_secret(&payload[secret_start..secret_end])?;
    Ok(Frame::Hello {
        protocol_version,
        tag: tag.to_owned(),
        secret: secret.to_owned(),
        epoch,
    })
}

fn parse_error(payload: &[u8]) -> Result<Frame, WireError> {
    const HEADER_BYTES: usize = 2 + 2;
    if payload.len() < HEADER_BYTES {
        return Err(payload_length(FrameType::Error, HEADER_BYTES, payload));
    }
    let code_value = u16_at(payload, 0);
    let message_len = usize::from(u16_at(payload, 2));
    if payload.len() != HEADER_BYTES + message_len {
        return Err(payload_length(
            FrameType::Error,
            HEADER_BYTES + message_len,
            payload,
        ));
    }
    let code = ErrorCode::from_u16(code_value).ok_or(WireError::UnknownErrorCode(code_value))?;
    if message_len > MAX_ERROR_MESSAGE_BYTES {
        return Err(WireError::ErrorMessageTooLong {
            len_bytes: message_len,
        });
    }
    let message = std::str::from_utf8(&payload[HEADER_BYTES..])
        .map_err(|_| WireError::ErrorMessageNotUtf8)?
        .to_owned();
    Ok(Frame::Error { code, message })
}

/// The `tokio_util` codec for the protocol, for `Framed` over a TCP stream. Both directions use
/// the same frame encoding; which frames are acceptable when is the session's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame_bytes: usize,
}

impl FrameCodec {
    /// A codec with the [`DEFAULT_MAX_FRAME_BYTES`] limit.
    pub fn new() -> Self {
        Self::with_max_frame_bytes(DEFAULT_MAX_FRAME_BYTES)
    }

    /// A codec refusing frames whose length field exceeds `max_frame_bytes`, in both directions.
    pub fn with_max_frame_bytes(max_frame_bytes: usize) -> Self {
        Self { max_frame_bytes }
    }

    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Changes the limit for the frames that follow (e.g. raised once a peer is authenticated).
    pub fn set_max_frame_bytes(&mut self, max_frame_bytes: usize) {
        self.max_frame_bytes = max_frame_bytes;
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        decode_frame(src, self.max_frame_bytes)
    }

    /// At end of stream, leftover bytes are a frame cut short: reported as
    /// [`WireError::Truncated`] and discarded.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let needed_bytes = match src.get(..LENGTH_PREFIX_BYTES) {
            Some(p) => LENGTH_PREFIX_BYTES + u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize,
            None => LENGTH_PREFIX_BYTES,
        };
        let available_bytes = src.len();
        src.clear();
        Err(WireError::Truncated {
            needed_bytes,
            available_bytes,
        })
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        try_encode_frame(frame, dst, self.max_frame_bytes)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        try_encode_frame(&frame, dst, self.max_frame_bytes)
    }
}

#[cfg(test)]
mod tests {
    //! The worked example in `docs/protocol.md` is generated here: these tests assert the exact
    //! hex the document shows, and that its annotated byte tables add up to the same bytes.

    use super::*;
    use crate::model::{DeviceEvent, Position, PositionSource, ReadingBody};
    use crate::wire::secret::tag_secret;

    const PROTOCOL_DOC: &str = include_str!("../../docs/protocol.md");

    /// The server key of the example (never use it for real).
    const EXAMPLE_SERVER_KEY: &[u8] = b"example-server-key";

    fn example_hello() -> Frame {
        Frame::hello("T1", tag_secret(EXAMPLE_SERVER_KEY, "T1"))
    }

    fn example_batch() -> Frame {
        Frame::Batch {
            seq: 1,
            readings: vec![
                Reading {
                    t_ms: 1_774_722_600_000, // 2026-03-28T18:30:00Z
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
                },
                Reading {
                    t_ms: 1_774_722_615_000, // 2026-03-28T18:30:15Z
                    battery_pct: Some(86),
                    body: ReadingBody::Event(DeviceEvent::StrapOpen),
                },
            ],
        }
    }

    /// Lowercase hex, bytes separated by spaces, 16 bytes a line.
    fn hex_dump(bytes: &[u8]) -> String {
        bytes
            .chunks(16)
            .map(|line| {
                line.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn encoded(frame: &Frame) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_frame(frame, &mut out);
        out.to_vec()
    }

    /// The rows of the annotated table between `<!-- example:NAME:begin -->` and `:end -->`:
    /// (offset column, hex bytes column).
    fn annotated_rows(name: &str) -> Vec<(usize, Vec<u8>)> {
        let begin = format!("<!-- example:{name}:begin -->");
        let end = format!("<!-- example:{name}:end -->");
        let start = PROTOCOL_DOC
            .find(&begin)
            .expect("begin marker in docs/protocol.md");
        let stop = PROTOCOL_DOC[start..].find(&end).expect("end marker") + start;
        PROTOCOL_DOC[start..stop]
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains('`'))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let offset = cells[1].parse().expect("offset column is a number");
                let hex: String = cells[2].trim_matches('`').split_whitespace().collect();
                (offset, hex::decode(hex).expect("bytes column is hex"))
            })
            .collect()
    }

    fn check_doc_example(name: &str, frame: &Frame, expected_hex: &str) {
        let bytes = encoded(frame);
        let dump = hex_dump(&bytes);
        assert_eq!(
            dump, expected_hex,
            "the encoder's bytes for the {name} example changed"
        );
        assert!(
            PROTOCOL_DOC.contains(&format!("```text\n{dump}\n```")),
            "docs/protocol.md must show the {name} example as:\n{dump}"
        );
        let mut at = 0;
        let mut annotated = Vec::new();
        for (offset, row) in annotated_rows(name) {
            assert_eq!(offset, at, "{name} table: offset column out of step");
            at += row.len();
            annotated.extend(row);
        }
        assert_eq!(
            hex_dump(&annotated),
            dump,
            "{name} table bytes differ from the encoding"
        );
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES)
                .ok()
                .flatten()
                .as_ref(),
            Some(frame)
        );
    }

    const HELLO_HEX: &str = "\
47 00 00 00 01 01 00 02 54 31 40 39 64 31 33 66
30 36 61 38 37 34 37 65 35 66 61 63 30 62 65 33
66 35 39 62 62 36 37 39 65 33 36 34 66 33 61 37
66 36 66 64 66 61 38 33 65 35 32 62 36 30 32 34
30 64 39 34 30 34 30 31 34 32 66";

    const BATCH_HEX: &str = "\
4d 00 00 00 03 01 00 00 00 00 00 00 00 02 00 00
00 40 cc b5 35 9d 01 00 00 01 00 09 57 68 55 ab
1e 28 1e 75 fe 20 03 00 00 9a 01 28 23 00 00 00
00 d8 06 b6 35 9d 01 00 00 04 01 ff 56 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00";

    #[test]
    fn protocol_doc_hello_example_is_what_the_encoder_writes() {
        check_doc_example("hello", &example_hello(), HELLO_HEX);
    }

    #[test]
    fn protocol_doc_batch_example_is_what_the_encoder_writes() {
        check_doc_example("batch", &example_batch(), BATCH_HEX);
    }

    #[test]
    fn protocol_doc_hello_ok_and_ack_examples_are_what_the_encoder_writes() {
        for frame in [Frame::HelloOk { last_seq: 0 }, Frame::Ack { seq: 1 }] {
            let dump = hex_dump(&encoded(&frame));
            assert!(
                PROTOCOL_DOC.contains(&format!("`{dump}`")),
                "docs/protocol.md must show {frame:?} as `{dump}`"
            );
        }
    }

    #[test]
    fn protocol_doc_lists_every_error_code() {
        for code in ErrorCode::ALL {
            let row = format!("| {} | `{}` |", code.as_u16(), code.as_str());
            assert!(PROTOCOL_DOC.contains(&row), "docs/protocol.md lacks {row}");
        }
    }

    #[test]
    fn protocol_doc_example_secret_is_the_hmac() {
        let secret = tag_secret(EXAMPLE_SERVER_KEY, "T1");
        assert!(
            PROTOCOL_DOC.contains(&secret),
            "docs/protocol.md must show {secret}"
        );
    }
}
