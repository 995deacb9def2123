//! Trails for review: a person's or an activation's positions over a bounded period (GeoJSON by
//! default, GPX, KML, CSV; paged; gap flags), places visited (stays) and daily summaries. Every
//! call states its purpose and is audited with the person, period and format.

use super::audit::{purpose, record, Access};
use super::auth::Caller;
use super::error::ApiError;
use super::people::visible_person;
use super::routes::ApiState;
use crate::model::time::parse_time;
use crate::model::{Activation, Condition, Reading};
use crate::trail::daily::{daily_summaries, DailyConfig};
use crate::trail::export::ExportFormat;
use crate::trail::gaps::GapConfig;
use crate::trail::geo::Place;
use crate::trail::stays::{find_stays, StayConfig};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct TrailParams {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    page: Option<usize>,
    purpose: Option<String>,
    min_dwell_min: Option<i64>,
    radius_m: Option<f64>,
}

fn period(state: &ApiState, p: &TrailParams) -> Result<(i64, i64), ApiError> {
    bounded_period(state, &p.from, &p.to)
}

/// A required `from`–`to` (RFC 3339) no longer than the configured maximum: every read of a
/// person's time series (trails, stays, daily summaries, alcohol chart) is bounded by it.
pub fn bounded_period(
    state: &ApiState,
    from: &Option<String>,
    to: &Option<String>,
) -> Result<(i64, i64), ApiError> {
    let need = |v: &Option<String>, name: &str| {
        v.as_deref()
            .ok_or_else(|| ApiError::bad_request(format!("'{name}' (RFC 3339) is required")))
            .and_then(|t| parse_time(t).map_err(ApiError::bad_request))
    };
    let (from_ms, to_ms) = (need(from, "from")?, need(to, "to")?);
    if to_ms <= from_ms {
        return Err(ApiError::bad_request("'to' must be after 'from'"));
    }
    let max_days = state.trail_api.max_period_days;
    if to_ms - from_ms > max_days * 86_400_000 {
        return Err(ApiError::bad_request(format!(
            "a request may cover at most {max_days} days; ask for a shorter period"
        )));
    }
    Ok((from_ms, to_ms))
}

