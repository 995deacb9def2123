//! One OsmAnd report: decode, authenticate the device (bound to a tag; its token over HTTPS),
//! append the readings as one batch of the tag, answer once durable.
//!
//! HTTP has no connection a batch belongs to, so each device gets a session epoch of its tag
//! when it first reports after the server starts, and its reports are numbered in it one at a
//! time (a device's concurrent requests wait for each other): a number is never given to two
//! batches, and a retried report is new data (the app resends only what was not answered 200).

use super::config::OsmandConfig;
use crate::devices::osmand::{decode_request, Limits, MappingConfig, OsmandError};
use crate::ingest::connection::now_ms;
use crate::ingest::listener::IngestContext;
use crate::ingest::CredentialRefusal;
use crate::log::AppendOutcome;
use crate::model::{Batch, DeviceProtocol};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the OsmAnd listener counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct OsmandCounters {
    /// Reports stored (or holding no reading) and answered 200.
    pub reports: AtomicU64,
    /// Readings stored from them.
    pub readings: AtomicU64,
    /// Reports refused as malformed (4xx from the decoder).
    pub refused_reports: AtomicU64,
    /// Reports from a device id bound to no tag.
    pub unknown_devices: AtomicU64,
    /// Reports refused otherwise: a wrong or missing token, a revoked tag.
    pub refused_devices: AtomicU64,
}

/// A device's numbering of its reports since this server started.
#[derive(Debug, Default)]
struct Sequence {
    epoch: u32,
    seq: u64,
}

/// What every report needs.
pub struct OsmandContext {
    pub ingest: Arc<IngestContext>,
    pub limits: Limits,
    pub mapping: MappingConfig,
    /// HTTPS: each device must present its token. A private network: the id alone.
    pub tokens_required: bool,
    pub counters: Arc<OsmandCounters>,
    sequences: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Sequence>>>>,
}

impl OsmandContext {
    pub fn new(config: &OsmandConfig, ingest: Arc<IngestContext>) -> Self {
        Self {
            ingest,
            limits: config.limits(),
            mapping: MappingConfig::default(),
            tokens_required: !config.private_network,
            counters: Arc::default(),
            sequences: Mutex::default(),
        }
    }

    fn sequence_of(&self, tag: &str) -> Arc<tokio::sync::Mutex<Sequence>> {
        self.sequences
            .lock()
            .entry(tag.to_string())
            .or_default()
            .clone()
    }
}

fn answer(status: StatusCode, message: impl Into<String>) -> Response {
    let mut text = message.into();
    text.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The token the request carries: `Authorization: Bearer …`, or the `token` parameter (the
/// Traccar Client can only be given a URL).
fn token_of(headers: &HeaderMap, unmapped: &[(String, String)]) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    bearer.or_else(|| {
        unmapped
            .iter()
            .find(|(name, _)| name == "token" || name == "?token")
            .map(|(_, value)| value.clone())
    })
}

/// Serves one report (every path and method: the app posts to the URL it is given).
pub async fn serve_osmand(
    State(ctx): State<Arc<OsmandContext>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let counters = &ctx.counters;
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let message = match decode_request(
        method.as_str(),
        target,
        content_type,
        &body,
        &ctx.limits,
        &ctx.mapping,
    ) {
        Ok(message) => message,
        Err(e) => {
            counters.refused_reports.fetch_add(1, Ordering::Relaxed);
            return refused(&e);
        }
    };
    let device = message.device_id.as_str();
    let protocol = DeviceProtocol::Osmand;
    let credentials = &ctx.ingest.credentials;
    let accepted = match (ctx.tokens_required, token_of(&headers, &message.unmapped)) {
        (false, _) => credentials.authenticate_device(protocol, device),
        (true, Some(token)) => credentials.authenticate_device_token(protocol, device, &token),
        (true, None) => {
            counters.refused_devices.fetch_add(1, Ordering::Relaxed);
            return answer(
                StatusCode::UNAUTHORIZED,
                "the device's token is missing (Authorization: Bearer, or the token parameter)",
            );
        }
    };
    let tag = match accepted {
        Ok((tag, _)) => tag,
        Err(refusal @ CredentialRefusal::UnknownDevice { .. }) => {
            counters.unknown_devices.fetch_add(1, Ordering::Relaxed);
            return answer(StatusCode::FORBIDDEN, refusal.to_string());
        }
        Err(CredentialRefusal::Unavailable) => {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "credentials unavailable; retry later",
            );
        }
        Err(refusal) => {
            counters.refused_devices.fetch_add(1, Ordering::Relaxed);
            // Never say which of id, token or revocation failed to a caller who may not own it.
            tracing::debug!(%device, %refusal, "OsmAnd report refused");
            return answer(
                StatusCode::UNAUTHORIZED,
                format!("device '{device}' is not accepted"),
            );
        }
    };
    if message.readings.is_empty() {
        counters.reports.fetch_add(1, Ordering::Relaxed);
        return answer(StatusCode::OK, "OK (no reading to store)");
    }
    let stored = message.readings.len() as u64;
    let sequence = ctx.sequence_of(&tag);
    let mut sequence = sequence.lock().await;
    if sequence.epoch == 0 {
        sequence.epoch = ctx.ingest.commit.position(&tag).0.saturating_add(1);
    }
    let batch = Batch {
        tag: tag.clone(),
        epoch: sequence.epoch,
        seq: sequence.seq + 1,
        arrival_ms: now_ms(),
        readings: message.readings,
    };
    match ctx.ingest.commit.append(batch).await {
        Ok(outcome) => {
            sequence.seq += 1;
            if outcome == AppendOutcome::Duplicate {
                ctx.ingest.duplicate_batches.fetch_add(1, Ordering::Relaxed);
            }
            counters.reports.fetch_add(1, Ordering::Relaxed);
            counters.readings.fetch_add(stored, Ordering::Relaxed);
            answer(StatusCode::OK, "OK")
        }
        Err(e) => {
            // A newer epoch of the tag (its other device, another node) or a failed log: the app
            // retries; the next report starts a fresh epoch above the log's.
            sequence.epoch = 0;
            sequence.seq = 0;
            tracing::warn!(%tag, error = %e, "OsmAnd report not stored");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not stored: {e}; retry"),
            )
        }
    }
}

fn refused(error: &OsmandError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    answer(status, error.to_string())
}
