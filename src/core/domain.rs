//! The sales domain: deals, contacts and the actions the agent may propose.
//!
//! Action parameters are typed per kind so that the consent engine, the editor and the
//! connectors all agree on what an action *is*; the JSON form is only for storage and
//! the wire.

use serde::{Deserialize, Serialize};
use std::fmt;

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

/// Every kind of thing the agent can ask the pipeline to do. There is deliberately no
/// kind that touches permissions: the agent cannot change its own leash (invariant 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    // Reads: no side effects, never need consent (still audited).
    ListDeals,
    GetDeal,
    SearchContacts,
    CheckCalendar,
    ListSlackChannels,
    ReadInbox,
    // Writes.
    SendEmail,
    DraftEmail,
    ScheduleMeeting,
    PostSlack,
    CreateDeal,
    UpdateDeal,
    CloseDeal,
}

impl ActionKind {
    pub const ALL: [ActionKind; 13] = [
        ActionKind::ListDeals,
        ActionKind::GetDeal,
        ActionKind::SearchContacts,
        ActionKind::CheckCalendar,
        ActionKind::ListSlackChannels,
        ActionKind::ReadInbox,
        ActionKind::SendEmail,
        ActionKind::DraftEmail,
        ActionKind::ScheduleMeeting,
        ActionKind::PostSlack,
        ActionKind::CreateDeal,
        ActionKind::UpdateDeal,
        ActionKind::CloseDeal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ListDeals => "list_deals",
            ActionKind::GetDeal => "get_deal",
            ActionKind::SearchContacts => "search_contacts",
            ActionKind::CheckCalendar => "check_calendar",
            ActionKind::ListSlackChannels => "list_slack_channels",
            ActionKind::ReadInbox => "read_inbox",
            ActionKind::SendEmail => "send_email",
            ActionKind::DraftEmail => "draft_email",
            ActionKind::ScheduleMeeting => "schedule_meeting",
            ActionKind::PostSlack => "post_slack",
            ActionKind::CreateDeal => "create_deal",
            ActionKind::UpdateDeal => "update_deal",
            ActionKind::CloseDeal => "close_deal",
        }
    }

    pub fn parse(s: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_read(self) -> bool {
        matches!(
            self,
            ActionKind::ListDeals
                | ActionKind::GetDeal
                | ActionKind::SearchContacts
                | ActionKind::CheckCalendar
                | ActionKind::ListSlackChannels
                | ActionKind::ReadInbox
        )
    }

    pub fn is_write(self) -> bool {
        !self.is_read()
    }

    /// A short label for summaries ("3 email 2 cal").
    pub fn short(self) -> &'static str {
        match self {
            ActionKind::SendEmail | ActionKind::DraftEmail | ActionKind::ReadInbox => "email",
            ActionKind::ScheduleMeeting | ActionKind::CheckCalendar => "cal",
            ActionKind::PostSlack | ActionKind::ListSlackChannels => "slack",
            ActionKind::CreateDeal
            | ActionKind::UpdateDeal
            | ActionKind::CloseDeal
            | ActionKind::ListDeals
            | ActionKind::GetDeal => "crm",
            ActionKind::SearchContacts => "contacts",
        }
    }

    /// The deal and contact kinds: the CRM's, wherever it lives.
    pub fn is_crm(self) -> bool {
        matches!(
            self,
            ActionKind::ListDeals
                | ActionKind::GetDeal
                | ActionKind::SearchContacts
                | ActionKind::CreateDeal
                | ActionKind::UpdateDeal
                | ActionKind::CloseDeal
        )
    }

    /// Which provider connection the kind needs with the CRM where `crm` says.
    pub fn connection_with(self, crm: CrmProvider) -> Option<Connection> {
        match (self.connection(), crm) {
            (Some(c), _) => Some(c),
            (None, CrmProvider::Salesforce) if self.is_crm() => Some(Connection::Salesforce),
            (None, _) => None,
        }
    }

    /// Which provider connection the kind needs, if any, with the CRM in our own store
    /// (see [`ActionKind::connection_with`] for a CRM elsewhere).
    pub fn connection(self) -> Option<Connection> {
        match self {
            ActionKind::SendEmail | ActionKind::DraftEmail | ActionKind::ReadInbox => {
                Some(Connection::Google)
            }
            ActionKind::ScheduleMeeting | ActionKind::CheckCalendar => Some(Connection::Google),
            ActionKind::PostSlack | ActionKind::ListSlackChannels => Some(Connection::Slack),
            _ => None,
        }
    }

    /// Provider scopes the tool needs. Token Vault ignores the `scope` parameter of the
    /// exchange, so the app checks these against the connection's granted scopes itself.
    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            ActionKind::SendEmail => &["https://www.googleapis.com/auth/gmail.send"],
            ActionKind::DraftEmail => &["https://www.googleapis.com/auth/gmail.compose"],
            ActionKind::CheckCalendar => &["https://www.googleapis.com/auth/calendar.readonly"],
            // Senders and subjects only: never a message body.
            ActionKind::ReadInbox => &["https://www.googleapis.com/auth/gmail.metadata"],
            ActionKind::ScheduleMeeting => &["https://www.googleapis.com/auth/calendar.events"],
            ActionKind::PostSlack => &["chat:write"],
            ActionKind::ListSlackChannels => &["channels:read"],
            // Salesforce's REST API; asked of the salesforce connection only when the CRM
            // is Salesforce (a local CRM needs no connection, so no scope).
            k if k.is_crm() => &["api"],
            _ => &[],
        }
    }

    /// Risk as the UI labels it; reversibility drives what calibration may ever relax.
    pub fn risk(self) -> Risk {
        match self {
            k if k.is_read() => Risk {
                level: RiskLevel::None,
                reversible: true,
            },
            ActionKind::DraftEmail => Risk {
                level: RiskLevel::Low,
                reversible: true,
            },
            ActionKind::CreateDeal | ActionKind::UpdateDeal => Risk {
                level: RiskLevel::Low,
                reversible: true,
            },
            ActionKind::ScheduleMeeting => Risk {
                level: RiskLevel::Medium,
                reversible: true,
            },
            ActionKind::SendEmail | ActionKind::PostSlack => Risk {
                level: RiskLevel::Medium,
                reversible: false,
            },
            _ => Risk {
                level: RiskLevel::High,
                reversible: false,
            },
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Connection {
    #[serde(rename = "google-oauth2")]
    Google,
    #[serde(rename = "sign-in-with-slack")]
    Slack,
    /// The rep's CRM, when `[crm] provider = "salesforce"`.
    #[serde(rename = "salesforce")]
    Salesforce,
}

impl Connection {
    pub fn as_str(self) -> &'static str {
        match self {
            Connection::Google => "google-oauth2",
            Connection::Slack => "sign-in-with-slack",
            Connection::Salesforce => "salesforce",
        }
    }
}

/// Where the rep's deals and contacts live (`[crm] provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmProvider {
    /// dealflow's own store (the default, and the sandbox's unless configured).
    #[default]
    Local,
    /// Salesforce, through Token Vault's `salesforce` connection.
    Salesforce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    None,
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    pub level: RiskLevel,
    pub reversible: bool,
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            RiskLevel::None => "read",
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        };
        let rev = if self.reversible {
            "reversible"
        } else {
            "irreversible"
        };
        write!(f, "{level} · {rev}")
    }
}

