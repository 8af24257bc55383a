//! [`PermissionChange`], the only way a permission set changes, and
//! [`Permissions::apply`], which validates and applies one.

use super::{
    Approver, AutoApproveRule, Autonomy, CloseWonRule, ESCALATE_AFTER_MAX_MS,
    ESCALATE_AFTER_MIN_MS, Escalation, MAX_RULE_MS, Permissions, RulePause, auto_rule_eligible,
    normalize_pin,
};
use crate::core::budget::{self, Budget, Window};
use crate::core::domain::{ActionKind, Cents, Connection};
use serde::{Deserialize, Serialize};

/// A user-initiated permission change. Only the Permissions tab and the CLI build these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PermissionChange {
    SetAutonomy {
        kind: ActionKind,
        level: Autonomy,
    },
    SetStepUpThreshold {
        cents: Cents,
    },
    SetCloseWon {
        level: Autonomy,
        approver: Approver,
    },
    SetAutoApproveAt {
        at: Option<f64>,
    },
    SetForceReviewBelow {
        below: f64,
    },
    SetMcpWrites {
        enabled: bool,
    },
    /// Close-won above this amount needs the rep's and the lead's device (`None`: off).
    SetTwoApprovers {
        above: Option<Cents>,
    },
    /// Where unanswered device requests go, and after how long (`None`: nowhere).
    SetEscalation {
        escalation: Option<Escalation>,
    },
    SetConnected {
        connection: Connection,
        connected: bool,
    },
    /// Accepting a calibration nudge: a time-boxed auto-approve rule.
    AddAutoRule {
        rule: AutoApproveRule,
    },
    /// Revoking a rule: one call.
    RevokeAutoRule {
        id: String,
    },
    /// The person turned down an action the rule would have approved: the rule stops
    /// approving until they resume (or revoke) it. Made by a person's reject or
    /// withdraw, never by the agent.
    PauseAutoRule {
        id: String,
        pause: RulePause,
    },
    /// The person looked at a paused rule and lets it approve again.
    ResumeAutoRule {
        id: String,
    },
    /// Sets (or replaces) the budget for its kind, window and scope.
    SetBudget {
        budget: Budget,
    },
    /// Removes the kind's budgets of that scope (and window, when given).
    RemoveBudget {
        kind: ActionKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        per: Option<Window>,
        #[serde(default)]
        each_counterparty: bool,
    },
    /// Pin a counterparty to "always review" (a do-not-auto list).
    PinReview {
        pattern: String,
    },
    UnpinReview {
        pattern: String,
    },
    /// Add a domain, address or #channel to the known set.
    Know {
        pattern: String,
    },
    Forget {
        pattern: String,
    },
}

/// The change `permissions budget <kind> <spec>` (and the Permissions tab's budget row)
/// asks for: a spec sets a budget; "off" removes the kind's budgets of that scope,
/// "off/day" only the daily one. `each` adds "per counterparty" to either.
pub fn budget_change(kind: &str, spec: &str, each: bool) -> Result<PermissionChange, String> {
    use crate::core::budget::{Budget, Window, check, parse_spec};
    let kind = ActionKind::parse(kind.trim()).ok_or_else(|| {
        let writes: Vec<&str> = ActionKind::ALL
            .iter()
            .filter(|k| k.is_write())
            .map(|k| k.as_str())
            .collect();
        format!(
            "unknown action kind {kind:?}; budgets are for {}",
            writes.join(", ")
        )
    })?;
    let lower = spec.trim().to_ascii_lowercase();
    let (off, each) = match lower.strip_suffix("each") {
        Some(rest) => (rest.trim().to_string(), true),
        None => (lower.clone(), each),
    };
    if let Some(rest) = off.strip_prefix("off") {
        let per = match rest.trim().trim_start_matches('/') {
            "" => None,
            w => Some(Window::parse(w).ok_or_else(|| format!("{w:?}: hour, day or week"))?),
        };
        return Ok(PermissionChange::RemoveBudget {
            kind,
            per,
            each_counterparty: each,
        });
    }
    let (limit, per, spec_each) = parse_spec(spec)?;
    let budget = Budget {
        kind,
        limit,
        per,
        each_counterparty: each || spec_each,
    };
    check(&budget)?;
    Ok(PermissionChange::SetBudget { budget })
}

