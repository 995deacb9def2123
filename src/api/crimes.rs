//! Crime batches over HTTP: police upload their force's daily batch (the hub may upload any
//! force's), and see the validation report, the stored batches and their crimes. Police are bound
//! to their force: another force's batch is 403 whether or not it exists. Police never learn of
//! unconfirmed hits (no matching summary in their upload's answer; their batch list counts
//! confirmed hits only), uploads are bounded per force in rows and vicinity radius, and an upload
//! that leaves more pending hits than the configured bound is flagged `bulk` for the hub. A
//! validated batch is a control record: durable in the log before it is stored and matched.

use super::auth::{Caller, CrimeUser, Staff};
use super::error::ApiError;
use super::limits;
use super::routes::ApiState;
use crate::crime::import::{parse, report_json};
use crate::crime::PoliceCsvRules;
use crate::model::Change;
use crate::store::crime_store::{CrimeStoreError, StoredBatch};
use crate::store::metadata::Role;
use crate::topology::control_gate::ControlError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

impl From<CrimeStoreError> for ApiError {
    fn from(e: CrimeStoreError) -> Self {
        match e {
            CrimeStoreError::HitNotFound(id) => {
                ApiError::not_found(format!("hit '{id}' not found"))
            }
            CrimeStoreError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
            }
            e @ CrimeStoreError::Withdrawn { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// The force a caller is bound to: `Some(force)` for police, `None` for hub and admin; other
/// roles have no business with crimes.
pub fn force_scope(caller: &Caller) -> Result<Option<String>, ApiError> {
    match caller.role() {
        Role::Admin | Role::Hub => Ok(None),
        Role::Police { force } => Ok(Some(force.clone())),
        Role::Practitioner { .. } => Err(ApiError::forbidden()),
    }
}

#[derive(Deserialize, Default)]
pub struct UploadParams {
    /// Vicinity radius for this batch's crimes (default: the hit rule's).
    radius_m: Option<f64>,
    /// File name, for the report.
    filename: Option<String>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `POST /v1/crimes/batches`: the body is the batch CSV. Answers with the validation report
/// (status successful / partial / failed, every bad row with line, code, message and action),
/// the versions stored and the hits the batch produced against stored trails.
pub async fn upload(
    State(state): State<ApiState>,
    CrimeUser(caller): CrimeUser,
    Query(q): Query<UploadParams>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let scope = force_scope(&caller)?;
    limits::check_opt(
        "filename",
        q.filename.as_deref(),
        limits::FILENAME_MAX_CHARS,
    )?;
    if body.len() > state.crime_api.max_upload_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "a batch may be at most {} bytes; split it",
                state.crime_api.max_upload_bytes
            ),
        ));
    }
    let radius_m = q.radius_m.unwrap_or(state.hits_config.radius_m);
    let check_radius = |force: Option<&str>| {
        let max = force.map_or(state.crime_api.max_radius_m, |f| {
            state.crime_api.max_radius_for(f)
        });
        if radius_m.is_finite() && (1.0..=max).contains(&radius_m) {
            Ok(())
        } else {
            let whose = force.map_or("a batch".to_string(), |f| format!("{f}'s batches"));
            Err(ApiError::bad_request(format!(
                "'radius_m' must be between 1 and {max} metres (the limit for {whose})"
            )))
        }
    };
    // Police: the limits of their own force, before anything is parsed.
    if let Some(force) = &scope {
        check_radius(Some(force))?;
    }
    let source = q.filename.unwrap_or_else(|| "upload.csv".into());
    let rules = PoliceCsvRules::from(&state.crime_api);
    // A police user may only send its own force's batch: refused outright when the batch (by
    // the force most rows name) is another force's; rows of other forces inside its own batch
    // are rejected row by row in the report.
    let mut report = parse(&body, None, &rules);
    if let Some(force) = &scope {
        if let Some(other) = report.force.filter(|f| f.id != force) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this batch carries {}'s crimes, but you may only upload {force}'s",
                    other.id
                ),
            ));
        }
        report = parse(&body, Some(force), &rules);
    }
    // The batch's force decides the limits (the hub filing a force's batch is held to them
    // too); a batch without a force stores nothing anyway.
    let batch_force = scope
        .clone()
        .or_else(|| report.force.map(|f| f.id.to_string()));
    check_radius(batch_force.as_deref())?;
    if let Some(force) = &batch_force {
        let max_rows = state.crime_api.max_rows_for(force);
        if report.rows > max_rows {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_rows",
                format!(
                    "a batch may hold at most {max_rows} rows (the limit for {force}'s batches); \
                     this one has {}: split it",
                    report.rows
                ),
            ));
        }
    }
    let user = caller.0.name.clone();
    let mut doc = report_json(&source, &report);
    if report.batch_id.is_none() {
        // No row had a valid batch id: nothing to file it under, nothing for the log.
        doc["stored"] = json!(false);
        return Ok(Json(doc));
    }
    // The batch is a control record: durable in the log, then stored (its versions numbered)
    // by the crime store at its log position, before it is matched.
    let change = Change::CrimeBatch {
        source,
        radius_m,
        report: doc,
        crimes: report.crimes,
    };
    let (record, answer) = match state.control.submit_answered(&user, None, change).await {
        Ok((record, Some(answer))) => (record, answer),
        Ok((record, None)) => {
            return Err(ApiError::internal(format!(
            "crime batch record {record} was stored in the log but the crime store gave no report"
        )))
        }
        Err(ControlError::Refused(m)) => return Err(ApiError::internal(m)),
        Err(ControlError::TooLarge(e)) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("{e}: split the batch"),
            ))
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    let mut doc = answer["report"].clone();
    let (crimes, hits) = (state.crimes.clone(), state.hits.clone());
    let bulk_threshold = state.crime_api.bulk_pending_hits;
    let police = scope.is_some();
    let doc = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        // This node's view submitted the batch for matching when it applied the record.
        let summary = hits.matched(record).ok_or_else(|| {
            ApiError::internal(format!(
                "crime batch record {record} was stored but this node did not match it"
            ))
        })?;
        let flag = match doc["batch_id"].as_str() {
            Some(batch_id) => Some(crimes.flag_bulk_pending(batch_id, bulk_threshold)?),
            None => None,
        };
        // Police learn nothing of unconfirmed hits: not whether the upload produced any, not
        // how many (a one-row batch with a wide radius would tell where tagged people were).
        if !police {
            doc["matching"] = json!(summary);
            if let Some(flag) = flag {
                doc["pending_hits"] = json!(flag.pending_hits);
                doc["bulk"] = json!(flag.bulk);
            }
        }
        Ok(doc)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(doc))
}

