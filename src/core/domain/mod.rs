//! The sales domain: deals, contacts and the actions the agent may propose.
//!
//! Action parameters are typed per kind so that the consent engine, the editor and the
//! connectors all agree on what an action *is*; the JSON form is only for storage and
//! the wire.

use serde::{Deserialize, Serialize};
use std::fmt;

mod kind;
mod params;

pub use kind::{ActionKind, Connection, CrmProvider, Risk, RiskLevel};
pub use params::{ActionParams, Email};
/// Money in whole cents, so that thresholds compare exactly.
pub type Cents = i64;

/// Milliseconds since the Unix epoch. Core never reads a clock: callers pass time in.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Prospecting,
    Qualified,
    Proposal,
    Negotiation,
    ClosedWon,
    ClosedLost,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Prospecting,
        Stage::Qualified,
        Stage::Proposal,
        Stage::Negotiation,
        Stage::ClosedWon,
        Stage::ClosedLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prospecting => "prospecting",
            Stage::Qualified => "qualified",
            Stage::Proposal => "proposal",
            Stage::Negotiation => "negotiation",
            Stage::ClosedWon => "closed_won",
            Stage::ClosedLost => "closed_lost",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The stage a close leaves a deal in.
    pub fn closed(won: bool) -> Stage {
        if won {
            Stage::ClosedWon
        } else {
            Stage::ClosedLost
        }
    }

    pub fn is_closed(self) -> bool {
        matches!(self, Stage::ClosedWon | Stage::ClosedLost)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    pub id: String,
    pub name: String,
    pub account: String,
    pub amount_cents: Cents,
    pub stage: Stage,
    pub owner: String,
    pub last_touch: Millis,
    #[serde(default)]
    pub notes: String,
    /// Where the deal lives when it is a record in the rep's CRM (Salesforce), not in
    /// dealflow's own store: what the mirror last read of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<CrmRecord>,
}

/// A deal's CRM record as last read: its revision (Salesforce's `LastModifiedDate`),
/// carried by every write so a change made in the CRM after the rep approved is found,
/// not overwritten; and the close date the CRM keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmRecord {
    pub revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub name: String,
    pub email: String,
    pub account: String,
    #[serde(default)]
    pub title: String,
}

/// Where a request to act came from; each surface carries a different default trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// AI suggestions reviewed in the Actions tab.
    ActionCenter,
    /// The user directing the agent in the Chat tab.
    Chat,
    /// An external agent over MCP.
    Mcp,
    /// The batch scheduler (one CIBA push for many actions).
    Batch,
    /// The user at the command line (`dealflow actions …`).
    Cli,
}

impl Surface {
    pub const ALL: [Surface; 5] = [
        Surface::ActionCenter,
        Surface::Chat,
        Surface::Mcp,
        Surface::Batch,
        Surface::Cli,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Surface::ActionCenter => "action_center",
            Surface::Chat => "chat",
            Surface::Mcp => "mcp",
            Surface::Batch => "batch",
            Surface::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<Surface> {
        Surface::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Surface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    Proposed,
    Approved,
    Rejected,
    AwaitingConsent,
    Executing,
    Succeeded,
    Failed,
    Expired,
    /// Found in `executing` after a crash: shown to the user, never blindly re-run.
    NeedsReconciliation,
}

impl ActionState {
    pub const ALL: [ActionState; 9] = [
        ActionState::Proposed,
        ActionState::Approved,
        ActionState::Rejected,
        ActionState::AwaitingConsent,
        ActionState::Executing,
        ActionState::Succeeded,
        ActionState::Failed,
        ActionState::Expired,
        ActionState::NeedsReconciliation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Proposed => "proposed",
            ActionState::Approved => "approved",
            ActionState::Rejected => "rejected",
            ActionState::AwaitingConsent => "awaiting_consent",
            ActionState::Executing => "executing",
            ActionState::Succeeded => "succeeded",
            ActionState::Failed => "failed",
            ActionState::Expired => "expired",
            ActionState::NeedsReconciliation => "needs_reconciliation",
        }
    }

    pub fn parse(s: &str) -> Option<ActionState> {
        ActionState::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ActionState::Rejected
                | ActionState::Succeeded
                | ActionState::Failed
                | ActionState::Expired
        )
    }

