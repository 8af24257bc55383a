//! Human decisions on queued actions — approve, reject, edit — shared by every surface
//! that lets a person decide (the CLI, the Actions tab). Each decision re-runs the gate
//! against the current permissions, builds the consent proof, moves the action by
//! compare-and-set, and audits the outcome, refusals included.

use crate::core::audit::NewAuditEntry;
use crate::core::consent::{Consent, ConsentError, Decision, Evidence, Gate, gate, payload_digest};
use crate::core::domain::{Action, ActionParams, ActionState, Millis, Surface};
use crate::core::permissions::Approver;
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
    #[error("{id} needs step-up: {reason}")]
    NeedsStepUp { id: String, reason: String },
    #[error("{id} needs approval on {approver}'s device: {reason}")]
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
}

/// Who decides, from where.
#[derive(Debug, Clone)]
pub struct Reviewer {
    pub actor: String,
    pub surface: Surface,
}

/// Replaces what a proposer cannot be trusted to state with the store's truth: a
/// deal's amount when closing it (leaving it out must not dodge the step-up
/// threshold), and refuses closing a deal through `update_deal` (which would dodge
/// the close-won rule).
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
            })
        }
        ActionParams::UpdateDeal { stage: Some(s), .. } if s.is_closed() => {
            Err("stage: close a deal with close_deal, not update_deal".into())
        }
        other => Ok(other),
    }
}

/// The gate an action faces right now, under the stored permissions.
pub fn decision_for(store: &dyn Store, action: &Action) -> Result<Decision, StoreError> {
    let perms = store.load_permissions()?;
    Ok(gate(
        action.surface,
        &action.params,
        &perms,
        action.confidence,
    ))
}

impl Reviewer {
    fn audit(
        &self,
        store: &dyn Store,
        a: &Action,
        event: &str,
        outcome: &str,
        at: Millis,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
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

    /// Approves `id`. `step_up_confirmed` is the person's explicit confirmation of exactly
    /// this action (typed id, inline prompt); without it a step-up gate refuses.
    pub fn approve(
        &self,
        store: &dyn Store,
        id: &str,
        step_up_confirmed: bool,
        at: Millis,
    ) -> Result<Action, ReviewError> {
        let a = store.get_action(id)?;
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
        let d = decision_for(store, &a)?;
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
        let now = store.transition(
            id,
            &Transition {
                from: a.state,
                version: a.version,
                to: ActionState::Approved,
                outcome: None,
                evidence: Some(consent.evidence().clone()),
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
        let now = store.transition(
            id,
            &Transition {
                from: a.state,
                version: a.version,
                to: ActionState::Rejected,
                outcome: Some(reason.clone().unwrap_or_else(|| "rejected".into())),
                evidence: None,
                at,
            },
        )?;
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
        Ok(now)
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
        let d = decision_for(store, &a)?;
        if let Gate::Deny { reason } = d.gate() {
            return Err(ReviewError::Denied {
                id: id.into(),
                reason: reason.clone(),
            });
        }
        let now = store.transition(
            id,
            &Transition {
                from: a.state,
                version: a.version,
                to: ActionState::AwaitingConsent,
                outcome: None,
                evidence: None,
                at,
            },
        )?;
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
        let a = store.get_action(id)?;
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
            }),
        )?;
        Ok(now)
    }
}
