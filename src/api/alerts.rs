//! The hub's alert work queue: list, filter, count, read one (with its review history), act on
//! one (acknowledge, assign, resolve with outcome and notes), and a Server-Sent Events stream of
//! every change, resumable from the last event id. Plus the contract export (`alerts.jsonl`).

use super::audit::{purpose, record, Access};
use super::auth::{Caller, Staff};
use super::decision::submit_decision;
use super::error::ApiError;
use super::limits;
use super::people::PurposeQuery;
use super::routes::ApiState;
use crate::alerts::alert_store::{
    AlertFilter, AlertStore, AlertStoreError, Outcome, ReviewAction, ReviewState, StoredAlert,
};
use crate::formats::alerts_jsonl::write_alerts;
use crate::model::time::parse_time;
use crate::model::Change;
use crate::store::metadata::Role;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::stream::Stream;
use futures::StreamExt;
use serde::Deserialize;
use std::convert::Infallible;

impl From<AlertStoreError> for ApiError {
    fn from(e: AlertStoreError) -> Self {
        match e {
            AlertStoreError::NotFound(id) => ApiError::not_found(format!("alert '{id}' not found")),
            AlertStoreError::Invalid(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

pub(super) fn store(state: &ApiState) -> Result<&AlertStore, ApiError> {
    state
        .alerts
        .store()
        .ok_or_else(|| ApiError::internal("no alert store configured"))
}

/// The people whose alerts the caller may see (`None` = everyone); police see none.
pub(super) fn scope(state: &ApiState, caller: &Caller) -> Result<Option<Vec<String>>, ApiError> {
    match caller.role() {
        Role::Admin | Role::Hub => Ok(None),
        Role::Practitioner { .. } => Ok(Some(state.metadata.person_ids_visible(caller.scope())?)),
        Role::Police { .. } => Err(ApiError::forbidden()),
    }
}

#[derive(Deserialize, Default)]
pub struct ListParams {
    #[serde(rename = "type")]
    alert_type: Option<String>,
    state: Option<String>,
    person: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
    purpose: Option<String>,
}

fn filter_from(p: &ListParams, people: Option<Vec<String>>) -> Result<AlertFilter, ApiError> {
    for (field, value) in [
        ("type", &p.alert_type),
        ("state", &p.state),
        ("person", &p.person),
        ("from", &p.from),
        ("to", &p.to),
    ] {
        limits::check_opt(field, value.as_deref(), limits::ID_MAX_CHARS)?;
    }
    let time = |t: &Option<String>| {
        t.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(ApiError::bad_request)
    };
    Ok(AlertFilter {
        alert_type: p.alert_type.clone(),
        state: p.state.clone(),
        person: p.person.clone(),
        people,
        from_ms: time(&p.from)?,
        to_ms: time(&p.to)?,
        limit: p.limit,
    })
}

pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let people = scope(&state, &caller)?;
    let purpose = purpose(&headers, p.purpose.as_deref())?;
    let filter = filter_from(&p, people)?;
    state.alerts.sync_store().await;
    let alerts = store(&state)?.list(&filter)?;
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "alerts.list",
            person: p.person.as_deref(),
            detail: Some(format!("{} alerts", alerts.len())),
            ..Access::default()
        },
    )?;
    Ok(Json(alerts).into_response())
}

/// Counts are person data too when filtered by person (or by type for a small caseload): the
/// purpose is required and the read audited, as for the list.
pub async fn count(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Query(p): Query<ListParams>,
) -> Result<Response, ApiError> {
    let people = scope(&state, &caller)?;
    let purpose = purpose(&headers, p.purpose.as_deref())?;
    let filter = filter_from(&p, people)?;
    state.alerts.sync_store().await;
    let count = store(&state)?.count(&filter)?;
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "alerts.count",
            person: p.person.as_deref(),
            detail: Some(format!("count: {}", serde_json::json!(count))),
            ..Access::default()
        },
    )?;
    Ok(Json(count).into_response())
}

