//! Hits over HTTP: the hub lists, reads and reviews (confirm / reject with a reason) every hit;
//! police see only confirmed hits on their own force's crimes, and the trail of that person only
//! for the crime window plus a configured margin. A withdrawn hit is kept and served marked
//! `withdrawn` (lists show the reviewed ones unless asked otherwise: `withdrawn=`); it cannot be
//! reviewed (409). A hit is person data: every read states its
//! purpose and is audited. Also the per-batch 18-column CSV, the GeoJSON evidence file of a hit,
//! and the JSON Lines export that equals `tagstream replay`'s `hits.jsonl`.

use super::audit::{purpose, record, Access};
use super::auth::{Caller, Staff};
use super::crimes::force_scope;
use super::decision::submit_decision;
use super::download::attachment;
use super::error::ApiError;
use super::limits;
use super::routes::ApiState;
use crate::crime::evidence::{evidence_geojson, hits_csv, HitRow};
use crate::model::Change;
use crate::store::crime_store::{
    CrimeStoreError, HitDecision, HitFilter, HitState, StoredHit, WithdrawnFilter,
};
use crate::trail::export::ExportFormat;
use crate::trail::gaps::GapConfig;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
pub struct HitQuery {
    batch: Option<String>,
    state: Option<String>,
    person: Option<String>,
    limit: Option<u32>,
    purpose: Option<String>,
    format: Option<String>,
    /// `exclude`, `reviewed`, `include` or `only` (see [`WithdrawnFilter`]).
    withdrawn: Option<String>,
}

/// The `withdrawn` parameter, or `default` when absent.
fn withdrawn_filter(q: &HitQuery, default: WithdrawnFilter) -> Result<WithdrawnFilter, ApiError> {
    limits::check_opt("withdrawn", q.withdrawn.as_deref(), limits::ID_MAX_CHARS)?;
    match q.withdrawn.as_deref() {
        None => Ok(default),
        Some(w) => WithdrawnFilter::parse(w).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown withdrawn filter '{w}': use reviewed, include, only or exclude"
            ))
        }),
    }
}

/// The filter a caller may use: police are pinned to their force and to confirmed hits.
fn scoped_filter(caller: &Caller, q: &HitQuery) -> Result<HitFilter, ApiError> {
    let scope = force_scope(caller)?;
    for (field, value) in [
        ("batch", &q.batch),
        ("state", &q.state),
        ("person", &q.person),
    ] {
        limits::check_opt(field, value.as_deref(), limits::ID_MAX_CHARS)?;
    }
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(HitState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown hit state '{s}': use pending, confirmed or rejected"
            ))
        })?),
    };
    let state = match (&scope, state) {
        (Some(_), None | Some(HitState::Confirmed)) => Some(HitState::Confirmed),
        (Some(_), Some(_)) => return Err(ApiError::forbidden()),
        (None, s) => s,
    };
    // By default a withdrawn hit is listed when the hub had reviewed it (a decision someone may
    // have acted on stays visible, marked), not when nobody had looked at it yet.
    let withdrawn = withdrawn_filter(q, WithdrawnFilter::Reviewed)?;
    Ok(HitFilter {
        batch_id: q.batch.clone(),
        force: scope,
        state,
        person: q.person.clone(),
        limit: q.limit,
        withdrawn,
    })
}

/// A hit the caller may see, or 403 for police whatever the reason (no leak of existence).
pub(super) fn visible_hit(
    state: &ApiState,
    caller: &Caller,
    id: &str,
) -> Result<StoredHit, ApiError> {
    let scope = force_scope(caller)?;
    let hit = state.crimes.hit(id)?;
    match (scope, hit) {
        (None, Some(h)) => Ok(h),
        (None, None) => Err(ApiError::not_found(format!("hit '{id}' not found"))),
        (Some(force), Some(h)) if h.hit.force == force && h.review.state == HitState::Confirmed => {
            Ok(h)
        }
        (Some(_), _) => Err(ApiError::forbidden()),
    }
}

