//! What a document is built from, read from the stores in one place, so the API and the offline
//! `tagstream report` command build the same document from the same data.

use super::breach_report::{
    BreachCondition, BreachReportInput, ConditionVersion, VersionBasis, POSITION_MARGIN_MS,
};
use super::hit_pack::HitPackInput;
use super::map_figure::TileSource;
use super::sober_day_report::{AlcoholEvent, SoberDayReportInput, EVENT_MARGIN_MS};
use super::DocumentError;
use crate::alerts::alert_store::StoredAlert;
use crate::model::parse_reading_line;
use crate::model::{
    Activation, Alert, AlertType, BatchSeq, Condition, ControlRecord, Order, Person, Reading,
    ReadingBody, SoberDay, TimeMs, Withdrawal,
};
use crate::orders::OrderBook;
use crate::rules::alcohol::rule::monitored_last_day;
use crate::rules::alcohol::sober_days::{local_date, local_day_bounds, local_midnight_ms};
use crate::store::crime_store::{CrimeStore, StoredHit};
use crate::store::metadata::ChangeEntry;
use crate::store::metadata::Metadata;
use crate::store::tac_book::TacBook;
use crate::store::trails::TrailStore;
use chrono::NaiveDate;

/// Everything a hit evidence pack needs besides the deployment's settings.
pub struct HitPackSources {
    pub stored: StoredHit,
    /// The crime row's free text.
    pub other_info: String,
    /// The tag of the hit's activation (empty when the activation is gone).
    pub device_id: String,
    pub person: Option<Person>,
    /// The batch each of the hit's positions came in, as the trail store holds it.
    pub position_batches: Vec<Option<BatchSeq>>,
}

impl HitPackSources {
    /// Reads what the pack of `stored` quotes: the crime's free text, the tag, the person, and
    /// the batch each of its positions came in.
    pub fn read(
        crimes: &CrimeStore,
        metadata: &Metadata,
        trails: &TrailStore,
        stored: StoredHit,
    ) -> Result<HitPackSources, DocumentError> {
        let h = &stored.hit;
        let other_info = crimes
            .crime_document(&h.force, &h.crime_ref, h.crime_version)?
            .and_then(|c| c["other_info"].as_str().map(str::to_string))
            .unwrap_or_default();
        let device_id = metadata
            .activations_with_ids(&[h.activation.as_str()])?
            .remove(&h.activation)
            .map(|a| a.tag.to_string())
            .unwrap_or_default();
        let person = metadata.person(&h.person)?;
        let times: Vec<(TimeMs, f64, f64)> =
            h.positions.iter().map(|p| (p.t, p.lat, p.lon)).collect();
        let position_batches = batches_of(trails, &h.activation, &times)?;
        Ok(HitPackSources {
            stored,
            other_info,
            device_id,
            person,
            position_batches,
        })
    }

    pub fn input<'a>(
        &'a self,
        declaration: &'a str,
        tiles: Option<&'a dyn TileSource>,
    ) -> HitPackInput<'a> {
        HitPackInput {
            stored: &self.stored,
            other_info: &self.other_info,
            device_id: &self.device_id,
            person: self.person.as_ref(),
            position_batches: &self.position_batches,
            declaration,
            tiles,
        }
    }
}