/// A stored batch as the caller may see it: police get the count of confirmed hits only, and
/// nothing about pending or rejected ones (hub and admin see every count and the bulk flag).
fn batch_view(batch: &StoredBatch, police: bool) -> Value {
    let mut doc = json!(batch);
    if police {
        if let Some(map) = doc.as_object_mut() {
            map.insert("hits".into(), json!(batch.confirmed_hits));
            for hidden in [
                "confirmed_hits",
                "pending_hits",
                "withdrawn_hits",
                "bulk",
                "bulk_flagged_at",
            ] {
                map.remove(hidden);
            }
        }
    }
    doc
}

/// `GET /v1/crimes/batches`: newest first; police see their force's only.
pub async fn list_batches(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let scope = force_scope(&caller)?;
    let police = scope.is_some();
    let batches = state.crimes.batches(scope.as_deref())?;
    Ok(Json(Value::Array(
        batches.iter().map(|b| batch_view(b, police)).collect(),
    )))
}

/// `GET /v1/crimes/batches/{batch_id}`: the report and every crime version the batch stored.
pub async fn get_batch(
    State(state): State<ApiState>,
    caller: Caller,
    Path(batch_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let scope = force_scope(&caller)?;
    limits::check("batch_id", &batch_id, limits::ID_MAX_CHARS)?;
    let batch = state.crimes.batch(&batch_id)?;
    let batch = match (batch, &scope) {
        (Some(b), Some(force)) if b.report["force"].as_str() != Some(force) => {
            return Err(ApiError::forbidden())
        }
        (Some(b), _) => b,
        (None, Some(_)) => return Err(ApiError::forbidden()),
        (None, None) => return Err(ApiError::not_found(format!("batch '{batch_id}' not found"))),
    };
    let crimes = state.crimes.batch_crimes(&batch_id)?;
    let mut doc = batch_view(&batch, scope.is_some());
    doc["crimes"] = json!(crimes);
    Ok(Json(doc))
}

/// `POST /v1/crimes/public` (hub, admin): a data.police.uk street-level file as a map overlay
/// (month precision, never matched for hits). Rows without coordinates are reported and skipped;
/// re-uploading a file of the same name replaces its rows.
pub async fn upload_public(
    State(state): State<ApiState>,
    _staff: Staff,
    Query(q): Query<UploadParams>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    limits::check_opt(
        "filename",
        q.filename.as_deref(),
        limits::FILENAME_MAX_CHARS,
    )?;
    let source = q.filename.unwrap_or_else(|| "street.csv".into());
    let import = crate::crime::parse_public_csv(&body)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()))?;
    let rows: Vec<Value> = import.crimes.iter().map(|c| json!(c)).collect();
    let crimes = state.crimes.clone();
    let stored_source = source.clone();
    let stored = tokio::task::spawn_blocking(move || crimes.import_public(&stored_source, &rows))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({
        "source": source,
        "rows": import.rows,
        "imported": stored,
        "skipped": import.skipped,
        "duplicate_ids": import.duplicate_ids,
    })))
}

