//! The manifest: an append-only, checksummed log of what the data files hold.
//!
//! File `trails.manifest` starts with the 8-byte header `TSTRMAN1`, then frames
//! `[payload length u32 LE][crc32 of payload u32 LE][payload]`. A payload is one [`Record`]:
//! an activation name, a block reference (where a block lives, its time range, envelope and the
//! log record it is complete up to), the removal of a block, a retention watermark, or a
//! checkpoint. Records take effect only once a later [`Record::Checkpoint`] is durable: on open,
//! everything after the last valid checkpoint (a torn tail, or records whose checkpoint never
//! made it to disk) is cut off, exactly like the tail of the durable log.

use super::codec::Cursor;
use super::error::CodecError;
use crate::varint::{put_ivarint, put_uvarint};

pub const MANIFEST_HEADER: &[u8; 8] = b"TSTRMAN1";
pub const FRAME_HEADER_BYTES: usize = 8;
/// Largest payload a frame may declare; anything bigger is damage.
pub const MAX_FRAME_BYTES: u32 = 1 << 20;

/// A rectangle in fixed-point degrees, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BboxE7 {
    pub min_lat_e7: i32,
    pub min_lon_e7: i32,
    pub max_lat_e7: i32,
    pub max_lon_e7: i32,
}

impl BboxE7 {
    pub fn point(lat_e7: i32, lon_e7: i32) -> Self {
        BboxE7 {
            min_lat_e7: lat_e7,
            min_lon_e7: lon_e7,
            max_lat_e7: lat_e7,
            max_lon_e7: lon_e7,
        }
    }

    pub fn add(&mut self, lat_e7: i32, lon_e7: i32) {
        self.min_lat_e7 = self.min_lat_e7.min(lat_e7);
        self.min_lon_e7 = self.min_lon_e7.min(lon_e7);
        self.max_lat_e7 = self.max_lat_e7.max(lat_e7);
        self.max_lon_e7 = self.max_lon_e7.max(lon_e7);
    }

    pub fn union(&mut self, other: &BboxE7) {
        self.add(other.min_lat_e7, other.min_lon_e7);
        self.add(other.max_lat_e7, other.max_lon_e7);
    }
}

/// A fix reduced to what envelopes need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FixE7 {
    pub t_ms: i64,
    pub lat_e7: i32,
    pub lon_e7: i32,
}

/// Where a sealed block lives and what it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRecord {
    pub activation: u32,
    pub file: u32,
    pub offset: u64,
    pub len_bytes: u32,
    pub crc: u32,
    pub count: u32,
    /// Every position of this activation in this block's chunk from log records up to and
    /// including this one is in this block or an earlier block of the same chunk.
    pub complete_through_record: u64,
    pub bbox: BboxE7,
    /// The earliest and latest fixes (event time), so neighbouring blocks can include the path
    /// between them in their envelopes.
    pub first: FixE7,
    pub last: FixE7,
    pub max_precision_cm: u32,
}

/// One manifest record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Activation {
        id: u32,
        name: String,
    },
    Block(BlockRecord),
    Remove {
        activation: u32,
        file: u32,
        offset: u64,
    },
    /// Positions of the activation before this time are gone for good; re-applied log records
    /// must not bring them back (`i64::MAX`: the activation was deleted).
    PurgedBefore {
        activation: u32,
        before_ms: i64,
    },
    /// Everything above is durable; replay the log from `next_log_record`. The current data file
    /// is durable up to `data_len_bytes`.
    Checkpoint {
        next_log_record: u64,
        data_file: u32,
        data_len_bytes: u64,
    },
}

const KIND_ACTIVATION: u8 = 1;
const KIND_BLOCK: u8 = 2;
const KIND_REMOVE: u8 = 3;
const KIND_PURGED: u8 = 4;
const KIND_CHECKPOINT: u8 = 5;

