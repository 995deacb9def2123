//! The router: `/healthz`, `/readyz`, `/metrics` (open, no person data), `/openapi.json`, and
//! `/v1/*` (bearer token, role checks, audit of person data).

use super::auth::{BootstrapToken, Staff};
use super::error::ApiError;
use super::{
    admin, alcohol, alerts, breach_report, crimes, devices, documents, hits, people, retention,
    sober_day_report, trails,
};
use crate::alerts::LiveAlerts;
use crate::store::metadata::Metadata;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Counters the API reports (the forwarder counts what the log commits).
pub use crate::topology::forwarder::Counters;

#[derive(Clone)]
pub struct ApiState {
    pub metadata: Metadata,
    pub bootstrap: BootstrapToken,
    pub alerts: Arc<LiveAlerts>,
    pub counters: Arc<Counters>,
    pub ingest: Arc<crate::ingest::IngestContext>,
    pub trails: crate::store::trails::TrailStore,
    pub trail_api: crate::config::TrailApiConfig,
    pub tac: Arc<crate::store::tac_book::TacBook>,
    /// Each activation's newest reading of any kind.
    pub last_contact: Arc<crate::store::last_contact::LastContactBook>,
    pub crimes: crate::store::crime_store::CrimeStore,
    pub hits: crate::crime::service::HitService,
    pub hits_config: crate::rules::hits::HitsConfig,
    /// `[rules.alcohol] abstinence_max_days`: how far a sober-day report can run.
    pub abstinence_max_days: Option<u32>,
    pub crime_api: crate::config::CrimeApiConfig,
    pub directory: crate::pipeline::SharedDirectory,
    /// Where API writes to people, activations and orders enter the log.
    pub control: Arc<crate::topology::control_gate::ControlGate>,
    /// The purge job (scheduled, admin route) and the stores a subject access export reads.
    pub retention: Arc<crate::retention::Purger>,
    /// System alerts (ingest silent) and the pipeline's clock gauges.
    pub system: Arc<crate::metrics::silence_watch::SystemHealth>,
    /// What documents carry (`[documents]`).
    pub documents: crate::config::DocumentsConfig,
    /// Street tiles documents' maps are drawn on (the console's archive), if any.
    pub tiles: Option<Arc<dyn crate::documents::map_figure::TileSource>>,
}

/// The OpenAPI description of every route (kept in step with the router by a test).
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON) }),
        )
        .route("/v1/me", get(super::auth::me))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/export", get(alerts::export_jsonl))
        .route("/v1/alerts/count", get(alerts::count))
        .route("/v1/alerts/stream", get(alerts::stream))
        .route("/v1/alerts/{id}", get(alerts::get_one))
        .route("/v1/alerts/{id}/{action}", post(alerts::act))
        .route(
            "/v1/crimes/batches",
            get(crimes::list_batches)
                .post(crimes::upload)
                .layer(DefaultBodyLimit::max(state.crime_api.max_upload_bytes + 1)),
        )
        .route("/v1/crimes/batches/{batch_id}", get(crimes::get_batch))
        .route(
            "/v1/crimes/public",
            post(crimes::upload_public)
                .layer(DefaultBodyLimit::max(state.crime_api.max_upload_bytes + 1)),
        )
        .route("/v1/crimes/overlay", get(crimes::overlay))
        .route(
            "/v1/crimes/batches/{batch_id}/hits.csv",
            get(hits::batch_csv),
        )
        .route("/v1/hits", get(hits::list))
        .route("/v1/hits/export", get(hits::export_jsonl))
        .route("/v1/hits/{id}", get(hits::get_one))
        .route("/v1/hits/{id}/pack.pdf", get(documents::hit_pack_pdf))
        .route("/v1/hits/{id}/pack.json", get(documents::hit_pack_json))
        .route(
            "/v1/hits/{id}/pack-manifest.json",
            get(documents::hit_pack_manifest),
        )
        .route("/v1/hits/{id}/review", post(hits::review))
        .route("/v1/hits/{id}/evidence", get(hits::evidence))
        .route("/v1/hits/{id}/trail", get(hits::trail))
        .route("/v1/system/alerts", get(system_alerts))
        .route("/v1/stats", get(stats))
        .route("/v1/stats/reset-latency", post(reset_latency))
        .route(
            "/v1/people",
            get(people::list_people).post(people::put_person),
        )
        .route("/v1/people/{id}", get(people::get_person))
        .route("/v1/people/{id}/history", get(people::get_person_history))
        .route("/v1/people/{id}/trail", get(trails::person_trail))
        .route("/v1/people/{id}/stays", get(trails::stays))
        .route("/v1/people/{id}/daily", get(trails::daily))
        .route("/v1/activations/{id}/trail", get(trails::activation_trail))
        .route("/v1/activations/{id}/alcohol-chart", get(alcohol::chart))
        .route("/v1/orders/{id}/sober-days", get(alcohol::order_sober_days))
        .route(
            "/v1/alerts/{id}/breach-report.pdf",
            get(breach_report::breach_report_pdf),
        )
        .route(
            "/v1/alerts/{id}/breach-report.json",
            get(breach_report::breach_report_json),
        )
        .route(
            "/v1/alerts/{id}/breach-report-manifest.json",
            get(breach_report::breach_report_manifest),
        )
        .route(
            "/v1/people/{id}/sober-day-report.pdf",
            get(sober_day_report::sober_day_report_pdf),
        )
        .route(
            "/v1/people/{id}/sober-day-report.json",
            get(sober_day_report::sober_day_report_json),
        )
        .route(
            "/v1/people/{id}/sober-day-report-manifest.json",
            get(sober_day_report::sober_day_report_manifest),
        )
        .route("/v1/sober-days/rate", get(alcohol::cohort_rate))
        .route("/v1/activations", post(people::put_activation))
        .route("/v1/activations/{id}/end", post(people::end_activation))
        .route("/v1/orders", post(people::put_order))
        .route("/v1/audit", get(admin::audit_log))
        .route("/v1/users", get(admin::list_users).post(admin::create_user))
        .route("/v1/tags/{tag}/revoke", post(admin::revoke_tag))
        .route("/v1/tags/{tag}/credentials", get(admin::tag_credential))
        .route("/v1/tags/{tag}/credentials/rotate", post(admin::rotate_tag))
        .route("/v1/devices", get(devices::list_devices))
        .route(
            "/v1/devices/{protocol}/{device}",
            put(devices::bind_device).delete(devices::unbind_device),
        )
        .route("/v1/admin/retention/run", post(retention::run))
        .route("/v1/admin/retention/runs", get(retention::runs))
        .route(
            "/v1/admin/people/{id}/export",
            get(retention::export_person),
        )
        .fallback(super::error::no_route)
        // Last, so it sees every answer: axum's own plain-text errors become the JSON `Error`.
        .layer(axum::middleware::from_fn(super::error::json_errors))
        .with_state(state)
}

