//! The user's permission set: the only input to the consent engine the user controls.
//!
//! Changes come from a keystroke in the Permissions tab or the user's own CLI call, as a
//! [`PermissionChange`]; the agent's tool registry is built from [`ActionKind`]s and has
//! no way to name one (invariant 2).

use super::budget::{self, Budget, Window};
use super::domain::{ActionKind, Cents, Connection, Millis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// How much freedom an action kind has, ordered from least to most friction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Autonomy {
    /// Runs without asking.
    Auto,
    /// Reviewed in the Action Center (or confirmed inline in Chat).
    Review,
    /// An explicit step-up confirmation showing exactly what will happen.
    StepUp,
    /// A push to the approver's device (OpenID CIBA).
    Ciba,
    /// Never runs.
    Deny,
}

impl Autonomy {
    pub const ALL: [Autonomy; 5] = [
        Autonomy::Auto,
        Autonomy::Review,
        Autonomy::StepUp,
        Autonomy::Ciba,
        Autonomy::Deny,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Autonomy::Auto => "auto",
            Autonomy::Review => "review",
            Autonomy::StepUp => "step_up",
            Autonomy::Ciba => "ciba",
            Autonomy::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Autonomy> {
        let s = s.replace('-', "_");
        Autonomy::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Autonomy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who must say yes on their device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "who", content = "sub")]
pub enum Approver {
    /// The signed-in user.
    #[serde(rename = "self")]
    User,
    /// A named team lead, by Auth0 `sub`.
    TeamLead(String),
}

impl Approver {
    /// Whose device, for a sentence: "your device", "team lead auth0|x's device".
    pub fn whose(&self) -> String {
        match self {
            Approver::User => "your".into(),
            Approver::TeamLead(sub) => format!("team lead {sub}'s"),
        }
    }
}

impl fmt::Display for Approver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Approver::User => f.write_str("you"),
            Approver::TeamLead(sub) => write!(f, "team lead {sub}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloseWonRule {
    /// The least friction closing a deal as won may have.
    pub level: Autonomy,
    pub approver: Approver,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceRouting {
    /// Opt-in: suggestions at or above this confidence skip review. `None` = off.
    pub auto_approve_at: Option<f64>,
    /// Suggestions below this confidence are always reviewed, whatever the autonomy.
    pub force_review_below: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Permissions {
    pub autonomy: BTreeMap<ActionKind, Autonomy>,
    /// Deal amounts strictly above this need at least step-up.
    pub step_up_amount_cents: Cents,
    pub close_won: CloseWonRule,
    pub confidence: ConfidenceRouting,
    /// Whether external agents may reach write tools over MCP at all.
    pub mcp_writes_enabled: bool,
    /// Connections the user disconnected in dealflow. Deleting a Token Vault tokenset
    /// does not revoke the provider's grant, so this app-level flag is checked before
    /// every exchange.
    #[serde(default)]
    pub disconnected: BTreeSet<Connection>,
    /// Time-boxed auto-approve rules the user accepted from calibration nudges. Only
    /// [`crate::core::consent::gate_at`] honours them (it knows the time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auto_rules: Vec<AutoApproveRule>,
    /// Counterparties pinned to "always review": a domain ("@acme.example", which covers
    /// its subdomains), an address, a Slack channel by name ("#deals"; a post addressed
    /// by channel id is not matched), a deal id or an account name, in lower case. A write
    /// that touches one is never auto-approved, whatever the autonomy, the confidence or
    /// a calibration rule says.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub always_review: BTreeSet<String>,
    /// Domains ("@acme.example", which covers its subdomains), addresses and Slack
    /// channels ("#deals") known beside the store's contacts. A write to anyone or
    /// anywhere else is always reviewed, so a prompt-injected recipient never goes out
    /// unseen.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub known: BTreeSet<String>,
    /// Blast-radius budgets: how many of a kind may run without review per window.
    /// Always serialised, so a set the user emptied is not read back as the defaults.
    #[serde(default = "super::budget::defaults")]
    pub budgets: Vec<Budget>,
    /// Where a device request goes when the rep has not answered it in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    /// With a close-won rule that names a team lead: closing a deal as won above this
    /// amount needs two device approvals, the rep's and then the lead's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_approvers_above: Option<Cents>,
}

/// A device-gated action the rep has not answered within `after_ms` goes to the team
/// lead `to` instead (their identity, their phone), recorded as an escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub after_ms: super::domain::Millis,
    /// The lead's Auth0 `sub`.
    pub to: String,
}

/// Shortest and longest wait before escalating: shorter would race the push itself,
/// longer than a week outlives any request.
pub const ESCALATE_AFTER_MIN_MS: i64 = 60_000;
pub const ESCALATE_AFTER_MAX_MS: i64 = 7 * 86_400_000;

// Pins and addresses are compared in the domain's terms (budgets count by them too).
pub use super::domain::{address_key, normalize_pin};

/// The counterparties `action` touches, as pins name them (lower case): each email
/// address and its "@domain", the Slack channel, the deal id, the deal's name and account.
pub fn counterparties(action: &super::domain::ActionParams) -> Vec<String> {
    use super::domain::ActionParams as P;
    let mut keys: Vec<String> = Vec::new();
    let addresses = |addrs: &mut dyn Iterator<Item = &String>, keys: &mut Vec<String>| {
        for a in addrs {
            let a = address_key(a);
            if let Some((_, domain)) = a.rsplit_once('@') {
                // A domain pin covers its subdomains: @acme.example holds eu.acme.example.
                let mut d = domain;
                loop {
                    keys.push(format!("@{d}"));
                    match d.split_once('.') {
                        Some((_, parent)) if parent.contains('.') => d = parent,
                        _ => break,
                    }
                }
            }
            keys.push(a);
        }
    };
    match action {
        P::SendEmail(e) | P::DraftEmail(e) => {
            addresses(&mut e.to.iter().chain(&e.cc), &mut keys);
            keys.extend(e.deal_id.as_deref().map(normalize_pin));
        }
        P::ScheduleMeeting { attendees, .. } => addresses(&mut attendees.iter(), &mut keys),
        // "deals" and "#deals" are one channel to Slack.
        P::PostSlack { channel, .. } => keys.push(format!(
            "#{}",
            normalize_pin(channel).trim_start_matches('#')
        )),
        P::CreateDeal { name, account, .. } => {
            keys.push(normalize_pin(name));
            keys.push(normalize_pin(account));
        }
        P::UpdateDeal { deal_id, .. } | P::CloseDeal { deal_id, .. } | P::GetDeal { deal_id } => {
            keys.push(normalize_pin(deal_id))
        }
        P::ListDeals { .. }
        | P::SearchContacts { .. }
        | P::CheckCalendar { .. }
        | P::ListSlackChannels {}
        | P::ReadInbox { .. } => {}
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The deal a write is filed under (an email about it, a CRM update or close): the store
/// knows its account, which a pin may name.
pub fn deal_of(action: &super::domain::ActionParams) -> Option<&str> {
    use super::domain::ActionParams as P;
    match action {
        P::SendEmail(e) | P::DraftEmail(e) => e.deal_id.as_deref(),
        P::UpdateDeal { deal_id, .. } | P::CloseDeal { deal_id, .. } => Some(deal_id),
        _ => None,
    }
}

/// The first pin among `keys` (counterparties, plus what the store knows, such as a
/// deal's account), if any.
pub fn pinned<'a>(pins: &'a BTreeSet<String>, keys: &[String]) -> Option<&'a str> {
    if pins.is_empty() {
        return None;
    }
    keys.iter()
        .find_map(|k| pins.get(k.as_str()))
        .map(String::as_str)
}

/// "Auto-approve `kind` to `target` at confidence ≥ `min_confidence` until `expires_at`":
/// what accepting a calibration nudge adds. It only ever turns a *review* into *allow*;
/// thresholds, close-won, surface floors and force-review still apply on top.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoApproveRule {
    pub id: String,
    pub kind: ActionKind,
    /// The calibration target pattern it covers ("@initech.example", "#deals").
    pub target: String,
    pub min_confidence: f64,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// Set when the person said no to an action this rule would have approved: a "no"
    /// beats an earlier "always", so the rule approves nothing until they look at it
    /// (resume or revoke, in the Trust popup or `dealflow policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<RulePause>,
}

/// Why a rule is paused: the action the person turned down, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulePause {
    pub action_id: String,
    /// What the person did: "rejected" or "withdrew".
    pub by: String,
    /// The action's target as the person saw it ("bill@initech.example").
    pub target: String,
    pub at: Millis,
    /// The reason they gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RulePause {
    /// "you rejected act-1 (bill@initech.example) at 2025-01-02 09:00 UTC: wrong tone".
    pub fn describe(&self) -> String {
        format!(
            "you {} {} ({}) at {}{}",
            self.by,
            self.action_id,
            self.target,
            super::text::utc_minute(self.at),
            self.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )
    }
}