/// Typed parameters, one variant per kind. `kind()` is derived, so a payload can never
/// disagree with the kind it is filed under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionParams {
    ListDeals {
        #[serde(default)]
        stage: Option<Stage>,
    },
    GetDeal {
        deal_id: String,
    },
    SearchContacts {
        query: String,
    },
    CheckCalendar {
        /// Window start and end in ms since the epoch.
        from: Millis,
        to: Millis,
    },
    ListSlackChannels {},
    /// The newest messages in the inbox received at or after `since` (ms since the
    /// epoch): sender, subject and time, never a body.
    ReadInbox {
        since: Millis,
    },
    SendEmail(Email),
    DraftEmail(Email),
    ScheduleMeeting {
        title: String,
        attendees: Vec<String>,
        start: Millis,
        end: Millis,
        #[serde(default)]
        description: String,
    },
    PostSlack {
        channel: String,
        text: String,
    },
    CreateDeal {
        name: String,
        account: String,
        amount_cents: Cents,
        #[serde(default = "default_stage")]
        stage: Stage,
    },
    UpdateDeal {
        deal_id: String,
        #[serde(default)]
        stage: Option<Stage>,
        #[serde(default)]
        amount_cents: Option<Cents>,
        #[serde(default)]
        notes: Option<String>,
        /// The CRM record's revision the proposal was made against, filled from the
        /// store by the pipeline (never trusted from the proposer); `None` for deals in
        /// dealflow's own store. Part of the payload, so consent covers it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<String>,
    },
    CloseDeal {
        deal_id: String,
        won: bool,
        /// The deal's amount, filled from the store by the pipeline (never trusted from
        /// the proposer), so the pure gate can apply the threshold.
        #[serde(default)]
        amount_cents: Cents,
        /// As for `UpdateDeal`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<String>,
    },
}

