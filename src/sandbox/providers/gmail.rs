//! The emulated Gmail: send and draft (stored, so tests can count them), the one list
//! query dealflow reconciles with, inbox metadata, and the sandbox's inbound delivery.

use super::auth::{GMAIL_COMPOSE, GMAIL_READ, GMAIL_SEND, google_auth, google_error};
use super::data::{StoredMail, lock};
use crate::sandbox::state::{SandboxState, random_token};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Decodes Gmail's `raw` (URL-safe base64, padded or not) into headers we check.
fn parse_raw(raw: &str) -> Result<(String, String, String), String> {
    let trimmed = raw.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .map_err(|e| format!("Invalid value for ByteString: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "raw is not UTF-8".to_string())?;
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let header = |name: &str| {
        head.split("\r\n")
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let to = header("To");
    if to.is_empty() {
        return Err("Invalid To header".into());
    }
    Ok((to, header("Subject"), header("Message-ID")))
}

async fn gmail_store(
    st: &SandboxState,
    headers: &HeaderMap,
    body: &Value,
    draft: bool,
) -> Response {
    let endpoint = if draft { "gmail.drafts" } else { "gmail.send" };
    if let Some(r) = st.providers.enter(endpoint).await {
        return r;
    }
    let scopes = if draft { GMAIL_COMPOSE } else { GMAIL_SEND };
    if let Err(r) = google_auth(st, headers, scopes) {
        return r;
    }
    let raw = if draft {
        body.pointer("/message/raw")
    } else {
        body.get("raw")
    };
    let Some(raw) = raw.and_then(Value::as_str) else {
        return google_error(
            400,
            "invalidArgument",
            "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
        );
    };
    let (to, subject, message_id) = match parse_raw(raw) {
        Ok(h) => h,
        Err(e) => return google_error(400, "invalidArgument", &e),
    };
    let id = random_token("")
        .chars()
        .take(16)
        .collect::<String>()
        .to_lowercase();
    let mail = StoredMail {
        id: id.clone(),
        message_id,
        to,
        subject,
        raw: raw.to_string(),
    };
    if draft {
        lock(&st.providers.drafts).push(mail);
        st.providers.save();
        Json(json!({"id": format!("r-{id}"), "message": {"id": id, "threadId": id, "labelIds": ["DRAFT"]}}))
            .into_response()
    } else {
        lock(&st.providers.sent).push(mail);
        st.providers.save();
        Json(json!({"id": id, "threadId": id, "labelIds": ["SENT"]})).into_response()
    }
}

pub(super) async fn gmail_send(
    State(st): State<Arc<SandboxState>>,
    Path(_user): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    gmail_store(&st, &headers, &body, false).await
}

pub(super) async fn gmail_draft(
    State(st): State<Arc<SandboxState>>,
    Path(_user): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    gmail_store(&st, &headers, &body, true).await
}

/// Supports the one query dealflow sends: `rfc822msgid:<id>`, to reconcile.
pub(super) async fn gmail_list(
    State(st): State<Arc<SandboxState>>,
    Path(_user): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = st.providers.enter("gmail.list").await {
        return r;
    }
    if let Err(r) = google_auth(&st, &headers, GMAIL_READ) {
        return r;
    }
    if q.get("labelIds").map(String::as_str) == Some("INBOX") {
        let max = q
            .get("maxResults")
            .and_then(|m| m.parse::<usize>().ok())
            .unwrap_or(100);
        let mut inbox = st.providers.inbox();
        inbox.sort_by_key(|m| std::cmp::Reverse(m.received_ms));
        let found: Vec<Value> = inbox
            .iter()
            .take(max)
            .map(|m| json!({"id": m.id, "threadId": m.id}))
            .collect();
        return Json(json!({"messages": found, "resultSizeEstimate": found.len()})).into_response();
    }
    let want = q
        .get("q")
        .and_then(|q| q.strip_prefix("rfc822msgid:"))
        .map(|s| s.trim().to_string());
    let sent = lock(&st.providers.sent);
    let found: Vec<Value> = sent
        .iter()
        .filter(|m| want.as_ref().is_none_or(|w| &m.message_id == w))
        .map(|m| json!({"id": m.id, "threadId": m.id}))
        .collect();
    Json(json!({"messages": found, "resultSizeEstimate": found.len()})).into_response()
}

/// `messages.get?format=metadata`: labels, internalDate (ms, as a string, as Gmail sends
/// it) and the headers asked for; never a body.
pub(super) async fn gmail_get(
    State(st): State<Arc<SandboxState>>,
    Path((_user, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = st.providers.enter("gmail.get").await {
        return r;
    }
    if let Err(r) = google_auth(&st, &headers, GMAIL_READ) {
        return r;
    }
    let Some(m) = st.providers.inbox().into_iter().find(|m| m.id == id) else {
        return (
            axum::http::StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})),
        )
            .into_response();
    };
    Json(json!({
        "id": m.id,
        "threadId": m.id,
        "labelIds": ["INBOX", "UNREAD"],
        "internalDate": m.received_ms.to_string(),
        "payload": {"headers": [
            {"name": "From", "value": m.from},
            {"name": "Subject", "value": m.subject},
        ]},
    }))
    .into_response()
}

/// Sandbox control: a message arrives (`sandbox advance` delivers the world's mail).
pub(super) async fn deliver(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = crate::sandbox::auth0::not_admin(&st, &headers) {
        return r;
    }
    let (Some(from), Some(subject)) = (body["from"].as_str(), body["subject"].as_str()) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "from and subject are required"})),
        )
            .into_response();
    };
    let at = body["at"].as_i64().unwrap_or_else(crate::wall::now_ms);
    Json(json!(st.providers.deliver(from, subject, at))).into_response()
}
