//! Teltonika Codec 8 and Codec 8 Extended (FMB and similar trackers, over TCP): the IMEI
//! handshake, AVL data packets with their CRC-16/IBM, the record-count acknowledgement, and the
//! mapping of a record's GNSS fix and standard IO elements to readings. `docs/devices.md`
//! describes what is decoded and how it is mapped.

pub mod avl;
pub mod crc;
pub mod error;
pub mod frame;
pub mod imei;
pub mod mapping;
pub mod packet;

pub use avl::{AvlRecord, Codec, GpsElement, IoElement, IoValue, Priority};
pub use error::{ErrorAnswer, TeltonikaEncodeError, TeltonikaError};
pub use frame::{
    DeviceCodec, DeviceMessage, Incoming, ServerCodec, ServerReply, TeltonikaStreamError,
};
pub use imei::Imei;
pub use mapping::{readings_of, unmapped_io, MappingConfig};
pub use packet::{decode_avl_packet, encode_avl_packet, AvlPacket, DEFAULT_MAX_DATA_BYTES};

#[cfg(test)]
mod hostile_frames;
#[cfg(test)]
mod public_vectors;
