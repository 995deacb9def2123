//! The native tag protocol over TCP: length-prefixed frames (hello, batch, ack, error) carrying
//! fixed 32-byte reading records. Specified in `docs/protocol.md`.

pub mod record;

pub use record::{decode_record, decode_records, encode_record, RecordError, RECORD_LEN};
