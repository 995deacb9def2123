//! Block encoding: the positions of one activation in one time chunk, as compact columns.
//!
//! A block holds positions sorted by event time. Each field is its own column so that similar
//! values sit together:
//!
//! | column | encoding |
//! |---|---|
//! | count | varint |
//! | `t` | first time (zigzag varint, ms), a unit flag (ms or whole seconds), then run-length pairs `(delta in unit, run)` — a fix every minute is one pair |
//! | `lat_e7`, `lon_e7` | first value then zigzag deltas, varints |
//! | `precision_cm` | first value then zigzag deltas, varints |
//! | `speed_ckmh` | `value + 1` (0 = absent), first then zigzag deltas |
//! | `heading_cdeg` | fixed 2 bytes little-endian, `0xffff` = absent (headings jump; deltas do not help) |
//! | source, satellites, battery | run-length pairs `(code, run)`; satellites and battery as `value + 1`, 0 = absent |
//! | batch (version 2) | a flag byte (0: not known, nothing follows); then the epoch as run-length pairs `(epoch + 1, run)`, 0 = not known, and the seq as run-length pairs of zigzag deltas — a block's fixes mostly come a batch at a time, so a batch costs a pair or two |
//!
//! Version 1 blocks (before the batch column) still decode, their batches not known.
//! Checksums live with the block's reference in the manifest, not in the block.

use super::error::CodecError;
use crate::model::{BatchSeq, Position, PositionSource, Reading, ReadingBody};
use crate::varint::{put_ivarint, put_uvarint, unzigzag, zigzag};

const BLOCK_VERSION: u8 = 2;
/// Blocks written before the batch column: still read.
const BLOCK_VERSION_WITHOUT_BATCH: u8 = 1;
const HEADING_ABSENT: u16 = 0xffff;

/// A cursor over encoded bytes with typed errors.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or(CodecError::Truncated {
            at: self.pos,
            len: self.buf.len(),
        })?;
        self.pos += 1;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(CodecError::Truncated {
                at: self.pos,
                len: self.buf.len(),
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn u16_le(&mut self) -> Result<u16, CodecError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn uvarint(&mut self) -> Result<u64, CodecError> {
        let start = self.pos;
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(CodecError::VarintOverflow { at: start });
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(CodecError::VarintOverflow { at: start })
    }

    pub fn ivarint(&mut self) -> Result<i64, CodecError> {
        self.uvarint().map(unzigzag)
    }

    pub fn finish(&self) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            trailing => Err(CodecError::Trailing { trailing }),
        }
    }
}

fn source_from_code(c: u64) -> Result<PositionSource, CodecError> {
    u8::try_from(c)
        .ok()
        .and_then(PositionSource::from_code)
        .ok_or(CodecError::BadSource(c.min(255) as u8))
}

/// Run-length encodes a column of small codes as `(code, run)` varint pairs.
fn put_runs(out: &mut Vec<u8>, codes: impl Iterator<Item = u64>) {
    let mut current: Option<(u64, u64)> = None;
    for c in codes {
        current = match current {
            Some((v, run)) if v == c => Some((v, run + 1)),
            Some((v, run)) => {
                put_uvarint(out, v);
                put_uvarint(out, run);
                Some((c, 1))
            }
            None => Some((c, 1)),
        };
    }
    if let Some((v, run)) = current {
        put_uvarint(out, v);
        put_uvarint(out, run);
    }
}

/// Reads `count` values written by [`put_runs`].
fn get_runs(cur: &mut Cursor<'_>, count: usize, out: &mut Vec<u64>) -> Result<(), CodecError> {
    out.clear();
    while out.len() < count {
        let v = cur.uvarint()?;
        let run = cur.uvarint()?;
        let covered = out.len() as u64 + run;
        if run == 0 || covered > count as u64 {
            return Err(CodecError::RunMismatch {
                covered,
                count: count as u64,
            });
        }
        out.extend(std::iter::repeat_n(v, run as usize));
    }
    Ok(())
}

/// First value, then zigzag deltas.
fn put_deltas(out: &mut Vec<u8>, values: impl Iterator<Item = i64>) {
    let mut prev = 0i64;
    for v in values {
        put_ivarint(out, v.wrapping_sub(prev));
        prev = v;
    }
}

