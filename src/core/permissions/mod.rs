//! The user's permission set: the only input to the consent engine the user controls.
//!
//! Changes come from a keystroke in the Permissions tab or the user's own CLI call, as a
//! [`PermissionChange`]; the agent's tool registry is built from [`ActionKind`]s and has
//! no way to name one (invariant 2).

use super::budget::{self, Budget};
use super::domain::{ActionKind, Cents, Connection};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

mod change;
mod check;
mod rules;
mod team;

pub use change::{PermissionChange, budget_change};
pub use rules::{AutoApproveRule, MAX_RULE_MS, RulePause, auto_rule_eligible};
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
