//! Deterministic test batches for the log's unit tests: every reading kind, content derived from
//! `(tag, seq)` so a test can rebuild what it expects to read back.

use crate::model::{Batch, DeviceEvent, Position, PositionSource, Reading, ReadingBody, TacSample};

/// A batch of `count` readings cycling through every kind.
pub fn batch(tag: &str, seq: u64, count: usize) -> Batch {
    let base_ms = 1_774_722_600_000 + seq as i64 * 60_000;
    let readings = (0..count)
        .map(|i| {
            let body = match i % 4 {
                0 => ReadingBody::Position(Position {
                    lat_e7: 514_545_000 + i as i32,
                    lon_e7: -25_879_000 - seq as i32,
                    precision_cm: 800,
                    source: PositionSource::Gps,
                    speed_ckmh: Some(410),
                    heading_cdeg: None,
                    satellites: Some(9),
                }),
                1 => ReadingBody::Tac(TacSample {
                    tac_ugdl: 20_000,
                    ir_uv: 1_500_000,
                    temp_mc: 33_000,
                }),
                2 => ReadingBody::Rf {
                    in_range: i % 8 == 2,
                },
                _ => ReadingBody::Event(DeviceEvent::StrapClosed),
            };
            Reading {
                t_ms: base_ms + i as i64 * 1000,
                battery_pct: Some((seq % 101) as u8),
                body,
            }
        })
        .collect();
    Batch {
        tag: tag.to_owned(),
        epoch: 0,
        seq,
        arrival_ms: base_ms + 5_000,
        readings,
    }
}