    /// The lifecycle graph. The store refuses any transition not listed here.
    pub fn can_go_to(self, next: ActionState) -> bool {
        use ActionState::*;
        matches!(
            (self, next),
            (
                Proposed,
                Approved | Rejected | AwaitingConsent | Expired | Proposed
            ) | (AwaitingConsent, Approved | Rejected | Proposed | Expired)
                | (
                    Approved,
                    Executing | Proposed | Rejected | Expired | AwaitingConsent
                )
                | (Executing, Succeeded | Failed | NeedsReconciliation)
                | (NeedsReconciliation, Succeeded | Failed)
                | (Failed, Proposed)
        )
    }
}

impl fmt::Display for ActionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A proposed or performed action as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub id: String,
    pub params: ActionParams,
    /// What the AI first proposed, kept so the UI can diff an edit against it.
    pub original: ActionParams,
    pub state: ActionState,
    /// Bumped by every write, for compare-and-set.
    pub version: i64,
    pub surface: Surface,
    pub confidence: f64,
    pub justification: String,
    pub title: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// The provider's answer, or why it failed.
    #[serde(default)]
    pub outcome: Option<String>,
    /// How the user consented, once they have; re-checked against the gate at execution.
    #[serde(default)]
    pub evidence: Option<super::consent::Recorded>,
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        self.params.kind()
    }

    pub fn is_edited(&self) -> bool {
        self.params != self.original
    }
}

/// Whether `a` looks like an address mail can go to: something@domain.tld, no spaces.
pub fn email_ok(a: &str) -> bool {
    let mut parts = a.splitn(2, '@');
    matches!((parts.next(), parts.next()), (Some(l), Some(d)) if !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !a.contains(char::is_whitespace))
}

/// Formats cents as "$75,000" (or "$75,000.50").
pub fn format_money(cents: Cents) -> String {
    let neg = cents < 0;
    let abs = cents.unsigned_abs();
    let dollars = abs / 100;
    let rem = abs % 100;
    let digits = dollars.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    let sign = if neg { "-" } else { "" };
    if rem == 0 {
        format!("{sign}${out}")
    } else {
        format!("{sign}${out}.{rem:02}")
    }
}

/// The pattern calibration groups "similar" actions by: recipient domains for email and
/// meetings ("@initech.example"), the channel for Slack, the account or deal for CRM.
pub fn target_pattern(params: &ActionParams) -> String {
    fn domains<'a>(addrs: impl Iterator<Item = &'a String>) -> String {
        let mut ds: Vec<String> = addrs
            .map(|a| match a.rsplit_once('@') {
                Some((_, d)) => format!("@{}", d.to_ascii_lowercase()),
                None => a.to_ascii_lowercase(),
            })
            .collect();
        ds.sort();
        ds.dedup();
        ds.join(",")
    }
    match params {
        ActionParams::SendEmail(e) | ActionParams::DraftEmail(e) => domains(e.to.iter()),
        ActionParams::ScheduleMeeting { attendees, .. } => domains(attendees.iter()),
        ActionParams::PostSlack { channel, .. } => channel.to_ascii_lowercase(),
        ActionParams::CreateDeal { account, .. } => account.clone(),
        other => other.target(),
    }
}

/// A pin as stored: trimmed and in lower case, so "Acme" and "acme " are one pin.
pub fn normalize_pin(pattern: &str) -> String {
    pattern.trim().to_lowercase()
}

/// An email address as pins, contacts and the known list compare it: lower case, and
/// "Bill <Bill@Acme.example>" is bill@acme.example.
pub fn address_key(a: &str) -> String {
    let a = normalize_pin(a);
    match (a.rfind('<'), a.rfind('>')) {
        (Some(l), Some(r)) if l < r => a[l + 1..r].trim().to_string(),
        _ => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_formats_with_separators() {
        assert_eq!(format_money(7_500_000), "$75,000");
        assert_eq!(format_money(5_000_000_050), "$50,000,000.50");
        assert_eq!(format_money(99), "$0.99");
        assert_eq!(format_money(-100_000), "-$1,000");
    }

    #[test]
    fn params_kind_round_trips_through_json() {
        let p = ActionParams::CreateDeal {
            name: "Acme".into(),
            account: "Acme".into(),
            amount_cents: 1,
            stage: Stage::Qualified,
        };
        let j = serde_json::to_string(&p).unwrap();
        assert!(j.contains("\"kind\":\"create_deal\""));
        let back: ActionParams = serde_json::from_str(&j).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn email_validation_names_the_field() {
        let p = ActionParams::SendEmail(Email {
            to: vec!["not-an-address".into()],
            cc: vec![],
            subject: "Hi".into(),
            body: String::new(),
            deal_id: None,
        });
        assert!(p.validate().unwrap_err().starts_with("to/cc"));
    }
}
