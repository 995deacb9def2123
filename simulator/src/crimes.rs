//! Police crime batches in the CSV format UK forces send (domain page section 4): 13 columns, no
//! header, one file per force per day, named `<Force>-<yyyyMMdd>.csv` after the batch date (the
//! day after the crimes).
//!
//! Each day holds crimes placed on simulated trails (true hits: within 50 m of where a wearer was,
//! during the window), near misses (130–250 m away during the window, or at the spot but with a
//! window that closed before the wearer arrived), and unrelated crimes around the area. Truth is
//! then computed for every crime against every GPS trail, whatever it was placed as: a `hit` item
//! for each activation whose true path came within 100 m during the window, marked
//! `confirmable: false` when none of the fixes the tag reported in the window could make it
//! `certain` (the tag keeps those fixes beside its true positions). A share of a day's
//! crimes is resubmitted in the next day's batch (same reference, corrected window or location):
//! a new `crime_version`, with its own truth. Coordinates are WGS84
//! or British National Grid (one pair per row). A controlled share of extra rows is malformed,
//! cycling through every validation error of the domain page; each is a `crime_row_error` truth item.

use crate::area::{Area, Force, EMAC_FORCES};
use crate::behaviour::Rates;
use crate::bng::{bng_to_wgs84, wgs84_to_bng, GridRef};
use crate::clock::{ymd_compact, DAY_MS, MINUTE_MS};
use crate::geo::Xy;
use crate::population::{DeviceKind, Profile};
use crate::rng::{stream, Rng};
use crate::tag::{RunContext, TagSim};
use crate::truth::TruthItem;
use chrono::{DateTime, NaiveDate, Utc};
use tagstream::model::TimeMs;
use tagstream::rules::geodesy::LocalProjection;

/// The vicinity radius a hit is defined by.
pub const VICINITY_M: f64 = 100.0;

const CRIME_TYPES: [(&str, &str); 7] = [
    ("RB", "Robbery"),
    ("BIAD", "Burglary in a dwelling"),
    ("AB", "Aggravated burglary"),
    ("BOTD", "Burglary in a building other than a dwelling"),
    ("TOMV", "Theft of a motor vehicle"),
    ("TFP", "Theft from the person"),
    ("TFMV", "Theft from a motor vehicle"),
];

const NOTES: [&str; 8] = [
    "Entry gained via rear door, jewellery taken",
    "Suspect seen leaving on foot, wearing a \"dark\" hoodie",
    "Vehicle window smashed; laptop bag stolen",
    "Victim approached from behind, phone snatched",
    "Garage forced, tools and bicycle taken",
    "Car taken from driveway overnight, keys stolen earlier",
    "Shop rear store entered, cash box removed",
    "Two suspects, one on an e-scooter",
];

/// Every row-level and batch-level error the simulator can plant.
pub const ROW_ERRORS: [&str; 18] = [
    "invalid_batch_id_format",
    "invalid_batch_id_date",
    "wrong_column_count",
    "field_must_be_text",
    "field_must_be_number",
    "unknown_police_force",
    "unknown_crime_type",
    "bad_date_format",
    "to_before_from",
    "window_too_long",
    "no_location",
    "half_coordinate_pair",
    "both_coordinate_types",
    "coordinates_out_of_range",
    "missing_batch_id",
    "missing_crime_reference",
    "several_forces_in_batch",
    "several_batch_ids_in_batch",
];

/// Whether the readings can make the true hit `it` of crime `c` certain: the tag reported, under
/// the hit's activation and during the crime's window, a fix (not a simulated outlier) whose whole
/// confidence circle lies inside the vicinity — `distance + precision ≤ radius`, the distance
/// measured as the hit rule measures it (the reported fix's WGS84 coordinates projected around
/// the crime's written ones; the simulator's own frame is off by up to 0.5% across an area).
fn confirmable(
    tag: &TagSim,
    p: &Profile,
    it: &TruthItem,
    c: &Crime,
    ctx: &RunContext,
    area: &Area,
) -> bool {
    let (lat, lon) = area.frame.to_latlon(c.pos);
    let around_crime = LocalProjection::new(lat, lon);
    tag.fixes_near(ctx, c.pos, c.from_ms, c.to_ms, VICINITY_M)
        .into_iter()
        .any(|(t, pos, precision_m)| {
            let (lat_e7, lon_e7) = area.frame.to_e7(pos);
            let (x_m, y_m) = around_crime.to_xy(lat_e7 as f64 / 1e7, lon_e7 as f64 / 1e7);
            Some(&p.activation_at(t).id) == it.activation.as_ref()
                // As the rule computes it (`PathPoint::distance_m`), so a tie falls the same way.
                && (x_m * x_m + y_m * y_m).sqrt() + precision_m <= VICINITY_M
        })
}

