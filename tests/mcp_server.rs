//! The MCP server in process over a duplex pipe, with an rmcp client: every tool, the
//! device gate on writes, the pending answer, cancellation, and audit.

#![allow(clippy::unwrap_used)]

use dealflow::connectors::Endpoints;
use dealflow::core::audit::NewAuditEntry;
use dealflow::core::domain::Surface;
use dealflow::core::permissions::PermissionChange;
use dealflow::mcp::McpServer;
use dealflow::runtime::pipeline::Pipeline;
use dealflow::sandbox::wiring::{SandboxWiring, wire_fast_sandbox};
use dealflow::store::{SqliteStore, Store};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

struct Rig {
    _dir: tempfile::TempDir,
    w: SandboxWiring,
    store: Arc<dyn Store>,
    client: RunningService<RoleClient, ()>,
}

async fn rig(wait_bound: Duration) -> Rig {
    rig_with(wait_bound, false).await
}

/// With `salesforce`, the CRM is the sandbox's emulated Salesforce (nothing seeded in
/// the store: the deals are the org's).
async fn rig_with(wait_bound: Duration, salesforce: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    if !salesforce {
        dealflow::sandbox::demo::seed(store.as_ref(), 1).unwrap();
    }
    let w = wire_fast_sandbox().await.unwrap();
    let base = w.sandbox.base_url();
    let mut p = Pipeline::new(
        store.clone(),
        w.creds.clone(),
        Endpoints::sandbox(&base),
        "rep".into(),
    );
    if salesforce {
        use dealflow::connectors::salesforce::{Salesforce, Settings};
        p = p.with_crm(dealflow::runtime::crm::Crm::Salesforce(Arc::new(
            Salesforce::new(Settings::new(&format!("{base}/salesforce"))),
        )));
    }
    let p = Arc::new(p);
    let mut server = McpServer::new(p, w.device.clone(), wait_bound);
    server.progress_every = Duration::from_millis(50);
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = ().serve(client_io).await.unwrap();
    Rig {
        _dir: dir,
        w,
        store,
        client,
    }
}

async fn call(r: &Rig, name: &str, args: Value) -> CallToolResult {
    let args = args.as_object().cloned().unwrap_or_default();
    r.client
        .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args))
        .await
        .unwrap()
}

fn text(res: &CallToolResult) -> String {
    res.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

fn events(r: &Rig) -> Vec<(String, String, String)> {
    r.store
        .audit_page(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.outcome, e.actor))
        .collect()
}

/// Answers the first device request that appears, once.
fn phone(r: &Rig, approve: bool) -> tokio::task::JoinHandle<String> {
    let state = r.w.sandbox.state.clone();
    tokio::spawn(async move {
        for _ in 0..500 {
            if let Some(req) = state.phone_pending().into_iter().next() {
                if approve {
                    state.phone_approve(&req.id);
                } else {
                    state.phone_deny(&req.id);
                }
                return req.binding_message;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        String::new()
    })
}

#[tokio::test]
async fn tools_are_listed_with_truthful_annotations() {
    let r = rig(Duration::from_secs(5)).await;
    let tools = r.client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 14);
    let get = |n: &str| {
        tools
            .iter()
            .find(|t| t.name == n)
            .unwrap()
            .annotations
            .clone()
            .unwrap()
    };
    assert_eq!(get("list_deals").read_only_hint, Some(true));
    assert_eq!(get("read_inbox").read_only_hint, Some(true));
    assert_eq!(get("send_email").read_only_hint, Some(false));
    assert_eq!(get("send_email").destructive_hint, Some(true));
    assert_eq!(get("send_email").open_world_hint, Some(true));
    assert_eq!(get("create_deal").destructive_hint, Some(false));
    assert_eq!(get("close_deal").destructive_hint, Some(true));
    assert!(!tools.iter().any(|t| t.name.contains("permission")));
    // With MCP writes off in Permissions, only reads are offered.
    r.store
        .change_permissions(
            &PermissionChange::SetMcpWrites { enabled: false },
            NewAuditEntry {
                ts: 1,
                actor: "user:t".into(),
                surface: Some(Surface::Cli),
                event: "permissions.changed".into(),
                action_id: None,
                outcome: "ok".into(),
                detail: json!({}),
            },
        )
        .unwrap();
    let tools = r.client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 7, "the six reads and the read-only inbox");
    let res = call(
        &r,
        "send_email",
        json!({"to": ["a@b.example"], "subject": "x", "body": "y"}),
    )
    .await;
    assert_eq!(res.is_error, Some(true));
    assert!(
        text(&res).contains("MCP write tools are disabled"),
        "{}",
        text(&res)
    );
}

