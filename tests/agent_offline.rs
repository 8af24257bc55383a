#![allow(clippy::unwrap_used)]
//! The offline planner: deterministic, labelled rules over the demo pipeline, chat
//! intents that become the same tool calls a model would make, and the offline model
//! driven through the real FSM and consent gate.

use dealflow::agent::offline::{self, OFFLINE_LABEL, OfflineModel};
use dealflow::agent::suggest::{CalendarEntry, Snapshot};
use dealflow::agent::{self as ag, tools};
use dealflow::core::agent::{Agent, Effect, Event, GateOutcome, Phase, TurnEnd};
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
    let mut fx: Vec<Effect> = agent.handle(Event::UserMessage(
        "create deal Wayne Enterprises for $900K".into(),
    ));
    let mut gates = vec![];
    let mut executed = 0;
    while let Some(e) = fx.pop() {
        match e {
            Effect::StartStream { messages, .. } => {
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
            Effect::SubmitTool { call } => {
                let ev = ag::gate_event(&call, &perms, 1.0, None);
                if let Event::Gate { outcome, .. } = &ev {
                    gates.push(outcome.clone());
                }
                fx.extend(agent.handle(ev));
            }
            Effect::Execute { .. } => executed += 1,
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
