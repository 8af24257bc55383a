//! Emulated Gmail, Google Calendar and Slack Web API endpoints, under `/gmail/v1`,
//! `/calendar/v3` and `/slack/api`. Each checks the bearer token against what the
//! emulated Token Vault issued (connection, expiry, scopes) and answers in the
//! provider's own error shape: Google's `{error:{code,message,status,errors}}`, Slack's
//! HTTP 200 `{ok:false,error}`. Side effects are recorded so tests can count them, and
//! faults and latency can be injected per endpoint.

// Handlers return ready-made provider error responses as their `Err`; their size is
// irrelevant in an emulator and boxing them would only add noise.
#![allow(clippy::result_large_err)]

use super::state::{ProviderGrant, SandboxState, now_ms, random_token};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A sent or drafted email as the emulated Gmail stored it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredMail {
    pub id: String,
    pub message_id: String,
    pub to: String,
    pub subject: String,
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SlackPost {
    pub channel: String,
    pub text: String,
    pub ts: String,
}

/// An injected fault: the next `remaining` calls to an endpoint answer like this.
/// `status: 0` injects only the delay: the call then proceeds normally (a slow endpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub status: u16,
    /// Raw body; `None` means the provider's normal error body for the status.
    pub body: Option<String>,
    pub retry_after_secs: Option<u64>,
    pub delay_ms: u64,
    pub remaining: u32,
}

/// A message that arrived in the emulated inbox (a prospect writing back).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InboundMail {
    pub id: String,
    pub from: String,
    pub subject: String,
    pub received_ms: i64,
}

#[derive(Debug, Default)]
pub struct ProviderData {
    pub inbox: Mutex<Vec<InboundMail>>,
    pub sent: Mutex<Vec<StoredMail>>,
    pub drafts: Mutex<Vec<StoredMail>>,
    pub events: Mutex<BTreeMap<String, Value>>,
    pub slack_posts: Mutex<Vec<SlackPost>>,
    /// The emulated Salesforce org (seeded with the demo pipeline on first use).
    pub salesforce: Mutex<super::salesforce::Org>,
    /// Query results waiting behind a `nextRecordsUrl` locator: (total, the rest).
    pub salesforce_cursors: Mutex<HashMap<String, (usize, Vec<Value>)>>,
    /// Records per query page (0: Salesforce's 2000).
    pub salesforce_page: AtomicU64,
    /// How long a Salesforce write waits, after it is done and kept, before it answers:
    /// the window in which a client that dies has changed the org but not heard so.
    pub salesforce_answer_delay_ms: AtomicU64,
    faults: Mutex<HashMap<String, Fault>>,
    calls: Mutex<HashMap<String, u64>>,
    /// Added to every provider call, to emulate network and provider latency.
    pub latency_ms: AtomicU64,
    /// Where the world is kept between runs (see [`ProviderData::persist_to`]).
    journal: Mutex<Option<std::path::PathBuf>>,
}