/// Positions of the given activations within the period, merged in time order.
fn positions(
    state: &ApiState,
    activations: &[Activation],
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Reading>, ApiError> {
    let mut all = Vec::new();
    for a in activations {
        let lo = from_ms.max(a.from);
        let hi = a.to.map_or(to_ms, |t| t.min(to_ms));
        if hi < lo {
            continue;
        }
        all.extend(
            state
                .trails
                .positions(&a.id, lo, hi)
                .map_err(|e| ApiError::internal(e.to_string()))?,
        );
    }
    all.sort_by_key(|r| r.t_ms);
    Ok(all)
}

/// Known places of a person: curfew addresses, and point-and-radius or polygon zones.
fn places_of(state: &ApiState, person: &str) -> Result<(Vec<Place>, Vec<Place>), ApiError> {
    let (mut homes, mut places) = (Vec::new(), Vec::new());
    for order in &state.metadata.orders_of(person)? {
        for c in &order.conditions {
            match c {
                Condition::Curfew(curfew) => {
                    for a in &curfew.addresses {
                        let place = Place::Circle {
                            name: format!("address {}", a.id),
                            lat: a.lat,
                            lon: a.lon,
                            radius_m: a.radius_m,
                        };
                        homes.push(place.clone());
                        places.push(place);
                    }
                }
                Condition::ExclusionZone(z) | Condition::InclusionZone(z) => {
                    let coords = &z.geometry["coordinates"];
                    match z.geometry["type"].as_str() {
                        Some("Point") => {
                            if let (Some(lon), Some(lat), Some(r)) =
                                (coords[0].as_f64(), coords[1].as_f64(), z.radius_m)
                            {
                                places.push(Place::Circle {
                                    name: format!("zone {}", z.id),
                                    lat,
                                    lon,
                                    radius_m: r,
                                });
                            }
                        }
                        Some("Polygon") => {
                            let ring: Vec<(f64, f64)> = coords[0]
                                .as_array()
                                .map(|pts| {
                                    pts.iter()
                                        .filter_map(|p| Some((p[1].as_f64()?, p[0].as_f64()?)))
                                        .collect()
                                })
                                .unwrap_or_default();
                            if ring.len() >= 3 {
                                places.push(Place::Polygon {
                                    name: format!("zone {}", z.id),
                                    ring,
                                });
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }
    Ok((homes, places))
}

fn render(
    name: &str,
    readings: &[Reading],
    format: ExportFormat,
    page: usize,
    page_size: usize,
) -> Response {
    let total = readings.len();
    let pages = total.div_ceil(page_size).max(1);
    // Saturating: any `page` a client sends is a page past the end, never an overflow.
    let start = page.saturating_mul(page_size).min(total);
    let slice = &readings[start..start.saturating_add(page_size).min(total)];
    let body = format.render(name, slice, &GapConfig::default());
    let mut resp = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
    let h = resp.headers_mut();
    for (k, v) in [
        ("x-total-positions", total),
        ("x-page", page),
        ("x-pages", pages),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
            h.insert(k, v);
        }
    }
    resp
}

fn format_of(p: &TrailParams) -> Result<ExportFormat, ApiError> {
    match p.format.as_deref() {
        None => Ok(ExportFormat::GeoJson),
        Some(f) => ExportFormat::parse(f).ok_or_else(|| {
            ApiError::bad_request(format!("unknown format '{f}' (geojson, gpx, kml, csv)"))
        }),
    }
}

/// Reads, audits and renders the trail of `activations` (all of one person) for a request.
fn serve_trail(
    state: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    p: &TrailParams,
    person: &str,
    activations: &[Activation],
    name: &str,
) -> Result<Response, ApiError> {
    let purpose = purpose(headers, p.purpose.as_deref())?;
    visible_person(state, caller, person)?;
    let (from_ms, to_ms) = period(state, p)?;
    let format = format_of(p)?;
    let readings = positions(state, activations, from_ms, to_ms)?;
    record(
        state,
        caller,
        &purpose,
        Access {
            action: "trail.read",
            person: Some(person),
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            format: Some(format.extension()),
            detail: Some(format!("{name}: {} positions", readings.len())),
        },
    )?;
    Ok(render(
        name,
        &readings,
        format,
        p.page.unwrap_or(0),
        state.trail_api.page_positions,
    ))
}

pub async fn person_trail(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<TrailParams>,
) -> Result<Response, ApiError> {
    // Visibility first: nothing about a person is looked up for a caller who may not ask.
    if !caller.may_ask_about(&id) {
        return Err(ApiError::forbidden());
    }
    let activations = state.metadata.activations_of(&id)?;
    serve_trail(
        &state,
        &caller,
        &headers,
        &p,
        &id,
        &activations,
        &format!("person {id}"),
    )
}

pub async fn activation_trail(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<TrailParams>,
) -> Result<Response, ApiError> {
    // The purpose is asked for before anything is looked up: a 400 for a missing purpose must
    // not tell a caller that the activation exists when a missing one would give 403.
    purpose(&headers, p.purpose.as_deref())?;
    let Some(activation) = state.metadata.activations_by_id(&id)? else {
        return Err(caller.missing(&format!("activation '{id}'")));
    };
    let person = activation.person.clone();
    serve_trail(
        &state,
        &caller,
        &headers,
        &p,
        &person,
        &[activation],
        &format!("activation {id}"),
    )
}

/// The common start of a person-period read: stated purpose, visibility, bounded period, and the
/// person's positions in it.
fn person_positions(
    state: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    p: &TrailParams,
    id: &str,
) -> Result<(String, i64, i64, Vec<Reading>), ApiError> {
    let purpose = purpose(headers, p.purpose.as_deref())?;
    visible_person(state, caller, id)?;
    let (from_ms, to_ms) = period(state, p)?;
    let readings = positions(state, &state.metadata.activations_of(id)?, from_ms, to_ms)?;
    Ok((purpose, from_ms, to_ms, readings))
}

fn audit_period(
    state: &ApiState,
    caller: &Caller,
    purpose: &str,
    action: &str,
    id: &str,
    (from_ms, to_ms): (i64, i64),
) -> Result<(), ApiError> {
    record(
        state,
        caller,
        purpose,
        Access {
            action,
            person: Some(id),
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            ..Access::default()
        },
    )
}

/// The longest dwell a stay query may ask for: the longest period a request may cover.
const MAX_DWELL_MIN: i64 = 31 * 24 * 60;
/// The widest place a stay query may ask for.
const MAX_STAY_RADIUS_M: f64 = 10_000.0;

pub async fn stays(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<TrailParams>,
) -> Result<Response, ApiError> {
    let (purpose, from_ms, to_ms, readings) = person_positions(&state, &caller, &headers, &p, &id)?;
    let mut cfg = StayConfig::default();
    if let Some(m) = p.min_dwell_min {
        if !(1..=MAX_DWELL_MIN).contains(&m) {
            return Err(ApiError::bad_request(format!(
                "'min_dwell_min' must be between 1 and {MAX_DWELL_MIN} minutes"
            )));
        }
        cfg.min_dwell_ms = m * 60_000;
    }
    if let Some(r) = p.radius_m {
        if !(r.is_finite() && r > 0.0 && r <= MAX_STAY_RADIUS_M) {
            return Err(ApiError::bad_request(format!(
                "'radius_m' must be above 0 and at most {MAX_STAY_RADIUS_M} metres"
            )));
        }
        cfg.radius_m = r;
    }
    let (_, places) = places_of(&state, &id)?;
    let stays = find_stays(&readings, &cfg, &places);
    audit_period(
        &state,
        &caller,
        &purpose,
        "stays.read",
        &id,
        (from_ms, to_ms),
    )?;
    Ok(Json(serde_json::json!({"person": id, "min_dwell_ms": cfg.min_dwell_ms, "radius_m": cfg.radius_m, "stays": stays})).into_response())
}

pub async fn daily(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<TrailParams>,
) -> Result<Response, ApiError> {
    let (purpose, from_ms, to_ms, readings) = person_positions(&state, &caller, &headers, &p, &id)?;
    let (homes, _) = places_of(&state, &id)?;
    let days = daily_summaries(&readings, &homes, &DailyConfig::default());
    audit_period(
        &state,
        &caller,
        &purpose,
        "daily.read",
        &id,
        (from_ms, to_ms),
    )?;
    Ok(Json(serde_json::json!({"person": id, "days": days})).into_response())
}