fn default_stage() -> Stage {
    Stage::Prospecting
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    pub subject: String,
    pub body: String,
    /// Deal the email concerns, if any (context for the reviewer and calibration).
    #[serde(default)]
    pub deal_id: Option<String>,
}

impl ActionParams {
    pub fn kind(&self) -> ActionKind {
        match self {
            ActionParams::ListDeals { .. } => ActionKind::ListDeals,
            ActionParams::GetDeal { .. } => ActionKind::GetDeal,
            ActionParams::SearchContacts { .. } => ActionKind::SearchContacts,
            ActionParams::CheckCalendar { .. } => ActionKind::CheckCalendar,
            ActionParams::ListSlackChannels {} => ActionKind::ListSlackChannels,
            ActionParams::ReadInbox { .. } => ActionKind::ReadInbox,
            ActionParams::SendEmail(_) => ActionKind::SendEmail,
            ActionParams::DraftEmail(_) => ActionKind::DraftEmail,
            ActionParams::ScheduleMeeting { .. } => ActionKind::ScheduleMeeting,
            ActionParams::PostSlack { .. } => ActionKind::PostSlack,
            ActionParams::CreateDeal { .. } => ActionKind::CreateDeal,
            ActionParams::UpdateDeal { .. } => ActionKind::UpdateDeal,
            ActionParams::CloseDeal { .. } => ActionKind::CloseDeal,
        }
    }

    /// The same ask without the CRM revision it was grounded at: what a person rejected
    /// is still the same proposal after someone else edited the record.
    pub fn without_revision(&self) -> ActionParams {
        let mut p = self.clone();
        if let ActionParams::UpdateDeal { revision, .. }
        | ActionParams::CloseDeal { revision, .. } = &mut p
        {
            *revision = None;
        }
        p
    }

    /// The deal amount at stake, for the step-up threshold.
    pub fn amount_cents(&self) -> Option<Cents> {
        match self {
            ActionParams::CreateDeal { amount_cents, .. } => Some(*amount_cents),
            ActionParams::UpdateDeal { amount_cents, .. } => *amount_cents,
            ActionParams::CloseDeal { amount_cents, .. } => Some(*amount_cents),
            _ => None,
        }
    }