/// The longest an auto-approve rule may live before it has to be accepted again.
pub const MAX_RULE_MS: Millis = 90 * 24 * 3600 * 1000;

impl AutoApproveRule {
    /// Within its lifetime (paused or not: a paused rule still holds its place, so
    /// calibration does not nudge for the same pattern again meanwhile).
    pub fn active_at(&self, now: Millis) -> bool {
        self.created_at <= now && now < self.expires_at
    }

    /// Whether the rule covers an Action Center suggestion of `kind` to `target` (its
    /// calibration pattern) at `confidence` and `now`, paused or not. The gate lets a
    /// match through only when the rule is not paused; a rejection pauses what matches.
    pub fn covers(&self, kind: ActionKind, target: &str, confidence: f64, now: Millis) -> bool {
        self.kind == kind
            && self.target == target
            && self.active_at(now)
            && confidence >= self.min_confidence
    }
}

/// Whether calibration may ever suggest (and a rule ever cover) auto-approving `kind`.
/// Reads need no rule; closing a deal is irreversible and always needs its own rule.
pub fn auto_rule_eligible(kind: ActionKind) -> bool {
    kind.is_write() && kind != ActionKind::CloseDeal
}

impl Default for Permissions {
    fn default() -> Self {
        let autonomy = ActionKind::ALL
            .into_iter()
            .map(|k| {
                let level = if k.is_read() {
                    Autonomy::Auto
                } else {
                    Autonomy::Review
                };
                (k, level)
            })
            .collect();
        Permissions {
            autonomy,
            step_up_amount_cents: 5_000_000,
            close_won: CloseWonRule {
                level: Autonomy::StepUp,
                approver: Approver::User,
            },
            confidence: ConfidenceRouting {
                auto_approve_at: None,
                force_review_below: 0.6,
            },
            mcp_writes_enabled: true,
            disconnected: BTreeSet::new(),
            auto_rules: Vec::new(),
            always_review: BTreeSet::new(),
            known: BTreeSet::new(),
            budgets: budget::defaults(),
            escalation: None,
            two_approvers_above: None,
        }
    }
}

