//! One HTTP request, as the listener has it (method, request target, content type, body) →
//! an [`OsmandMessage`] or the [`OsmandError`] to answer with. Which form the request is in:
//!
//! - a body of `application/json` (parameters ignored after `;`, case-insensitive) is the JSON
//!   form; parameters in the query string are then kept, unmapped, as `?name`;
//! - otherwise the query form: the query string's parameters and, for an
//!   `application/x-www-form-urlencoded` body, the body's, together (so a parameter sent in
//!   both is a duplicate);
//! - a non-empty body of any other type, or of none, is refused (415); an empty body's type
//!   does not matter (the Traccar Client's older versions POST an empty body with parameters in
//!   the query string).
//!
//! Sizes are checked before anything is decoded.

use super::error::OsmandError;
use super::json::decode_json;
use super::limits::Limits;
use super::mapping::{readings_of, MappingConfig};
use super::query::decode_query;
use super::urlencoded::decode_params;
use crate::model::Reading;

/// What a request says: who sent it, its readings, and what it sent that is not mapped to a
/// reading (parameter name or JSON path, and value), kept for whoever needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsmandMessage {
    pub device_id: String,
    pub readings: Vec<Reading>,
    pub unmapped: Vec<(String, String)>,
}

enum BodyKind {
    Empty,
    Form,
    Json,
}

/// Decodes one request. `path_and_query` is the request target (`/?id=…&lat=…`); the path is
/// not looked at (Traccar accepts any).
pub fn decode_request(
    method: &str,
    path_and_query: &str,
    content_type: Option<&str>,
    body: &[u8],
    limits: &Limits,
    mapping: &MappingConfig,
) -> Result<OsmandMessage, OsmandError> {
    if method != "GET" && method != "POST" {
        return Err(OsmandError::MethodNotAllowed {
            method: super::error::quoted(method),
        });
    }
    let query = path_and_query
        .split_once('?')
        .map_or("", |(_, query)| query);
    if query.len() > limits.max_query_bytes {
        return Err(OsmandError::QueryTooLong {
            len_bytes: query.len(),
            max_bytes: limits.max_query_bytes,
        });
    }
    if body.len() > limits.max_body_bytes {
        return Err(OsmandError::BodyTooLarge {
            len_bytes: body.len(),
            max_bytes: limits.max_body_bytes,
        });
    }
    let mut params = Vec::new();
    decode_params(query.as_bytes(), &mut params, limits.max_params)?;
    match body_kind(content_type, body)? {
        BodyKind::Json => {
            let decoded = decode_json(body, limits)?;
            let query_params = params
                .into_iter()
                .map(|(name, value)| (format!("?{name}"), value.into_owned()));
            Ok(OsmandMessage {
                device_id: decoded.device_id,
                readings: decoded
                    .reports
                    .iter()
                    .flat_map(|report| readings_of(report, mapping))
                    .collect(),
                unmapped: query_params.chain(decoded.unmapped).collect(),
            })
        }
        kind => {
            if let BodyKind::Form = kind {
                decode_params(body, &mut params, limits.max_params)?;
            }
            let decoded = decode_query(&params, limits)?;
            Ok(OsmandMessage {
                device_id: decoded.device_id,
                readings: readings_of(&decoded.report, mapping),
                unmapped: decoded.unmapped,
            })
        }
    }
}

fn body_kind(content_type: Option<&str>, body: &[u8]) -> Result<BodyKind, OsmandError> {
    let media_type = content_type.map(|t| {
        t.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    match media_type.as_deref() {
        _ if body.is_empty() => Ok(BodyKind::Empty),
        Some("application/json") => Ok(BodyKind::Json),
        Some("application/x-www-form-urlencoded") => Ok(BodyKind::Form),
        _ => Err(OsmandError::UnsupportedContentType {
            content_type: super::error::quoted(content_type.unwrap_or("(none)")),
        }),
    }
}