/// The stored alert `id` and its person, if the caller may read it (`people`: the caller's
/// scope); 403, never 404, for a caller with a scope, whether it exists or not.
pub(super) async fn visible_alert(
    state: &ApiState,
    people: Option<&[String]>,
    id: &str,
) -> Result<(StoredAlert, String), ApiError> {
    state.alerts.sync_store().await;
    let Some(alert) = store(state)?.get(id)? else {
        return Err(if people.is_some() {
            ApiError::forbidden()
        } else {
            ApiError::not_found(format!("alert '{id}' not found"))
        });
    };
    let person = alert.alert["person"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if people.is_some_and(|ps| !ps.contains(&person)) {
        return Err(ApiError::forbidden());
    }
    Ok((alert, person))
}

pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PurposeQuery>,
) -> Result<Response, ApiError> {
    let people = scope(&state, &caller)?;
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let (alert, person) = visible_alert(&state, people.as_deref(), &id).await?;
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "alert.read",
            person: Some(&person),
            detail: Some(id.clone()),
            ..Access::default()
        },
    )?;
    state.alerts.sync_store().await;
    let history = store(&state)?.review_history(&id)?;
    Ok(Json(serde_json::json!({"alert": alert, "history": history})).into_response())
}

#[derive(Deserialize)]
pub struct ActionBody {
    notes: Option<String>,
    assignee: Option<String>,
    outcome: Option<Outcome>,
}

/// Acting on an alert reads and changes a person's record: the purpose is required, and the
/// action is audited (with the alert's person) before it is made.
pub async fn act(
    State(state): State<ApiState>,
    Staff(caller): Staff,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Query(q): Query<PurposeQuery>,
    Json(body): Json<ActionBody>,
) -> Result<Response, ApiError> {
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    limits::check_opt("notes", body.notes.as_deref(), limits::NOTES_MAX_CHARS)?;
    limits::check_opt("assignee", body.assignee.as_deref(), limits::NAME_MAX_CHARS)?;
    limits::check("id", &id, limits::ID_MAX_CHARS)?;
    let action_name = action.clone();
    let action = match action.as_str() {
        "acknowledge" => ReviewAction::Acknowledge { notes: body.notes },
        "assign" => ReviewAction::Assign {
            assignee: body
                .assignee
                .filter(|a| !a.trim().is_empty())
                .ok_or_else(|| ApiError::bad_request("assign needs 'assignee'"))?,
            notes: body.notes,
        },
        "resolve" => ReviewAction::Resolve {
            outcome: body.outcome.ok_or_else(|| {
                ApiError::bad_request(
                    "resolve needs 'outcome': breach_confirmed, reasonable_excuse, authorised_absence, false_alarm or duplicate",
                )
            })?,
            notes: body.notes,
        },
        other => return Err(ApiError::not_found(format!("no alert action '{other}' (acknowledge, assign, resolve)"))),
    };
    state.alerts.sync_store().await;
    let alerts = store(&state)?;
    let alert = alerts
        .get(&id)?
        .ok_or_else(|| ApiError::not_found(format!("alert '{id}' not found")))?;
    let text = |field: &str| alert.alert[field].as_str().unwrap_or_default().to_string();
    let (person, activation) = (text("person"), text("activation"));
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "alert.act",
            person: Some(&person),
            detail: Some(format!("{action_name} {id}")),
            ..Access::default()
        },
    )?;
    // Checked here for a clear answer; the alert store checks again when it applies the record
    // (someone else's action may get there first).
    if alert.review.state == ReviewState::Resolved {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("alert '{id}' is already resolved"),
        ));
    }
    let change = Change::AlertAction {
        alert: id.clone(),
        activation,
        person,
        review: action,
    };
    submit_decision(&state, &caller.0.name, change).await?;
    let after = alerts
        .get(&id)?
        .ok_or_else(|| ApiError::not_found(format!("alert '{id}' not found")))?;
    Ok(Json(after).into_response())
}

/// The contract export: every alert's final state as JSON Lines, in the fixed output order
/// (byte-identical to `tagstream replay`'s `alerts.jsonl` for the same readings).
pub async fn export_jsonl(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<PurposeQuery>,
) -> Result<Response, ApiError> {
    let people = scope(&state, &caller)?;
    let purpose = purpose(&headers, q.purpose.as_deref())?;
    let mut alerts = state.alerts.sorted();
    if let Some(people) = &people {
        alerts.retain(|a| people.contains(&a.person));
    }
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "alerts.export",
            format: Some("jsonl"),
            detail: Some(format!("{} alerts", alerts.len())),
            ..Access::default()
        },
    )?;
    let mut body = Vec::new();
    write_alerts(&mut body, &alerts).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// Where one SSE client is: its last event, what is queued for it, whether it is catching up.
struct SseState {
    alerts: std::sync::Arc<crate::alerts::LiveAlerts>,
    store: AlertStore,
    live: tokio::sync::broadcast::Receiver<crate::alerts::alert_store::AlertEvent>,
    last: i64,
    pending: std::collections::VecDeque<crate::alerts::alert_store::AlertEvent>,
    catch_up: bool,
    /// Whether this connection opens with every alert as it stands (`snapshot`, once) rather
    /// than the events from the start.
    snapshot: bool,
    /// Whether this connection was told its backlog is done (`caught_up`, once).
    told_caught_up: bool,
}

