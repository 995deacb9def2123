//! How the hub's decisions (alert actions, hit reviews) are made: appended to the durable log as
//! control records and answered once the alert or hit store has applied them, so the stores stay
//! views of the log (a rebuild, or a restart after a crash, gives every decision back).

use super::error::ApiError;
use super::routes::ApiState;
use crate::model::Change;
use crate::topology::control_gate::ControlError;
use crate::topology::decision_view::STORE_DID_NOT_TAKE;
use axum::http::StatusCode;

/// Appends `change` (made by `actor`) and waits until it is applied. A refusal made after the
/// handler's own checks (another person's action got there first) is a 409, an alert or hit no
/// longer held a 404; a store that failed to take a durable decision a 500 that says so.
pub async fn submit_decision(
    state: &ApiState,
    actor: &str,
    change: Change,
) -> Result<u64, ApiError> {
    match state.control.submit(actor, None, change).await {
        Ok(record) => Ok(record),
        Err(ControlError::Refused(m)) if m.ends_with("not found") => Err(ApiError::not_found(m)),
        Err(ControlError::Refused(m)) if m.starts_with(STORE_DID_NOT_TAKE) => {
            Err(ApiError::internal(m))
        }
        Err(ControlError::Refused(m)) => Err(ApiError::new(StatusCode::CONFLICT, "conflict", m)),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}
