//! Re-evaluation after a change: each activation's input tape, and the memory of every output it
//! emitted, so that a change to its orders or period re-runs the tape through new rules and
//! re-issues only what differs.
//!
//! The tape holds its inputs encoded (see [`Tape`]): blocks of bytes, each reading a few bytes of
//! deltas from the one before, decoded only when the tape is re-run. It is bounded by readings,
//! by event time and by bytes ([`TapeLimits`]), each a function of that activation's inputs alone,
//! so live serving, replay and a node restored from a checkpoint hold the same bytes.
//!
//! What differs is re-issued once: an output the new rules no longer produce is re-issued
//! **withdrawn** (`withdrawn: {change, reason}`), kept, never deleted; an output they produce
//! anew or differently is issued with `amended_by: change`. Outputs older than the oldest input
//! the tape still holds are left as they are (the tape is bounded), as are outputs already
//! withdrawn. Everything here is ordered (BTreeMap), so live, replay and rebuild re-issue the
//! same outputs in the same order.

use super::sink::{Output, Sink};
use crate::model::{
    DeviceEvent, Position, PositionSource, Reading, ReadingBody, TacSample, TimeMs, Withdrawal,
};
use crate::varint::{put_ivarint, put_uvarint, unzigzag};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// One input of an activation, as the partition received it: what [`Tape::push`] takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TapeInput<'a> {
    Readings {
        /// The partition's clock when the readings arrived.
        clock_ms: TimeMs,
        readings: &'a [Reading],
        ahead: &'a [Reading],
        ahead_count: u32,
        contact_ms: TimeMs,
    },
    /// The clock reached one of the activation's deadlines.
    Clock(TimeMs),
}

/// One input read back from a tape ([`Tape::entries`]): exactly what was pushed.
#[derive(Debug, Clone, PartialEq)]
pub enum TapeEntry {
    Readings {
        clock_ms: TimeMs,
        readings: Vec<Reading>,
        ahead: Vec<Reading>,
        ahead_count: u32,
        contact_ms: TimeMs,
    },
    Clock(TimeMs),
}

impl TapeEntry {
    /// The entry as it was pushed.
    pub fn as_input(&self) -> TapeInput<'_> {
        match self {
            TapeEntry::Readings {
                clock_ms,
                readings,
                ahead,
                ahead_count,
                contact_ms,
            } => TapeInput::Readings {
                clock_ms: *clock_ms,
                readings,
                ahead,
                ahead_count: *ahead_count,
                contact_ms: *contact_ms,
            },
            TapeEntry::Clock(t_ms) => TapeInput::Clock(*t_ms),
        }
    }
}

/// How much of its inputs an activation's tape keeps: the oldest entries are dropped first
/// until every bound holds (see [`super::PipelineConfig`]'s `amend_*` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TapeLimits {
    pub max_readings: usize,
    /// Encoded bytes, counted by whole blocks (a block's bytes are freed with its last entry).
    pub max_bytes: usize,
    /// Event time behind the newest reading.
    pub horizon_ms: TimeMs,
}

/// A block is closed once it holds this many bytes (an entry is never split, so one may hold
/// more). Small enough that dropping a block frees little beyond the budget, large enough that
/// its fresh start (absolute values, not deltas) and allocation cost next to nothing.
pub const TAPE_BLOCK_BYTES: usize = 4096;

/// Why a tape's bytes could not be read back (only a damaged or hand-made snapshot can hold
/// such bytes: a tape only ever reads what it wrote).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapeDecodeError {
    #[error("tape block {block} ends inside an entry (byte {at})")]
    Truncated { block: usize, at: usize },
    #[error("tape block {block}, byte {at}: {what}")]
    Invalid {
        block: usize,
        at: usize,
        what: &'static str,
    },
    #[error("tape state: {0}")]
    State(&'static str),
}

/// An activation's inputs, encoded, oldest dropped first beyond [`TapeLimits`].
///
/// Entries are appended to the last block; each block starts from a zero [`DeltaState`] so it
/// can be freed whole. Entries dropped from the front of the first block are skipped by a
/// cursor (`front_*`) until the block's last one goes, then the block is freed: the bytes held,
/// and so the byte budget, count whole blocks. No reading and no batch is referenced, only bytes.
#[derive(Debug, Default)]
pub struct Tape {
    blocks: VecDeque<Vec<u8>>,
    /// The encoder's state after the last entry of the last block.
    writer: DeltaState,
    /// Where the oldest kept entry starts in the first block, the state to decode it with, and
    /// what it is (`None`: the tape is empty).
    front_at: usize,
    front_state: DeltaState,
    front: Option<EntrySummary>,
    entries: usize,
    readings: usize,
    bytes: usize,
    limits: TapeLimits,
    newest_ms: TimeMs,
    /// Event time before which inputs were dropped (outputs before it are not re-evaluated).
    dropped_before_ms: Option<TimeMs>,
}

/// What the drop loop needs of an entry, from decoding it once.
#[derive(Debug, Clone, Copy, PartialEq)]
struct EntrySummary {
    /// The newest event time of its readings (a clock entry: its time; `TimeMs::MIN`: none).
    newest_ms: TimeMs,
    readings: usize,
    is_readings: bool,
    /// Where the next entry starts, and the decoder's state there.
    end: usize,
    state_after: DeltaState,
}

impl Tape {
    pub fn new(limits: TapeLimits) -> Self {
        Self {
            limits,
            newest_ms: TimeMs::MIN,
            ..Self::default()
        }
    }

    /// Appends an input (encoded at once: nothing of it stays referenced), then drops the oldest
    /// entries while any bound is exceeded.
    pub fn push(&mut self, input: TapeInput<'_>) {
        let newest_ms = match input {
            TapeInput::Readings { readings, .. } => {
                self.readings += readings.len();
                let newest_ms = readings.iter().map(|r| r.t_ms).max().unwrap_or(TimeMs::MIN);
                self.newest_ms = self.newest_ms.max(newest_ms);
                newest_ms
            }
            TapeInput::Clock(t_ms) => t_ms,
        };
        let needs_block = self
            .blocks
            .back()
            .is_none_or(|block| block.len() >= TAPE_BLOCK_BYTES);
        if needs_block {
            if let Some(full) = self.blocks.back_mut() {
                full.shrink_to_fit();
            }
            self.blocks
                .push_back(Vec::with_capacity(TAPE_BLOCK_BYTES + 256));
            self.writer = DeltaState::default();
        }
        let Some(block) = self.blocks.back_mut() else {
            return; // just pushed
        };
        let start = block.len();
        let state_before = self.writer;
        put_entry(block, &mut self.writer, &input);
        self.bytes += block.len() - start;
        self.entries += 1;
        if self.front.is_none() {
            // The tape was empty: this entry is the front one.
            self.front_at = start;
            self.front_state = state_before;
            self.front = Some(EntrySummary {
                newest_ms,
                readings: match input {
                    TapeInput::Readings { readings, .. } => readings.len(),
                    TapeInput::Clock(_) => 0,
                },
                is_readings: matches!(input, TapeInput::Readings { .. }),
                end: block.len(),
                state_after: self.writer,
            });
        }
        self.trim();
    }

    /// Drops the oldest entries while the tape is over a bound.
    fn trim(&mut self) {
        let horizon_start = self.newest_ms.saturating_sub(self.limits.horizon_ms);
        while let Some(front) = self.front {
            let beyond_horizon = front.newest_ms > TimeMs::MIN && front.newest_ms < horizon_start;
            if self.readings <= self.limits.max_readings
                && self.bytes <= self.limits.max_bytes
                && !beyond_horizon
            {
                break;
            }
            self.drop_front(front);
        }
    }

