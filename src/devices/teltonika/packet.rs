//! AVL data packets: preamble (4 zero bytes), data length (4 bytes), the data (codec id, record
//! count, records, record count again) and the CRC-16/IBM of the data in a 4-byte field. All
//! integers are big-endian.
//!
//! A packet is checked in the order that refuses a damaged one soonest: the CRC over the data
//! first, then the codec, the counts and the records. Nothing is returned from a refused packet.

use super::avl::{encode_record, encoded_record_len, AvlRecord, Codec, RecordReader};
use super::crc::crc16_ibm;
use super::error::{TeltonikaEncodeError, TeltonikaError};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of the zero preamble.
pub const PREAMBLE_BYTES: usize = 4;
/// Bytes of the data length field.
pub const DATA_LENGTH_BYTES: usize = 4;
/// Bytes before the data: preamble and data length.
pub const HEADER_BYTES: usize = PREAMBLE_BYTES + DATA_LENGTH_BYTES;
/// Bytes of the CRC field after the data.
pub const CRC_BYTES: usize = 4;
/// The shortest data that can hold anything: codec id and the two record counts.
pub const MIN_DATA_BYTES: usize = 3;

/// Default limit on an AVL packet's data length: 64 KiB. Teltonika devices send at most about
/// 1.3 KB per packet over TCP (FMB series: records are split so a packet fits their send
/// buffer), so this leaves room for Codec 8 Extended's variable-length elements while a hostile
/// length field makes the server buffer no more than this per connection.
pub const DEFAULT_MAX_DATA_BYTES: usize = 64 * 1024;

/// One AVL data packet: its codec and 1 to 255 records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AvlPacket {
    pub codec: Codec,
    pub records: Vec<AvlRecord>,
}

/// Checks an AVL packet's header (the first [`HEADER_BYTES`] bytes) and returns its data length.
pub fn check_header(
    header: [u8; HEADER_BYTES],
    max_data_bytes: usize,
) -> Result<usize, TeltonikaError> {
    if let Some(offset) = header[..PREAMBLE_BYTES].iter().position(|b| *b != 0) {
        return Err(TeltonikaError::PreambleNotZero {
            byte: header[offset],
            offset,
        });
    }
    let data_len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if data_len as u64 > max_data_bytes as u64 {
        return Err(TeltonikaError::PacketTooLarge {
            len_bytes: u64::from(data_len),
            max_bytes: max_data_bytes,
        });
    }
    if (data_len as usize) < MIN_DATA_BYTES {
        return Err(TeltonikaError::PacketTooShort {
            len_bytes: data_len,
            min_bytes: MIN_DATA_BYTES,
        });
    }
    Ok(data_len as usize)
}

/// Decodes one whole AVL packet (preamble to CRC, nothing after it).
pub fn decode_avl_packet(
    mut packet: Bytes,
    max_data_bytes: usize,
) -> Result<AvlPacket, TeltonikaError> {
    let header_bytes: [u8; HEADER_BYTES] = packet
        .get(..HEADER_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or(TeltonikaError::Truncated {
            record: 0,
            field: "AVL packet header",
            offset: 0,
            needed_bytes: HEADER_BYTES,
            available_bytes: packet.len(),
        })?;
    let data_len = check_header(header_bytes, max_data_bytes)?;
    let available_bytes = packet.len() - HEADER_BYTES;
    if available_bytes != data_len + CRC_BYTES {
        // The caller framed it: a length that disagrees with what it holds is a lying length.
        return Err(TeltonikaError::Truncated {
            record: 0,
            field: "AVL data and CRC",
            offset: HEADER_BYTES,
            needed_bytes: data_len + CRC_BYTES,
            available_bytes,
        });
    }
    packet.advance(HEADER_BYTES);
    let data = packet.split_to(data_len);
    decode_avl_data(data, packet.get_u32())
}

/// Decodes the data of a framed packet (codec id through the second record count) and checks
/// it against the CRC field that followed it.
pub(super) fn decode_avl_data(data: Bytes, crc_field: u32) -> Result<AvlPacket, TeltonikaError> {
    let computed = crc16_ibm(&data);
    if crc_field != u32::from(computed) {
        return Err(TeltonikaError::CrcMismatch {
            received: crc_field,
            computed,
            offset: HEADER_BYTES + data.len(),
        });
    }
    let codec_id = data[0];
    let codec = Codec::from_id(codec_id).ok_or(TeltonikaError::UnknownCodec { codec_id })?;
    let mut reader = RecordReader::new(data.slice(1..), HEADER_BYTES + 1);
    let first = reader.record_count()?;
    if first == 0 {
        return Err(TeltonikaError::NoRecords);
    }
    let mut records = Vec::with_capacity(usize::from(first));
    for index in 0..usize::from(first) {
        records.push(reader.record(codec, index)?);
    }
    let second_offset = reader.offset();
    let second = reader.record_count()?;
    if second != first {
        return Err(TeltonikaError::RecordCountMismatch {
            first,
            second,
            offset: second_offset,
        });
    }
    if reader.remaining() > 0 {
        return Err(TeltonikaError::TrailingBytes {
            extra_bytes: reader.remaining(),
            offset: reader.offset(),
        });
    }
    Ok(AvlPacket { codec, records })
}

/// Writes `packet` onto the end of `out`, if its data fits `max_data_bytes`; on error `out` is
/// left as it was.
pub fn encode_avl_packet(
    packet: &AvlPacket,
    out: &mut BytesMut,
    max_data_bytes: usize,
) -> Result<(), TeltonikaEncodeError> {
    let records = packet.records.len();
    if records == 0 || records > usize::from(u8::MAX) {
        return Err(TeltonikaEncodeError::RecordCount { records });
    }
    let data_len = MIN_DATA_BYTES
        + packet
            .records
            .iter()
            .map(|r| encoded_record_len(r, packet.codec))
            .sum::<usize>();
    if data_len > max_data_bytes.min(u32::MAX as usize) {
        return Err(TeltonikaEncodeError::PacketTooLarge {
            len_bytes: data_len,
            max_bytes: max_data_bytes,
        });
    }
    let start = out.len();
    out.reserve(HEADER_BYTES + data_len + CRC_BYTES);
    out.put_u32(0);
    out.put_u32(data_len as u32);
    let data_start = out.len();
    out.put_u8(packet.codec.id());
    out.put_u8(records as u8);
    for (index, record) in packet.records.iter().enumerate() {
        if let Err(error) = encode_record(record, index, packet.codec, out) {
            out.truncate(start);
            return Err(error);
        }
    }
    out.put_u8(records as u8);
    let crc = crc16_ibm(&out[data_start..]);
    out.put_u32(u32::from(crc));
    Ok(())
}

/// The server's acknowledgement of a packet: the number of records accepted, 4 bytes big-endian.
pub fn encode_ack(records_accepted: u32, out: &mut BytesMut) {
    out.put_u32(records_accepted);
}