fn get_deltas(cur: &mut Cursor<'_>, count: usize, out: &mut Vec<i64>) -> Result<(), CodecError> {
    out.clear();
    let mut prev = 0i64;
    for _ in 0..count {
        prev = prev.wrapping_add(cur.ivarint()?);
        out.push(prev);
    }
    Ok(())
}

fn position(r: &Reading) -> Option<&Position> {
    match &r.body {
        ReadingBody::Position(p) => Some(p),
        _ => None,
    }
}

/// Encodes positions (already sorted by event time; non-position readings are skipped) as one
/// block, appended to `out`, their batches not known. Returns the number of positions encoded.
pub fn encode_block(readings: &[Reading], out: &mut Vec<u8>) -> usize {
    encode_block_with_batches(readings, &[], out)
}

/// [`encode_block`] with the batch of each reading (`batches` as long as `readings`; empty
/// when not known).
pub fn encode_block_with_batches(
    readings: &[Reading],
    batches: &[Option<BatchSeq>],
    out: &mut Vec<u8>,
) -> usize {
    let batch_of = |i: usize| batches.get(i).copied().flatten();
    let with_batches: Vec<(&Reading, Option<BatchSeq>)> = readings
        .iter()
        .enumerate()
        .filter(|(_, r)| position(r).is_some())
        .map(|(i, r)| (r, batch_of(i)))
        .collect();
    let items: Vec<(i64, Option<u8>, &Position)> = with_batches
        .iter()
        .filter_map(|(r, _)| position(r).map(|p| (r.t_ms, r.battery_pct, p)))
        .collect();
    out.push(BLOCK_VERSION);
    put_uvarint(out, items.len() as u64);
    let Some(first) = items.first() else {
        return 0;
    };
    let t0 = first.0;
    put_ivarint(out, t0);
    let whole_seconds = items.iter().all(|(t, _, _)| (t - t0).rem_euclid(1000) == 0);
    let unit_ms = if whole_seconds { 1000 } else { 1 };
    out.push(u8::from(whole_seconds));
    // Time deltas as (zigzag delta, run) pairs.
    put_runs(
        out,
        items
            .windows(2)
            .map(|w| zigzag((w[1].0 - w[0].0) / unit_ms)),
    );
    put_deltas(out, items.iter().map(|(_, _, p)| p.lat_e7 as i64));
    put_deltas(out, items.iter().map(|(_, _, p)| p.lon_e7 as i64));
    put_deltas(out, items.iter().map(|(_, _, p)| p.precision_cm as i64));
    put_deltas(
        out,
        items
            .iter()
            .map(|(_, _, p)| p.speed_ckmh.map_or(0, |v| v as i64 + 1)),
    );
    for (_, _, p) in &items {
        out.extend_from_slice(&p.heading_cdeg.unwrap_or(HEADING_ABSENT).to_le_bytes());
    }
    put_runs(out, items.iter().map(|(_, _, p)| p.source.code() as u64));
    put_runs(
        out,
        items
            .iter()
            .map(|(_, _, p)| p.satellites.map_or(0, |v| v as u64 + 1)),
    );
    put_runs(
        out,
        items.iter().map(|(_, b, _)| b.map_or(0, |v| v as u64 + 1)),
    );
    put_batches(out, with_batches.iter().map(|(_, b)| *b));
    items.len()
}

/// The batch column: a flag, then epochs and seq deltas as runs (see the module table).
fn put_batches(out: &mut Vec<u8>, batches: impl Iterator<Item = Option<BatchSeq>> + Clone) {
    if batches.clone().all(|b| b.is_none()) {
        out.push(0);
        return;
    }
    out.push(1);
    put_runs(
        out,
        batches
            .clone()
            .map(|b| b.map_or(0, |b| u64::from(b.epoch) + 1)),
    );
    let mut prev = 0i64;
    put_runs(
        out,
        batches.map(|b| {
            let seq = b.map_or(0, |b| b.seq as i64);
            let delta = seq.wrapping_sub(prev);
            prev = seq;
            zigzag(delta)
        }),
    );
}

