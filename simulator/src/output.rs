//! Output files: the readings JSON Lines (a fast writer producing exactly the bytes
//! `TaggedReading`'s serde form produces, plus the `arrival` and `batch` fields of the formats
//! doc), the orders
//! document and the truth file. The binary readings file is written with tagstream's
//! `ReadingsFileWriter`.
//!
//! The fast writer formats fixed-point values as decimals directly: a fixed-point value n/10^k
//! converted to f64 has that decimal (trailing zeros stripped) as its shortest round-trip form, which
//! is what serde_json prints for magnitudes from 1e-5 up to 1e15; outside the range it is safe for
//! (|v| < 1e-4, non-zero) it defers to serde_json itself. A test compares both on random readings.

use chrono::{DateTime, SecondsFormat};
use std::io::Write;
use tagstream::model::{Reading, ReadingBody, TimeMs};

/// Caches the `YYYY-MM-DDT` prefix of the current day.
#[derive(Default)]
pub struct TimeCache {
    day: i64,
    prefix: Vec<u8>,
}

impl TimeCache {
    fn write(&mut self, out: &mut Vec<u8>, t_ms: TimeMs) {
        let day = t_ms.div_euclid(86_400_000);
        if self.prefix.is_empty() || day != self.day {
            self.day = day;
            self.prefix.clear();
            let text = DateTime::from_timestamp_millis(day * 86_400_000)
                .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default();
            self.prefix
                .extend_from_slice(&text.as_bytes()[..text.len().min(11)]);
        }
        if self.prefix.len() != 11 {
            out.extend_from_slice(tagstream::model::time::format_time(t_ms).as_bytes());
            return;
        }
        out.extend_from_slice(&self.prefix);
        let ms_of_day = t_ms.rem_euclid(86_400_000);
        let s = ms_of_day / 1000;
        let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
        two(out, h);
        out.push(b':');
        two(out, m);
        out.push(b':');
        two(out, sec);
        let ms = ms_of_day % 1000;
        if ms != 0 {
            out.push(b'.');
            out.push(b'0' + (ms / 100) as u8);
            out.push(b'0' + ((ms / 10) % 10) as u8);
            out.push(b'0' + (ms % 10) as u8);
        }
        out.push(b'Z');
    }
}

#[inline]
fn two(out: &mut Vec<u8>, v: i64) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

const POW10: [i64; 10] = [
    1,
    10,
    100,
    1000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// Writes `n / 10^k` exactly as serde_json writes the f64 `n as f64 / 10^k`.
#[inline]
pub fn write_fixed(out: &mut Vec<u8>, n: i64, k: usize) {
    let scale = POW10[k];
    if n != 0 && n.abs() < scale / 10_000 {
        let v = n as f64 / scale as f64;
        let _ = serde_json::to_writer(&mut *out, &v);
        return;
    }
    if n < 0 {
        out.push(b'-');
    }
    let a = n.unsigned_abs();
    let (int, mut frac) = (a / scale as u64, a % scale as u64);
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(int).as_bytes());
    out.push(b'.');
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = k;
    while frac % 10 == 0 {
        frac /= 10;
        digits -= 1;
    }
    let s = buf.format(frac);
    for _ in s.len()..digits {
        out.push(b'0');
    }
    out.extend_from_slice(s.as_bytes());
}

/// Appends one reading as a contract JSON line (with trailing newline): `TaggedReading`'s serde
/// form plus the batch's `arrival` (the pre-formatted [`arrival_field`], or empty) and the
/// `batch` number the formats doc adds, so replay keeps batch boundaries and arrival times.
/// `tag_json` is the tag id already JSON-quoted.
pub fn write_reading_line(
    out: &mut Vec<u8>,
    tc: &mut TimeCache,
    tag_json: &[u8],
    r: &Reading,
    arrival: &[u8],
    batch: u64,
) {
    let mut ib = itoa::Buffer::new();
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(r.kind().as_str().as_bytes());
    out.extend_from_slice(b"\",\"tag\":");
    out.extend_from_slice(tag_json);
    out.extend_from_slice(b",\"t\":\"");
    tc.write(out, r.t_ms);
    out.push(b'"');
    match &r.body {
        ReadingBody::Position(p) => {
            out.extend_from_slice(b",\"lat\":");
            write_fixed(out, p.lat_e7 as i64, 7);
            out.extend_from_slice(b",\"lon\":");
            write_fixed(out, p.lon_e7 as i64, 7);
            out.extend_from_slice(b",\"precision_m\":");
            write_fixed(out, p.precision_cm as i64, 2);
            out.extend_from_slice(b",\"source\":\"");
            out.extend_from_slice(p.source.as_str().as_bytes());
            out.push(b'"');
            if let Some(v) = p.speed_ckmh {
                out.extend_from_slice(b",\"speed_kmh\":");
                write_fixed(out, v as i64, 2);
            }
            if let Some(v) = p.heading_cdeg {
                out.extend_from_slice(b",\"heading_deg\":");
                write_fixed(out, v as i64, 2);
            }
            if let Some(v) = p.satellites {
                out.extend_from_slice(b",\"satellites\":");
                out.extend_from_slice(ib.format(v).as_bytes());
            }
        }
        ReadingBody::Tac(s) => {
            out.extend_from_slice(b",\"tac_gdl\":");
            write_fixed(out, s.tac_ugdl as i64, 6);
            out.extend_from_slice(b",\"ir_v\":");
            write_fixed(out, s.ir_uv as i64, 6);
            out.extend_from_slice(b",\"temp_c\":");
            write_fixed(out, s.temp_mc as i64, 3);
        }
        ReadingBody::Rf { in_range } => {
            out.extend_from_slice(if *in_range {
                b",\"in_range\":true"
            } else {
                b",\"in_range\":false"
            });
        }
        ReadingBody::Event(e) => {
            out.extend_from_slice(b",\"event\":\"");
            out.extend_from_slice(e.as_str().as_bytes());
            out.push(b'"');
        }
    }
    if let Some(b) = r.battery_pct {
        out.extend_from_slice(b",\"battery_pct\":");
        out.extend_from_slice(ib.format(b).as_bytes());
    }
    out.extend_from_slice(arrival);
    out.extend_from_slice(b",\"batch\":");
    out.extend_from_slice(ib.format(batch).as_bytes());
    out.extend_from_slice(b"}\n");
}

