//! Secret canary across the whole pipeline (the auth-only canary is `auth_canary.rs`):
//! with TRACE logging captured, run executions, a CIBA batch, provider faults, a stale
//! token re-exchange, reconciliation and a chat turn against the fake Messages API; then
//! render every TUI tab into a TestBackend. Every token the emulator issued (session,
//! CIBA and Token Vault tokens), the agent secret and the Anthropic API key are looked
//! for in the logs, the SQLite files, the audit log, the screens, the recorded model
//! requests and the results' Debug output. None may appear.

#![allow(clippy::unwrap_used)]

use dealflow::connectors::Endpoints;
use dealflow::core::domain::{ActionParams, Email, Surface};
use dealflow::llm::{AnthropicClient, AnthropicConfig, ApiKey, RetryPolicy};
use dealflow::runtime::batch::{BatchOptions, run_once};
use dealflow::runtime::chat::{ChatIo, ChatModel};
use dealflow::runtime::credentials::Subject;
use dealflow::runtime::pipeline::{Pipeline, Proposal};
use dealflow::runtime::review::Reviewer;
use dealflow::sandbox::Sandbox;
use dealflow::sandbox::auth0::model::DEMO_SUB;
use dealflow::sandbox::fake_llm::{FakeLlm, TurnBuilder};
use dealflow::sandbox::providers::Fault;
use dealflow::sandbox::wiring::wire_sandbox_with;
use dealflow::store::{SqliteStore, Store};
use dealflow::tui::app::Tab;
use dealflow::tui::clock::ManualClock;
use dealflow::tui::{TuiOptions, build, view};
use dealflow::wall::now_ms;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const API_KEY: &str = "sk-ant-api03-canary-key-0123456789";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fn email(to: &str) -> ActionParams {
    ActionParams::SendEmail(Email {
        to: vec![to.into()],
        cc: vec![],
        subject: "Checking in".into(),
        body: "Hi".into(),
        deal_id: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_store_audit_screens_or_model_requests() {
    let cap = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(cap.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
    dealflow::sandbox::demo::seed(store.as_ref(), 1).unwrap();
    let sandbox = Sandbox::start(None).await.unwrap();
    sandbox.state.auth0.set_timing(|t| {
        t.ms_per_second = 20;
        t.device_interval_s = 1;
        t.ciba_interval_s = 1;
    });
    let base = sandbox.base_url();
    let w = wire_sandbox_with(sandbox, Duration::from_millis(20))
        .await
        .unwrap();
    let state = w.sandbox.state.clone();
    let mut pipe = Pipeline::new(
        store.clone(),
        w.creds.clone(),
        Endpoints::sandbox(&base),
        "rep@dealflow.test".into(),
    );
    pipe.http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let p = Arc::new(pipe);
    let mut debug = String::new();
    let me = Reviewer {
        actor: "user:tester".into(),
        surface: Surface::ActionCenter,
    };
    let propose = |params: ActionParams| {
        p.submit(
            Proposal {
                title: params.kind().to_string(),
                params,
                surface: Surface::ActionCenter,
                confidence: 0.9,
                justification: "test".into(),
                proposer: "agent:test".into(),
            },
            now_ms(),
        )
        .unwrap()
        .action
        .id
    };

    // 1. Reviewed executions: a success, a provider 500, a timeout then reconciliation,
    //    and a revoked provider token (401, re-exchange, retry).
    let ok = propose(email("a@x.example"));
    let fails = propose(email("b@x.example"));
    let hangs = propose(email("c@x.example"));
    let stale = propose(ActionParams::PostSlack {
        channel: "#deals".into(),
        text: "hello".into(),
    });
    for id in [&ok, &fails, &hangs, &stale] {
        me.approve(store.as_ref(), id, true, now_ms()).unwrap();
    }
    debug.push_str(&format!(
        "{:?}",
        p.execute(&ok, &Subject::User, now_ms()).await
    ));
    let fault = Fault {
        status: 500,
        body: None,
        retry_after_secs: None,
        delay_ms: 0,
        remaining: 1,
    };
    state.providers.inject("gmail.send", fault.clone());
    debug.push_str(&format!(
        "{:?}",
        p.execute(&fails, &Subject::User, now_ms()).await
    ));
    state.providers.inject(
        "gmail.send",
        Fault {
            delay_ms: 1_500,
            ..fault.clone()
        },
    );
    debug.push_str(&format!(
        "{:?}",
        p.execute(&hangs, &Subject::User, now_ms()).await
    ));
    debug.push_str(&format!("{:?}", p.reconcile(now_ms() + 200_000).await));
    // Warm the slack token, then revoke it at the provider: the next call gets a 401.
    let warm = propose(ActionParams::ListSlackChannels {});
    let _ = p.execute(&warm, &Subject::User, now_ms()).await;
    state.revoke_provider_tokens(DEMO_SUB, dealflow::core::domain::Connection::Slack.as_str());
    debug.push_str(&format!(
        "{:?}",
        p.execute(&stale, &Subject::User, now_ms()).await
    ));

    // 2. A CIBA batch approved on the sandbox phone.
    let queued: Vec<String> = ["d@x.example", "e@x.example"]
        .into_iter()
        .map(|to| {
            let id = propose(email(to));
            me.queue_for_device(store.as_ref(), &id, now_ms()).unwrap();
            id
        })
        .collect();
    let phone = {
        let state = state.clone();
        tokio::spawn(async move {
            for _ in 0..2000 {
                for r in state.phone_pending() {
                    state.phone_approve(&r.id);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let report = run_once(
        p.clone(),
        w.device.as_ref(),
        &BatchOptions::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.succeeded.len(), queued.len(), "{report:?}");
    debug.push_str(&format!("{report:?}"));

    // 3. A chat turn: the model asks to send an email, the person confirms.
    let fake = FakeLlm::start(vec![
        TurnBuilder::new()
            .tool_use(
                "w1",
                "send_email",
                &json!({"to": ["bill@initech.example"], "subject": "Seat plan", "body": "20 minutes?"}),
            )
            .build(),
        TurnBuilder::new().text(&["Sent."]).build(),
    ])
    .await
    .unwrap();
    let model = AnthropicClient::new(AnthropicConfig {
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
    .unwrap();
    let io = ChatIo::new(
        ChatModel::Remote(Arc::new(model)),
        p.clone(),
        w.device.clone(),
        "user:tester".into(),
    );
    let mut tab = dealflow::tui::chat::ChatTab::new(8);
    let (seen, _) =
        crate::chat_turn::run_turn(&mut tab, &io, "follow up with Bill", vec![true; 8]).await;
    for u in &seen {
        debug.push_str(&format!("{u:?}\n"));
    }
    // What the Chat tab holds is screen text too.
    debug.push_str(&format!("{:?}\n", tab.lines));
    phone.abort();

    // 4. Every TUI tab rendered on this store.
    let opts = TuiOptions {
        sandbox: true,
        tenant: None,
        theme: "dark".into(),
        mouse: false,
        notify: false,
        config_dir: None,
        export_dir: dir.path().to_path_buf(),
        wiring: None,
        max_iterations: 8,
        idle_lock: None,
        undo_send: None,
        service_status: None,
        lead_waiting: None,
    };
    let (mut app, _exec) = build(store.clone(), &opts, Arc::new(ManualClock::new(now_ms())));
    let mut screens = String::new();
    for tab in Tab::ALL {
        app.tab = tab;
        let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
        t.draw(|f| view::render(&app, f)).unwrap();
        screens.push_str(&t.backend().to_string());
    }

    // The needles: everything secret the run handed out.
    let mut needles = state.auth0.issued_tokens();
    let issued = needles.len();
    needles.push(state.auth0.agent_client_secret());
    needles.push(API_KEY.to_string());
    needles.retain(|n| n.len() >= 12);
    assert!(issued >= 5, "the run issued only {issued} tokens");

    // The haystacks.
    let mut files = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", db.display())) {
            files.extend(b);
        }
    }
    let audit = serde_json::to_string(&store.audit_page(0, 100_000).unwrap()).unwrap();
    let actions = format!(
        "{:?}",
        store
            .list_actions(&dealflow::store::ActionFilter::default())
            .unwrap()
    );
    let requests: String = fake
        .requests()
        .iter()
        .map(|r| {
            let headers: Vec<String> = r
                .headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("x-api-key"))
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            format!("{}\n{}\n", headers.join("\n"), r.raw_body)
        })
        .collect();
    assert!(!requests.is_empty(), "no model requests recorded");
    let logs = String::from_utf8_lossy(&cap.0.lock().unwrap()).to_string();
    assert!(logs.len() > 1000, "TRACE logging captured too little");
    let stores = String::from_utf8_lossy(&files).to_string();
    let hay = [
        ("logs", &logs),
        ("store files", &stores),
        ("audit log", &audit),
        ("actions", &actions),
        ("screens", &screens),
        ("model requests", &requests),
        ("results", &debug),
    ];
    let mut hits = Vec::new();
    for (name, h) in hay {
        for n in &needles {
            if h.contains(n.as_str()) {
                hits.push(format!("{name}: {}…", &n[..8]));
            }
        }
    }
    eprintln!(
        "secret canary: {} needles ({issued} issued tokens + agent secret + API key) × {} haystacks \
         ({} log bytes, {} store bytes, {} audit bytes, {} screen bytes, {} model requests): {} hits",
        needles.len(),
        hay.len(),
        logs.len(),
        stores.len(),
        audit.len(),
        screens.len(),
        fake.requests().len(),
        hits.len()
    );
    assert!(hits.is_empty(), "secrets leaked: {hits:?}");
}
