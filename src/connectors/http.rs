//! The shared HTTP call: bounded retries on 429 with Retry-After, and errors that name
//! the endpoint and say whether the request could have landed.

use super::ConnectorError;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// One HTTP client per request timeout, shared by the whole process (Auth0 clients, the
/// pipeline's connectors): building a client loads and parses the system's trust store,
/// which cost a start-up ~5 ms per client, and a shared client also shares its
/// connection pool. No redirects are followed (a token endpoint that redirects is a
/// fault to report, not to chase), and connecting may take at most 10 s.
pub fn shared_client(timeout: Duration) -> reqwest::Client {
    static CLIENTS: std::sync::Mutex<Vec<(Duration, reqwest::Client)>> =
        std::sync::Mutex::new(Vec::new());
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = clients.iter().find(|(t, _)| *t == timeout) {
        return c.clone();
    }
    let c = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    clients.push((timeout, c.clone()));
    c
}

/// How patient a call is with rate limits.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_429_retries: u32,
    /// The longest Retry-After we wait in-line; longer ones become `RateLimited`.
    pub max_wait: Duration,
    /// How a back-off waits: tokio's timer. Injectable so a test states how long the
    /// call backed off instead of timing it.
    pub wait: crate::wall::Wait,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_429_retries: 2,
            max_wait: Duration::from_secs(30),
            wait: crate::wall::Wait::sleep(),
        }
    }
}

pub struct Request<'a> {
    pub client: &'a reqwest::Client,
    pub method: Method,
    pub url: String,
    /// Short name for errors and audit: "gmail.send".
    pub endpoint: &'a str,
    pub token: &'a str,
    pub body: Option<Value>,
    pub query: Vec<(String, String)>,
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    h.get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Sends the request; returns any answer with a JSON body (the caller maps statuses).
/// 429s are retried per `policy`.
pub async fn send(req: &Request<'_>, policy: &RetryPolicy) -> Result<Answer, ConnectorError> {
    send_with(req, policy, &[]).await
}

/// [`send`] with extra request headers (a precondition such as `If-Unmodified-Since`).
/// A `204 No Content` answers `null`.
pub async fn send_with(
    req: &Request<'_>,
    policy: &RetryPolicy,
    headers: &[(&str, String)],
) -> Result<Answer, ConnectorError> {
    let mut tries = 0;
    loop {
        let mut rb = req
            .client
            .request(req.method.clone(), &req.url)
            .bearer_auth(req.token);
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        if !req.query.is_empty() {
            rb = rb.query(&req.query);
        }
        if let Some(b) = &req.body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| {
            // Strip the URL's query (it may echo ids, never tokens, but keep it short).
            let connect = e.is_connect();
            let detail = e.without_url().to_string();
            if connect {
                ConnectorError::Unreachable {
                    endpoint: req.endpoint.into(),
                    detail,
                }
            } else {
                ConnectorError::NoAnswer {
                    endpoint: req.endpoint.into(),
                    detail,
                }
            }
        })?;
        let status = resp.status();
        let wait = retry_after(resp.headers());
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait_for = wait.unwrap_or(Duration::from_secs(1));
            if tries < policy.max_429_retries && wait_for <= policy.max_wait {
                tries += 1;
                tracing::info!(
                    endpoint = req.endpoint,
                    ?wait_for,
                    "rate limited; backing off"
                );
                (policy.wait.0)(wait_for).await;
                continue;
            }
            return Err(ConnectorError::RateLimited {
                endpoint: req.endpoint.into(),
                retry_after: wait,
                detail: String::new(),
            });
        }
        let text = resp.text().await.map_err(|e| ConnectorError::NoAnswer {
            endpoint: req.endpoint.into(),
            detail: e.without_url().to_string(),
        })?;
        if status == StatusCode::NO_CONTENT && text.trim().is_empty() {
            return Ok(Answer {
                status,
                body: Value::Null,
            });
        }
        let body: Value = serde_json::from_str(&text).map_err(|_| ConnectorError::Malformed {
            endpoint: req.endpoint.into(),
            status: status.as_u16(),
            detail: format!(
                "HTTP {}: not JSON: {:?}",
                status.as_u16(),
                text.chars().take(80).collect::<String>()
            ),
        })?;
        return Ok(Answer { status, body });
    }
}

/// Maps a Google API error answer to ours.
pub fn google_error(
    endpoint: &str,
    status: StatusCode,
    body: &Value,
    needed: &[&str],
) -> ConnectorError {
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_string();
    let reason = body
        .pointer("/error/errors/0/reason")
        .and_then(Value::as_str)
        .unwrap_or("");
    let endpoint = endpoint.to_string();
    match status.as_u16() {
        401 => ConnectorError::Unauthorized {
            endpoint,
            detail: message,
        },
        403 if reason == "insufficientPermissions"
            || body.pointer("/error/status").and_then(Value::as_str)
                == Some("PERMISSION_DENIED")
                && reason != "rateLimitExceeded" =>
        {
            ConnectorError::NeedsScopes {
                endpoint,
                scopes: needed.iter().map(|s| s.to_string()).collect(),
                detail: message,
            }
        }
        403 if reason == "rateLimitExceeded" || reason == "userRateLimitExceeded" => {
            ConnectorError::RateLimited {
                endpoint,
                retry_after: None,
                detail: message,
            }
        }
        s if s >= 500 => ConnectorError::Unavailable {
            endpoint,
            status: s,
            detail: message,
        },
        s => ConnectorError::Rejected {
            endpoint,
            status: s,
            detail: if reason.is_empty() {
                message
            } else {
                format!("{reason}: {message}")
            },
        },
    }
}