    fn drop_front(&mut self, front: EntrySummary) {
        self.entries -= 1;
        self.readings -= front.readings;
        if front.is_readings && front.newest_ms > TimeMs::MIN {
            let before = self
                .dropped_before_ms
                .map_or(front.newest_ms, |t| t.max(front.newest_ms));
            self.dropped_before_ms = Some(before);
        }
        self.front_at = front.end;
        self.front_state = front.state_after;
        let first_done = self
            .blocks
            .front()
            .is_some_and(|block| self.front_at >= block.len());
        if first_done {
            if let Some(block) = self.blocks.pop_front() {
                self.bytes -= block.len();
            }
            self.front_at = 0;
            self.front_state = DeltaState::default();
        }
        self.front = self.summarise_front();
        if self.front.is_none() {
            // Nothing left (or, were the bytes damaged, nothing readable): start afresh.
            self.blocks.clear();
            self.entries = 0;
            self.readings = 0;
            self.bytes = 0;
            self.front_at = 0;
            self.front_state = DeltaState::default();
        }
    }

    /// Decodes the entry at the front cursor (`None`: none left). The tape's own bytes always
    /// decode; were they damaged, the tape would be cut short there rather than panic.
    fn summarise_front(&self) -> Option<EntrySummary> {
        let block = self.blocks.front()?;
        let mut reader = Reader::new(block, 0, self.front_at);
        let mut state = self.front_state;
        let mut newest_ms = TimeMs::MIN;
        let mut readings = 0;
        let head = read_entry(&mut reader, &mut state, |reading, is_ahead, _| {
            if !is_ahead {
                readings += 1;
                newest_ms = newest_ms.max(reading.t_ms);
            }
        });
        match head {
            Ok(EntryHead::Clock(t_ms)) => Some(EntrySummary {
                newest_ms: t_ms,
                readings: 0,
                is_readings: false,
                end: reader.at,
                state_after: state,
            }),
            Ok(EntryHead::Readings { .. }) => Some(EntrySummary {
                newest_ms,
                readings,
                is_readings: true,
                end: reader.at,
                state_after: state,
            }),
            Err(e) => {
                tracing::error!(error = %e, "amendment tape unreadable: its older inputs are lost");
                None
            }
        }
    }

    /// The kept inputs, oldest first, decoded one at a time (for a re-run).
    pub fn entries(&self) -> TapeEntries<'_> {
        TapeEntries {
            tape: self,
            block: 0,
            at: self.front_at,
            state: self.front_state,
            left: if self.front.is_some() {
                self.entries
            } else {
                0
            },
        }
    }

    /// How many inputs are kept.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Readings kept (not counting `clock_ahead` ones held beside them).
    pub fn readings(&self) -> usize {
        self.readings
    }

    /// Bytes held: every block the kept entries are in, whole.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Outputs starting at or after this are re-evaluated in full (`TimeMs::MIN`: all). A day of
    /// margin after the last dropped input, so windows open when it was dropped are left alone.
    pub fn complete_from_ms(&self) -> TimeMs {
        const MARGIN_MS: TimeMs = 24 * 60 * 60 * 1000;
        self.dropped_before_ms
            .map_or(TimeMs::MIN, |t| t.saturating_add(MARGIN_MS))
    }
}

/// See [`Tape::entries`].
pub struct TapeEntries<'a> {
    tape: &'a Tape,
    block: usize,
    at: usize,
    state: DeltaState,
    left: usize,
}

impl Iterator for TapeEntries<'_> {
    type Item = Result<TapeEntry, TapeDecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let mut bytes = self.tape.blocks.get(self.block)?;
        if self.at >= bytes.len() {
            self.block += 1;
            self.at = 0;
            self.state = DeltaState::default();
            bytes = self.tape.blocks.get(self.block)?;
        }
        let mut reader = Reader::new(bytes, self.block, self.at);
        let entry = read_entry_owned(&mut reader, &mut self.state);
        self.at = reader.at;
        self.left = if entry.is_ok() { self.left - 1 } else { 0 };
        Some(entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

// ---- The codec ----------------------------------------------------------------------------
//
// Entry: a head byte — bits 0–1 the kind (0 clock, 1 readings); for readings bits 2–5 the count
// (15: a varint count follows), bit 6 set when `clock_ahead` readings follow (then varints
// `ahead_count` and their number). Then the clock (delta of delta, zigzag varint), for readings
// `contact_ms − clock_ms` (zigzag), the readings, then the ahead ones.
//
// Reading: a head byte — bits 0–1 the body kind (position, TAC, RF, event), bits 2–3 the battery
// (0 none, 1 as the last one given, 2 a byte follows), bits 4–7 the body's flags (position:
// source in 4–5, speed present 6, heading present 7; RF: in range; event: its wire code). Then the
// time (delta of delta: a fix every minute costs a byte), the battery, and the body: position as
// zigzag deltas of latitude, longitude, precision and speed, the heading as 2 bytes (headings
// jump, deltas do not help), satellites as `value + 1` (0 absent); TAC as three zigzag deltas.
// Every delta is against the same field of the previous entry or reading in the block.

/// The previous values in a block, which the next entry's deltas are against (all zero at a
/// block's start). Arithmetic wraps, so any value round-trips, `TimeMs::MIN` included.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct DeltaState {
    clock_ms: TimeMs,
    clock_step_ms: TimeMs,
    t_ms: TimeMs,
    t_step_ms: TimeMs,
    battery_pct: Option<u8>,
    lat_e7: i32,
    lon_e7: i32,
    precision_cm: u32,
    speed_ckmh: u16,
    tac_ugdl: i32,
    ir_uv: i32,
    temp_mc: i32,
}

const ENTRY_CLOCK: u8 = 0;
const ENTRY_READINGS: u8 = 1;
/// A count in the entry head at this value is followed by the real count.
const COUNT_FOLLOWS: usize = 15;
const ENTRY_HAS_AHEAD: u8 = 1 << 6;

const BODY_POSITION: u8 = 0;
const BODY_TAC: u8 = 1;
const BODY_RF: u8 = 2;
const BODY_EVENT: u8 = 3;
const BATTERY_NONE: u8 = 0;
const BATTERY_SAME: u8 = 1;
const BATTERY_BYTE: u8 = 2;
const POSITION_SPEED: u8 = 1 << 2;
const POSITION_HEADING: u8 = 1 << 3;

/// A time as the change of its step since the last one (regular intervals cost one byte).
fn put_time(out: &mut Vec<u8>, last_ms: &mut TimeMs, last_step_ms: &mut TimeMs, t_ms: TimeMs) {
    let step_ms = t_ms.wrapping_sub(*last_ms);
    put_ivarint(out, step_ms.wrapping_sub(*last_step_ms));
    *last_ms = t_ms;
    *last_step_ms = step_ms;
}

fn put_entry(out: &mut Vec<u8>, s: &mut DeltaState, input: &TapeInput<'_>) {
    match *input {
        TapeInput::Clock(t_ms) => {
            out.push(ENTRY_CLOCK);
            put_time(out, &mut s.clock_ms, &mut s.clock_step_ms, t_ms);
        }
        TapeInput::Readings {
            clock_ms,
            readings,
            ahead,
            ahead_count,
            contact_ms,
        } => {
            let has_ahead = ahead_count > 0 || !ahead.is_empty();
            let count = readings.len().min(COUNT_FOLLOWS) as u8;
            let mut head = ENTRY_READINGS | count << 2;
            if has_ahead {
                head |= ENTRY_HAS_AHEAD;
            }
            out.push(head);
            if readings.len() >= COUNT_FOLLOWS {
                put_uvarint(out, readings.len() as u64);
            }
            if has_ahead {
                put_uvarint(out, u64::from(ahead_count));
                put_uvarint(out, ahead.len() as u64);
            }
            put_time(out, &mut s.clock_ms, &mut s.clock_step_ms, clock_ms);
            put_ivarint(out, contact_ms.wrapping_sub(clock_ms));
            for reading in readings.iter().chain(ahead) {
                put_reading(out, s, reading);
            }
        }
    }
}

