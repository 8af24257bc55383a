//! The offline planner, for when there is no API key: deterministic rules over the
//! pipeline for suggestions, and simple chat intents. It produces the same tool calls
//! the model would (`propose_action` inputs, action tool calls), so everything goes
//! through the same validation, FSM and pipeline. All output is labelled offline.

use super::suggest::{self, Snapshot, Suggestions};
use super::tools::PROPOSE_ACTION;
use crate::core::agent::ToolCall;
use crate::core::domain::{Contact, Deal, Millis, Stage, format_money};
use crate::llm::{
    AssistantTurn, ContentBlock, LanguageModel, LlmEvent, Role, StopReason, TurnRequest,
    TurnStream, Usage,
};
use serde_json::{Value, json};

pub const OFFLINE_LABEL: &str = "[offline planner - no AI model]";
const DAY: Millis = 86_400_000;
const HOUR: Millis = 3_600_000;
/// A deal untouched this long gets a follow-up.
pub const STALE_DAYS: i64 = 7;

fn contact_for<'a>(deal: &Deal, contacts: &'a [Contact]) -> Option<&'a Contact> {
    contacts.iter().find(|c| c.account == deal.account)
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
                // Two days out, 15:00-15:30 UTC.
                let start = (s.now / DAY + 2) * DAY + 15 * HOUR;
                let known = if s.calendar.is_some() {
                    "no meeting with them on the calendar"
                } else {
                    "calendar not connected, so no meeting is known"
                };
                out.push(json!({
                    "kind": "schedule_meeting",
                    "fields": {
                        "title": format!("{}: proposal review", d.name),
                        "attendees": [c.email],
                        "start": start,
                        "end": start + HOUR / 2,
                        "description": format!("Walk {} through the proposal for {}.", c.name, d.name),
                    },
                    "justification": format!("{OFFLINE_LABEL} rule proposal-without-meeting: {} is in proposal ({}) and {known}.", d.name, format_money(d.amount_cents)),
                    "confidence": if s.calendar.is_some() { 0.75 } else { 0.6 },
                }));
            }
            Some(c) if days >= STALE_DAYS => {
                let first = c.name.split_whitespace().next().unwrap_or(&c.name);
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
        // Two days out, 16:00-16:30 UTC.
        let start = (s.now / DAY + 2) * DAY + 16 * HOUR;
        let first = c.name.split_whitespace().next().unwrap_or(&c.name);
        out.push(json!({
            "kind": "schedule_meeting",
            "fields": {
                "title": format!("{}: {first} asked to meet", d.name),
                "attendees": [c.email],
                "start": start,
                "end": start + HOUR / 2,
                "description": format!("{first} wrote: {:?}", m.subject),
            },
            "justification": format!("{OFFLINE_LABEL} rule reply-asks-to-meet: {} wrote back {} asking for time ({:?}), and no meeting with them is on the calendar.", c.name, match (s.now - m.received).max(0) / DAY { 0 => "today".to_string(), 1 => "yesterday".to_string(), n => format!("{n} days ago") }, m.subject),
            "confidence": 0.8,
        }));
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

/// A chat reply from the intents: labelled text plus the tool calls to file.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflinePlan {
    pub text: String,
    /// (tool name, input) — ids are assigned by the caller.
    pub calls: Vec<(String, Value)>,
}

/// "$900K", "900k", "75,000", "$1.2m" → cents.
pub fn parse_amount_cents(s: &str) -> Option<i64> {
    let t = s
        .trim()
        .trim_start_matches('$')
        .replace(',', "")
        .to_lowercase();
    let (num, mult) = match t.chars().last()? {
        'k' => (t.get(..t.len() - 1)?, 1_000.0),
        'm' => (t.get(..t.len() - 1)?, 1_000_000.0),
        _ => (t.as_str(), 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * mult * 100.0).round() as i64)
}

fn find_deal<'a>(s: &'a Snapshot, q: &str) -> Option<&'a Deal> {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return None;
    }
    s.deals.iter().find(|d| {
        d.id.to_lowercase() == q
            || d.name.to_lowercase().contains(&q)
            || d.account.to_lowercase().contains(&q)
    })
}