impl Record {
    /// Appends the framed record to `out`.
    pub fn write_frame(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
        self.encode(out);
        let payload = &out[start + FRAME_HEADER_BYTES..];
        let len = payload.len() as u32;
        let crc = crc32fast::hash(payload);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Record::Activation { id, name } => {
                out.push(KIND_ACTIVATION);
                put_uvarint(out, *id as u64);
                put_uvarint(out, name.len() as u64);
                out.extend_from_slice(name.as_bytes());
            }
            Record::Block(b) => {
                out.push(KIND_BLOCK);
                put_uvarint(out, b.activation as u64);
                put_uvarint(out, b.file as u64);
                put_uvarint(out, b.offset);
                put_uvarint(out, b.len_bytes as u64);
                out.extend_from_slice(&b.crc.to_le_bytes());
                put_uvarint(out, b.count as u64);
                put_uvarint(out, b.complete_through_record);
                // Times and coordinates relative to each other: small numbers.
                put_ivarint(out, b.first.t_ms);
                put_ivarint(out, b.last.t_ms - b.first.t_ms);
                put_ivarint(out, b.bbox.min_lat_e7 as i64);
                put_ivarint(out, b.bbox.min_lon_e7 as i64);
                put_ivarint(out, b.bbox.max_lat_e7 as i64 - b.bbox.min_lat_e7 as i64);
                put_ivarint(out, b.bbox.max_lon_e7 as i64 - b.bbox.min_lon_e7 as i64);
                for f in [b.first, b.last] {
                    put_ivarint(out, f.lat_e7 as i64 - b.bbox.min_lat_e7 as i64);
                    put_ivarint(out, f.lon_e7 as i64 - b.bbox.min_lon_e7 as i64);
                }
                put_uvarint(out, b.max_precision_cm as u64);
            }
            Record::Remove {
                activation,
                file,
                offset,
            } => {
                out.push(KIND_REMOVE);
                put_uvarint(out, *activation as u64);
                put_uvarint(out, *file as u64);
                put_uvarint(out, *offset);
            }
            Record::PurgedBefore {
                activation,
                before_ms,
            } => {
                out.push(KIND_PURGED);
                put_uvarint(out, *activation as u64);
                put_ivarint(out, *before_ms);
            }
            Record::Checkpoint {
                next_log_record,
                data_file,
                data_len_bytes,
            } => {
                out.push(KIND_CHECKPOINT);
                put_uvarint(out, *next_log_record);
                put_uvarint(out, *data_file as u64);
                put_uvarint(out, *data_len_bytes);
            }
        }
    }

    /// Decodes one payload (checksum already verified).
    pub fn decode(payload: &[u8]) -> Result<Record, CodecError> {
        let mut c = Cursor::new(payload);
        let u32v = |c: &mut Cursor<'_>, field: &'static str| -> Result<u32, CodecError> {
            let v = c.uvarint()?;
            u32::try_from(v).map_err(|_| CodecError::OutOfRange {
                field,
                value: v as i64,
            })
        };
        let i32v = |v: i64, field: &'static str| -> Result<i32, CodecError> {
            i32::try_from(v).map_err(|_| CodecError::OutOfRange { field, value: v })
        };
        let record = match c.u8()? {
            KIND_ACTIVATION => {
                let id = u32v(&mut c, "activation id")?;
                let len = c.uvarint()? as usize;
                let name = std::str::from_utf8(c.bytes(len)?)
                    .map_err(|_| CodecError::NameNotUtf8)?
                    .to_string();
                Record::Activation { id, name }
            }
            KIND_BLOCK => {
                let activation = u32v(&mut c, "activation id")?;
                let file = u32v(&mut c, "file")?;
                let offset = c.uvarint()?;
                let len_bytes = u32v(&mut c, "block length")?;
                let crc_bytes = c.bytes(4)?;
                let crc =
                    u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
                let count = u32v(&mut c, "count")?;
                let complete_through_record = c.uvarint()?;
                let t_first = c.ivarint()?;
                let t_last = t_first.wrapping_add(c.ivarint()?);
                let min_lat = c.ivarint()?;
                let min_lon = c.ivarint()?;
                let max_lat = min_lat.wrapping_add(c.ivarint()?);
                let max_lon = min_lon.wrapping_add(c.ivarint()?);
                let mut fixes = [FixE7 {
                    t_ms: t_first,
                    lat_e7: 0,
                    lon_e7: 0,
                }; 2];
                fixes[1].t_ms = t_last;
                for f in fixes.iter_mut() {
                    f.lat_e7 = i32v(min_lat.wrapping_add(c.ivarint()?), "lat_e7")?;
                    f.lon_e7 = i32v(min_lon.wrapping_add(c.ivarint()?), "lon_e7")?;
                }
                let max_precision_cm = u32v(&mut c, "precision_cm")?;
                Record::Block(BlockRecord {
                    activation,
                    file,
                    offset,
                    len_bytes,
                    crc,
                    count,
                    complete_through_record,
                    bbox: BboxE7 {
                        min_lat_e7: i32v(min_lat, "lat_e7")?,
                        min_lon_e7: i32v(min_lon, "lon_e7")?,
                        max_lat_e7: i32v(max_lat, "lat_e7")?,
                        max_lon_e7: i32v(max_lon, "lon_e7")?,
                    },
                    first: fixes[0],
                    last: fixes[1],
                    max_precision_cm,
                })
            }
            KIND_REMOVE => Record::Remove {
                activation: u32v(&mut c, "activation id")?,
                file: u32v(&mut c, "file")?,
                offset: c.uvarint()?,
            },
            KIND_PURGED => Record::PurgedBefore {
                activation: u32v(&mut c, "activation id")?,
                before_ms: c.ivarint()?,
            },
            KIND_CHECKPOINT => Record::Checkpoint {
                next_log_record: c.uvarint()?,
                data_file: u32v(&mut c, "file")?,
                data_len_bytes: c.uvarint()?,
            },
            other => return Err(CodecError::BadKind(other)),
        };
        c.finish()?;
        Ok(record)
    }
}

