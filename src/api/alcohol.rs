//! Alcohol orders over the API: the sober-day record and rate of an order, the pooled rate of a
//! cohort of orders, and an SVG chart of TAC, IR and temperature with events and day statuses.
//! Person data: purpose required, audited.

use super::audit::{purpose, record, Access};
use super::auth::Caller;
use super::error::ApiError;
use super::people::visible_person;
use super::routes::ApiState;
use crate::model::{AlertType, SoberDay};
use crate::rules::alcohol::{sober_day_rate, sober_day_rates_by_order, tac_chart_svg};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::collections::HashSet;

#[derive(Deserialize, Default)]
pub struct DaysParams {
    /// UK local dates, inclusive.
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    /// Comma-separated order ids (cohort); absent = every alcohol order the caller may see.
    orders: Option<String>,
    purpose: Option<String>,
}

fn in_dates(day: &SoberDay, p: &DaysParams) -> bool {
    p.from.is_none_or(|f| day.date >= f) && p.to.is_none_or(|t| day.date <= t)
}

pub async fn order_sober_days(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<DaysParams>,
) -> Result<Response, ApiError> {
    let purpose = purpose(&headers, p.purpose.as_deref())?;
    let Some(order) = state.metadata.order(&id)? else {
        return Err(caller.missing(&format!("order '{id}'")));
    };
    visible_person(&state, &caller, &order.person)?;
    let days: Vec<SoberDay> = state
        .alerts
        .sober_days()
        .into_iter()
        .filter(|d| d.order == id && in_dates(d, &p))
        .collect();
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "sober_days.read",
            person: Some(&order.person),
            detail: Some(format!("order {id}: {} days", days.len())),
            ..Access::default()
        },
    )?;
    let rate = sober_day_rate(&days);
    Ok(
        Json(serde_json::json!({"order": id, "person": order.person, "rate": rate, "days": days}))
            .into_response(),
    )
}

pub async fn cohort_rate(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Query(p): Query<DaysParams>,
) -> Result<Response, ApiError> {
    let purpose = purpose(&headers, p.purpose.as_deref())?;
    if matches!(caller.role(), crate::store::metadata::Role::Police { .. }) {
        return Err(ApiError::forbidden());
    }
    let wanted: Option<Vec<&str>> = p
        .orders
        .as_deref()
        .map(|s| s.split(',').map(str::trim).collect());
    let visible_orders: HashSet<String> = state
        .metadata
        .order_ids_visible(caller.scope(), wanted.as_deref())?
        .into_iter()
        .collect();
    if let Some(w) = &wanted {
        if let Some(missing) = w.iter().find(|id| !visible_orders.contains(**id)) {
            return Err(
                if matches!(
                    caller.role(),
                    crate::store::metadata::Role::Practitioner { .. }
                ) {
                    ApiError::forbidden()
                } else {
                    ApiError::not_found(format!("order '{missing}' not found"))
                },
            );
        }
    }
    let days: Vec<SoberDay> = state
        .alerts
        .sober_days()
        .into_iter()
        .filter(|d| visible_orders.contains(&d.order) && in_dates(d, &p))
        .collect();
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "sober_days.rate",
            detail: Some(format!("{} orders", visible_orders.len())),
            ..Access::default()
        },
    )?;
    Ok(Json(serde_json::json!({
        "pooled": sober_day_rate(&days),
        "by_order": sober_day_rates_by_order(&days),
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
pub struct ChartParams {
    from: Option<String>,
    to: Option<String>,
    purpose: Option<String>,
}

pub async fn chart(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<ChartParams>,
) -> Result<Response, ApiError> {
    let purpose = purpose(&headers, p.purpose.as_deref())?;
    let Some(activation) = state.metadata.activations_by_id(&id)? else {
        return Err(caller.missing(&format!("activation '{id}'")));
    };
    visible_person(&state, &caller, &activation.person)?;
    let (from_ms, to_ms) = super::trails::bounded_period(&state, &p.from, &p.to)?;
    let readings = state.tac.range(&id, from_ms, to_ms);
    let alerts: Vec<_> = state
        .alerts
        .sorted()
        .into_iter()
        .filter(|a| {
            a.activation == id
                && matches!(
                    a.alert_type,
                    AlertType::DrinkingEvent
                        | AlertType::AlcoholObstruction
                        | AlertType::AlcoholRemoval
                        | AlertType::EnvironmentalAlcohol
                )
        })
        .collect();
    let days: Vec<SoberDay> = state
        .alerts
        .sober_days()
        .into_iter()
        .filter(|d| d.activation == id)
        .collect();
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "alcohol_chart.read",
            person: Some(&activation.person),
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            format: Some("svg"),
            detail: Some(format!("activation {id}: {} readings", readings.len())),
        },
    )?;
    let svg = tac_chart_svg(&readings, &alerts, &days, from_ms, to_ms);
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