fn find_contact<'a>(s: &'a Snapshot, q: &str) -> Option<&'a Contact> {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return None;
    }
    s.contacts.iter().find(|c| {
        c.name.to_lowercase().contains(&q)
            || c.email.to_lowercase() == q
            || c.account.to_lowercase().contains(&q)
    })
}

fn after<'a>(text: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    // ASCII lowercasing keeps byte offsets, so slicing `text` at the prefix is exact.
    let lower = text.to_ascii_lowercase();
    prefixes.iter().find_map(|p| {
        lower.strip_prefix(p).and_then(|_| {
            text.get(p.len()..)
                .map(|r| r.trim().trim_end_matches(['.', '!', '?']))
        })
    })
}

const HELP: &str = "I understand: show deal X · list deals · check calendar · draft follow-up to X · create deal X for $N · close deal X as won|lost.";

/// Parses one chat message into tool calls.
pub fn plan_chat(text: &str, s: &Snapshot) -> OfflinePlan {
    let t = text.trim();
    let reply = |msg: String, calls: Vec<(String, Value)>| OfflinePlan {
        text: format!("{OFFLINE_LABEL} {msg}"),
        calls,
    };
    let lower = t.to_lowercase();
    if let Some(rest) = after(t, &["close deal ", "close "]) {
        let l = rest.to_lowercase();
        let (name, won) = if let Some(n) = l.strip_suffix(" as won") {
            (n, true)
        } else if let Some(n) = l.strip_suffix(" as lost") {
            (n, false)
        } else {
            return reply(
                format!("Say whether to close it as won or lost. {HELP}"),
                vec![],
            );
        };
        return match find_deal(s, name) {
            Some(d) => reply(
                format!(
                    "Closing {} as {}.",
                    d.name,
                    if won { "won" } else { "lost" }
                ),
                vec![(
                    "close_deal".into(),
                    json!({"deal_id": d.id, "won": won, "amount_cents": d.amount_cents}),
                )],
            ),
            None => reply(format!("No deal matches {name:?}."), vec![]),
        };
    }
    if let Some(rest) = after(t, &["create deal ", "create a deal "]) {
        let Some(pos) = rest.to_ascii_lowercase().rfind(" for ") else {
            return reply(
                format!("Give an amount: create deal X for $N. {HELP}"),
                vec![],
            );
        };
        let (name, amount) = (
            rest.get(..pos).unwrap_or_default().trim(),
            rest.get(pos + 5..).unwrap_or_default(),
        );
        return match parse_amount_cents(amount) {
            Some(cents) if !name.is_empty() => reply(
                format!("Creating deal {name} at {}.", format_money(cents)),
                vec![(
                    "create_deal".into(),
                    json!({"name": name, "account": name, "amount_cents": cents}),
                )],
            ),
            _ => reply(format!("I could not read the amount {amount:?}."), vec![]),
        };
    }
    if let Some(rest) = after(
        t,
        &[
            "draft follow-up to ",
            "draft a follow-up to ",
            "draft follow up to ",
            "draft a follow up to ",
        ],
    ) {
        return match find_contact(s, rest) {
            Some(c) => {
                let deal = s
                    .deals
                    .iter()
                    .find(|d| d.account == c.account && !d.stage.is_closed());
                let first = c.name.split_whitespace().next().unwrap_or(&c.name);
                let subject = deal.map_or_else(
                    || "Following up".to_string(),
                    |d| format!("Following up on {}", d.name),
                );
                reply(
                    format!("Drafting a follow-up to {} <{}>.", c.name, c.email),
                    vec![(
                        "draft_email".into(),
                        json!({
                            "to": [c.email],
                            "subject": subject,
                            "body": format!("Hi {first},\n\nFollowing up on our last conversation. Do you have time this week?\n\nBest regards"),
                            "deal_id": deal.map(|d| d.id.clone()),
                        }),
                    )],
                )
            }
            None => reply(format!("No contact matches {rest:?}."), vec![]),
        };
    }
    if let Some(rest) = after(t, &["show deal ", "show "]) {
        return match find_deal(s, rest) {
            Some(d) => reply(
                format!("Looking up {}.", d.name),
                vec![("get_deal".into(), json!({"deal_id": d.id}))],
            ),
            None => reply(format!("No deal matches {rest:?}."), vec![]),
        };
    }
    if lower.contains("calendar") {
        return reply(
            "Checking the next 7 days of your calendar.".into(),
            vec![(
                "check_calendar".into(),
                json!({"from": s.now, "to": s.now + 7 * DAY}),
            )],
        );
    }
    if lower.contains("list deals") || lower.contains("pipeline") {
        return reply(
            "Listing your deals.".into(),
            vec![("list_deals".into(), json!({}))],
        );
    }
    reply(HELP.into(), vec![])
}

