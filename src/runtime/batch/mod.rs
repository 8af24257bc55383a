//! CIBA batches: one push to the device approves many queued actions.
//!
//! Actions queued for device consent (`awaiting_consent`) are grouped by the approver
//! their gate names; each group becomes one CIBA request whose binding message
//! summarises it ("dealflow: 5 actions - 3 email 2 cal") and whose exact content is
//! hashed into the audit log. On the device's yes, the batch is re-read: if anything in
//! it changed (an edit, a rejection), the approval covered something else and nothing
//! runs. Otherwise each action gets a consent built from the CIBA evidence and runs
//! through the pipeline with the CIBA-issued token as the exchange's subject, with
//! bounded concurrency, until the grant or the batch window ends; what is left stays
//! queued for the next batch. A device "no" rejects the batch; a timeout only leaves it
//! queued, and the audit log tells the two apart.

use super::credentials::{BoxFuture, CredentialError};
use super::pipeline::{Pipeline, PipelineError};
use super::review::decision_for;
use crate::core::audit::NewAuditEntry;
use crate::core::consent::{DeviceStep, Gate};
use crate::core::domain::{Action, ActionState, Millis, Surface};
use crate::core::permissions::Approver;
use crate::store::{ActionFilter, lease};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod audit_trail;
mod group;
mod message;

use group::run_group;

pub use audit_trail::{LEAD_ANSWERED, LEAD_PUSHED, LEAD_RAN, PUSHES_SUBJECT};
pub use message::{batch_hash, binding_message, binding_message_for, ciba_safe, rep_label};

/// A CIBA request in flight.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    pub auth_req_id: String,
    pub expires_at_ms: Millis,
    /// Whether the actions went along as `authorization_details`.
    pub details: DetailsSent,
}

/// Whether a push carried the actions themselves (RFC 9396).
#[derive(Debug, Clone, PartialEq)]
pub enum DetailsSent {
    /// Sent and accepted: the approval is judged from what the token carries back.
    Sent,
    /// The server refused them (why, as it said); the push went without them.
    Refused(String),
    /// None were asked for.
    NotAsked,
}

/// What the device said.
pub enum DeviceAnswer {
    /// Yes: the access token is the subject for the Token Vault exchanges it covers.
    Approved {
        token: String,
        expires_at_ms: Millis,
        /// The `sub` of the token, verified against the tenant's keys: who said yes.
        sub: String,
        /// The `authorization_details` the token carries (its signed claim, else the
        /// token response's); `None` when the server returned none.
        details: Option<Vec<serde_json::Value>>,
    },
    Denied,
    Expired,
    Cancelled,
}

impl std::fmt::Debug for DeviceAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceAnswer::Approved {
                expires_at_ms,
                sub,
                details,
                ..
            } => {
                write!(
                    f,
                    "Approved {{ token: [redacted], expires_at_ms: {expires_at_ms}, sub: {sub}, details: {} }}",
                    details
                        .as_ref()
                        .map_or("none".into(), |d| format!("{} entries", d.len()))
                )
            }
            DeviceAnswer::Denied => f.write_str("Denied"),
            DeviceAnswer::Expired => f.write_str("Expired"),
            DeviceAnswer::Cancelled => f.write_str("Cancelled"),
        }
    }
}

/// The device-consent side of Auth0 (CIBA), as the batch needs it.
pub trait DeviceConsent: Send + Sync {
    /// Starts a request to `approver`'s device; `details` (a JSON array of
    /// `authorization_details` entries) shows the actions themselves where the server
    /// supports it.
    fn request<'a>(
        &'a self,
        approver: &'a Approver,
        binding_message: &'a str,
        details: Option<&'a str>,
    ) -> BoxFuture<'a, Result<DeviceRequest, CredentialError>>;

    /// Polls until the device answers, the request expires, or `cancel` fires.
    fn wait<'a>(
        &'a self,
        req: &'a DeviceRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<DeviceAnswer, CredentialError>>;
}

#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// How long after the device's yes the batch may still execute.
    pub window: Duration,
    pub concurrency: usize,
    /// Most actions in one request.
    pub max_actions: usize,
    pub actor: String,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            window: Duration::from_secs(600),
            concurrency: 4,
            max_actions: 25,
            actor: "system:batch".into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReport {
    pub requests: usize,
    pub binding_messages: Vec<String>,
    pub succeeded: Vec<String>,
    pub failed: Vec<String>,
    pub rejected: Vec<String>,
    /// Still queued: not reached before the grant or window ended, or the request timed out.
    pub leftover: Vec<String>,
    /// Requests voided because the batch changed after it was sent.
    pub voided: usize,
    /// Asked on the device but not among what the approval carries (or changed since):
    /// back in the queue for a person to look at.
    pub not_approved: Vec<String>,
    /// The rep's yes was the first of two approvals: now waiting for the lead's device.
    pub awaiting_second: Vec<String>,
    /// Another worker (a TUI, the service, another `batch`) was gathering: this round
    /// sent nothing, so no action is pushed to the phone twice.
    pub elsewhere: Option<String>,
}

