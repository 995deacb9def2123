//! Auditing person-data reads: every read or export of a person's data states its purpose (header
//! `X-Purpose` or query `purpose`; missing is a 400) and is recorded durably before the data goes
//! out.

use super::auth::Caller;
use super::error::ApiError;
use super::routes::ApiState;
use crate::store::metadata::NewAuditEntry;
use axum::http::HeaderMap;

/// The stated purpose of a request for person data.
pub fn purpose(headers: &HeaderMap, query_purpose: Option<&str>) -> Result<String, ApiError> {
    let from_header = headers.get("x-purpose").and_then(|v| v.to_str().ok());
    match from_header.or(query_purpose).map(str::trim) {
        Some(p) if !p.is_empty() => {
            super::limits::check("purpose", p, super::limits::PURPOSE_MAX_CHARS)?;
            Ok(p.to_string())
        }
        _ => Err(ApiError::bad_request(
            "person data needs a stated purpose: send an X-Purpose header or a purpose parameter",
        )),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What is being read, for the audit record.
#[derive(Default)]
pub struct Access<'a> {
    pub action: &'a str,
    pub person: Option<&'a str>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub format: Option<&'a str>,
    pub detail: Option<String>,
}

/// Writes the audit record; the caller returns data only if this succeeded.
pub fn record(
    state: &ApiState,
    caller: &Caller,
    purpose: &str,
    access: Access<'_>,
) -> Result<(), ApiError> {
    state
        .metadata
        .audit(&NewAuditEntry {
            t_ms: now_ms(),
            user_name: caller.0.name.clone(),
            role: caller.role().name().to_string(),
            action: access.action.to_string(),
            person: access.person.map(str::to_string),
            from_ms: access.from_ms,
            to_ms: access.to_ms,
            format: access.format.map(str::to_string),
            purpose: Some(purpose.to_string()),
            detail: access.detail,
        })
        .map(|_| ())
        .map_err(|e| {
            ApiError::internal(format!(
                "audit record could not be written, data withheld: {e}"
            ))
        })
}
