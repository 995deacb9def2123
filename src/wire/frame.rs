//! The frames of the native tag protocol, the error codes they carry, and the typed error that
//! names what is wrong with a frame ([`WireError`]).
//!
//! This module owns the *meaning* of frames and their limits (tag and secret lengths, batch
//! size); `codec.rs` owns their byte encoding. Both are specified in `docs/protocol.md`.

use super::record::{RecordError, RECORD_LEN};
use crate::model::Reading;
use std::fmt;
use thiserror::Error;

/// The protocol version this build speaks (carried in `Hello`).
pub const PROTOCOL_VERSION: u16 = 1;

/// Default limit on a frame's length field (type byte + payload): 1 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 1 << 20;

/// Bytes of the little-endian `u32` length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Bytes of the frame type that follows the length prefix.
pub const TYPE_BYTES: usize = 1;

/// Longest tag id a `Hello` may carry, in bytes of UTF-8.
pub const MAX_TAG_BYTES: usize = 64;

/// Longest secret a `Hello` may carry, in bytes of UTF-8.
pub const MAX_SECRET_BYTES: usize = 128;

/// Longest message an `Error` frame may carry, in bytes of UTF-8.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// Largest frame a connection may send before its hello is accepted: a hello is at most
/// 2 + 1 + 64 + 1 + 128 + 4 payload bytes, so an unauthenticated peer can make the server buffer
/// no more than this (instead of a whole [`DEFAULT_MAX_FRAME_BYTES`] frame).
pub const MAX_HELLO_FRAME_BYTES: usize = 1024;

/// Bytes of the optional session epoch at the end of a hello payload.
pub const HELLO_EPOCH_BYTES: usize = 4;

/// Highest batch `seq` a server accepts. Numbers above it are refused ([`ErrorCode::SeqTooLarge`])
/// rather than stored: a stored number near `u64::MAX` would leave no room for later batches of
/// the same session epoch, which would all be taken for duplicates. 2^32 numbers of headroom.
pub const MAX_BATCH_SEQ: u64 = u64::MAX - (1 << 32);

/// Bytes of a `Batch` payload before its records: `u64 seq` + `u32 count`.
pub const BATCH_HEADER_BYTES: usize = 8 + 4;

/// The most readings one `Batch` frame can carry under a frame-length limit of `max_frame_bytes`.
pub const fn max_batch_readings(max_frame_bytes: usize) -> usize {
    max_frame_bytes.saturating_sub(TYPE_BYTES + BATCH_HEADER_BYTES) / RECORD_LEN
}

/// The frame type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    Hello = 0x01,
    HelloOk = 0x02,
    Batch = 0x03,
    Ack = 0x04,
    Error = 0x05,
}

impl FrameType {
    pub const ALL: [FrameType; 5] = [
        Self::Hello,
        Self::HelloOk,
        Self::Batch,
        Self::Ack,
        Self::Error,
    ];

    /// The type byte on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The protocol name (as used in `docs/protocol.md` and error messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::HelloOk => "hello_ok",
            Self::Batch => "batch",
            Self::Ack => "ack",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One protocol frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Tag → server, first frame of a session. `tag` is 1..=64 bytes, `secret` 0..=128 bytes.
    /// `epoch` is the tag's session epoch: batches are numbered per (tag, epoch), and a tag that
    /// restarts its numbering (e.g. after a factory reset) uses a higher epoch. Epoch 0 is
    /// encoded by leaving the field out, exactly as hellos were before epochs existed.
    Hello {
        protocol_version: u16,
        tag: String,
        secret: String,
        epoch: u32,
    },
    /// Server → tag: the highest batch `seq` durably stored for this tag in the hello's epoch
    /// (0 = none yet, e.g. a new epoch), so the tag knows where to resume.
    HelloOk { last_seq: u64 },
    /// Tag → server: readings numbered by the tag; `seq >= 1`, 1..=max readings.
    Batch { seq: u64, readings: Vec<Reading> },
    /// Server → tag, sent only once the batch `seq` is durable.
    Ack { seq: u64 },
    /// Either way; the sender closes the connection after it.
    Error { code: ErrorCode, message: String },
}

