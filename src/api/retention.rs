//! Retention and subject access over HTTP (admin only): run a purge now (optionally judged at an
//! injected `now`, if the config allows it), list past purge runs, and export everything held
//! about a person as one JSON document, streamed, audited with its purpose before any of it is
//! sent.

use super::audit::{purpose, record, Access};
use super::auth::Admin;
use super::error::ApiError;
use super::people::PurposeQuery;
use super::routes::ApiState;
use crate::model::time::parse_time;
use crate::retention::purge::wall_clock_ms;
use crate::retention::subject_access::{write_export, Sources};
use crate::retention::PurgeReport;
use crate::store::metadata::PurgeRun;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use std::io::Write;
use tokio::sync::mpsc;

#[derive(Deserialize, Default)]
pub struct RunParams {
    /// RFC 3339; judges retention at this time instead of the wall clock (config permitting).
    now: Option<String>,
}

pub async fn run(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    Query(p): Query<RunParams>,
) -> Result<Json<PurgeReport>, ApiError> {
    let now_ms = match &p.now {
        None => wall_clock_ms(),
        Some(_) if !state.retention.config.allow_now_override => {
            return Err(ApiError::bad_request(
                "'now' may not be given: retention.allow_now_override is off in the server config",
            ))
        }
        Some(t) => parse_time(t).map_err(ApiError::bad_request)?,
    };
    let purger = state.retention.clone();
    let trigger = format!("admin:{}", caller.0.name);
    let report = tokio::task::spawn_blocking(move || purger.run(now_ms, &trigger))
        .await
        .map_err(|e| ApiError::internal(format!("purge task: {e}")))?
        .map_err(|e| match e {
            crate::retention::RetentionError::NotLeaseHolder => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "not_lease_holder",
                e.to_string(),
            ),
            e => ApiError::internal(format!("purge stopped, nothing recorded: {e}")),
        })?;
    let why = purpose(&headers, None).unwrap_or_else(|_| "retention policy".into());
    record(
        &state,
        &caller,
        &why,
        Access {
            action: "retention.run",
            detail: Some(format!(
                "purge run {}: {} activations, {} people",
                report.run,
                report.activations.len(),
                report.people.len()
            )),
            ..Access::default()
        },
    )?;
    Ok(Json(report))
}

#[derive(Deserialize, Default)]
pub struct RunsParams {
    limit: Option<u32>,
}

pub async fn runs(
    State(state): State<ApiState>,
    _admin: Admin,
    Query(p): Query<RunsParams>,
) -> Result<Json<Vec<PurgeRun>>, ApiError> {
    Ok(Json(state.metadata.purge_runs(p.limit.unwrap_or(100))?))
}

/// A `Write` that hands the response body out in chunks as it is written.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK_BYTES: usize = 64 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

pub async fn export_person(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PurposeQuery>,
) -> Result<Response, ApiError> {
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    if state.metadata.person(&id)?.is_none() {
        return Err(ApiError::not_found(format!("person '{id}' not found")));
    }
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "sar.export",
            person: Some(&id),
            format: Some("json"),
            detail: Some("subject access export: everything held".into()),
            ..Access::default()
        },
    )?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(8);
    let (purger, live, person) = (state.retention.clone(), state.alerts.clone(), id.clone());
    let crimes = state.crimes.clone();
    tokio::task::spawn_blocking(move || {
        // The log is read whole: no compaction may erase a segment under it meanwhile.
        let _gate = purger.gate();
        live.sync_store_blocking();
        let sober_days = live.sober_days();
        let log_dir = purger.log_dir();
        let sources = Sources {
            metadata: &purger.metadata,
            alert_store: &purger.alert_store,
            trails: &purger.trails,
            batches: &|each| purger.log.for_each_batch(&log_dir, each),
            sober_days: &sober_days,
            crimes: Some(&crimes),
        };
        let out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
        };
        if let Err(e) = write_export(&sources, &person, wall_clock_ms(), out) {
            tracing::error!(person, error = %e, "subject access export stopped part-way");
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|c| c.map(Ok::<_, std::io::Error>))
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            ),
            (
                header::CONTENT_DISPOSITION,
                super::download::attachment(&format!("subject-access-{id}.json")),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
