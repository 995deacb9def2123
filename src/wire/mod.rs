//! The native tag protocol over TCP: length-prefixed frames (hello, batch, ack, error) carrying
//! fixed 32-byte reading records. Specified in `docs/protocol.md`.
//!
//! - `record`: the 32-byte layout of one reading (shared with the durable log).
//! - `frame`: the frames, their limits, the wire error codes and [`WireError`].
//! - `codec`: the byte encoding of frames: [`encode_frame`]/[`decode_frame`] and the
//!   `tokio_util` [`FrameCodec`].
//! - `readings_file`: the native binary readings file (`TAGSRDG1` + hello/batch frames), written
//!   by the simulator and read by `tagstream replay`.
//! - `secret`: the per-tag secret a hello carries (hex HMAC-SHA256 of the tag id and its
//!   credential generation) and the check of the server's tag key.

pub mod codec;
pub mod frame;
pub mod readings_file;
pub mod record;
pub mod secret;

pub use codec::{decode_frame, encode_frame, try_encode_batch, try_encode_frame, FrameCodec};
pub use frame::{
    check_reading_encodable, max_batch_readings, ErrorCode, Frame, FrameType, WireError,
    DEFAULT_MAX_FRAME_BYTES, MAX_BATCH_SEQ, MAX_ERROR_MESSAGE_BYTES, MAX_HELLO_FRAME_BYTES,
    MAX_SECRET_BYTES, MAX_TAG_BYTES, PROTOCOL_VERSION,
};
pub use readings_file::{
    ReadingsFileError, ReadingsFileReader, ReadingsFileWriter, READINGS_FILE_MAGIC,
};
pub use record::{decode_record, decode_records, encode_record, RecordError, RECORD_LEN};
pub use secret::{
    check_tag_key, secret_matches, secret_matches_at, tag_secret, tag_secret_at, TagKeyError,
    MIN_TAG_KEY_BYTES, TAG_SECRET_LEN,
};
