//! [`ActionParams`]: an action's typed parameters, one variant per kind, and the
//! validation every surface shares.

use super::{ActionKind, Cents, Millis, Stage, email_ok};
use serde::{Deserialize, Serialize};

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
        use crate::core::text::{control_in_block, control_in_line};
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