    /// Whom or what the action touches, for lists and calibration patterns.
    pub fn target(&self) -> String {
        match self {
            ActionParams::ListDeals { stage } => {
                stage.map_or("all deals".into(), |s| s.as_str().into())
            }
            ActionParams::GetDeal { deal_id } => deal_id.clone(),
            ActionParams::SearchContacts { query } => query.clone(),
            ActionParams::CheckCalendar { .. } => "calendar".into(),
            ActionParams::ListSlackChannels {} => "slack".into(),
            ActionParams::ReadInbox { .. } => "inbox".into(),
            ActionParams::SendEmail(e) | ActionParams::DraftEmail(e) => e.to.join(", "),
            ActionParams::ScheduleMeeting { attendees, .. } => attendees.join(", "),
            ActionParams::PostSlack { channel, .. } => channel.clone(),
            ActionParams::CreateDeal { name, .. } => name.clone(),
            ActionParams::UpdateDeal { deal_id, .. } | ActionParams::CloseDeal { deal_id, .. } => {
                deal_id.clone()
            }
        }
    }

    /// Checks what a connector would otherwise reject late. Messages say which field.
    pub fn validate(&self) -> Result<(), String> {
        self.no_controls()?;
        self.validate_fields()
    }

    /// No control characters in a one-line field (addresses, channels, ids, titles,
    /// subjects), and none but newline and tab in a body: a terminal escape in a payload
    /// could repaint what the person reads before confirming it.
    fn no_controls(&self) -> Result<(), String> {
        use super::text::{control_in_block, control_in_line};
        let v = serde_json::to_value(self).unwrap_or_default();
        let Some(fields) = v.as_object() else {
            return Ok(());
        };
        for (k, val) in fields {
            let block_field = matches!(k.as_str(), "body" | "text" | "description" | "notes");
            let strings: Vec<&str> = match val {
                serde_json::Value::String(s) => vec![s.as_str()],
                serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
                _ => vec![],
            };
            for s in strings {
                let bad = if block_field {
                    control_in_block(s)
                } else {
                    control_in_line(s)
                };
                if let Some(c) = bad {
                    return Err(format!(
                        "{k}: contains a control character (U+{:04X}); it could rewrite what the terminal shows",
                        c as u32
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_fields(&self) -> Result<(), String> {
        match self {
            ActionParams::SendEmail(e) | ActionParams::DraftEmail(e) => {
                if e.to.is_empty() {
                    return Err("to: at least one recipient is needed".into());
                }
                if let Some(bad) = e.to.iter().chain(&e.cc).find(|a| !email_ok(a)) {
                    return Err(format!("to/cc: {bad:?} is not an email address"));
                }
                if e.subject.trim().is_empty() {
                    return Err("subject: must not be empty".into());
                }
                if e.subject.contains(['\r', '\n']) {
                    return Err("subject: must be one line".into());
                }
            }
            ActionParams::ScheduleMeeting {
                title,
                attendees,
                start,
                end,
                ..
            } => {
                if title.trim().is_empty() {
                    return Err("title: must not be empty".into());
                }
                if end <= start {
                    return Err("end: must be after start".into());
                }
                if let Some(bad) = attendees.iter().find(|a| !email_ok(a)) {
                    return Err(format!("attendees: {bad:?} is not an email address"));
                }
            }
            ActionParams::PostSlack { channel, text } => {
                if channel.trim().is_empty() {
                    return Err("channel: must not be empty".into());
                }
                if text.trim().is_empty() {
                    return Err("text: must not be empty".into());
                }
            }
            ActionParams::CreateDeal {
                name, amount_cents, ..
            } => {
                if name.trim().is_empty() {
                    return Err("name: must not be empty".into());
                }
                if *amount_cents < 0 {
                    return Err("amount_cents: must not be negative".into());
                }
            }
            ActionParams::UpdateDeal {
                amount_cents: Some(a),
                ..
            } if *a < 0 => return Err("amount_cents: must not be negative".into()),
            ActionParams::CheckCalendar { from, to } if to <= from => {
                return Err("to: must be after from".into());
            }
            _ => {}
        }
        Ok(())
    }
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
