//! People, activations and orders: read (audited, by role) and manage (admin and hub), with the
//! same validation as the orders file.

use super::audit::{purpose, record, Access};
use super::auth::{Caller, Staff};
use super::error::ApiError;
use super::limits;
use super::routes::ApiState;
use crate::model::time::parse_time;
use crate::model::{Activation, Change, Order, Person};
use crate::store::metadata::{Page, PersonRecords};
use crate::topology::control_gate::ControlError;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct PurposeQuery {
    pub purpose: Option<String>,
}

/// Looks up a person the caller may see; 403 (never 404) when they may not, exists or not.
pub fn visible_person(state: &ApiState, caller: &Caller, id: &str) -> Result<Person, ApiError> {
    if !caller.may_ask_about(id) {
        return Err(ApiError::forbidden());
    }
    // A caseload may name a person who does not exist (or no longer does): only roles that
    // see everyone learn that; the others get the same 403 as for a restricted person.
    let person = state
        .metadata
        .person(id)?
        .ok_or_else(|| caller.missing(&format!("person '{id}'")))?;
    if !caller.may_see(&person) {
        return Err(ApiError::forbidden());
    }
    Ok(person)
}

/// The most people one page of `GET /v1/people` may ask for.
pub const PEOPLE_PAGE_MAX: usize = 10_000;

#[derive(Deserialize, Default)]
pub struct ListPeopleQuery {
    purpose: Option<String>,
    /// Only people whose id sorts after this one (the last id of the previous page).
    after: Option<String>,
    /// At most this many people (1 to [`PEOPLE_PAGE_MAX`]); absent: all of them.
    limit: Option<usize>,
}

pub async fn list_people(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<ListPeopleQuery>,
) -> Result<Json<Vec<Person>>, ApiError> {
    if matches!(caller.role(), crate::store::metadata::Role::Police { .. }) {
        return Err(ApiError::forbidden());
    }
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    limits::check_opt("after", q.after.as_deref(), limits::ID_MAX_CHARS)?;
    if q.limit.is_some_and(|n| n == 0 || n > PEOPLE_PAGE_MAX) {
        return Err(ApiError::bad_request(format!(
            "'limit' must be from 1 to {PEOPLE_PAGE_MAX}"
        )));
    }
    let page = Page {
        after: q.after.as_deref(),
        limit: q.limit,
    };
    let people = state.metadata.people_visible(caller.scope(), page)?;
    let ids: Vec<&str> = people.iter().map(|p| p.id.as_str()).collect();
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "people.list",
            detail: Some(ids.join(",")),
            ..Access::default()
        },
    )?;
    Ok(Json(people))
}

pub async fn get_person(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PurposeQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let person = visible_person(&state, &caller, &id)?;
    let PersonRecords {
        activations,
        orders,
    } = state.metadata.person_records(&id)?;
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "person.read",
            person: Some(&id),
            ..Access::default()
        },
    )?;
    // How far the person's data reaches (latest position or TAC reading of any of their
    // activations): the console opens their views there, not on the wall clock's last day.
    let data_until = activations
        .iter()
        .filter_map(|a| {
            let id = a.id.as_str();
            state.trails.latest_ms(id).max(state.tac.latest_ms(id))
        })
        .max()
        .map(crate::model::time::format_time);
    // Their last contact: the newest reading of any kind from any of their tags.
    let last_contact = activations
        .iter()
        .filter_map(|a| state.last_contact.last_contact_ms(&a.id))
        .max()
        .map(crate::model::time::format_time);
    Ok(Json(serde_json::json!({
        "person": person, "activations": activations, "orders": orders, "data_until": data_until,
        "last_contact": last_contact,
    })))
}

/// A person's change history (audited like a read of the person).
pub async fn get_person_history(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PurposeQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    visible_person(&state, &caller, &id)?;
    let changes = state.metadata.changes_of(&id)?;
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "person.history",
            person: Some(&id),
            ..Access::default()
        },
    )?;
    Ok(Json(
        serde_json::json!({ "person": id, "changes": changes }),
    ))
}

/// `?effective=` on a write: the event time the change takes effect from (absent: from the start
/// of the record it changes).
#[derive(Deserialize, Default)]
pub struct EffectiveQuery {
    pub effective: Option<String>,
}

fn effective_ms(q: &EffectiveQuery) -> Result<Option<i64>, ApiError> {
    match &q.effective {
        None => Ok(None),
        Some(text) => {
            limits::check("effective", text, limits::ID_MAX_CHARS)?;
            parse_time(text)
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("effective: {e}")))
        }
    }
}

/// Appends a change to the log and waits until it is applied; a refusal is answered with what
/// the record book said (404 for a record that does not exist, 409 for one already ended, 422
/// otherwise).
async fn submit(
    state: &ApiState,
    staff: &Staff,
    effective: Option<i64>,
    change: Change,
) -> Result<u64, ApiError> {
    let actor = staff.0 .0.name.clone();
    match state.control.submit(&actor, effective, change).await {
        Ok(record) => Ok(record),
        Err(ControlError::Refused(m)) if m.ends_with(": not found") => Err(ApiError::not_found(
            m.trim_end_matches(": not found").to_string() + " not found",
        )),
        Err(ControlError::Refused(m)) if m.ends_with(": already ended") => {
            Err(ApiError::new(StatusCode::CONFLICT, "conflict", m))
        }
        Err(ControlError::Refused(m)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            m,
        )),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

pub async fn put_person(
    State(state): State<ApiState>,
    staff: Staff,
    Json(person): Json<Person>,
) -> Result<(StatusCode, Json<Person>), ApiError> {
    limits::check_serialized(&person)?;
    if person.id.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "'id' must not be empty".to_string(),
        ));
    }
    let change = Change::PutPerson {
        person: person.clone(),
    };
    submit(&state, &staff, None, change).await?;
    Ok((StatusCode::CREATED, Json(person)))
}

pub async fn put_activation(
    State(state): State<ApiState>,
    staff: Staff,
    Json(activation): Json<Activation>,
) -> Result<(StatusCode, Json<Activation>), ApiError> {
    limits::check_serialized(&activation)?;
    let change = Change::PutActivation {
        activation: activation.clone(),
    };
    submit(&state, &staff, None, change).await?;
    Ok((StatusCode::CREATED, Json(activation)))
}

#[derive(Deserialize)]
pub struct EndBody {
    to: String,
}

pub async fn end_activation(
    State(state): State<ApiState>,
    staff: Staff,
    Path(id): Path<String>,
    Json(body): Json<EndBody>,
) -> Result<Json<Activation>, ApiError> {
    limits::check("to", &body.to, limits::ID_MAX_CHARS)?;
    let to_ms = parse_time(&body.to).map_err(ApiError::bad_request)?;
    let change = Change::EndActivation {
        activation: id.clone(),
        to: to_ms,
    };
    submit(&state, &staff, Some(to_ms), change).await?;
    let activation = state
        .metadata
        .activations_by_id(&id)?
        .ok_or_else(|| ApiError::not_found(format!("activation '{id}' not found")))?;
    Ok(Json(activation))
}

pub async fn put_order(
    State(state): State<ApiState>,
    staff: Staff,
    Query(q): Query<EffectiveQuery>,
    Json(order): Json<Order>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    limits::check_serialized(&order)?;
    let effective = effective_ms(&q)?;
    let change = Change::PutOrder {
        order: order.clone(),
    };
    submit(&state, &staff, effective, change).await?;
    Ok((StatusCode::CREATED, Json(order)))
}