#[derive(Deserialize, Default)]
pub struct StreamParams {
    /// Resume after this event id (alternative to the `Last-Event-ID` header).
    after: Option<i64>,
    /// `true`: open with every alert as it stands, one `snapshot` event, instead of replaying
    /// every event since the first (ignored when resuming after an event).
    #[serde(default)]
    snapshot: bool,
    purpose: Option<String>,
}

/// Server-Sent Events: every alert change (`raised`, `updated`, `reviewed`), id = event number.
/// A client that reconnects with `Last-Event-ID` gets everything after it, then live events;
/// between the two, once per connection, a `caught_up` event (data: the last event number sent)
/// tells it that what follows is news (the console signals new urgent alerts from then on).
/// With `?snapshot=true` and nothing to resume after, the backlog starts with one `snapshot`
/// event instead of the history (id: the newest event it reflects; data: a JSON array of every
/// alert as it stands, in the order they were first raised), then the events after it.
pub async fn stream(
    State(state): State<ApiState>,
    Staff(caller): Staff,
    headers: HeaderMap,
    Query(p): Query<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let purpose = purpose(&headers, p.purpose.as_deref())?;
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(p.after);
    let snapshot = p.snapshot && resume_after.is_none();
    let last_id = resume_after.unwrap_or(0);
    record(
        &state,
        &caller,
        &purpose,
        Access {
            action: "alerts.stream",
            detail: Some(match snapshot {
                true => "alerts as they stand, then later events".to_string(),
                false => format!("after event {last_id}"),
            }),
            ..Access::default()
        },
    )?;
    // Subscribe first, then catch up from the store up to what was published by then: every
    // later event arrives live. Numbers increase but may skip (a restart resumes above a
    // reserved block), so only "not after `last`" is filtered.
    let live = state.alerts.subscribe();
    let store = store(&state)?.clone();
    let stream = futures::stream::unfold(
        SseState {
            alerts: state.alerts.clone(),
            store,
            live,
            last: last_id,
            pending: std::collections::VecDeque::new(),
            catch_up: true,
            snapshot,
            told_caught_up: false,
        },
        |mut s| async move {
            loop {
                if let Some(event) = s.pending.pop_front() {
                    s.last = event.seq;
                    let sse = Event::default()
                        .id(event.seq.to_string())
                        .event(event.kind.clone())
                        .data(event.body);
                    return Some((Ok(sse), s));
                }
                if s.snapshot {
                    s.snapshot = false;
                    s.alerts.sync_store().await;
                    let Ok(now) = s.store.current() else {
                        return None;
                    };
                    // Everything up to `through` is in it: the catch-up goes on after that.
                    s.last = now.through;
                    let sse = Event::default()
                        .id(now.through.to_string())
                        .event("snapshot")
                        .data(format!("[{}]", now.alerts.join(",")));
                    return Some((Ok(sse), s));
                }
                if s.catch_up {
                    s.alerts.sync_store().await;
                    match s.store.events_after(s.last, 500) {
                        Ok(backlog) if !backlog.is_empty() => s.pending.extend(backlog),
                        Ok(_) => s.catch_up = false,
                        Err(_) => return None,
                    }
                    continue;
                }
                if !s.told_caught_up {
                    s.told_caught_up = true;
                    let sse = Event::default().event("caught_up").data(s.last.to_string());
                    return Some((Ok(sse), s));
                }
                match s.live.recv().await {
                    Ok(event) if event.seq <= s.last => continue,
                    Ok(event) => s.pending.push_back(event),
                    // Fell behind the live channel: the store has everything, catch up again.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => s.catch_up = true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    // System alerts (ingest silent) ride along as their own event type, without an id, so they
    // do not move the client's Last-Event-ID in the alert sequence.
    let (open, system_rx) = state.system.subscribe();
    let system = futures::stream::iter(open).chain(futures::stream::unfold(
        system_rx,
        |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(alert) => return Some((alert, rx)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    ));
    let system = system.map(|alert| {
        Ok(Event::default()
            .event("system_alert")
            .data(serde_json::to_string(&alert).unwrap_or_default()))
    });
    // The connection ends when the alert stream ends (a `None` marks it), as before.
    let stream = futures::stream::select(
        stream
            .map(Some)
            .chain(futures::stream::once(std::future::ready(None))),
        system.map(Some),
    )
    .take_while(|item| std::future::ready(item.is_some()))
    .filter_map(std::future::ready);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