#[tokio::test]
async fn every_read_runs_at_once_and_is_audited_with_the_client() {
    let r = rig(Duration::from_secs(5)).await;
    for (tool, args, want) in [
        ("list_deals", json!({}), "deal-stark"),
        (
            "list_deals",
            json!({"stage": "negotiation"}),
            "deal-umbrella",
        ),
        (
            "get_deal",
            json!({"deal_id": "deal-acme"}),
            "Acme platform renewal",
        ),
        (
            "search_contacts",
            json!({"query": "pepper"}),
            "pepper@stark.example",
        ),
        (
            "check_calendar",
            json!({"from": 1_700_000_000_000i64, "to": 1_900_000_000_000i64}),
            "events",
        ),
        ("list_slack_channels", json!({}), "C0DEALS01"),
    ] {
        let res = call(&r, tool, args).await;
        assert_ne!(res.is_error, Some(true), "{tool}: {}", text(&res));
        assert!(text(&res).contains(want), "{tool}: {}", text(&res));
    }
    assert!(
        r.w.sandbox.state.phone_pending().is_empty(),
        "reads never ask the device"
    );
    let reads: Vec<_> = events(&r)
        .into_iter()
        .filter(|(e, _, a)| e == "action.read" && a.starts_with("mcp:"))
        .collect();
    assert_eq!(
        reads.len(),
        6,
        "one audit entry per read, with the client's name"
    );
}

#[tokio::test]
async fn a_write_runs_only_after_the_device_says_yes() {
    let r = rig(Duration::from_secs(10)).await;
    let ph = phone(&r, true);
    let res = call(
        &r,
        "post_slack",
        json!({"channel": "#deals", "text": "Umbrella DPA signed"}),
    )
    .await;
    assert_eq!(ph.await.unwrap(), "dealflow: post_slack #deals");
    let v: Value = serde_json::from_str(&text(&res)).unwrap();
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(r.w.sandbox.state.providers.slack_posts().len(), 1);
    let id = v["action_id"].as_str().unwrap();
    let st: Value = serde_json::from_str(&text(
        &call(&r, "get_action_status", json!({"action_id": id})).await,
    ))
    .unwrap();
    assert_eq!(st["state"], "succeeded");
    assert!(
        events(&r)
            .iter()
            .any(|(e, o, _)| e == "action.executed" && o == "ok")
    );
}

#[tokio::test]
async fn a_denied_write_is_a_tool_error_and_runs_nothing() {
    let r = rig(Duration::from_secs(10)).await;
    let ph = phone(&r, false);
    let res = call(
        &r,
        "send_email",
        json!({"to": ["outsider@evil.example"], "subject": "x", "body": "y"}),
    )
    .await;
    ph.await.unwrap();
    assert_eq!(res.is_error, Some(true));
    assert!(
        text(&res).contains("denied on the device"),
        "{}",
        text(&res)
    );
    assert!(r.w.sandbox.state.providers.sent().is_empty());
}

