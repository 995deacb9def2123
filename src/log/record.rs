//! The byte layout of one log record: the frame (`u32 LE payload length`, `u32 LE crc32 of the
//! payload`, payload) and the batch payload inside it.
//!
//! Batch payload (little-endian): `u8 record type (1 = batch)`, `i64 arrival_ms`, `u64 seq`,
//! `u8 tag_len`, tag bytes (UTF-8), `u32 count`, then `count` readings in the 32-byte layout of
//! [`crate::wire::record`], i.e. exactly as they travel on the wire.
//!
//! Control payload (record type 3): `u8 3`, `i64 recorded_ms`, then the JSON of a
//! [`ControlRecord`] (a change to people, activations or orders; see `docs/formats.md`).
//!
//! A batch of a non-zero session epoch is stored as record type 2 (epoched batch): the same
//! payload with `u32 epoch` after `seq`. Epoch-0 batches keep type 1, so logs written before
//! epochs existed read unchanged and a log without epochs is byte for byte what it was.

use super::error::{LogError, PayloadError};
use crate::model::{Batch, ControlRecord, LogEntry};
use crate::wire::{decode_record, encode_record, RECORD_LEN};

/// Bytes before the payload: length and checksum.
pub const FRAME_HEADER_LEN: usize = 8;
/// Record type of a batch payload.
pub const RECORD_TYPE_BATCH: u8 = 1;
/// Record type of a batch payload with a session epoch (see the module doc).
pub const RECORD_TYPE_EPOCH_BATCH: u8 = 2;
/// Record type of a control payload (see the module doc).
pub const RECORD_TYPE_CONTROL: u8 = 3;
/// Largest control payload: a change to one person, activation or order is far smaller; a
/// police crime batch at its largest (50,000 rows by default, about 450 bytes a row as JSON)
/// fits, within the largest payload any record may have.
pub const MAX_CONTROL_PAYLOAD_LEN: usize = 32 << 20;
/// Bytes of the epoch field of a [`RECORD_TYPE_EPOCH_BATCH`] payload.
const EPOCH_LEN: usize = 4;
/// Most readings one record may hold (32 MiB of readings).
pub const MAX_READINGS_PER_RECORD: usize = 1 << 20;
/// Payload bytes besides the tag and the readings.
const PAYLOAD_FIXED_LEN: usize = 1 + 8 + 8 + 1 + 4;
/// Largest payload a valid record can have; a larger length field is damage.
pub const MAX_PAYLOAD_LEN: usize =
    PAYLOAD_FIXED_LEN + EPOCH_LEN + 255 + MAX_READINGS_PER_RECORD * RECORD_LEN;

/// Payload length of an epoch-0 batch with a tag of `tag_len` bytes and `count` readings.
pub fn batch_payload_len(tag_len: usize, count: usize) -> usize {
    PAYLOAD_FIXED_LEN + tag_len + count * RECORD_LEN
}

/// The record type a batch of session epoch `epoch` is stored as, and its extra payload bytes.
fn record_type_for_epoch(epoch: u32) -> (u8, usize) {
    if epoch == 0 {
        (RECORD_TYPE_BATCH, 0)
    } else {
        (RECORD_TYPE_EPOCH_BATCH, EPOCH_LEN)
    }
}

/// Frame length (header plus payload) the batch will occupy, or why it cannot be stored.
pub fn batch_frame_len(batch: &Batch) -> Result<usize, LogError> {
    let tag_len = batch.tag.len();
    if tag_len == 0 || tag_len > 255 {
        return Err(LogError::BadTag { len_bytes: tag_len });
    }
    if batch.readings.len() > MAX_READINGS_PER_RECORD {
        return Err(LogError::BatchTooLarge {
            count: batch.readings.len(),
            max: MAX_READINGS_PER_RECORD,
        });
    }
    let (_, epoch_len) = record_type_for_epoch(batch.epoch);
    Ok(FRAME_HEADER_LEN + epoch_len + batch_payload_len(tag_len, batch.readings.len()))
}

