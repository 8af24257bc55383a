#![allow(clippy::unwrap_used)]
//! The Anthropic client against the fake Messages API over real loopback HTTP.

use dealflow::llm::{
    AnthropicClient, AnthropicConfig, ApiKey, ContentBlock, LanguageModel, LlmError, LlmEvent,
    Message, RetryPolicy, StopReason, Tool, TurnRequest,
};
use dealflow::sandbox::fake_llm::{FakeLlm, Reply, TurnBuilder};
use serde_json::json;
use std::time::Duration;

/// What the client's retries waited, recorded (the waits are skipped: nothing here
/// needs the time to pass, and the tests assert the record, never the clock).
fn recorded() -> (
    dealflow::wall::Wait,
    std::sync::Arc<std::sync::Mutex<Vec<Duration>>>,
) {
    let waited = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = waited.clone();
    let wait = dealflow::wall::Wait(std::sync::Arc::new(move |d| {
        log.lock().unwrap().push(d);
        Box::pin(std::future::ready(()))
    }));
    (wait, waited)
}

/// [`client`] whose retries record their waits instead of waiting.
fn recording_client(
    fake: &FakeLlm,
) -> (
    AnthropicClient,
    std::sync::Arc<std::sync::Mutex<Vec<Duration>>>,
) {
    let (wait, waited) = recorded();
    let mut cfg = config(fake);
    cfg.retry.wait = wait;
    (AnthropicClient::new(cfg).unwrap(), waited)
}

fn client(fake: &FakeLlm) -> AnthropicClient {
    AnthropicClient::new(config(fake)).unwrap()
}

fn config(fake: &FakeLlm) -> AnthropicConfig {
    AnthropicConfig {
        base_url: fake.base_url(),
        model: "claude-test-model".into(),
        max_tokens: 512,
        read_timeout: std::time::Duration::from_secs(120),
        api_key: ApiKey::new("sk-ant-test-key").unwrap(),
        retry: RetryPolicy {
            max_retries: 2,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(60),
            ..Default::default()
        },
    }
}

fn req(text: &str) -> TurnRequest {
    TurnRequest {
        system: Some("be brief".into()),
        messages: vec![Message::user_text(text)],
        tools: vec![Tool {
            name: "get_deal".into(),
            description: "Look up a deal".into(),
            input_schema: json!({"type":"object","properties":{"deal_id":{"type":"string"}},"required":["deal_id"]}),
        }],
        tool_choice: None,
    }
}