/// The batch each position `(t, lat, lon)` of `activation` came in, as the trail store holds
/// it: the stored position at that time and place (`None` when there is none, or the store does
/// not know its batch).
fn batches_of(
    trails: &TrailStore,
    activation: &str,
    positions: &[(TimeMs, f64, f64)],
) -> Result<Vec<Option<BatchSeq>>, crate::store::trails::TrailError> {
    let (Some(from_ms), Some(to_ms)) = (
        positions.iter().map(|p| p.0).min(),
        positions.iter().map(|p| p.0).max(),
    ) else {
        return Ok(Vec::new());
    };
    let stored = trails.positions_with_batches(activation, from_ms, to_ms)?;
    let same_place = |r: &Reading, lat: f64, lon: f64| match &r.body {
        ReadingBody::Position(p) => {
            (p.lat_e7 as f64 / 1e7 - lat).abs() < 1e-6 && (p.lon_e7 as f64 / 1e7 - lon).abs() < 1e-6
        }
        _ => false,
    };
    Ok(positions
        .iter()
        .map(|&(t, lat, lon)| {
            let start = stored.partition_point(|(r, _)| r.t_ms < t);
            stored[start..]
                .iter()
                .take_while(|(r, _)| r.t_ms == t)
                .find(|(r, _)| same_place(r, lat, lon))
                .and_then(|(_, batch)| *batch)
        })
        .collect())
}

/// What the caller asked a sober-day report for: the order (absent: the person's alcohol order
/// that started last) and the period's UK dates (absent: the order's start, and its end or the
/// last day the data reached, whichever is first).
#[derive(Clone, Debug, Default)]
pub struct SoberDayRequest {
    pub order: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// The deployment's cap on abstinence monitoring (`[rules.alcohol] abstinence_max_days`,
    /// the AAMR's 120 days): days past it are not monitored, so no report runs past them.
    pub abstinence_max_days: Option<u32>,
}

/// The longest period one report covers (an AML runs at most 12 months).
pub const MAX_REPORT_DAYS: i64 = 400;

/// Why a sober-day report cannot be made as asked.
#[derive(Debug, thiserror::Error)]
pub enum SoberDayRequestError {
    #[error("person '{0}' not found")]
    PersonNotFound(String),
    #[error("order '{0}' not found")]
    OrderNotFound(String),
    #[error("order '{order}' is not an order of person '{person}'")]
    NotTheirOrder { order: String, person: String },
    #[error("order '{0}' has no alcohol condition")]
    NotAlcohol(String),
    #[error("person '{0}' has no alcohol order")]
    NoAlcoholOrder(String),
    #[error("period: {0}")]
    Period(String),
    #[error(transparent)]
    Metadata(#[from] crate::store::metadata::MetadataError),
}

/// Everything a sober-day report needs, read from the stores: the API passes the live book and
/// TAC index, `tagstream report sober-days` what replaying the log rebuilds, so both build the
/// same report from the same data.
pub struct SoberDaySources {
    pub person: Person,
    pub order: Order,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The order's last monitored day (its end or the AAMR cap's), if it has one.
    pub monitored_to: Option<NaiveDate>,
    pub data_through: Option<NaiveDate>,
    pub days: Vec<SoberDay>,
    pub events: Vec<AlcoholEvent>,
    pub withdrawn_alerts: Vec<String>,
}

fn is_alcohol(order: &Order) -> bool {
    order
        .conditions
        .iter()
        .any(|c| matches!(c, Condition::Alcohol(_)))
}

fn is_alcohol_alert(alert_type: AlertType) -> bool {
    matches!(
        alert_type,
        AlertType::DrinkingEvent
            | AlertType::AlcoholObstruction
            | AlertType::AlcoholRemoval
            | AlertType::EnvironmentalAlcohol
    )
}

