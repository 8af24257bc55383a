//! Slack Web API: post and list. Slack answers auth failures as HTTP 200 `ok:false`,
//! so those codes are mapped to the same "reconnect" outcome as a Google 401.

use super::http::{Request, RetryPolicy, send};
use super::{ConnectorError, Endpoints, Outcome};
use reqwest::Method;
use serde_json::{Value, json};

fn slack_error(endpoint: &str, status: u16, body: &Value) -> ConnectorError {
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error");
    let endpoint = endpoint.to_string();
    match code {
        "invalid_auth" | "token_revoked" | "token_expired" | "not_authed" | "account_inactive" => {
            ConnectorError::Unauthorized {
                endpoint,
                detail: code.into(),
            }
        }
        "missing_scope" => ConnectorError::NeedsScopes {
            endpoint,
            scopes: body
                .get("needed")
                .and_then(Value::as_str)
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            detail: code.into(),
        },
        "ratelimited" | "rate_limited" => ConnectorError::RateLimited {
            endpoint,
            retry_after: None,
            detail: String::new(),
        },
        _ if status >= 500 => ConnectorError::Unavailable {
            endpoint,
            status,
            detail: code.into(),
        },
        _ => ConnectorError::Rejected {
            endpoint,
            status,
            detail: code.into(),
        },
    }
}

fn check(endpoint: &str, status: reqwest::StatusCode, body: &Value) -> Result<(), ConnectorError> {
    if status.is_success() && body.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(())
    } else if status.is_success() && body.get("ok").is_none() {
        Err(ConnectorError::Malformed {
            endpoint: endpoint.into(),
            status: status.as_u16(),
            detail: "no `ok` field".into(),
        })
    } else {
        Err(slack_error(endpoint, status.as_u16(), body))
    }
}

pub async fn post(
    client: &reqwest::Client,
    ep: &Endpoints,
    token: &str,
    channel: &str,
    text: &str,
    policy: &RetryPolicy,
) -> Result<Outcome, ConnectorError> {
    let req = Request {
        client,
        method: Method::POST,
        url: format!("{}/chat.postMessage", ep.slack),
        endpoint: "slack.post",
        token,
        body: Some(json!({ "channel": channel, "text": text })),
        query: vec![],
    };
    let a = send(&req, policy).await?;
    check("slack.post", a.status, &a.body)?;
    let ts = a.body.get("ts").and_then(Value::as_str).map(str::to_string);
    Ok(Outcome {
        summary: format!("posted to {channel} (ts {})", ts.as_deref().unwrap_or("?")),
        provider_id: ts,
        data: json!({ "channel": a.body["channel"], "ts": a.body["ts"] }),
    })
}

pub async fn list(
    client: &reqwest::Client,
    ep: &Endpoints,
    token: &str,
    policy: &RetryPolicy,
) -> Result<Outcome, ConnectorError> {
    let req = Request {
        client,
        method: Method::GET,
        url: format!("{}/conversations.list", ep.slack),
        endpoint: "slack.list",
        token,
        body: None,
        query: vec![("exclude_archived".into(), "true".into())],
    };
    let a = send(&req, policy).await?;
    check("slack.list", a.status, &a.body)?;
    let channels: Vec<Value> = a
        .body
        .get("channels")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| json!({ "id": c["id"], "name": c["name"] }))
                .collect()
        })
        .unwrap_or_default();
    Ok(Outcome {
        summary: format!("{} channels", channels.len()),
        provider_id: None,
        data: json!({ "channels": channels }),
    })
}