impl Permissions {
    pub fn autonomy_for(&self, kind: ActionKind) -> Autonomy {
        self.autonomy
            .get(&kind)
            .copied()
            .unwrap_or(if kind.is_read() {
                Autonomy::Auto
            } else {
                Autonomy::Review
            })
    }

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
                    super::domain::format_money(old),
                    super::domain::format_money(*cents)
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
                    Some(c) => format!("above {}", super::domain::format_money(c)),
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
                        super::text::span(e.after_ms)
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
                    || super::text::control_in_line(&pin).is_some()
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
                    || super::text::control_in_line(&k).is_some()
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

    /// Checks a whole set (a team policy read from a file) against the same rules
    /// [`Permissions::apply`] enforces change by change.
    pub fn check(&self) -> Result<(), String> {
        for (k, l) in &self.autonomy {
            if k.is_read() && *l != Autonomy::Auto && *l != Autonomy::Deny {
                return Err(format!(
                    "{k} is a read: it is either allowed (auto) or denied"
                ));
            }
        }
        if self.step_up_amount_cents < 0 {
            return Err("the step-up threshold must not be negative".into());
        }
        if self.close_won.level < Autonomy::StepUp {
            return Err("closing a deal as won needs at least step_up: it is irreversible".into());
        }
        if let Approver::TeamLead(sub) = &self.close_won.approver
            && self.close_won.level < Autonomy::Ciba
        {
            return Err(format!(
                "team lead {sub} approves on their own device: close_won needs ciba"
            ));
        }
        let c = &self.confidence;
        if !(0.0..=1.0).contains(&c.force_review_below) {
            return Err("force_review_below must be between 0 and 1".into());
        }
        if let Some(at) = c.auto_approve_at
            && (!(0.0..=1.0).contains(&at) || at < c.force_review_below)
        {
            return Err(format!(
                "auto_approve_at {at:.2} must be between force_review_below {:.2} and 1",
                c.force_review_below
            ));
        }
        if !self.auto_rules.is_empty() {
            return Err(
                "a team policy carries no auto-approve rules: each person accepts their own".into(),
            );
        }
        for b in &self.budgets {
            budget::check(b)?;
        }
        Ok(())
    }