/// Appends the framed record of `batch` to `out`; returns the frame length in bytes.
pub fn encode_batch_frame(batch: &Batch, out: &mut Vec<u8>) -> Result<usize, LogError> {
    let frame_len = batch_frame_len(batch)?;
    let start = out.len();
    out.reserve(frame_len);
    let payload_len = (frame_len - FRAME_HEADER_LEN) as u32;
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // checksum, filled in below
    let (record_type, _) = record_type_for_epoch(batch.epoch);
    out.push(record_type);
    out.extend_from_slice(&batch.arrival_ms.to_le_bytes());
    out.extend_from_slice(&batch.seq.to_le_bytes());
    if record_type == RECORD_TYPE_EPOCH_BATCH {
        out.extend_from_slice(&batch.epoch.to_le_bytes());
    }
    out.push(batch.tag.len() as u8);
    out.extend_from_slice(batch.tag.as_bytes());
    out.extend_from_slice(&(batch.readings.len() as u32).to_le_bytes());
    for reading in &batch.readings {
        out.extend_from_slice(&encode_record(reading));
    }
    let crc = crc32fast::hash(&out[start + FRAME_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len() - start, frame_len);
    Ok(frame_len)
}

/// Appends the framed record of a control record to `out`; returns the frame length in bytes.
pub fn encode_control_frame(control: &ControlRecord, out: &mut Vec<u8>) -> Result<usize, LogError> {
    let json = serde_json::to_vec(control).map_err(|e| LogError::ControlTooLarge {
        len_bytes: 0,
        message: e.to_string(),
    })?;
    let payload_len = 1 + 8 + json.len();
    if payload_len > MAX_CONTROL_PAYLOAD_LEN {
        return Err(LogError::ControlTooLarge {
            len_bytes: payload_len,
            message: format!("more than {MAX_CONTROL_PAYLOAD_LEN} bytes"),
        });
    }
    let mut payload = Vec::with_capacity(payload_len);
    payload.push(RECORD_TYPE_CONTROL);
    payload.extend_from_slice(&control.recorded.to_le_bytes());
    payload.extend_from_slice(&json);
    encode_payload_frame(&payload, out);
    Ok(FRAME_HEADER_LEN + payload_len)
}

/// Whether a payload is a control record (type 3), by its first byte.
pub fn is_control_payload(payload: &[u8]) -> bool {
    payload.first() == Some(&RECORD_TYPE_CONTROL)
}

/// Decodes a control payload.
pub fn decode_control_payload(payload: &[u8]) -> Result<ControlRecord, PayloadError> {
    if !is_control_payload(payload) {
        return Err(PayloadError::UnknownType(
            payload.first().copied().unwrap_or(0),
        ));
    }
    if payload.len() < 9 {
        return Err(PayloadError::TooShort {
            len_bytes: payload.len(),
        });
    }
    let recorded_ms = i64::from_le_bytes(array8(&payload[1..9]));
    let control: ControlRecord =
        serde_json::from_slice(&payload[9..]).map_err(|e| PayloadError::Control(e.to_string()))?;
    if control.recorded != recorded_ms {
        return Err(PayloadError::Control(format!(
            "recorded time {recorded_ms} in the header, {} in the record",
            control.recorded
        )));
    }
    Ok(control)
}

/// Decodes any payload, stored as log record number `record`: a tag's batch or a control record.
pub fn decode_payload(payload: &[u8], record: u64) -> Result<LogEntry, PayloadError> {
    if is_control_payload(payload) {
        decode_control_payload(payload).map(|control| LogEntry::Control {
            record,
            control: std::sync::Arc::new(control),
        })
    } else {
        decode_batch_payload(payload).map(|b| LogEntry::Batch(std::sync::Arc::new(b)))
    }
}

/// Checks that a payload decodes (every reading of a batch, the JSON of a control record):
/// what resync uses to tell a record from damage.
pub fn check_payload_structure(payload: &[u8]) -> Result<(), PayloadError> {
    if is_control_payload(payload) {
        decode_control_payload(payload).map(|_| ())
    } else {
        decode_batch_payload(payload).map(|_| ())
    }
}

/// Appends the frame of an already encoded payload (length, checksum, payload) to `out`.
pub fn encode_payload_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload_checksum(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads a frame header: `(payload length, stored checksum)`.
pub fn parse_frame_header(header: &[u8; FRAME_HEADER_LEN]) -> (u32, u32) {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    (len, crc)
}

/// The checksum stored for a payload.
pub fn payload_checksum(payload: &[u8]) -> u32 {
    crc32fast::hash(payload)
}

/// The fixed fields of a batch payload, read without decoding the readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader<'a> {
    pub arrival_ms: i64,
    pub seq: u64,
    /// Session epoch (0 for a type-1 record).
    pub epoch: u32,
    pub tag: &'a str,
    pub count: usize,
    /// The `count * 32` reading bytes.
    pub readings: &'a [u8],
}

/// Checks the structure of a batch payload and returns its fields (readings left encoded).
pub fn parse_batch_header(payload: &[u8]) -> Result<BatchHeader<'_>, PayloadError> {
    let too_short = || PayloadError::TooShort {
        len_bytes: payload.len(),
    };
    let record_type = *payload.first().ok_or_else(too_short)?;
    let epoch_len = match record_type {
        RECORD_TYPE_BATCH => 0,
        RECORD_TYPE_EPOCH_BATCH => EPOCH_LEN,
        other => return Err(PayloadError::UnknownType(other)),
    };
    if payload.len() < PAYLOAD_FIXED_LEN + epoch_len {
        return Err(too_short());
    }
    let arrival_ms = i64::from_le_bytes(array8(&payload[1..9]));
    let seq = u64::from_le_bytes(array8(&payload[9..17]));
    let epoch = match record_type {
        RECORD_TYPE_EPOCH_BATCH => {
            u32::from_le_bytes([payload[17], payload[18], payload[19], payload[20]])
        }
        _ => 0,
    };
    let tag_len_at = 17 + epoch_len;
    let tag_len = payload[tag_len_at] as usize;
    let tag_start = tag_len_at + 1;
    let tag_end = tag_start + tag_len;
    let count_bytes = payload.get(tag_end..tag_end + 4).ok_or_else(too_short)?;
    let count = u32::from_le_bytes([
        count_bytes[0],
        count_bytes[1],
        count_bytes[2],
        count_bytes[3],
    ]) as usize;
    let expected_bytes = epoch_len + batch_payload_len(tag_len, count);
    if payload.len() != expected_bytes {
        return Err(PayloadError::LengthMismatch {
            len_bytes: payload.len(),
            expected_bytes,
        });
    }
    let tag =
        std::str::from_utf8(&payload[tag_start..tag_end]).map_err(|_| PayloadError::TagNotUtf8)?;
    Ok(BatchHeader {
        arrival_ms,
        seq,
        epoch,
        tag,
        count,
        readings: &payload[tag_end + 4..],
    })
}

