//! The zone rule (`zones/1`): exclusion zones (must not enter) and inclusion zones (must stay
//! within), as polygons, multipolygons with holes or a point plus radius, optionally on a local-time
//! schedule.
//!
//! - `geometry`: GeoJSON → local metric plane; where a confidence circle lies; path crossings.
//! - `index`: a person's compiled zones and the R-tree of their envelopes.
//!
//! This file owns the per-activation, per-zone state machine. For each fix, the zones to test are
//! the R-tree candidates around the fix (and around the path from the previous fix), the zones
//! already engaged (an open alert or a count in progress) and the inclusion zones; every other
//! exclusion zone is known to be clear without any geometry. So the cost of a fix does not grow
//! with the number of zones.
//!
//! Per zone, a fix is *violating* (its whole confidence circle on the wrong side: inside an
//! exclusion zone, outside an inclusion zone), *clear* (whole circle on the right side), or
//! *straddling*. A violating fix, or a straddling fix whose centre is on the wrong side (a fix
//! less precise than `max_possible_precision_m` only with its centre at least half its radius
//! from the boundary: a cell fix's kilometre near a street-sized zone says nothing about it),
//! opens an alert with confidence `possible`. It becomes `confirmed` (same id, updated in place) once
//! `confirm_fixes` violating GPS fixes with precision within `max_confirm_precision_m`, spanning at
//! least `dwell_ms`, have been seen with no clear fix between: one drifting or imprecise fix, or
//! any number of LBS/Wi-Fi fixes (unless `weak_sources_confirm`), never confirm. The alert closes
//! (end = the first of them) after `clear_fixes` consecutive clear fixes (hysteresis), or when the
//! zone stops applying (schedule or order end). Two consecutive clear fixes at most
//! `max_crossing_gap_ms` apart, both within `max_possible_precision_m`, whose straight path
//! passes through the zone raise a closed
//! `possible` alert over the estimated time inside. A late fix (older than what was already
//! evaluated) that violates a zone where no alert is open raises a `possible` alert `[t, t]`
//! marked late.

pub mod geometry;
pub mod index;

use super::local_time::{in_weekly_slots, slot_interval_at};
use crate::model::{
    alert_id, Alert, AlertType, Confidence, Position, PositionSource, Reading, ReadingBody, TimeMs,
};
use crate::pipeline::snapshot::{load_rule_state, save_rule_state, RuleState, RuleStateError};
use crate::pipeline::{Rule, RuleContext};
use geometry::Placement;
use index::{ZoneKind, ZoneSet};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Version of the zone rule, recorded on every alert it raises.
pub const ZONES_RULE_VERSION: &str = "zones/1";
/// At most this many readings are kept as an alert's evidence.
pub const MAX_EVIDENCE: usize = 16;

/// Zone settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZonesConfig {
    /// Multiplier on a fix's reported precision (its ~95% radius).
    pub precision_scale: f64,
    /// Fixes less precise than this never confirm an alert (they can open a possible one).
    pub max_confirm_precision_m: f64,
    /// Two fixes are a path (an inferred crossing) only when both are at least this precise. A
    /// less precise fix straddling a boundary opens a possible alert only when its centre is at
    /// least half its radius on the wrong side (the wearer more likely there than not): a cell
    /// fix's kilometre near a street-sized zone says nothing about the zone.
    pub max_possible_precision_m: f64,
    /// Whether LBS and Wi-Fi fixes may confirm (they are weaker evidence than GPS).
    pub weak_sources_confirm: bool,
    /// Violating fixes needed to confirm.
    pub confirm_fixes: u32,
    /// Time the confirming fixes must span.
    pub dwell_ms: TimeMs,
    /// Consecutive clear fixes needed to close an alert.
    pub clear_fixes: u32,
    /// Infer crossings between two clear fixes.
    pub detect_crossings: bool,
    /// Fixes further apart than this are too sparse to infer a path between.
    pub max_crossing_gap_ms: TimeMs,
}

