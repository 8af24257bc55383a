//! Each provider's own error shape (Google's `{error:{…}}`, Slack's HTTP 200
//! `{ok:false,error}`) and its bearer-token check against the emulated Token Vault.

use crate::sandbox::state::{ProviderGrant, SandboxState};
use crate::wall::now_ms;
use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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

pub(super) fn google_error_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"error": {
        "code": code,
        "message": message,
        "status": google_status(code),
        "errors": [{"domain": "global", "reason": reason, "message": message}],
    }})
}

pub(super) fn google_error(code: u16, reason: &str, message: &str) -> Response {
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
pub(super) fn google_auth(
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

pub(super) fn slack_fail(error: &str) -> Response {
    Json(json!({"ok": false, "error": error})).into_response()
}

pub(super) fn slack_auth(
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

pub(super) const GMAIL_SEND: &[&str] = &[
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://mail.google.com/",
];
pub(super) const GMAIL_COMPOSE: &[&str] = &[
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://mail.google.com/",
];
pub(super) const GMAIL_READ: &[&str] = &[
    "https://www.googleapis.com/auth/gmail.metadata",
    "https://www.googleapis.com/auth/gmail.readonly",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://mail.google.com/",
];
pub(super) const CAL_READ: &[&str] = &[
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.events.readonly",
];
pub(super) const CAL_FREEBUSY: &[&str] = &[
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.freebusy",
    "https://www.googleapis.com/auth/calendar.events.freebusy",
];
pub(super) const CAL_WRITE: &[&str] = &[
    "https://www.googleapis.com/auth/calendar",
    "https://www.googleapis.com/auth/calendar.events",
];