/// The `arrival` field of a batch's lines (when a server would have received it), written once
/// per batch: `,"arrival":"<RFC 3339>"`.
pub fn arrival_field(upload_ms: TimeMs) -> Vec<u8> {
    format!(
        ",\"arrival\":\"{}\"",
        tagstream::model::time::format_time(upload_ms)
    )
    .into_bytes()
}

/// JSON-quotes a tag id.
pub fn quote_tag(tag: &str) -> Vec<u8> {
    serde_json::to_vec(tag).unwrap_or_else(|_| b"\"\"".to_vec())
}

/// Writes JSON Lines of serialisable items.
pub fn write_jsonl<T: serde::Serialize, W: Write>(w: &mut W, items: &[T]) -> std::io::Result<()> {
    for it in items {
        serde_json::to_writer(&mut *w, it)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use tagstream::model::{DeviceEvent, Position, PositionSource, TacSample, TaggedReading};

    fn random_reading(rng: &mut Rng) -> Reading {
        let opt = |rng: &mut Rng, v: u16| rng.chance(0.8).then_some(v);
        let body = match rng.index(4) {
            0 => {
                let small = rng.chance(0.1);
                ReadingBody::Position(Position {
                    lat_e7: if small {
                        rng.int(-2000, 2000) as i32
                    } else {
                        rng.int(-900_000_000, 900_000_000) as i32
                    },
                    lon_e7: if small {
                        rng.int(-200, 200) as i32
                    } else {
                        rng.int(-1_800_000_000, 1_800_000_000) as i32
                    },
                    precision_cm: rng.int(0, 200_000) as u32,
                    source: *rng.pick(&[
                        PositionSource::Gps,
                        PositionSource::Lbs,
                        PositionSource::Wifi,
                    ]),
                    speed_ckmh: {
                        let v = rng.int(0, 20000) as u16;
                        opt(rng, v)
                    },
                    heading_cdeg: {
                        let v = rng.int(0, 35999) as u16;
                        opt(rng, v)
                    },
                    satellites: rng.chance(0.5).then(|| rng.int(0, 20) as u8),
                })
            }
            1 => ReadingBody::Tac(TacSample {
                tac_ugdl: rng.int(-20_000, 500_000) as i32,
                ir_uv: rng.int(0, 3_000_000) as i32,
                temp_mc: rng.int(-5000, 45_000) as i32,
            }),
            2 => ReadingBody::Rf {
                in_range: rng.chance(0.5),
            },
            _ => ReadingBody::Event(*rng.pick(&DeviceEvent::ALL)),
        };
        Reading {
            t_ms: 1_772_409_600_000
                + rng.int(0, 90 * 86_400) * 1000
                + if rng.chance(0.1) { rng.int(1, 999) } else { 0 },
            battery_pct: rng.chance(0.7).then(|| rng.int(0, 100) as u8),
            body,
        }
    }

    #[test]
    fn fast_writer_is_byte_identical_to_tagged_reading_serde() {
        let mut rng = Rng::new(42);
        let mut tc = TimeCache::default();
        for _ in 0..50_000 {
            let r = random_reading(&mut rng);
            let mut fast = Vec::new();
            let batch = rng.int(1, 1 << 40) as u64;
            let upload_ms = r.t_ms + rng.int(0, 3 * 86_400) * 1000;
            let arrival = arrival_field(upload_ms);
            write_reading_line(
                &mut fast,
                &mut tc,
                &quote_tag("T000042"),
                &r,
                &arrival,
                batch,
            );
            let mut slow = serde_json::to_vec(&TaggedReading {
                tag: "T000042".into(),
                reading: r,
            })
            .expect("json");
            // TaggedReading's object with the `arrival` and `batch` fields appended.
            slow.pop();
            slow.extend_from_slice(
                format!(
                    ",\"arrival\":\"{}\",\"batch\":{batch}}}\n",
                    tagstream::model::time::format_time(upload_ms)
                )
                .as_bytes(),
            );
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&slow)
            );
        }
    }
}
