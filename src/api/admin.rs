//! Administration: users and the audit log (admin only).

use super::auth::Admin;
use super::error::ApiError;
use super::routes::ApiState;
use crate::model::time::parse_time;
use crate::store::metadata::{AuditEntry, AuditQuery, NewUser, Role, User};
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
}

/// Parses a role name plus its binding (force for police, caseload for practitioners).
pub fn role_from(role: &str, force: Option<String>, caseload: Vec<String>) -> Result<Role, String> {
    match role {
        "admin" => Ok(Role::Admin),
        "hub" => Ok(Role::Hub),
        "police" => force
            .filter(|f| !f.trim().is_empty())
            .map(|force| Role::Police { force })
            .ok_or_else(|| "a police user needs a force".to_string()),
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
    let role = role_from(&body.role, body.force, body.caseload).map_err(ApiError::bad_request)?;
    let (user, token) = state.metadata.add_user(&NewUser {
        name: body.name,
        role,
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
