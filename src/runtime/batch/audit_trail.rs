//! A batch's audit entries: in the rep's own log (pushes under one subject, so `doctor`
//! finds the latest) and, for a team lead's approval, in the team's stream.

use super::DetailsSent;
use super::group::merge;
use crate::core::audit::NewAuditEntry;
use crate::core::domain::{Millis, Surface};
use crate::core::permissions::Approver;
use crate::runtime::identity;
use crate::runtime::pipeline::{Pipeline, PipelineError};
use serde_json::json;

pub(super) fn audit(
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

pub(super) fn audit_about(
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
pub(super) fn team_audit(
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
pub(super) fn proof(sent: &DetailsSent) -> serde_json::Value {
    match sent {
        DetailsSent::Sent => json!({ "proof": "authorization_details" }),
        DetailsSent::Refused(why) => json!({ "proof": "batch_hash", "details_refused": why }),
        DetailsSent::NotAsked => json!({ "proof": "batch_hash" }),
    }
}