impl BatchReport {
    /// What a round did, in one line, said the same way by `batch`, the service's log and
    /// the TUI: "2 succeeded", then only the other outcomes that happened ("1 failed",
    /// "1 denied on device", "2 still queued", "1 left out on device", "voided"), so the
    /// line fits a status bar at 80 columns.
    pub fn counts(&self) -> String {
        let mut parts = vec![format!("{} succeeded", self.succeeded.len())];
        for (n, what) in [
            (self.failed.len(), "failed"),
            (self.rejected.len(), "denied on device"),
            (self.leftover.len(), "still queued"),
            (
                self.not_approved.len(),
                "left out on device (back in the queue)",
            ),
            (
                self.awaiting_second.len(),
                "waiting for the second approver",
            ),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if self.voided > 0 {
            parts.push("voided: the batch changed while asking".into());
        }
        parts.join(" · ")
    }
}

/// How long a round may hold the batch lease: a device request's lifetime and the
/// grant's execution window fit well inside it; past it, a crashed gatherer blocks no one.
const BATCH_LEASE_FOR: Millis = 20 * 60_000;

use crate::wall::now_ms;

/// Queued actions grouped by who must approve them (their gate decides).
fn gather(p: &Pipeline, max: usize) -> Result<Vec<(Approver, Vec<Action>)>, PipelineError> {
    let mut queued = p.store.list_actions(&ActionFilter {
        states: vec![ActionState::AwaitingConsent],
        limit: None,
    })?;
    queued.reverse(); // oldest first
    let mut groups: Vec<(Approver, Vec<Action>)> = Vec::new();
    for a in queued {
        let d = decision_for(p.store.as_ref(), &a, now_ms())?;
        let approver = match d.gate() {
            Gate::Deny { .. } => continue,
            Gate::Ciba { approver, .. } => approver.clone(),
            _ => Approver::User,
        };
        if let (Some(DeviceStep::Escalated), Gate::Ciba { reason, .. }) = (d.step(), d.gate()) {
            record_escalation(p, &a, &approver, reason)?;
        }
        match groups.iter_mut().find(|(ap, _)| *ap == approver) {
            Some((_, list)) if list.len() < max => list.push(a),
            Some(_) => {}
            None => groups.push((approver, vec![a])),
        }
    }
    Ok(groups)
}

/// Says once, in the action's audit, that its device request went past the rep to the
/// lead (the next rounds push it to the lead without saying it again).
fn record_escalation(
    p: &Pipeline,
    a: &Action,
    to: &Approver,
    why: &str,
) -> Result<(), PipelineError> {
    let said = p
        .store
        .audit_about(&a.id, a.updated_at)?
        .iter()
        .any(|e| e.event == "action.escalated");
    if said {
        return Ok(());
    }
    let mut detail = json!({ "to": to.to_string(), "why": why, "waiting_since": a.updated_at });
    super::review::audit_facts(a, &mut detail);
    p.store.append_audit(NewAuditEntry {
        ts: now_ms(),
        actor: "system:batch".into(),
        surface: Some(Surface::Batch),
        event: "action.escalated".into(),
        action_id: Some(a.id.clone()),
        outcome: "ok".into(),
        detail,
    })?;
    Ok(())
}

/// Runs one round: a request per approver, then the approved batches.
pub async fn run_once(
    p: Arc<Pipeline>,
    device: &dyn DeviceConsent,
    opts: &BatchOptions,
    cancel: &CancellationToken,
) -> Result<BatchReport, PipelineError> {
    let mut report = BatchReport::default();
    let holder = super::lease_holder();
    let now = now_ms();
    if let Err(other) = super::take_lease(
        p.store.as_ref(),
        lease::BATCH,
        &holder,
        now,
        now + BATCH_LEASE_FOR,
    )? {
        report.elsewhere = Some(other.holder);
        return Ok(report);
    }
    let outcome: Result<(), PipelineError> = async {
        for (approver, actions) in gather(&p, opts.max_actions)? {
            run_group(&p, device, opts, cancel, approver, actions, &mut report).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = p.store.release_lease(lease::BATCH, &holder) {
        tracing::warn!(error = %e, "the batch lease was not released; it lapses on its own");
    }
    outcome.map(|()| report)
}

/// Asks `approver`'s device about exactly `actions` and runs them on a yes (the MCP
/// server uses this for a single write).
pub async fn run_actions(
    p: &Arc<Pipeline>,
    device: &dyn DeviceConsent,
    opts: &BatchOptions,
    cancel: &CancellationToken,
    approver: Approver,
    actions: Vec<Action>,
) -> Result<BatchReport, PipelineError> {
    let mut report = BatchReport::default();
    run_group(p, device, opts, cancel, approver, actions, &mut report).await?;
    Ok(report)
}