/// Decodes a batch payload, validating every reading.
pub fn decode_batch_payload(payload: &[u8]) -> Result<Batch, PayloadError> {
    let header = parse_batch_header(payload)?;
    let mut readings = Vec::with_capacity(header.count);
    for (index, chunk) in header.readings.chunks_exact(RECORD_LEN).enumerate() {
        let mut rec = [0u8; RECORD_LEN];
        rec.copy_from_slice(chunk);
        readings
            .push(decode_record(&rec).map_err(|source| PayloadError::Reading { index, source })?);
    }
    Ok(Batch {
        tag: header.tag.to_owned(),
        epoch: header.epoch,
        seq: header.seq,
        arrival_ms: header.arrival_ms,
        readings,
    })
}

/// Whether `bytes` starts with a complete, checksum-valid, structurally valid frame; returns its
/// length. Used to count intact records found after damage when a tail is discarded.
pub fn complete_frame_len(bytes: &[u8]) -> Option<usize> {
    let header: &[u8; FRAME_HEADER_LEN] = bytes.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
    let (len, crc) = parse_frame_header(header);
    let len = len as usize;
    if len == 0 || len > MAX_PAYLOAD_LEN {
        return None;
    }
    let payload = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len)?;
    // Cheap structural checks first so that scanning garbage rarely computes a checksum.
    if is_control_payload(payload) {
        if payload.len() < 9 || payload_checksum(payload) != crc {
            return None;
        }
        return decode_control_payload(payload)
            .ok()
            .map(|_| FRAME_HEADER_LEN + len);
    }
    parse_batch_header(payload).ok()?;
    (payload_checksum(payload) == crc).then_some(FRAME_HEADER_LEN + len)
}

