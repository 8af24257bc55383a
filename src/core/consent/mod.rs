//! The consent engine: which gate an action must pass, and the proof that it did.
//!
//! [`gate`] is a pure function of surface, action, permissions and confidence. Its
//! [`Decision`] can only be made here, and a [`Consent`] can only be made from a
//! `Decision` plus evidence that satisfies it, so the executor — which demands a
//! `Consent` — cannot run anything whose gate was not met (invariant 1).

pub mod facts;
pub mod rules;

pub use facts::GateFacts;

use super::domain::{ActionKind, ActionParams, Cents, Millis, Surface};
use super::permissions::{Approver, Autonomy, Permissions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// What must happen before an action may run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "gate", rename_all = "snake_case")]
pub enum Gate {
    Allow,
    Review,
    StepUp { reason: String },
    Ciba { approver: Approver, reason: String },
    Deny { reason: String },
}

impl Gate {
    /// Friction rank, comparable with [`Autonomy`] order.
    pub fn rank(&self) -> u8 {
        match self {
            Gate::Allow => 0,
            Gate::Review => 1,
            Gate::StepUp { .. } => 2,
            Gate::Ciba { .. } => 3,
            Gate::Deny { .. } => 4,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Gate::Allow => "allow",
            Gate::Review => "review",
            Gate::StepUp { .. } => "step_up",
            Gate::Ciba { .. } => "ciba",
            Gate::Deny { .. } => "deny",
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gate::Allow => f.write_str("allow"),
            Gate::Review => f.write_str("review"),
            Gate::StepUp { reason } => write!(f, "step-up: {reason}"),
            Gate::Ciba { approver, reason } => write!(f, "CIBA ({approver}): {reason}"),
            Gate::Deny { reason } => write!(f, "deny: {reason}"),
        }
    }
}

/// Which device step a gate is on, for the batch: the rep's yes that is the first of two
/// (it runs nothing), or a request escalated from the rep to the team lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStep {
    FirstOfTwo,
    Escalated,
}

/// The engine's verdict with the chain of reasons that led to it, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    gate: Gate,
    reasons: Vec<String>,
    surface: Surface,
    kind: ActionKind,
    band: &'static str,
    digest: String,
    /// The auto-approve rule that turned a review into an allow, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_rule: Option<String>,
    /// Said in the reasons too; typed here so the batch need not read prose.
    #[serde(skip)]
    step: Option<DeviceStep>,
}

impl Decision {
    pub fn gate(&self) -> &Gate {
        &self.gate
    }
    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }
    /// The device step the gate is on, if it is one the batch treats apart.
    pub fn step(&self) -> Option<DeviceStep> {
        self.step
    }
    pub fn surface(&self) -> Surface {
        self.surface
    }
    pub fn kind(&self) -> ActionKind {
        self.kind
    }
    /// The confidence band that routed it ("≥ 0.90").
    pub fn band(&self) -> &'static str {
        self.band
    }
    /// The chain as one line, for the UI and the audit log.
    pub fn explain(&self) -> String {
        self.reasons.join("; ")
    }
    /// The id of the auto-approve rule that allowed this, for hit counting.
    pub fn auto_rule(&self) -> Option<&str> {
        self.auto_rule.as_deref()
    }

    /// Raises the decision to at least step-up for `reason` (appended to the chain).
    /// Only raising is possible (rank 2 = step-up): a step-up, CIBA or deny gate keeps its gate and just
    /// gains the reason. An allow that came from an auto-approve rule stops being one.
    pub fn raise_to_step_up(mut self, reason: &str) -> Decision {
        self.reasons.push(reason.to_string());
        if self.gate.rank() < 2 {
            self.gate = Gate::StepUp {
                reason: reason.to_string(),
            };
            self.auto_rule = None;
        }
        self
    }
}

/// Threshold-gaming guard: `action`'s amount is under the step-up threshold, but with
/// the other amounts for the same `account` (compared case-, space- and
/// punctuation-insensitively) in the `window_ms` before `at` it is over. `recent` is
/// (account, amount in cents, at ms). Returns the reason to step up with, if any.
pub fn split_guard(
    action: &ActionParams,
    account: &str,
    at: Millis,
    recent: &[(String, Cents, Millis)],
    window_ms: Millis,
    threshold: Cents,
) -> Option<String> {
    rules::split_reason(
        action.amount_cents()?,
        account,
        at,
        recent,
        window_ms,
        threshold,
    )
}

