//! The sober-day report over HTTP: PDF, JSON of the same content, and manifest. Whoever may
//! read the person's sober days may have it (`visible_person`, as `alcohol`); purpose
//! required, audited. Built on the blocking pool from the live book and TAC index.

use super::audit::{purpose, record, Access};
use super::auth::Caller;
use super::documents::{document_part, PackPart};
use super::error::ApiError;
use super::people::visible_person;
use super::routes::ApiState;
use crate::documents::sober_day_report::sober_day_report;
use crate::documents::sources::{SoberDayRequest, SoberDayRequestError, SoberDaySources};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct SoberDayReportQuery {
    order: Option<String>,
    /// UK local dates, inclusive.
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    purpose: Option<String>,
}

async fn report_part(
    state: ApiState,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    q: SoberDayReportQuery,
    part: PackPart,
) -> Result<Response, ApiError> {
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let person = visible_person(&state, &caller, &id)?;
    let request = SoberDayRequest {
        order: q.order,
        from: q.from,
        to: q.to,
        abstinence_max_days: state.abstinence_max_days,
    };
    let sources = SoberDaySources::gather(
        &state.metadata,
        person,
        &request,
        state.alerts.sober_days(),
        state.alerts.sorted(),
        &state.tac,
    )
    .map_err(|e| match e {
        SoberDayRequestError::Metadata(e) => ApiError::from(e),
        SoberDayRequestError::NotAlcohol(_) | SoberDayRequestError::Period(_) => {
            ApiError::bad_request(e.to_string())
        }
        SoberDayRequestError::OrderNotFound(order)
        | SoberDayRequestError::NotTheirOrder { order, .. } => {
            caller.missing(&format!("order '{order}'"))
        }
        SoberDayRequestError::PersonNotFound(_) | SoberDayRequestError::NoAlcoholOrder(_) => {
            ApiError::not_found(e.to_string())
        }
    })?;
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "documents.sober_day_report",
            person: Some(&id),
            format: Some(part.format()),
            detail: Some(format!(
                "order {} {} to {}",
                sources.order.id, sources.from, sources.to
            )),
            ..Access::default()
        },
    )?;
    let files = tokio::task::spawn_blocking(move || sober_day_report(&sources.input()))
        .await
        .map_err(|e| ApiError::internal(format!("building the report: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(document_part(part, files.into_named()))
}

/// `GET /v1/people/{id}/sober-day-report.pdf`.
pub async fn sober_day_report_pdf(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<SoberDayReportQuery>,
) -> Result<Response, ApiError> {
    report_part(state, caller, headers, id, q, PackPart::Pdf).await
}

/// `GET /v1/people/{id}/sober-day-report.json`: the same content as JSON.
pub async fn sober_day_report_json(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<SoberDayReportQuery>,
) -> Result<Response, ApiError> {
    report_part(state, caller, headers, id, q, PackPart::Json).await
}

/// `GET /v1/people/{id}/sober-day-report-manifest.json`: SHA-256 of both files and their inputs.
pub async fn sober_day_report_manifest(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<SoberDayReportQuery>,
) -> Result<Response, ApiError> {
    report_part(state, caller, headers, id, q, PackPart::Manifest).await
}