fn put_reading(out: &mut Vec<u8>, s: &mut DeltaState, reading: &Reading) {
    let battery = match reading.battery_pct {
        None => BATTERY_NONE,
        Some(pct) if s.battery_pct == Some(pct) => BATTERY_SAME,
        Some(_) => BATTERY_BYTE,
    };
    let (kind, flags) = match reading.body {
        ReadingBody::Position(p) => {
            let mut flags = p.source.code();
            if p.speed_ckmh.is_some() {
                flags |= POSITION_SPEED;
            }
            if p.heading_cdeg.is_some() {
                flags |= POSITION_HEADING;
            }
            (BODY_POSITION, flags)
        }
        ReadingBody::Tac(_) => (BODY_TAC, 0),
        ReadingBody::Rf { in_range } => (BODY_RF, u8::from(in_range)),
        ReadingBody::Event(event) => (BODY_EVENT, event.code()),
    };
    out.push(kind | battery << 2 | flags << 4);
    put_time(out, &mut s.t_ms, &mut s.t_step_ms, reading.t_ms);
    if let Some(pct) = reading.battery_pct {
        if battery == BATTERY_BYTE {
            out.push(pct);
        }
        s.battery_pct = Some(pct);
    }
    match reading.body {
        ReadingBody::Position(p) => {
            put_ivarint(out, i64::from(p.lat_e7) - i64::from(s.lat_e7));
            put_ivarint(out, i64::from(p.lon_e7) - i64::from(s.lon_e7));
            put_ivarint(out, i64::from(p.precision_cm) - i64::from(s.precision_cm));
            s.lat_e7 = p.lat_e7;
            s.lon_e7 = p.lon_e7;
            s.precision_cm = p.precision_cm;
            if let Some(speed) = p.speed_ckmh {
                put_ivarint(out, i64::from(speed) - i64::from(s.speed_ckmh));
                s.speed_ckmh = speed;
            }
            if let Some(heading) = p.heading_cdeg {
                out.extend_from_slice(&heading.to_le_bytes());
            }
            put_uvarint(out, p.satellites.map_or(0, |n| u64::from(n) + 1));
        }
        ReadingBody::Tac(tac) => {
            put_ivarint(out, i64::from(tac.tac_ugdl) - i64::from(s.tac_ugdl));
            put_ivarint(out, i64::from(tac.ir_uv) - i64::from(s.ir_uv));
            put_ivarint(out, i64::from(tac.temp_mc) - i64::from(s.temp_mc));
            s.tac_ugdl = tac.tac_ugdl;
            s.ir_uv = tac.ir_uv;
            s.temp_mc = tac.temp_mc;
        }
        ReadingBody::Rf { .. } | ReadingBody::Event(_) => {}
    }
}

/// A cursor over one block with typed errors.
struct Reader<'a> {
    bytes: &'a [u8],
    block: usize,
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], block: usize, at: usize) -> Self {
        Self { bytes, block, at }
    }

    fn invalid(&self, what: &'static str) -> TapeDecodeError {
        TapeDecodeError::Invalid {
            block: self.block,
            at: self.at,
            what,
        }
    }

    fn byte(&mut self) -> Result<u8, TapeDecodeError> {
        let byte = *self.bytes.get(self.at).ok_or(TapeDecodeError::Truncated {
            block: self.block,
            at: self.at,
        })?;
        self.at += 1;
        Ok(byte)
    }

    fn uvarint(&mut self) -> Result<u64, TapeDecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            if shift == 63 && byte > 1 {
                return Err(self.invalid("varint longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.invalid("varint longer than 64 bits"))
    }

    fn ivarint(&mut self) -> Result<i64, TapeDecodeError> {
        self.uvarint().map(unzigzag)
    }

    fn time(
        &mut self,
        last_ms: &mut TimeMs,
        last_step_ms: &mut TimeMs,
    ) -> Result<TimeMs, TapeDecodeError> {
        let step_ms = last_step_ms.wrapping_add(self.ivarint()?);
        let t_ms = last_ms.wrapping_add(step_ms);
        *last_ms = t_ms;
        *last_step_ms = step_ms;
        Ok(t_ms)
    }

    /// `last + delta`, refused unless it fits `T`.
    fn delta<T: TryFrom<i64> + Into<i64> + Copy>(
        &mut self,
        last: T,
        what: &'static str,
    ) -> Result<T, TapeDecodeError> {
        let delta = self.ivarint()?;
        let value = last
            .into()
            .checked_add(delta)
            .ok_or_else(|| self.invalid(what))?;
        T::try_from(value).map_err(|_| self.invalid(what))
    }

    fn count(&mut self, what: &'static str) -> Result<usize, TapeDecodeError> {
        let n = self.uvarint()?;
        // Every reading takes at least two bytes: a count beyond that is damage, not data.
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.bytes.len().saturating_sub(self.at))
            .ok_or_else(|| self.invalid(what))
    }
}

/// An entry's head, its readings having gone to the caller one by one.
enum EntryHead {
    Clock(TimeMs),
    Readings {
        clock_ms: TimeMs,
        ahead_count: u32,
        contact_ms: TimeMs,
    },
}

/// Decodes one entry, handing each reading to `on_reading` with whether it is a `clock_ahead`
/// one and how many of its kind are left, itself included (to size a vector once).
fn read_entry(
    r: &mut Reader<'_>,
    s: &mut DeltaState,
    mut on_reading: impl FnMut(Reading, bool, usize),
) -> Result<EntryHead, TapeDecodeError> {
    let head = r.byte()?;
    match head & 0b11 {
        ENTRY_CLOCK if head == ENTRY_CLOCK => {
            let t_ms = r.time(&mut s.clock_ms, &mut s.clock_step_ms)?;
            Ok(EntryHead::Clock(t_ms))
        }
        ENTRY_READINGS if head & 0x80 == 0 => {
            let mut count = usize::from((head >> 2) & 0x0f);
            if count == COUNT_FOLLOWS {
                count = r.count("reading count beyond the block")?;
                if count < COUNT_FOLLOWS {
                    return Err(r.invalid("short reading count written long"));
                }
            }
            let (ahead_count, ahead) = if head & ENTRY_HAS_AHEAD != 0 {
                let ahead_count = u32::try_from(r.uvarint()?)
                    .map_err(|_| r.invalid("ahead count beyond 32 bits"))?;
                (
                    ahead_count,
                    r.count("ahead reading count beyond the block")?,
                )
            } else {
                (0, 0)
            };
            let clock_ms = r.time(&mut s.clock_ms, &mut s.clock_step_ms)?;
            let contact_ms = clock_ms.wrapping_add(r.ivarint()?);
            for left in (1..=count).rev() {
                on_reading(read_reading(r, s)?, false, left);
            }
            for left in (1..=ahead).rev() {
                on_reading(read_reading(r, s)?, true, left);
            }
            Ok(EntryHead::Readings {
                clock_ms,
                ahead_count,
                contact_ms,
            })
        }
        _ => Err(r.invalid("unknown entry head")),
    }
}

fn read_entry_owned(r: &mut Reader<'_>, s: &mut DeltaState) -> Result<TapeEntry, TapeDecodeError> {
    let mut readings = Vec::new();
    let mut ahead = Vec::new();
    let head = read_entry(r, s, |reading, is_ahead, left| {
        let into = if is_ahead { &mut ahead } else { &mut readings };
        into.reserve(left);
        into.push(reading);
    })?;
    Ok(match head {
        EntryHead::Clock(t_ms) => TapeEntry::Clock(t_ms),
        EntryHead::Readings {
            clock_ms,
            ahead_count,
            contact_ms,
        } => TapeEntry::Readings {
            clock_ms,
            readings,
            ahead,
            ahead_count,
            contact_ms,
        },
    })
}

