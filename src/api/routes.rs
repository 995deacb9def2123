//! Routes: `/healthz`, `/readyz`, `/metrics` (open, no person data) and `/v1/*` (token required).

use super::auth::TokenSet;
use crate::formats::alerts_jsonl::write_alerts;
use crate::store::LiveAlerts;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters the API reports, shared with ingest and the pipeline.
#[derive(Default)]
pub struct Counters {
    pub committed_batches: AtomicU64,
    pub committed_readings: AtomicU64,
}

#[derive(Clone)]
pub struct ApiState {
    pub alerts: Arc<LiveAlerts>,
    pub tokens: TokenSet,
    pub counters: Arc<Counters>,
    pub ingest: Arc<crate::ingest::IngestContext>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/alerts", get(alerts_jsonl))
        .route("/v1/stats", get(stats))
        .route("/v1/stats/reset-latency", post(reset_latency))
        .with_state(state)
}

async fn alerts_jsonl(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(status) = state.tokens.check(&headers) {
        return status.into_response();
    }
    let mut body = Vec::new();
    if write_alerts(&mut body, &state.alerts.sorted()).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

async fn stats(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(status) = state.tokens.check(&headers) {
        return status.into_response();
    }
    Json(serde_json::json!({
        "committed_batches": state.counters.committed_batches.load(Ordering::Relaxed),
        "committed_readings": state.counters.committed_readings.load(Ordering::Relaxed),
        "duplicate_batches": state.ingest.duplicate_batches.load(Ordering::Relaxed),
        "alerts": state.alerts.count(),
        "alert_changes": state.alerts.changes.load(Ordering::Relaxed),
        "ingest_to_alert_latency": state.alerts.latency(),
        "connections": state.ingest.connections.load(Ordering::Relaxed),
        "rejected_frames": state.ingest.rejected_frames.load(Ordering::Relaxed),
    }))
    .into_response()
}

async fn reset_latency(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(status) = state.tokens.check(&headers) {
        return status.into_response();
    }
    state.alerts.reset_latency();
    StatusCode::NO_CONTENT.into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let c = &state.counters;
    let l = state.alerts.latency();
    let text = format!(
        "# TYPE tagstream_committed_batches_total counter\ntagstream_committed_batches_total {}\n\
         # TYPE tagstream_committed_readings_total counter\ntagstream_committed_readings_total {}\n\
         # TYPE tagstream_duplicate_batches_total counter\ntagstream_duplicate_batches_total {}\n\
         # TYPE tagstream_alerts gauge\ntagstream_alerts {}\n\
         # TYPE tagstream_ingest_connections_total counter\ntagstream_ingest_connections_total {}\n\
         # TYPE tagstream_rejected_frames_total counter\ntagstream_rejected_frames_total {}\n\
         # TYPE tagstream_ingest_to_alert_seconds summary\n\
         tagstream_ingest_to_alert_seconds{{quantile=\"0.5\"}} {}\n\
         tagstream_ingest_to_alert_seconds{{quantile=\"0.99\"}} {}\n\
         tagstream_ingest_to_alert_seconds_count {}\n",
        c.committed_batches.load(Ordering::Relaxed),
        c.committed_readings.load(Ordering::Relaxed),
        state.ingest.duplicate_batches.load(Ordering::Relaxed),
        state.alerts.count(),
        state.ingest.connections.load(Ordering::Relaxed),
        state.ingest.rejected_frames.load(Ordering::Relaxed),
        l.p50_us as f64 / 1e6,
        l.p99_us as f64 / 1e6,
        l.count,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