/// Steps over the batch column of `n` positions, checking its runs cover them.
fn skip_batches(cur: &mut Cursor<'_>, n: usize) -> Result<(), CodecError> {
    let skip_runs = |cur: &mut Cursor<'_>| -> Result<(), CodecError> {
        let mut covered = 0u64;
        while covered < n as u64 {
            cur.uvarint()?;
            let run = cur.uvarint()?;
            covered = covered.saturating_add(run);
            if run == 0 || covered > n as u64 {
                return Err(CodecError::RunMismatch {
                    covered,
                    count: n as u64,
                });
            }
        }
        Ok(())
    };
    match cur.u8()? {
        0 => Ok(()),
        1 => {
            skip_runs(cur)?;
            skip_runs(cur)
        }
        flag => Err(CodecError::OutOfRange {
            field: "batch flag",
            value: flag as i64,
        }),
    }
}

/// Reads the batch column of `n` positions into `out` (`None` each when not known).
fn get_batches(
    cur: &mut Cursor<'_>,
    n: usize,
    out: &mut Vec<Option<BatchSeq>>,
) -> Result<(), CodecError> {
    out.clear();
    match cur.u8()? {
        0 => {
            out.resize(n, None);
            Ok(())
        }
        1 => {
            let (mut epochs, mut deltas) = (Vec::with_capacity(n), Vec::with_capacity(n));
            get_runs(cur, n, &mut epochs)?;
            get_runs(cur, n, &mut deltas)?;
            let mut seq = 0i64;
            for (epoch, delta) in epochs.iter().zip(&deltas) {
                seq = seq.wrapping_add(unzigzag(*delta));
                out.push(match epoch {
                    0 => None,
                    e => Some(BatchSeq {
                        epoch: ranged::<u32>(*e as i64 - 1, "epoch")?,
                        seq: seq as u64,
                    }),
                });
            }
            Ok(())
        }
        flag => Err(CodecError::OutOfRange {
            field: "batch flag",
            value: flag as i64,
        }),
    }
}

fn opt_u8(code: u64, field: &'static str) -> Result<Option<u8>, CodecError> {
    match code {
        0 => Ok(None),
        1..=256 => Ok(Some((code - 1) as u8)),
        _ => Err(CodecError::OutOfRange {
            field,
            value: code as i64,
        }),
    }
}

fn ranged<T: TryFrom<i64>>(v: i64, field: &'static str) -> Result<T, CodecError> {
    T::try_from(v).map_err(|_| CodecError::OutOfRange { field, value: v })
}

/// Decodes a block written by [`encode_block`], appending its positions to `out`.
pub fn decode_block(buf: &[u8], out: &mut Vec<Reading>) -> Result<(), CodecError> {
    decode_block_into(buf, out, None)
}

/// [`decode_block`], and the batch of each position appended to `batches` (`None` when the
/// block does not know it).
pub fn decode_block_with_batches(
    buf: &[u8],
    out: &mut Vec<Reading>,
    batches: &mut Vec<Option<BatchSeq>>,
) -> Result<(), CodecError> {
    decode_block_into(buf, out, Some(batches))
}

