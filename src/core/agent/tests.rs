//! Table-style: each step is an event in and the exact effects out; no IO, no async.

use super::*;
use serde_json::json;

fn call(id: &str, name: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        input: json!({"deal_id": "deal-acme"}),
    }
}

fn user(t: &str) -> ChatMessage {
    ChatMessage {
        role: Role::User,
        blocks: vec![Block::Text(t.into())],
    }
}

fn result(id: &str, content: &str, is_error: bool) -> Block {
    Block::ToolResult {
        tool_use_id: id.into(),
        content: content.into(),
        is_error,
    }
}

/// Runs the steps, checking the effects of each.
fn run(agent: &mut Agent, steps: Vec<(Event, Vec<Io>)>) {
    for (i, (ev, want)) in steps.into_iter().enumerate() {
        let label = format!("step {i}: {ev:?}");
        let got = agent.handle(ev);
        assert_eq!(got, want, "{label}");
    }
}

fn no_fx() -> Vec<Io> {
    vec![]
}

#[test]
fn text_only_turn() {
    let mut a = Agent::new(4);
    run(
        &mut a,
        vec![
            (
                Event::UserMessage("hi".into()),
                vec![Io::StartStream {
                    messages: vec![user("hi")],
                    iteration: 1,
                }],
            ),
            (Event::TextDelta("Hel".into()), no_fx()),
            (Event::TextDelta("lo".into()), no_fx()),
            (
                Event::StreamEnd(StopKind::EndTurn),
                vec![Io::TurnEnded(TurnEnd::Completed)],
            ),
        ],
    );
    assert_eq!(a.phase(), &Phase::Idle);
    assert_eq!(
        a.history()[1],
        ChatMessage {
            role: Role::Assistant,
            blocks: vec![Block::Text("Hello".into())]
        }
    );
}

#[test]
fn allowed_read_runs_and_its_result_goes_back_to_the_model() {
    let mut a = Agent::new(4);
    let c = call("t1", "get_deal");
    run(
        &mut a,
        vec![
            (
                Event::UserMessage("show acme".into()),
                vec![Io::StartStream {
                    messages: vec![user("show acme")],
                    iteration: 1,
                }],
            ),
            (Event::ToolUse(c.clone()), no_fx()),
            (
                Event::StreamEnd(StopKind::ToolUse),
                vec![Io::SubmitTool { call: c.clone() }],
            ),
            (
                Event::Gate {
                    call_id: "t1".into(),
                    outcome: GateOutcome::Allow,
                },
                vec![Io::Execute {
                    call: c.clone(),
                    consent: ConsentGiven::Autonomous,
                }],
            ),
        ],
    );
    let fx = a.handle(Event::ToolResult {
        call_id: "t1".into(),
        result: Ok("Acme: $75,000".into()),
    });
    let expected_history = vec![
        user("show acme"),
        ChatMessage {
            role: Role::Assistant,
            blocks: vec![Block::ToolUse(c)],
        },
        ChatMessage {
            role: Role::User,
            blocks: vec![result("t1", "Acme: $75,000", false)],
        },
    ];
    assert_eq!(
        fx,
        vec![Io::StartStream {
            messages: expected_history,
            iteration: 2
        }]
    );
    assert_eq!(a.phase(), &Phase::Streaming);
}

#[test]
fn step_up_declined_is_an_error_result_and_never_executed() {
    let mut a = Agent::new(4);
    let c = call("t1", "send_email");
    a.handle(Event::UserMessage("email them".into()));
    a.handle(Event::ToolUse(c.clone()));
    assert_eq!(
        a.handle(Event::StreamEnd(StopKind::ToolUse)),
        vec![Io::SubmitTool { call: c.clone() }]
    );
    assert_eq!(
        a.handle(Event::Gate {
            call_id: "t1".into(),
            outcome: GateOutcome::StepUp {
                prompt: "Send an email to x@evil.example".into(),
                reason: "chat: confirm inline".into(),
            },
        }),
        no_fx()
    );
    assert_eq!(
        a.pending_prompt(),
        Some(("Send an email to x@evil.example", "chat: confirm inline"))
    );
    // A stale confirmation for another call changes nothing.
    assert_eq!(
        a.handle(Event::Confirm {
            call_id: "other".into(),
            approve: true
        }),
        no_fx()
    );
    let fx = a.handle(Event::Confirm {
        call_id: "t1".into(),
        approve: false,
    });
    assert!(
        !fx.iter().any(|e| matches!(e, Io::Execute { .. })),
        "{fx:?}"
    );
    // What was filed for it is withdrawn, then the model hears the refusal.
    assert_eq!(
        fx[0],
        Io::Decline {
            call_id: "t1".into()
        }
    );
    let Io::StartStream {
        messages,
        iteration,
    } = &fx[1]
    else {
        panic!("{fx:?}")
    };
    assert_eq!(*iteration, 2);
    assert_eq!(
        messages.last().unwrap().blocks,
        vec![result("t1", DECLINED, true)]
    );
    assert_eq!(fx.len(), 2);
}

