//! One approver's group, end to end: the device request, the wait, the re-read that
//! voids an approval of something that changed, and the bounded-concurrency run.

use super::audit_trail::{audit, audit_about, proof, team_audit};
use super::message::{batch_hash, binding_message, binding_message_for, rep_label};
use super::{
    BatchOptions, BatchReport, DetailsSent, DeviceAnswer, DeviceConsent, LEAD_ANSWERED,
    LEAD_PUSHED, LEAD_RAN, PUSHES_SUBJECT,
};
use crate::core::audit::NewAuditEntry;
use crate::core::consent::{Consent, DeviceStep, Evidence, payload_digest};
use crate::core::domain::{Action, ActionState, Millis, Surface};
use crate::core::permissions::Approver;
use crate::runtime::credentials::Subject;
use crate::runtime::identity;
use crate::runtime::pipeline::{Pipeline, PipelineError};
use crate::runtime::review::decision_for;
use crate::store::Transition;
use crate::wall::now_ms;
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(super) async fn run_group(
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
    let details = crate::runtime::rar::request_details(&actions);
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
            let (covered, not) = crate::runtime::rar::covered(&carried, &current);
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
                crate::runtime::review::audit_facts(&a, &mut detail);
                p.store.append_audit(NewAuditEntry {
                    ts: approved_at,
                    actor: format!("device:{sub}"),
                    surface: Some(Surface::Batch),
                    event: crate::runtime::facts::FIRST_APPROVAL.into(),
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

pub(super) enum Member {
    Succeeded,
    Failed,
    Leftover,
}

pub(super) async fn run_member(
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
    let sealed = crate::runtime::seal::key()
        .map_err(|e| fail(e.into()))?
        .seal(&a, d.gate().name(), evidence, now_ms());
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

pub(super) fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(a), serde_json::Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}
