//! What the agent may ask for: [`ActionKind`], the connection and scopes each kind
//! needs, the CRM providers, and the risk each kind carries.

use serde::{Deserialize, Serialize};
use std::fmt;

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