fn read_reading(r: &mut Reader<'_>, s: &mut DeltaState) -> Result<Reading, TapeDecodeError> {
    let head = r.byte()?;
    let flags = head >> 4;
    let t_ms = r.time(&mut s.t_ms, &mut s.t_step_ms)?;
    let battery_pct = match (head >> 2) & 0b11 {
        BATTERY_NONE => None,
        BATTERY_SAME => Some(
            s.battery_pct
                .ok_or_else(|| r.invalid("battery as before, none before"))?,
        ),
        BATTERY_BYTE => Some(r.byte()?),
        _ => return Err(r.invalid("unknown battery form")),
    };
    if battery_pct.is_some() {
        s.battery_pct = battery_pct;
    }
    let body = match head & 0b11 {
        BODY_POSITION => {
            let source = PositionSource::from_code(flags & 0b11)
                .ok_or_else(|| r.invalid("unknown position source"))?;
            s.lat_e7 = r.delta(s.lat_e7, "latitude beyond 32 bits")?;
            s.lon_e7 = r.delta(s.lon_e7, "longitude beyond 32 bits")?;
            s.precision_cm = r.delta(s.precision_cm, "precision beyond 32 bits")?;
            let speed_ckmh = if flags & POSITION_SPEED != 0 {
                s.speed_ckmh = r.delta(s.speed_ckmh, "speed beyond 16 bits")?;
                Some(s.speed_ckmh)
            } else {
                None
            };
            let heading_cdeg = if flags & POSITION_HEADING != 0 {
                Some(u16::from_le_bytes([r.byte()?, r.byte()?]))
            } else {
                None
            };
            let satellites = match r.uvarint()? {
                0 => None,
                n => Some(u8::try_from(n - 1).map_err(|_| r.invalid("satellites beyond 8 bits"))?),
            };
            ReadingBody::Position(Position {
                lat_e7: s.lat_e7,
                lon_e7: s.lon_e7,
                precision_cm: s.precision_cm,
                source,
                speed_ckmh,
                heading_cdeg,
                satellites,
            })
        }
        BODY_TAC if flags == 0 => {
            s.tac_ugdl = r.delta(s.tac_ugdl, "TAC beyond 32 bits")?;
            s.ir_uv = r.delta(s.ir_uv, "IR voltage beyond 32 bits")?;
            s.temp_mc = r.delta(s.temp_mc, "temperature beyond 32 bits")?;
            ReadingBody::Tac(TacSample {
                tac_ugdl: s.tac_ugdl,
                ir_uv: s.ir_uv,
                temp_mc: s.temp_mc,
            })
        }
        BODY_RF if flags <= 1 => ReadingBody::Rf {
            in_range: flags == 1,
        },
        BODY_EVENT => ReadingBody::Event(
            DeviceEvent::from_code(flags).ok_or_else(|| r.invalid("unknown device event"))?,
        ),
        _ => return Err(r.invalid("unknown reading body")),
    };
    Ok(Reading {
        t_ms,
        battery_pct,
        body,
    })
}

/// A [`Tape`] in a snapshot: its blocks as they are in memory (CBOR byte strings), so a
/// restored tape holds the same bytes and drops the same entries as the one saved.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct TapeState {
    blocks: Vec<TapeBlock>,
    /// Where the oldest kept entry starts in the first block.
    front_at: usize,
    limits: TapeLimits,
    newest_ms: TimeMs,
    dropped_before_ms: Option<TimeMs>,
}

/// One block's bytes, as a CBOR byte string (serde's default for `Vec<u8>` is an array of
/// integers).
struct TapeBlock(Vec<u8>);

