//! Snapshots of the pipeline: the whole state an [`super::driver::InlineDriver`] holds between
//! two log records, as bytes, and its restore (see `docs/snapshots.md`).
//!
//! This module owns the format: a fixed header (magic, format version, payload length, CRC-32
//! of the payload) then the payload in CBOR. CBOR is self-describing, so the model's types whose
//! serde form is shaped for JSON (skipped `None`s, internally tagged conditions, GeoJSON values)
//! go in as they are and floats keep their exact bits. Configuration is not stored: restore
//! takes the same pipeline configuration and rule factory the driver was built with, replays
//! onto the factory the orders the log had set, rebuilds each activation's rules from it and
//! loads each rule's saved state ([`crate::pipeline::Rule::save_state`]). Everything that
//! depends on the records seen is stored, maps in sorted order, so one state always gives the
//! same bytes.
//!
//! The [`Snap`] trait and the [`via`] serde adapter give a binary-exact form to the two model
//! types whose serde form is lossy (a [`Reading`] serialises as JSON with rounded units; an
//! [`Alert`] does not read back its evidence).

use crate::model::Withdrawal;
use crate::model::{
    Alert, AlertDetails, AlertType, Confidence, DeviceEvent, Position, PositionSource, Reading,
    ReadingBody, TacSample, TimeMs,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Leading bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"TSSNAP\0\0";
/// Version of the payload layout; bumped whenever any stored state changes shape.
/// 2: each activation's amendment tape as its encoded blocks (byte strings), not readings.
pub const FORMAT_VERSION: u16 = 2;
/// Magic, version (u16 LE), payload length (u64 LE), CRC-32 of the payload (u32 LE).
const HEADER_LEN: usize = 8 + 2 + 8 + 4;

/// Why a snapshot could not be written or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a pipeline snapshot (bad magic bytes)")]
    BadMagic,
    #[error("snapshot format version {found}, this build reads version {expected}")]
    UnsupportedVersion { found: u16, expected: u16 },
    #[error("snapshot truncated: {expected} bytes expected, {found} present")]
    Truncated { expected: u64, found: u64 },
    #[error("snapshot damaged: checksum {found:08x}, header says {expected:08x}")]
    Checksum { expected: u32, found: u32 },
    #[error("snapshot has {0} trailing bytes after its payload")]
    TrailingBytes(u64),
    #[error("cannot encode the pipeline state: {0}")]
    Encode(String),
    #[error("cannot decode the snapshot payload: {0}")]
    Decode(String),
    /// The configuration given to restore does not fit the state (a different partition count,
    /// rules that rebuild differently from the factory): restoring would not be exact.
    #[error("snapshot does not fit this configuration: {0}")]
    Mismatch(String),
    #[error("rule state: {0}")]
    Rule(#[from] RuleStateError),
}

/// One rule's saved state (a CBOR value: each rule chooses its own shape).
pub type RuleState = ciborium::Value;

/// A rule's state could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
#[error("rule '{rule}': {message}")]
pub struct RuleStateError {
    pub rule: &'static str,
    pub message: String,
}

/// Saves `state` as a rule's [`RuleState`].
pub fn save_rule_state<T: Serialize>(
    rule: &'static str,
    state: &T,
) -> Result<RuleState, RuleStateError> {
    RuleState::serialized(state).map_err(|e| RuleStateError {
        rule,
        message: e.to_string(),
    })
}

/// Reads back what [`save_rule_state`] saved.
pub fn load_rule_state<T: DeserializeOwned>(
    rule: &'static str,
    state: &RuleState,
) -> Result<T, RuleStateError> {
    state.deserialized().map_err(|e| RuleStateError {
        rule,
        message: e.to_string(),
    })
}

/// Frames `payload` (serialised to CBOR) with the header.
pub fn encode<T: Serialize>(payload: &T) -> Result<Vec<u8>, SnapshotError> {
    let mut body = Vec::new();
    ciborium::into_writer(payload, &mut body).map_err(|e| SnapshotError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks the header and checksum of `bytes` and decodes the payload.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SnapshotError> {
    let truncated = || SnapshotError::Truncated {
        expected: HEADER_LEN as u64,
        found: bytes.len() as u64,
    };
    let magic = bytes.get(..MAGIC.len()).ok_or_else(truncated)?;
    if magic != MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let header = bytes.get(..HEADER_LEN).ok_or_else(truncated)?;
    let field = |from: usize, to: usize| -> &[u8] { &header[from..to] };
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(field(10, 18));
    let len = u64::from_le_bytes(len);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(field(18, 22));
    let expected = u32::from_le_bytes(crc);
    let body = &bytes[HEADER_LEN..];
    if (body.len() as u64) < len {
        return Err(SnapshotError::Truncated {
            expected: HEADER_LEN as u64 + len,
            found: bytes.len() as u64,
        });
    }
    if body.len() as u64 > len {
        return Err(SnapshotError::TrailingBytes(body.len() as u64 - len));
    }
    let found = crc32fast::hash(body);
    if found != expected {
        return Err(SnapshotError::Checksum { expected, found });
    }
    ciborium::from_reader(body).map_err(|e| SnapshotError::Decode(e.to_string()))
}

/// A model type with a binary-exact snapshot form distinct from its (JSON-shaped) serde form.
pub trait Snap: Sized {
    type Repr: Serialize + DeserializeOwned;
    fn to_repr(&self) -> Self::Repr;
    fn from_repr(repr: Self::Repr) -> Self;
}

/// `#[serde(with = "crate::pipeline::snapshot::via")]` on a field whose type is [`Snap`].
pub mod via {
    use super::Snap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Snap, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        value.to_repr().serialize(s)
    }

    pub fn deserialize<'de, T: Snap, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        T::Repr::deserialize(d).map(T::from_repr)
    }
}

/// A reading, every field as held in memory, as a CBOR array (readings fill most of a
/// snapshot: the tapes hold up to 7 days of each activation's).
#[derive(Serialize, Deserialize)]
pub struct ReadingRepr(TimeMs, Option<u8>, BodyRepr);

#[derive(Serialize, Deserialize)]
enum BodyRepr {
    #[serde(rename = "p")]
    Position(
        i32,
        i32,
        u32,
        PositionSource,
        Option<u16>,
        Option<u16>,
        Option<u8>,
    ),
    #[serde(rename = "t")]
    Tac(i32, i32, i32),
    #[serde(rename = "r")]
    Rf(bool),
    #[serde(rename = "e")]
    Event(DeviceEvent),
}

impl Snap for Reading {
    type Repr = ReadingRepr;
    fn to_repr(&self) -> ReadingRepr {
        let body = match self.body {
            ReadingBody::Position(p) => BodyRepr::Position(
                p.lat_e7,
                p.lon_e7,
                p.precision_cm,
                p.source,
                p.speed_ckmh,
                p.heading_cdeg,
                p.satellites,
            ),
            ReadingBody::Tac(t) => BodyRepr::Tac(t.tac_ugdl, t.ir_uv, t.temp_mc),
            ReadingBody::Rf { in_range } => BodyRepr::Rf(in_range),
            ReadingBody::Event(e) => BodyRepr::Event(e),
        };
        ReadingRepr(self.t_ms, self.battery_pct, body)
    }
    fn from_repr(ReadingRepr(t_ms, battery_pct, body): ReadingRepr) -> Self {
        let body = match body {
            BodyRepr::Position(
                lat_e7,
                lon_e7,
                precision_cm,
                source,
                speed_ckmh,
                heading_cdeg,
                satellites,
            ) => ReadingBody::Position(Position {
                lat_e7,
                lon_e7,
                precision_cm,
                source,
                speed_ckmh,
                heading_cdeg,
                satellites,
            }),
            BodyRepr::Tac(tac_ugdl, ir_uv, temp_mc) => ReadingBody::Tac(TacSample {
                tac_ugdl,
                ir_uv,
                temp_mc,
            }),
            BodyRepr::Rf(in_range) => ReadingBody::Rf { in_range },
            BodyRepr::Event(e) => ReadingBody::Event(e),
        };
        Reading {
            t_ms,
            battery_pct,
            body,
        }
    }
}

/// An alert with its evidence (which its JSON form does not read back) and its times as
/// integers.
#[derive(Serialize, Deserialize)]
pub struct AlertRepr {
    id: String,
    alert_type: AlertType,
    code: Option<String>,
    activation: String,
    person: String,
    start: TimeMs,
    end: Option<TimeMs>,
    late: bool,
    zone: Option<String>,
    confidence: Option<Confidence>,
    rule: String,
    details: Option<Box<AlertDetails>>,
    withdrawn: Option<Withdrawal>,
    amended_by: Option<u64>,
    evidence: Vec<ReadingRepr>,
}

impl Snap for Alert {
    type Repr = AlertRepr;
    fn to_repr(&self) -> AlertRepr {
        // Destructured whole so that a field added to `Alert` cannot be forgotten here.
        let Alert {
            id,
            alert_type,
            code,
            activation,
            person,
            start,
            end,
            late,
            zone,
            confidence,
            rule,
            details,
            withdrawn,
            amended_by,
            evidence,
        } = self.clone();
        AlertRepr {
            id,
            alert_type,
            code,
            activation,
            person,
            start,
            end,
            late,
            zone,
            confidence,
            rule,
            details,
            withdrawn,
            amended_by,
            evidence: evidence.iter().map(Snap::to_repr).collect(),
        }
    }
    fn from_repr(r: AlertRepr) -> Self {
        Alert {
            id: r.id,
            alert_type: r.alert_type,
            code: r.code,
            activation: r.activation,
            person: r.person,
            start: r.start,
            end: r.end,
            late: r.late,
            zone: r.zone,
            confidence: r.confidence,
            rule: r.rule,
            details: r.details,
            withdrawn: r.withdrawn,
            amended_by: r.amended_by,
            evidence: r.evidence.into_iter().map(Reading::from_repr).collect(),
        }
    }
}

impl<T: Snap> Snap for Vec<T> {
    type Repr = Vec<T::Repr>;
    fn to_repr(&self) -> Self::Repr {
        self.iter().map(Snap::to_repr).collect()
    }
    fn from_repr(repr: Self::Repr) -> Self {
        repr.into_iter().map(T::from_repr).collect()
    }
}

impl<T: Snap> Snap for VecDeque<T> {
    type Repr = Vec<T::Repr>;
    fn to_repr(&self) -> Self::Repr {
        self.iter().map(Snap::to_repr).collect()
    }
    fn from_repr(repr: Self::Repr) -> Self {
        repr.into_iter().map(T::from_repr).collect()
    }
}

impl<T: Snap> Snap for Option<T> {
    type Repr = Option<T::Repr>;
    fn to_repr(&self) -> Self::Repr {
        self.as_ref().map(Snap::to_repr)
    }
    fn from_repr(repr: Self::Repr) -> Self {
        repr.map(T::from_repr)
    }
}

impl<A: Snap, B: Clone + Serialize + DeserializeOwned> Snap for (A, B) {
    type Repr = (A::Repr, B);
    fn to_repr(&self) -> Self::Repr {
        (self.0.to_repr(), self.1.clone())
    }
    fn from_repr((a, b): Self::Repr) -> Self {
        (A::from_repr(a), b)
    }
}
