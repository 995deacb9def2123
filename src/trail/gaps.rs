//! Missing data: a gap of more than 5 minutes (configurable) between consecutive fixes.
//!
//! Each position is flagged when the gap before it exceeds the limit; sequence labels (A1, A2…,
//! a new letter after each gap) give reviewers a handle on each stretch of continuous data.

use super::fixes;
use crate::model::{Reading, TimeMs};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GapConfig {
    /// A gap strictly longer than this between consecutive fixes is missing data.
    pub max_gap_ms: TimeMs,
}

impl Default for GapConfig {
    fn default() -> Self {
        GapConfig {
            max_gap_ms: 5 * 60_000,
        }
    }
}

/// For each position (in order), whether the gap since the previous position exceeds the limit.
/// The first position is not flagged.
pub fn gap_flags(readings: &[Reading], cfg: &GapConfig) -> Vec<bool> {
    let f = fixes(readings);
    let mut out = Vec::with_capacity(f.len());
    for (i, fix) in f.iter().enumerate() {
        out.push(i > 0 && fix.t_ms - f[i - 1].t_ms > cfg.max_gap_ms);
    }
    out
}

/// Letters for a stretch number: A…Z, then AA, AB…
fn letters(mut n: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// A label per position: the letter of its stretch (a new letter after each gap) and its
/// number within the stretch, e.g. `A1, A2, B1`.
pub fn sequence_labels(readings: &[Reading], cfg: &GapConfig) -> Vec<String> {
    let mut stretch = 0usize;
    let mut n = 0usize;
    gap_flags(readings, cfg)
        .into_iter()
        .enumerate()
        .map(|(i, gap)| {
            if gap && i > 0 {
                stretch += 1;
                n = 0;
            }
            n += 1;
            format!("{}{n}", letters(stretch))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Position, PositionSource, ReadingBody};

    fn at(t_min: i64) -> Reading {
        Reading {
            t_ms: t_min * 60_000,
            battery_pct: None,
            body: ReadingBody::Position(Position {
                lat_e7: 0,
                lon_e7: 0,
                precision_cm: 500,
                source: PositionSource::Gps,
                speed_ckmh: None,
                heading_cdeg: None,
                satellites: None,
            }),
        }
    }

    #[test]
    fn exactly_five_minutes_is_not_a_gap() {
        let trail = [at(0), at(1), at(6), at(12), at(13)];
        assert_eq!(
            gap_flags(&trail, &GapConfig::default()),
            [false, false, false, true, false]
        );
        assert_eq!(
            sequence_labels(&trail, &GapConfig::default()),
            ["A1", "A2", "A3", "B1", "B2"]
        );
    }

    #[test]
    fn letters_go_past_z() {
        assert_eq!(letters(0), "A");
        assert_eq!(letters(25), "Z");
        assert_eq!(letters(26), "AA");
        assert_eq!(letters(27), "AB");
    }
}