impl Default for ZonesConfig {
    fn default() -> Self {
        Self {
            precision_scale: 1.0,
            max_confirm_precision_m: 50.0,
            max_possible_precision_m: 200.0,
            weak_sources_confirm: false,
            confirm_fixes: 2,
            dwell_ms: 60_000,
            clear_fixes: 2,
            detect_crossings: true,
            max_crossing_gap_ms: 10 * 60_000,
        }
    }
}

/// Which side of a zone a fix is on, for that zone's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Violating,
    Clear,
    /// Straddling the boundary; true when the centre is on the violating side.
    Straddling(bool),
}

fn side_of(kind: ZoneKind, placement: Placement) -> Side {
    match (kind, placement) {
        (ZoneKind::Exclusion, Placement::Inside) | (ZoneKind::Inclusion, Placement::Outside) => {
            Side::Violating
        }
        (ZoneKind::Exclusion, Placement::Outside) | (ZoneKind::Inclusion, Placement::Inside) => {
            Side::Clear
        }
        (ZoneKind::Exclusion, Placement::Straddling { centre_inside }) => {
            Side::Straddling(centre_inside)
        }
        (ZoneKind::Inclusion, Placement::Straddling { centre_inside }) => {
            Side::Straddling(!centre_inside)
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ZoneTrack {
    #[serde(with = "crate::pipeline::snapshot::via")]
    open: Option<Alert>,
    confirm_first_ms: Option<TimeMs>,
    confirm_n: u32,
    clear_n: u32,
    #[serde(with = "crate::pipeline::snapshot::via")]
    clear_first: Option<Reading>,
    /// The active interval (schedule ∩ order dates) the last fix fell in, if bounded.
    active_from_ms: TimeMs,
    active_to_ms: Option<TimeMs>,
    active_cached: bool,
}

impl ZoneTrack {
    fn engaged(&self) -> bool {
        self.open.is_some() || self.confirm_n > 0 || self.clear_n > 0
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct LastFix {
    t_ms: TimeMs,
    lat: f64,
    lon: f64,
    p_m: f64,
}

/// The zone rule of one activation (all zones of the person's orders).
pub struct ZoneRule {
    set: Arc<ZoneSet>,
    config: ZonesConfig,
    tracks: Vec<ZoneTrack>,
    engaged: Vec<usize>,
    last_fix: Option<LastFix>,
    candidates: Vec<usize>,
    work: Vec<usize>,
}

impl ZoneRule {
    pub fn new(set: Arc<ZoneSet>, config: ZonesConfig) -> Self {
        Self {
            tracks: vec![ZoneTrack::default(); set.zones.len()],
            set,
            config,
            engaged: Vec::new(),
            last_fix: None,
            candidates: Vec::new(),
            work: Vec::new(),
        }
    }

    fn strong(&self, fix: &Position) -> bool {
        (fix.source == PositionSource::Gps || self.config.weak_sources_confirm)
            && fix.precision_m() <= self.config.max_confirm_precision_m
    }

    /// Whether zone `z` applies at `t_ms`, caching the bounded interval it applies in.
    fn active(&mut self, z: usize, t_ms: TimeMs) -> bool {
        let zone = &self.set.zones[z];
        let track = &mut self.tracks[z];
        if track.active_cached
            && t_ms >= track.active_from_ms
            && track.active_to_ms.is_none_or(|to| t_ms < to)
        {
            return true;
        }
        track.active_cached = false;
        if !zone.in_order_dates(t_ms) {
            return false;
        }
        let (from, to) = if zone.schedule.is_empty() {
            (zone.active_from_ms, zone.active_to_ms)
        } else {
            if !in_weekly_slots(&zone.schedule, t_ms) {
                return false;
            }
            match slot_interval_at(&zone.schedule, t_ms) {
                Some(iv) => (
                    iv.start_ms,
                    Some(zone.active_to_ms.map_or(iv.end_ms, |o| o.min(iv.end_ms))),
                ),
                None => return false,
            }
        };
        track.active_from_ms = from;
        track.active_to_ms = to;
        track.active_cached = true;
        true
    }

    fn new_alert(
        &self,
        ctx: &RuleContext<'_>,
        z: usize,
        start: TimeMs,
        reading: &Reading,
    ) -> Alert {
        let zone = &self.set.zones[z];
        let alert_type = match zone.kind {
            ZoneKind::Exclusion => AlertType::ExclusionZoneEntry,
            ZoneKind::Inclusion => AlertType::InclusionZoneExit,
        };
        let key = format!("zone:{}:{}:{}", zone.order_id, zone.id, alert_type.as_str());
        Alert {
            id: alert_id(&ctx.activation.id, &key, start),
            alert_type,
            code: None,
            activation: ctx.activation.id.clone(),
            person: ctx.activation.person.clone(),
            start,
            end: None,
            late: false,
            zone: Some(zone.id.clone()),
            confidence: Some(Confidence::Possible),
            rule: ZONES_RULE_VERSION.to_string(),
            withdrawn: None,
            amended_by: None,
            evidence: vec![*reading],
            details: None,
        }
    }

    fn close(
        &mut self,
        ctx: &mut RuleContext<'_>,
        z: usize,
        end_ms: TimeMs,
        reading: Option<Reading>,
    ) {
        let track = &mut self.tracks[z];
        if let Some(mut alert) = track.open.take() {
            alert.end = Some(end_ms.max(alert.start));
            if let Some(r) = reading {
                if alert.evidence.len() < MAX_EVIDENCE {
                    alert.evidence.push(r);
                }
            }
            ctx.emit_alert(alert);
        }
        *track = ZoneTrack {
            active_from_ms: track.active_from_ms,
            active_to_ms: track.active_to_ms,
            active_cached: track.active_cached,
            ..ZoneTrack::default()
        };
    }

    fn place(&self, z: usize, lat: f64, lon: f64, p_m: f64) -> Side {
        let zone = &self.set.zones[z];
        side_of(zone.kind, zone.geometry.place(lat, lon, p_m))
    }

    /// For a fix whose centre is on the wrong side of zone `z`'s boundary and whose circle
    /// crosses it: whether it is evidence of being there. A precise fix is; a wide one only when
    /// its centre is at least half its radius from the boundary (for a straight boundary, the
    /// wearer is then more likely on the centre's side than not).
    fn more_likely_wrong_side(&self, z: usize, lat: f64, lon: f64, p_m: f64) -> bool {
        p_m <= self.config.max_possible_precision_m
            || self.set.zones[z].geometry.boundary_distance_m(lat, lon) >= 0.5 * p_m
    }

    fn step(
        &mut self,
        ctx: &mut RuleContext<'_>,
        z: usize,
        side: Side,
        reading: &Reading,
        strong: bool,
    ) {
        let t = reading.t_ms;
        match side {
            Side::Violating | Side::Straddling(true) => {
                if self.tracks[z].open.is_none() {
                    let alert = self.new_alert(ctx, z, t, reading);
                    ctx.emit_alert(alert.clone());
                    self.tracks[z].open = Some(alert);
                }
                let config = self.config;
                let track = &mut self.tracks[z];
                track.clear_n = 0;
                track.clear_first = None;
                if side == Side::Violating && strong {
                    let first = *track.confirm_first_ms.get_or_insert(t);
                    track.confirm_n += 1;
                    if track.confirm_n >= config.confirm_fixes && t - first >= config.dwell_ms {
                        if let Some(alert) = track.open.as_mut() {
                            if alert.confidence != Some(Confidence::Confirmed) {
                                alert.confidence = Some(Confidence::Confirmed);
                                if alert.evidence.len() < MAX_EVIDENCE {
                                    alert.evidence.push(*reading);
                                }
                                ctx.emit_alert(alert.clone());
                            }
                        }
                    }
                }
            }
            Side::Clear => {
                let clear_fixes = self.config.clear_fixes.max(1);
                let track = &mut self.tracks[z];
                track.confirm_n = 0;
                track.confirm_first_ms = None;
                if track.open.is_some() {
                    let first = *track.clear_first.get_or_insert(*reading);
                    track.clear_n += 1;
                    if track.clear_n >= clear_fixes {
                        self.close(ctx, z, first.t_ms, Some(first));
                    }
                }
            }
            Side::Straddling(false) => {}
        }
    }

    fn crossing(
        &mut self,
        ctx: &mut RuleContext<'_>,
        z: usize,
        prev: LastFix,
        reading: &Reading,
        lat: f64,
        lon: f64,
    ) {
        if self.place(z, prev.lat, prev.lon, prev.p_m) != Side::Clear {
            return;
        }
        let zone = &self.set.zones[z];
        let Some((s0, s1)) = zone.geometry.crossing((prev.lat, prev.lon), (lat, lon)) else {
            return;
        };
        // Exclusion: the path enters between s0 and s1. Inclusion (both fixes inside): the path
        // is outside between its first and last boundary points.
        let dt = (reading.t_ms - prev.t_ms) as f64;
        let start = prev.t_ms + (s0 * dt).round() as TimeMs;
        let end = prev.t_ms + (s1 * dt).round() as TimeMs;
        let mut alert = self.new_alert(ctx, z, start, reading);
        alert.end = Some(end.max(start));
        ctx.emit_alert(alert);
    }

    fn on_fix(&mut self, ctx: &mut RuleContext<'_>, reading: &Reading, fix: &Position) {
        let (lat, lon) = (fix.lat(), fix.lon());
        let p_m = fix.precision_m() * self.config.precision_scale;
        let strong = self.strong(fix);
        let prev = self.last_fix.filter(|p| {
            self.config.detect_crossings
                && reading.t_ms > p.t_ms
                && reading.t_ms - p.t_ms <= self.config.max_crossing_gap_ms
        });
        self.candidates.clear();
        let mut candidates = std::mem::take(&mut self.candidates);
        match prev {
            Some(p) => self.set.candidates(
                &[(p.lat, p.lon), (lat, lon)],
                p_m.max(p.p_m),
                &mut candidates,
            ),
            None => self.set.candidates(&[(lat, lon)], p_m, &mut candidates),
        }
        // A handful of zones at most: linear de-duplication beats sorting.
        let mut work = std::mem::take(&mut self.work);
        work.clear();
        for &z in candidates
            .iter()
            .chain(&self.engaged)
            .chain(&self.set.inclusion)
        {
            if !work.contains(&z) {
                work.push(z);
            }
        }
        for &z in &work {
            if !self.active(z, reading.t_ms) {
                if self.tracks[z].open.is_some() {
                    let end = self.tracks[z]
                        .active_to_ms
                        .unwrap_or(reading.t_ms)
                        .min(reading.t_ms);
                    self.close(ctx, z, end, None);
                }
                self.tracks[z].confirm_n = 0;
                self.tracks[z].clear_n = 0;
                continue;
            }
            let candidate = candidates.contains(&z);
            let side = if candidate {
                self.place(z, lat, lon, p_m)
            } else {
                // The circle's envelope misses the zone's: entirely outside.
                side_of(self.set.zones[z].kind, Placement::Outside)
            };
            let precise = |p_m: f64| p_m <= self.config.max_possible_precision_m;
            if side == Side::Clear && candidate && self.tracks[z].open.is_none() {
                if let Some(p) = prev.filter(|p| precise(p_m) && precise(p.p_m)) {
                    self.crossing(ctx, z, p, reading, lat, lon);
                }
            }
            let side = match side {
                Side::Straddling(true) if !self.more_likely_wrong_side(z, lat, lon, p_m) => {
                    Side::Straddling(false)
                }
                side => side,
            };
            self.step(ctx, z, side, reading, strong);
        }
        self.engaged.clear();
        for &z in &work {
            if self.tracks[z].engaged() {
                self.engaged.push(z);
            }
        }
        self.work = work;
        self.candidates = candidates;
        self.last_fix = Some(LastFix {
            t_ms: reading.t_ms,
            lat,
            lon,
            p_m,
        });
    }

    fn on_late_fix(&mut self, ctx: &mut RuleContext<'_>, reading: &Reading, fix: &Position) {
        let (lat, lon) = (fix.lat(), fix.lon());
        let p_m = fix.precision_m() * self.config.precision_scale;
        let mut candidates = Vec::new();
        self.set.candidates(&[(lat, lon)], p_m, &mut candidates);
        candidates.extend_from_slice(&self.set.inclusion);
        candidates.sort_unstable();
        candidates.dedup();
        for z in candidates {
            if self.tracks[z]
                .open
                .as_ref()
                .is_some_and(|a| a.start <= reading.t_ms)
            {
                continue;
            }
            let zone = &self.set.zones[z];
            let active = zone.in_order_dates(reading.t_ms)
                && (zone.schedule.is_empty() || in_weekly_slots(&zone.schedule, reading.t_ms));
            let evidence = match self.place(z, lat, lon, p_m) {
                Side::Violating => true,
                Side::Straddling(true) => self.more_likely_wrong_side(z, lat, lon, p_m),
                Side::Clear | Side::Straddling(false) => false,
            };
            if active && evidence {
                let mut alert = self.new_alert(ctx, z, reading.t_ms, reading);
                alert.end = Some(reading.t_ms);
                alert.late = true;
                ctx.emit_alert(alert);
            }
        }
    }
}

/// What a [`ZoneRule`] has seen (its zones and configuration are rebuilt).
#[derive(Serialize, Deserialize)]
struct ZonesState {
    tracks: Vec<ZoneTrack>,
    engaged: Vec<usize>,
    last_fix: Option<LastFix>,
}

impl Rule for ZoneRule {
    fn name(&self) -> &'static str {
        "zones"
    }

    fn save_state(&self) -> Result<RuleState, RuleStateError> {
        let state = ZonesState {
            tracks: self.tracks.clone(),
            engaged: self.engaged.clone(),
            last_fix: self.last_fix,
        };
        save_rule_state(self.name(), &state)
    }

    fn load_state(&mut self, state: &RuleState) -> Result<(), RuleStateError> {
        let s: ZonesState = load_rule_state(self.name(), state)?;
        let zones = self.set.zones.len();
        if s.tracks.len() != zones || s.engaged.iter().any(|&z| z >= zones) {
            return Err(RuleStateError {
                rule: self.name(),
                message: format!("state for {} zones, the rule has {zones}", s.tracks.len()),
            });
        }
        self.tracks = s.tracks;
        self.engaged = s.engaged;
        self.last_fix = s.last_fix;
        Ok(())
    }

    fn on_reading(&mut self, ctx: &mut RuleContext<'_>, reading: &Reading, late: bool) {
        let ReadingBody::Position(fix) = &reading.body else {
            return;
        };
        if late || self.last_fix.is_some_and(|p| reading.t_ms < p.t_ms) {
            self.on_late_fix(ctx, reading, fix);
        } else {
            self.on_fix(ctx, reading, fix);
        }
    }

    fn on_clock(&mut self, ctx: &mut RuleContext<'_>, clock_ms: TimeMs) {
        for i in 0..self.engaged.len() {
            let z = self.engaged[i];
            let until = self.tracks[z].active_to_ms;
            if self.tracks[z].open.is_some() && until.is_some_and(|u| u <= clock_ms) {
                self.close(ctx, z, until.unwrap_or(clock_ms), None);
            }
        }
        let tracks = &self.tracks;
        self.engaged.retain(|&z| tracks[z].engaged());
    }

    fn next_deadline(&self) -> Option<TimeMs> {
        self.engaged
            .iter()
            .filter(|&&z| self.tracks[z].open.is_some())
            .filter_map(|&z| self.tracks[z].active_to_ms)
            .min()
    }
}