impl SoberDaySources {
    /// Reads what the report of `person` asks for from every sober day and alert held and the
    /// TAC index.
    pub fn gather(
        metadata: &Metadata,
        person: Person,
        request: &SoberDayRequest,
        all_days: Vec<SoberDay>,
        all_alerts: Vec<Alert>,
        tac: &TacBook,
    ) -> Result<SoberDaySources, SoberDayRequestError> {
        let order = match &request.order {
            Some(id) => {
                let order = metadata
                    .order(id)?
                    .ok_or_else(|| SoberDayRequestError::OrderNotFound(id.clone()))?;
                if order.person != person.id {
                    return Err(SoberDayRequestError::NotTheirOrder {
                        order: id.clone(),
                        person: person.id.clone(),
                    });
                }
                if !is_alcohol(&order) {
                    return Err(SoberDayRequestError::NotAlcohol(id.clone()));
                }
                order
            }
            None => metadata
                .orders_of(&person.id)?
                .into_iter()
                .filter(is_alcohol)
                .max_by(|a, b| (a.from, &a.id).cmp(&(b.from, &b.id)))
                .ok_or_else(|| SoberDayRequestError::NoAlcoholOrder(person.id.clone()))?,
        };
        let activations: Vec<Activation> = metadata
            .activations_of(&person.id)?
            .into_iter()
            .filter(|a| a.to.is_none_or(|to| to > local_midnight_ms(order.from)))
            .collect();
        let monitored_to = monitored_last_day(&order, request.abstinence_max_days);
        let order_days: Vec<SoberDay> = all_days
            .into_iter()
            .filter(|d| d.order == order.id)
            .collect();
        let latest_reading = activations
            .iter()
            .filter_map(|a| tac.latest_ms(&a.id))
            .max()
            .map(local_date);
        let data_through = order_days
            .iter()
            .map(|d| d.date)
            .max()
            .max(latest_reading)
            .map(|d| monitored_to.map_or(d, |last| d.min(last)));
        let from = request.from.unwrap_or(order.from).max(order.from);
        let default_to = match (monitored_to, data_through) {
            (Some(end), Some(data)) => end.min(data),
            (None, Some(data)) => data,
            (_, None) => from,
        };
        let to = request.to.unwrap_or(default_to);
        let to = monitored_to.map_or(to, |end| to.min(end));
        if to < from {
            return Err(SoberDayRequestError::Period(match monitored_to {
                Some(end) if from > end => format!(
                    "{from}: the order is monitored from {} to {end}; nothing after",
                    order.from
                ),
                _ => format!(
                    "{from} to {to}: the period ends before it starts (the order runs from {})",
                    order.from
                ),
            }));
        }
        if (to - from).num_days() >= MAX_REPORT_DAYS {
            return Err(SoberDayRequestError::Period(format!(
                "{from} to {to}: at most {MAX_REPORT_DAYS} days a report"
            )));
        }
        let days: Vec<SoberDay> = order_days
            .into_iter()
            .filter(|d| d.date >= from && d.date <= to)
            .collect();
        let (start_ms, end_ms) = (local_midnight_ms(from), local_day_bounds(to).1);
        let mut events = Vec::new();
        let mut withdrawn_alerts = Vec::new();
        for alert in all_alerts {
            let of_order = alert
                .details
                .as_ref()
                .is_none_or(|d| d.orders.is_empty() || d.orders.contains(&order.id));
            let overlaps = alert.start < end_ms && alert.end.is_none_or(|end| end > start_ms);
            if !is_alcohol_alert(alert.alert_type)
                || alert.person != person.id
                || !of_order
                || !overlaps
            {
                continue;
            }
            if alert.withdrawn.is_some() {
                withdrawn_alerts.push(alert.id);
                continue;
            }
            let window_from_ms = alert.start - EVENT_MARGIN_MS;
            let window_to_ms = alert.end.unwrap_or(alert.start) + EVENT_MARGIN_MS;
            let readings = tac.range(&alert.activation, window_from_ms, window_to_ms);
            events.push(AlcoholEvent {
                alert,
                window_from_ms,
                window_to_ms,
                readings,
            });
        }
        events.sort_by(|a, b| (a.alert.start, &a.alert.id).cmp(&(b.alert.start, &b.alert.id)));
        withdrawn_alerts.sort();
        Ok(SoberDaySources {
            person,
            order,
            from,
            to,
            monitored_to,
            data_through,
            days,
            events,
            withdrawn_alerts,
        })
    }