impl Frame {
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Hello { .. } => FrameType::Hello,
            Self::HelloOk { .. } => FrameType::HelloOk,
            Self::Batch { .. } => FrameType::Batch,
            Self::Ack { .. } => FrameType::Ack,
            Self::Error { .. } => FrameType::Error,
        }
    }

    /// A `Hello` at [`PROTOCOL_VERSION`], epoch 0.
    pub fn hello(tag: impl Into<String>, secret: impl Into<String>) -> Self {
        Self::hello_in_epoch(tag, secret, 0)
    }

    /// A `Hello` at [`PROTOCOL_VERSION`] opening session epoch `epoch`.
    pub fn hello_in_epoch(tag: impl Into<String>, secret: impl Into<String>, epoch: u32) -> Self {
        Self::Hello {
            protocol_version: PROTOCOL_VERSION,
            tag: tag.into(),
            secret: secret.into(),
            epoch,
        }
    }

    /// An `Error` frame; a message longer than [`MAX_ERROR_MESSAGE_BYTES`] is cut at a character
    /// boundary so the frame is always valid.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE_BYTES {
            let mut cut_at = MAX_ERROR_MESSAGE_BYTES;
            while !message.is_char_boundary(cut_at) {
                cut_at -= 1;
            }
            message.truncate(cut_at);
        }
        Self::Error { code, message }
    }

    /// The value of the length prefix this frame encodes to (type byte + payload).
    pub fn encoded_len(&self) -> usize {
        TYPE_BYTES
            + match self {
                Self::Hello {
                    tag, secret, epoch, ..
                } => {
                    let epoch_bytes = if *epoch == 0 { 0 } else { HELLO_EPOCH_BYTES };
                    2 + 1 + tag.len() + 1 + secret.len() + epoch_bytes
                }
                Self::HelloOk { .. } | Self::Ack { .. } => 8,
                Self::Batch { readings, .. } => BATCH_HEADER_BYTES + readings.len() * RECORD_LEN,
                Self::Error { message, .. } => 2 + 2 + message.len(),
            }
    }

    /// Checks everything a decoder would check, so that a frame that passes decodes back to
    /// itself: field limits, `seq >= 1`, a non-empty batch, every reading encodable without loss
    /// (see [`check_reading_encodable`]) and an encoded length within `max_frame_bytes`.
    ///
    /// The protocol version is not checked: that is the receiving session's job.
    pub fn validate(&self, max_frame_bytes: usize) -> Result<(), WireError> {
        let len_bytes = self.encoded_len();
        let limit_bytes = max_frame_bytes.min(u32::MAX as usize);
        if len_bytes > limit_bytes {
            return Err(WireError::FrameTooLarge {
                len_bytes: len_bytes as u64,
                max_bytes: limit_bytes,
            });
        }
        match self {
            Self::Hello {
                protocol_version: _,
                tag,
                secret,
                epoch: _,
            } => {
                check_tag(tag.as_bytes())?;
                check_secret(secret.as_bytes())?;
            }
            Self::HelloOk { .. } | Self::Ack { .. } => {}
            Self::Batch { seq, readings } => {
                if *seq == 0 {
                    return Err(WireError::SeqZero);
                }
                if readings.is_empty() {
                    return Err(WireError::EmptyBatch);
                }
                for (index, reading) in readings.iter().enumerate() {
                    check_reading_encodable(reading).map_err(|error| match error {
                        Some(error) => WireError::BadRecord { index, error },
                        None => WireError::UnencodableReading { index },
                    })?;
                }
            }
            Self::Error { message, .. } => {
                if message.len() > MAX_ERROR_MESSAGE_BYTES {
                    return Err(WireError::ErrorMessageTooLong {
                        len_bytes: message.len(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Whether `reading` survives the 32-byte record unchanged. `Err(Some(e))`: the record it
/// encodes to is invalid (e.g. latitude out of range); `Err(None)`: it decodes to a different
/// reading (an optional field set to its "absent" sentinel, e.g. `satellites: Some(255)`).
pub fn check_reading_encodable(reading: &Reading) -> Result<(), Option<RecordError>> {
    let record = super::record::encode_record(reading);
    match super::record::decode_record(&record) {
        Ok(back) if back == *reading => Ok(()),
        Ok(_) => Err(None),
        Err(e) => Err(Some(e)),
    }
}

/// Checks a hello tag's bytes: 1..=64 bytes of UTF-8.
pub(crate) fn check_tag(tag: &[u8]) -> Result<&str, WireError> {
    if tag.is_empty() {
        return Err(WireError::EmptyTag);
    }
    if tag.len() > MAX_TAG_BYTES {
        return Err(WireError::TagTooLong {
            len_bytes: tag.len(),
        });
    }
    std::str::from_utf8(tag).map_err(|_| WireError::TagNotUtf8)
}

/// Checks a tag id as a hello would carry it (1..=64 bytes), for tools and the API.
pub fn check_tag_id(tag: &str) -> Result<(), WireError> {
    check_tag(tag.as_bytes()).map(|_| ())
}

/// Checks a hello secret's bytes: 0..=128 bytes of UTF-8.
pub(crate) fn check_secret(secret: &[u8]) -> Result<&str, WireError> {
    if secret.len() > MAX_SECRET_BYTES {
        return Err(WireError::SecretTooLong {
            len_bytes: secret.len(),
        });
    }
    std::str::from_utf8(secret).map_err(|_| WireError::SecretNotUtf8)
}

/// Why a frame or session was refused: a `u16` on the wire, stable across versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The length prefix exceeds the receiver's maximum frame size.
    FrameTooLarge = 1,
    /// The type byte is not a known frame type.
    UnknownFrameType = 2,
    /// A frame's payload length does not fit its fields: truncated, trailing bytes, a batch count
    /// that disagrees with the records present, a zero-length frame, or a stream ending mid-frame.
    LengthMismatch = 3,
    /// A hello whose tag is empty, longer than 64 bytes or not UTF-8, or whose secret is longer
    /// than 128 bytes or not UTF-8.
    BadHello = 4,
    /// A batch record is invalid; the message names the record index and the problem.
    BadRecord = 5,
    /// A batch with no readings.
    EmptyBatch = 6,
    /// A batch numbered 0 (batch numbers start at 1).
    SeqZero = 7,
    /// An error frame with an unknown code, an over-long message or a message that is not UTF-8.
    BadErrorFrame = 8,
    /// The hello's protocol version is not one the receiver speaks.
    UnsupportedVersion = 20,
    /// A batch arrived before the hello.
    BatchBeforeHello = 21,
    /// A second hello on the same connection.
    SecondHello = 22,
    /// A frame the receiver never accepts in that direction (e.g. an ack sent to the server).
    UnexpectedFrame = 23,
    /// A batch numbered above the highest the server accepts (`u64::MAX - 2^32`); not stored.
    /// The tag should start a new session epoch and number from 1.
    SeqTooLarge = 24,
    /// A hello or batch of a session epoch older than the tag's current one; not stored.
    StaleEpoch = 25,
    /// No hello arrived within the server's hello timeout.
    HelloTimeout = 26,
    /// A newer connection of the same tag took this one's place (the server keeps at most a
    /// configured number of connections per tag and closes the oldest).
    Superseded = 27,
    /// The tag's secret is wrong (or the tag is unknown).
    AuthFailed = 30,
    /// The tag's credentials were revoked (e.g. the tag was reported lost); it is refused until
    /// an operator issues new ones (rotation).
    TagRevoked = 31,
    /// The TLS client certificate does not name the hello's tag (or the server requires a
    /// certificate for this tag and none was presented).
    IdentityMismatch = 32,
    /// The server cannot take the connection now; retry later.
    ServerBusy = 40,
    /// The server failed (e.g. the log could not be written); retry later.
    Internal = 41,
    /// The connection was idle (nothing received) for longer than the server's idle timeout;
    /// reconnect when there is something to send.
    IdleTimeout = 42,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 22] = [
        Self::FrameTooLarge,
        Self::UnknownFrameType,
        Self::LengthMismatch,
        Self::BadHello,
        Self::BadRecord,
        Self::EmptyBatch,
        Self::SeqZero,
        Self::BadErrorFrame,
        Self::UnsupportedVersion,
        Self::BatchBeforeHello,
        Self::SecondHello,
        Self::UnexpectedFrame,
        Self::SeqTooLarge,
        Self::StaleEpoch,
        Self::HelloTimeout,
        Self::Superseded,
        Self::AuthFailed,
        Self::TagRevoked,
        Self::IdentityMismatch,
        Self::ServerBusy,
        Self::Internal,
        Self::IdleTimeout,
    ];

    /// The value on the wire.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    pub fn from_u16(value: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_u16() == value)
    }

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FrameTooLarge => "frame_too_large",
            Self::UnknownFrameType => "unknown_frame_type",
            Self::LengthMismatch => "length_mismatch",
            Self::BadHello => "bad_hello",
            Self::BadRecord => "bad_record",
            Self::EmptyBatch => "empty_batch",
            Self::SeqZero => "seq_zero",
            Self::BadErrorFrame => "bad_error_frame",
            Self::UnsupportedVersion => "unsupported_version",
            Self::BatchBeforeHello => "batch_before_hello",
            Self::SecondHello => "second_hello",
            Self::UnexpectedFrame => "unexpected_frame",
            Self::SeqTooLarge => "seq_too_large",
            Self::StaleEpoch => "stale_epoch",
            Self::HelloTimeout => "hello_timeout",
            Self::Superseded => "superseded",
            Self::AuthFailed => "auth_failed",
            Self::TagRevoked => "tag_revoked",
            Self::IdentityMismatch => "identity_mismatch",
            Self::ServerBusy => "server_busy",
            Self::Internal => "internal",
            Self::IdleTimeout => "idle_timeout",
        }
    }

    /// Whether a tag should reconnect and retry after receiving this code (the server's fault or
    /// load), as opposed to a fault in what the tag sent.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::ServerBusy | Self::Internal | Self::IdleTimeout | Self::HelloTimeout
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a frame, a stream of frames or a session. Each maps to an [`ErrorCode`]
/// ([`WireError::code`]) and its `Display` is the human message for an `Error` frame.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("frame length {len_bytes} bytes exceeds the maximum of {max_bytes} bytes")]
    FrameTooLarge { len_bytes: u64, max_bytes: usize },
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrameType(u8),
    #[error("frame length 0: a frame needs at least its type byte")]
    EmptyFrame,
    #[error("{frame} payload is {actual_bytes} bytes but its fields need {expected_bytes}")]
    PayloadLength {
        frame: FrameType,
        expected_bytes: usize,
        actual_bytes: usize,
    },
    #[error(
        "batch declares {count} readings ({} bytes of records) but carries {record_bytes} bytes of records",
        *count as u64 * RECORD_LEN as u64
    )]
    CountMismatch { count: u32, record_bytes: usize },
    #[error("stream ended inside a frame: {available_bytes} of {needed_bytes} bytes present")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("hello tag is empty")]
    EmptyTag,
    #[error("hello tag is {len_bytes} bytes; the maximum is 64")]
    TagTooLong { len_bytes: usize },
    #[error("hello tag is not valid UTF-8")]
    TagNotUtf8,
    #[error("hello secret is {len_bytes} bytes; the maximum is 128")]
    SecretTooLong { len_bytes: usize },
    #[error("hello secret is not valid UTF-8")]
    SecretNotUtf8,
    #[error("protocol version {got} is not supported (this side speaks {supported})")]
    UnsupportedVersion { got: u16, supported: u16 },
    #[error("record {index}: {error}")]
    BadRecord { index: usize, error: RecordError },
    #[error("reading {index} cannot be encoded without loss (an optional field holds its absent sentinel)")]
    UnencodableReading { index: usize },
    #[error("batch has no readings")]
    EmptyBatch,
    #[error("batch seq 0: batches are numbered from 1")]
    SeqZero,
    #[error("unknown error code {0}")]
    UnknownErrorCode(u16),
    #[error("error message is {len_bytes} bytes; the maximum is 1024")]
    ErrorMessageTooLong { len_bytes: usize },
    #[error("error message is not valid UTF-8")]
    ErrorMessageNotUtf8,
    #[error("batch before hello")]
    BatchBeforeHello,
    #[error("second hello on one connection")]
    SecondHello,
    #[error("unexpected {0} frame")]
    UnexpectedFrame(FrameType),
    #[error("authentication failed for tag {tag:?}")]
    AuthFailed { tag: String },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl WireError {
    /// The code to send in an `Error` frame naming this problem.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::UnknownFrameType(_) => ErrorCode::UnknownFrameType,
            Self::EmptyFrame
            | Self::PayloadLength { .. }
            | Self::CountMismatch { .. }
            | Self::Truncated { .. } => ErrorCode::LengthMismatch,
            Self::EmptyTag
            | Self::TagTooLong { .. }
            | Self::TagNotUtf8
            | Self::SecretTooLong { .. }
            | Self::SecretNotUtf8 => ErrorCode::BadHello,
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::BadRecord { .. } | Self::UnencodableReading { .. } => ErrorCode::BadRecord,
            Self::EmptyBatch => ErrorCode::EmptyBatch,
            Self::SeqZero => ErrorCode::SeqZero,
            Self::UnknownErrorCode(_)
            | Self::ErrorMessageTooLong { .. }
            | Self::ErrorMessageNotUtf8 => ErrorCode::BadErrorFrame,
            Self::BatchBeforeHello => ErrorCode::BatchBeforeHello,
            Self::SecondHello => ErrorCode::SecondHello,
            Self::UnexpectedFrame(_) => ErrorCode::UnexpectedFrame,
            Self::AuthFailed { .. } => ErrorCode::AuthFailed,
            Self::Io(_) => ErrorCode::Internal,
        }
    }

    /// The `Error` frame that tells the peer about this problem.
    pub fn to_error_frame(&self) -> Frame {
        Frame::error(self.code(), self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable_and_unique() {
        let mut values: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.as_u16()).collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u16(code.as_u16()), Some(code));
        }
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::BadRecord.as_u16(), 5);
        assert_eq!(ErrorCode::AuthFailed.as_str(), "auth_failed");
    }

    #[test]
    fn frame_types_round_trip() {
        for t in FrameType::ALL {
            assert_eq!(FrameType::from_code(t.code()), Some(t));
        }
        assert_eq!(FrameType::from_code(0), None);
        assert_eq!(FrameType::from_code(6), None);
    }

    #[test]
    fn error_constructor_cuts_long_messages_at_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES); // 2 bytes each
        let Frame::Error { message, .. } = Frame::error(ErrorCode::Internal, long) else {
            unreachable!()
        };
        assert!(message.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(message.len() >= MAX_ERROR_MESSAGE_BYTES - 1);
    }

    #[test]
    fn max_batch_readings_at_default_limit() {
        assert_eq!(max_batch_readings(DEFAULT_MAX_FRAME_BYTES), 32_767);
        assert_eq!(max_batch_readings(0), 0);
    }
}