/// `GET /v1/hits`: hits by id, filtered by batch, state and person.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<HitQuery>,
) -> Result<Json<Vec<StoredHit>>, ApiError> {
    let filter = scoped_filter(&caller, &q)?;
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let hits = state.crimes.hits(&filter)?;
    let mut people: Vec<&str> = hits.iter().map(|h| h.hit.person.as_str()).collect();
    people.sort();
    people.dedup();
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "hits.list",
            detail: Some(format!("{} hits; people: {}", hits.len(), people.join(" "))),
            ..Access::default()
        },
    )?;
    Ok(Json(hits))
}

/// `GET /v1/hits/{id}`: one hit with its review and review history.
pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HitQuery>,
) -> Result<Json<Value>, ApiError> {
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let hit = visible_hit(&state, &caller, &id)?;
    audit_hit(&state, &caller, &purpose, "hits.read", &hit, None)?;
    let mut doc = json!(hit);
    if force_scope(&caller)?.is_none() {
        doc["review_history"] = json!(state.crimes.hit_reviews(&id)?);
    }
    Ok(Json(doc))
}

fn audit_hit(
    state: &ApiState,
    caller: &Caller,
    purpose: &str,
    action: &str,
    hit: &StoredHit,
    period: Option<(i64, i64)>,
) -> Result<(), ApiError> {
    record(
        state,
        caller,
        purpose,
        Access {
            action,
            person: Some(&hit.hit.person),
            from_ms: period.map(|p| p.0),
            to_ms: period.map(|p| p.1),
            detail: Some(format!(
                "hit {} on {} {} v{}",
                hit.hit.id, hit.hit.force, hit.hit.crime_ref, hit.hit.crime_version
            )),
            ..Access::default()
        },
    )
}

#[derive(Deserialize)]
pub struct ReviewBody {
    decision: HitDecision,
    reason: String,
}

/// `POST /v1/hits/{id}/review`: the hub confirms or rejects a hit, with a reason.
pub async fn review(
    State(state): State<ApiState>,
    Staff(caller): Staff,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> Result<Json<StoredHit>, ApiError> {
    limits::check("reason", &body.reason, limits::REASON_MAX_CHARS)?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "a reason is required to confirm or reject a hit",
        ));
    }
    let hit = state
        .crimes
        .hit(&id)?
        .ok_or_else(|| ApiError::not_found(format!("hit '{id}' not found")))?;
    // A withdrawn hit no longer holds: 409 before anything is written to the log (the store
    // refuses it too, should the matcher withdraw it before the decision is applied).
    if let Some(withdrawn) = hit.withdrawn {
        return Err(CrimeStoreError::Withdrawn {
            id,
            reason: withdrawn.reason,
        }
        .into());
    }
    audit_hit(&state, &caller, &body.reason, "hits.review", &hit, None)?;
    let change = Change::HitReview {
        hit: id.clone(),
        activation: hit.hit.activation.clone(),
        person: hit.hit.person.clone(),
        decision: body.decision,
        reason: body.reason,
    };
    submit_decision(&state, &caller.0.name, change).await?;
    let after = state
        .crimes
        .hit(&id)?
        .ok_or_else(|| ApiError::not_found(format!("hit '{id}' not found")))?;
    Ok(Json(after))
}

/// `GET /v1/hits/{id}/evidence`: the GeoJSON evidence file.
pub async fn evidence(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HitQuery>,
) -> Result<Response, ApiError> {
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let hit = visible_hit(&state, &caller, &id)?;
    audit_hit(&state, &caller, &purpose, "hits.evidence", &hit, None)?;
    let mut doc = evidence_geojson(&hit.hit);
    doc["properties"]["review"] = json!(hit.review);
    if let Some(withdrawn) = &hit.withdrawn {
        doc["properties"]["withdrawn"] = json!(withdrawn);
    }
    Ok((
        [(header::CONTENT_TYPE, "application/geo+json")],
        doc.to_string(),
    )
        .into_response())
}