impl Permissions {
    /// Applies a change, validating it. Returns a description for the audit log.
    pub fn apply(&mut self, change: &PermissionChange) -> Result<String, String> {
        match change {
            PermissionChange::SetAutonomy { kind, level } => {
                if kind.is_read() && *level != Autonomy::Auto && *level != Autonomy::Deny {
                    return Err(format!(
                        "{kind} is a read: it is either allowed (auto) or denied"
                    ));
                }
                let old = self.autonomy_for(*kind);
                self.autonomy.insert(*kind, *level);
                Ok(format!("autonomy {kind}: {old} -> {level}"))
            }
            PermissionChange::SetStepUpThreshold { cents } => {
                if *cents < 0 {
                    return Err("the step-up threshold must not be negative".into());
                }
                let old = self.step_up_amount_cents;
                self.step_up_amount_cents = *cents;
                Ok(format!(
                    "step-up threshold: {} -> {}",
                    crate::core::domain::format_money(old),
                    crate::core::domain::format_money(*cents)
                ))
            }
            PermissionChange::SetCloseWon { level, approver } => {
                if *level < Autonomy::StepUp {
                    return Err(
                        "closing a deal as won needs at least step_up: it is irreversible".into(),
                    );
                }
                if let Approver::TeamLead(sub) = approver
                    && *level < Autonomy::Ciba
                {
                    return Err(format!(
                        "team lead {sub} approves on their own device: use ciba (or deny), not {level}"
                    ));
                }
                self.close_won = CloseWonRule {
                    level: *level,
                    approver: approver.clone(),
                };
                Ok(format!("close-won rule: {level} by {approver}"))
            }
            PermissionChange::SetAutoApproveAt { at } => {
                if let Some(v) = at {
                    if !(0.0..=1.0).contains(v) || v.is_nan() {
                        return Err("auto_approve_at must be between 0 and 1".into());
                    }
                    if *v < self.confidence.force_review_below {
                        return Err(format!(
                            "auto_approve_at {v:.2} is below force_review_below {:.2}",
                            self.confidence.force_review_below
                        ));
                    }
                }
                self.confidence.auto_approve_at = *at;
                Ok(match at {
                    Some(v) => format!("auto-approve at confidence >= {v:.2}"),
                    None => "auto-approve off".into(),
                })
            }
            PermissionChange::SetForceReviewBelow { below } => {
                if !(0.0..=1.0).contains(below) || below.is_nan() {
                    return Err("force_review_below must be between 0 and 1".into());
                }
                if let Some(at) = self.confidence.auto_approve_at
                    && *below > at
                {
                    return Err(format!(
                        "force_review_below {below:.2} is above auto_approve_at {at:.2}"
                    ));
                }
                self.confidence.force_review_below = *below;
                Ok(format!("force review below confidence {below:.2}"))
            }
            PermissionChange::SetConnected {
                connection,
                connected,
            } => {
                if *connected {
                    self.disconnected.remove(connection);
                } else {
                    self.disconnected.insert(*connection);
                }
                Ok(format!(
                    "{}: {}",
                    connection.as_str(),
                    if *connected {
                        "connected"
                    } else {
                        "disconnected (no token exchange until reconnected)"
                    }
                ))
            }
            PermissionChange::SetTwoApprovers { above } => {
                if let Some(cents) = above {
                    if *cents < 0 {
                        return Err("two approvers above: the amount must not be negative".into());
                    }
                    if !matches!(self.close_won.approver, Approver::TeamLead(_)) {
                        return Err(
                            "two approvers are the rep and the team lead: first name the lead with close-won ciba lead:<sub>".into(),
                        );
                    }
                }
                let old = self.two_approvers_above;
                self.two_approvers_above = *above;
                let say = |a: Option<Cents>| match a {
                    Some(c) => format!("above {}", crate::core::domain::format_money(c)),
                    None => "off".into(),
                };
                Ok(format!(
                    "two approvers (you, then the lead) for close-won: {} -> {}",
                    say(old),
                    say(*above)
                ))
            }
            PermissionChange::SetEscalation { escalation } => {
                let old = self.escalation.clone();
                if let Some(e) = escalation {
                    if !(ESCALATE_AFTER_MIN_MS..=ESCALATE_AFTER_MAX_MS).contains(&e.after_ms) {
                        return Err("escalate after: between 1 minute and 7 days".into());
                    }
                    if e.to.trim().is_empty() || e.to.chars().any(char::is_whitespace) {
                        return Err(format!("escalate to {:?}: a team lead's Auth0 sub", e.to));
                    }
                }
                self.escalation = escalation.clone();
                let say = |e: &Option<Escalation>| match e {
                    Some(e) => format!(
                        "to team lead {} after {}",
                        e.to,
                        crate::core::text::span(e.after_ms)
                    ),
                    None => "off".into(),
                };
                Ok(format!("escalation: {} -> {}", say(&old), say(escalation)))
            }
            PermissionChange::SetMcpWrites { enabled } => {
                self.mcp_writes_enabled = *enabled;
                Ok(format!(
                    "MCP write tools {}",
                    if *enabled { "enabled" } else { "disabled" }
                ))
            }
            PermissionChange::AddAutoRule { rule } => {
                if !auto_rule_eligible(rule.kind) {
                    return Err(format!(
                        "{} cannot be auto-approved: reads need no rule, closing a deal is irreversible",
                        rule.kind
                    ));
                }
                if rule.id.trim().is_empty() || rule.target.trim().is_empty() {
                    return Err("an auto-approve rule needs an id and a target".into());
                }
                if !(0.0..=1.0).contains(&rule.min_confidence) || rule.min_confidence.is_nan() {
                    return Err("min_confidence must be between 0 and 1".into());
                }
                if rule.min_confidence < self.confidence.force_review_below {
                    return Err(format!(
                        "min_confidence {:.2} is below force_review_below {:.2}",
                        rule.min_confidence, self.confidence.force_review_below
                    ));
                }
                let life = rule.expires_at.saturating_sub(rule.created_at);
                if life <= 0 || life > MAX_RULE_MS {
                    return Err("an auto-approve rule must expire within 90 days".into());
                }
                if self.auto_rules.iter().any(|r| r.id == rule.id) {
                    return Err(format!("rule {} already exists", rule.id));
                }
                self.auto_rules.push(rule.clone());
                Ok(format!(
                    "auto-approve rule {}: {} to {} at confidence >= {:.2} until {}",
                    rule.id, rule.kind, rule.target, rule.min_confidence, rule.expires_at
                ))
            }
            PermissionChange::PinReview { pattern } => {
                let pin = normalize_pin(pattern);
                if pin.is_empty()
                    || pin.chars().count() > 200
                    || crate::core::text::control_in_line(&pin).is_some()
                {
                    return Err(
                        "a pin is a domain (@acme.example), an address, a #channel, a deal id or an account name"
                            .into(),
                    );
                }
                if !self.always_review.insert(pin.clone()) {
                    return Err(format!("{pin} is already pinned to always review"));
                }
                Ok(format!("always review anything to {pin}"))
            }
            PermissionChange::UnpinReview { pattern } => {
                let pin = normalize_pin(pattern);
                if !self.always_review.remove(&pin) {
                    return Err(format!("{pin} is not pinned"));
                }
                Ok(format!("{pin} no longer pinned to always review"))
            }
            PermissionChange::Know { pattern } => {
                let k = normalize_pin(pattern);
                if !(k.starts_with('@') || k.starts_with('#') || k.contains('@'))
                    || k.len() < 2
                    || k.chars().count() > 200
                    || crate::core::text::control_in_line(&k).is_some()
                {
                    return Err(
                        "a known counterparty is a domain (@acme.example), an address or a #channel"
                            .into(),
                    );
                }
                if !self.known.insert(k.clone()) {
                    return Err(format!("{k} is already known"));
                }
                Ok(format!("{k} known: writes to it follow autonomy"))
            }
            PermissionChange::Forget { pattern } => {
                let k = normalize_pin(pattern);
                if !self.known.remove(&k) {
                    return Err(format!("{k} is not in the known list"));
                }
                Ok(format!("{k} no longer known: writes to it are reviewed"))
            }
            PermissionChange::PauseAutoRule { id, pause } => {
                let rule = self
                    .auto_rules
                    .iter_mut()
                    .find(|r| &r.id == id)
                    .ok_or_else(|| format!("no auto-approve rule {id}"))?;
                if rule.paused.is_some() {
                    return Err(format!("auto-approve rule {id} is already paused"));
                }
                rule.paused = Some(pause.clone());
                Ok(format!(
                    "auto-approve rule {id} paused: {}",
                    pause.describe()
                ))
            }
            PermissionChange::ResumeAutoRule { id } => {
                let rule = self
                    .auto_rules
                    .iter_mut()
                    .find(|r| &r.id == id)
                    .ok_or_else(|| format!("no auto-approve rule {id}"))?;
                let Some(pause) = rule.paused.take() else {
                    return Err(format!("auto-approve rule {id} is not paused"));
                };
                Ok(format!(
                    "auto-approve rule {id} resumed (it was paused when {})",
                    pause.describe()
                ))
            }
            PermissionChange::SetBudget { budget: b } => {
                budget::check(b)?;
                let old = self.budgets.iter().position(|x| x.key() == b.key());
                let was = old.map(|i| self.budgets.remove(i));
                self.budgets.push(b.clone());
                self.budgets.sort_by_key(Budget::key);
                Ok(match was {
                    Some(w) => format!("budget {} (was {} per {})", b.describe(), w.limit, w.per),
                    None => format!("budget {}", b.describe()),
                })
            }
            PermissionChange::RemoveBudget {
                kind,
                per,
                each_counterparty,
            } => {
                let before = self.budgets.len();
                self.budgets.retain(|b| {
                    !(b.kind == *kind
                        && b.each_counterparty == *each_counterparty
                        && per.is_none_or(|w| b.per == w))
                });
                if self.budgets.len() == before {
                    return Err(format!("no such budget for {kind}"));
                }
                Ok(format!(
                    "{} budget{} for {kind}{} removed",
                    before - self.budgets.len(),
                    if before - self.budgets.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    if *each_counterparty {
                        " to one counterparty"
                    } else {
                        ""
                    }
                ))
            }
            PermissionChange::RevokeAutoRule { id } => {
                let before = self.auto_rules.len();
                self.auto_rules.retain(|r| &r.id != id);
                if self.auto_rules.len() == before {
                    return Err(format!("no auto-approve rule {id}"));
                }
                Ok(format!("auto-approve rule {id} revoked"))
            }
        }
    }
}
