//! The hit rule (`hits/3`): does an activation's trail come within a crime's vicinity during the
//! crime's window, how surely, and with what evidence. One pure function, [`evaluate`], of a
//! crime version and the activation's positions around the window; the live matcher, the daily
//! (retrospective) batch matcher and `tagstream replay` all call it, so they agree byte for byte.
//!
//! - The path counts, not just the fixes: consecutive fixes at most `max_gap_s` apart are joined
//!   by a straight segment, clipped to the window, so a walk-past between two sparse fixes that
//!   are both outside the vicinity is a hit.
//! - A point of the path qualifies when its confidence circle overlaps the vicinity
//!   (`distance − precision ≤ radius`; precision along a segment is interpolated between its
//!   fixes). The hit is `certain` when some *fix*'s whole confidence circle is inside the vicinity
//!   (`distance + precision ≤ radius`), that fix not being an outlier (a spike away from both
//!   neighbours and back; the neighbours judging it are the nearest fixes at least as precise as
//!   the vicinity radius, so a Wi-Fi or LBS fix in between does not hide a spike — the change
//!   from `hits/2`); otherwise `possible` (including a walk-past seen only between fixes:
//!   the straight line is an assumption, not a measurement). Fixes less precise than
//!   `max_precision_m` never qualify.
//! - A hit none of whose qualifying points rests on a GPS fix at both ends is `weaker_evidence`
//!   (LBS and Wi-Fi fixes place a person far less surely).
//! - Closest approach and time inside are measured on the path itself (precision aside).
//!
//! [`index`] holds the crime R-tree the live matcher queries with each new position.

pub mod geometry;
pub mod index;
mod labels;

use crate::model::time::format_time;
use crate::model::{
    hit_id, Certainty, CrimeVersion, Hit, HitAlgorithm, HitPosition, Position, PositionSource,
    Reading, ReadingBody, TimeMs,
};
use crate::rules::geodesy::LocalProjection;
use geometry::{PathPoint, Segment};
pub use labels::sequence_labels;
use serde::{Deserialize, Serialize};

/// The rule's name and version, recorded on every hit.
pub const ALGORITHM: &str = "hits/3";

/// Parameters of the hit rule (`[rules.hits]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HitsConfig {
    /// Default vicinity radius; an import may set its own.
    pub radius_m: f64,
    /// Fixes further apart than this are not joined by a path (a signal loss, not a walk).
    pub max_gap_s: i64,
    /// Evidence includes positions this long before and after the window (at least `max_gap_s`,
    /// so every segment that reaches into the window has both its ends in the evidence).
    pub margin_s: i64,
    /// Fixes whose confidence radius is larger than this never make a hit.
    pub max_precision_m: f64,
    /// A gap longer than this starts a new sequence letter (A1, A2, … B1).
    pub label_gap_s: i64,
}

impl Default for HitsConfig {
    fn default() -> Self {
        HitsConfig {
            radius_m: 100.0,
            max_gap_s: 15 * 60,
            margin_s: 30 * 60,
            max_precision_m: 200.0,
            label_gap_s: 5 * 60,
        }
    }
}

impl HitsConfig {
    /// The evidence margin actually used: never shorter than the path gap limit.
    pub fn evidence_margin_ms(&self) -> TimeMs {
        self.margin_s.max(self.max_gap_s) * 1000
    }

    /// Half-size in metres of the box around a crime that any qualifying point must fall in.
    pub fn reach_m(&self, radius_m: f64) -> f64 {
        radius_m + self.max_precision_m
    }

    /// The positions a hit on `crime` depends on: `[from − margin, to + margin]`.
    pub fn evidence_window(&self, crime: &CrimeVersion) -> (TimeMs, TimeMs) {
        let m = self.evidence_margin_ms();
        (crime.from_ms - m, crime.to_ms + m)
    }

    fn algorithm(&self, radius_m: f64) -> HitAlgorithm {
        HitAlgorithm {
            name: ALGORITHM.to_string(),
            radius_m,
            max_gap_s: self.max_gap_s,
            margin_s: self.evidence_margin_ms() / 1000,
            max_precision_m: self.max_precision_m,
            label_gap_s: self.label_gap_s,
        }
    }
}

/// A fix of the evidence, projected.
struct Fix<'a> {
    point: PathPoint,
    position: &'a Position,
}