fn decode_block_into(
    buf: &[u8],
    out: &mut Vec<Reading>,
    batches_out: Option<&mut Vec<Option<BatchSeq>>>,
) -> Result<(), CodecError> {
    let mut cur = Cursor::new(buf);
    let version = cur.u8()?;
    if version != BLOCK_VERSION && version != BLOCK_VERSION_WITHOUT_BATCH {
        return Err(CodecError::BadVersion(version));
    }
    let n = cur.uvarint()? as usize;
    if n == 0 {
        return cur.finish();
    }
    // Every position takes at least 2 heading bytes: refuse counts the buffer cannot hold.
    if n > buf.len() / 2 {
        return Err(CodecError::Truncated {
            at: buf.len(),
            len: n * 2,
        });
    }
    let t0 = cur.ivarint()?;
    let unit_ms: i64 = if cur.u8()? == 1 { 1000 } else { 1 };
    let mut codes = Vec::with_capacity(n);
    get_runs(&mut cur, n - 1, &mut codes)?;
    let mut times = Vec::with_capacity(n);
    let mut t = t0;
    times.push(t);
    for c in &codes {
        t = t.wrapping_add(unzigzag(*c).wrapping_mul(unit_ms));
        times.push(t);
    }
    let (mut lat, mut lon, mut prec, mut speed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    get_deltas(&mut cur, n, &mut lat)?;
    get_deltas(&mut cur, n, &mut lon)?;
    get_deltas(&mut cur, n, &mut prec)?;
    get_deltas(&mut cur, n, &mut speed)?;
    let mut heading = Vec::with_capacity(n);
    for _ in 0..n {
        heading.push(cur.u16_le()?);
    }
    let (mut source, mut sats, mut battery) = (Vec::new(), Vec::new(), Vec::new());
    get_runs(&mut cur, n, &mut source)?;
    get_runs(&mut cur, n, &mut sats)?;
    get_runs(&mut cur, n, &mut battery)?;
    match (version, batches_out) {
        (BLOCK_VERSION_WITHOUT_BATCH, Some(batches_out)) => {
            batches_out.extend(std::iter::repeat_n(None, n))
        }
        (BLOCK_VERSION_WITHOUT_BATCH, None) => {}
        (_, Some(batches_out)) => {
            let mut batches = Vec::with_capacity(n);
            get_batches(&mut cur, n, &mut batches)?;
            batches_out.extend_from_slice(&batches);
        }
        // Crime matching reads positions only: the column is checked, not kept.
        (_, None) => skip_batches(&mut cur, n)?,
    }
    cur.finish()?;
    out.reserve(n);
    for i in 0..n {
        let speed_ckmh = match speed[i] {
            0 => None,
            v => Some(ranged::<u16>(v - 1, "speed_ckmh")?),
        };
        out.push(Reading {
            t_ms: times[i],
            battery_pct: opt_u8(battery[i], "battery_pct")?,
            body: ReadingBody::Position(Position {
                lat_e7: ranged(lat[i], "lat_e7")?,
                lon_e7: ranged(lon[i], "lon_e7")?,
                precision_cm: ranged(prec[i], "precision_cm")?,
                source: source_from_code(source[i])?,
                speed_ckmh,
                heading_cdeg: (heading[i] != HEADING_ABSENT).then_some(heading[i]),
                satellites: opt_u8(sats[i], "satellites")?,
            }),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fix(t_ms: i64, lat_e7: i32, lon_e7: i32) -> Reading {
        Reading {
            t_ms,
            battery_pct: Some(80),
            body: ReadingBody::Position(Position {
                lat_e7,
                lon_e7,
                precision_cm: 500,
                source: PositionSource::Gps,
                speed_ckmh: Some(400),
                heading_cdeg: Some(9000),
                satellites: Some(9),
            }),
        }
    }

    #[test]
    fn varints_round_trip_extremes() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN, 1 << 40] {
            let mut out = Vec::new();
            put_ivarint(&mut out, v);
            assert_eq!(Cursor::new(&out).ivarint().unwrap(), v);
        }
        let bad = [0xffu8; 11];
        assert!(matches!(
            Cursor::new(&bad).uvarint(),
            Err(CodecError::VarintOverflow { .. })
        ));
    }

    #[test]
    fn a_regular_hour_is_small() {
        let readings: Vec<Reading> = (0..60)
            .map(|i| {
                fix(
                    1_700_000_000_000 + i * 60_000,
                    515_000_000 + i as i32 * 700,
                    -1_000_000 - i as i32 * 300,
                )
            })
            .collect();
        let mut out = Vec::new();
        assert_eq!(encode_block(&readings, &mut out), 60);
        assert!(out.len() < 60 * 9, "{} bytes", out.len());
        let mut back = Vec::new();
        decode_block(&out, &mut back).unwrap();
        assert_eq!(back, readings);
    }

    #[test]
    fn empty_and_truncated_blocks() {
        let mut out = Vec::new();
        encode_block(&[], &mut out);
        let mut back = Vec::new();
        decode_block(&out, &mut back).unwrap();
        assert!(back.is_empty());
        let mut out = Vec::new();
        encode_block(&[fix(0, 1, 2), fix(1500, 3, 4)], &mut out);
        for cut in 0..out.len() {
            assert!(
                decode_block(&out[..cut], &mut Vec::new()).is_err(),
                "cut at {cut}"
            );
        }
    }

    fn arb_reading() -> impl Strategy<Value = Reading> {
        (
            -4_000_000_000_000i64..4_000_000_000_000,
            proptest::option::of(any::<u8>()),
            -900_000_000i32..=900_000_000,
            -1_800_000_000i32..=1_800_000_000,
            any::<u32>(),
            0usize..3,
            proptest::option::of(any::<u16>()),
            proptest::option::of(0u16..36000),
            proptest::option::of(any::<u8>()),
        )
            .prop_map(
                |(
                    t_ms,
                    battery_pct,
                    lat_e7,
                    lon_e7,
                    precision_cm,
                    s,
                    speed_ckmh,
                    heading_cdeg,
                    satellites,
                )| Reading {
                    t_ms,
                    battery_pct,
                    body: ReadingBody::Position(Position {
                        lat_e7,
                        lon_e7,
                        precision_cm,
                        source: PositionSource::ALL[s],
                        speed_ckmh,
                        heading_cdeg,
                        satellites,
                    }),
                },
            )
    }

    proptest! {
        #[test]
        fn any_sorted_positions_round_trip(mut readings in proptest::collection::vec(arb_reading(), 0..80)) {
            readings.sort_by_key(|r| r.t_ms);
            let mut out = Vec::new();
            encode_block(&readings, &mut out);
            let mut back = Vec::new();
            decode_block(&out, &mut back).unwrap();
            prop_assert_eq!(back, readings);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_block(&bytes, &mut Vec::new());
            let _ = decode_block_with_batches(&bytes, &mut Vec::new(), &mut Vec::new());
        }

        #[test]
        fn positions_round_trip_with_their_batches(
            mut items in proptest::collection::vec(
                (arb_reading(), proptest::option::of((any::<u32>(), any::<u64>()))),
                0..80,
            )
        ) {
            items.sort_by_key(|(r, _)| r.t_ms);
            let readings: Vec<Reading> = items.iter().map(|(r, _)| *r).collect();
            let batches: Vec<Option<BatchSeq>> = items
                .iter()
                .map(|(_, b)| b.map(|(epoch, seq)| BatchSeq { epoch, seq }))
                .collect();
            let mut out = Vec::new();
            encode_block_with_batches(&readings, &batches, &mut out);
            let (mut back, mut back_batches) = (Vec::new(), Vec::new());
            decode_block_with_batches(&out, &mut back, &mut back_batches).unwrap();
            prop_assert_eq!(&back, &readings);
            prop_assert_eq!(back_batches, batches);
            // Without the batches: the same positions, the column checked and skipped.
            let mut plain = Vec::new();
            decode_block(&out, &mut plain).unwrap();
            prop_assert_eq!(plain, readings);
        }
    }

    #[test]
    fn batches_cost_a_pair_or_two_each_and_version_1_blocks_still_read() {
        // An hour of fixes a minute apart, six batches of ten.
        let readings: Vec<Reading> = (0..60).map(|i| fix(i * 60_000, i as i32, 0)).collect();
        let batches: Vec<Option<BatchSeq>> = (0..60)
            .map(|i| {
                Some(BatchSeq {
                    epoch: 0,
                    seq: 1000 + i as u64 / 10,
                })
            })
            .collect();
        let (mut with, mut without) = (Vec::new(), Vec::new());
        encode_block_with_batches(&readings, &batches, &mut with);
        encode_block(&readings, &mut without);
        assert!(
            with.len() <= without.len() + 30,
            "{} vs {}",
            with.len(),
            without.len()
        );
        let (mut back, mut back_batches) = (Vec::new(), Vec::new());
        decode_block_with_batches(&with, &mut back, &mut back_batches).unwrap();
        assert_eq!(back_batches, batches);

        // A version 1 block: the same columns, no batch column after them.
        let mut v1 = without.clone();
        assert_eq!(v1.pop(), Some(0), "the empty batch column is one flag byte");
        v1[0] = BLOCK_VERSION_WITHOUT_BATCH;
        let (mut back, mut back_batches) = (Vec::new(), Vec::new());
        decode_block_with_batches(&v1, &mut back, &mut back_batches).unwrap();
        assert_eq!(back, readings);
        assert_eq!(back_batches, vec![None; 60]);
        // A flag that is neither 0 nor 1 is refused.
        let mut bad = without;
        *bad.last_mut().unwrap() = 7;
        assert!(decode_block(&bad, &mut Vec::new()).is_err());
    }
}
