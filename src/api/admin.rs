//! Administration: users and the audit log (admin only).

use super::auth::Admin;
use super::error::ApiError;
use super::limits;
use super::routes::ApiState;
use crate::model::time::parse_time;
use crate::store::metadata::{parse_expiry, AuditEntry, AuditQuery, NewUser, Role, User};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct AuditParams {
    person: Option<String>,
    user: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

pub async fn audit_log(
    State(state): State<ApiState>,
    _admin: Admin,
    Query(p): Query<AuditParams>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let since_ms = p
        .since
        .as_deref()
        .map(parse_time)
        .transpose()
        .map_err(ApiError::bad_request)?;
    Ok(Json(state.metadata.audit_entries(&AuditQuery {
        person: p.person,
        user: p.user,
        since_ms,
        limit: p.limit,
    })?))
}

#[derive(Deserialize)]
pub struct NewUserBody {
    name: String,
    role: String,
    force: Option<String>,
    #[serde(default)]
    caseload: Vec<String>,
    /// When the token stops working (RFC 3339), or
    expires: Option<String>,
    /// how long it works from now (`30d`, `12h`, …); neither: it never expires.
    expires_in: Option<String>,
}

/// Parses a role name plus its binding (force for police, caseload for practitioners).
pub fn role_from(role: &str, force: Option<String>, caseload: Vec<String>) -> Result<Role, String> {
    match role {
        "admin" => Ok(Role::Admin),
        "hub" => Ok(Role::Hub),
        "police" => {
            let force = force
                .filter(|f| !f.trim().is_empty())
                .ok_or_else(|| "a police user needs a force".to_string())?;
            // Only the 19 EMAC forces send crimes; a user bound to anything else is a mistake.
            match crate::crime::force_by_id(force.trim()) {
                Some(f) => Ok(Role::Police {
                    force: f.id.to_string(),
                }),
                None => Err(format!(
                    "'{force}' is not one of the 19 EMAC forces: use one of {}",
                    crate::crime::FORCES.map(|f| f.id).join(", ")
                )),
            }
        }
        "practitioner" => Ok(Role::Practitioner { caseload }),
        other => Err(format!(
            "unknown role '{other}' (admin, hub, police, practitioner)"
        )),
    }
}

pub async fn create_user(
    State(state): State<ApiState>,
    _admin: Admin,
    Json(body): Json<NewUserBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    limits::check("name", &body.name, limits::NAME_MAX_CHARS)?;
    limits::check("role", &body.role, limits::ID_MAX_CHARS)?;
    limits::check_opt("expires", body.expires.as_deref(), limits::ID_MAX_CHARS)?;
    limits::check_opt(
        "expires_in",
        body.expires_in.as_deref(),
        limits::ID_MAX_CHARS,
    )?;
    limits::check_opt("force", body.force.as_deref(), limits::ID_MAX_CHARS)?;
    for entry in &body.caseload {
        limits::check("caseload", entry, limits::ID_MAX_CHARS)?;
    }
    let role = role_from(&body.role, body.force, body.caseload).map_err(ApiError::bad_request)?;
    let expires_ms = parse_expiry(
        body.expires.as_deref(),
        body.expires_in.as_deref(),
        super::crimes::now_ms(),
    )
    .map_err(ApiError::bad_request)?;
    let (user, token) = state.metadata.add_user(&NewUser {
        name: body.name,
        role,
        expires_ms,
    })?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"user": user, "token": token})),
    ))
}

pub async fn list_users(
    State(state): State<ApiState>,
    _admin: Admin,
) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(state.metadata.list_users()?))
}
