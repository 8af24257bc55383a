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

fn first_name(c: &Contact) -> &str {
    c.name.split_whitespace().next().unwrap_or(&c.name)
}

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

/// A chat reply from the intents: labelled text plus the tool calls to file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OfflinePlan {
    pub text: String,
    /// (tool name, input) — ids are assigned by the caller.
    pub calls: Vec<(String, Value)>,
    /// Later rounds, each sent once the previous round's results are back (a chain such
    /// as deal → calendar → draft runs through the same agent loop a model's would).
    pub then: Vec<Vec<(String, Value)>>,
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

const HELP: &str = "I understand, naming a deal or a contact as you like: what's going on with Acme? · email Bill · draft a follow-up to Bill · set up a meeting with Bill next tuesday at 3pm · who wrote back? · list deals · check calendar · create deal X for $N · close deal X as won|lost.";

/// The words of a message, lower case, split on anything but letters, digits, `@`, `.`,
/// `-`, `'` and `:` (so an address and a time stay one word each).
fn words(lower: &str) -> Vec<&str> {
    lower
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '@' | '.' | '-' | '\'' | ':')))
        .map(|w| w.trim_end_matches(['.', '\'', ':']))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The contact a message names anywhere: a first or last name, an address or its local
/// part (whole words, so "bill" is Bill but "billing" is not).
fn mentioned_contact<'a>(s: &'a Snapshot, lower: &str) -> Option<&'a Contact> {
    let ws = words(lower);
    s.contacts.iter().find(|c| {
        let email = c.email.to_lowercase();
        let local = email.split('@').next().unwrap_or_default().to_string();
        c.name
            .to_lowercase()
            .split_whitespace()
            .map(|n| n.trim_end_matches('.').to_string())
            .filter(|n| n.len() > 1)
            .chain([email, local])
            .any(|n| ws.contains(&n.as_str()))
    })
}

/// The open deal a message names anywhere (an account's or deal's first word, its id),
/// or the open deal of the contact it names.
fn mentioned_deal<'a>(s: &'a Snapshot, lower: &str) -> Option<&'a Deal> {
    let ws = words(lower);
    let first = |t: &str| {
        t.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_lowercase()
    };
    s.deals
        .iter()
        .filter(|d| !d.stage.is_closed())
        .find(|d| {
            ws.contains(&first(&d.account).as_str())
                || ws.contains(&first(&d.name).as_str())
                || ws.contains(&d.id.to_lowercase().as_str())
        })
        .or_else(|| {
            let c = mentioned_contact(s, lower)?;
            s.deals
                .iter()
                .find(|d| d.account == c.account && !d.stage.is_closed())
        })
}

