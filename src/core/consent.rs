//! The consent engine: which gate an action must pass, and the proof that it did.
//!
//! [`gate`] is a pure function of surface, action, permissions and confidence. Its
//! [`Decision`] can only be made here, and a [`Consent`] can only be made from a
//! `Decision` plus evidence that satisfies it, so the executor — which demands a
//! `Consent` — cannot run anything whose gate was not met (invariant 1).

use super::domain::{ActionKind, ActionParams, Cents, Millis, Surface, format_money};
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
}

impl Decision {
    pub fn gate(&self) -> &Gate {
        &self.gate
    }
    pub fn reasons(&self) -> &[String] {
        &self.reasons
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

    /// Raises the decision to at least a review for `reason` (a pinned counterparty the
    /// store revealed, such as a deal's account). Where the person directs the action
    /// (Chat, CLI) a review is an inline confirmation, as in the gate itself.
    pub fn raise_to_review(mut self, reason: &str) -> Decision {
        self.reasons.push(reason.to_string());
        if self.gate.rank() >= 1 {
            return self;
        }
        self.auto_rule = None;
        self.gate = match self.surface {
            Surface::Chat | Surface::Cli => Gate::StepUp {
                reason: format!("{}: confirm inline what will happen", self.surface),
            },
            _ => Gate::Review,
        };
        self
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
/// the other amounts for the same `account` in the `window_ms` before `at` it is over.
/// `recent` is (account, amount in cents, at ms); entries outside the window or for
/// other accounts are ignored. Returns the reason to step up with, if any.
pub fn split_guard(
    action: &ActionParams,
    account: &str,
    at: Millis,
    recent: &[(String, Cents, Millis)],
    window_ms: Millis,
    threshold: Cents,
) -> Option<String> {
    let amount = action.amount_cents()?;
    if amount <= 0 || amount > threshold {
        // Nothing at stake, or the gate already steps up on the amount alone.
        return None;
    }
    let from = at.saturating_sub(window_ms.max(0));
    let (earlier, n) = recent
        .iter()
        .filter(|(acc, cents, t)| acc == account && *cents > 0 && *t > from && *t <= at)
        .fold((0i64, 0usize), |(sum, n), (_, cents, _)| {
            (sum.saturating_add(*cents), n + 1)
        });
    let total = earlier.saturating_add(amount);
    if n > 0 && total > threshold {
        Some(format!(
            "split amounts: {} for {account} with {n} other action(s) in the last {} min totals {} > threshold {}",
            format_money(amount),
            window_ms / 60_000,
            format_money(total),
            format_money(threshold)
        ))
    } else {
        None
    }
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

/// Decides the gate for `action` proposed on `surface` at `confidence` (0..1; anything
/// else, NaN included, counts as no confidence at all). It does not know the time, so
/// time-boxed auto-approve rules never apply here: see [`gate_at`].
pub fn gate(
    surface: Surface,
    action: &ActionParams,
    permissions: &Permissions,
    confidence: f64,
) -> Decision {
    decide_gate(surface, action, permissions, confidence, None)
}

/// [`gate`] at time `now`, which also honours the user's active auto-approve rules: a
/// rule for this kind and target pattern turns a *review* of a suggestion in the Action
/// Center into *allow* when confidence reaches its bar. Everything that adds friction (force-review, thresholds, close-won,
/// surface floors) still applies after it.
pub fn gate_at(
    surface: Surface,
    action: &ActionParams,
    permissions: &Permissions,
    confidence: f64,
    now: Millis,
) -> Decision {
    decide_gate(surface, action, permissions, confidence, Some(now))
}

fn decide_gate(
    surface: Surface,
    action: &ActionParams,
    permissions: &Permissions,
    confidence: f64,
    now: Option<Millis>,
) -> Decision {
    let kind = action.kind();
    let confidence = if (0.0..=1.0).contains(&confidence) {
        confidence
    } else {
        0.0
    };
    let digest = payload_digest(action);
    let mut reasons = Vec::new();
    let mut level = permissions.autonomy_for(kind);
    let mut approver = Approver::User;
    // The reason that set the current level, shown with the gate.
    let mut why = format!("autonomy for {kind}: {level}");
    reasons.push(why.clone());

    let mut auto_rule: Option<String> = None;
    let decide = |gate: Gate, reasons: Vec<String>, auto_rule: Option<String>| Decision {
        auto_rule: if gate == Gate::Allow { auto_rule } else { None },
        gate,
        reasons,
        surface,
        kind,
        band: confidence_band(confidence),
        digest: digest.clone(),
    };

    if kind.is_read() {
        if level == Autonomy::Deny {
            return decide(Gate::Deny { reason: why }, reasons, None);
        }
        reasons.push("read: no side effects, no consent needed".into());
        return decide(Gate::Allow, reasons, None);
    }
    if level == Autonomy::Deny {
        return decide(Gate::Deny { reason: why }, reasons, None);
    }
    if surface == Surface::Mcp && !permissions.mcp_writes_enabled {
        let reason = "MCP write tools are disabled in Permissions".to_string();
        reasons.push(reason.clone());
        return decide(Gate::Deny { reason }, reasons, None);
    }

    // Confidence routing: opt-in skip of review first, then the floor that always wins.
    // Confidence is the suggester's; a person directing the agent (chat, CLI) or an
    // external agent has no such figure, so auto-approve applies to suggestions only.
    if surface == Surface::ActionCenter
        && let Some(at) = permissions.confidence.auto_approve_at
        && level == Autonomy::Review
        && confidence >= at
    {
        level = Autonomy::Auto;
        why = format!("confidence {confidence:.2} ≥ auto-approve {at:.2}");
        reasons.push(why.clone());
    }
    // A rule is learned from reviewed suggestions and its bar is the suggester's
    // confidence, so like auto-approve it covers suggestions only. Chat and the CLI carry
    // no such figure (a directed action counts as 1.0) and would pass any bar, which would
    // also let a user's rule lift a team's review floor there.
    if let Some(now) = now
        && surface == Surface::ActionCenter
        && level == Autonomy::Review
        && super::permissions::auto_rule_eligible(kind)
    {
        let target = super::calibration::target_pattern(action);
        if let Some(rule) = permissions.auto_rules.iter().find(|r| {
            r.kind == kind
                && r.target == target
                && r.active_at(now)
                && confidence >= r.min_confidence
        }) {
            level = Autonomy::Auto;
            auto_rule = Some(rule.id.clone());
            why = format!(
                "auto-approve rule {}: {kind} to {target} at confidence {confidence:.2} ≥ {:.2}",
                rule.id, rule.min_confidence
            );
            reasons.push(why.clone());
        }
    }
    // A pinned counterparty is always looked at: this undoes any auto-approve above. The
    // chain names the pin even when the level was already a review or more, so the
    // person can see every rule that applied.
    if let Some(pin) = super::permissions::pinned(
        &permissions.always_review,
        &super::permissions::counterparties(action),
    ) {
        let reason = format!("{pin} is pinned: always reviewed");
        if level < Autonomy::Review {
            level = Autonomy::Review;
            auto_rule = None;
            why = reason.clone();
        }
        reasons.push(reason);
    }
    if confidence < permissions.confidence.force_review_below && level < Autonomy::Review {
        level = Autonomy::Review;
        why = format!(
            "confidence {confidence:.2} < {:.2}: always reviewed",
            permissions.confidence.force_review_below
        );
        reasons.push(why.clone());
    }

    if let Some(amount) = action.amount_cents()
        && amount > permissions.step_up_amount_cents
        && level < Autonomy::StepUp
    {
        level = Autonomy::StepUp;
        why = format!(
            "amount {} > threshold {}",
            format_money(amount),
            format_money(permissions.step_up_amount_cents)
        );
        reasons.push(why.clone());
    }

    if let ActionParams::CloseDeal { won: true, .. } = action {
        let rule = &permissions.close_won;
        // The rule names the approver even when it does not raise the level.
        if rule.level >= level {
            level = rule.level;
            approver = rule.approver.clone();
            why = format!("closing as won needs {} by {}", rule.level, rule.approver);
            reasons.push(why.clone());
        }
    }

    match surface {
        Surface::Mcp | Surface::Batch if level < Autonomy::Ciba => {
            level = Autonomy::Ciba;
            why = if surface == Surface::Mcp {
                "external agent write over MCP: the user's device must approve".into()
            } else {
                "batch consent is one push to the user's device".into()
            };
            reasons.push(why.clone());
        }
        Surface::Chat | Surface::Cli if level == Autonomy::Review => {
            // The user is present and directing: review becomes an inline confirmation.
            level = Autonomy::StepUp;
            why = format!("{surface}: confirm inline what will happen");
            reasons.push(why.clone());
        }
        _ => {}
    }

    let gate = level_to_gate(level, approver, why);
    decide(gate, reasons, auto_rule)
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
                Evidence::Ciba { approver: a, .. } if a == approver => {}
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
