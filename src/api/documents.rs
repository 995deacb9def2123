//! Documents over HTTP: the hit evidence pack as PDF, as JSON of the same content, and its
//! manifest. Police get the pack of a confirmed hit on their own force's crime only (403 for
//! any other, whatever the reason, as for the hit itself); the hub any hit. Every download
//! states its purpose and is audited. Packs are built on the blocking pool: layout and PDF
//! writing are CPU work of tens of milliseconds.

use super::audit::{purpose, record, Access};
use super::auth::Caller;
use super::download::attachment;
use super::error::ApiError;
use super::hits::visible_hit;
use super::routes::ApiState;
use crate::documents::hit_pack::{hit_pack, HitPackFiles, DEFAULT_DECLARATION};
use crate::documents::sources::HitPackSources;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct DocumentQuery {
    purpose: Option<String>,
}

/// Which file of a document.
#[derive(Clone, Copy)]
pub(super) enum PackPart {
    Pdf,
    Json,
    Manifest,
}

impl PackPart {
    pub(super) fn format(self) -> &'static str {
        match self {
            PackPart::Pdf => "pdf",
            PackPart::Json => "json",
            PackPart::Manifest => "manifest",
        }
    }
}

async fn build_pack(state: &ApiState, sources: HitPackSources) -> Result<HitPackFiles, ApiError> {
    let declaration = state
        .documents
        .witness_declaration
        .clone()
        .unwrap_or_else(|| DEFAULT_DECLARATION.to_string());
    let tiles = state.tiles.clone();
    tokio::task::spawn_blocking(move || hit_pack(&sources.input(&declaration, tiles.as_deref())))
        .await
        .map_err(|e| ApiError::internal(format!("building the pack: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn pack_part(
    state: ApiState,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    q: DocumentQuery,
    part: PackPart,
) -> Result<Response, ApiError> {
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let stored = visible_hit(&state, &caller, &id)?;
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "documents.hit_pack",
            person: Some(&stored.hit.person),
            format: Some(part.format()),
            detail: Some(format!(
                "hit {} on {} {} v{}",
                stored.hit.id, stored.hit.force, stored.hit.crime_ref, stored.hit.crime_version
            )),
            ..Access::default()
        },
    )?;
    let sources = HitPackSources::read(&state.crimes, &state.metadata, &state.trails, stored)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let files = build_pack(&state, sources).await?;
    Ok(document_part(
        part,
        [
            (files.manifest.files[0].name.clone(), files.pdf),
            (files.manifest.files[1].name.clone(), files.json),
            (format!("{id}-manifest.json"), files.manifest.to_bytes()),
        ],
    ))
}

/// The file `part` asks for of a document's three (PDF, JSON, manifest, each with its name).
pub(super) fn document_part(part: PackPart, files: [(String, Vec<u8>); 3]) -> Response {
    let [pdf, json, manifest] = files;
    match part {
        PackPart::Pdf => document_file("application/pdf", &pdf.0, pdf.1),
        PackPart::Json => document_file("application/json", &json.0, json.1),
        PackPart::Manifest => document_file("application/json", &manifest.0, manifest.1),
    }
}

/// One file of a document as a download (never cached: it holds person data).
pub(super) fn document_file(content_type: &'static str, name: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, attachment(name)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// `GET /v1/hits/{id}/pack.pdf`: the hit evidence pack as PDF.
pub async fn hit_pack_pdf(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DocumentQuery>,
) -> Result<Response, ApiError> {
    pack_part(state, caller, headers, id, q, PackPart::Pdf).await
}

/// `GET /v1/hits/{id}/pack.json`: the same content as JSON.
pub async fn hit_pack_json(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DocumentQuery>,
) -> Result<Response, ApiError> {
    pack_part(state, caller, headers, id, q, PackPart::Json).await
}

/// `GET /v1/hits/{id}/pack-manifest.json`: the SHA-256 of both files and of their inputs.
pub async fn hit_pack_manifest(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DocumentQuery>,
) -> Result<Response, ApiError> {
    pack_part(state, caller, headers, id, q, PackPart::Manifest).await
}
