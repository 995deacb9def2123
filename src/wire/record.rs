//! The 32-byte fixed layout of one reading, shared by the wire protocol and the durable log.
//!
//! Fixed size keeps decode branch-light and allocation-free (the decode target is tens of millions
//! of readings a second) and lets a batch's readings be stored in the log exactly as they arrived.
//! Layout (little-endian) is specified in `docs/protocol.md`.

use crate::model::{DeviceEvent, Position, PositionSource, Reading, ReadingBody, TacSample};
use thiserror::Error;

/// Bytes in one encoded reading.
pub const RECORD_LEN: usize = 32;

const KIND_POSITION: u8 = 1;
const KIND_TAC: u8 = 2;
const KIND_RF: u8 = 3;
const KIND_EVENT: u8 = 4;
const NONE_U8: u8 = 0xFF;
const NONE_U16: u16 = 0xFFFF;

/// Why a 32-byte record is not a valid reading.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum RecordError {
    #[error("unknown reading kind {0}")]
    UnknownKind(u8),
    #[error("unknown position source {0}")]
    UnknownSource(u8),
    #[error("unknown device event code {0}")]
    UnknownEvent(u8),
    #[error("rf in_range must be 0 or 1, got {0}")]
    BadRfFlag(u8),
    #[error("latitude {0} x1e-7 out of range -90..90")]
    LatitudeOutOfRange(i32),
    #[error("longitude {0} x1e-7 out of range -180..180")]
    LongitudeOutOfRange(i32),
    #[error("heading {0} hundredths of a degree out of range 0..36000")]
    HeadingOutOfRange(u16),
    #[error("battery {0}% out of range 0..100")]
    BatteryOutOfRange(u8),
    #[error("reserved bytes must be zero")]
    ReservedNotZero,
}

fn u16_at(b: &[u8; RECORD_LEN], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8; RECORD_LEN], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn opt_u8(v: u8) -> Option<u8> {
    (v != NONE_U8).then_some(v)
}
fn opt_u16(v: u16) -> Option<u16> {
    (v != NONE_U16).then_some(v)
}

/// Encodes one reading into exactly [`RECORD_LEN`] bytes.
pub fn encode_record(r: &Reading) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    b[0..8].copy_from_slice(&r.t_ms.to_le_bytes());
    b[11] = r.battery_pct.unwrap_or(NONE_U8);
    b[10] = NONE_U8;
    match r.body {
        ReadingBody::Position(p) => {
            b[8] = KIND_POSITION;
            b[9] = p.source.code();
            b[10] = p.satellites.unwrap_or(NONE_U8);
            b[12..16].copy_from_slice(&p.lat_e7.to_le_bytes());
            b[16..20].copy_from_slice(&p.lon_e7.to_le_bytes());
            b[20..24].copy_from_slice(&p.precision_cm.to_le_bytes());
            b[24..26].copy_from_slice(&p.speed_ckmh.unwrap_or(NONE_U16).to_le_bytes());
            b[26..28].copy_from_slice(&p.heading_cdeg.unwrap_or(NONE_U16).to_le_bytes());
        }
        ReadingBody::Tac(s) => {
            b[8] = KIND_TAC;
            b[12..16].copy_from_slice(&s.tac_ugdl.to_le_bytes());
            b[16..20].copy_from_slice(&s.ir_uv.to_le_bytes());
            b[20..24].copy_from_slice(&s.temp_mc.to_le_bytes());
        }
        ReadingBody::Rf { in_range } => {
            b[8] = KIND_RF;
            b[9] = in_range as u8;
        }
        ReadingBody::Event(e) => {
            b[8] = KIND_EVENT;
            b[9] = e.code();
        }
    }
    b
}