/// What a qualifying piece of path found.
#[derive(Default)]
struct Verdict {
    qualifies: bool,
    certain: bool,
    gps_backed: bool,
    closest: Option<(f64, TimeMs)>,
    inside_ms: f64,
}

impl Verdict {
    fn closer(&mut self, d_m: f64, t_ms: TimeMs) {
        if self.closest.is_none_or(|(best, _)| d_m < best) {
            self.closest = Some((d_m, t_ms));
        }
    }
}

/// The fixes of `positions` in `[from_ms, to_ms]`, projected around the crime, in a canonical
/// order (time, then position and precision) without exact duplicates, whatever order the
/// source kept ties in.
fn project<'a>(
    crime: &CrimeVersion,
    positions: &'a [Reading],
    from_ms: TimeMs,
    to_ms: TimeMs,
) -> Vec<Fix<'a>> {
    let key = |r: &Reading| match &r.body {
        ReadingBody::Position(p) => (r.t_ms, p.lat_e7, p.lon_e7, p.precision_cm, p.source),
        _ => (r.t_ms, 0, 0, 0, PositionSource::Gps),
    };
    let in_range = |r: &&Reading| {
        r.t_ms >= from_ms && r.t_ms <= to_ms && matches!(r.body, ReadingBody::Position(_))
    };
    let projection = LocalProjection::new(crime.lat, crime.lon);
    let fix = |r: &'a Reading| match &r.body {
        ReadingBody::Position(p) => {
            let (x_m, y_m) = projection.to_xy(p.lat(), p.lon());
            Some(Fix {
                point: PathPoint {
                    t_ms: r.t_ms,
                    x_m,
                    y_m,
                    precision_m: p.precision_m(),
                },
                position: p,
            })
        }
        _ => None,
    };
    // The usual case, already in canonical order without duplicates: project straight away.
    let ordered = positions
        .iter()
        .filter(in_range)
        .map(key)
        .is_sorted_by(|a, b| a < b);
    if ordered {
        return positions.iter().filter(in_range).filter_map(fix).collect();
    }
    let mut window: Vec<&Reading> = positions.iter().filter(in_range).collect();
    window.sort_by_key(|r| key(r));
    window.dedup_by(|a, b| a == b);
    window.into_iter().filter_map(fix).collect()
}

/// Whether the trail qualifies for a hit at all: the verdict of [`evaluate`] without building
/// the evidence. Only positions within `max_gap_s` of the window can matter, so a caller may
/// pass just those (the retrospective matcher does, then reads the evidence only for hits).
pub fn qualifies(crime: &CrimeVersion, positions: &[Reading], config: &HitsConfig) -> bool {
    let gap_ms = config.max_gap_s * 1000;
    let fixes = project(
        crime,
        positions,
        crime.from_ms - gap_ms,
        crime.to_ms + gap_ms,
    );
    judge(crime, &fixes, config).qualifies
}

/// Evaluates the hit of `crime` on one activation. `positions` are the activation's readings
/// (any kind; only positions count) sorted by event time; only those inside the evidence window
/// are used, so passing more is harmless. `None` when the trail never came near enough.
pub fn evaluate(
    crime: &CrimeVersion,
    activation: &str,
    person: &str,
    positions: &[Reading],
    config: &HitsConfig,
) -> Option<Hit> {
    let (ev_from, ev_to) = config.evidence_window(crime);
    let fixes = project(crime, positions, ev_from, ev_to);
    let verdict = judge(crime, &fixes, config);
    if !verdict.qualifies {
        return None;
    }
    let (closest_m, closest_t) = verdict.closest?;
    let times: Vec<TimeMs> = fixes.iter().map(|f| f.point.t_ms).collect();
    let labels = sequence_labels(&times, config.label_gap_s * 1000);
    let evidence = fixes
        .iter()
        .zip(labels)
        .map(|(f, label)| HitPosition {
            label,
            t: f.point.t_ms,
            lat: f.position.lat(),
            lon: f.position.lon(),
            precision_m: f.position.precision_m(),
            source: f.position.source,
            speed_kmh: f.position.speed_ckmh.map(|v| v as f64 / 100.0),
            heading_deg: f.position.heading_cdeg.map(|v| v as f64 / 100.0),
            in_window: f.point.t_ms >= crime.from_ms && f.point.t_ms <= crime.to_ms,
            distance_m: round_dm(f.point.distance_m()),
        })
        .collect();
    Some(Hit {
        id: hit_id(&crime.key(), activation),
        force: crime.force.clone(),
        batch_id: crime.batch_id.clone(),
        crime_ref: crime.crime_ref.clone(),
        crime_version: crime.version,
        activation: activation.to_string(),
        person: person.to_string(),
        certainty: if verdict.certain {
            Certainty::Certain
        } else {
            Certainty::Possible
        },
        closest_m: round_dm(closest_m),
        closest_t,
        inside_s: (verdict.inside_ms / 1000.0).round() as i64,
        positions: evidence,
        algorithm: config.algorithm(crime.radius_m),
        crime_type: crime.crime_type.clone(),
        crime_from: crime.from_ms,
        crime_to: crime.to_ms,
        crime_lat: crime.lat,
        crime_lon: crime.lon,
        radius_m: crime.radius_m,
        weaker_evidence: !verdict.gps_backed,
    })
}

