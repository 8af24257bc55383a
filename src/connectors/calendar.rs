//! Google Calendar: list, free/busy and insert. The event id derives from the action id,
//! so a retried insert gets 409 "already exists" instead of a second meeting.

use super::http::{Request, RetryPolicy, google_error, send};
use super::{ConnectorError, Endpoints, Outcome, derived_id};
use crate::core::domain::Millis;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

const WRITE_SCOPE: &str = "https://www.googleapis.com/auth/calendar.events";
const READ_SCOPE: &str = "https://www.googleapis.com/auth/calendar.readonly";

pub struct Meeting<'a> {
    pub title: &'a str,
    pub attendees: &'a [String],
    pub start: Millis,
    pub end: Millis,
    pub description: &'a str,
}

pub async fn insert(
    client: &reqwest::Client,
    ep: &Endpoints,
    token: &str,
    action_id: &str,
    m: &Meeting<'_>,
    policy: &RetryPolicy,
) -> Result<Outcome, ConnectorError> {
    let id = derived_id(action_id);
    let req = Request {
        client,
        method: Method::POST,
        url: format!("{}/calendars/primary/events", ep.calendar),
        endpoint: "calendar.insert",
        token,
        body: Some(json!({
            "id": id,
            "summary": m.title,
            "description": m.description,
            "start": { "dateTime": rfc3339(m.start) },
            "end": { "dateTime": rfc3339(m.end) },
            "attendees": m.attendees.iter().map(|a| json!({ "email": a })).collect::<Vec<_>>(),
        })),
        query: vec![("sendUpdates".into(), "all".into())],
    };
    let a = send(&req, policy).await?;
    if a.status == StatusCode::CONFLICT {
        // Our id already exists: an earlier try of this same action created it.
        return Ok(Outcome {
            summary: format!("meeting already booked (event {id})"),
            provider_id: Some(id.clone()),
            data: json!({ "id": id, "already_existed": true }),
        });
    }
    if !a.status.is_success() {
        return Err(google_error(
            "calendar.insert",
            a.status,
            &a.body,
            &[WRITE_SCOPE],
        ));
    }
    Ok(Outcome {
        summary: format!("meeting booked: {} at {}", m.title, rfc3339(m.start)),
        provider_id: Some(id),
        data: json!({ "id": a.body["id"], "htmlLink": a.body["htmlLink"], "status": a.body["status"] }),
    })
}

/// Whether this action's event exists (for reconciliation).
pub async fn find(
    client: &reqwest::Client,
    ep: &Endpoints,
    token: &str,
    action_id: &str,
) -> Result<Option<String>, ConnectorError> {
    let id = derived_id(action_id);
    let req = Request {
        client,
        method: Method::GET,
        url: format!("{}/calendars/primary/events/{id}", ep.calendar),
        endpoint: "calendar.get",
        token,
        body: None,
        query: vec![],
    };
    let a = send(&req, &RetryPolicy::default()).await?;
    match a.status {
        s if s.is_success() => Ok(Some(id)),
        StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
        s => Err(google_error("calendar.get", s, &a.body, &[READ_SCOPE])),
    }
}

pub async fn list(
    client: &reqwest::Client,
    ep: &Endpoints,
    token: &str,
    from: Millis,
    to: Millis,
    policy: &RetryPolicy,
) -> Result<Outcome, ConnectorError> {
    let req = Request {
        client,
        method: Method::GET,
        url: format!("{}/calendars/primary/events", ep.calendar),
        endpoint: "calendar.list",
        token,
        body: None,
        query: vec![
            ("timeMin".into(), rfc3339(from)),
            ("timeMax".into(), rfc3339(to)),
            ("singleEvents".into(), "true".into()),
            ("orderBy".into(), "startTime".into()),
        ],
    };
    let a = send(&req, policy).await?;
    if !a.status.is_success() {
        return Err(google_error(
            "calendar.list",
            a.status,
            &a.body,
            &[READ_SCOPE],
        ));
    }
    let items: Vec<Value> = a
        .body
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|e| json!({ "summary": e["summary"], "start": e["start"], "end": e["end"], "attendees": e["attendees"] }))
                .collect()
        })
        .unwrap_or_default();
    Ok(Outcome {
        summary: format!(
            "{} events between {} and {}",
            items.len(),
            rfc3339(from),
            rfc3339(to)
        ),
        provider_id: None,
        data: json!({ "events": items }),
    })
}
