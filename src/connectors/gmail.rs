//! Gmail: send and draft as RFC 2822 messages whose Message-ID derives from the action
//! id, so a crash between "sent" and "recorded" can be reconciled by searching for it.

use super::http::{Request, RetryPolicy, google_error, send};
use super::{ConnectorError, Endpoints, Outcome};
use crate::core::domain::Email;
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};

/// `<act-…@dealflow.local>`: the header a retry or a reconciliation looks for.
pub fn message_id(action_id: &str) -> String {
    format!("<{}@dealflow.local>", super::derived_id(action_id))
}

/// RFC 2047 encoded-word for non-ASCII header text.
fn header_text(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
        )
    }
}

/// The message as Gmail's `raw` wants it, before base64url.
pub fn render(action_id: &str, e: &Email) -> String {
    let mut m = String::new();
    m.push_str(&format!("Message-ID: {}\r\n", message_id(action_id)));
    m.push_str(&format!("To: {}\r\n", e.to.join(", ")));
    if !e.cc.is_empty() {
        m.push_str(&format!("Cc: {}\r\n", e.cc.join(", ")));
    }
    m.push_str(&format!("Subject: {}\r\n", header_text(&e.subject)));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Content-Type: text/plain; charset=\"UTF-8\"\r\n");
    m.push_str("Content-Transfer-Encoding: base64\r\n");
    m.push_str(&format!("X-Dealflow-Action: {action_id}\r\n"));
    m.push_str("\r\n");
    let body = e.body.replace("\r\n", "\n").replace('\n', "\r\n");
    let encoded = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
    // 76-column lines, as MIME asks.
    for chunk in encoded.as_bytes().chunks(76) {
        m.push_str(&String::from_utf8_lossy(chunk));
        m.push_str("\r\n");
    }
    m
}

fn raw(action_id: &str, e: &Email) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(render(action_id, e).as_bytes())
}

const SEND_SCOPE: &str = "https://www.googleapis.com/auth/gmail.send";
const COMPOSE_SCOPE: &str = "https://www.googleapis.com/auth/gmail.compose";

pub async fn send_email(
    client: &reqwest::Client,
    ep: &Endpoints,
    token: &str,
    action_id: &str,
    e: &Email,
    policy: &RetryPolicy,
) -> Result<Outcome, ConnectorError> {
    let req = Request {
        client,
        method: Method::POST,
        url: format!("{}/users/me/messages/send", ep.gmail),
        endpoint: "gmail.send",
        token,
        body: Some(json!({ "raw": raw(action_id, e) })),
        query: vec![],
    };
    let a = send(&req, policy).await?;
    if !a.status.is_success() {
        return Err(google_error("gmail.send", a.status, &a.body, &[SEND_SCOPE]));
    }
    let id = a.body.get("id").and_then(Value::as_str).map(str::to_string);
    Ok(Outcome {
        summary: format!(
            "sent to {} (gmail id {})",
            e.to.join(", "),
            id.as_deref().unwrap_or("?")
        ),
        provider_id: id,
        data: json!({ "id": a.body["id"], "threadId": a.body["threadId"], "labelIds": a.body["labelIds"], "message_id": message_id(action_id) }),
    })
}

pub async fn create_draft(
    client: &reqwest::Client,
    ep: &Endpoints,
    token: &str,
    action_id: &str,
    e: &Email,
    policy: &RetryPolicy,
) -> Result<Outcome, ConnectorError> {
    let req = Request {
        client,
        method: Method::POST,
        url: format!("{}/users/me/drafts", ep.gmail),
        endpoint: "gmail.drafts",
        token,
        body: Some(json!({ "message": { "raw": raw(action_id, e) } })),
        query: vec![],
    };
    let a = send(&req, policy).await?;
    if !a.status.is_success() {
        return Err(google_error(
            "gmail.drafts",
            a.status,
            &a.body,
            &[COMPOSE_SCOPE],
        ));
    }
    let id = a.body.get("id").and_then(Value::as_str).map(str::to_string);
    Ok(Outcome {
        summary: format!("draft saved (gmail draft {})", id.as_deref().unwrap_or("?")),
        provider_id: id,
        data: json!({ "id": a.body["id"], "message": a.body["message"] }),
    })
}