#[test]
fn step_up_approved_executes_with_stepped_up_consent() {
    let mut a = Agent::new(4);
    let c = call("t1", "create_deal");
    a.handle(Event::UserMessage("create".into()));
    a.handle(Event::ToolUse(c.clone()));
    a.handle(Event::StreamEnd(StopKind::ToolUse));
    a.handle(Event::Gate {
        call_id: "t1".into(),
        outcome: GateOutcome::StepUp {
            prompt: "p".into(),
            reason: "r".into(),
        },
    });
    assert_eq!(
        a.handle(Event::Confirm {
            call_id: "t1".into(),
            approve: true
        }),
        vec![Io::Execute {
            call: c,
            consent: ConsentGiven::SteppedUp
        }]
    );
}

#[test]
fn refused_and_failed_calls_are_error_results_in_order() {
    let mut a = Agent::new(4);
    let (c1, c2) = (call("t1", "set_permissions"), call("t2", "get_deal"));
    a.handle(Event::UserMessage("x".into()));
    a.handle(Event::ToolUse(c1.clone()));
    a.handle(Event::ToolUse(c2.clone()));
    run(
        &mut a,
        vec![
            (
                Event::StreamEnd(StopKind::ToolUse),
                vec![Io::SubmitTool { call: c1 }],
            ),
            (
                Event::Gate {
                    call_id: "t1".into(),
                    outcome: GateOutcome::Refused {
                        reason: "unknown tool".into(),
                    },
                },
                vec![Io::SubmitTool { call: c2.clone() }],
            ),
            (
                Event::Gate {
                    call_id: "t2".into(),
                    outcome: GateOutcome::Allow,
                },
                vec![Io::Execute {
                    call: c2,
                    consent: ConsentGiven::Autonomous,
                }],
            ),
        ],
    );
    let fx = a.handle(Event::ToolResult {
        call_id: "t2".into(),
        result: Err("store offline".into()),
    });
    let Io::StartStream { messages, .. } = &fx[0] else {
        panic!()
    };
    assert_eq!(
        messages.last().unwrap().blocks,
        vec![
            result("t1", "Refused, not executed: unknown tool", true),
            result("t2", "Execution failed: store offline", true),
        ]
    );
}

#[test]
fn iteration_bound_stops_the_loop() {
    let mut a = Agent::new(2);
    let allow = |a: &mut Agent, id: &str| {
        a.handle(Event::ToolUse(call(id, "get_deal")));
        a.handle(Event::StreamEnd(StopKind::ToolUse));
        a.handle(Event::Gate {
            call_id: id.into(),
            outcome: GateOutcome::Allow,
        });
        a.handle(Event::ToolResult {
            call_id: id.into(),
            result: Ok("ok".into()),
        })
    };
    a.handle(Event::UserMessage("loop".into()));
    let fx = allow(&mut a, "t1");
    assert!(matches!(fx[..], [Io::StartStream { iteration: 2, .. }]));
    let fx = allow(&mut a, "t2");
    assert_eq!(fx, vec![Io::TurnEnded(TurnEnd::IterationLimit(2))]);
    assert!(a.is_idle());
    // The last results are kept, so the history stays valid for the next turn.
    assert_eq!(
        a.history().last().unwrap().blocks,
        vec![result("t2", "ok", false)]
    );
    // And a new user message starts a fresh count.
    let fx = a.handle(Event::UserMessage("again".into()));
    assert!(matches!(fx[..], [Io::StartStream { iteration: 1, .. }]));
}

#[test]
fn cancel_during_ciba_wait_cancels_the_device_request_and_never_executes() {
    let mut a = Agent::new(4);
    let c = call("t1", "close_deal");
    a.handle(Event::UserMessage("close acme".into()));
    a.handle(Event::ToolUse(c.clone()));
    a.handle(Event::StreamEnd(StopKind::ToolUse));
    assert_eq!(
        a.handle(Event::Gate {
            call_id: "t1".into(),
            outcome: GateOutcome::Ciba {
                prompt: "Close deal deal-acme as WON".into(),
                reason: "closing as won".into(),
                approver: "team lead".into(),
                binding_message: "dealflow: close acme".into(),
                deadline: 10_000,
            },
        }),
        no_fx()
    );
    assert_eq!(a.ciba_deadline(), Some(10_000));
    assert_eq!(a.handle(Event::Tick(9_999)), no_fx());
    assert_eq!(
        a.handle(Event::Cancel),
        vec![
            Io::CancelCiba {
                call_id: "t1".into()
            },
            Io::TurnEnded(TurnEnd::Cancelled)
        ]
    );
    assert!(a.is_idle());
    assert_eq!(a.ciba_deadline(), None);
    // A late approval from the phone is ignored: nothing executes.
    assert_eq!(
        a.handle(Event::CibaResolved {
            call_id: "t1".into(),
            approved: true,
            detail: "approved".into()
        }),
        no_fx()
    );
    assert_eq!(
        a.history().last().unwrap().blocks,
        vec![result("t1", CANCELLED, true)]
    );
}