/// Confidence bands used for routing evidence and calibration figures.
pub fn confidence_band(confidence: f64) -> &'static str {
    if !(0.0..=1.0).contains(&confidence) {
        "invalid"
    } else if confidence >= 0.9 {
        "≥ 0.90"
    } else if confidence >= 0.75 {
        "0.75–0.90"
    } else if confidence >= 0.6 {
        "0.60–0.75"
    } else {
        "< 0.60"
    }
}

/// A stable digest of exactly what will run; a consent covers one payload, so an edit
/// after consent voids it.
pub fn payload_digest(params: &ActionParams) -> String {
    // Serializing a typed enum is deterministic (field order is declaration order).
    let bytes = serde_json::to_vec(params).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

fn level_to_gate(level: Autonomy, approver: Approver, reason: String) -> Gate {
    match level {
        Autonomy::Auto => Gate::Allow,
        Autonomy::Review => Gate::Review,
        Autonomy::StepUp => Gate::StepUp { reason },
        Autonomy::Ciba => Gate::Ciba { approver, reason },
        Autonomy::Deny => Gate::Deny { reason },
    }
}

/// The gate for `action` from its payload alone, as if the store knew nothing about it
/// and with no clock (so no time-boxed rule applies). For reasoning about permissions in
/// the abstract; a surface deciding about a real action asks the runtime, which derives
/// [`GateFacts`] from the store and calls [`decide`].
pub fn gate(
    surface: Surface,
    action: &ActionParams,
    permissions: &Permissions,
    confidence: f64,
) -> Decision {
    decide(
        surface,
        action,
        permissions,
        confidence,
        &GateFacts::default(),
    )
}

/// [`gate`] at time `now`, which also honours the user's active auto-approve rules.
pub fn gate_at(
    surface: Surface,
    action: &ActionParams,
    permissions: &Permissions,
    confidence: f64,
    now: Millis,
) -> Decision {
    decide(
        surface,
        action,
        permissions,
        confidence,
        &GateFacts::at(now),
    )
}

/// The one decision path: the [`rules::RULES`] table over `action` proposed on `surface`
/// at `confidence` (0..1; anything else, NaN included, counts as no confidence at all),
/// with what the store knows in `facts`.
pub fn decide(
    surface: Surface,
    action: &ActionParams,
    permissions: &Permissions,
    confidence: f64,
    facts: &GateFacts,
) -> Decision {
    let kind = action.kind();
    let confidence = if (0.0..=1.0).contains(&confidence) {
        confidence
    } else {
        0.0
    };
    let v = rules::evaluate(&rules::Input {
        surface,
        action,
        kind,
        perms: permissions,
        confidence,
        facts,
    });
    let gate = level_to_gate(v.level, v.approver, v.why);
    Decision {
        auto_rule: if gate == Gate::Allow {
            v.auto_rule
        } else {
            None
        },
        gate,
        reasons: v.reasons,
        surface,
        kind,
        band: confidence_band(confidence),
        digest: payload_digest(action),
        step: v.step,
    }
}

/// What the user (or their device) did to open a gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Evidence {
    /// The gate was `Allow`: nothing to ask.
    Autonomous,
    /// Approved after review in the Action Center or the CLI.
    Reviewed { actor: String, at: Millis },
    /// An explicit step-up confirmation.
    SteppedUp { actor: String, at: Millis },
    /// The approver's device said yes to a CIBA request.
    Ciba {
        approver: Approver,
        /// The `sub` of the verified CIBA-issued token: who really said yes. A rule that
        /// names a team lead is satisfied only when this is the lead.
        #[serde(default)]
        sub: String,
        auth_req_id: String,
        binding_message: String,
        approved_at: Millis,
    },
}

impl Evidence {
    fn rank(&self) -> u8 {
        match self {
            Evidence::Autonomous => 0,
            Evidence::Reviewed { .. } => 1,
            Evidence::SteppedUp { .. } => 2,
            Evidence::Ciba { .. } => 3,
        }
    }
}