/// When a message asks for: a day ("today", "tomorrow", "next tuesday", "on friday",
/// "in 3 days") and a time ("at 3pm", "at 15:30", "9am"), in the person's offset;
/// 10:00 when no time is given, and the next working day when no day is. Returns the
/// start (ms) and how to say it.
pub fn requested_time(lower: &str, now: Millis, utc_offset_s: i32) -> (Millis, String) {
    use chrono::{Datelike, Duration, NaiveTime, TimeZone};
    let zone = chrono::FixedOffset::east_opt(utc_offset_s)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("0 is a valid offset"));
    let today = chrono::DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .with_timezone(&zone)
        .date_naive();
    let ws = words(lower);
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    // "tue", "tues", "thurs" as well as the whole name.
    let weekday = ws.iter().find_map(|w| {
        DAYS.iter()
            .position(|d| *w == *d || (w.len() >= 3 && d.starts_with(*w)))
    });
    let in_days = ws.windows(3).find_map(|w| {
        (w[0] == "in" && w[2].starts_with("day"))
            .then(|| w[1].parse::<i64>().ok())
            .flatten()
    });
    let day = if ws.contains(&"today") {
        today
    } else if ws.contains(&"tomorrow") {
        today + Duration::days(1)
    } else if let Some(n) = in_days {
        today + Duration::days(n.clamp(0, 365))
    } else if let Some(wd) = weekday {
        let ahead = (wd as i64 - today.weekday().num_days_from_monday() as i64).rem_euclid(7);
        today + Duration::days(if ahead == 0 { 7 } else { ahead })
    } else {
        // The next working day.
        let mut d = today + Duration::days(1);
        while d.weekday().num_days_from_monday() >= 5 {
            d += Duration::days(1);
        }
        d
    };
    let time = ws
        .iter()
        .enumerate()
        .find_map(|(i, w)| {
            let (digits, pm) = match (w.strip_suffix("pm"), w.strip_suffix("am")) {
                (Some(d), _) => (d, Some(true)),
                (_, Some(d)) => (d, Some(false)),
                _ => (*w, None),
            };
            let after_at = i > 0 && ws[i - 1] == "at";
            let next_pm = match ws.get(i + 1) {
                Some(&"pm") => Some(true),
                Some(&"am") => Some(false),
                _ => None,
            };
            let pm = pm.or(next_pm);
            if pm.is_none() && !after_at {
                return None;
            }
            let (h, m) = match digits.split_once(':') {
                Some((h, m)) => (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?),
                None => (digits.parse::<u32>().ok()?, 0),
            };
            let h = match pm {
                Some(true) if h < 12 => h + 12,
                Some(false) if h == 12 => 0,
                _ => h,
            };
            NaiveTime::from_hms_opt(h, m, 0)
        })
        .unwrap_or_else(|| NaiveTime::from_hms_opt(10, 0, 0).expect("10:00 is a time"));
    let at = zone
        .from_local_datetime(&day.and_time(time))
        .single()
        .map_or(now, |t| t.timestamp_millis());
    let zone_name = if utc_offset_s == 0 {
        "UTC".to_string()
    } else {
        format!("UTC{zone}")
    };
    (
        at,
        format!(
            "{} {zone_name}",
            day.and_time(time).format("%a %-d %b %H:%M")
        ),
    )
}