impl serde::Serialize for TapeBlock {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TapeBlock {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = TapeBlock;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a tape block's bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<TapeBlock, E> {
                Ok(TapeBlock(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<TapeBlock, E> {
                Ok(TapeBlock(v))
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

impl Tape {
    pub fn save(&self) -> TapeState {
        TapeState {
            blocks: self.blocks.iter().map(|b| TapeBlock(b.clone())).collect(),
            front_at: self.front_at,
            limits: self.limits,
            newest_ms: self.newest_ms,
            dropped_before_ms: self.dropped_before_ms,
        }
    }

    /// The tape `state` was saved from. Every block is decoded once: counts and encoder state
    /// are rebuilt from the bytes, and bytes that do not decode are refused.
    pub fn restore(state: TapeState) -> Result<Self, TapeDecodeError> {
        let blocks: VecDeque<Vec<u8>> = state.blocks.into_iter().map(|b| b.0).collect();
        if blocks.iter().any(|b| b.is_empty()) {
            return Err(TapeDecodeError::State("an empty block"));
        }
        let mut tape = Tape {
            bytes: blocks.iter().map(Vec::len).sum(),
            blocks,
            limits: state.limits,
            newest_ms: state.newest_ms,
            dropped_before_ms: state.dropped_before_ms,
            ..Tape::default()
        };
        let Some(first) = tape.blocks.front() else {
            return if state.front_at == 0 {
                Ok(tape)
            } else {
                Err(TapeDecodeError::State("a front entry in no block"))
            };
        };
        // The entries dropped from the first block, skipped to find the front's decoder state.
        let mut reader = Reader::new(first, 0, 0);
        let mut front_state = DeltaState::default();
        while reader.at < state.front_at {
            read_entry(&mut reader, &mut front_state, |_, _, _| {})?;
        }
        if reader.at != state.front_at || state.front_at >= first.len() {
            return Err(TapeDecodeError::State(
                "the front is not at an entry of the first block",
            ));
        }
        let (mut entries, mut readings, mut writer) = (0, 0, DeltaState::default());
        for (index, block) in tape.blocks.iter().enumerate() {
            let (mut reader, mut state) = if index == 0 {
                (Reader::new(block, 0, state.front_at), front_state)
            } else {
                (Reader::new(block, index, 0), DeltaState::default())
            };
            while reader.at < block.len() {
                read_entry(&mut reader, &mut state, |_, is_ahead, _| {
                    readings += usize::from(!is_ahead);
                })?;
                entries += 1;
            }
            writer = state;
        }
        tape.front_at = state.front_at;
        tape.front_state = front_state;
        tape.entries = entries;
        tape.readings = readings;
        tape.writer = writer;
        tape.front = tape.summarise_front();
        Ok(tape)
    }
}

/// The key an output is upserted by: an alert's id, a sober day's (activation, order, date).
fn key_of(output: &Output) -> String {
    match output {
        Output::Alert(a) => format!("alert:{}", a.id),
        Output::SoberDay(d) => format!("day:{}:{}", d.order, d.date),
        Output::Purged { activation } => format!("purged:{activation}"),
        // Never remembered (see `remember`): the stores' share, not a rule's output.
        Output::Readings { record, .. } | Output::Activations { record, .. } => {
            format!("record:{record}")
        }
    }
}

fn activation_of(output: &Output) -> &str {
    match output {
        Output::Alert(a) => &a.activation,
        Output::SoberDay(d) => &d.activation,
        Output::Purged { activation } => activation,
        Output::Readings { activation, .. } => &activation.id,
        Output::Activations { .. } => "",
    }
}

/// When an output starts, in event time (a sober day: its date's midnight UTC, early enough).
fn start_of(output: &Output) -> TimeMs {
    match output {
        Output::Alert(a) => a.start,
        Output::SoberDay(d) => d
            .date
            .and_hms_opt(0, 0, 0)
            .map_or(TimeMs::MIN, |t| t.and_utc().timestamp_millis()),
        Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => TimeMs::MIN,
    }
}

/// The output without its amendment marks, for comparing what the rules said.
fn stripped(output: &Output) -> Output {
    let mut o = output.clone();
    match &mut o {
        Output::Alert(a) => {
            a.withdrawn = None;
            a.amended_by = None;
        }
        Output::SoberDay(d) => {
            d.withdrawn = None;
            d.amended_by = None;
        }
        Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => {}
    }
    o
}

fn is_withdrawn(output: &Output) -> bool {
    match output {
        Output::Alert(a) => a.withdrawn.is_some(),
        Output::SoberDay(d) => d.withdrawn.is_some(),
        Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => true,
    }
}

/// Every output's last state, per activation.
#[derive(Debug, Default)]
pub struct OutputMemory {
    by_activation: HashMap<String, BTreeMap<String, Output>>,
}

impl OutputMemory {
    /// A sink that remembers each output before passing it on.
    pub fn recorder<'a>(&'a mut self, inner: &'a mut dyn Sink) -> Recorder<'a> {
        Recorder {
            memory: self,
            inner,
        }
    }

    /// Forgets a purged activation's outputs.
    pub fn forget(&mut self, activation: &str) {
        self.by_activation.remove(activation);
    }

    fn remember(&mut self, output: &Output) {
        if !output.is_rule_output() {
            return;
        }
        if let Output::Purged { activation } = output {
            self.by_activation.remove(activation);
            return;
        }
        self.by_activation
            .entry(activation_of(output).to_string())
            .or_default()
            .insert(key_of(output), output.clone());
    }

    /// Compares the outputs a re-run produced (`fresh`, in order) with what the activation
    /// emitted before, and emits the differences (see the module doc).
    pub fn amend(
        &mut self,
        activation: &str,
        fresh: Vec<Output>,
        complete_from_ms: TimeMs,
        change: u64,
        reason: &str,
        sink: &mut dyn Sink,
    ) {
        let mut latest: BTreeMap<String, Output> = BTreeMap::new();
        for output in fresh.into_iter().filter(Output::is_rule_output) {
            latest.insert(key_of(&output), output);
        }
        let before = self.by_activation.remove(activation).unwrap_or_default();
        let mut after = before.clone();
        let mut emit = |output: Output, after: &mut BTreeMap<String, Output>| {
            after.insert(key_of(&output), output.clone());
            sink.emit(output, None);
        };
        for (key, new) in latest.iter() {
            if start_of(new) < complete_from_ms {
                continue;
            }
            let unchanged = before
                .get(key)
                .is_some_and(|old| !is_withdrawn(old) && stripped(old) == stripped(new));
            if unchanged {
                continue;
            }
            let mut new = new.clone();
            match &mut new {
                Output::Alert(a) => a.amended_by = Some(change),
                Output::SoberDay(d) => d.amended_by = Some(change),
                Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => {
                    continue
                }
            }
            emit(new, &mut after);
        }
        for (key, old) in before.iter() {
            if latest.contains_key(key) || is_withdrawn(old) || start_of(old) < complete_from_ms {
                continue;
            }
            let mut gone = old.clone();
            let withdrawal = Some(Withdrawal {
                change: Some(change),
                reason: reason.to_string(),
            });
            match &mut gone {
                Output::Alert(a) => a.withdrawn = withdrawal,
                Output::SoberDay(d) => d.withdrawn = withdrawal,
                Output::Purged { .. } | Output::Readings { .. } | Output::Activations { .. } => {
                    continue
                }
            }
            emit(gone, &mut after);
        }
        self.by_activation.insert(activation.to_string(), after);
    }
}

/// A remembered rule output in a snapshot (only alerts and sober days are remembered).
#[derive(serde::Serialize, serde::Deserialize)]
pub enum OutputState {
    Alert(super::snapshot::AlertRepr),
    SoberDay(crate::model::SoberDay),
}

/// An [`OutputMemory`] in a snapshot, activations and keys in order.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct OutputMemoryState(Vec<(String, Vec<(String, OutputState)>)>);

impl OutputMemory {
    pub fn save(&self) -> Result<OutputMemoryState, super::snapshot::SnapshotError> {
        use super::snapshot::{Snap, SnapshotError};
        let mut by_activation = Vec::with_capacity(self.by_activation.len());
        for (activation, outputs) in &self.by_activation {
            let mut saved = Vec::with_capacity(outputs.len());
            for (key, output) in outputs {
                let output = match output {
                    Output::Alert(a) => OutputState::Alert(a.to_repr()),
                    Output::SoberDay(d) => OutputState::SoberDay(d.clone()),
                    other => {
                        return Err(SnapshotError::Encode(format!(
                            "unexpected output remembered for '{activation}': {}",
                            key_of(other)
                        )))
                    }
                };
                saved.push((key.clone(), output));
            }
            by_activation.push((activation.clone(), saved));
        }
        by_activation.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(OutputMemoryState(by_activation))
    }

    pub fn restore(state: OutputMemoryState) -> Self {
        use super::snapshot::Snap;
        let by_activation = state
            .0
            .into_iter()
            .map(|(activation, outputs)| {
                let outputs = outputs
                    .into_iter()
                    .map(|(key, output)| {
                        let output = match output {
                            OutputState::Alert(a) => {
                                Output::Alert(crate::model::Alert::from_repr(a))
                            }
                            OutputState::SoberDay(d) => Output::SoberDay(d),
                        };
                        (key, output)
                    })
                    .collect();
                (activation, outputs)
            })
            .collect();
        Self { by_activation }
    }
}

/// See [`OutputMemory::recorder`].
pub struct Recorder<'a> {
    memory: &'a mut OutputMemory,
    inner: &'a mut dyn Sink,
}

impl Sink for Recorder<'_> {
    fn emit(&mut self, output: Output, cause_arrival_ms: Option<TimeMs>) {
        self.memory.remember(&output);
        self.inner.emit(output, cause_arrival_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Alert, AlertType};
    use crate::pipeline::partition::{Partition, PartitionInput, ReadingSlice};
    use crate::pipeline::rule::{ActivationInfo, Rule, RuleContext, RuleSet};
    use crate::pipeline::snapshot::{RuleState, RuleStateError};
    use crate::pipeline::{PipelineConfig, VecSink};
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};

    /// Monday 2 March 2026, 00:00 UTC.
    const T0_MS: TimeMs = 1_772_409_600_000;
    const MINUTE_MS: TimeMs = 60_000;
    const DAY_MS: TimeMs = 24 * 60 * MINUTE_MS;

    fn unbounded() -> TapeLimits {
        TapeLimits {
            max_readings: usize::MAX,
            max_bytes: usize::MAX,
            horizon_ms: TimeMs::MAX,
        }
    }

    fn decoded(tape: &Tape) -> Vec<TapeEntry> {
        tape.entries()
            .collect::<Result<Vec<_>, _>>()
            .expect("the tape decodes")
    }

    fn saved_bytes(tape: &Tape) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(&tape.save(), &mut out).expect("cbor");
        out
    }

    fn through_snapshot(tape: &Tape) -> Tape {
        let bytes = saved_bytes(tape);
        let state: TapeState = ciborium::from_reader(&bytes[..]).expect("cbor back");
        Tape::restore(state).expect("restores")
    }

    fn arb_body() -> impl Strategy<Value = ReadingBody> {
        prop_oneof![
            (
                any::<i32>(),
                any::<i32>(),
                any::<u32>(),
                prop::sample::select(PositionSource::ALL.to_vec()),
                any::<Option<u16>>(),
                any::<Option<u16>>(),
                any::<Option<u8>>(),
            )
                .prop_map(
                    |(lat_e7, lon_e7, precision_cm, source, speed, heading, sats)| {
                        ReadingBody::Position(Position {
                            lat_e7,
                            lon_e7,
                            precision_cm,
                            source,
                            speed_ckmh: speed,
                            heading_cdeg: heading,
                            satellites: sats,
                        })
                    }
                ),
            (any::<i32>(), any::<i32>(), any::<i32>()).prop_map(|(tac_ugdl, ir_uv, temp_mc)| {
                ReadingBody::Tac(TacSample {
                    tac_ugdl,
                    ir_uv,
                    temp_mc,
                })
            }),
            any::<bool>().prop_map(|in_range| ReadingBody::Rf { in_range }),
            prop::sample::select(DeviceEvent::ALL.to_vec()).prop_map(ReadingBody::Event),
        ]
    }

    /// Times both extreme and realistic (near a base, so deltas are small and the one-byte
    /// paths are taken too).
    fn arb_time() -> impl Strategy<Value = TimeMs> {
        prop_oneof![
            any::<i64>(),
            (0i64..10_000).prop_map(|m| T0_MS + m * MINUTE_MS),
            Just(TimeMs::MIN),
            Just(TimeMs::MAX),
        ]
    }

    fn arb_reading() -> impl Strategy<Value = Reading> {
        (
            arb_time(),
            prop_oneof![Just(None), Just(Some(80u8)), any::<Option<u8>>()],
            arb_body(),
        )
            .prop_map(|(t_ms, battery_pct, body)| Reading {
                t_ms,
                battery_pct,
                body,
            })
    }

    fn arb_entry() -> impl Strategy<Value = TapeEntry> {
        prop_oneof![
            arb_time().prop_map(TapeEntry::Clock),
            (
                arb_time(),
                prop::collection::vec(arb_reading(), 0..40),
                prop::collection::vec(arb_reading(), 0..4),
                prop_oneof![Just(0u32), any::<u32>()],
                arb_time(),
            )
                .prop_map(|(clock_ms, readings, ahead, ahead_count, contact_ms)| {
                    TapeEntry::Readings {
                        clock_ms,
                        readings,
                        ahead,
                        ahead_count,
                        contact_ms,
                    }
                }),
        ]
    }

    /// What the tape kept before it was encoded (readings bound and horizon, entry by entry):
    /// with no byte bound the encoded tape must keep exactly this.
    fn kept_by_the_unencoded_tape(entries: &[TapeEntry], limits: TapeLimits) -> Vec<TapeEntry> {
        let mut kept: VecDeque<(&TapeEntry, TimeMs)> = VecDeque::new();
        let (mut readings, mut newest_ms) = (0, TimeMs::MIN);
        for entry in entries {
            let entry_newest_ms = match entry {
                TapeEntry::Readings { readings: r, .. } => {
                    readings += r.len();
                    let t = r.iter().map(|r| r.t_ms).max().unwrap_or(TimeMs::MIN);
                    newest_ms = newest_ms.max(t);
                    t
                }
                TapeEntry::Clock(t) => *t,
            };
            kept.push_back((entry, entry_newest_ms));
            let horizon_start = newest_ms.saturating_sub(limits.horizon_ms);
            while let Some((front, front_ms)) = kept.front() {
                let beyond = *front_ms > TimeMs::MIN && *front_ms < horizon_start;
                if readings <= limits.max_readings && !beyond {
                    break;
                }
                if let TapeEntry::Readings { readings: r, .. } = front {
                    readings -= r.len();
                }
                kept.pop_front();
            }
        }
        kept.into_iter().map(|(e, _)| e.clone()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_entry_and_reading_round_trips_exactly(entries in prop::collection::vec(arb_entry(), 0..200)) {
            // The codec alone: any values at all.
            let mut block = Vec::new();
            let mut writer = DeltaState::default();
            for entry in &entries {
                put_entry(&mut block, &mut writer, &entry.as_input());
            }
            let mut reader = Reader::new(&block, 0, 0);
            let mut state = DeltaState::default();
            for entry in &entries {
                prop_assert_eq!(&read_entry_owned(&mut reader, &mut state).expect("decodes"), entry);
            }
            prop_assert_eq!(reader.at, block.len());
            // The tape, through a snapshot too: what the unencoded tape kept, to the bit (the
            // horizon drops entries far behind a reading at `TimeMs::MAX`).
            let mut tape = Tape::new(unbounded());
            for entry in &entries {
                tape.push(entry.as_input());
            }
            let expected = kept_by_the_unencoded_tape(&entries, unbounded());
            prop_assert_eq!(&decoded(&tape), &expected);
            prop_assert_eq!(tape.len(), expected.len());
            let restored = through_snapshot(&tape);
            prop_assert_eq!(&decoded(&restored), &expected);
        }

        #[test]
        fn without_a_byte_bound_the_same_entries_are_kept_as_before_encoding(
            entries in prop::collection::vec(arb_entry(), 0..150),
            max_readings in 0usize..400,
            horizon_ms in prop_oneof![Just(DAY_MS), Just(7 * DAY_MS), any::<i64>().prop_map(|h| h.abs())],
        ) {
            let limits = TapeLimits { max_readings, max_bytes: usize::MAX, horizon_ms };
            let mut tape = Tape::new(limits);
            for entry in &entries {
                tape.push(entry.as_input());
            }
            prop_assert_eq!(decoded(&tape), kept_by_the_unencoded_tape(&entries, limits));
        }

        #[test]
        fn a_restored_tape_goes_on_to_the_same_bytes(
            entries in prop::collection::vec(arb_entry(), 1..120),
            cut in 0usize..120,
            max_bytes in 4_000usize..40_000,
            max_readings in 50usize..2_000,
        ) {
            let limits = TapeLimits { max_readings, max_bytes, horizon_ms: 3 * DAY_MS };
            let cut = cut % entries.len();
            let mut live = Tape::new(limits);
            for entry in &entries[..cut] {
                live.push(entry.as_input());
            }
            let mut restored = through_snapshot(&live);
            for entry in &entries[cut..] {
                live.push(entry.as_input());
                restored.push(entry.as_input());
            }
            prop_assert_eq!(saved_bytes(&live), saved_bytes(&restored));
            prop_assert_eq!(decoded(&live), decoded(&restored));
            prop_assert_eq!(live.complete_from_ms(), restored.complete_from_ms());
        }

        #[test]
        fn damaged_blocks_are_refused_not_a_panic(
            entries in prop::collection::vec(arb_entry(), 1..30),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut tape = Tape::new(unbounded());
            for entry in &entries {
                tape.push(entry.as_input());
            }
            let mut state = tape.save();
            for (at, byte) in flips {
                let block = &mut state.blocks[0].0;
                let i = at.index(block.len());
                block[i] ^= byte | 1;
            }
            // Either refused, or decodes to something (a flip can make another valid tape).
            if let Ok(restored) = Tape::restore(state) {
                let _ = restored.entries().count();
            }
        }
    }

    fn fix(t_ms: TimeMs, lat_e7: i32, lon_e7: i32, speed: u16) -> Reading {
        Reading {
            t_ms,
            battery_pct: Some(80),
            body: ReadingBody::Position(Position {
                lat_e7,
                lon_e7,
                precision_cm: 500,
                source: PositionSource::Gps,
                speed_ckmh: Some(speed),
                heading_cdeg: None,
                satellites: Some(9),
            }),
        }
    }

    fn readings_entry(clock_ms: TimeMs, readings: Vec<Reading>) -> TapeEntry {
        TapeEntry::Readings {
            clock_ms,
            contact_ms: clock_ms,
            readings,
            ahead: Vec::new(),
            ahead_count: 0,
        }
    }

    #[test]
    fn the_byte_budget_holds_and_drops_the_oldest_first() {
        let limits = TapeLimits {
            max_bytes: 6 * TAPE_BLOCK_BYTES,
            ..unbounded()
        };
        let mut tape = Tape::new(limits);
        let mut pushed = Vec::new();
        for m in 0..20_000 {
            let t_ms = T0_MS + m * MINUTE_MS;
            let entry = if m % 7 == 3 {
                TapeEntry::Clock(t_ms)
            } else {
                readings_entry(
                    t_ms,
                    vec![fix(
                        t_ms,
                        514_545_000 + (m as i32 % 97) * 31,
                        -25_879_000,
                        0,
                    )],
                )
            };
            tape.push(entry.as_input());
            pushed.push(entry);
            assert!(
                tape.bytes() <= limits.max_bytes,
                "{} bytes at {m}",
                tape.bytes()
            );
        }
        let kept = decoded(&tape);
        assert!(
            kept.len() < pushed.len() / 2,
            "the budget dropped nothing: {}",
            kept.len()
        );
        assert!(
            tape.bytes() > limits.max_bytes - 2 * TAPE_BLOCK_BYTES,
            "freed more than needed"
        );
        // What is kept is the newest inputs, in order: the oldest went first.
        assert_eq!(kept[..], pushed[pushed.len() - kept.len()..]);
        let last_dropped_ms = pushed[..pushed.len() - kept.len()]
            .iter()
            .rev()
            .find_map(|entry| match entry {
                TapeEntry::Readings { readings, .. } => Some(readings[0].t_ms),
                TapeEntry::Clock(_) => None,
            });
        // Outputs from a day after the last dropped reading are re-evaluated, none before.
        assert_eq!(
            Some(tape.complete_from_ms()),
            last_dropped_ms.map(|t| t + DAY_MS)
        );
        assert_eq!(tape.len(), kept.len());
    }

    #[test]
    fn clock_entries_alone_are_held_to_the_byte_budget() {
        let limits = TapeLimits {
            max_bytes: 2 * TAPE_BLOCK_BYTES,
            ..unbounded()
        };
        let mut tape = Tape::new(limits);
        for m in 0..100_000 {
            tape.push(TapeInput::Clock(T0_MS + m * 1_234));
            assert!(tape.bytes() <= limits.max_bytes);
        }
        assert!(tape.len() < 100_000);
        assert_eq!(
            decoded(&tape).last(),
            Some(&TapeEntry::Clock(T0_MS + 99_999 * 1_234))
        );
        // Clock entries dropped are not readings: nothing is excluded from re-evaluation.
        assert_eq!(tape.complete_from_ms(), TimeMs::MIN);
    }

    #[test]
    fn the_readings_bound_and_the_horizon_still_drop_entry_by_entry() {
        let mut by_count = Tape::new(TapeLimits {
            max_readings: 100,
            ..unbounded()
        });
        let mut by_time = Tape::new(TapeLimits {
            horizon_ms: DAY_MS,
            ..unbounded()
        });
        for m in 0..3_000 {
            let t_ms = T0_MS + m * MINUTE_MS;
            let entry = readings_entry(t_ms, vec![fix(t_ms, 0, 0, 0), fix(t_ms + 1, 0, 0, 0)]);
            by_count.push(entry.as_input());
            by_time.push(entry.as_input());
        }
        assert_eq!(by_count.readings(), 100);
        assert_eq!(decoded(&by_count).len(), 50);
        let oldest = |tape: &Tape| match decoded(tape).first() {
            Some(TapeEntry::Readings { readings, .. }) => readings[0].t_ms,
            other => panic!("{other:?}"),
        };
        let newest_ms = T0_MS + 2_999 * MINUTE_MS + 1;
        assert_eq!(oldest(&by_count), T0_MS + 2_950 * MINUTE_MS);
        // Every entry whose newest reading is within a day of the newest is kept, no other.
        assert!(oldest(&by_time) >= newest_ms - DAY_MS - 1);
        assert!(oldest(&by_time) - MINUTE_MS + 1 < newest_ms - DAY_MS);
    }

    /// A small generator, so the week below is the same every run.
    struct Xorshift(u64);
    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn within(&mut self, n: u64) -> i64 {
            (self.next() % n) as i64
        }
    }

    /// A normal tag's week: a GPS fix a minute (at home with ~10 m of jitter, out 18:00–21:30
    /// moving with speed and heading), a TAC sample every 30 minutes, RF at every home-unit
    /// change, a few device events a day; each fix uploaded on its own (the most entries), the
    /// clock reaching one of the activation's deadlines 6 times a day.
    fn typical_week() -> Vec<TapeEntry> {
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        let (home_lat, home_lon) = (514_545_000i32, -25_879_000i32);
        let (mut lat, mut lon) = (home_lat, home_lon);
        let mut entries = Vec::new();
        for m in 0..7 * 1440 {
            let t_ms = T0_MS + m * MINUTE_MS + rng.within(2_000);
            let minute_of_day = m % 1440;
            let away = (18 * 60..21 * 60 + 30).contains(&minute_of_day);
            let battery = Some(100 - ((m % 1440) / 20) as u8);
            let position = if away {
                lat += rng.within(4_000) as i32 - 1_000;
                lon += rng.within(6_000) as i32 - 1_500;
                Position {
                    lat_e7: lat,
                    lon_e7: lon,
                    precision_cm: 300 + rng.within(900) as u32,
                    source: PositionSource::Gps,
                    speed_ckmh: Some(rng.within(5_000) as u16),
                    heading_cdeg: Some(rng.within(36_000) as u16),
                    satellites: Some(5 + rng.within(8) as u8),
                }
            } else {
                (lat, lon) = (home_lat, home_lon);
                Position {
                    lat_e7: home_lat + rng.within(1_800) as i32 - 900,
                    lon_e7: home_lon + rng.within(2_800) as i32 - 1_400,
                    precision_cm: 500 + rng.within(2_000) as u32,
                    source: if m % 60 == 0 {
                        PositionSource::Wifi
                    } else {
                        PositionSource::Gps
                    },
                    speed_ckmh: Some(0),
                    heading_cdeg: None,
                    satellites: Some(5 + rng.within(8) as u8),
                }
            };
            let mut readings = vec![Reading {
                t_ms,
                battery_pct: battery,
                body: ReadingBody::Position(position),
            }];
            if m % 30 == 0 {
                readings.push(Reading {
                    t_ms: t_ms + 5_000,
                    battery_pct: battery,
                    body: ReadingBody::Tac(TacSample {
                        tac_ugdl: rng.within(3_000) as i32,
                        ir_uv: 1_200_000 + rng.within(100_000) as i32,
                        temp_mc: 31_000 + rng.within(2_000) as i32,
                    }),
                });
            }
            if minute_of_day == 18 * 60 || minute_of_day == 21 * 60 + 30 {
                readings.push(Reading {
                    t_ms: t_ms + 10_000,
                    battery_pct: battery,
                    body: ReadingBody::Rf { in_range: !away },
                });
            }
            if minute_of_day % 480 == 7 {
                readings.push(Reading {
                    t_ms: t_ms + 20_000,
                    battery_pct: battery,
                    body: ReadingBody::Event(DeviceEvent::Charging),
                });
            }
            let clock_ms = t_ms + 30_000 + rng.within(20_000);
            entries.push(TapeEntry::Readings {
                clock_ms,
                readings,
                ahead: Vec::new(),
                ahead_count: 0,
                contact_ms: clock_ms + rng.within(3) * 1_000,
            });
            if minute_of_day % 240 == 0 {
                entries.push(TapeEntry::Clock(clock_ms + 1));
            }
        }
        entries
    }

    #[test]
    fn a_week_of_one_minute_fixes_fits_in_the_default_budget() {
        let config = PipelineConfig::default();
        let mut tape = Tape::new(config.tape_limits());
        let week = typical_week();
        for entry in &week {
            tape.push(entry.as_input());
        }
        // Nothing dropped: every input is there and every output can be re-evaluated.
        assert_eq!(tape.len(), week.len());
        assert_eq!(tape.complete_from_ms(), TimeMs::MIN);
        assert_eq!(decoded(&tape), week);
        // With room to spare (the doc comment of `amend_max_bytes` quotes this figure).
        assert!(
            tape.bytes() * 5 < config.amend_max_bytes * 4,
            "a typical week takes {} bytes of {}",
            tape.bytes(),
            config.amend_max_bytes
        );
        println!(
            "a typical week: {} entries, {} readings, {} bytes ({:.1} per reading)",
            week.len(),
            tape.readings(),
            tape.bytes(),
            tape.bytes() as f64 / tape.readings() as f64
        );
    }

    #[test]
    fn the_byte_bound_is_set_in_the_config_files_pipeline_section() {
        let text = "[pipeline]\namend_max_bytes = 65536\namend_max_readings = 9000\n";
        let config: crate::config::ServerConfig = toml::from_str(text).expect("config");
        let limits = config.pipeline.tape_limits();
        assert_eq!((limits.max_bytes, limits.max_readings), (65_536, 9_000));
        assert_eq!(limits.horizon_ms, 7 * DAY_MS);
        assert_eq!(PipelineConfig::default().amend_max_bytes, 256 * 1024);
    }

    /// A rule that notes every reading and contact it is given, and raises an alert for each
    /// fix at or above a speed.
    struct Probe {
        min_speed_ckmh: u16,
        seen: Arc<Mutex<Vec<String>>>,
    }

    impl Probe {
        fn boxed(min_speed_ckmh: u16, seen: &Arc<Mutex<Vec<String>>>) -> RuleSet {
            RuleSet::new(vec![Box::new(Probe {
                min_speed_ckmh,
                seen: seen.clone(),
            })])
        }
    }

    impl Rule for Probe {
        fn name(&self) -> &'static str {
            "probe"
        }
        fn on_reading(&mut self, ctx: &mut RuleContext<'_>, reading: &Reading, late: bool) {
            self.seen
                .lock()
                .expect("probe log")
                .push(format!("{reading:?} late={late}"));
            let ReadingBody::Position(p) = reading.body else {
                return;
            };
            if p.speed_ckmh.unwrap_or(0) < self.min_speed_ckmh {
                return;
            }
            ctx.emit_alert(Alert {
                id: format!("probe-{}", reading.t_ms),
                alert_type: AlertType::ExclusionZoneEntry,
                code: None,
                activation: ctx.activation.id.clone(),
                person: ctx.activation.person.clone(),
                start: reading.t_ms,
                end: Some(reading.t_ms),
                late,
                zone: None,
                confidence: None,
                rule: "probe/1".into(),
                details: None,
                withdrawn: None,
                amended_by: None,
                evidence: vec![*reading],
            });
        }
        fn on_contact(&mut self, _ctx: &mut RuleContext<'_>, contact_ms: TimeMs) {
            self.seen
                .lock()
                .expect("probe log")
                .push(format!("contact {contact_ms}"));
        }
        fn save_state(&self) -> Result<RuleState, RuleStateError> {
            Ok(RuleState::Null)
        }
        fn load_state(&mut self, _state: &RuleState) -> Result<(), RuleStateError> {
            Ok(())
        }
    }

