//! Crime batches over HTTP: police upload their force's daily batch (the hub may upload any
//! force's), and see the validation report, the stored batches and their crimes. Police are bound
//! to their force: another force's batch is 403 whether or not it exists.

use super::auth::{Caller, CrimeUser, Staff};
use super::error::ApiError;
use super::routes::ApiState;
use crate::crime::import::{parse, store, ImportError};
use crate::crime::PoliceCsvRules;
use crate::store::crime_store::CrimeStoreError;
use crate::store::metadata::Role;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Limits of crime uploads and of police disclosure (`[crime_api]`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrimeApiConfig {
    /// Largest batch file accepted.
    pub max_upload_bytes: usize,
    /// The longest crime window a batch may carry (domain page: 12 hours).
    pub max_window_h: i64,
    /// Police see a hit's trail for the crime window plus this margin either side.
    pub police_trail_margin_min: i64,
}

impl Default for CrimeApiConfig {
    fn default() -> Self {
        CrimeApiConfig {
            max_upload_bytes: 64 << 20,
            max_window_h: 12,
            police_trail_margin_min: 30,
        }
    }
}

impl CrimeApiConfig {
    pub fn csv_rules(&self) -> PoliceCsvRules {
        PoliceCsvRules {
            max_window_ms: self.max_window_h * 3_600_000,
        }
    }
}

impl From<CrimeStoreError> for ApiError {
    fn from(e: CrimeStoreError) -> Self {
        match e {
            CrimeStoreError::HitNotFound(id) => {
                ApiError::not_found(format!("hit '{id}' not found"))
            }
            CrimeStoreError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m)
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
    if !(radius_m.is_finite() && (1.0..=5_000.0).contains(&radius_m)) {
        return Err(ApiError::bad_request(
            "'radius_m' must be between 1 and 5000 metres",
        ));
    }
    let source = q.filename.unwrap_or_else(|| "upload.csv".into());
    let rules = state.crime_api.csv_rules();
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
    let (crimes, hits, user) = (
        state.crimes.clone(),
        state.hits.clone(),
        caller.0.name.clone(),
    );
    let doc = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let (mut doc, new_versions) = store(&crimes, &source, &report, radius_m, &user, now_ms())
            .map_err(|ImportError::Store(e)| ApiError::from(e))?;
        let summary = hits.match_new_crimes(new_versions);
        doc["matching"] = json!(summary);
        Ok(doc)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(doc))
}

/// `GET /v1/crimes/batches`: newest first; police see their force's only.
pub async fn list_batches(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let scope = force_scope(&caller)?;
    Ok(Json(json!(state.crimes.batches(scope.as_deref())?)))
}

/// `GET /v1/crimes/batches/{batch_id}`: the report and every crime version the batch stored.
pub async fn get_batch(
    State(state): State<ApiState>,
    caller: Caller,
    Path(batch_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let scope = force_scope(&caller)?;
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
    let mut doc = json!(batch);
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