    /// The effective set when a team policy applies: every setting takes whichever of
    /// the two has more friction, so a user can tighten the team's policy but never
    /// loosen it. Auto-approve (global or per rule) survives only where the team allows
    /// confidence-based auto-approval at all, and then never below the team's bar.
    pub fn tighten_with(&self, team: &Permissions) -> Permissions {
        let autonomy = ActionKind::ALL
            .into_iter()
            .map(|k| (k, self.autonomy_for(k).max(team.autonomy_for(k))))
            .collect();
        let close_won = if team.close_won.level > self.close_won.level
            || (team.close_won.level == self.close_won.level
                && matches!(team.close_won.approver, Approver::TeamLead(_)))
        {
            team.close_won.clone()
        } else {
            self.close_won.clone()
        };
        let team_at = team.confidence.auto_approve_at;
        let auto_approve_at = match (self.confidence.auto_approve_at, team_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        let auto_rules = match team_at {
            None => Vec::new(),
            Some(bar) => self
                .auto_rules
                .iter()
                .map(|r| AutoApproveRule {
                    min_confidence: r.min_confidence.max(bar),
                    ..r.clone()
                })
                .collect(),
        };
        Permissions {
            autonomy,
            step_up_amount_cents: self.step_up_amount_cents.min(team.step_up_amount_cents),
            close_won,
            confidence: ConfidenceRouting {
                auto_approve_at,
                force_review_below: self
                    .confidence
                    .force_review_below
                    .max(team.confidence.force_review_below),
            },
            mcp_writes_enabled: self.mcp_writes_enabled && team.mcp_writes_enabled,
            disconnected: self
                .disconnected
                .union(&team.disconnected)
                .copied()
                .collect(),
            auto_rules,
            always_review: self
                .always_review
                .union(&team.always_review)
                .cloned()
                .collect(),
            // Only what both know is known: a member cannot widen the team's list.
            known: self.known.intersection(&team.known).cloned().collect(),
            // Every budget of either applies, the lower limit where both set one.
            budgets: budget::tightest(&self.budgets, &team.budgets),
            // The team's routing to its lead, where it set one; else the member's own.
            escalation: team.escalation.clone().or_else(|| self.escalation.clone()),
            // Two approvers from the lower amount of either.
            two_approvers_above: match (self.two_approvers_above, team.two_approvers_above) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

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
    use super::budget::{Budget, Window, check, parse_spec};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::{ActionParams, Email};

    #[test]
    fn counterparties_name_addresses_domains_channels_and_deals_in_lower_case() {
        let email = ActionParams::SendEmail(Email {
            to: vec!["Bill@Initech.example".into()],
            cc: vec!["ann@acme.example".into()],
            subject: "s".into(),
            body: "b".into(),
            deal_id: Some("deal-initech".into()),
        });
        assert_eq!(
            counterparties(&email),
            [
                "@acme.example",
                "@initech.example",
                "ann@acme.example",
                "bill@initech.example",
                "deal-initech"
            ]
        );
        let slack = ActionParams::PostSlack {
            channel: "Deals".into(),
            text: "t".into(),
        };
        assert_eq!(counterparties(&slack), ["#deals"]);
        let display = ActionParams::SendEmail(Email {
            to: vec!["Bob <Bob@EU.Acme.example>".into()],
            cc: vec![],
            subject: "s".into(),
            body: "b".into(),
            deal_id: None,
        });
        assert_eq!(
            counterparties(&display),
            ["@acme.example", "@eu.acme.example", "bob@eu.acme.example"]
        );
        let mut pins = BTreeSet::new();
        assert_eq!(pinned(&pins, &counterparties(&email)), None);
        pins.insert(normalize_pin(" @ACME.example "));
        assert_eq!(
            pinned(&pins, &counterparties(&email)),
            Some("@acme.example")
        );
    }

    #[test]
    fn pins_are_added_once_removed_once_and_never_empty() {
        let mut p = Permissions::default();
        let pin = |pattern: &str| PermissionChange::PinReview {
            pattern: pattern.into(),
        };
        assert!(p.apply(&pin("  ")).is_err());
        assert!(p.apply(&pin("Acme Corp")).is_ok());
        assert!(p.apply(&pin("acme corp")).unwrap_err().contains("already"));
        let unpin = PermissionChange::UnpinReview {
            pattern: "ACME CORP".into(),
        };
        assert!(p.apply(&unpin).is_ok());
        assert!(p.apply(&unpin).unwrap_err().contains("not pinned"));
        // The team's pins stay in the effective set.
        let mut team = Permissions::default();
        team.apply(&pin("#deals")).unwrap();
        assert!(p.tighten_with(&team).always_review.contains("#deals"));
    }
}
