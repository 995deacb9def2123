//! AVL records: what a Teltonika device measured at one moment (time, priority, GNSS fix and IO
//! elements), and their byte encoding in Codec 8 and Codec 8 Extended.
//!
//! Every IO element is kept (id and value as sent), whether or not anything here knows its
//! meaning: `mapping.rs` maps the standard ones to readings and leaves the rest visible.

use super::error::{TeltonikaEncodeError, TeltonikaError};
use bytes::{BufMut, Bytes, BytesMut};

/// The two codecs this module speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Codec 8 (0x08): 1-byte IO ids and counts, fixed-width values only.
    Codec8,
    /// Codec 8 Extended (0x8E): 2-byte IO ids and counts, plus variable-length values.
    Codec8Extended,
}

impl Codec {
    pub const CODEC_8_ID: u8 = 0x08;
    pub const CODEC_8_EXTENDED_ID: u8 = 0x8E;

    pub fn id(self) -> u8 {
        match self {
            Self::Codec8 => Self::CODEC_8_ID,
            Self::Codec8Extended => Self::CODEC_8_EXTENDED_ID,
        }
    }

    pub fn from_id(codec_id: u8) -> Option<Self> {
        match codec_id {
            Self::CODEC_8_ID => Some(Self::Codec8),
            Self::CODEC_8_EXTENDED_ID => Some(Self::Codec8Extended),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Codec8 => "Codec 8",
            Self::Codec8Extended => "Codec 8 Extended",
        }
    }

    /// Bytes of an IO id, of an IO count and of the event IO id.
    fn io_field_bytes(self) -> usize {
        match self {
            Self::Codec8 => 1,
            Self::Codec8Extended => 2,
        }
    }
}

/// Why the device made the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Priority {
    Low,
    High,
    Panic,
    /// A value the documentation does not name, kept as sent.
    Other(u8),
}

impl Priority {
    pub fn from_byte(byte: u8) -> Self {
        match byte {
            0 => Self::Low,
            1 => Self::High,
            2 => Self::Panic,
            other => Self::Other(other),
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            Self::Low => 0,
            Self::High => 1,
            Self::Panic => 2,
            Self::Other(other) => other,
        }
    }
}

/// The GNSS element, as sent. Without a fix devices send their last position (or zeros) with 0
/// satellites; `mapping.rs` decides what counts as a fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct GpsElement {
    /// Degrees × 1e7, east positive.
    pub longitude_e7: i32,
    /// Degrees × 1e7, north positive.
    pub latitude_e7: i32,
    /// Metres above sea level.
    pub altitude_m: i16,
    /// Heading in degrees from north, 0..360.
    pub angle_deg: u16,
    pub satellites: u8,
    pub speed_kmh: u16,
}

/// Bytes of the GNSS element on the wire.
pub const GPS_ELEMENT_BYTES: usize = 15;

/// Bytes of a record's timestamp and priority.
const TIMESTAMP_BYTES: usize = 8;
const PRIORITY_BYTES: usize = 1;

/// One IO element's value: the width it was sent with, or raw bytes (Codec 8 Extended's
/// variable-length group).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IoValue {
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    Bytes(Bytes),
}

impl IoValue {
    /// The value as an unsigned number, for the fixed-width groups.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::U8(v) => Some(u64::from(*v)),
            Self::U16(v) => Some(u64::from(*v)),
            Self::U32(v) => Some(u64::from(*v)),
            Self::U64(v) => Some(*v),
            Self::Bytes(_) => None,
        }
    }

    /// The group the value travels in: 0 for 1-byte values … 3 for 8-byte, 4 for variable.
    fn group(&self) -> usize {
        match self {
            Self::U8(_) => 0,
            Self::U16(_) => 1,
            Self::U32(_) => 2,
            Self::U64(_) => 3,
            Self::Bytes(_) => 4,
        }
    }
}

/// One IO element: the device's property id and its value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IoElement {
    pub id: u16,
    pub value: IoValue,
}

/// One AVL record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AvlRecord {
    /// Milliseconds since the Unix epoch, UTC.
    pub t_ms: i64,
    pub priority: Priority,
    pub gps: GpsElement,
    /// The IO element whose change made the device send this record; 0 for a periodic record.
    pub event_io_id: u16,
    /// Every IO element, in the order sent (by value width: 1, 2, 4, 8 bytes, then variable).
    pub io: Vec<IoElement>,
}

