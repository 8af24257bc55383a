//! The chat intents: a message's command ("email Bill", "close deal X as won") or its
//! loose wording, turned into the tool calls a model would make, chained when needed.

use super::parse::{
    after, find_contact, find_deal, mentioned_contact, mentioned_deal, parse_amount_cents,
    requested_time,
};
use super::{DAY, HOUR, OFFLINE_LABEL, OfflinePlan, STALE_DAYS, contact_for, first_name};
use crate::agent::suggest::Snapshot;
use crate::core::domain::format_money;
use serde_json::{Value, json};

const HELP: &str = "I understand, naming a deal or a contact as you like: what's going on with Acme? · email Bill · draft a follow-up to Bill · set up a meeting with Bill next tuesday at 3pm · who wrote back? · list deals · check calendar · create deal X for $N · close deal X as won|lost.";

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