/// Evidence as the store keeps it: the claim, and the seal that binds it to this user's
/// consent key. The store is not trusted for consent: a row written around dealflow has
/// no seal that verifies, so nothing runs on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    #[serde(flatten)]
    pub evidence: Evidence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<Seal>,
}

/// A MAC over what a consent covers (see [`seal_message`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seal {
    /// The action's version when it was approved.
    pub version: i64,
    /// When it was sealed: where the executor starts looking for an earlier use of it.
    #[serde(default)]
    pub at: Millis,
    /// The gate the evidence satisfied then.
    pub gate: String,
    /// Hex HMAC-SHA256 under the user's consent key.
    pub mac: String,
}

/// The bytes a seal's MAC covers: action id, the version approved, when, the payload digest,
/// the gate and the evidence itself (who approved, when, which device request).
pub fn seal_message(
    action_id: &str,
    version: i64,
    at: Millis,
    digest: &str,
    gate: &str,
    evidence: &Evidence,
) -> Vec<u8> {
    let mut m = b"dealflow-consent-v1".to_vec();
    for part in [
        action_id.as_bytes(),
        version.to_string().as_bytes(),
        at.to_string().as_bytes(),
        digest.as_bytes(),
        gate.as_bytes(),
        &serde_json::to_vec(evidence).unwrap_or_default(),
    ] {
        m.push(0);
        m.extend_from_slice(&(part.len() as u64).to_be_bytes());
        m.extend_from_slice(part);
    }
    m
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("{needed} is needed, but only {given} was given")]
    Insufficient {
        needed: &'static str,
        given: &'static str,
    },
    #[error("the device that approved ({given}) is not the required approver ({needed})")]
    WrongApprover { needed: String, given: String },
    #[error("the decision was made for a different payload (edited after the gate)")]
    PayloadMismatch,
    #[error("the recorded consent does not verify ({0}): it was not recorded by your dealflow")]
    Unsealed(String),
}

/// Proof that an action's gate was satisfied. Private fields and no `Deserialize`: the
/// only way to get one is [`Consent::grant`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consent {
    decision: Decision,
    evidence: Evidence,
}

impl Consent {
    /// Checks `evidence` against `decision` for exactly `params`.
    pub fn grant(
        decision: &Decision,
        params: &ActionParams,
        evidence: Evidence,
    ) -> Result<Consent, ConsentError> {
        if payload_digest(params) != decision.digest || params.kind() != decision.kind {
            return Err(ConsentError::PayloadMismatch);
        }
        let given = evidence.rank();
        let name = |r: u8| match r {
            0 => "nothing",
            1 => "review",
            2 => "step-up",
            _ => "device approval (CIBA)",
        };
        match &decision.gate {
            Gate::Deny { reason } => return Err(ConsentError::Denied(reason.clone())),
            Gate::Ciba { approver, .. } => match &evidence {
                Evidence::Ciba {
                    approver: a, sub, ..
                } if a == approver => {
                    if let Approver::TeamLead(lead) = approver
                        && sub != lead
                    {
                        return Err(ConsentError::WrongApprover {
                            needed: approver.to_string(),
                            given: if sub.is_empty() {
                                "an unverified device".into()
                            } else {
                                sub.clone()
                            },
                        });
                    }
                }
                Evidence::Ciba { approver: a, .. } => {
                    return Err(ConsentError::WrongApprover {
                        needed: approver.to_string(),
                        given: a.to_string(),
                    });
                }
                _ => {
                    return Err(ConsentError::Insufficient {
                        needed: name(3),
                        given: name(given),
                    });
                }
            },
            g if given < g.rank() => {
                return Err(ConsentError::Insufficient {
                    needed: name(g.rank()),
                    given: name(given),
                });
            }
            _ => {}
        }
        Ok(Consent {
            decision: decision.clone(),
            evidence,
        })
    }

    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// Whether this consent covers exactly `params` (an edit voids it).
    pub fn covers(&self, params: &ActionParams) -> bool {
        payload_digest(params) == self.decision.digest && params.kind() == self.decision.kind
    }
}