/// How a scan of manifest bytes ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte was a valid frame.
    Clean,
    /// The bytes from `offset` on are not a valid frame (a torn or damaged tail).
    Damaged { offset: u64, reason: String },
}

/// Splits manifest bytes (after the header) into records with their end offsets, stopping at
/// the first damaged frame. `base` is the file offset of `bytes[0]`.
pub fn scan_frames(bytes: &[u8], base: u64) -> (Vec<(Record, u64)>, ScanEnd) {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let at = base + pos as u64;
        let Some(header) = bytes.get(pos..pos + FRAME_HEADER_BYTES) else {
            return (
                records,
                ScanEnd::Damaged {
                    offset: at,
                    reason: format!("frame header cut short: {} of 8 bytes", bytes.len() - pos),
                },
            );
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_FRAME_BYTES {
            let reason = format!("frame length {len} outside 1..={MAX_FRAME_BYTES}");
            return (records, ScanEnd::Damaged { offset: at, reason });
        }
        let start = pos + FRAME_HEADER_BYTES;
        let Some(payload) = bytes.get(start..start + len as usize) else {
            let reason = format!(
                "frame payload cut short: {} of {len} bytes",
                bytes.len() - start
            );
            return (records, ScanEnd::Damaged { offset: at, reason });
        };
        let computed = crc32fast::hash(payload);
        if computed != stored {
            let reason =
                format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}");
            return (records, ScanEnd::Damaged { offset: at, reason });
        }
        match Record::decode(payload) {
            Ok(r) => {
                pos = start + len as usize;
                records.push((r, base + pos as u64));
            }
            Err(e) => {
                let reason = format!("checksummed but malformed: {e}");
                return (records, ScanEnd::Damaged { offset: at, reason });
            }
        }
    }
    (records, ScanEnd::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> BlockRecord {
        BlockRecord {
            activation: 7,
            file: 1,
            offset: 12_345,
            len_bytes: 600,
            crc: 0xdead_beef,
            count: 60,
            complete_through_record: 99,
            bbox: BboxE7 {
                min_lat_e7: 515_000_000,
                min_lon_e7: -1_200_000,
                max_lat_e7: 515_100_000,
                max_lon_e7: -1_100_000,
            },
            first: FixE7 {
                t_ms: 1_700_000_000_000,
                lat_e7: 515_000_000,
                lon_e7: -1_100_000,
            },
            last: FixE7 {
                t_ms: 1_700_003_540_000,
                lat_e7: 515_100_000,
                lon_e7: -1_200_000,
            },
            max_precision_cm: 2_000,
        }
    }

    #[test]
    fn records_round_trip_and_a_block_reference_is_small() {
        let records = vec![
            Record::Activation {
                id: 7,
                name: "ACT-7".into(),
            },
            Record::Block(block()),
            Record::Remove {
                activation: 7,
                file: 1,
                offset: 12_345,
            },
            Record::PurgedBefore {
                activation: 7,
                before_ms: i64::MAX,
            },
            Record::Checkpoint {
                next_log_record: 1000,
                data_file: 1,
                data_len_bytes: 13_000,
            },
        ];
        let mut bytes = Vec::new();
        for r in &records {
            r.write_frame(&mut bytes);
        }
        let (back, end) = scan_frames(&bytes, 8);
        assert_eq!(end, ScanEnd::Clean);
        assert_eq!(
            back.into_iter().map(|(r, _)| r).collect::<Vec<_>>(),
            records
        );
        let mut one = Vec::new();
        Record::Block(block()).write_frame(&mut one);
        assert!(one.len() <= 64, "block reference is {} bytes", one.len());
    }

    #[test]
    fn a_torn_tail_is_reported_at_its_offset() {
        let mut bytes = Vec::new();
        Record::Block(block()).write_frame(&mut bytes);
        let first_len = bytes.len();
        Record::Block(block()).write_frame(&mut bytes);
        for cut in first_len..bytes.len() {
            let (back, end) = scan_frames(&bytes[..cut], 8);
            assert_eq!(back.len(), 1);
            if cut > first_len {
                assert!(
                    matches!(end, ScanEnd::Damaged { offset, .. } if offset == 8 + first_len as u64)
                );
            }
        }
        bytes[first_len + 10] ^= 0xff;
        assert!(matches!(scan_frames(&bytes, 0).1, ScanEnd::Damaged { .. }));
    }
}