/// What the emulated providers hold, as it is kept on disk.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct World {
    #[serde(default)]
    inbox: Vec<InboundMail>,
    sent: Vec<StoredMail>,
    drafts: Vec<StoredMail>,
    events: BTreeMap<String, Value>,
    slack_posts: Vec<SlackPost>,
    #[serde(default)]
    salesforce: super::salesforce::Org,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProviderData {
    /// Keeps what the providers hold in `path`: loads what an earlier run left there,
    /// then rewrites it after every side effect, before the provider answers. A send
    /// the provider acknowledged is then on disk even if every process dies right
    /// after, so reconciliation in the next run finds it instead of sending again —
    /// as the real Gmail would still hold it.
    pub fn persist_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let w: World = serde_json::from_slice(&bytes)
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
                *lock(&self.inbox) = w.inbox;
                *lock(&self.sent) = w.sent;
                *lock(&self.drafts) = w.drafts;
                *lock(&self.events) = w.events;
                *lock(&self.slack_posts) = w.slack_posts;
                *lock(&self.salesforce) = w.salesforce;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        *lock(&self.journal) = Some(path.to_path_buf());
        Ok(())
    }

    /// Records per Salesforce query page.
    pub fn salesforce_page_size(&self) -> usize {
        match self.salesforce_page.load(Ordering::Relaxed) {
            0 => 2000,
            n => n as usize,
        }
    }

    /// The emulated Salesforce org as it is now.
    pub fn salesforce_org(&self) -> super::salesforce::Org {
        let mut g = lock(&self.salesforce);
        if !g.seeded {
            g.seed(now_ms());
        }
        g.clone()
    }

    /// Writes the world out (atomically, owner-only) if it is kept on disk.
    pub(super) fn save(&self) {
        let Some(path) = lock(&self.journal).clone() else {
            return;
        };
        let w = World {
            inbox: self.inbox(),
            sent: self.sent(),
            drafts: self.drafts(),
            events: self.events(),
            slack_posts: self.slack_posts(),
            salesforce: lock(&self.salesforce).clone(),
        };
        let written = serde_json::to_vec(&w)
            .map_err(std::io::Error::other)
            .and_then(|bytes| super::write_private(&path, &bytes));
        if let Err(e) = written {
            tracing::warn!(error = %e, path = %path.display(), "cannot keep the sandbox world");
        }
    }

    pub fn inbox(&self) -> Vec<InboundMail> {
        lock(&self.inbox).clone()
    }

    /// A message arrives in the inbox (kept on disk like every other change).
    pub fn deliver(&self, from: &str, subject: &str, at: i64) -> InboundMail {
        let m = InboundMail {
            id: super::state::random_token("in"),
            from: from.to_string(),
            subject: subject.to_string(),
            received_ms: at,
        };
        lock(&self.inbox).push(m.clone());
        self.save();
        m
    }

    pub fn sent(&self) -> Vec<StoredMail> {
        lock(&self.sent).clone()
    }
    pub fn drafts(&self) -> Vec<StoredMail> {
        lock(&self.drafts).clone()
    }
    pub fn events(&self) -> BTreeMap<String, Value> {
        lock(&self.events).clone()
    }
    pub fn slack_posts(&self) -> Vec<SlackPost> {
        lock(&self.slack_posts).clone()
    }
    /// Endpoint names: gmail.send, gmail.drafts, gmail.list, calendar.list,
    /// calendar.get, calendar.insert, calendar.freebusy, slack.post, slack.list.
    pub fn inject(&self, endpoint: &str, fault: Fault) {
        lock(&self.faults).insert(endpoint.to_string(), fault);
    }
    pub fn calls(&self, endpoint: &str) -> u64 {
        lock(&self.calls).get(endpoint).copied().unwrap_or(0)
    }
    pub fn set_latency_ms(&self, ms: u64) {
        self.latency_ms.store(ms, Ordering::Relaxed);
    }

    /// Counts the call, applies latency, and returns an injected fault if one is due.
    pub(super) async fn enter(&self, endpoint: &str) -> Option<Response> {
        let latency = self.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            *lock(&self.calls).entry(endpoint.to_string()).or_default() += 1;
            tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
            return self.take_fault(endpoint).await;
        }
        self.fault(endpoint).await
    }

    /// Counts the call and returns an injected fault if one is due (no added latency).
    /// The emulated Auth0 uses this too, with endpoint names `auth0.device_code`,
    /// `auth0.token` (device and refresh grants), `auth0.ciba_poll`, `auth0.vault`
    /// (Token Vault exchange), `auth0.bc_authorize` and `auth0.accounts`.
    pub async fn fault(&self, endpoint: &str) -> Option<Response> {
        *lock(&self.calls).entry(endpoint.to_string()).or_default() += 1;
        self.take_fault(endpoint).await
    }

    async fn take_fault(&self, endpoint: &str) -> Option<Response> {
        let fault = {
            let mut faults = lock(&self.faults);
            match faults.get_mut(endpoint) {
                Some(f) if f.remaining > 0 => {
                    f.remaining -= 1;
                    Some(f.clone())
                }
                _ => None,
            }
        }?;
        if fault.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(fault.delay_ms)).await;
        }
        if fault.status == 0 {
            // Status 0: no fault, only slow; the call then proceeds normally.
            return None;
        }
        let status =
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = fault.body.unwrap_or_else(|| {
            if endpoint.starts_with("auth0.") {
                let error = if fault.status == 429 {
                    "too_many_requests"
                } else {
                    "server_error"
                };
                json!({"error": error, "error_description": "injected fault"}).to_string()
            } else if endpoint.starts_with("salesforce.") {
                super::salesforce::fault_body(fault.status)
            } else if endpoint.starts_with("slack.") && status == StatusCode::OK {
                json!({"ok": false, "error": "fatal_error"}).to_string()
            } else {
                google_error_body(fault.status, "backendError", "injected fault").to_string()
            }
        });
        let mut resp = (status, body).into_response();
        if let Some(secs) = fault.retry_after_secs
            && let Ok(v) = secs.to_string().parse()
        {
            resp.headers_mut().insert("retry-after", v);
        }
        resp.headers_mut().insert(
            "content-type",
            axum::http::HeaderValue::from_static("application/json"),
        );
        Some(resp)
    }
}