/// Walks the fixes and the segments between them inside the window.
fn judge(crime: &CrimeVersion, fixes: &[Fix], config: &HitsConfig) -> Verdict {
    let r = crime.radius_m;
    let max_gap_ms = config.max_gap_s * 1000;
    let usable = |f: &Fix| f.point.precision_m <= config.max_precision_m;
    let mut v = Verdict::default();
    for (i, f) in fixes.iter().enumerate() {
        let in_window = f.point.t_ms >= crime.from_ms && f.point.t_ms <= crime.to_ms;
        if in_window {
            let d = f.point.distance_m();
            if usable(f) && d - f.point.precision_m <= r {
                v.qualifies = true;
                v.certain |= d + f.point.precision_m <= r && !is_spike(fixes, i, max_gap_ms, r);
                v.gps_backed |= f.position.source == PositionSource::Gps;
                v.closer(d, f.point.t_ms);
            }
        }
        let Some(next) = fixes.get(i + 1) else {
            continue;
        };
        if next.point.t_ms - f.point.t_ms > max_gap_ms || !usable(f) || !usable(next) {
            continue;
        }
        let Some(seg) = Segment::clipped(f.point, next.point, crime.from_ms, crime.to_ms) else {
            continue;
        };
        // Cheap rejection first: along the segment d ≥ its closest distance and p ≤ the larger
        // end precision, so most segments far from the crime never need the search below.
        let closest = seg.at(seg.closest_s());
        let (d_closest, p_closest) = (closest.distance_m(), closest.precision_m);
        let p_max = f.point.precision_m.max(next.point.precision_m);
        // The closest point often settles both questions; the search is for the rest.
        if d_closest - p_max > r
            || (d_closest - p_closest > r && seg.min_distance_with_precision(-1.0) > r)
        {
            continue;
        }
        // A point between fixes has no confidence circle of its own: the path there makes a
        // hit possible, never certain.
        v.qualifies = true;
        v.gps_backed |=
            f.position.source == PositionSource::Gps && next.position.source == PositionSource::Gps;
        v.closer(d_closest, closest.t_ms);
        v.inside_ms += seg.time_inside_ms(r);
    }
    v
}

/// A fix that jumps away from both its neighbours and back (they are close to each other, it is
/// far from both, further than their confidence allows): a GPS outlier, which must not make a
/// hit certain on its own. The neighbours are the nearest fixes either side, within `max_gap_ms`,
/// precise enough to judge a jump at the vicinity's scale (precision at most `radius_m`): a Wi-Fi
/// or LBS fix in between says nothing about it, and taking one as the neighbour would widen the
/// allowed jump to hundreds of metres (simulator, seed 33: a 213 m multipath fix indoors, between
/// a Wi-Fi fix of 142 m and a GPS fix, made a false certain hit).
fn is_spike(fixes: &[Fix], i: usize, max_gap_ms: i64, radius_m: f64) -> bool {
    let f = &fixes[i];
    let judges = |n: &&Fix| n.point.precision_m <= radius_m;
    let near = |n: &&Fix| (n.point.t_ms - f.point.t_ms).abs() <= max_gap_ms;
    let prev = fixes[..i].iter().rev().take_while(near).find(judges);
    let next = fixes[i + 1..].iter().take_while(near).find(judges);
    let (Some(prev), Some(next)) = (prev, next) else {
        return false;
    };
    let dist = |a: &PathPoint, b: &PathPoint| (a.x_m - b.x_m).hypot(a.y_m - b.y_m);
    let (out, back, across) = (
        dist(&prev.point, &f.point),
        dist(&f.point, &next.point),
        dist(&prev.point, &next.point),
    );
    let slack_m = (2.0
        * (f.point.precision_m + prev.point.precision_m.max(next.point.precision_m)))
    .max(SPIKE_MIN_M);
    out > slack_m && back > slack_m && across < 0.5 * out.min(back)
}