/// Parses one chat message into tool calls (and later rounds, for a chain).
pub fn plan_chat(text: &str, s: &Snapshot) -> OfflinePlan {
    let t = text.trim();
    let reply = |msg: String, calls: Vec<(String, Value)>| OfflinePlan {
        text: format!("{OFFLINE_LABEL} {msg}"),
        calls,
        then: vec![],
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
                let first = first_name(c);
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
    if let Some(plan) = loose_intent(&lower, s) {
        return OfflinePlan {
            text: format!("{OFFLINE_LABEL} {}", plan.text),
            ..plan
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

/// The intents said in a person's own words: a verb anywhere, a deal or contact named
/// anywhere, a day and time in plain words.
fn loose_intent(lower: &str, s: &Snapshot) -> Option<OfflinePlan> {
    let has = |ws: &[&str]| ws.iter().any(|w| lower.contains(w));
    let one = |name: &str, input: Value| vec![(name.to_string(), input)];
    if has(&[
        "inbox",
        "wrote back",
        "replied",
        "replies",
        "new mail",
        "any mail",
        "emails",
    ]) {
        return Some(OfflinePlan {
            text: "Reading the last week of your inbox (senders and subjects).".into(),
            calls: one("read_inbox", json!({"since": s.now - 7 * DAY})),
            then: vec![],
        });
    }
    let contact = mentioned_contact(s, lower);
    let deal = mentioned_deal(s, lower);
    if let Some(c) = contact.filter(|_| {
        has(&[
            "meet", "meeting", "call", "demo", "schedule", "book", "set up",
        ])
    }) {
        let (start, said) = requested_time(lower, s.now, s.utc_offset_s);
        let title = match deal {
            Some(d) => format!("{}: {}", d.name, c.name),
            None => format!("Meeting with {}", c.name),
        };
        let day_start = start - start.rem_euclid(DAY);
        return Some(OfflinePlan {
            text: format!(
                "Checking your calendar, then booking 30 minutes with {} <{}> on {said}.",
                c.name, c.email
            ),
            calls: one(
                "check_calendar",
                json!({"from": day_start, "to": day_start + DAY}),
            ),
            then: vec![one(
                "schedule_meeting",
                json!({"title": title, "attendees": [c.email], "start": start, "end": start + HOUR / 2, "description": format!("Set up from chat: {said}.")}),
            )],
        });
    }
    if let Some(c) = contact.filter(|_| {
        has(&[
            "email",
            "write to",
            "follow up",
            "follow-up",
            "reply to",
            "send",
            "draft",
            "nudge",
        ])
    }) {
        let d = deal.filter(|d| d.account == c.account);
        let first = first_name(c);
        let draft = has(&["draft"]);
        let subject = d.map_or_else(
            || "Following up".to_string(),
            |d| format!("Following up on {}", d.name),
        );
        let body = match d {
            Some(d) => format!(
                "Hi {first},\n\nFollowing up on {}. Do you have 20 minutes this week to go over next steps?\n\nBest regards",
                d.name
            ),
            None => format!(
                "Hi {first},\n\nFollowing up on our last conversation. Do you have time this week?\n\nBest regards"
            ),
        };
        let write = one(
            if draft { "draft_email" } else { "send_email" },
            json!({"to": [c.email], "subject": subject, "body": body, "deal_id": d.map(|d| d.id.clone())}),
        );
        let verb = if draft { "drafting" } else { "writing" };
        return Some(match d {
            Some(d) => OfflinePlan {
                text: format!(
                    "Looking up {} first, then {verb} to {} <{}>.",
                    d.name, c.name, c.email
                ),
                calls: one("get_deal", json!({"deal_id": d.id})),
                then: vec![write],
            },
            None => OfflinePlan {
                text: format!("{} to {} <{}>.", capitalise(verb), c.name, c.email),
                calls: write,
                then: vec![],
            },
        });
    }
    let d = deal.filter(|_| {
        has(&[
            "going on",
            "status",
            "how is",
            "how's",
            "hows",
            "tell me",
            "update",
            "news",
            "where are we",
            "what about",
            "?",
        ])
    })?;
    let days = (s.now - d.last_touch).max(0) / DAY;
    let mut then = vec![];
    let mut text = format!(
        "Looking up {} and your calendar for the next two weeks.",
        d.name
    );
    if days >= STALE_DAYS
        && let Some(c) = contact_for(d, &s.contacts)
    {
        let first = first_name(c);
        text.push_str(&format!(
            " It has had no touch in {days} days, so I will draft a follow-up to {} for you to review.",
            c.name
        ));
        then.push(one(
            "draft_email",
            json!({
                "to": [c.email],
                "subject": format!("Following up on {}", d.name),
                "body": format!("Hi {first},\n\nIt has been a little while since we spoke about {}. Do you have 20 minutes this week to pick it up?\n\nBest regards", d.name),
                "deal_id": d.id,
            }),
        ));
    }
    Some(OfflinePlan {
        text,
        calls: vec![
            ("get_deal".into(), json!({"deal_id": d.id})),
            (
                "check_calendar".into(),
                json!({"from": s.now, "to": s.now + 14 * DAY}),
            ),
        ],
        then,
    })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
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
        let n = req.messages.len();
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
            // A chain goes on with its next round, unless a step failed (then the person
            // decides what next, as they would with a model).
            let (asked, rounds_done) = asked_and_rounds(&req.messages);
            let plan = plan_chat(&asked, &self.snapshot);
            let failed = results.iter().any(|(_, err)| *err);
            match plan.then.get(rounds_done.saturating_sub(1)) {
                Some(next) if !failed => {
                    for (i, (name, input)) in next.iter().enumerate() {
                        content.push(ContentBlock::ToolUse {
                            id: format!("offline_{n}_{i}"),
                            name: name.clone(),
                            input: input.clone(),
                        });
                    }
                    StopReason::ToolUse
                }
                _ => StopReason::EndTurn,
            }
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

/// The person's last typed message, and how many rounds of tool results came back since.
fn asked_and_rounds(messages: &[crate::llm::Message]) -> (String, usize) {
    let mut rounds = 0;
    for m in messages.iter().rev() {
        if m.role != Role::User {
            continue;
        }
        let text: Vec<&str> = m
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        if m.content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolResult { .. }))
        {
            rounds += 1;
        } else if !text.is_empty() {
            return (text.join(" "), rounds);
        }
    }
    (String::new(), rounds)
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
