//! What the emulated providers hold (mail, events, posts, the Salesforce org), kept on
//! disk between runs, and the faults and latency a test injects per endpoint.

use super::auth::google_error_body;
use crate::wall::now_ms;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

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
    pub salesforce: Mutex<crate::sandbox::salesforce::Org>,
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
    salesforce: crate::sandbox::salesforce::Org,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    pub fn salesforce_org(&self) -> crate::sandbox::salesforce::Org {
        let mut g = lock(&self.salesforce);
        if !g.seeded {
            g.seed(now_ms());
        }
        g.clone()
    }

    /// Writes the world out (atomically, owner-only) if it is kept on disk.
    pub(in crate::sandbox) fn save(&self) {
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
            .and_then(|bytes| crate::sandbox::write_private(&path, &bytes));
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
            id: crate::sandbox::state::random_token("in"),
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
    pub(in crate::sandbox) async fn enter(&self, endpoint: &str) -> Option<Response> {
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
                crate::sandbox::salesforce::fault_body(fault.status)
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