fn array8(bytes: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DeviceEvent, Reading, ReadingBody};

    fn batch(count: usize) -> Batch {
        Batch {
            tag: "tag-ü1".into(),
            epoch: 0,
            seq: 42,
            arrival_ms: 1_774_722_600_123,
            readings: (0..count)
                .map(|i| Reading {
                    t_ms: 1_774_722_600_000 + i as i64,
                    battery_pct: Some(50),
                    body: ReadingBody::Event(DeviceEvent::StrapOpen),
                })
                .collect(),
        }
    }

    #[test]
    fn frame_round_trips_and_layout_is_as_specified() {
        let b = batch(3);
        let mut out = vec![0xAA]; // frames append; existing bytes are kept
        let len = encode_batch_frame(&b, &mut out).unwrap();
        assert_eq!(len, out.len() - 1);
        let frame = &out[1..];
        let (payload_len, crc) = parse_frame_header(frame[..8].try_into().unwrap());
        assert_eq!(payload_len as usize, batch_payload_len(b.tag.len(), 3));
        let payload = &frame[8..];
        assert_eq!(crc, crc32fast::hash(payload));
        assert_eq!(payload[0], RECORD_TYPE_BATCH);
        assert_eq!(&payload[1..9], &b.arrival_ms.to_le_bytes());
        assert_eq!(&payload[9..17], &42u64.to_le_bytes());
        assert_eq!(payload[17] as usize, b.tag.len());
        assert_eq!(decode_batch_payload(payload).unwrap(), b);
        assert_eq!(complete_frame_len(frame), Some(len));
        assert_eq!(complete_frame_len(&frame[..len - 1]), None);
    }

    #[test]
    fn empty_batches_round_trip_and_bad_tags_are_refused() {
        let b = batch(0);
        let mut out = Vec::new();
        encode_batch_frame(&b, &mut out).unwrap();
        assert_eq!(decode_batch_payload(&out[8..]).unwrap(), b);
        let mut bad = batch(1);
        bad.tag = String::new();
        assert!(matches!(
            encode_batch_frame(&bad, &mut out),
            Err(LogError::BadTag { len_bytes: 0 })
        ));
        bad.tag = "x".repeat(256);
        assert!(matches!(
            encode_batch_frame(&bad, &mut out),
            Err(LogError::BadTag { len_bytes: 256 })
        ));
    }

    #[test]
    fn malformed_payloads_are_named() {
        let mut out = Vec::new();
        encode_batch_frame(&batch(2), &mut out).unwrap();
        let payload = out[8..].to_vec();
        assert_eq!(
            decode_batch_payload(&payload[..payload.len() - 1]),
            Err(PayloadError::LengthMismatch {
                len_bytes: payload.len() - 1,
                expected_bytes: payload.len()
            })
        );
        let mut wrong_type = payload.clone();
        wrong_type[0] = 7;
        assert_eq!(
            decode_batch_payload(&wrong_type),
            Err(PayloadError::UnknownType(7))
        );
        let mut bad_reading = payload.clone();
        let first_reading = payload.len() - 64;
        bad_reading[first_reading + 8] = 99; // kind byte
        assert!(matches!(
            decode_batch_payload(&bad_reading),
            Err(PayloadError::Reading { index: 0, .. })
        ));
        assert!(matches!(
            decode_batch_payload(&[]),
            Err(PayloadError::TooShort { len_bytes: 0 })
        ));
    }

    #[test]
    fn epoched_batches_are_type_2_records_and_round_trip() {
        let mut b = batch(2);
        b.epoch = 7;
        let mut out = Vec::new();
        let len = encode_batch_frame(&b, &mut out).unwrap();
        assert_eq!(len, batch_frame_len(&b).unwrap());
        assert_eq!(
            len,
            FRAME_HEADER_LEN + 4 + batch_payload_len(b.tag.len(), 2)
        );
        let payload = &out[FRAME_HEADER_LEN..];
        assert_eq!(payload[0], RECORD_TYPE_EPOCH_BATCH);
        assert_eq!(&payload[17..21], &7u32.to_le_bytes());
        let header = parse_batch_header(payload).unwrap();
        assert_eq!((header.epoch, header.seq, header.tag), (7, 42, "tag-ü1"));
        assert_eq!(decode_batch_payload(payload).unwrap(), b);
        assert_eq!(complete_frame_len(&out), Some(len));
        // Epoch 0 stays a type-1 record.
        let mut zero = Vec::new();
        encode_batch_frame(&batch(2), &mut zero).unwrap();
        assert_eq!(zero[FRAME_HEADER_LEN], RECORD_TYPE_BATCH);
        assert_eq!(zero.len() + 4, out.len());
    }
}
