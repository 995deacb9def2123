//! Framing over a TCP byte stream, as `tokio_util` codecs.
//!
//! A connection opens with the IMEI handshake (2-byte length, 15 ASCII digits), answered with
//! one byte: 0x01 accepted, 0x00 refused. AVL data packets follow, each acknowledged with the
//! number of records accepted as a 4-byte big-endian integer.
//!
//! [`ServerCodec`] is the server's side: it decodes what a device sends and encodes the
//! answers. [`DeviceCodec`] is the device's side (for the simulator). Lengths are checked as
//! soon as their bytes arrive, before the body is buffered: a handshake length other than 15 and
//! a data length over the limit are refused at once.

use super::error::TeltonikaError;
use super::imei::{Imei, IMEI_DIGITS, IMEI_LENGTH_BYTES};
use super::packet::{
    check_header, decode_avl_data, encode_ack, encode_avl_packet, AvlPacket, CRC_BYTES,
    DEFAULT_MAX_DATA_BYTES, HEADER_BYTES, PREAMBLE_BYTES,
};
use bytes::{Buf, BufMut, BytesMut};
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

/// What a device sent, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceMessage {
    Imei(Imei),
    Avl(AvlPacket),
}

/// What the server's decoder yields: a message, or a packet framed whole but refused. A refused
/// packet has been skipped and the stream can go on: answer it with an acknowledgement of 0
/// records (see [`TeltonikaError::answer`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    Message(DeviceMessage),
    Refused(TeltonikaError),
}

/// What the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerReply {
    ImeiAccepted,
    ImeiRefused,
    /// The number of records accepted from the last packet.
    Ack {
        records: u32,
    },
}

/// An error that ends the stream: the framing is lost (or the handshake refused), or I/O failed.
#[derive(Debug, Error)]
pub enum TeltonikaStreamError {
    #[error(transparent)]
    Protocol(#[from] TeltonikaError),
    #[error("encoding: {0}")]
    Encode(#[from] super::error::TeltonikaEncodeError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerState {
    AwaitingImei,
    AwaitingAvl,
}

/// The server's side of a connection.
#[derive(Debug)]
pub struct ServerCodec {
    state: ServerState,
    max_data_bytes: usize,
}

impl Default for ServerCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DATA_BYTES)
    }
}

impl ServerCodec {
    /// A codec for a new connection, refusing AVL data longer than `max_data_bytes`.
    pub fn new(max_data_bytes: usize) -> Self {
        Self {
            state: ServerState::AwaitingImei,
            max_data_bytes,
        }
    }

    pub fn max_data_bytes(&self) -> usize {
        self.max_data_bytes
    }

    fn decode_imei(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, TeltonikaError> {
        if src.len() < IMEI_LENGTH_BYTES {
            return Ok(None);
        }
        let len_bytes = u16::from_be_bytes([src[0], src[1]]);
        if usize::from(len_bytes) != IMEI_DIGITS {
            return Err(TeltonikaError::ImeiLength {
                len_bytes,
                expected: IMEI_DIGITS,
            });
        }
        let total = IMEI_LENGTH_BYTES + IMEI_DIGITS;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let imei = Imei::from_digits(&src[IMEI_LENGTH_BYTES..total])?;
        src.advance(total);
        self.state = ServerState::AwaitingAvl;
        Ok(Some(Incoming::Message(DeviceMessage::Imei(imei))))
    }

    fn decode_avl(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, TeltonikaError> {
        // The preamble is refused as soon as a non-zero byte of it arrives.
        if let Some(offset) = src.iter().take(PREAMBLE_BYTES).position(|b| *b != 0) {
            return Err(TeltonikaError::PreambleNotZero {
                byte: src[offset],
                offset,
            });
        }
        let Some(header) = src.get(..HEADER_BYTES) else {
            return Ok(None);
        };
        let header: [u8; HEADER_BYTES] = header.try_into().unwrap_or_default();
        let data_len = check_header(header, self.max_data_bytes)?;
        let total = HEADER_BYTES + data_len + CRC_BYTES;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let mut packet = src.split_to(total).freeze();
        packet.advance(HEADER_BYTES);
        let data = packet.split_to(data_len);
        let crc_field = packet.get_u32();
        Ok(Some(match decode_avl_data(data, crc_field) {
            Ok(avl) => Incoming::Message(DeviceMessage::Avl(avl)),
            Err(refused) => Incoming::Refused(refused),
        }))
    }
}

impl Decoder for ServerCodec {
    type Item = Incoming;
    type Error = TeltonikaStreamError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, TeltonikaStreamError> {
        let decoded = match self.state {
            ServerState::AwaitingImei => self.decode_imei(src),
            ServerState::AwaitingAvl => self.decode_avl(src),
        };
        Ok(decoded?)
    }
}

impl Encoder<ServerReply> for ServerCodec {
    type Error = TeltonikaStreamError;

    fn encode(
        &mut self,
        reply: ServerReply,
        dst: &mut BytesMut,
    ) -> Result<(), TeltonikaStreamError> {
        match reply {
            ServerReply::ImeiAccepted => dst.put_u8(0x01),
            ServerReply::ImeiRefused => dst.put_u8(0x00),
            ServerReply::Ack { records } => encode_ack(records, dst),
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeviceState {
    AwaitingHandshakeAnswer,
    AwaitingAcks,
}

/// The device's side of a connection: sends the IMEI and AVL packets, reads the answers.
#[derive(Debug)]
pub struct DeviceCodec {
    state: DeviceState,
    max_data_bytes: usize,
}

impl Default for DeviceCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DATA_BYTES)
    }
}

impl DeviceCodec {
    /// A codec for a new connection, refusing to encode AVL data longer than `max_data_bytes`.
    pub fn new(max_data_bytes: usize) -> Self {
        Self {
            state: DeviceState::AwaitingHandshakeAnswer,
            max_data_bytes,
        }
    }
}

impl Decoder for DeviceCodec {
    type Item = ServerReply;
    type Error = TeltonikaStreamError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<ServerReply>, TeltonikaStreamError> {
        match self.state {
            DeviceState::AwaitingHandshakeAnswer => {
                if src.is_empty() {
                    return Ok(None);
                }
                let reply = match src.get_u8() {
                    0x01 => ServerReply::ImeiAccepted,
                    0x00 => ServerReply::ImeiRefused,
                    byte => return Err(TeltonikaError::UnexpectedHandshakeAnswer { byte }.into()),
                };
                self.state = DeviceState::AwaitingAcks;
                Ok(Some(reply))
            }
            DeviceState::AwaitingAcks => {
                if src.len() < 4 {
                    return Ok(None);
                }
                Ok(Some(ServerReply::Ack {
                    records: src.get_u32(),
                }))
            }
        }
    }
}

impl Encoder<&DeviceMessage> for DeviceCodec {
    type Error = TeltonikaStreamError;

    fn encode(
        &mut self,
        message: &DeviceMessage,
        dst: &mut BytesMut,
    ) -> Result<(), TeltonikaStreamError> {
        match message {
            DeviceMessage::Imei(imei) => {
                dst.put_u16(IMEI_DIGITS as u16);
                dst.put_slice(imei.as_bytes());
            }
            DeviceMessage::Avl(packet) => encode_avl_packet(packet, dst, self.max_data_bytes)?,
        }
        Ok(())
    }
}
