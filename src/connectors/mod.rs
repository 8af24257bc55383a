//! Connectors: one module per provider, each turning a typed action into the provider's
//! wire call and the provider's answer (or error) into ours. Base URLs are data, so
//! tests and the sandbox point them at the emulators.

pub mod calendar;
pub mod crm;
pub mod gmail;
pub mod http;
pub mod salesforce;
pub mod slack;

use serde_json::Value;
use std::time::Duration;

/// Provider base URLs.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    /// e.g. "https://gmail.googleapis.com/gmail/v1"
    pub gmail: String,
    /// e.g. "https://www.googleapis.com/calendar/v3"
    pub calendar: String,
    /// e.g. "https://slack.com/api"
    pub slack: String,
}

impl Endpoints {
    pub fn production() -> Endpoints {
        Endpoints {
            gmail: "https://gmail.googleapis.com/gmail/v1".into(),
            calendar: "https://www.googleapis.com/calendar/v3".into(),
            slack: "https://slack.com/api".into(),
        }
    }

    /// The sandbox server hosts all three under one origin.
    pub fn sandbox(base: &str) -> Endpoints {
        Endpoints {
            gmail: format!("{base}/gmail/v1"),
            calendar: format!("{base}/calendar/v3"),
            slack: format!("{base}/slack/api"),
        }
    }
}

/// What a provider said when it worked.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// One line for the queue and the audit log, e.g. "sent: gmail id 18c…".
    pub summary: String,
    /// The provider's id for what was created, if any.
    pub provider_id: Option<String>,
    /// The provider's answer, trimmed to what the user may want to see. Never a token.
    pub data: Value,
}

/// Why a provider call did not work, in terms the pipeline can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    /// 401, or Slack's invalid_auth/token_revoked/token_expired/not_authed: re-exchange
    /// the token once, then ask the user to reconnect.
    #[error("{endpoint}: not authorized ({detail})")]
    Unauthorized { endpoint: String, detail: String },
    /// The token lacks a scope: an incremental connect is needed.
    #[error("{endpoint}: missing scopes {scopes:?} ({detail})")]
    NeedsScopes {
        endpoint: String,
        scopes: Vec<String>,
        detail: String,
    },
    #[error("{endpoint}: rate limited{}{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default(), if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
    RateLimited {
        endpoint: String,
        retry_after: Option<Duration>,
        /// What the provider said, when it said more than the status (Salesforce's
        /// `REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.`).
        detail: String,
    },
    /// The record changed at the provider after the rep approved the change: nothing
    /// was written, so nobody's edit is overwritten.
    #[error("{endpoint}: changed since it was approved: {detail}; nothing was written")]
    Conflict { endpoint: String, detail: String },
    /// The provider refused the request itself (4xx other than auth): do not retry as is.
    #[error("{endpoint}: rejected with {status}: {detail}")]
    Rejected {
        endpoint: String,
        status: u16,
        detail: String,
    },
    /// 5xx: the provider failed; nothing suggests it acted.
    #[error("{endpoint}: provider error {status}: {detail}")]
    Unavailable {
        endpoint: String,
        status: u16,
        detail: String,
    },
    /// Nothing reached the provider (connection refused, DNS).
    #[error("{endpoint}: unreachable: {detail}")]
    Unreachable { endpoint: String, detail: String },
    /// The request may have reached the provider but no answer came back (timeout,
    /// reset): a write must be reconciled, not retried blindly.
    #[error("{endpoint}: no answer: {detail}")]
    NoAnswer { endpoint: String, detail: String },
    /// The provider answered something we cannot read. With a 2xx status it probably
    /// acted, so a write must be reconciled, not retried.
    #[error("{endpoint}: unreadable answer: {detail}")]
    Malformed {
        endpoint: String,
        status: u16,
        detail: String,
    },
    /// A store-side (CRM) failure.
    #[error("crm: {0}")]
    Crm(String),
}

impl ConnectorError {
    /// Whether the side effect may have happened anyway.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            ConnectorError::NoAnswer { .. }
                | ConnectorError::Malformed {
                    status: 200..=299,
                    ..
                }
        )
    }
}

/// The id a retried action reuses, so the provider can tell a retry from a new request.
pub fn derived_id(action_id: &str) -> String {
    use sha2::Digest;
    // Hex is within Google Calendar's base32hex id alphabet [a-v0-9].
    hex::encode(sha2::Sha256::digest(action_id.as_bytes()))[..32].to_string()
}