/// Looks for a sent message by the Message-ID this action would have used.
pub async fn find_sent(
    client: &reqwest::Client,
    ep: &Endpoints,
    token: &str,
    action_id: &str,
) -> Result<Option<String>, ConnectorError> {
    let req = Request {
        client,
        method: Method::GET,
        url: format!("{}/users/me/messages", ep.gmail),
        endpoint: "gmail.list",
        token,
        body: None,
        query: vec![("q".into(), format!("rfc822msgid:{}", message_id(action_id)))],
    };
    let a = send(&req, &RetryPolicy::default()).await?;
    if !a.status.is_success() {
        return Err(google_error(
            "gmail.list",
            a.status,
            &a.body,
            &["https://www.googleapis.com/auth/gmail.metadata"],
        ));
    }
    Ok(a.body
        .pointer("/messages/0/id")
        .and_then(Value::as_str)
        .map(str::to_string))
}

const METADATA_SCOPE: &str = "https://www.googleapis.com/auth/gmail.metadata";
/// How many of the newest inbox messages one read looks at.
const INBOX_PAGE: usize = 20;

/// The newest inbox messages received at or after `since`: sender, subject and time.
/// Lists by label (the metadata scope does not allow a search query) and reads each
/// message's headers only (`format=metadata`), so no body is ever fetched.
pub async fn inbox(
    client: &reqwest::Client,
    ep: &Endpoints,
    token: &str,
    since: crate::core::domain::Millis,
    policy: &RetryPolicy,
) -> Result<Outcome, ConnectorError> {
    let list = Request {
        client,
        method: Method::GET,
        url: format!("{}/users/me/messages", ep.gmail),
        endpoint: "gmail.list",
        token,
        body: None,
        query: vec![
            ("labelIds".into(), "INBOX".into()),
            ("maxResults".into(), INBOX_PAGE.to_string()),
        ],
    };
    let a = send(&list, policy).await?;
    if !a.status.is_success() {
        return Err(google_error(
            "gmail.list",
            a.status,
            &a.body,
            &[METADATA_SCOPE],
        ));
    }
    let ids: Vec<String> = a
        .body
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|m| m.get("id")?.as_str().map(str::to_string))
                .take(INBOX_PAGE)
                .collect()
        })
        .unwrap_or_default();
    let mut messages = Vec::new();
    for id in ids {
        // Ids come from the provider: only a plain id goes into the path.
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            continue;
        }
        let get = Request {
            client,
            method: Method::GET,
            url: format!("{}/users/me/messages/{id}", ep.gmail),
            endpoint: "gmail.get",
            token,
            body: None,
            query: vec![
                ("format".into(), "metadata".into()),
                ("metadataHeaders".into(), "From".into()),
                ("metadataHeaders".into(), "Subject".into()),
            ],
        };
        let m = send(&get, policy).await?;
        if !m.status.is_success() {
            return Err(google_error(
                "gmail.get",
                m.status,
                &m.body,
                &[METADATA_SCOPE],
            ));
        }
        let received = m
            .body
            .get("internalDate")
            .and_then(|d| {
                d.as_str()
                    .and_then(|s| s.parse::<i64>().ok())
                    .or(d.as_i64())
            })
            .unwrap_or(0);
        if received < since {
            continue;
        }
        let header = |name: &str| {
            m.body
                .pointer("/payload/headers")
                .and_then(Value::as_array)
                .and_then(|hs| {
                    hs.iter().find(|h| {
                        h.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    })
                })
                .and_then(|h| h.get("value")?.as_str())
                .unwrap_or_default()
                .to_string()
        };
        messages.push(json!({
            "from": header("From"),
            "subject": header("Subject"),
            "received": received,
        }));
    }
    Ok(Outcome {
        summary: format!(
            "{} inbox message(s) since {}",
            messages.len(),
            super::calendar::rfc3339(since)
        ),
        provider_id: None,
        data: json!({ "messages": messages }),
    })
}