/// `GET /v1/hits/{id}/trail`: the person's trail for the crime window plus the margin, in any
/// trail format; the only trail police can ever read. Only positions inside the activation's
/// period are the person's.
pub async fn trail(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HitQuery>,
) -> Result<Response, ApiError> {
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let hit = visible_hit(&state, &caller, &id)?;
    let format = match q.format.as_deref() {
        None => ExportFormat::GeoJson,
        Some(f) => ExportFormat::parse(f).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown format '{f}': use geojson, gpx, kml or csv"
            ))
        })?,
    };
    let margin_ms = state.crime_api.police_trail_margin_min * 60_000;
    let (from_ms, to_ms) = (hit.hit.crime_from - margin_ms, hit.hit.crime_to + margin_ms);
    audit_hit(
        &state,
        &caller,
        &purpose,
        "hits.trail",
        &hit,
        Some((from_ms, to_ms)),
    )?;
    // Only the activation's own positions: those inside its period now (a backdated end leaves
    // positions stored under it that are not the person's; an activation gone has none).
    let activation = state.directory.load().get(&hit.hit.activation).cloned();
    let readings: Vec<_> = state
        .trails
        .positions(&hit.hit.activation, from_ms, to_ms)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .into_iter()
        .filter(|r| r.t_ms >= from_ms && r.t_ms <= to_ms)
        .filter(|r| activation.as_ref().is_some_and(|a| a.covers(r.t_ms)))
        .collect();
    let body = format.render(
        &format!("hit {}", hit.hit.id),
        &readings,
        &GapConfig::default(),
    );
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

/// `GET /v1/crimes/batches/{batch_id}/hits.csv`: the hub's 18-column export of a batch's hits
/// (police: the confirmed ones of their force).
pub async fn batch_csv(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(batch_id): Path<String>,
    Query(mut q): Query<HitQuery>,
) -> Result<Response, ApiError> {
    q.batch = Some(batch_id.clone());
    let mut filter = scoped_filter(&caller, &q)?;
    // The 18 columns have no place for a withdrawal: the CSV lists current hits only.
    filter.withdrawn = WithdrawnFilter::Exclude;
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let hits = state.crimes.hits(&filter)?;
    // Only the activations and people these hits name, each read once.
    let activation_ids: Vec<&str> = hits.iter().map(|h| h.hit.activation.as_str()).collect();
    let activations = state.metadata.activations_with_ids(&activation_ids)?;
    let person_ids: Vec<&str> = hits.iter().map(|h| h.hit.person.as_str()).collect();
    let people_by_id = state.metadata.people_with_ids(&person_ids)?;
    let crimes = state.crimes.batch_crimes(&batch_id)?;
    let rows: Vec<HitRow> = hits
        .iter()
        .map(|h| {
            let other_info = crimes
                .iter()
                .find(|c| {
                    c["crime_ref"].as_str() == Some(h.hit.crime_ref.as_str())
                        && c["version"].as_u64() == Some(u64::from(h.hit.crime_version))
                })
                .and_then(|c| c["other_info"].as_str())
                .unwrap_or("");
            HitRow {
                hit: &h.hit,
                other_info,
                device_id: activations
                    .get(&h.hit.activation)
                    .map(|a| a.tag.as_str())
                    .unwrap_or(""),
                person: people_by_id.get(&h.hit.person),
            }
        })
        .collect();
    let mut people: Vec<&str> = hits.iter().map(|h| h.hit.person.as_str()).collect();
    people.sort();
    people.dedup();
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "hits.export",
            format: Some("csv"),
            detail: Some(format!(
                "batch {batch_id}: {} hits; people: {}",
                hits.len(),
                people.join(" ")
            )),
            ..Access::default()
        },
    )?;
    let csv = hits_csv(&rows).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                attachment(&format!("{batch_id}-hits.csv")),
            ),
        ],
        csv,
    )
        .into_response())
}

/// `GET /v1/hits/export`: every current hit as JSON Lines, by id (hub and admin): the same bytes
/// as `tagstream replay … --crimes …` writes to `hits.jsonl`. `withdrawn=include|only|reviewed`
/// adds withdrawn hits, each line with its `withdrawn` (replay has no reviews and never withdraws
/// what it never found, so the default leaves them out).
pub async fn export_jsonl(
    State(state): State<ApiState>,
    Staff(caller): Staff,
    headers: HeaderMap,
    Query(q): Query<HitQuery>,
) -> Result<Response, ApiError> {
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let withdrawn = withdrawn_filter(&q, WithdrawnFilter::Exclude)?;
    let mut body = Vec::new();
    let n = state.crimes.write_hits_jsonl_with(&mut body, withdrawn)?;
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "hits.export",
            format: Some("jsonl"),
            detail: Some(format!("{n} hits")),
            ..Access::default()
        },
    )?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}
