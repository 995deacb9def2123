//! Third-party devices (admin only): bind a device — a Teltonika IMEI, an OsmAnd device id — to
//! a tag, unbind it, list the bindings. A binding is a control record, so every node of a cluster
//! accepts the device once it has applied it; a device is refused whenever its tag is revoked.

use super::audit::{purpose, record, Access};
use super::auth::Admin;
use super::decision::submit_decision;
use super::error::ApiError;
use super::routes::ApiState;
use crate::model::{Change, DeviceBinding, DeviceProtocol};
use crate::store::metadata::BoundDevice;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindBody {
    tag: String,
}

/// The protocol and device id of a path, checked.
fn device_of(protocol: &str, device: &str) -> Result<DeviceProtocol, ApiError> {
    let protocol = DeviceProtocol::parse(protocol).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown device protocol '{}': expected teltonika or osmand",
            protocol.escape_debug()
        ))
    })?;
    protocol
        .check_device_id(device)
        .map_err(ApiError::bad_request)?;
    Ok(protocol)
}

/// `GET /v1/devices`: every bound device.
pub async fn list_devices(
    State(state): State<ApiState>,
    _admin: Admin,
) -> Result<Json<Vec<BoundDevice>>, ApiError> {
    Ok(Json(state.metadata.device_bindings()?))
}

/// `PUT /v1/devices/{protocol}/{device}` with `{"tag": …}`: the device's readings are the tag's
/// from now on. Audited (`device.bind`). An OsmAnd device's answer carries its `token` (for HTTPS;
/// it changes when the tag's credentials are rotated: bind again to read the new one).
pub async fn bind_device(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    Path((protocol, device)): Path<(String, String)>,
    Json(body): Json<BindBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let protocol = device_of(&protocol, &device)?;
    crate::wire::frame::check_tag_id(&body.tag)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let binding = DeviceBinding {
        protocol,
        device: device.clone(),
        tag: body.tag.clone(),
    };
    submit_decision(&state, &caller.0.name, Change::BindDevice { binding }).await?;
    let bound = state
        .metadata
        .device_binding(protocol, &device)?
        .ok_or_else(|| ApiError::internal("the binding was applied but is not held"))?;
    let detail = format!("{protocol} device {device} bound to tag {}", body.tag);
    // If the audit record cannot be written the token is withheld (the binding stands).
    audit(&state, &caller, &headers, "device.bind", detail)?;
    let mut answer = serde_json::to_value(&bound)
        .map_err(|e| ApiError::internal(format!("binding answer: {e}")))?;
    if protocol == DeviceProtocol::Osmand {
        let generation = state.metadata.tag_credential(&bound.tag)?.generation;
        let token = state
            .ingest
            .credentials
            .device_token(protocol, &device, generation);
        answer["token"] = serde_json::Value::String(token);
    }
    Ok(Json(answer))
}

/// `DELETE /v1/devices/{protocol}/{device}`: the device is refused from now on (its live
/// connection at its next upload). Audited (`device.unbind`).
pub async fn unbind_device(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    Path((protocol, device)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let protocol = device_of(&protocol, &device)?;
    if state.metadata.device_binding(protocol, &device)?.is_none() {
        return Err(ApiError::not_found(format!(
            "{protocol} device '{device}' is not bound"
        )));
    }
    let change = Change::UnbindDevice {
        protocol,
        device: device.clone(),
    };
    submit_decision(&state, &caller.0.name, change).await?;
    let detail = format!("{protocol} device {device} unbound");
    audit(&state, &caller, &headers, "device.unbind", detail)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Records a registry change in the audit log, with the caller's purpose if they gave one.
fn audit(
    state: &ApiState,
    caller: &super::auth::Caller,
    headers: &HeaderMap,
    action: &'static str,
    detail: String,
) -> Result<(), ApiError> {
    let why = purpose(headers, None).unwrap_or_else(|_| "device registry".into());
    let access = Access {
        action,
        detail: Some(detail),
        ..Access::default()
    };
    record(state, caller, &why, access)
}
