//! The suggestion rules: a follow-up for a stale deal, a meeting for a deal about to
//! close, an answer to a contact who asked to meet, validated as the model's would be.

use super::{DAY, HOUR, OFFLINE_LABEL, STALE_DAYS, contact_for, first_name};
use crate::agent::suggest::{self, Snapshot, Suggestions};
use crate::agent::tools::PROPOSE_ACTION;
use crate::core::domain::{Contact, Millis, Stage, format_money};
use serde_json::{Value, json};

/// A `schedule_meeting` proposal for 30 minutes two days after `now`, at `utc_hour`:00
/// UTC; `fields` holds the rest (title, attendees, description).
fn half_hour_in_two_days(
    now: Millis,
    utc_hour: i64,
    mut fields: Value,
    justification: String,
    confidence: f64,
) -> Value {
    let start = (now / DAY + 2) * DAY + utc_hour * HOUR;
    fields["start"] = json!(start);
    fields["end"] = json!(start + HOUR / 2);
    json!({
        "kind": "schedule_meeting",
        "fields": fields,
        "justification": justification,
        "confidence": confidence,
    })
}

fn has_meeting_with(s: &Snapshot, contact: &Contact) -> Option<bool> {
    s.calendar.as_ref().map(|cal| {
        cal.iter().any(|e| {
            e.end >= s.now
                && e.attendees
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&contact.email))
        })
    })
}

/// The rules' `propose_action` inputs, in deal order (deterministic given `s.now`).
pub fn rule_proposals(s: &Snapshot) -> Vec<Value> {
    let mut out = Vec::new();
    let answered = reply_proposals(s, &mut out);
    for d in s
        .deals
        .iter()
        .filter(|d| !d.stage.is_closed() && !answered.contains(&d.id))
    {
        let days = (s.now - d.last_touch).max(0) / DAY;
        let contact = contact_for(d, &s.contacts);
        match contact {
            Some(c) if d.stage == Stage::Proposal && has_meeting_with(s, c) != Some(true) => {
                let known = if s.calendar.is_some() {
                    "no meeting with them on the calendar"
                } else {
                    "calendar not connected, so no meeting is known"
                };
                out.push(half_hour_in_two_days(
                    s.now,
                    15,
                    json!({
                        "title": format!("{}: proposal review", d.name),
                        "attendees": [c.email],
                        "description": format!("Walk {} through the proposal for {}.", c.name, d.name),
                    }),
                    format!("{OFFLINE_LABEL} rule proposal-without-meeting: {} is in proposal ({}) and {known}.", d.name, format_money(d.amount_cents)),
                    if s.calendar.is_some() { 0.75 } else { 0.6 },
                ));
            }
            Some(c) if days >= STALE_DAYS => {
                let first = first_name(c);
                out.push(json!({
                    "kind": "send_email",
                    "fields": {
                        "to": [c.email],
                        "subject": format!("Following up on {}", d.name),
                        "body": format!("Hi {first},\n\nI wanted to follow up on {}. Do you have 20 minutes this week to discuss next steps?\n\nBest regards", d.name),
                        "deal_id": d.id,
                    },
                    "justification": format!("{OFFLINE_LABEL} rule stale-deal: no touch in {days} days on a {} {} deal.", d.stage.as_str(), format_money(d.amount_cents)),
                    // In whole hundredths: 0.6 + 0.3 is 0.8999… in floating point, which
                    // would keep the stalest deals just under the 0.90 streak band.
                    "confidence": (60 + days.min(30)) as f64 / 100.0,
                }));
            }
            None if days >= 2 * STALE_DAYS => {
                out.push(json!({
                    "kind": "post_slack",
                    "fields": {"channel": "#deals", "text": format!("{} has had no touch in {days} days and no contact on file - anyone have a warm intro at {}?", d.name, d.account)},
                    "justification": format!("{OFFLINE_LABEL} rule stale-no-contact: {days} days untouched, no contact at {}.", d.account),
                    "confidence": 0.6,
                }));
            }
            _ => {}
        }
    }
    out
}

/// Words in a subject line that ask for time together.
const ASKS_TO_MEET: [&str; 7] = [
    "meet",
    "call",
    "walk",
    "demo",
    "time to talk",
    "chat",
    "review",
];

/// Rule reply-asks-to-meet: a contact of an open deal wrote in the last week asking for
/// time, and nothing is on the calendar with them. Returns the deals it answered, so the
/// deal rules do not propose for them too.
fn reply_proposals(s: &Snapshot, out: &mut Vec<Value>) -> Vec<String> {
    let mut answered = Vec::new();
    let Some(inbox) = &s.inbox else {
        return answered;
    };
    let mut newest_first = inbox.clone();
    newest_first.sort_by_key(|m| std::cmp::Reverse(m.received));
    for m in newest_first {
        let subject = m.subject.to_lowercase();
        if !ASKS_TO_MEET.iter().any(|w| subject.contains(w)) {
            continue;
        }
        let from = m.address();
        let Some(c) = s
            .contacts
            .iter()
            .find(|c| c.email.eq_ignore_ascii_case(&from))
        else {
            continue;
        };
        let Some(d) = s
            .deals
            .iter()
            .find(|d| d.account == c.account && !d.stage.is_closed())
        else {
            continue;
        };
        if answered.contains(&d.id) || has_meeting_with(s, c) == Some(true) {
            continue;
        }
        answered.push(d.id.clone());
        let first = first_name(c);
        out.push(half_hour_in_two_days(
            s.now,
            16,
            json!({
                "title": format!("{}: {first} asked to meet", d.name),
                "attendees": [c.email],
                "description": format!("{first} wrote: {:?}", m.subject),
            }),
            format!("{OFFLINE_LABEL} rule reply-asks-to-meet: {} wrote back {} asking for time ({:?}), and no meeting with them is on the calendar.", c.name, match (s.now - m.received).max(0) / DAY { 0 => "today".to_string(), 1 => "yesterday".to_string(), n => format!("{n} days ago") }, m.subject),
            0.8,
        ));
    }
    answered
}

/// Offline suggestions, validated and deduplicated exactly as the model's are.
pub fn suggest_offline(s: &Snapshot, next_id: &mut dyn FnMut() -> String) -> Suggestions {
    let calls: Vec<(String, Value)> = rule_proposals(s)
        .into_iter()
        .map(|v| (PROPOSE_ACTION.to_string(), v))
        .collect();
    let mut out = suggest::proposals(&calls, s, next_id);
    for a in &mut out.actions {
        a.title = format!("[offline] {}", a.title);
    }
    out
}
