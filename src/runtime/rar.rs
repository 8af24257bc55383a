//! What a device approval covers, as the authorization server can prove it: each action
//! of a push is a typed `authorization_details` entry (RFC 9396) on `/bc-authorize`, the
//! approver's authenticator shows the entries, and the issued token carries back the
//! ones approved. Execution then runs only what the token carries, for exactly the
//! payload it names (the entry's digest).
//!
//! A tenant that refuses the type (not registered on the API) or ignores the parameter
//! (an older tenant, another OP) gets today's hash-bound batch instead; the audit and
//! `doctor` say which one a push used.

use crate::core::consent::payload_digest;
use crate::core::domain::{Action, ActionParams, Cents};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `type` to register on the dealflow API in the tenant (APIs → dealflow → Settings
/// → Rich Authorization Requests).
pub const RAR_TYPE: &str = "dealflow_action";

/// One action as the approver sees it and the token carries it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDetail {
    #[serde(rename = "type")]
    pub kind_of_detail: String,
    pub action_id: String,
    /// The action kind, e.g. `send_email`.
    pub action: String,
    /// Whom or what it touches: recipients, attendees, channel, deal.
    pub counterparty: String,
    /// Subject, title or the first words of a post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<Cents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_id: Option<String>,
    /// SHA-256 of the exact payload: an approval of this entry is for these bytes only.
    pub digest: String,
}

const SUMMARY_CHARS: usize = 80;

fn clip(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(SUMMARY_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

impl ActionDetail {
    pub fn of(a: &Action) -> ActionDetail {
        let (summary, deal_id) = match &a.params {
            ActionParams::SendEmail(e) | ActionParams::DraftEmail(e) => {
                (Some(clip(&e.subject)), e.deal_id.clone())
            }
            ActionParams::ScheduleMeeting { title, .. } => (Some(clip(title)), None),
            ActionParams::PostSlack { text, .. } => (Some(clip(text)), None),
            ActionParams::CreateDeal { name, .. } => (Some(clip(name)), None),
            ActionParams::UpdateDeal { deal_id, stage, .. } => (
                stage.map(|s| format!("stage {}", s.as_str())),
                Some(deal_id.clone()),
            ),
            ActionParams::CloseDeal { deal_id, won, .. } => (
                Some(
                    if *won {
                        "close as won"
                    } else {
                        "close as lost"
                    }
                    .into(),
                ),
                Some(deal_id.clone()),
            ),
            _ => (None, None),
        };
        ActionDetail {
            kind_of_detail: RAR_TYPE.into(),
            action_id: a.id.clone(),
            action: a.kind().as_str().into(),
            counterparty: a.params.target(),
            summary,
            amount_cents: a.params.amount_cents(),
            deal_id,
            digest: payload_digest(&a.params),
        }
    }
}

/// The `authorization_details` form value for a push.
pub fn request_details(actions: &[Action]) -> String {
    let entries: Vec<ActionDetail> = actions.iter().map(ActionDetail::of).collect();
    serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into())
}

/// Which of `actions` an approval covers, judged from the details the token carries:
/// an action runs only if an entry of our type names its id and the digest of its
/// payload as it is now. The rest are reported with why.
pub fn covered<'a>(
    carried: &[Value],
    actions: &'a [Action],
) -> (Vec<&'a Action>, Vec<(&'a Action, &'static str)>) {
    let entries: Vec<ActionDetail> = carried
        .iter()
        .filter_map(|v| serde_json::from_value::<ActionDetail>(v.clone()).ok())
        .filter(|d| d.kind_of_detail == RAR_TYPE)
        .collect();
    let mut run = Vec::new();
    let mut not = Vec::new();
    for a in actions {
        match entries.iter().find(|d| d.action_id == a.id) {
            Some(d) if d.digest == payload_digest(&a.params) => run.push(a),
            Some(_) => not.push((a, "changed after the approval was asked for")),
            None => not.push((a, "not among the actions the approval carries")),
        }
    }
    (run, not)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::{ActionState, Email, Surface};

    fn email(id: &str, subject: &str) -> Action {
        let params = ActionParams::SendEmail(Email {
            to: vec!["bill@initech.example".into()],
            cc: vec![],
            subject: subject.into(),
            body: "Hi".into(),
            deal_id: Some("deal-initech".into()),
        });
        Action {
            id: id.into(),
            original: params.clone(),
            params,
            state: ActionState::AwaitingConsent,
            version: 1,
            surface: Surface::ActionCenter,
            confidence: 0.9,
            justification: String::new(),
            title: String::new(),
            created_at: 0,
            updated_at: 0,
            outcome: None,
            evidence: None,
        }
    }

    #[test]
    fn only_carried_entries_for_the_same_payload_are_covered() {
        let (a, b, c) = (email("a", "one"), email("b", "two"), email("c", "three"));
        let details: Vec<Value> = [&a, &b]
            .iter()
            .map(|x| serde_json::to_value(ActionDetail::of(x)).unwrap())
            .collect();
        let mut b_edited = b.clone();
        if let ActionParams::SendEmail(e) = &mut b_edited.params {
            e.subject = "two, edited".into();
        }
        let actions = [a.clone(), b_edited, c];
        let (run, not) = covered(&details, &actions);
        assert_eq!(run.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            not.iter().map(|(x, _)| x.id.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        // Another type with a matching id is not ours.
        let mut foreign = details[0].clone();
        foreign["type"] = "payment_initiation".into();
        assert!(covered(&[foreign], &[a]).0.is_empty());
    }

    #[test]
    fn an_entry_says_what_the_approver_needs_to_see() {
        let d = ActionDetail::of(&email("a", "Checking   in\non pricing"));
        assert_eq!(d.action, "send_email");
        assert_eq!(d.counterparty, "bill@initech.example");
        assert_eq!(d.summary.as_deref(), Some("Checking in on pricing"));
        assert_eq!(d.deal_id.as_deref(), Some("deal-initech"));
        assert_eq!(d.digest.len(), 64);
    }
}
