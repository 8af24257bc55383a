//! Human decisions on queued actions — approve, reject, edit — shared by every surface
//! that lets a person decide (the CLI, the Actions tab). Each decision re-runs the gate
//! against the current permissions, builds the consent proof, moves the action by
//! compare-and-set, and audits the outcome, refusals included.

use crate::core::audit::NewAuditEntry;
use crate::core::calibration::{edit_size, target_pattern};
use crate::core::consent::{Consent, ConsentError, Decision, Evidence, Gate, payload_digest};
use crate::core::domain::{Action, ActionParams, ActionState, Millis, Surface};
use crate::core::permissions::{Approver, PermissionChange, RulePause, auto_rule_eligible};
use crate::store::{Store, StoreError, Transition};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{id} is {state}: only proposed actions can be {verb}")]
    NotPending {
        id: String,
        state: ActionState,
        verb: &'static str,
    },
    #[error("{id} is {state}: only an approved action that has not started can be withdrawn")]
    NotWithdrawable { id: String, state: ActionState },
    #[error("{id} needs step-up: {reason}")]
    NeedsStepUp { id: String, reason: String },
    #[error("{id} needs approval on {} device: {reason}", approver.whose())]
    NeedsDevice {
        id: String,
        approver: Approver,
        reason: String,
    },
    #[error("{id} is denied by your permissions: {reason}")]
    Denied { id: String, reason: String },
    #[error(transparent)]
    Consent(#[from] ConsentError),
    #[error("invalid edit of {id}: {reason}")]
    InvalidEdit { id: String, reason: String },
    #[error("{id} changed since you looked at it (v{seen} → v{now}): review it again")]
    Changed { id: String, seen: i64, now: i64 },
    #[error(transparent)]
    NoConsentKey(#[from] super::seal::SealError),
}

/// Who decides, from where.
#[derive(Debug, Clone)]
pub struct Reviewer {
    pub actor: String,
    pub surface: Surface,
}

/// Replaces what a proposer cannot be trusted to state with the store's truth: a
/// deal's amount when closing it (leaving it out must not dodge the step-up
/// threshold) and the CRM revision a write is made against (a stated one could hide a
/// change made in the CRM since), and refuses closing a deal through `update_deal`
/// (which would dodge the close-won rule).
pub fn ground(store: &dyn Store, params: ActionParams) -> Result<ActionParams, String> {
    match params {
        ActionParams::CloseDeal { deal_id, won, .. } => {
            let deal = store
                .get_deal(&deal_id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("deal_id: no deal {deal_id:?}"))?;
            Ok(ActionParams::CloseDeal {
                deal_id,
                won,
                amount_cents: deal.amount_cents,
                revision: deal.crm.map(|c| c.revision),
            })
        }
        ActionParams::UpdateDeal { stage: Some(s), .. } if s.is_closed() => {
            Err("stage: close a deal with close_deal, not update_deal".into())
        }
        ActionParams::UpdateDeal {
            deal_id,
            stage,
            amount_cents,
            notes,
            ..
        } => match store.get_deal(&deal_id).map_err(|e| e.to_string())? {
            Some(deal) => Ok(ActionParams::UpdateDeal {
                deal_id,
                stage,
                amount_cents,
                notes,
                revision: deal.crm.map(|c| c.revision),
            }),
            None => Err(format!("deal_id: no deal {deal_id:?}")),
        },
        other => Ok(other),
    }
}

/// The gate an action faces at `at`, under the stored permissions, the user's live
/// auto-approve rules and the facts the store holds about it. Every surface decides here
/// (or through [`super::facts::FactSource`] for many actions at once).
pub fn decision_for(
    store: &dyn Store,
    action: &Action,
    at: Millis,
) -> Result<Decision, StoreError> {
    super::facts::decision_at(store, action, at)
}

/// Where a command runs from, for audit details: the Unix account of the process's
/// uid and the SSH origin (null when not over SSH), so a shared box's audit log tells
/// its users apart.
pub fn origin() -> serde_json::Value {
    super::identity::current().origin()
}

/// What calibration replays from every audit entry about an action (kind, target
/// pattern, confidence, amount, edit size) and where the decision came from.
pub fn audit_facts(a: &Action, detail: &mut serde_json::Value) {
    if let serde_json::Value::Object(m) = detail {
        m.insert("kind".into(), a.kind().as_str().into());
        m.insert("target".into(), target_pattern(&a.params).into());
        m.insert("target_full".into(), a.params.target().into());
        m.insert("confidence".into(), a.confidence.into());
        if let Some(cents) = a.params.amount_cents() {
            m.insert("amount_cents".into(), cents.into());
        }
        m.entry("edit_size")
            .or_insert_with(|| edit_size(&a.original, &a.params).into());
        m.insert("origin".into(), origin());
    }
}

/// The action, if it is still at `seen` (the version the person was shown). The caller's
/// compare-and-set on `a.version` then covers any change after this read.
fn seen_action(store: &dyn Store, id: &str, seen: Option<i64>) -> Result<Action, ReviewError> {
    let a = store.get_action(id)?;
    match seen {
        Some(seen) if seen != a.version => Err(ReviewError::Changed {
            id: id.into(),
            seen,
            now: a.version,
        }),
        _ => Ok(a),
    }
}

impl Reviewer {
    fn audit(
        &self,
        store: &dyn Store,
        a: &Action,
        event: &str,
        outcome: &str,
        at: Millis,
        mut detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        audit_facts(a, &mut detail);
        store.append_audit(NewAuditEntry {
            ts: at,
            actor: self.actor.clone(),
            surface: Some(self.surface),
            event: event.into(),
            action_id: Some(a.id.clone()),
            outcome: outcome.into(),
            detail,
        })?;
        Ok(())
    }

    /// Moves `a` from the state and version read to `to` (compare-and-set), with no
    /// consent attached: reject, withdraw and the device queue all move this way.
    fn move_to(
        store: &dyn Store,
        a: &Action,
        to: ActionState,
        outcome: Option<String>,
        at: Millis,
    ) -> Result<Action, StoreError> {
        store.transition(
            &a.id,
            &Transition {
                from: a.state,
                version: a.version,
                to,
                outcome,
                evidence: None,
                at,
            },
        )
    }

    /// Approves `id`. `step_up_confirmed` is the person's explicit confirmation of exactly
    /// this action (typed id, inline prompt); without it a step-up gate refuses.
    /// Approves the action as it is now. A person who was shown it should use
    /// [`Reviewer::approve_seen`], so an edit made meanwhile is not approved unseen.
    pub fn approve(
        &self,
        store: &dyn Store,
        id: &str,
        step_up_confirmed: bool,
        at: Millis,
    ) -> Result<Action, ReviewError> {
        self.approve_seen(store, id, None, step_up_confirmed, at)
    }

    /// Approves the action only if it is still at `seen` (the version the person was
    /// shown): the state change is a compare-and-set on the version read here, so an
    /// edit landing at any point after the person looked is refused, never approved.
    pub fn approve_seen(
        &self,
        store: &dyn Store,
        id: &str,
        seen: Option<i64>,
        step_up_confirmed: bool,
        at: Millis,
    ) -> Result<Action, ReviewError> {
        let a = seen_action(store, id, seen)?;
        if !matches!(
            a.state,
            ActionState::Proposed | ActionState::AwaitingConsent
        ) {
            return Err(ReviewError::NotPending {
                id: id.into(),
                state: a.state,
                verb: "approved",
            });
        }
        let d = super::facts::decision_at(store, &a, at)?;
        let refuse = |why: &str| -> Result<(), StoreError> {
            self.audit(
                store,
                &a,
                "action.approve_refused",
                "denied",
                at,
                serde_json::json!({ "gate": d.gate(), "reasons": d.reasons(), "why": why }),
            )
        };
        let evidence = match d.gate() {
            Gate::Allow | Gate::Review => Evidence::Reviewed {
                actor: self.actor.clone(),
                at,
            },
            Gate::StepUp { reason } => {
                if !step_up_confirmed {
                    refuse("step-up not confirmed")?;
                    return Err(ReviewError::NeedsStepUp {
                        id: id.into(),
                        reason: reason.clone(),
                    });
                }
                Evidence::SteppedUp {
                    actor: self.actor.clone(),
                    at,
                }
            }
            Gate::Ciba { approver, reason } => {
                refuse("needs approval on the device: a local approval cannot stand in for it")?;
                return Err(ReviewError::NeedsDevice {
                    id: id.into(),
                    approver: approver.clone(),
                    reason: reason.clone(),
                });
            }
            Gate::Deny { reason } => {
                refuse("denied by permissions")?;
                return Err(ReviewError::Denied {
                    id: id.into(),
                    reason: reason.clone(),
                });
            }
        };
        let consent = Consent::grant(&d, &a.params, evidence)?;
        let sealed = super::seal::key()?.seal(&a, d.gate().name(), consent.evidence().clone(), at);
        let now = store.transition(
            id,
            &Transition {
                from: a.state,
                version: a.version,
                to: ActionState::Approved,
                outcome: None,
                evidence: Some(sealed),
                at,
            },
        )?;
        self.audit(
            store,
            &now,
            "action.approved",
            "ok",
            at,
            serde_json::json!({
                "kind": now.kind(),
                "target": now.params.target(),
                "confidence": now.confidence,
                "edited": now.is_edited(),
                "gate": d.gate(),
                "reasons": d.reasons(),
                "band": d.band(),
                "evidence": consent.evidence(),
                "payload_digest": payload_digest(&now.params),
            }),
        )?;
        Ok(now)
    }

    pub fn reject(
        &self,
        store: &dyn Store,
        id: &str,
        reason: Option<String>,
        at: Millis,
    ) -> Result<Action, ReviewError> {
        let a = store.get_action(id)?;
        if !matches!(
            a.state,
            ActionState::Proposed | ActionState::AwaitingConsent | ActionState::Approved
        ) {
            return Err(ReviewError::NotPending {
                id: id.into(),
                state: a.state,
                verb: "rejected",
            });
        }
        let outcome = reason.clone().unwrap_or_else(|| "rejected".into());
        let now = Self::move_to(store, &a, ActionState::Rejected, Some(outcome), at)?;
        self.audit(
            store,
            &now,
            "action.rejected",
            "rejected",
            at,
            serde_json::json!({
                "kind": now.kind(),
                "target": now.params.target(),
                "confidence": now.confidence,
                "reason": reason,
            }),
        )?;
        self.pause_rules_covering(store, &now, "rejected", reason, at)?;
        Ok(now)
    }

    /// Takes an approval back before the action runs (the outbox's undo, or a held
    /// approval the person changed their mind about): back to `proposed`, its consent
    /// dropped, so running it needs a fresh approval. Refused once it is executing.
    pub fn withdraw(
        &self,
        store: &dyn Store,
        id: &str,
        why: &str,
        at: Millis,
    ) -> Result<Action, ReviewError> {
        let a = store.get_action(id)?;
        if a.state != ActionState::Approved {
            return Err(ReviewError::NotWithdrawable {
                id: id.into(),
                state: a.state,
            });
        }
        let now = Self::move_to(store, &a, ActionState::Proposed, None, at)?;
        self.audit(
            store,
            &now,
            "action.withdrawn",
            "ok",
            at,
            serde_json::json!({
                "kind": now.kind(),
                "target": now.params.target(),
                "why": why,
                "dropped_evidence": a.evidence,
            }),
        )?;
        self.pause_rules_covering(store, &now, "withdrew", Some(why.to_string()), at)?;
        Ok(now)
    }

    /// A "no" beats an earlier "always": each auto-approve rule that covers `a` (an Action
    /// Center suggestion; its payload or the one first proposed, as the gate matches
    /// them) is paused until the person resumes or revokes it. Each pause is the person's
    /// own audited permission change, naming the action. Returns the rules paused.
    pub fn pause_rules_covering(
        &self,
        store: &dyn Store,
        a: &Action,
        by: &str,
        reason: Option<String>,
        at: Millis,
    ) -> Result<Vec<String>, StoreError> {
        if a.surface != Surface::ActionCenter || !auto_rule_eligible(a.kind()) {
            return Ok(Vec::new());
        }
        let targets = [target_pattern(&a.params), target_pattern(&a.original)];
        let covering: Vec<String> = store
            .load_permissions()?
            .auto_rules
            .iter()
            .filter(|r| {
                r.paused.is_none()
                    && targets
                        .iter()
                        .any(|t| r.covers(a.kind(), t, a.confidence, at))
            })
            .map(|r| r.id.clone())
            .collect();
        let mut paused = Vec::new();
        for id in covering {
            let change = PermissionChange::PauseAutoRule {
                id: id.clone(),
                pause: RulePause {
                    action_id: a.id.clone(),
                    by: by.to_string(),
                    target: a.params.target(),
                    at,
                    reason: reason.clone(),
                },
            };
            let entry = NewAuditEntry {
                ts: at,
                actor: self.actor.clone(),
                surface: Some(self.surface),
                event: "permissions.changed".into(),
                action_id: Some(a.id.clone()),
                outcome: "ok".into(),
                detail: serde_json::json!({ "origin": origin(), "rule": id }),
            };
            match store.change_permissions(&change, entry) {
                Ok(_) => paused.push(id),
                // Paused (or revoked) by another process meanwhile: it approves nothing.
                Err(StoreError::Permission(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(paused)
    }

    /// Sends a proposed action to the device-consent queue: the next CIBA batch asks
    /// the approver's phone about it.
    pub fn queue_for_device(
        &self,
        store: &dyn Store,
        id: &str,
        at: Millis,
    ) -> Result<Action, ReviewError> {
        let a = store.get_action(id)?;
        if a.state != ActionState::Proposed {
            return Err(ReviewError::NotPending {
                id: id.into(),
                state: a.state,
                verb: "sent to the device queue",
            });
        }
        let d = decision_for(store, &a, at)?;
        if let Gate::Deny { reason } = d.gate() {
            return Err(ReviewError::Denied {
                id: id.into(),
                reason: reason.clone(),
            });
        }
        let now = Self::move_to(store, &a, ActionState::AwaitingConsent, None, at)?;
        self.audit(
            store,
            &now,
            "action.queued_for_device",
            "ok",
            at,
            serde_json::json!({ "kind": now.kind(), "target": now.params.target() }),
        )?;
        Ok(now)
    }

    /// Replaces the payload; voids any consent or pending device request.
    pub fn edit(
        &self,
        store: &dyn Store,
        id: &str,
        params: &ActionParams,
        at: Millis,
    ) -> Result<Action, ReviewError> {
        self.edit_seen(store, id, None, params, at)
    }

    /// Edits only if the action is still at `seen` (the version the editor opened): no
    /// silent overwrite of an edit made meanwhile.
    pub fn edit_seen(
        &self,
        store: &dyn Store,
        id: &str,
        seen: Option<i64>,
        params: &ActionParams,
        at: Millis,
    ) -> Result<Action, ReviewError> {
        let a = seen_action(store, id, seen)?;
        // An edit is grounded like a proposal: the deal it names must exist, its amount
        // is the store's, and a close goes through close_deal (and its rule).
        let grounded =
            ground(store, params.clone()).map_err(|reason| ReviewError::InvalidEdit {
                id: id.into(),
                reason,
            })?;
        let params = &grounded;
        params
            .validate()
            .map_err(|reason| ReviewError::InvalidEdit {
                id: id.into(),
                reason,
            })?;
        if params.kind() != a.kind() {
            return Err(ReviewError::InvalidEdit {
                id: id.into(),
                reason: format!("an edit cannot turn {} into {}", a.kind(), params.kind()),
            });
        }
        let now = store.edit_action(id, a.version, params, at)?;
        let regate = super::facts::decision_at(store, &now, at)?;
        let before = serde_json::to_value(&a.params).unwrap_or_default();
        let after = serde_json::to_value(params).unwrap_or_default();
        let fields: Vec<String> = match (before.as_object(), after.as_object()) {
            (Some(b), Some(n)) => n
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect(),
            _ => Vec::new(),
        };
        self.audit(
            store,
            &now,
            "action.edited",
            "ok",
            at,
            serde_json::json!({
                "kind": now.kind(),
                "target": now.params.target(),
                "fields": fields,
                "voided_consent": a.evidence.is_some() || a.state != ActionState::Proposed,
                // The edit re-derives the facts: what it now needs, from the store.
                "gate": regate.gate(),
                "reasons": regate.reasons(),
            }),
        )?;
        Ok(now)
    }
}
