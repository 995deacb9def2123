//! A person's zones, compiled once and shared by all of the person's activations: geometry,
//! kind, schedule, order dates, and an `rstar` R-tree of their envelopes (in degrees) so that the
//! zones a fix has to be tested against are found without looking at the others.

use super::super::geodesy::metres_to_degrees;
use super::super::local_time::{local_midnight_ms, LocalTimeError, WeeklySlot};
use super::geometry::{GeometryError, ZoneGeometry};
use crate::model::{Order, TimeMs, ZoneCondition};
use chrono::Duration;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

/// Why a zone condition cannot be monitored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZoneError {
    #[error("order '{order}' zone '{zone}': {source}")]
    Geometry {
        order: String,
        zone: String,
        #[source]
        source: GeometryError,
    },
    #[error("order '{order}' zone '{zone}': {source}")]
    Schedule {
        order: String,
        zone: String,
        #[source]
        source: LocalTimeError,
    },
}

/// Exclusion (must not enter) or inclusion (must stay within).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneKind {
    Exclusion,
    Inclusion,
}

/// One zone condition, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledZone {
    pub id: String,
    pub order_id: String,
    pub kind: ZoneKind,
    pub geometry: ZoneGeometry,
    /// Empty: always active (within the order's dates).
    pub schedule: Vec<WeeklySlot>,
    /// The order's dates as instants: from local midnight of `from` to local midnight after `to`.
    pub active_from_ms: TimeMs,
    pub active_to_ms: Option<TimeMs>,
}

impl CompiledZone {
    pub fn compile(order: &Order, kind: ZoneKind, zone: &ZoneCondition) -> Result<Self, ZoneError> {
        let geometry =
            ZoneGeometry::from_geojson(&zone.geometry, zone.radius_m).map_err(|source| {
                ZoneError::Geometry {
                    order: order.id.clone(),
                    zone: zone.id.clone(),
                    source,
                }
            })?;
        let mut schedule = Vec::new();
        for (i, entry) in zone.schedule.iter().flatten().enumerate() {
            let slot = WeeklySlot::parse(
                &entry.days,
                &entry.start,
                &entry.end,
                0,
                &format!("schedule[{i}]"),
            )
            .map_err(|source| ZoneError::Schedule {
                order: order.id.clone(),
                zone: zone.id.clone(),
                source,
            })?;
            schedule.push(slot);
        }
        Ok(Self {
            id: zone.id.clone(),
            order_id: order.id.clone(),
            kind,
            geometry,
            schedule,
            active_from_ms: local_midnight_ms(order.from),
            active_to_ms: order.to.map(|to| local_midnight_ms(to + Duration::days(1))),
        })
    }

    /// Whether the order's dates cover `t_ms` (the schedule is checked separately).
    pub fn in_order_dates(&self, t_ms: TimeMs) -> bool {
        t_ms >= self.active_from_ms && self.active_to_ms.is_none_or(|to| t_ms < to)
    }
}

type Entry = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// A person's zones and their envelope index.
#[derive(Debug, Clone)]
pub struct ZoneSet {
    pub zones: Vec<CompiledZone>,
    /// Indices of inclusion zones (being *outside* them is the breach, so each is checked).
    pub inclusion: Vec<usize>,
    tree: RTree<Entry>,
    /// Degrees per metre (lat, lon) for query margins, taken at the greatest |latitude| of any
    /// zone envelope, where a degree of longitude is shortest: a query box is never too small
    /// where it could meet a zone.
    deg_per_m: (f64, f64),
}

impl ZoneSet {
    pub fn new(zones: Vec<CompiledZone>) -> Self {
        let entries = zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let (min, max) = z.geometry.envelope_deg;
                GeomWithData::new(Rectangle::from_corners(min, max), i)
            })
            .collect();
        let inclusion = zones
            .iter()
            .enumerate()
            .filter(|(_, z)| z.kind == ZoneKind::Inclusion)
            .map(|(i, _)| i)
            .collect();
        let max_abs_lat = zones
            .iter()
            .map(|z| {
                let (min, max) = z.geometry.envelope_deg;
                min[1].abs().max(max[1].abs())
            })
            .fold(0.0, f64::max);
        Self {
            zones,
            inclusion,
            tree: RTree::bulk_load(entries),
            deg_per_m: metres_to_degrees(max_abs_lat, 1.0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// Zones whose envelope meets the box around the given points, widened by `margin_m`.
    pub fn candidates(&self, points: &[(f64, f64)], margin_m: f64, out: &mut Vec<usize>) {
        let (mut min, mut max) = ([f64::MAX; 2], [f64::MIN; 2]);
        for (lat, lon) in points {
            min = [min[0].min(*lon), min[1].min(*lat)];
            max = [max[0].max(*lon), max[1].max(*lat)];
        }
        let (dlat, dlon) = (self.deg_per_m.0 * margin_m, self.deg_per_m.1 * margin_m);
        let query = AABB::from_corners(
            [min[0] - dlon, min[1] - dlat],
            [max[0] + dlon, max[1] + dlat],
        );
        out.extend(
            self.tree
                .locate_in_envelope_intersecting(&query)
                .map(|e| e.data),
        );
    }
}
