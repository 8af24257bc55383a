#![allow(clippy::unwrap_used)]
//! The offline planner: deterministic, labelled rules over the demo pipeline, chat
//! intents that become the same tool calls a model would make, and the offline model
//! driven through the real FSM and consent gate.

use dealflow::agent::offline::{self, OFFLINE_LABEL, OfflineModel};
use dealflow::agent::suggest::{CalendarEntry, Snapshot};
use dealflow::agent::{self as ag, tools};
use dealflow::core::agent::{Agent, Event, GateOutcome, Io, Phase, TurnEnd};
use dealflow::core::domain::{ActionKind, ActionParams, ActionState, Surface};
use dealflow::core::permissions::Permissions;
use dealflow::llm::{LanguageModel, TurnRequest};
use dealflow::sandbox::demo;
use serde_json::json;

const NOW: i64 = 1_800_000_000_000;

fn snap(existing: bool, calendar: Option<Vec<CalendarEntry>>) -> Snapshot {
    Snapshot {
        now: NOW,
        deals: demo::deals(NOW),
        contacts: demo::contacts(),
        calendar,
        inbox: None,
        utc_offset_s: 0,
        existing: if existing {
            demo::suggestions(NOW)
        } else {
            vec![]
        },
    }
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("off-{n}")
    }
}

#[test]
fn rules_are_deterministic_labelled_and_proposals_only() {
    let s = snap(false, Some(vec![]));
    let a = offline::suggest_offline(&s, &mut ids());
    let b = offline::suggest_offline(&s, &mut ids());
    assert_eq!(a, b);
    assert!(a.rejected.is_empty(), "{:?}", a.rejected);
    let got: Vec<(ActionKind, String)> = a
        .actions
        .iter()
        .map(|x| (x.kind(), x.params.target()))
        .collect();
    assert_eq!(
        got,
        vec![
            // Acme: negotiation, 9 days untouched.
            (ActionKind::SendEmail, "wile@acme.example".to_string()),
            // Globex: proposal, no meeting on the calendar.
            (
                ActionKind::ScheduleMeeting,
                "hank@globex.example".to_string()
            ),
            // Initech: 15 days.
            (ActionKind::SendEmail, "bill@initech.example".to_string()),
            // Hooli: 21 days.
            (ActionKind::SendEmail, "gavin@hooli.example".to_string()),
            // Stark: proposal, no meeting.
            (
                ActionKind::ScheduleMeeting,
                "pepper@stark.example".to_string()
            ),
        ]
    );
    for x in &a.actions {
        assert_eq!(x.state, ActionState::Proposed);
        assert_eq!(x.surface, Surface::ActionCenter);
        assert!(
            x.justification.starts_with(OFFLINE_LABEL),
            "{}",
            x.justification
        );
        assert!(x.title.starts_with("[offline]"));
        assert!((0.0..=1.0).contains(&x.confidence));
        x.params.validate().unwrap();
    }
    if let ActionParams::SendEmail(e) = &a.actions[2].params {
        assert_eq!(e.deal_id.as_deref(), Some("deal-initech"));
    } else {
        panic!()
    }
}

#[test]
fn rules_respect_the_calendar_and_pending_actions() {
    // A meeting with Hank is booked: no schedule proposal for Globex.
    let cal = vec![CalendarEntry {
        title: "Globex".into(),
        start: NOW + 3_600_000,
        end: NOW + 7_200_000,
        attendees: vec!["HANK@globex.example".into()],
    }];
    let s = snap(true, Some(cal));
    let out = offline::suggest_offline(&s, &mut ids());
    let targets: Vec<String> = out.actions.iter().map(|a| a.params.target()).collect();
    assert!(!targets.contains(&"hank@globex.example".to_string()));
    // Demo suggestions already cover Bill and Pepper: deduped with a reason.
    assert!(!targets.contains(&"bill@initech.example".to_string()));
    assert!(!targets.contains(&"pepper@stark.example".to_string()));
    assert_eq!(out.rejected.len(), 2);
    assert!(
        out.rejected
            .iter()
            .all(|r| r.reason.starts_with("duplicate"))
    );
}

