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

use super::credentials::{BoxFuture, CredentialError, Subject};
use super::pipeline::{Pipeline, PipelineError};
use super::review::decision_for;
use crate::core::audit::NewAuditEntry;
use crate::core::consent::{Consent, DeviceStep, Evidence, Gate, payload_digest};
use crate::core::domain::{Action, ActionState, Millis, Surface};
use crate::core::permissions::Approver;
use crate::runtime::identity::{self, SignedIn};
use crate::store::{ActionFilter, Transition, lease};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

/// "dealflow: 5 actions - 3 email 2 cal", within CIBA's 64 characters; a single action
/// says what it is ("dealflow: send_email to bill@initech.example").
pub fn binding_message(actions: &[Action]) -> String {
    binding_message_for(actions, None)
}

/// [`binding_message`] as a team lead's phone shows it: the rep whose actions they are
/// comes first ("dealflow: Dana - close_deal deal-acme"), so the lead knows whose close
/// they are asked to approve.
pub fn binding_message_for(actions: &[Action], rep: Option<&str>) -> String {
    let head = match rep.map(ciba_safe).filter(|r| !r.is_empty()) {
        Some(r) => format!("dealflow: {r} -"),
        None => "dealflow:".to_string(),
    };
    if let [a] = actions {
        let full = format!("{head} {} {}", a.kind(), a.params.target());
        return ciba_safe(&full);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in actions {
        *counts.entry(a.kind().short()).or_default() += 1;
    }
    let mut by_count: Vec<(&str, usize)> = counts.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let n = actions.len();
    let mut msg = ciba_safe(&format!(
        "{head} {n} action{} -",
        if n == 1 { "" } else { "s" }
    ));
    for (kind, c) in by_count {
        let part = format!(" {c} {kind}");
        if msg.len() + part.len() > 64 {
            break;
        }
        msg.push_str(&part);
    }
    msg
}

/// How a lead's phone names the rep: the signed-in user's first name ("Dana"), or
/// without one a short form of their `sub` ("demo-user" for `auth0|demo-user`).
pub fn rep_label(who: &SignedIn) -> String {
    let first = ciba_safe(who.name.split_whitespace().next().unwrap_or(""));
    if !first.is_empty() {
        return first
            .chars()
            .take(20)
            .collect::<String>()
            .trim_end()
            .to_string();
    }
    let short = who.sub.rsplit('|').next().unwrap_or(&who.sub);
    ciba_safe(short)
        .chars()
        .take(16)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// Auth0 accepts only letters, digits, spaces and `+-_.,:#` in a binding message, at
/// most 64 of them; "@" reads naturally as "at".
pub fn ciba_safe(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '@' => out.push_str(" at "),
            c if c.is_ascii_alphanumeric() || " +-_.,:#".contains(c) => out.push(c),
            _ => out.push(' '),
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .chars()
        .take(64)
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// A digest of exactly what the device is asked to approve.
pub fn batch_hash(actions: &[Action]) -> String {
    let mut lines: Vec<String> = actions
        .iter()
        .map(|a| format!("{}:{}", a.id, payload_digest(&a.params)))
        .collect();
    lines.sort();
    hex::encode(Sha256::digest(lines.join("\n").as_bytes()))
}

fn audit(
    p: &Pipeline,
    actor: &str,
    event: &str,
    outcome: &str,
    at: Millis,
    detail: serde_json::Value,
) -> Result<(), PipelineError> {
    audit_about(p, None, actor, event, outcome, at, detail)
}

/// The subject under which pushes and their approvals are logged, so `doctor` finds
/// the latest without reading the whole log.
pub const PUSHES_SUBJECT: &str = "device-pushes";

fn audit_about(
    p: &Pipeline,
    subject: Option<&str>,
    actor: &str,
    event: &str,
    outcome: &str,
    at: Millis,
    detail: serde_json::Value,
) -> Result<(), PipelineError> {
    p.store.append_audit(NewAuditEntry {
        ts: at,
        actor: actor.into(),
        surface: Some(Surface::Batch),
        event: event.into(),
        action_id: subject.map(String::from),
        outcome: outcome.into(),
        detail,
    })?;
    Ok(())
}

/// Events in the team's stream about a push to the team lead: what was pushed (for
/// `actions list --for-team`, since the lead cannot read the rep's keys), the lead's
/// answer, and what ran.
pub const LEAD_PUSHED: &str = "lead.pushed";
pub const LEAD_ANSWERED: &str = "lead.answered";
pub const LEAD_RAN: &str = "lead.ran";

/// Appends to the team's stream when `approver` is a team lead and the store has a
/// team. The push and its outcome are already in the rep's own log; a team stream that
/// cannot be written is said in the log and does not stop the batch.
fn team_audit(
    p: &Pipeline,
    approver: &Approver,
    event: &str,
    outcome: &str,
    at: Millis,
    mut detail: serde_json::Value,
) {
    let Approver::TeamLead(lead) = approver else {
        return;
    };
    // Who answered, as the rep's own log names them (`device:<sub>`); else this process.
    let actor = match (event, detail["by"].as_str()) {
        (LEAD_ANSWERED, Some(by)) => format!("device:{by}"),
        (LEAD_ANSWERED, None) if outcome == "denied" => format!("device:{lead}"),
        _ => identity::current().actor(),
    };
    merge(&mut detail, json!({ "lead": lead }));
    let entry = NewAuditEntry {
        ts: at,
        actor,
        surface: Some(Surface::Batch),
        event: event.into(),
        action_id: None,
        outcome: outcome.into(),
        detail,
    };
    if let Err(e) = p.store.append_team_audit(entry) {
        tracing::warn!(error = %e, event, "the team's audit stream was not written");
    }
}

/// How an approval is proven, for the audit: by the entries the token carries, or by
/// the batch's hash in our own log.
fn proof(sent: &DetailsSent) -> serde_json::Value {
    match sent {
        DetailsSent::Sent => json!({ "proof": "authorization_details" }),
        DetailsSent::Refused(why) => json!({ "proof": "batch_hash", "details_refused": why }),
        DetailsSent::NotAsked => json!({ "proof": "batch_hash" }),
    }
}

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

async fn run_group(
    p: &Arc<Pipeline>,
    device: &dyn DeviceConsent,
    opts: &BatchOptions,
    cancel: &CancellationToken,
    approver: Approver,
    actions: Vec<Action>,
    report: &mut BatchReport,
) -> Result<(), PipelineError> {
    let rep = identity::current().signed_in.clone();
    let msg = match &approver {
        Approver::TeamLead(_) => {
            binding_message_for(&actions, rep.as_ref().map(rep_label).as_deref())
        }
        Approver::User => binding_message(&actions),
    };
    let hash = batch_hash(&actions);
    let ids: Vec<String> = actions.iter().map(|a| a.id.clone()).collect();
    let details = super::rar::request_details(&actions);
    let req = match device.request(&approver, &msg, Some(&details)).await {
        Ok(r) => r,
        Err(e) => {
            audit(
                p,
                &opts.actor,
                "batch.request_failed",
                "failed",
                now_ms(),
                json!({
                    "binding_message": msg, "batch_hash": hash, "actions": ids, "error": e.to_string(),
                }),
            )?;
            report.leftover.extend(ids);
            return Ok(());
        }
    };
    report.requests += 1;
    report.binding_messages.push(msg.clone());
    let mut requested = json!({
        "auth_req_id": req.auth_req_id, "binding_message": msg, "batch_hash": hash,
        "actions": ids, "approver": approver.to_string(), "expires_at": req.expires_at_ms,
    });
    merge(&mut requested, proof(&req.details));
    team_audit(
        p,
        &approver,
        LEAD_PUSHED,
        "ok",
        now_ms(),
        json!({
            "auth_req_id": req.auth_req_id, "binding_message": msg,
            "expires_at": req.expires_at_ms,
            "rep": rep.as_ref().map(|r| r.sub.clone()),
            "rep_name": rep.as_ref().map(|r| r.name.clone()),
            "actions": actions.iter().map(|a| json!({
                "id": a.id, "kind": a.kind().as_str(), "target": a.params.target(), "title": a.title,
            })).collect::<Vec<_>>(),
        }),
    );
    audit_about(
        p,
        Some(PUSHES_SUBJECT),
        &opts.actor,
        "batch.requested",
        "ok",
        now_ms(),
        requested,
    )?;
    let answer = match device.wait(&req, cancel).await {
        Ok(a) => a,
        Err(e) => {
            audit(
                p,
                &opts.actor,
                "batch.poll_failed",
                "failed",
                now_ms(),
                json!({
                    "auth_req_id": req.auth_req_id, "error": e.to_string(),
                }),
            )?;
            report.leftover.extend(ids);
            return Ok(());
        }
    };
    let (token, grant_expires, sub, carried) = match answer {
        DeviceAnswer::Approved {
            token,
            expires_at_ms,
            sub,
            details,
        } => (token, expires_at_ms, sub, details),
        DeviceAnswer::Denied => {
            team_audit(
                p,
                &approver,
                LEAD_ANSWERED,
                "denied",
                now_ms(),
                json!({ "auth_req_id": req.auth_req_id, "answer": "denied", "actions": ids }),
            );
            // A person said no on the device: the batch is rejected.
            for a in &actions {
                let cur = p.store.get_action(&a.id)?;
                if cur.state == ActionState::AwaitingConsent {
                    p.store.transition(
                        &a.id,
                        &Transition {
                            from: cur.state,
                            version: cur.version,
                            to: ActionState::Rejected,
                            outcome: Some("denied on the device".into()),
                            evidence: None,
                            at: now_ms(),
                        },
                    )?;
                    report.rejected.push(a.id.clone());
                }
            }
            audit(
                p,
                &match &approver {
                    Approver::User => "device:user".to_string(),
                    Approver::TeamLead(lead) => format!("device:{lead}"),
                },
                "batch.denied",
                "denied",
                now_ms(),
                json!({
                    "auth_req_id": req.auth_req_id, "binding_message": msg, "actions": ids,
                }),
            )?;
            return Ok(());
        }
        DeviceAnswer::Expired | DeviceAnswer::Cancelled => {
            // No answer is not a yes, and not a person's no either: they stay queued.
            let (event, outcome) = if cancel.is_cancelled() {
                ("batch.cancelled", "cancelled")
            } else {
                ("batch.expired", "timeout")
            };
            team_audit(
                p,
                &approver,
                LEAD_ANSWERED,
                outcome,
                now_ms(),
                json!({
                    "auth_req_id": req.auth_req_id, "answer": event.trim_start_matches("batch."),
                    "actions": ids,
                }),
            );
            audit(
                p,
                &opts.actor,
                event,
                outcome,
                now_ms(),
                json!({
                    "auth_req_id": req.auth_req_id, "binding_message": msg, "actions": ids,
                }),
            )?;
            report.leftover.extend(ids);
            return Ok(());
        }
    };
    let approved_at = now_ms();
    let answer = match &approver {
        Approver::TeamLead(lead) if *lead != sub => "wrong_approver",
        _ => "approved",
    };
    team_audit(
        p,
        &approver,
        LEAD_ANSWERED,
        if answer == "approved" { "ok" } else { "denied" },
        approved_at,
        json!({ "auth_req_id": req.auth_req_id, "answer": answer, "by": sub, "actions": ids }),
    );
    let current: Vec<Action> = actions
        .iter()
        .map(|a| p.store.get_action(&a.id))
        .collect::<Result<_, _>>()?;
    let (current, not_covered, how) = match (&req.details, carried) {
        // The token says which actions were approved, each for one payload digest:
        // run those, and only while each is still exactly what was shown.
        (DetailsSent::Sent, Some(carried)) => {
            let (covered, not) = super::rar::covered(&carried, &current);
            let mut not: Vec<(String, &str)> = not
                .into_iter()
                .map(|(a, why)| (a.id.clone(), why))
                .collect();
            let mut run = Vec::new();
            for a in covered {
                if a.state == ActionState::AwaitingConsent {
                    run.push(a.clone());
                } else {
                    not.push((a.id.clone(), "no longer waiting for the device"));
                }
            }
            (run, not, json!({ "proof": "authorization_details" }))
        }
        // Without details (refused, ignored, or a token that carries none) the device
        // approved exactly `hash`; anything changed since voids the whole approval.
        (sent, _) => {
            let unchanged = current
                .iter()
                .all(|a| a.state == ActionState::AwaitingConsent)
                && batch_hash(&current) == hash;
            if !unchanged {
                audit(
                    p,
                    &opts.actor,
                    "batch.voided",
                    "denied",
                    approved_at,
                    json!({
                        "auth_req_id": req.auth_req_id, "batch_hash": hash,
                        "why": "the batch changed after the request was sent",
                    }),
                )?;
                report.voided += 1;
                report.leftover.extend(
                    current
                        .iter()
                        .filter(|a| a.state == ActionState::AwaitingConsent)
                        .map(|a| a.id.clone()),
                );
                return Ok(());
            }
            let how = match sent {
                DetailsSent::Sent => json!({
                    "proof": "batch_hash",
                    "details_ignored": "the token carries no authorization_details",
                }),
                other => proof(other),
            };
            (current, Vec::new(), how)
        }
    };
    // What the approver left out goes back to the queue for a person to look at, not
    // to the next push (which would ask the same question again).
    for (id, why) in &not_covered {
        let cur = p.store.get_action(id)?;
        if cur.state == ActionState::AwaitingConsent {
            p.store.transition(
                id,
                &Transition {
                    from: cur.state,
                    version: cur.version,
                    to: ActionState::Proposed,
                    outcome: Some(format!("not approved on the device: {why}")),
                    evidence: None,
                    at: approved_at,
                },
            )?;
        }
        report.not_approved.push(id.clone());
    }
    let mut approved = json!({
        "auth_req_id": req.auth_req_id, "binding_message": msg, "batch_hash": hash,
        "actions": current.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        "not_approved": not_covered.iter().map(|(id, why)| json!({ "id": id, "why": why })).collect::<Vec<_>>(),
    });
    merge(&mut approved, how);
    audit_about(
        p,
        Some(PUSHES_SUBJECT),
        &format!("device:{sub}"),
        "batch.approved",
        "ok",
        approved_at,
        approved,
    )?;
    let deadline = grant_expires.min(approved_at + opts.window.as_millis() as i64);
    // Who really said yes is the verified token's subject; a rule naming a team lead
    // is met only when that is the lead (checked again by `Consent::grant`).
    if let Approver::TeamLead(lead) = &approver
        && *lead != sub
    {
        audit(
            p,
            &opts.actor,
            "batch.wrong_approver",
            "denied",
            approved_at,
            json!({
                "auth_req_id": req.auth_req_id, "needed": lead, "approved_by": sub, "actions": ids,
            }),
        )?;
        report.leftover.extend(ids);
        return Ok(());
    }
    // A close that needs two approvers: the rep's yes is the first, recorded for exactly
    // this payload, and the action waits for the lead's device (the next round asks).
    let mut current = current;
    if approver == Approver::User {
        let mut run = Vec::new();
        for a in current {
            let d = decision_for(p.store.as_ref(), &a, approved_at)?;
            if d.step() == Some(DeviceStep::FirstOfTwo) {
                let mut detail = json!({
                    "digest": payload_digest(&a.params), "auth_req_id": req.auth_req_id,
                    "approved_by": sub, "next": "the team lead's device",
                });
                super::review::audit_facts(&a, &mut detail);
                p.store.append_audit(NewAuditEntry {
                    ts: approved_at,
                    actor: format!("device:{sub}"),
                    surface: Some(Surface::Batch),
                    event: super::facts::FIRST_APPROVAL.into(),
                    action_id: Some(a.id.clone()),
                    outcome: "ok".into(),
                    detail,
                })?;
                report.awaiting_second.push(a.id.clone());
            } else {
                run.push(a);
            }
        }
        current = run;
    }
    let evidence = Evidence::Ciba {
        approver: approver.clone(),
        sub: sub.clone(),
        auth_req_id: req.auth_req_id.clone(),
        binding_message: msg.clone(),
        approved_at,
    };
    let before = (
        report.succeeded.len(),
        report.failed.len(),
        report.leftover.len(),
    );
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let subject = Subject::Ciba(token);
    let mut tasks = tokio::task::JoinSet::new();
    for a in current {
        let permit = sem.clone().acquire_owned().await;
        let (p, evidence, subject) = (p.clone(), evidence.clone(), subject.clone());
        tasks.spawn(async move {
            let _permit = permit;
            run_member(&p, a, evidence, &subject, deadline).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((id, Member::Succeeded))) => report.succeeded.push(id),
            Ok(Ok((id, Member::Failed))) => report.failed.push(id),
            Ok(Ok((id, Member::Leftover))) => report.leftover.push(id),
            Ok(Err((id, e))) => {
                tracing::warn!(action = %id, error = %e, "batch member did not run");
                report.failed.push(id);
            }
            Err(e) => tracing::error!(error = %e, "batch task panicked"),
        }
    }
    let ran = (
        &report.succeeded[before.0..],
        &report.failed[before.1..],
        &report.leftover[before.2..],
    );
    team_audit(
        p,
        &approver,
        LEAD_RAN,
        if ran.1.is_empty() { "ok" } else { "failed" },
        now_ms(),
        json!({
            "auth_req_id": req.auth_req_id, "succeeded": ran.0, "failed": ran.1,
            "leftover": ran.2,
            "not_approved": not_covered.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        }),
    );
    if !report.leftover.is_empty() {
        audit(
            p,
            &opts.actor,
            "batch.leftover",
            "timeout",
            now_ms(),
            json!({
                "auth_req_id": req.auth_req_id, "actions": report.leftover,
                "why": "the grant or the batch window ended first; queued for the next batch",
            }),
        )?;
    }
    Ok(())
}

enum Member {
    Succeeded,
    Failed,
    Leftover,
}

async fn run_member(
    p: &Pipeline,
    a: Action,
    evidence: Evidence,
    subject: &Subject,
    deadline: Millis,
) -> Result<(String, Member), (String, PipelineError)> {
    let id = a.id.clone();
    let fail = |e: PipelineError| (id.clone(), e);
    if now_ms() >= deadline {
        return Ok((id, Member::Leftover));
    }
    let d = decision_for(p.store.as_ref(), &a, now_ms()).map_err(|e| fail(e.into()))?;
    // The same proof the executor will rebuild; checked here so a gate that the device's
    // yes cannot satisfy (a deny, another approver) never moves the action.
    Consent::grant(&d, &a.params, evidence.clone()).map_err(|source| {
        fail(PipelineError::ConsentVoid {
            id: id.clone(),
            source,
        })
    })?;
    let sealed = super::seal::key().map_err(|e| fail(e.into()))?.seal(
        &a,
        d.gate().name(),
        evidence,
        now_ms(),
    );
    p.store
        .transition(
            &a.id,
            &Transition {
                from: ActionState::AwaitingConsent,
                version: a.version,
                to: ActionState::Approved,
                outcome: None,
                evidence: Some(sealed),
                at: now_ms(),
            },
        )
        .map_err(|e| fail(e.into()))?;
    let done = match p.execute(&id, subject, now_ms()).await {
        Ok(d) => d,
        Err(e) => {
            // Blocked before it ran (disconnected, missing scope…): the device token
            // will not outlive this run, so put it back in the queue.
            if let Ok(cur) = p.store.get_action(&id)
                && cur.state == ActionState::Approved
            {
                let _ = p.store.transition(
                    &id,
                    &Transition {
                        from: cur.state,
                        version: cur.version,
                        to: ActionState::AwaitingConsent,
                        outcome: Some(e.to_string()),
                        evidence: None,
                        at: now_ms(),
                    },
                );
            }
            return Err(fail(e));
        }
    };
    Ok((
        id,
        if done.outcome.is_ok() {
            Member::Succeeded
        } else {
            Member::Failed
        },
    ))
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}