async fn stats(State(state): State<ApiState>, _staff: Staff) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({
        "committed_batches": state.counters.committed_batches.load(Ordering::Relaxed),
        "committed_readings": state.counters.committed_readings.load(Ordering::Relaxed),
        "duplicate_batches": state.ingest.duplicate_batches.load(Ordering::Relaxed),
        "alerts": state.alerts.count(),
        "alert_changes": state.alerts.changes.load(Ordering::Relaxed),
        "ingest_to_alert_latency": state.alerts.latency(),
        "ingest_to_book_latency": state.alerts.latency_to_book(),
        "ingest_stage_latency": crate::metrics::stage_latency::summary(),
        "connections": state.ingest.connections.load(Ordering::Relaxed),
        "rejected_frames": state.ingest.rejected_frames.load(Ordering::Relaxed),
        "commit": state.ingest.commit.stats(),
    }))
    .into_response())
}

/// System alerts (not about any person): hub and admin.
async fn system_alerts(State(state): State<ApiState>, _staff: Staff) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({ "alerts": state.system.alerts() })).into_response())
}

async fn reset_latency(State(state): State<ApiState>, _staff: Staff) -> Result<Response, ApiError> {
    state.alerts.reset_latency();
    crate::metrics::stage_latency::reset();
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let c = &state.counters;
    let l = state.alerts.latency();
    let mut e = crate::metrics::exposition::Exposition::default();
    e.counter(
        "tagstream_committed_batches_total",
        "Reading batches made durable and acknowledged since start.",
        c.committed_batches.load(Ordering::Relaxed),
    );
    e.counter(
        "tagstream_committed_readings_total",
        "Readings made durable and acknowledged since start.",
        c.committed_readings.load(Ordering::Relaxed),
    );
    e.counter(
        "tagstream_duplicate_batches_total",
        "Batches a tag resent that were already durable (acknowledged again, not stored twice).",
        state.ingest.duplicate_batches.load(Ordering::Relaxed),
    );
    e.gauge(
        "tagstream_alerts",
        "Alerts in the live alert book.",
        state.alerts.count() as f64,
    );
    e.counter(
        "tagstream_ingest_connections_total",
        "Tag connections accepted since start.",
        state.ingest.connections.load(Ordering::Relaxed),
    );
    e.counter(
        "tagstream_rejected_frames_total",
        "Protocol frames rejected (bad checksum, authentication, or format) since start.",
        state.ingest.rejected_frames.load(Ordering::Relaxed),
    );
    let s = |us: u64| us as f64 / 1e6;
    e.summary(
        "tagstream_ingest_to_alert_seconds",
        "Wall time from a batch's arrival to the publication of the alerts it caused.",
        &[
            (0.5, s(l.p50_us)),
            (0.9, s(l.p90_us)),
            (0.99, s(l.p99_us)),
            (0.999, s(l.p999_us)),
        ],
        s(l.sum_us),
        l.count,
    );
    e.counter(
        "tagstream_log_damaged_ranges_total",
        "Damaged byte ranges found in the log at start (quarantined and skipped).",
        c.log_damaged_ranges.load(Ordering::Relaxed),
    );
    e.counter(
        "tagstream_log_records_lost_total",
        "Log records lost to damage found at start (every intact record is kept).",
        c.log_records_lost.load(Ordering::Relaxed),
    );
    state.ingest.write_metrics(&mut e);
    state.system.write_metrics(&mut e);
    state.hits.write_metrics(&mut e);
    crate::cluster::lease::write_metrics(&mut e);
    crate::topology::purge_follow::write_metrics(&mut e);
    crate::topology::checkpoint::write_metrics(&mut e);
    crate::topology::snapshot_follower::write_metrics(&mut e);
    crate::topology::outputs_link::write_metrics(&mut e);
    crate::topology::partition_share::write_metrics(&mut e);
    (
        [(
            header::CONTENT_TYPE,
            crate::metrics::exposition::CONTENT_TYPE,
        )],
        e.finish(),
    )
        .into_response()
}