#[test]
fn chat_intents_become_registry_tool_calls() {
    let s = snap(false, None);
    let cases = [
        (
            "show deal acme",
            "get_deal",
            json!({"deal_id": "deal-acme"}),
        ),
        ("Show Globex", "get_deal", json!({"deal_id": "deal-globex"})),
        (
            "check calendar",
            "check_calendar",
            json!({"from": NOW, "to": NOW + 7 * 86_400_000}),
        ),
        (
            "create deal Wayne Enterprises for $900K",
            "create_deal",
            json!({"name": "Wayne Enterprises", "account": "Wayne Enterprises", "amount_cents": 90_000_000}),
        ),
        (
            "close deal umbrella as won",
            "close_deal",
            json!({"deal_id": "deal-umbrella", "won": true, "amount_cents": 12_000_000}),
        ),
        ("list deals", "list_deals", json!({})),
    ];
    for (text, tool, input) in cases {
        let plan = offline::plan_chat(text, &s);
        assert!(plan.text.starts_with(OFFLINE_LABEL));
        assert_eq!(plan.calls, vec![(tool.to_string(), input)], "{text}");
        tools::parse_call(tool, &plan.calls[0].1).unwrap();
    }
    let plan = offline::plan_chat("draft follow-up to Bill", &s);
    assert_eq!(plan.calls[0].0, "draft_email");
    let p = tools::parse_call("draft_email", &plan.calls[0].1).unwrap();
    assert_eq!(p.target(), "bill@initech.example");
    assert!(
        offline::plan_chat("make me a sandwich", &s)
            .calls
            .is_empty()
    );
    assert!(offline::plan_chat("show deal nobody", &s).calls.is_empty());
    assert_eq!(offline::parse_amount_cents("1.2m"), Some(120_000_000));
    assert_eq!(offline::parse_amount_cents("75,000"), Some(7_500_000));
    assert_eq!(offline::parse_amount_cents("lots"), None);
}

#[tokio::test]
async fn offline_chat_runs_through_the_same_fsm_and_gate() {
    let model = OfflineModel::new(snap(false, None));
    let perms = Permissions::default();
    let mut agent = Agent::new(4);
    let mut fx: Vec<Io> = agent.handle(Event::UserMessage(
        "create deal Wayne Enterprises for $900K".into(),
    ));
    let mut gates = vec![];
    let mut executed = 0;
    while let Some(e) = fx.pop() {
        match e {
            Io::StartStream { messages, .. } => {
                let mut s = model.stream_turn(TurnRequest {
                    messages: ag::to_llm_messages(&messages),
                    ..Default::default()
                });
                while let Some(item) = s.next().await {
                    if let Some(ev) = ag::to_event(item) {
                        fx.extend(agent.handle(ev));
                    }
                }
            }
            Io::SubmitTool { call } => {
                let ev = ag::gate_event(&call, &perms, 1.0, None);
                if let Event::Gate { outcome, .. } = &ev {
                    gates.push(outcome.clone());
                }
                fx.extend(agent.handle(ev));
            }
            Io::Execute { .. } => executed += 1,
            _ => {}
        }
        if fx.is_empty()
            && let Phase::AwaitingConfirm { call, .. } = agent.phase().clone()
        {
            // The user declines.
            fx.extend(agent.handle(Event::Confirm {
                call_id: call.id,
                approve: false,
            }));
        }
    }
    assert_eq!(executed, 0);
    assert!(
        matches!(&gates[..], [GateOutcome::StepUp { reason, .. }] if reason.contains("$900,000"))
    );
    assert_eq!(agent.last_end(), Some(&TurnEnd::Completed));
    let last = agent.streaming_text();
    assert!(last.is_empty());
    let reply = match &agent.history().last().unwrap().blocks[0] {
        dealflow::core::agent::Block::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    };
    assert!(reply.starts_with(OFFLINE_LABEL), "{reply}");
    assert!(reply.contains("Not done"), "{reply}");
}

