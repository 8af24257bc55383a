//! Emulated Gmail, Google Calendar and Slack Web API endpoints, under `/gmail/v1`,
//! `/calendar/v3` and `/slack/api`. Each checks the bearer token against what the
//! emulated Token Vault issued (connection, expiry, scopes) and answers in the
//! provider's own error shape: Google's `{error:{code,message,status,errors}}`, Slack's
//! HTTP 200 `{ok:false,error}`. Side effects are recorded so tests can count them, and
//! faults and latency can be injected per endpoint.

// Handlers return ready-made provider error responses as their `Err`; their size is
// irrelevant in an emulator and boxing them would only add noise.
#![allow(clippy::result_large_err)]

use super::state::SandboxState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use calendar::{calendar_freebusy, calendar_get, calendar_insert, calendar_list};
use gmail::{deliver, gmail_draft, gmail_get, gmail_list, gmail_send};
use serde_json::json;
use slack::{slack_list, slack_post};
use std::sync::Arc;

mod auth;
mod calendar;
mod data;
mod gmail;
mod slack;

pub use data::{Fault, InboundMail, ProviderData, SlackPost, StoredMail};
pub use slack::SLACK_CHANNELS;

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