fn google_status(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

fn google_error_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"error": {
        "code": code,
        "message": message,
        "status": google_status(code),
        "errors": [{"domain": "global", "reason": reason, "message": message}],
    }})
}

fn google_error(code: u16, reason: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(google_error_body(code, reason, message))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Google's check: a live token of the google-oauth2 connection holding any of `scopes`.
fn google_auth(
    st: &SandboxState,
    headers: &HeaderMap,
    scopes: &[&str],
) -> Result<ProviderGrant, Response> {
    let unauth = || {
        google_error(
            401,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        )
    };
    let token = bearer(headers).ok_or_else(unauth)?;
    let grant = st.provider_grant(token).ok_or_else(unauth)?;
    if grant.connection != "google-oauth2" || grant.expires_at <= now_ms() {
        return Err(unauth());
    }
    if !scopes.iter().any(|s| grant.scopes.iter().any(|g| g == s)) {
        return Err(google_error(
            403,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        ));
    }
    Ok(grant)
}

fn slack_fail(error: &str) -> Response {
    Json(json!({"ok": false, "error": error})).into_response()
}

fn slack_auth(
    st: &SandboxState,
    headers: &HeaderMap,
    scope: &str,
) -> Result<ProviderGrant, Response> {
    let Some(token) = bearer(headers) else {
        return Err(slack_fail("not_authed"));
    };
    let Some(grant) = st.provider_grant(token) else {
        return Err(slack_fail("invalid_auth"));
    };
    if grant.connection != "sign-in-with-slack" {
        return Err(slack_fail("invalid_auth"));
    }
    if grant.expires_at <= now_ms() {
        return Err(slack_fail("token_expired"));
    }
    if !grant.scopes.iter().any(|g| g == scope) {
        return Err(Json(json!({
            "ok": false,
            "error": "missing_scope",
            "needed": scope,
            "provided": grant.scopes.join(","),
        }))
        .into_response());
    }
    Ok(grant)
}

const GMAIL_SEND: &[&str] = &[
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://mail.google.com/",
];
const GMAIL_COMPOSE: &[&str] = &[
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://mail.google.com/",
];
const GMAIL_READ: &[&str] = &[
    "https://www.googleapis.com/auth/gmail.metadata",
    "https://www.googleapis.com/auth/gmail.readonly",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://mail.google.com/",
];
const CAL_READ: &[&str] = &[
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.events.readonly",
];
const CAL_FREEBUSY: &[&str] = &[
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.freebusy",
    "https://www.googleapis.com/auth/calendar.events.freebusy",
];
const CAL_WRITE: &[&str] = &[
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.events",
];

pub fn router(state: Arc<SandboxState>) -> axum::Router {
    axum::Router::new()
        .route("/gmail/v1/users/{user}/messages/send", post(gmail_send))
        .route("/gmail/v1/users/{user}/messages", get(gmail_list))
        .route("/gmail/v1/users/{user}/messages/{id}", get(gmail_get))
        .route("/sandbox/inbox", post(deliver))
        .route("/gmail/v1/users/{user}/drafts", post(gmail_draft))
        .route(
            "/calendar/v3/calendars/{cal}/events",
            get(calendar_list).post(calendar_insert),
        )
        .route(
            "/calendar/v3/calendars/{cal}/events/{id}",
            get(calendar_get),
        )
        .route("/calendar/v3/freeBusy", post(calendar_freebusy))
        .route("/slack/api/chat.postMessage", post(slack_post))
        .route("/sandbox/providers", get(summary))
        .route(
            "/slack/api/conversations.list",
            get(slack_list).post(slack_list),
        )
        .with_state(state)
}

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

async fn gmail_send(
    State(st): State<Arc<SandboxState>>,
    Path(_user): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    gmail_store(&st, &headers, &body, false).await
}

async fn gmail_draft(
    State(st): State<Arc<SandboxState>>,
    Path(_user): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    gmail_store(&st, &headers, &body, true).await
}

/// Supports the one query dealflow sends: `rfc822msgid:<id>`, to reconcile.
async fn gmail_list(
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
async fn gmail_get(
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
async fn deliver(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = super::auth0::not_admin(&st, &headers) {
        return r;
    }
    let (Some(from), Some(subject)) = (body["from"].as_str(), body["subject"].as_str()) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "from and subject are required"})),
        )
            .into_response();
    };
    let at = body["at"].as_i64().unwrap_or_else(super::state::now_ms);
    Json(json!(st.providers.deliver(from, subject, at))).into_response()
}

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