/// A crime to write.
#[derive(Clone, Debug)]
struct Crime {
    type_idx: usize,
    crime_ref: String,
    from_ms: TimeMs,
    to_ms: TimeMs,
    pos: Xy,
    /// BNG (true) or WGS84 (false).
    bng: bool,
    note: usize,
    /// 1 when first sent; each resubmission of the reference is the next version.
    version: u32,
}

/// A crime and how it was placed (on whose trail, as what), for truth labels.
type Placed = (Crime, Option<(usize, &'static str)>);

/// Per-run crime batch generator for one force.
pub struct CrimeGen {
    pub force: Force,
    seed: u64,
    next_ref: u64,
    next_error: usize,
    /// Yesterday's good crimes, candidates for resubmission.
    previous: Vec<Placed>,
}

/// One day's file.
pub struct CrimeFile {
    pub name: String,
    pub lines: Vec<String>,
}

fn stamp(t_ms: TimeMs) -> String {
    DateTime::<Utc>::from_timestamp_millis(t_ms)
        .map(|d| d.format("%Y%m%d%H%M%S").to_string())
        .unwrap_or_default()
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

impl CrimeGen {
    pub fn new(force: Force, seed: u64) -> Self {
        let mut r = Rng::derive(seed, &[stream::CRIMES, u64::MAX]);
        CrimeGen {
            force,
            seed,
            next_ref: 1,
            next_error: r.index(ROW_ERRORS.len()),
            previous: Vec::new(),
        }
    }

    fn new_ref(&mut self, day: NaiveDate) -> String {
        let r = format!(
            "{}/{}/{:06}",
            self.force.code,
            ymd_compact(day)[2..4].to_owned(),
            self.next_ref
        );
        self.next_ref += 1;
        r
    }

    /// Generates the batch for crimes committed on UTC day `day_idx` of the run (file dated the day
    /// after), appending truth items.
    #[allow(clippy::too_many_arguments)]
    pub fn day(
        &mut self,
        day_idx: u32,
        ctx: &RunContext,
        area: &Area,
        rates: &Rates,
        profiles: &[Profile],
        tags: &[TagSim],
        truth: &mut Vec<TruthItem>,
    ) -> CrimeFile {
        let mut rng = Rng::derive(self.seed, &[stream::CRIMES, day_idx as u64]);
        let d0 = ctx.start_ms + day_idx as i64 * DAY_MS;
        let d1 = (d0 + DAY_MS).min(ctx.end_ms);
        let day = DateTime::<Utc>::from_timestamp_millis(d0)
            .map(|d| d.date_naive())
            .unwrap_or_default();
        let batch_date = day + chrono::Duration::days(1);
        let batch_id = format!("{}{}", self.force.code, ymd_compact(batch_date));
        let file_name = format!("{}-{}.csv", self.force.id, ymd_compact(batch_date));
        let gps: Vec<usize> = profiles
            .iter()
            .filter(|p| p.device == DeviceKind::Gps && p.activation.from < d1 - 2 * 3_600_000)
            .map(|p| p.idx)
            .collect();
        let mut crimes: Vec<Placed> = Vec::new();
        let rand_time = |rng: &mut Rng, lo: TimeMs| rng.int(lo.max(d0), d1 - 1) / 1000 * 1000;
        let placed = |rng: &mut Rng| {
            let idx = gps[rng.index(gps.len())];
            (idx, profiles[idx].activation.from + 3_600_000)
        };
        if !gps.is_empty() {
            let n_hits =
                rng.poisson(rates.hits * gps.len() as f64 * (d1 - d0) as f64 / DAY_MS as f64);
            let n_near = rng
                .poisson(rates.near_misses * gps.len() as f64 * (d1 - d0) as f64 / DAY_MS as f64);
            for k in 0..(n_hits + n_near) {
                let (idx, lo) = placed(&mut rng);
                let t = rand_time(&mut rng, lo);
                let Some(pos) = tags[idx].position_at(ctx, t) else {
                    continue;
                };
                let kind = if k < n_hits {
                    "on_trail"
                } else if rng.chance(0.5) {
                    "near_miss_space"
                } else {
                    "near_miss_time"
                };
                let (loc, from, to) = match kind {
                    "on_trail" => {
                        let a = rng.range(0.0, std::f64::consts::TAU);
                        let r = rng.range(0.0, 50.0);
                        (
                            pos.add(r * a.sin(), r * a.cos()),
                            t - rng.int(0, 180) * MINUTE_MS,
                            t + rng.int(5, 180) * MINUTE_MS,
                        )
                    }
                    "near_miss_space" => {
                        let a = rng.range(0.0, std::f64::consts::TAU);
                        let r = rng.range(130.0, 250.0);
                        (
                            pos.add(r * a.sin(), r * a.cos()),
                            t - rng.int(0, 120) * MINUTE_MS,
                            t + rng.int(5, 120) * MINUTE_MS,
                        )
                    }
                    _ => {
                        let to = t - rng.int(30, 120) * MINUTE_MS;
                        (
                            pos.add(rng.gauss(0.0, 15.0), rng.gauss(0.0, 15.0)),
                            to - rng.int(30, 180) * MINUTE_MS,
                            to,
                        )
                    }
                };
                let from = from.max(d0 - 12 * 3_600_000 + MINUTE_MS) / 1000 * 1000;
                let to = to.min(d1 - MINUTE_MS).max(from + MINUTE_MS) / 1000 * 1000;
                let c = Crime {
                    type_idx: rng.index(CRIME_TYPES.len()),
                    crime_ref: self.new_ref(day),
                    from_ms: from,
                    to_ms: to,
                    pos: loc,
                    bng: rng.chance(0.5),
                    note: rng.index(NOTES.len()),
                    version: 1,
                };
                crimes.push((c, Some((idx, kind))));
            }
        }
        let n_unrelated = rng.poisson(rates.unrelated_crimes * (d1 - d0) as f64 / DAY_MS as f64);
        for _ in 0..n_unrelated {
            let c = self.random_crime(&mut rng, area, day, d0, d1);
            crimes.push((c, None));
        }

        // Resubmissions: a share of yesterday's crimes come again, corrected, as a new version.
        for (old, placed) in std::mem::take(&mut self.previous) {
            if old.from_ms < d0 - 22 * 3_600_000 || !rng.chance(rates.resubmitted) {
                continue;
            }
            let mut c = old.clone();
            c.version += 1;
            c.to_ms = (c.to_ms + rng.int(10, 90) * MINUTE_MS)
                .min(c.from_ms + 12 * 3_600_000)
                .min(d1 - MINUTE_MS);
            if rng.chance(0.5) {
                c.pos = c.pos.add(rng.gauss(0.0, 20.0), rng.gauss(0.0, 20.0));
            }
            c.bng = rng.chance(0.5);
            crimes.push((c, placed));
        }

        // Rows, and truth from every crime against every trail.
        let mut rows: Vec<(String, Option<&'static str>)> = Vec::new();
        for (mut c, placed) in crimes {
            let row = self.row(&mut c, area, &batch_id);
            self.previous.push((c.clone(), placed));
            let mut any_hit = false;
            for &idx in &gps {
                if let Some((d, t)) =
                    tags[idx].closest_approach(ctx, c.pos, c.from_ms, c.to_ms, VICINITY_M)
                {
                    if d <= VICINITY_M {
                        any_hit = true;
                        let how = match placed {
                            Some((pidx, kind)) if pidx == idx => kind,
                            _ => "coincidental",
                        };
                        let mut it =
                            self.crime_truth(&profiles[idx], "hit", &c, &batch_id, d, t, Some(how));
                        if !confirmable(&tags[idx], &profiles[idx], &it, &c, ctx, area) {
                            it.confirmable = Some(false);
                        }
                        truth.push(it);
                    }
                }
            }
            if let (Some((idx, kind)), false) = (placed.filter(|(_, k)| *k != "on_trail"), any_hit)
            {
                let (d, t) = tags[idx]
                    .closest_approach(
                        ctx,
                        c.pos,
                        c.from_ms - 6 * 3_600_000,
                        c.to_ms + 6 * 3_600_000,
                        1e9,
                    )
                    .unwrap_or((f64::NAN, c.from_ms));
                let mut it =
                    self.crime_truth(&profiles[idx], "near_miss", &c, &batch_id, d, t, Some(kind));
                it.detectable = false;
                truth.push(it);
            }
            rows.push((row, None));
        }

        // Malformed rows: a share of the file, every error kind in turn.
        let share = rates.malformed_share.clamp(0.0, 0.95);
        let n_bad = ((rows.len() as f64) * share / (1.0 - share)).round() as usize;
        for _ in 0..n_bad {
            let kind = ROW_ERRORS[self.next_error % ROW_ERRORS.len()];
            self.next_error += 1;
            let mut c = self.random_crime(&mut rng, area, day, d0, d1);
            let line = self.malformed_row(&mut rng, &mut c, area, &batch_id, batch_date, kind);
            let at = rng.index(rows.len() + 1);
            rows.insert(at, (line, Some(kind)));
        }
        let mut lines = Vec::with_capacity(rows.len());
        for (i, (line, err)) in rows.into_iter().enumerate() {
            if let Some(kind) = err {
                truth.push(TruthItem {
                    kind: "crime_row_error".into(),
                    start: d0,
                    end: Some(d0),
                    detectable: true,
                    force: Some(self.force.id.into()),
                    batch_id: Some(batch_id.clone()),
                    file: Some(file_name.clone()),
                    line: Some(i as u64 + 1),
                    error: Some(kind.into()),
                    ..Default::default()
                });
            }
            lines.push(line);
        }
        CrimeFile {
            name: file_name,
            lines,
        }
    }

    fn random_crime(
        &mut self,
        rng: &mut Rng,
        area: &Area,
        day: NaiveDate,
        d0: TimeMs,
        d1: TimeMs,
    ) -> Crime {
        let to = rng.int(d0 + 30 * MINUTE_MS, d1 - MINUTE_MS) / 1000 * 1000;
        let from = (to - rng.int(10, 8 * 60) * MINUTE_MS) / 1000 * 1000;
        Crime {
            type_idx: rng.index(CRIME_TYPES.len()),
            crime_ref: self.new_ref(day),
            from_ms: from,
            to_ms: to,
            pos: area.sample_near(rng, Xy::default(), area.spread_m * 1.5),
            bng: rng.chance(0.5),
            note: rng.index(NOTES.len()),
            version: 1,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn crime_truth(
        &self,
        p: &Profile,
        kind: &str,
        c: &Crime,
        batch_id: &str,
        d: f64,
        t: TimeMs,
        behaviour: Option<&str>,
    ) -> TruthItem {
        let mut it = TruthItem::about(p, kind, c.from_ms, Some(c.to_ms));
        // The activation is the one in force at the closest approach.
        let a = p.activation_at(t);
        it.activation = Some(a.id.clone());
        it.tag = Some(a.tag.clone());
        it.force = Some(self.force.id.into());
        it.batch_id = Some(batch_id.into());
        it.crime_ref = Some(c.crime_ref.clone());
        it.crime_version = Some(c.version);
        it.closest_m = d.is_finite().then(|| (d * 10.0).round() / 10.0);
        it.closest_t = Some(t);
        it.behaviour = Some(behaviour.unwrap_or("crime").to_string());
        it
    }

    /// Formats a good row, snapping the crime to the coordinates written (so truth uses them).
    fn row(&self, c: &mut Crime, area: &Area, batch_id: &str) -> String {
        let (lat, lon) = area.frame.to_latlon(c.pos);
        let (e, n, la, lo, datum) = if c.bng {
            let g = wgs84_to_bng(lat, lon);
            let g = GridRef {
                easting_m: g.easting_m.round(),
                northing_m: g.northing_m.round(),
            };
            let (la, lo) = bng_to_wgs84(g);
            c.pos = area.frame.to_xy(la, lo);
            (
                format!("{}", g.easting_m as i64),
                format!("{}", g.northing_m as i64),
                String::new(),
                String::new(),
                "OSGB36",
            )
        } else {
            let (la, lo) = ((lat * 1e6).round() / 1e6, (lon * 1e6).round() / 1e6);
            c.pos = area.frame.to_xy(la, lo);
            (
                String::new(),
                String::new(),
                format!("{la:.6}"),
                format!("{lo:.6}"),
                "WGS84",
            )
        };
        let (tid, tdesc) = CRIME_TYPES[c.type_idx];
        [
            self.force.id.to_string(),
            tid.to_string(),
            tdesc.to_string(),
            batch_id.to_string(),
            c.crime_ref.clone(),
            stamp(c.from_ms),
            stamp(c.to_ms),
            e,
            n,
            la,
            lo,
            datum.to_string(),
            quote(NOTES[c.note]),
        ]
        .join(",")
    }

    fn malformed_row(
        &self,
        rng: &mut Rng,
        c: &mut Crime,
        area: &Area,
        batch_id: &str,
        batch_date: NaiveDate,
        kind: &str,
    ) -> String {
        let good = self.row(c, area, batch_id);
        let mut f: Vec<String> = good.splitn(13, ',').map(str::to_string).collect();
        let (lat, lon) = area.frame.to_latlon(c.pos);
        let g = wgs84_to_bng(lat, lon);
        match kind {
            "invalid_batch_id_format" => {
                f[3] = format!("{}-{}", self.force.code, ymd_compact(batch_date))
            }
            "invalid_batch_id_date" => f[3] = format!("{}{}", self.force.code, "20260231"),
            "wrong_column_count" => {
                if rng.chance(0.5) {
                    f.remove(2);
                } else {
                    f.insert(12, "EXTRA".into());
                }
            }
            "field_must_be_text" => f[2] = "12345".into(),
            "field_must_be_number" => {
                f[7] = "52A381".into();
                f[8] = format!("{}", g.northing_m.round() as i64);
                f[9].clear();
                f[10].clear();
                f[11] = "OSGB36".into();
            }
            "unknown_police_force" => f[0] = "Atlantis".into(),
            "unknown_crime_type" => f[1] = "XYZ".into(),
            "bad_date_format" => f[5] = "2026-03-10 14:00".into(),
            "to_before_from" => f.swap(5, 6),
            "window_too_long" => f[6] = stamp(c.from_ms + rng.int(13, 30) * 3_600_000),
            "no_location" => {
                for x in &mut f[7..=10] {
                    x.clear();
                }
            }
            "half_coordinate_pair" => {
                f[7] = format!("{}", g.easting_m.round() as i64);
                for x in &mut f[8..=10] {
                    x.clear();
                }
                f[11] = "OSGB36".into();
            }
            "both_coordinate_types" => {
                f[7] = format!("{}", g.easting_m.round() as i64);
                f[8] = format!("{}", g.northing_m.round() as i64);
                f[9] = format!("{lat:.6}");
                f[10] = format!("{lon:.6}");
            }
            "coordinates_out_of_range" => {
                f[7] = "700000".into();
                f[8] = "1400000".into();
                f[9].clear();
                f[10].clear();
                f[11] = "OSGB36".into();
            }
            "missing_batch_id" => f[3].clear(),
            "missing_crime_reference" => f[4].clear(),
            "several_forces_in_batch" => {
                let other = EMAC_FORCES
                    .iter()
                    .find(|o| o.id != self.force.id)
                    .copied()
                    .unwrap_or(self.force);
                f[0] = other.id.into();
                f[3] = format!("{}{}", other.code, ymd_compact(batch_date));
            }
            _ => {
                f[3] = format!(
                    "{}{}",
                    self.force.code,
                    ymd_compact(batch_date - chrono::Duration::days(1))
                )
            }
        }
        f.join(",")
    }
}
