//! Administration (admin only): users, the audit log, and tag credentials (revoke, rotate).

use super::audit::{purpose, record, Access};
use super::auth::Admin;
use super::decision::submit_decision;
use super::error::ApiError;
use super::limits;
use super::routes::ApiState;
use crate::model::time::parse_time;
use crate::model::Change;
use crate::store::metadata::{
    new_account, parse_expiry, AuditEntry, AuditQuery, NewUser, Role, TagCredential, User,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
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
    Admin(caller): Admin,
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
    let (account, token) = new_account(&NewUser {
        name: body.name,
        role,
        expires_ms,
    })?;
    let name = account.name.clone();
    if state.metadata.user_by_name(&name)?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("user '{name}' already exists"),
        ));
    }
    // A log record like every other change: the users table is a view of the log.
    submit_decision(&state, &caller.0.name, Change::PutUser { user: account }).await?;
    let user = state
        .metadata
        .user_by_name(&name)?
        .ok_or_else(|| ApiError::internal(format!("user '{name}' was stored but is not found")))?;
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

fn checked_tag(tag: &str) -> Result<(), ApiError> {
    crate::wire::frame::check_tag_id(tag).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `tag`'s credential state in this node's metadata store.
async fn credential_of(state: &ApiState, tag: &str) -> Result<TagCredential, ApiError> {
    let metadata = state.metadata.clone();
    let tag = tag.to_string();
    Ok(
        tokio::task::spawn_blocking(move || metadata.tag_credential(&tag))
            .await
            .map_err(|e| ApiError::internal(format!("tag credential task: {e}")))??,
    )
}

/// `POST /v1/tags/{tag}/revoke`: the tag is refused at hello (error `tag_revoked`) and its live
/// connections at their next batch, until its credentials are rotated. Audited.
pub async fn revoke_tag(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    Path(tag): Path<String>,
) -> Result<Json<TagCredential>, ApiError> {
    checked_tag(&tag)?;
    // A control record: every node of a cluster refuses the tag once it has applied it.
    submit_decision(
        &state,
        &caller.0.name,
        Change::RevokeTag { tag: tag.clone() },
    )
    .await?;
    let credential = credential_of(&state, &tag).await?;
    let why = purpose(&headers, None).unwrap_or_else(|_| "tag credentials".into());
    record(
        &state,
        &caller,
        &why,
        Access {
            action: "tag.revoke",
            detail: Some(format!("tag {tag} revoked")),
            ..Access::default()
        },
    )?;
    Ok(Json(credential))
}

/// `POST /v1/tags/{tag}/credentials/rotate`: the tag moves to its next credential generation
/// (clearing any revocation); the old secret stops working at once. The new secret is in this
/// response only. Audited (never the secret).
pub async fn rotate_tag(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    Path(tag): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    checked_tag(&tag)?;
    submit_decision(
        &state,
        &caller.0.name,
        Change::RotateTag { tag: tag.clone() },
    )
    .await?;
    // The state once this node applied the record (a rotation made meanwhile through another
    // node shows as a later generation: its secret is the one that works now).
    let credential = credential_of(&state, &tag).await?;
    let secret = state
        .ingest
        .credentials
        .secret_at(&tag, credential.generation);
    let why = purpose(&headers, None).unwrap_or_else(|_| "tag credentials".into());
    // If the audit record cannot be written the secret is withheld (the rotation stands; rotate
    // again once the store is healthy).
    record(
        &state,
        &caller,
        &why,
        Access {
            action: "tag.rotate",
            detail: Some(format!(
                "tag {tag} rotated to generation {}",
                credential.generation
            )),
            ..Access::default()
        },
    )?;
    Ok(Json(serde_json::json!({
        "tag": credential.tag,
        "generation": credential.generation,
        "secret": secret,
    })))
}

/// `GET /v1/tags/{tag}/credentials`: generation and revocation (never the secret).
pub async fn tag_credential(
    State(state): State<ApiState>,
    _admin: Admin,
    Path(tag): Path<String>,
) -> Result<Json<TagCredential>, ApiError> {
    checked_tag(&tag)?;
    Ok(Json(state.metadata.tag_credential(&tag)?))
}
