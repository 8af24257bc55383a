//! The emulated Slack Web API: `chat.postMessage` to one of the sandbox's channels and
//! `conversations.list`.

use super::auth::{slack_auth, slack_fail};
use super::data::{SlackPost, lock};
use crate::sandbox::state::SandboxState;
use crate::wall::now_ms;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

pub const SLACK_CHANNELS: &[(&str, &str)] = &[
    ("C0DEALS01", "deals"),
    ("C0GENERAL", "general"),
    ("C0WINS001", "wins"),
];

pub(super) async fn slack_post(
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

pub(super) async fn slack_list(
    State(st): State<Arc<SandboxState>>,
    headers: HeaderMap,
) -> Response {
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