/// The offline planner as a [`LanguageModel`], so chat without an API key runs through
/// the very same FSM and pipeline.
#[derive(Debug, Clone)]
pub struct OfflineModel {
    snapshot: Snapshot,
}

impl OfflineModel {
    pub fn new(snapshot: Snapshot) -> Self {
        OfflineModel { snapshot }
    }

    /// The turn the planner gives for this request.
    pub fn turn(&self, req: &TurnRequest) -> AssistantTurn {
        let last = req.messages.last();
        let results: Vec<(&String, bool)> = last
            .filter(|m| m.role == Role::User)
            .map(|m| {
                m.content
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::ToolResult {
                            content, is_error, ..
                        } => Some((content, *is_error)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut content = Vec::new();
        let stop_reason = if !results.is_empty() {
            let lines: Vec<String> = results
                .iter()
                .map(|(c, err)| {
                    let c = super::tools::readable(c);
                    if *err { format!("Not done: {c}") } else { c }
                })
                .collect();
            content.push(ContentBlock::text(format!(
                "{OFFLINE_LABEL} {}",
                lines.join("\n")
            )));
            StopReason::EndTurn
        } else {
            let text = last
                .map(|m| {
                    m.content
                        .iter()
                        .filter_map(|b| match b {
                            ContentBlock::Text { text } => Some(text.as_str()),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let plan = plan_chat(&text, &self.snapshot);
            content.push(ContentBlock::text(plan.text));
            let n = req.messages.len();
            for (i, (name, input)) in plan.calls.into_iter().enumerate() {
                content.push(ContentBlock::ToolUse {
                    id: format!("offline_{n}_{i}"),
                    name,
                    input,
                });
            }
            if content.len() > 1 {
                StopReason::ToolUse
            } else {
                StopReason::EndTurn
            }
        };
        AssistantTurn {
            message_id: format!("offline_{}", req.messages.len()),
            content,
            stop_reason,
            usage: Usage::default(),
            request_id: None,
        }
    }
}

impl LanguageModel for OfflineModel {
    fn stream_turn(&self, request: TurnRequest) -> TurnStream {
        let turn = self.turn(&request);
        let mut events = vec![Ok(LlmEvent::Started {
            message_id: turn.message_id.clone(),
            model: self.name(),
        })];
        for b in &turn.content {
            match b {
                ContentBlock::Text { text } => events.push(Ok(LlmEvent::TextDelta(text.clone()))),
                ContentBlock::ToolUse { id, name, input } => events.push(Ok(LlmEvent::ToolUse {
                    id: id.clone(),
                    name: name.clone(),
                    input: input.clone(),
                })),
                _ => {}
            }
        }
        events.push(Ok(LlmEvent::Done(turn)));
        TurnStream::from_events(events)
    }

    fn name(&self) -> String {
        "offline planner".into()
    }
}

/// The plan's calls with ids, as the FSM sees them.
pub fn plan_calls(plan: &OfflinePlan, prefix: &str) -> Vec<ToolCall> {
    plan.calls
        .iter()
        .enumerate()
        .map(|(i, (name, input))| ToolCall {
            id: format!("{prefix}_{i}"),
            name: name.clone(),
            input: input.clone(),
        })
        .collect()
}
