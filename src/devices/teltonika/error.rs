//! What can be wrong with what a Teltonika device sent, and what the server answers to it.
//!
//! Offsets are byte offsets from the start of the message: the IMEI's 2-byte length, or an AVL
//! packet's first preamble byte.

use thiserror::Error;

/// Why a handshake or an AVL packet was refused. Nothing is decoded from a refused packet.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TeltonikaError {
    #[error("IMEI length {len_bytes} bytes at offset 0, expected {expected}")]
    ImeiLength { len_bytes: u16, expected: usize },
    #[error("IMEI byte 0x{byte:02x} at offset {offset} is not an ASCII digit")]
    ImeiNotDigit { byte: u8, offset: usize },
    #[error("AVL packet preamble byte 0x{byte:02x} at offset {offset}, expected 0")]
    PreambleNotZero { byte: u8, offset: usize },
    #[error("AVL data length {len_bytes} bytes at offset 4 exceeds the limit of {max_bytes}")]
    PacketTooLarge { len_bytes: u64, max_bytes: usize },
    #[error("AVL data length {len_bytes} bytes at offset 4 is below the minimum of {min_bytes}")]
    PacketTooShort { len_bytes: u32, min_bytes: usize },
    #[error("CRC 0x{received:08x} at offset {offset} does not match 0x{computed:04x} computed over the data")]
    CrcMismatch {
        received: u32,
        computed: u16,
        offset: usize,
    },
    #[error(
        "codec id 0x{codec_id:02x} at offset 8 is not Codec 8 (0x08) or Codec 8 Extended (0x8e)"
    )]
    UnknownCodec { codec_id: u8 },
    #[error("AVL packet declares 0 records at offset 9")]
    NoRecords,
    #[error("record {record} ends past the data: {field} at offset {offset} needs {needed_bytes} bytes, {available_bytes} left")]
    Truncated {
        record: usize,
        field: &'static str,
        offset: usize,
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("record count {first} at offset 9 disagrees with {second} at offset {offset}")]
    RecordCountMismatch {
        first: u8,
        second: u8,
        offset: usize,
    },
    #[error("record {record} timestamp {t_ms} ms at offset {offset} is past the year 292 million")]
    TimestampOutOfRange {
        record: usize,
        t_ms: u64,
        offset: usize,
    },
    #[error("handshake answer 0x{byte:02x} is neither 0x01 (accepted) nor 0x00 (refused)")]
    UnexpectedHandshakeAnswer { byte: u8 },
    #[error("{extra_bytes} bytes after the records at offset {offset}: the data length says more than the records hold")]
    TrailingBytes { extra_bytes: usize, offset: usize },
}

/// What the server should do about an error, as the protocol expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorAnswer {
    /// A bad handshake: answer 0x00 (refused) and close the connection.
    RefuseImei,
    /// The packet was framed whole (its length was believable and all of it arrived) but its
    /// content is refused: acknowledge 0 records, so that the device sends its records again,
    /// and read on. The codec has already skipped the packet.
    AckZero,
    /// The framing cannot be trusted (preamble or length): nothing after it can be found
    /// reliably, so close the connection; the device reconnects and resends.
    Close,
}

impl TeltonikaError {
    /// What the server answers to this error.
    pub fn answer(&self) -> ErrorAnswer {
        match self {
            Self::ImeiLength { .. } | Self::ImeiNotDigit { .. } => ErrorAnswer::RefuseImei,
            Self::PreambleNotZero { .. }
            | Self::PacketTooLarge { .. }
            | Self::PacketTooShort { .. }
            | Self::UnexpectedHandshakeAnswer { .. } => ErrorAnswer::Close,
            Self::CrcMismatch { .. }
            | Self::UnknownCodec { .. }
            | Self::NoRecords
            | Self::Truncated { .. }
            | Self::RecordCountMismatch { .. }
            | Self::TimestampOutOfRange { .. }
            | Self::TrailingBytes { .. } => ErrorAnswer::AckZero,
        }
    }
}

/// Why a packet cannot be encoded: what the caller asked for does not fit the codec.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TeltonikaEncodeError {
    #[error("an AVL packet carries 1 to 255 records, not {records}")]
    RecordCount { records: usize },
    #[error("record {record}: {what} {value} does not fit {codec}")]
    DoesNotFit {
        record: usize,
        what: &'static str,
        value: u64,
        codec: &'static str,
    },
    #[error("record {record}: variable-length IO element {io_id} exists only in Codec 8 Extended")]
    VariableLengthInCodec8 { record: usize, io_id: u16 },
    #[error("the AVL data would be {len_bytes} bytes, over the limit of {max_bytes}")]
    PacketTooLarge { len_bytes: usize, max_bytes: usize },
}