impl AvlRecord {
    /// The first IO element with `id`, if sent.
    pub fn io_value(&self, id: u16) -> Option<&IoValue> {
        self.io.iter().find(|e| e.id == id).map(|e| &e.value)
    }
}

/// Reads the records part of an AVL packet: bounds-checked, naming the record, field and packet
/// offset of whatever runs past the end.
pub(super) struct RecordReader {
    data: Bytes,
    position: usize,
    /// Packet offset of `data[0]`, for errors.
    base_offset: usize,
    record: usize,
}

impl RecordReader {
    pub(super) fn new(data: Bytes, base_offset: usize) -> Self {
        Self {
            data,
            position: 0,
            base_offset,
            record: 0,
        }
    }

    pub(super) fn offset(&self) -> usize {
        self.base_offset + self.position
    }

    pub(super) fn remaining(&self) -> usize {
        self.data.len() - self.position
    }

    fn take(&mut self, needed_bytes: usize, field: &'static str) -> Result<&[u8], TeltonikaError> {
        let available_bytes = self.remaining();
        if needed_bytes > available_bytes {
            return Err(TeltonikaError::Truncated {
                record: self.record,
                field,
                offset: self.offset(),
                needed_bytes,
                available_bytes,
            });
        }
        let start = self.position;
        self.position += needed_bytes;
        Ok(&self.data[start..self.position])
    }

    fn take_bytes(
        &mut self,
        needed_bytes: usize,
        field: &'static str,
    ) -> Result<Bytes, TeltonikaError> {
        let start = self.position;
        self.take(needed_bytes, field)?;
        Ok(self.data.slice(start..self.position))
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], TeltonikaError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, TeltonikaError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, TeltonikaError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, TeltonikaError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, TeltonikaError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// An IO id, count or event id: 1 byte in Codec 8, 2 in Codec 8 Extended.
    fn io_field(&mut self, codec: Codec, field: &'static str) -> Result<u16, TeltonikaError> {
        match codec {
            Codec::Codec8 => self.u8(field).map(u16::from),
            Codec::Codec8Extended => self.u16(field),
        }
    }

    /// Reads record number `record` (0-based).
    pub(super) fn record(
        &mut self,
        codec: Codec,
        record: usize,
    ) -> Result<AvlRecord, TeltonikaError> {
        self.record = record;
        let t_offset = self.offset();
        let t_raw_ms = self.u64("timestamp")?;
        let t_ms = i64::try_from(t_raw_ms).map_err(|_| TeltonikaError::TimestampOutOfRange {
            record,
            t_ms: t_raw_ms,
            offset: t_offset,
        })?;
        let priority = Priority::from_byte(self.u8("priority")?);
        let gps = GpsElement {
            longitude_e7: self.u32("longitude")? as i32,
            latitude_e7: self.u32("latitude")? as i32,
            altitude_m: self.u16("altitude")? as i16,
            angle_deg: self.u16("angle")?,
            satellites: self.u8("satellites")?,
            speed_kmh: self.u16("speed")?,
        };
        let event_io_id = self.io_field(codec, "event IO id")?;
        // The total count is redundant with the groups' counts; like other decoders, the groups
        // are trusted and the total is not checked (the encoder writes the true total). It only
        // sizes the first reservation, capped by the bytes left as every reservation here is, so
        // that a hostile count allocates nothing.
        let total = self.io_field(codec, "IO element total")?;
        let smallest_element_bytes = codec.io_field_bytes() + 1;
        let mut io =
            Vec::with_capacity(usize::from(total).min(self.remaining() / smallest_element_bytes));
        for width_bytes in [1usize, 2, 4, 8] {
            let count = self.io_field(codec, "IO group count")?;
            let element_bytes = codec.io_field_bytes() + width_bytes;
            io.reserve(usize::from(count).min(self.remaining() / element_bytes));
            for _ in 0..count {
                let id = self.io_field(codec, "IO id")?;
                let value = match width_bytes {
                    1 => IoValue::U8(self.u8("IO value")?),
                    2 => IoValue::U16(self.u16("IO value")?),
                    4 => IoValue::U32(self.u32("IO value")?),
                    _ => IoValue::U64(self.u64("IO value")?),
                };
                io.push(IoElement { id, value });
            }
        }
        if codec == Codec::Codec8Extended {
            let count = self.u16("variable-length IO count")?;
            for _ in 0..count {
                let id = self.u16("IO id")?;
                let len_bytes = self.u16("variable-length IO length")?;
                let value = self.take_bytes(usize::from(len_bytes), "variable-length IO value")?;
                io.push(IoElement {
                    id,
                    value: IoValue::Bytes(value),
                });
            }
        }
        Ok(AvlRecord {
            t_ms,
            priority,
            gps,
            event_io_id,
            io,
        })
    }