#[tokio::test]
async fn streams_text_and_tool_use_and_sends_the_right_headers() {
    let fake = FakeLlm::start(vec![
        TurnBuilder::new()
            .text(&["Let me ", "look."])
            .tool_use(
                "toolu_1",
                "get_deal",
                &json!({"deal_id":"deal-acme","note":"ünïcode"}),
            )
            .unknown_block("server_thinking_v9")
            .build(),
    ])
    .await
    .unwrap();
    let c = client(&fake);
    let mut s = c.stream_turn(req("show acme"));
    let mut texts = vec![];
    let mut tools = vec![];
    let mut done = None;
    while let Some(ev) = s.next().await {
        match ev.unwrap() {
            LlmEvent::TextDelta(t) => texts.push(t),
            LlmEvent::ToolUse { id, name, input } => tools.push((id, name, input)),
            LlmEvent::Done(t) => done = Some(t),
            LlmEvent::Started { model, .. } => assert_eq!(model, "claude-test-model"),
        }
    }
    assert_eq!(texts.concat(), "Let me look.");
    assert_eq!(
        tools,
        vec![(
            "toolu_1".to_string(),
            "get_deal".to_string(),
            json!({"deal_id":"deal-acme","note":"ünïcode"})
        )]
    );
    let done = done.unwrap();
    assert_eq!(done.stop_reason, StopReason::ToolUse);
    assert_eq!(done.content.len(), 3);
    assert_eq!(done.content[2].type_name(), "server_thinking_v9");
    assert_eq!(done.request_id.as_deref(), Some("req_fake_0001"));

    let r = &fake.requests()[0];
    assert_eq!(r.header("x-api-key"), Some("sk-ant-test-key"));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.body["model"], "claude-test-model");
    assert_eq!(r.body["max_tokens"], 512);
    assert_eq!(r.body["stream"], true);
    // System prompt and tools carry prompt-cache breakpoints: they repeat every turn.
    assert_eq!(r.body["system"][0]["text"], "be brief");
    assert_eq!(r.body["system"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(r.body["tools"][0]["name"], "get_deal");
    let tools = r.body["tools"].as_array().unwrap();
    assert_eq!(tools.last().unwrap()["cache_control"]["type"], "ephemeral");
    assert_eq!(r.body["messages"][0]["content"][0]["text"], "show acme");
}

#[tokio::test]
async fn tool_result_round_trip_keeps_is_error_and_unknown_blocks() {
    let fake = FakeLlm::start(vec![Reply::text("Done.")]).await.unwrap();
    let c = client(&fake);
    let history = vec![
        Message::user_text("send it"),
        Message {
            role: dealflow::llm::Role::Assistant,
            content: vec![
                ContentBlock::ToolUse {
                    id: "toolu_9".into(),
                    name: "send_email".into(),
                    input: json!({"to":["a@b.example"]}),
                },
                ContentBlock::Other(json!({"type":"mystery","x":1})),
            ],
        },
        Message {
            role: dealflow::llm::Role::User,
            content: vec![ContentBlock::tool_result(
                "toolu_9",
                "the user declined",
                true,
            )],
        },
    ];
    let turn = c
        .stream_turn(TurnRequest {
            messages: history,
            ..Default::default()
        })
        .collect()
        .await
        .unwrap();
    assert_eq!(turn.text(), "Done.");
    let body = &fake.requests()[0].body;
    assert_eq!(
        body["messages"][1]["content"][1],
        json!({"type":"mystery","x":1})
    );
    assert_eq!(
        body["messages"][2]["content"][0],
        json!({"type":"tool_result","tool_use_id":"toolu_9","content":"the user declined","is_error":true})
    );
    // Blocks read back from the wire decode the same way.
    let back: Vec<ContentBlock> =
        serde_json::from_value(body["messages"][2]["content"].clone()).unwrap();
    assert_eq!(
        back[0],
        ContentBlock::tool_result("toolu_9", "the user declined", true)
    );
}

#[tokio::test]
async fn a_400_is_typed_with_request_id_and_not_retried() {
    let fake = FakeLlm::start(vec![
        Reply::error(
            400,
            "invalid_request_error",
            "messages: roles must alternate",
        ),
        Reply::text("never reached"),
    ])
    .await
    .unwrap();
    let err = client(&fake)
        .stream_turn(req("x"))
        .collect()
        .await
        .unwrap_err();
    match &err {
        LlmError::Api {
            status,
            error_type,
            message,
            request_id,
            attempts,
        } => {
            assert_eq!(*status, 400);
            assert_eq!(error_type, "invalid_request_error");
            assert_eq!(message, "messages: roles must alternate");
            assert_eq!(request_id.as_deref(), Some("req_fake_0001"));
            assert_eq!(*attempts, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("req_fake_0001"));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_429_honours_retry_after_ms_then_succeeds() {
    let fake = FakeLlm::start(vec![Reply::rate_limited_ms(150), Reply::text("ok")])
        .await
        .unwrap();
    let (c, waited) = recording_client(&fake);
    let turn = c.stream_turn(req("x")).collect().await.unwrap();
    assert_eq!(turn.text(), "ok");
    let r = fake.requests();
    assert_eq!(r.len(), 2);
    // The backoff base is 1 ms: the wait is the server's hint.
    assert_eq!(*waited.lock().unwrap(), vec![Duration::from_millis(150)]);
    assert_eq!(r[1].header("x-stainless-retry-count"), Some("1"));
}

#[tokio::test]
async fn a_429_honours_retry_after_seconds() {
    let fake = FakeLlm::start(vec![Reply::rate_limited(1), Reply::text("ok")])
        .await
        .unwrap();
    let (c, waited) = recording_client(&fake);
    let turn = c.stream_turn(req("x")).collect().await.unwrap();
    assert_eq!(turn.text(), "ok");
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(*waited.lock().unwrap(), vec![Duration::from_secs(1)]);
}

#[tokio::test]
async fn an_absurd_retry_after_is_bounded() {
    // retry-after: 3600 exceeds the 60 s cap, so the (1 ms) backoff applies instead.
    let fake = FakeLlm::start(vec![Reply::rate_limited(3600), Reply::text("ok")])
        .await
        .unwrap();
    let (c, waited) = recording_client(&fake);
    let turn = c.stream_turn(req("x")).collect().await.unwrap();
    assert_eq!(turn.text(), "ok");
    let waits = waited.lock().unwrap().clone();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(
        waits[0] <= Duration::from_millis(5),
        "the backoff, not the hour: {waits:?}"
    );
}

#[tokio::test]
async fn a_529_is_retried_and_gives_up_after_the_bound() {
    let fake = FakeLlm::start(vec![Reply::overloaded(), Reply::text("ok")])
        .await
        .unwrap();
    assert_eq!(
        client(&fake)
            .stream_turn(req("x"))
            .collect()
            .await
            .unwrap()
            .text(),
        "ok"
    );

    let fake = FakeLlm::start(vec![
        Reply::overloaded(),
        Reply::overloaded(),
        Reply::overloaded(),
        Reply::text("never"),
    ])
    .await
    .unwrap();
    let err = client(&fake)
        .stream_turn(req("x"))
        .collect()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(529));
    assert!(
        matches!(err, LlmError::Api { attempts: 3, ref error_type, .. } if error_type == "overloaded_error")
    );
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(fake.remaining(), 1);
}

#[tokio::test]
async fn a_mid_stream_error_before_content_is_retried_after_content_is_surfaced() {
    let fake = FakeLlm::start(vec![
        TurnBuilder::new()
            .then_error("overloaded_error", "Overloaded")
            .build(),
        Reply::text("second try"),
    ])
    .await
    .unwrap();
    let turn = client(&fake).stream_turn(req("x")).collect().await.unwrap();
    assert_eq!(turn.text(), "second try");
    assert_eq!(fake.requests().len(), 2);

    let fake = FakeLlm::start(vec![
        TurnBuilder::new()
            .text(&["half a sen"])
            .then_error("overloaded_error", "Overloaded")
            .build(),
        Reply::text("must not be used"),
    ])
    .await
    .unwrap();
    let mut s = client(&fake).stream_turn(req("x"));
    let mut saw_text = false;
    let mut err = None;
    while let Some(ev) = s.next().await {
        match ev {
            Ok(LlmEvent::TextDelta(_)) => saw_text = true,
            Ok(_) => {}
            Err(e) => err = Some(e),
        }
    }
    assert!(saw_text);
    match err.unwrap() {
        LlmError::Stream {
            error_type,
            request_id,
            ..
        } => {
            assert_eq!(error_type, "overloaded_error");
            assert_eq!(request_id.as_deref(), Some("req_fake_0001"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        fake.requests().len(),
        1,
        "text was shown, so no silent retry"
    );
}

#[tokio::test]
async fn the_api_key_is_redacted_in_debug() {
    let k = ApiKey::new("sk-ant-secret").unwrap();
    assert!(!format!("{k:?}").contains("secret"));
    let fake = FakeLlm::start(vec![]).await.unwrap();
    assert!(!format!("{:?}", client(&fake)).contains("sk-ant"));
}

#[tokio::test]
async fn cancel_stops_the_stream_and_no_stale_events_follow() {
    let slow = TurnBuilder::new()
        .text(&["one ", "two ", "three ", "four ", "five"])
        .build()
        .slow(Duration::from_millis(40));
    let fake = FakeLlm::start(vec![slow]).await.unwrap();
    let mut s = client(&fake).stream_turn(req("x"));
    loop {
        if let LlmEvent::TextDelta(_) = s.next().await.unwrap().unwrap() {
            break;
        }
    }
    s.cancel();
    let mut rest = vec![];
    while let Some(ev) = s.next().await {
        rest.push(ev);
    }
    // Stopped, not drained: the last chunk ("five") never arrives.
    assert!(
        !rest
            .iter()
            .any(|e| matches!(e, Ok(LlmEvent::TextDelta(t)) if t.contains("five"))),
        "{rest:?}"
    );
    assert!(
        !rest.iter().any(|e| matches!(e, Ok(LlmEvent::Done(_)))),
        "{rest:?}"
    );
    assert!(
        matches!(rest.last(), Some(Err(LlmError::Cancelled))),
        "{rest:?}"
    );
}