#[test]
fn ciba_expiry_and_approval() {
    let mut a = Agent::new(4);
    let c = call("t1", "close_deal");
    let ciba = GateOutcome::Ciba {
        prompt: "p".into(),
        reason: "r".into(),
        approver: "user".into(),
        binding_message: "b".into(),
        deadline: 500,
    };
    a.handle(Event::UserMessage("x".into()));
    a.handle(Event::ToolUse(c.clone()));
    a.handle(Event::StreamEnd(StopKind::ToolUse));
    a.handle(Event::Gate {
        call_id: "t1".into(),
        outcome: ciba.clone(),
    });
    let fx = a.handle(Event::Tick(500));
    assert_eq!(
        fx[0],
        Io::CancelCiba {
            call_id: "t1".into()
        }
    );
    assert!(matches!(fx[1], Io::StartStream { iteration: 2, .. }));

    let mut a = Agent::new(4);
    a.handle(Event::UserMessage("x".into()));
    a.handle(Event::ToolUse(c.clone()));
    a.handle(Event::StreamEnd(StopKind::ToolUse));
    a.handle(Event::Gate {
        call_id: "t1".into(),
        outcome: ciba,
    });
    assert_eq!(
        a.handle(Event::CibaResolved {
            call_id: "t1".into(),
            approved: true,
            detail: "ok".into()
        }),
        vec![Io::Execute {
            call: c,
            consent: ConsentGiven::Device
        }]
    );
}

#[test]
fn cancel_while_streaming_aborts_and_keeps_only_text() {
    let mut a = Agent::new(4);
    a.handle(Event::UserMessage("x".into()));
    a.handle(Event::TextDelta("Sure, sending".into()));
    a.handle(Event::ToolUse(call("t1", "send_email")));
    assert_eq!(
        a.handle(Event::Cancel),
        vec![Io::AbortStream, Io::TurnEnded(TurnEnd::Cancelled)]
    );
    assert_eq!(
        a.history().last().unwrap().blocks,
        vec![Block::Text("Sure, sending".into())]
    );
    // Late stream events after Esc do nothing.
    assert_eq!(a.handle(Event::TextDelta("late".into())), no_fx());
    assert_eq!(a.handle(Event::StreamEnd(StopKind::EndTurn)), no_fx());
    assert_eq!(a.history().len(), 2);
}

#[test]
fn cancel_while_confirming_answers_every_open_call() {
    let mut a = Agent::new(4);
    a.handle(Event::UserMessage("x".into()));
    a.handle(Event::ToolUse(call("t1", "send_email")));
    a.handle(Event::ToolUse(call("t2", "post_slack")));
    a.handle(Event::StreamEnd(StopKind::ToolUse));
    a.handle(Event::Gate {
        call_id: "t1".into(),
        outcome: GateOutcome::StepUp {
            prompt: "p".into(),
            reason: "r".into(),
        },
    });
    assert_eq!(
        a.handle(Event::Cancel),
        vec![
            Io::Decline {
                call_id: "t1".into()
            },
            Io::TurnEnded(TurnEnd::Cancelled)
        ]
    );
    assert_eq!(
        a.history().last().unwrap().blocks,
        vec![result("t1", CANCELLED, true), result("t2", CANCELLED, true)]
    );
}

#[test]
fn stream_failure_drops_the_partial_message() {
    let mut a = Agent::new(4);
    a.handle(Event::UserMessage("x".into()));
    a.handle(Event::ToolUse(call("t1", "send_email")));
    assert_eq!(
        a.handle(Event::StreamFailed("529 overloaded".into())),
        vec![Io::TurnEnded(TurnEnd::Failed("529 overloaded".into()))]
    );
    assert_eq!(a.history(), &[user("x")]);
    // Out-of-phase gate for the dropped call: ignored.
    assert_eq!(
        a.handle(Event::Gate {
            call_id: "t1".into(),
            outcome: GateOutcome::Allow
        }),
        no_fx()
    );
}

#[test]
fn user_message_while_busy_is_ignored() {
    let mut a = Agent::new(4);
    a.handle(Event::UserMessage("x".into()));
    let before = a.clone();
    assert_eq!(a.handle(Event::UserMessage("y".into())), no_fx());
    assert_eq!(a, before);
}