    pub(super) fn record_count(&mut self) -> Result<u8, TeltonikaError> {
        self.u8("record count")
    }
}

/// Bytes `record` takes on the wire in `codec` (valid or not).
pub(super) fn encoded_record_len(record: &AvlRecord, codec: Codec) -> usize {
    let field = codec.io_field_bytes();
    let groups = if codec == Codec::Codec8Extended { 5 } else { 4 };
    let values: usize = record
        .io
        .iter()
        .map(|e| {
            field
                + match &e.value {
                    IoValue::U8(_) => 1,
                    IoValue::U16(_) => 2,
                    IoValue::U32(_) => 4,
                    IoValue::U64(_) => 8,
                    IoValue::Bytes(b) => 2 + b.len(),
                }
        })
        .sum();
    TIMESTAMP_BYTES + PRIORITY_BYTES + GPS_ELEMENT_BYTES + 2 * field + groups * field + values
}

/// Writes `record` (record number `index`) in `codec`, IO elements grouped by width in their
/// given order. Checks everything before writing, so on error nothing is written.
pub(super) fn encode_record(
    record: &AvlRecord,
    index: usize,
    codec: Codec,
    out: &mut BytesMut,
) -> Result<(), TeltonikaEncodeError> {
    let max_field = match codec {
        Codec::Codec8 => u64::from(u8::MAX),
        Codec::Codec8Extended => u64::from(u16::MAX),
    };
    let fits = |what: &'static str, value: u64| {
        if value <= max_field {
            Ok(())
        } else {
            Err(TeltonikaEncodeError::DoesNotFit {
                record: index,
                what,
                value,
                codec: codec.name(),
            })
        }
    };
    if record.t_ms < 0 {
        return Err(TeltonikaEncodeError::DoesNotFit {
            record: index,
            what: "timestamp (ms)",
            value: record.t_ms.unsigned_abs(),
            codec: "an unsigned timestamp",
        });
    }
    fits("event IO id", u64::from(record.event_io_id))?;
    fits("IO element total", record.io.len() as u64)?;
    let mut counts = [0u64; 5];
    for element in &record.io {
        fits("IO id", u64::from(element.id))?;
        if let IoValue::Bytes(bytes) = &element.value {
            if codec == Codec::Codec8 {
                return Err(TeltonikaEncodeError::VariableLengthInCodec8 {
                    record: index,
                    io_id: element.id,
                });
            }
            if bytes.len() > usize::from(u16::MAX) {
                return Err(TeltonikaEncodeError::DoesNotFit {
                    record: index,
                    what: "variable-length IO value bytes",
                    value: bytes.len() as u64,
                    codec: codec.name(),
                });
            }
        }
        counts[element.value.group()] += 1;
    }
    for count in counts {
        fits("IO group count", count)?;
    }

    let put_field = |out: &mut BytesMut, value: u16| match codec {
        Codec::Codec8 => out.put_u8(value as u8),
        Codec::Codec8Extended => out.put_u16(value),
    };
    out.reserve(encoded_record_len(record, codec));
    out.put_u64(record.t_ms as u64);
    out.put_u8(record.priority.byte());
    out.put_i32(record.gps.longitude_e7);
    out.put_i32(record.gps.latitude_e7);
    out.put_i16(record.gps.altitude_m);
    out.put_u16(record.gps.angle_deg);
    out.put_u8(record.gps.satellites);
    out.put_u16(record.gps.speed_kmh);
    put_field(out, record.event_io_id);
    put_field(out, record.io.len() as u16);
    let groups = if codec == Codec::Codec8Extended { 5 } else { 4 };
    for (group, count) in counts.iter().enumerate().take(groups) {
        put_field(out, *count as u16);
        for element in record.io.iter().filter(|e| e.value.group() == group) {
            put_field(out, element.id);
            match &element.value {
                IoValue::U8(v) => out.put_u8(*v),
                IoValue::U16(v) => out.put_u16(*v),
                IoValue::U32(v) => out.put_u32(*v),
                IoValue::U64(v) => out.put_u64(*v),
                IoValue::Bytes(bytes) => {
                    out.put_u16(bytes.len() as u16);
                    out.put_slice(bytes);
                }
            }
        }
    }
    Ok(())
}