    pub fn input(&self) -> SoberDayReportInput<'_> {
        SoberDayReportInput {
            person: &self.person,
            order: &self.order,
            from: self.from,
            to: self.to,
            monitored_to: self.monitored_to,
            data_through: self.data_through,
            days: &self.days,
            events: &self.events,
            withdrawn_alerts: &self.withdrawn_alerts,
        }
    }
}

/// Why a breach report cannot be made for an alert.
#[derive(Debug, thiserror::Error)]
pub enum BreachRequestError {
    #[error("alert '{0}' is a {1} alert: breach reports are for curfew and zone alerts")]
    NotABreach(String, String),
    #[error("alert '{0}' as stored cannot be read: {1}")]
    Unreadable(String, String),
    #[error("person '{0}' not found")]
    PersonNotFound(String),
    #[error("reading the positions: {0}")]
    Trails(#[from] crate::store::trails::TrailError),
    #[error("the change history of person '{person}' does not rebuild their orders at log record {record}: {reason}")]
    History {
        person: String,
        record: u64,
        reason: String,
    },
    #[error(transparent)]
    Metadata(#[from] crate::store::metadata::MetadataError),
}

/// Everything a breach report needs: the alert, its review and history as the alert store
/// holds them, the person, the condition it was raised under, and the positions around it.
pub struct BreachSources {
    pub alert: Alert,
    pub evidence: Vec<Reading>,
    pub review: serde_json::Value,
    pub history: Vec<serde_json::Value>,
    pub person: Person,
    pub condition: BreachCondition,
    pub condition_version: Option<ConditionVersion>,
    pub positions: Vec<Reading>,
    /// The batch each of `positions` came in (`None` where the trail store does not know it).
    pub position_batches: Vec<Option<BatchSeq>>,
    pub window_from_ms: crate::model::TimeMs,
    pub window_to_ms: crate::model::TimeMs,
}

/// The person's order book as their change history rebuilds it from the records `admits`.
/// Every record it applies was accepted in the log (refused ones are skipped); one this
/// person-only book cannot apply means the history is not what the log built, and is an error.
fn book_from_history(
    person: &str,
    changes: &[ChangeEntry],
    admits: impl Fn(u64) -> bool,
) -> Result<OrderBook, BreachRequestError> {
    let mut book = OrderBook::default();
    for entry in changes
        .iter()
        .filter(|c| c.refused.is_none() && admits(c.record))
    {
        let broken = |reason: String| BreachRequestError::History {
            person: person.to_string(),
            record: entry.record,
            reason,
        };
        let control: ControlRecord =
            serde_json::from_value(entry.change.clone()).map_err(|e| broken(e.to_string()))?;
        book.apply(entry.record, &control).map_err(broken)?;
    }
    Ok(book)
}

/// The condition of the person's orders the alert was raised under, and the order version it
/// is quoted from: the version that governed the alert's UK day in the book as the alert last
/// stood — before the change that withdrew it, through the change that re-evaluated it, or
/// through the whole history when no change altered it.
fn condition_of(
    metadata: &Metadata,
    alert: &Alert,
) -> Result<(BreachCondition, Option<ConditionVersion>), BreachRequestError> {
    let changes = metadata.changes_of(&alert.person)?;
    let basis = match (&alert.withdrawn, alert.amended_by) {
        (
            Some(Withdrawal {
                change: Some(w), ..
            }),
            _,
        ) => VersionBasis::WithdrawnBy(*w),
        (_, Some(r)) => VersionBasis::AmendedBy(r),
        _ => VersionBasis::AsRaised {
            through_record: changes.last().map_or(0, |c| c.record),
        },
    };
    let book = book_from_history(&alert.person, &changes, |record| match basis {
        VersionBasis::WithdrawnBy(w) => record < w,
        VersionBasis::AmendedBy(r) => record <= r,
        VersionBasis::AsRaised { .. } => true,
    })?;
    let day = local_date(alert.start);
    for (order, version) in book.orders_on(&alert.person, day) {
        for c in &order.conditions {
            let condition = match (c, alert.alert_type) {
                (Condition::Curfew(curfew), AlertType::CurfewViolation) => {
                    BreachCondition::Curfew {
                        order: order.id.clone(),
                        curfew: curfew.clone(),
                    }
                }
                (Condition::ExclusionZone(zone), AlertType::ExclusionZoneEntry)
                | (Condition::InclusionZone(zone), AlertType::InclusionZoneExit)
                    if alert.zone.as_deref() == Some(zone.id.as_str()) =>
                {
                    BreachCondition::Zone {
                        order: order.id.clone(),
                        kind: c.type_name(),
                        zone: zone.clone(),
                    }
                }
                _ => continue,
            };
            let made_by = changes.iter().find(|e| e.record == version.record);
            return Ok((
                condition,
                Some(ConditionVersion {
                    record: version.record,
                    actor: made_by.map(|e| e.actor.clone()).unwrap_or_default(),
                    recorded_ms: made_by.map_or(0, |e| e.recorded),
                    effective_ms: version.effective_ms,
                    days_from: order.from,
                    days_to: order.to,
                    basis,
                }),
            ));
        }
    }
    Ok((BreachCondition::Gone, None))
}

impl BreachSources {
    /// Reads what the report of `stored` (with its review `history`) quotes.
    pub fn read(
        stored: StoredAlert,
        history: Vec<serde_json::Value>,
        metadata: &Metadata,
        trails: &TrailStore,
    ) -> Result<BreachSources, BreachRequestError> {
        let id = stored.alert["id"].as_str().unwrap_or_default().to_string();
        let unreadable = |e: String| BreachRequestError::Unreadable(id.clone(), e);
        let alert: Alert =
            serde_json::from_value(stored.alert.clone()).map_err(|e| unreadable(e.to_string()))?;
        if !matches!(
            alert.alert_type,
            AlertType::CurfewViolation
                | AlertType::ExclusionZoneEntry
                | AlertType::InclusionZoneExit
        ) {
            return Err(BreachRequestError::NotABreach(
                id,
                alert.alert_type.as_str().into(),
            ));
        }
        // The stored evidence is the contract's reading JSON, without the tag.
        let evidence = stored.alert["evidence"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r["tag"] = serde_json::json!("-");
                parse_reading_line(&r.to_string()).map(|t| t.reading)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(unreadable)?;
        let person = metadata
            .person(&alert.person)?
            .ok_or_else(|| BreachRequestError::PersonNotFound(alert.person.clone()))?;
        let (condition, condition_version) = condition_of(metadata, &alert)?;
        let window_from_ms = alert.start - POSITION_MARGIN_MS;
        let window_to_ms = alert.end.unwrap_or(alert.start) + POSITION_MARGIN_MS;
        let (positions, position_batches): (Vec<Reading>, Vec<Option<BatchSeq>>) = trails
            .positions_with_batches(&alert.activation, window_from_ms, window_to_ms)?
            .into_iter()
            .filter(|(r, _)| matches!(r.body, ReadingBody::Position(_)))
            .unzip();
        Ok(BreachSources {
            alert,
            evidence,
            review: serde_json::to_value(&stored.review).unwrap_or_default(),
            history,
            person,
            condition,
            condition_version,
            positions,
            position_batches,
            window_from_ms,
            window_to_ms,
        })
    }

    pub fn input<'a>(&'a self, tiles: Option<&'a dyn TileSource>) -> BreachReportInput<'a> {
        BreachReportInput {
            alert: &self.alert,
            evidence: &self.evidence,
            review: &self.review,
            history: &self.history,
            person: &self.person,
            condition: &self.condition,
            condition_version: self.condition_version.as_ref(),
            positions: &self.positions,
            position_batches: &self.position_batches,
            window_from_ms: self.window_from_ms,
            window_to_ms: self.window_to_ms,
            tiles,
        }
    }
}