    fn activation() -> Arc<ActivationInfo> {
        Arc::new(ActivationInfo {
            id: "A1".into(),
            person: "P1".into(),
            tag: "T1".into(),
            from_ms: T0_MS - DAY_MS,
            to_ms: None,
        })
    }

    /// Two days of batches of 1–12 fixes (some out of order, some late), speeds spread so that
    /// a threshold splits them, clock advances between, and now and then `clock_ahead`
    /// readings held beside a batch.
    fn inputs() -> Vec<PartitionInput> {
        let mut rng = Xorshift(42);
        let mut inputs = Vec::new();
        let mut t_ms = T0_MS;
        for batch in 0..400 {
            let n = 1 + rng.within(12);
            let mut readings: Vec<Reading> = (0..n)
                .map(|_| {
                    t_ms += MINUTE_MS / 2 + rng.within(MINUTE_MS as u64);
                    let speed = rng.within(3_000) as u16;
                    let mut r = fix(
                        t_ms,
                        514_545_000 + rng.within(9_000) as i32,
                        -25_879_000,
                        speed,
                    );
                    if rng.within(10) == 0 {
                        r.body = ReadingBody::Tac(TacSample {
                            tac_ugdl: rng.within(40_000) as i32,
                            ir_uv: 1_000_000,
                            temp_mc: 32_000,
                        });
                    }
                    r
                })
                .collect();
            if batch % 5 == 0 {
                readings.reverse();
            }
            if batch % 17 == 0 {
                readings.push(fix(t_ms - 3 * 3_600_000, 514_545_000, -25_879_000, 2_500));
            }
            let (ahead, ahead_count) = if batch % 23 == 0 {
                (
                    vec![fix(t_ms + 5 * 3_600_000, 514_000_000, -25_000_000, 2_900)],
                    2,
                )
            } else {
                (Vec::new(), 0)
            };
            inputs.push(PartitionInput::Readings {
                activation: activation(),
                readings: ReadingSlice::Part(readings),
                ahead,
                ahead_count,
                arrival_ms: Some(t_ms),
                contact_ms: t_ms + 1_000,
            });
            inputs.push(PartitionInput::Clock {
                group: 0,
                clock_ms: t_ms + rng.within(30_000),
            });
        }
        inputs
    }