async fn calendar_insert(
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

async fn calendar_get(
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

async fn calendar_list(
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

async fn calendar_freebusy(
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

pub const SLACK_CHANNELS: &[(&str, &str)] = &[
    ("C0DEALS01", "deals"),
    ("C0GENERAL", "general"),
    ("C0WINS001", "wins"),
];

async fn slack_post(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = st.providers.enter("slack.post").await {
        return r;
    }
    if let Err(r) = slack_auth(&st, &headers, "chat:write") {
        return r;
    }
    let channel = body.get("channel").and_then(Value::as_str).unwrap_or("");
    let text = body.get("text").and_then(Value::as_str).unwrap_or("");
    if channel.is_empty() {
        return slack_fail("channel_not_found");
    }
    if text.trim().is_empty() {
        return slack_fail("no_text");
    }
    if text.chars().count() > 40_000 {
        return slack_fail("msg_too_long");
    }
    let name = channel.trim_start_matches('#');
    let Some((id, _)) = SLACK_CHANNELS
        .iter()
        .find(|(id, n)| *id == channel || *n == name)
    else {
        return slack_fail("channel_not_found");
    };
    let ts = format!(
        "{}.{:06}",
        now_ms() / 1000,
        lock(&st.providers.slack_posts).len() + 1
    );
    lock(&st.providers.slack_posts).push(SlackPost {
        channel: id.to_string(),
        text: text.to_string(),
        ts: ts.clone(),
    });
    st.providers.save();
    Json(json!({"ok": true, "channel": id, "ts": ts, "message": {"text": text, "ts": ts}}))
        .into_response()
}

async fn slack_list(State(st): State<Arc<SandboxState>>, headers: HeaderMap) -> Response {
    if let Some(r) = st.providers.enter("slack.list").await {
        return r;
    }
    if let Err(r) = slack_auth(&st, &headers, "channels:read") {
        return r;
    }
    let channels: Vec<Value> = SLACK_CHANNELS
        .iter()
        .map(|(id, name)| json!({"id": id, "name": name, "is_channel": true, "is_private": false, "is_member": true, "is_archived": false}))
        .collect();
    Json(json!({"ok": true, "channels": channels, "response_metadata": {"next_cursor": ""}}))
        .into_response()
}

/// What the emulated providers hold, for a person (or a test in another process) to see
/// that a side effect happened exactly once. Loopback only, like the whole sandbox.
/// What the providers hold (mail subjects and recipients, events, posts): the owner's
/// alone, like the other `/sandbox` controls.
async fn summary(State(st): State<Arc<SandboxState>>, headers: HeaderMap) -> Response {
    if let Some(r) = super::auth0::not_admin(&st, &headers) {
        return r;
    }
    let p = &st.providers;
    Json(json!({
        "sent": p.sent().iter().map(|m| json!({"to": m.to, "subject": m.subject, "message_id": m.message_id})).collect::<Vec<_>>(),
        "drafts": p.drafts().len(),
        "events": p.events().values().map(|e| json!({"id": e["id"], "summary": e["summary"]})).collect::<Vec<_>>(),
        "slack_posts": p.slack_posts().iter().map(|s| json!({"channel": s.channel, "text": s.text})).collect::<Vec<_>>(),
    }))
    .into_response()
}