/// Decodes and validates one record.
#[inline]
pub fn decode_record(b: &[u8; RECORD_LEN]) -> Result<Reading, RecordError> {
    let t_ms = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let battery_pct = opt_u8(b[11]);
    if let Some(pct) = battery_pct {
        if pct > 100 {
            return Err(RecordError::BatteryOutOfRange(pct));
        }
    }
    let body = match b[8] {
        KIND_POSITION => {
            let source = PositionSource::from_code(b[9]).ok_or(RecordError::UnknownSource(b[9]))?;
            let lat_e7 = i32_at(b, 12);
            let lon_e7 = i32_at(b, 16);
            if !(-900_000_000..=900_000_000).contains(&lat_e7) {
                return Err(RecordError::LatitudeOutOfRange(lat_e7));
            }
            if !(-1_800_000_000..=1_800_000_000).contains(&lon_e7) {
                return Err(RecordError::LongitudeOutOfRange(lon_e7));
            }
            let heading_cdeg = opt_u16(u16_at(b, 26));
            if let Some(h) = heading_cdeg {
                if h >= 36_000 {
                    return Err(RecordError::HeadingOutOfRange(h));
                }
            }
            if b[28..32] != [0; 4] {
                return Err(RecordError::ReservedNotZero);
            }
            ReadingBody::Position(Position {
                lat_e7,
                lon_e7,
                precision_cm: i32_at(b, 20) as u32,
                source,
                speed_ckmh: opt_u16(u16_at(b, 24)),
                heading_cdeg,
                satellites: opt_u8(b[10]),
            })
        }
        KIND_TAC => {
            if b[9] != 0 || b[10] != NONE_U8 || b[24..32] != [0; 8] {
                return Err(RecordError::ReservedNotZero);
            }
            ReadingBody::Tac(TacSample {
                tac_ugdl: i32_at(b, 12),
                ir_uv: i32_at(b, 16),
                temp_mc: i32_at(b, 20),
            })
        }
        KIND_RF => {
            if b[10] != NONE_U8 || b[12..32] != [0; 20] {
                return Err(RecordError::ReservedNotZero);
            }
            match b[9] {
                0 => ReadingBody::Rf { in_range: false },
                1 => ReadingBody::Rf { in_range: true },
                other => return Err(RecordError::BadRfFlag(other)),
            }
        }
        KIND_EVENT => {
            if b[10] != NONE_U8 || b[12..32] != [0; 20] {
                return Err(RecordError::ReservedNotZero);
            }
            ReadingBody::Event(DeviceEvent::from_code(b[9]).ok_or(RecordError::UnknownEvent(b[9]))?)
        }
        other => return Err(RecordError::UnknownKind(other)),
    };
    Ok(Reading {
        t_ms,
        battery_pct,
        body,
    })
}

/// Decodes a run of records (a batch body) into `out`, stopping at the first invalid one.
/// Returns the index and error of an invalid record.
pub fn decode_records(bytes: &[u8], out: &mut Vec<Reading>) -> Result<(), (usize, RecordError)> {
    out.reserve(bytes.len() / RECORD_LEN);
    for (i, chunk) in bytes.chunks_exact(RECORD_LEN).enumerate() {
        let rec: &[u8; RECORD_LEN] = chunk.try_into().expect("chunks_exact yields RECORD_LEN");
        out.push(decode_record(rec).map_err(|e| (i, e))?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_round_trips_and_layout_is_stable() {
        let r = Reading {
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
        };
        let b = encode_record(&r);
        assert_eq!(decode_record(&b), Ok(r));
        assert_eq!(b[8], KIND_POSITION);
        assert_eq!(&b[12..16], &514_545_000i32.to_le_bytes());
    }

    #[test]
    fn invalid_records_are_named() {
        let mut b = [0u8; RECORD_LEN];
        b[8] = 9;
        assert_eq!(decode_record(&b), Err(RecordError::UnknownKind(9)));
        b[8] = KIND_EVENT;
        b[9] = 42;
        b[10] = NONE_U8;
        b[11] = NONE_U8;
        assert_eq!(decode_record(&b), Err(RecordError::UnknownEvent(42)));
    }
}