    fn rule_outputs(sink: &VecSink) -> Vec<Output> {
        sink.outputs
            .iter()
            .map(|(o, _)| o.clone())
            .filter(Output::is_rule_output)
            .collect()
    }

    fn alert_ids(outputs: &[Output]) -> Vec<String> {
        let mut ids: Vec<String> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Alert(a) if a.rule == "probe/1" => Some(a.id.clone()),
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// A partition fed [`inputs`] with a probe at `min_speed_ckmh`: its outputs and what the
    /// probe saw.
    fn run_live(min_speed_ckmh: u16) -> (Partition, Vec<Output>, Vec<String>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut partition = Partition::new(PipelineConfig::default());
        let mut sink = VecSink::default();
        partition.handle(
            PartitionInput::Register {
                activation: activation(),
                rules: Probe::boxed(min_speed_ckmh, &seen),
            },
            &mut sink,
        );
        for input in inputs() {
            partition.handle(input, &mut sink);
        }
        let seen = seen.lock().expect("probe log").clone();
        (partition, rule_outputs(&sink), seen)
    }

    fn reconfigure(partition: &mut Partition, rules: RuleSet, record: u64) -> Vec<Output> {
        let mut sink = VecSink::default();
        partition.handle(
            PartitionInput::Reconfigure {
                activation: activation(),
                rules,
                record,
                reason: "order 'O1' changed".into(),
            },
            &mut sink,
        );
        rule_outputs(&sink)
    }

    #[test]
    fn a_rerun_of_the_encoded_tape_feeds_the_rules_exactly_what_they_saw_live() {
        let (mut partition, live_outputs, live_seen) = run_live(1_000);
        assert!(live_seen.len() > 2_000, "{} calls", live_seen.len());
        assert!(alert_ids(&live_outputs).len() > 500);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reissued = reconfigure(&mut partition, Probe::boxed(1_000, &seen), 9);
        // The same readings, in the same order, with the same `late` flags and contacts.
        assert_eq!(*seen.lock().expect("probe log"), live_seen);
        // So the same rules re-issue nothing.
        assert_eq!(reissued, Vec::new());
    }

    #[test]
    fn an_amendment_after_encoding_reissues_what_the_new_rules_differ_by() {
        let (mut partition, before, _) = run_live(1_000);
        let (_, from_scratch, _) = run_live(2_000);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reissued = reconfigure(&mut partition, Probe::boxed(2_000, &seen), 9);
        let gone: Vec<String> = alert_ids(&before)
            .into_iter()
            .filter(|id| !alert_ids(&from_scratch).contains(id))
            .collect();
        assert!(!gone.is_empty());
        // Exactly the alerts a 2,000 threshold does not raise are withdrawn, naming the change.
        assert_eq!(alert_ids(&reissued), gone);
        for output in &reissued {
            let Output::Alert(a) = output else {
                panic!("only alerts are re-issued: {output:?}");
            };
            assert_eq!(
                a.withdrawn.as_ref().and_then(|w| w.change),
                Some(9),
                "{a:?}"
            );
        }
        // And back: the 1,000 threshold raises them again, marked as amended by that change.
        let again = reconfigure(&mut partition, Probe::boxed(1_000, &seen), 10);
        assert_eq!(alert_ids(&again), gone);
        assert!(again
            .iter()
            .all(|o| matches!(o, Output::Alert(a) if a.amended_by == Some(10))));
    }
}