/// Without a key, the planner takes a person's own words: a verb anywhere, a deal or
/// contact named as they like, a day and time in plain words, and chains tools.
#[test]
fn chat_intents_in_plain_words_become_chains_of_tools() {
    let s = snap(false, None);
    // Status: the deal and the calendar at once, then (a stale deal) a draft to review.
    let p = offline::plan_chat("what's going on with acme?", &s);
    let names: Vec<&str> = p.calls.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["get_deal", "check_calendar"], "{p:?}");
    assert_eq!(p.calls[0].1["deal_id"], "deal-acme");
    assert_eq!(
        p.then.len(),
        1,
        "Acme is 9 days untouched: a follow-up is drafted"
    );
    assert_eq!(p.then[0][0].0, "draft_email");
    assert_eq!(p.then[0][0].1["to"][0], "wile@acme.example");
    // A deal touched two days ago gets no draft.
    let p = offline::plan_chat("how is globex doing", &s);
    assert_eq!(p.calls[0].1["deal_id"], "deal-globex");
    assert!(p.then.is_empty());
    // "email bill": the deal first, then the email (send, behind its step-up).
    let p = offline::plan_chat("email bill", &s);
    assert_eq!(p.calls[0].0, "get_deal");
    assert_eq!(p.then[0][0].0, "send_email");
    let email = tools::parse_call("send_email", &p.then[0][0].1).unwrap();
    assert_eq!(email.target(), "bill@initech.example");
    // A meeting on a named day and time: the calendar for that day, then the booking.
    // NOW is Fri 15 Jan 2027 08:00 UTC; next tuesday is 19 Jan.
    let p = offline::plan_chat("set up a meeting with bill next tuesday at 3pm", &s);
    assert_eq!(p.calls[0].0, "check_calendar");
    let m = tools::parse_call("schedule_meeting", &p.then[0][0].1).unwrap();
    match m {
        ActionParams::ScheduleMeeting {
            start,
            end,
            attendees,
            ..
        } => {
            assert_eq!(
                chrono::DateTime::from_timestamp_millis(start)
                    .unwrap()
                    .format("%a %d %b %H:%M")
                    .to_string(),
                "Tue 19 Jan 15:00"
            );
            assert_eq!(end - start, 30 * 60_000);
            assert_eq!(attendees, ["bill@initech.example"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(p.text.contains("Tue 19 Jan 15:00 UTC"), "{}", p.text);
    // Inbox.
    assert_eq!(
        offline::plan_chat("who wrote back?", &s).calls[0].0,
        "read_inbox"
    );
    // "billing" is not Bill; nothing named, nothing done.
    assert!(
        offline::plan_chat("email the billing team", &s)
            .calls
            .is_empty()
    );
}

#[test]
fn days_and_times_in_plain_words_are_read_in_the_persons_offset() {
    // Fri 15 Jan 2027 08:00 UTC.
    let at = |text: &str, offset: i32| {
        let (ms, said) = offline::requested_time(text, NOW, offset);
        (
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%a %d %H:%M")
                .to_string(),
            said,
        )
    };
    assert_eq!(at("tomorrow at 9am", 0).0, "Sat 16 09:00");
    assert_eq!(at("today at 15:30", 0).0, "Fri 15 15:30");
    assert_eq!(
        at("friday", 0).0,
        "Fri 22 10:00",
        "the coming one, not today"
    );
    assert_eq!(at("on thurs at 2 pm", 0).0, "Thu 21 14:00");
    assert_eq!(at("in 3 days", 0).0, "Mon 18 10:00");
    // No day: the next working day (Friday → Monday).
    assert_eq!(at("a call with bill", 0).0, "Mon 18 10:00");
    // 3pm at UTC+01:00 is 14:00 UTC, and it is said in the person's zone.
    let (utc, said) = at("tomorrow at 3pm", 3600);
    assert_eq!(utc, "Sat 16 14:00");
    assert_eq!(said, "Sat 16 Jan 15:00 UTC+01:00");
}