#[tokio::test]
async fn past_the_wait_bound_the_answer_is_pending_and_status_tells_the_end() {
    let r = rig(Duration::from_millis(300)).await;
    let res = call(
        &r,
        "create_deal",
        json!({"name": "Wayne", "account": "Wayne", "amount_cents": 1_000_000}),
    )
    .await;
    let v: Value = serde_json::from_str(&text(&res)).unwrap();
    assert_eq!(v["status"], "pending", "{v}");
    let id = v["action_id"].as_str().unwrap().to_string();
    let st: Value = serde_json::from_str(&text(
        &call(&r, "get_action_status", json!({"action_id": id})).await,
    ))
    .unwrap();
    assert_eq!(st["state"], "awaiting_consent");
    // The background wait is still on: approve now, and the status follows.
    phone(&r, true).await.unwrap();
    let mut last = Value::Null;
    for _ in 0..200 {
        last = serde_json::from_str(&text(
            &call(&r, "get_action_status", json!({"action_id": id})).await,
        ))
        .unwrap();
        if last["done"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last["state"], "succeeded", "{last}");
    assert!(
        r.store
            .list_deals()
            .unwrap()
            .iter()
            .any(|d| d.name == "Wayne")
    );
}

#[tokio::test]
async fn cancelling_the_call_stops_the_wait_and_is_audited() {
    let r = Arc::new(rig(Duration::from_secs(20)).await);
    let r2 = r.clone();
    let call_task = tokio::spawn(async move {
        call(
            &r2,
            "send_email",
            json!({"to": ["a@b.example"], "subject": "x", "body": "y"}),
        )
        .await
    });
    for _ in 0..500 {
        if !r.w.sandbox.state.phone_pending().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(r.w.sandbox.state.phone_pending().len(), 1);
    // Dropping the request future makes the client send notifications/cancelled.
    call_task.abort();
    let mut seen = false;
    for _ in 0..300 {
        if events(&r)
            .iter()
            .any(|(e, o, _)| e == "mcp.cancelled" && o == "cancelled")
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "{:?}", events(&r));
    assert!(
        events(&r)
            .iter()
            .any(|(e, o, _)| e == "batch.cancelled" && o == "cancelled")
    );
    assert!(r.w.sandbox.state.providers.sent().is_empty());
}

#[tokio::test]
async fn protocol_errors_only_for_protocol_faults() {
    let r = rig(Duration::from_secs(5)).await;
    let unknown = r
        .client
        .call_tool(CallToolRequestParams::new("set_permissions").with_arguments(Default::default()))
        .await;
    assert!(unknown.is_err(), "an unknown tool is a protocol error");
    let bad = call(&r, "schedule_meeting", json!({"title": "x"})).await;
    assert_eq!(bad.is_error, Some(true));
    assert!(text(&bad).contains("invalid arguments"), "{}", text(&bad));
    let not_mine = call(
        &r,
        "get_action_status",
        json!({"action_id": "act-demo-acme-close"}),
    )
    .await;
    assert_eq!(
        not_mine.is_error,
        Some(true),
        "an MCP client only sees its own actions"
    );
}

/// MCP writes switched off while a call waits on the device: the phone's yes can no
/// longer run it, and the client is told that, not that the device never answered.
#[tokio::test]
async fn a_write_voided_by_switching_mcp_writes_off_says_so() {
    let r = rig(Duration::from_secs(10)).await;
    let store = r.store.clone();
    let state = r.w.sandbox.state.clone();
    let ph = tokio::spawn(async move {
        for _ in 0..500 {
            if let Some(req) = state.phone_pending().into_iter().next() {
                store
                    .change_permissions(
                        &dealflow::core::permissions::PermissionChange::SetMcpWrites {
                            enabled: false,
                        },
                        dealflow::core::audit::NewAuditEntry {
                            ts: 2,
                            actor: "user:auth0|rep".into(),
                            surface: None,
                            event: "permissions.changed".into(),
                            action_id: None,
                            outcome: "ok".into(),
                            detail: json!({}),
                        },
                    )
                    .unwrap();
                state.phone_approve(&req.id);
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let res = call(
        &r,
        "post_slack",
        json!({"channel": "#deals", "text": "Umbrella DPA signed"}),
    )
    .await;
    ph.await.unwrap();
    assert_eq!(res.is_error, Some(true));
    let t = text(&res);
    assert!(t.contains("MCP write tools are disabled"), "{t}");
    assert!(!t.contains("expired"), "{t}");
    assert!(r.w.sandbox.state.providers.slack_posts().is_empty());
}

/// A raw stdio peer sending garbage: every line that is not JSON gets JSON-RPC's parse
/// error (id null), well-formed nonsense gets invalid request, nothing panics or hangs,
/// and the server still answers a ping after each of a few hundred random frames.
#[tokio::test]
async fn random_frames_get_errors_and_never_stop_the_server() {
    use rand::{RngExt, SeedableRng};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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
    let server = McpServer::new(p, w.device.clone(), Duration::from_secs(5));
    let (mut stdin_w, stdin_r) = tokio::io::duplex(1 << 16);
    let (stdout_w, stdout_r) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let (transport, _written) = dealflow::mcp::stdio::filtered(stdin_r, stdout_w);
        if let Ok(running) = server.serve(transport).await {
            let _ = running.waiting().await;
        }
    });
    let mut out = BufReader::new(stdout_r).lines();
    let mut send = async |line: &str| {
        stdin_w.write_all(line.as_bytes()).await.unwrap();
        stdin_w.write_all(b"\n").await.unwrap();
    };
    send(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"fuzz","version":"1"}}}"#).await;
    let init = tokio::time::timeout(Duration::from_secs(10), out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(init.contains("serverInfo"), "{init}");
    send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        "\"jsonrpc\"",
        ":",
        "\"2.0\"",
        ",",
        "\"id\"",
        "1e999",
        "null",
        "\"method\"",
        "\"tools/call\"",
        "\u{1b}[2K",
        "\\u0000",
        "9999999999999999999999",
        "\"params\"",
        "{\"name\":\"send_email\"}",
        "true",
        " ",
    ];
    for i in 1..=300u64 {
        let n = rng.random_range(0..12);
        let frame: String = (0..n)
            .map(|_| pieces[rng.random_range(0..pieces.len())])
            .collect();
        let frame = frame.replace('\n', " ");
        send(&frame).await;
        send(&format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#)).await;
        // Whatever the frame got (an error or nothing), the ping's answer comes.
        loop {
            let line = tokio::time::timeout(Duration::from_secs(10), out.next_line())
                .await
                .unwrap_or_else(|_| panic!("no answer after frame {frame:?}"))
                .unwrap()
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["id"] == i {
                assert!(v.get("result").is_some(), "{line}");
                break;
            }
            if serde_json::from_str::<serde_json::Value>(&frame).is_err() {
                assert_eq!(v["error"]["code"], -32700, "{frame:?}: {line}");
            }
        }
    }
}

// ---------------------------------------------------------------- tasks (SEP-2663)

/// The server again, this time to a client that declares the tasks extension.
async fn task_rig() -> (Rig, RunningService<RoleClient, rmcp::model::ClientConfig>) {
    let r = rig(Duration::from_secs(30)).await;
    let p = Arc::new(Pipeline::new(
        r.store.clone(),
        r.w.creds.clone(),
        Endpoints::sandbox(&r.w.sandbox.base_url()),
        "rep".into(),
    ));
    let server = McpServer::new(p, r.w.device.clone(), Duration::from_secs(30));
    let (client_io, server_io) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let info = rmcp::model::ClientConfig::new(
        rmcp::model::ClientCapabilities::builder()
            .enable_tasks()
            .build(),
        rmcp::model::Implementation::new("task-client", "1.0"),
    );
    let client = info.serve(client_io).await.unwrap();
    (r, client)
}

type TaskClient = RunningService<RoleClient, rmcp::model::ClientConfig>;

async fn start_task(c: &TaskClient, name: &str, args: Value) -> String {
    let args = args.as_object().cloned().unwrap_or_default();
    let res = c
        .call_tool_once(CallToolRequestParams::new(name.to_string()).with_arguments(args))
        .await
        .unwrap();
    let rmcp::model::CallToolResponse::Task(created) = res else {
        panic!("a write to a tasks client is a task: {res:?}");
    };
    assert_eq!(created.task.status, rmcp::model::TaskStatus::Working);
    assert!(
        created
            .task
            .status_message
            .as_deref()
            .unwrap_or_default()
            .contains("waiting for approval on the device: dealflow: send_email"),
        "{:?}",
        created.task
    );
    created.task.task_id
}

/// Polls `tasks/get` until the task is terminal; returns its payload.
async fn settle(c: &TaskClient, id: &str) -> rmcp::model::TaskPayload {
    for _ in 0..3000 {
        let got = c
            .get_task(rmcp::model::GetTaskParams::new(id))
            .await
            .unwrap();
        if !matches!(
            got.task.payload,
            rmcp::model::TaskPayload::Working | rmcp::model::TaskPayload::InputRequired { .. }
        ) {
            return got.task.payload;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {id} never settled");
}

fn completed(p: rmcp::model::TaskPayload) -> CallToolResult {
    let rmcp::model::TaskPayload::Completed { result } = p else {
        panic!("not completed: {p:?}");
    };
    serde_json::from_value(Value::Object(result)).unwrap()
}

/// A client that declares tasks gets one for a write instead of a held call: the call
/// answers at once, `tasks/get` says what the phone shows while it waits, and the task
/// completes with the result once the phone says yes; a no completes it with the
/// rejection as structured content the calling agent can branch on.
#[tokio::test]
async fn a_write_is_a_task_that_completes_when_the_phone_answers() {
    let (r, c) = task_rig().await;
    let email = json!({"to": ["bill@initech.example"], "subject": "Hello", "body": "Hi"});
    let id = start_task(&c, "send_email", email.clone()).await;
    assert!(
        r.w.sandbox.state.providers.sent().is_empty(),
        "nothing ran yet"
    );
    let got = c
        .get_task(rmcp::model::GetTaskParams::new(id.as_str()))
        .await
        .unwrap();
    assert_eq!(got.task.task.status, rmcp::model::TaskStatus::Working);
    phone(&r, true).await.unwrap();
    let done = completed(settle(&c, &id).await);
    assert_ne!(done.is_error, Some(true), "{}", text(&done));
    let facts = done.structured_content.clone().unwrap();
    assert_eq!(facts["status"], "succeeded", "{facts}");
    assert_eq!(r.w.sandbox.state.providers.sent().len(), 1);

    let id = start_task(&c, "send_email", email).await;
    phone(&r, false).await.unwrap();
    let done = completed(settle(&c, &id).await);
    assert_eq!(done.is_error, Some(true));
    let facts = done.structured_content.clone().unwrap();
    assert_eq!(facts["status"], "rejected", "{facts}");
    assert!(
        facts["reason"]
            .as_str()
            .unwrap()
            .contains("denied on the device"),
        "{facts}"
    );
    let action = r
        .store
        .get_action(facts["action_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(action.state, dealflow::core::domain::ActionState::Rejected);
    assert_eq!(
        r.w.sandbox.state.providers.sent().len(),
        1,
        "the no sent nothing"
    );
}

/// `tasks/cancel` withdraws the wait, not the action: the task ends cancelled, the
/// action stays queued for the device, and the audit says the client cancelled.
#[tokio::test]
async fn cancelling_the_task_leaves_the_action_queued_and_audited() {
    let (r, c) = task_rig().await;
    let id = start_task(
        &c,
        "send_email",
        json!({"to": ["bill@initech.example"], "subject": "Hello", "body": "Hi"}),
    )
    .await;
    // Wait until the push is on the phone, so the cancel meets a real wait.
    for _ in 0..500 {
        if !r.w.sandbox.state.phone_pending().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.cancel_task(rmcp::model::CancelTaskParams::new(id.as_str()))
        .await
        .unwrap();
    let p = settle(&c, &id).await;
    assert!(matches!(p, rmcp::model::TaskPayload::Cancelled), "{p:?}");
    let cancelled = r
        .store
        .audit_page(0, 10_000)
        .unwrap()
        .into_iter()
        .find(|e| e.event == "mcp.cancelled")
        .unwrap();
    let action = r
        .store
        .get_action(cancelled.action_id.as_deref().unwrap())
        .unwrap();
    assert_eq!(
        action.state,
        dealflow::core::domain::ActionState::AwaitingConsent
    );
    assert!(r.w.sandbox.state.providers.sent().is_empty());
}

/// Without the extension nothing changes: the call is held (bounded) and answers with
/// the result, now with structured content too.
#[tokio::test]
async fn a_client_without_tasks_still_gets_a_held_call_with_structured_content() {
    let r = rig(Duration::from_secs(30)).await;
    let answer = phone(&r, false);
    let res = call(
        &r,
        "send_email",
        json!({"to": ["bill@initech.example"], "subject": "Hello", "body": "Hi"}),
    )
    .await;
    answer.await.unwrap();
    assert_eq!(res.is_error, Some(true));
    assert_eq!(res.structured_content.unwrap()["status"], "rejected");
}

/// An MCP client sees the rep's Salesforce pipeline: the deal tools read the org.
#[tokio::test]
async fn with_salesforce_as_the_crm_the_deal_tools_read_the_org() {
    let r = rig_with(Duration::from_secs(5), true).await;
    let res = call(&r, "list_deals", json!({})).await;
    let t = text(&res);
    assert_ne!(res.is_error, Some(true), "{t}");
    assert!(t.contains("Stark Industries enterprise"), "{t}");
    assert!(t.contains("\"id\":\"006SB"), "Salesforce's ids: {t}");
    let id = r
        .store
        .list_deals()
        .unwrap()
        .into_iter()
        .find(|d| d.name == "Stark Industries enterprise")
        .unwrap()
        .id;
    assert!(id.starts_with("006"), "a Salesforce id: {id}");
    let res = call(&r, "get_deal", json!({ "deal_id": id })).await;
    assert!(
        text(&res).contains("\"amount_cents\":25000000"),
        "{}",
        text(&res)
    );
    assert_eq!(r.w.sandbox.state.providers.calls("salesforce.userinfo"), 1);
}
