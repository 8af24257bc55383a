//! The emulated Google Calendar: insert (ids checked, duplicates refused), get, list in
//! a time window, and free/busy.

use super::auth::{CAL_FREEBUSY, CAL_READ, CAL_WRITE, google_auth, google_error};
use super::data::lock;
use crate::sandbox::state::{SandboxState, random_token};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

fn event_millis(v: &Value, field: &str) -> Option<i64> {
    let s = v.get(field)?.get("dateTime")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c))
}

pub(super) async fn calendar_insert(
    State(st): State<Arc<SandboxState>>,
    Path(_cal): Path<String>,
    headers: HeaderMap,
    Json(mut body): Json<Value>,
) -> Response {
    if let Some(r) = st.providers.enter("calendar.insert").await {
        return r;
    }
    if let Err(r) = google_auth(&st, &headers, CAL_WRITE) {
        return r;
    }
    let (Some(start), Some(end)) = (event_millis(&body, "start"), event_millis(&body, "end"))
    else {
        return google_error(400, "required", "Missing start or end time.");
    };
    if end <= start {
        return google_error(400, "timeRangeEmpty", "The specified time range is empty.");
    }
    let id = match body.get("id").and_then(Value::as_str) {
        Some(id) if !valid_event_id(id) => {
            return google_error(400, "invalid", "Invalid resource id value.");
        }
        Some(id) => id.to_string(),
        // Hex digits are a subset of Google's base32hex id alphabet.
        None => {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(random_token("")))[..26].to_string()
        }
    };
    let mut events = lock(&st.providers.events);
    if events.contains_key(&id) {
        return google_error(409, "duplicate", "The requested identifier already exists.");
    }
    if let Some(obj) = body.as_object_mut() {
        obj.insert("id".into(), json!(id));
        obj.insert("kind".into(), json!("calendar#event"));
        obj.insert("status".into(), json!("confirmed"));
        obj.insert(
            "htmlLink".into(),
            json!(format!("https://calendar.sandbox.invalid/event?eid={id}")),
        );
    }
    events.insert(id, body.clone());
    drop(events);
    st.providers.save();
    Json(body).into_response()
}

pub(super) async fn calendar_get(
    State(st): State<Arc<SandboxState>>,
    Path((_cal, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = st.providers.enter("calendar.get").await {
        return r;
    }
    if let Err(r) = google_auth(&st, &headers, CAL_READ) {
        return r;
    }
    match lock(&st.providers.events).get(&id) {
        Some(e) => Json(e.clone()).into_response(),
        None => google_error(404, "notFound", "Not Found"),
    }
}

fn in_window(e: &Value, min: Option<i64>, max: Option<i64>) -> bool {
    let (Some(s), Some(en)) = (event_millis(e, "start"), event_millis(e, "end")) else {
        return false;
    };
    min.is_none_or(|m| en > m) && max.is_none_or(|m| s < m)
}

fn rfc3339_param(q: &HashMap<String, String>, k: &str) -> Result<Option<i64>, Response> {
    match q.get(k) {
        None => Ok(None),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| Some(d.timestamp_millis()))
            .map_err(|_| google_error(400, "badRequest", &format!("Bad Request: {k}"))),
    }
}

pub(super) async fn calendar_list(
    State(st): State<Arc<SandboxState>>,
    Path(_cal): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = st.providers.enter("calendar.list").await {
        return r;
    }
    if let Err(r) = google_auth(&st, &headers, CAL_READ) {
        return r;
    }
    let (min, max) = match (rfc3339_param(&q, "timeMin"), rfc3339_param(&q, "timeMax")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let mut items: Vec<Value> = lock(&st.providers.events)
        .values()
        .filter(|e| in_window(e, min, max))
        .cloned()
        .collect();
    items.sort_by_key(|e| event_millis(e, "start"));
    Json(
        json!({"kind": "calendar#events", "summary": "primary", "timeZone": "UTC", "items": items}),
    )
    .into_response()
}

pub(super) async fn calendar_freebusy(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = st.providers.enter("calendar.freebusy").await {
        return r;
    }
    if let Err(r) = google_auth(&st, &headers, CAL_FREEBUSY) {
        return r;
    }
    let parse = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.timestamp_millis())
    };
    let (Some(min), Some(max)) = (parse("timeMin"), parse("timeMax")) else {
        return google_error(400, "badRequest", "Missing timeMin or timeMax.");
    };
    let busy: Vec<Value> = lock(&st.providers.events)
        .values()
        .filter(|e| in_window(e, Some(min), Some(max)))
        .map(|e| json!({"start": e["start"]["dateTime"], "end": e["end"]["dateTime"]}))
        .collect();
    Json(json!({
        "kind": "calendar#freeBusy",
        "timeMin": body["timeMin"],
        "timeMax": body["timeMax"],
        "calendars": {"primary": {"busy": busy}},
    }))
    .into_response()
}
