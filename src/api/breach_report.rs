//! The breach report over HTTP: PDF, JSON of the same content, and manifest, for one curfew or
//! zone alert. Whoever may read the alert may have it (police never; a practitioner for the
//! people on the caseload); purpose required, audited. Built on the blocking pool.

use super::alerts::{scope, store, visible_alert};
use super::audit::{purpose, record, Access};
use super::auth::Caller;
use super::documents::{document_part, PackPart};
use super::error::ApiError;
use super::people::PurposeQuery;
use super::routes::ApiState;
use crate::documents::breach_report::breach_report;
use crate::documents::sources::{BreachRequestError, BreachSources};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;

async fn report_part(
    state: ApiState,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    q: PurposeQuery,
    part: PackPart,
) -> Result<Response, ApiError> {
    let people = scope(&state, &caller)?;
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let (stored, person) = visible_alert(&state, people.as_deref(), &id).await?;
    let history = store(&state)?.review_history(&id)?;
    let sources = BreachSources::read(stored, history, &state.metadata, &state.trails).map_err(
        |e| match e {
            BreachRequestError::NotABreach(..) => ApiError::bad_request(e.to_string()),
            BreachRequestError::Metadata(e) => ApiError::from(e),
            other => ApiError::internal(other.to_string()),
        },
    )?;
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "documents.breach_report",
            person: Some(&person),
            format: Some(part.format()),
            detail: Some(format!("alert {id}")),
            ..Access::default()
        },
    )?;
    let tiles = state.tiles.clone();
    let files =
        tokio::task::spawn_blocking(move || breach_report(&sources.input(tiles.as_deref())))
            .await
            .map_err(|e| ApiError::internal(format!("building the report: {e}")))?
            .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(document_part(part, files.into_named(&id)))
}

/// `GET /v1/alerts/{id}/breach-report.pdf`.
pub async fn breach_report_pdf(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PurposeQuery>,
) -> Result<Response, ApiError> {
    report_part(state, caller, headers, id, q, PackPart::Pdf).await
}

/// `GET /v1/alerts/{id}/breach-report.json`: the same content as JSON.
pub async fn breach_report_json(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PurposeQuery>,
) -> Result<Response, ApiError> {
    report_part(state, caller, headers, id, q, PackPart::Json).await
}

/// `GET /v1/alerts/{id}/breach-report-manifest.json`.
pub async fn breach_report_manifest(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PurposeQuery>,
) -> Result<Response, ApiError> {
    report_part(state, caller, headers, id, q, PackPart::Manifest).await
}