#[derive(Deserialize, Default)]
pub struct OverlayParams {
    /// `YYYY-MM`.
    month: Option<String>,
    /// `min_lon,min_lat,max_lon,max_lat`.
    bbox: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/crimes/overlay`: public street-level crimes as GeoJSON points (any signed-in role:
/// the data is public and anonymised).
pub async fn overlay(
    State(state): State<ApiState>,
    _caller: Caller,
    Query(q): Query<OverlayParams>,
) -> Result<Response, ApiError> {
    limits::check_opt("month", q.month.as_deref(), limits::ID_MAX_CHARS)?;
    limits::check_opt("bbox", q.bbox.as_deref(), limits::ID_MAX_CHARS)?;
    let bbox = match q.bbox.as_deref() {
        None => None,
        Some(text) => {
            let v: Vec<f64> = text
                .split(',')
                .map(|p| p.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    ApiError::bad_request("'bbox' must be min_lon,min_lat,max_lon,max_lat")
                })?;
            match v[..] {
                [a, b, c, d] if a <= c && b <= d => Some((a, b, c, d)),
                _ => {
                    return Err(ApiError::bad_request(
                        "'bbox' must be min_lon,min_lat,max_lon,max_lat with min ≤ max",
                    ))
                }
            }
        }
    };
    let limit = q.limit.unwrap_or(5_000).min(50_000);
    let rows = state
        .crimes
        .public_crimes(q.month.as_deref(), bbox, limit)?;
    let features: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                "properties": {
                    "kind": "public_crime", "crime_id": r["crime_id"], "month": r["month"],
                    "crime_type": r["crime_type"], "location": r["location"],
                    "falls_within": r["falls_within"], "acquisitive": r["acquisitive"],
                    "last_outcome": r["last_outcome"],
                }
            })
        })
        .collect();
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/geo+json")],
        json!({"type": "FeatureCollection", "features": features}).to_string(),
    )
        .into_response())
}