/// A jump shorter than this is never called an outlier.
const SPIKE_MIN_M: f64 = 50.0;

/// Metres rounded to 0.1 m (stable output, no false precision).
fn round_dm(m: f64) -> f64 {
    (m * 10.0).round() / 10.0
}

/// The hit's window as text, for messages.
pub fn describe_window(crime: &CrimeVersion) -> String {
    format!(
        "{} to {}",
        format_time(crime.from_ms),
        format_time(crime.to_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crime::test_fixtures::{crime, gps, MIN, T0};

    /// A fix `east_m` metres east of the crime with its own precision and source.
    fn fix(t_ms: TimeMs, east_m: f64, precision_m: f64, source: PositionSource) -> Reading {
        let mut r = gps(t_ms, east_m, 0.0);
        if let ReadingBody::Position(p) = &mut r.body {
            p.precision_cm = (precision_m * 100.0).round() as u32;
            p.source = source;
        }
        r
    }

    fn certainty(trail: &[Reading]) -> Option<Certainty> {
        evaluate(&crime(), "A1", "P1", trail, &HitsConfig::default()).map(|h| h.certainty)
    }

    /// Simulator, seed 33 (`AVS/26/000111` on A311): indoors 280–300 m from the crime, GPS fixes
    /// now and then between Wi-Fi and LBS ones; one multipath GPS fix 213 m off lands 87 m from
    /// the crime with a 12 m circle. Its nearest neighbour was a 142 m Wi-Fi fix, which widened
    /// the allowed jump to 308 m, so `hits/2` called the hit certain. Judged against the GPS
    /// fixes either side, it is a spike: possible.
    #[test]
    fn a_spike_between_a_wifi_fix_and_a_gps_fix_is_still_a_spike() {
        let trail = [
            fix(T0 + 16 * MIN, 299.8, 18.3, PositionSource::Gps),
            fix(T0 + 19 * MIN, 273.8, 142.0, PositionSource::Wifi),
            fix(T0 + 20 * MIN, 87.1, 12.0, PositionSource::Gps),
            fix(T0 + 21 * MIN, 280.1, 13.4, PositionSource::Gps),
            fix(T0 + 24 * MIN, 285.8, 1500.0, PositionSource::Lbs),
            fix(T0 + 28 * MIN, 300.6, 11.6, PositionSource::Gps),
        ];
        assert_eq!(certainty(&trail), Some(Certainty::Possible));
        // Walking over from there and staying is a visit, not a spike, however sparse the fixes.
        let visit = [
            fix(T0 + 16 * MIN, 299.8, 18.3, PositionSource::Gps),
            fix(T0 + 19 * MIN, 273.8, 142.0, PositionSource::Wifi),
            fix(T0 + 20 * MIN, 87.1, 12.0, PositionSource::Gps),
            fix(T0 + 23 * MIN, 80.0, 160.0, PositionSource::Wifi),
            fix(T0 + 26 * MIN, 85.0, 10.0, PositionSource::Gps),
        ];
        assert_eq!(certainty(&visit), Some(Certainty::Certain));
        // A fix with no precise neighbour within the path gap on one side is not judged a spike.
        let alone = [
            fix(T0 + 5 * MIN, 299.8, 18.3, PositionSource::Gps),
            fix(T0 + 19 * MIN, 273.8, 142.0, PositionSource::Wifi),
            fix(T0 + 21 * MIN, 87.1, 12.0, PositionSource::Gps),
            fix(T0 + 22 * MIN, 280.1, 13.4, PositionSource::Gps),
        ];
        assert_eq!(certainty(&alone), Some(Certainty::Certain));
    }
}
