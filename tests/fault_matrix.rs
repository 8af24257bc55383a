//! The fault matrix: every external endpoint × {500, 429 + Retry-After, timeout,
//! connection refused, malformed body, slow}. Real HTTP against the sandbox emulators
//! (fault injection per endpoint), a closed port for "refused", short client timeouts for
//! "timeout". Each cell checks: a clear error naming the endpoint, no panic, no duplicate
//! side effect, nothing lost (the action stays queued or ends in a state that says what
//! happened), and the audit log records the failure where an action was involved.

#![allow(clippy::unwrap_used)]

#[path = "support/chat_turn.rs"]
mod chat_turn;

use dealflow::auth::ciba::CibaClient;
use dealflow::auth::session::Session;
use dealflow::auth::vault::VaultClient;
use dealflow::connectors::Endpoints;
use dealflow::core::domain::{ActionParams, ActionState, Email, Surface};
use dealflow::runtime::auth0::{CibaDevice, VaultCredentials};
use dealflow::runtime::batch::{BatchOptions, BatchReport, run_once};
use dealflow::runtime::credentials::Subject;
use dealflow::runtime::pipeline::{Pipeline, PipelineError, Proposal};
use dealflow::runtime::review::Reviewer;
use dealflow::sandbox::Sandbox;
use dealflow::sandbox::providers::Fault;
use dealflow::sandbox::sign_in;
use dealflow::sandbox::wiring::{RemoteWiring, wire_remote};
use dealflow::store::{SqliteStore, Store};
use dealflow::wall::now_ms;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const CLIENT_TIMEOUT: Duration = Duration::from_millis(700);

#[derive(Debug, Clone, Copy, PartialEq)]
enum F {
    E500,
    R429,
    Timeout,
    Refused,
    Malformed,
    Slow,
}

const ALL: [F; 6] = [
    F::E500,
    F::R429,
    F::Timeout,
    F::Refused,
    F::Malformed,
    F::Slow,
];

fn fault(f: F) -> Option<Fault> {
    let base = Fault {
        status: 500,
        body: None,
        retry_after_secs: None,
        delay_ms: 0,
        remaining: 1000,
    };
    match f {
        F::E500 => Some(base),
        F::R429 => Some(Fault {
            status: 429,
            retry_after_secs: Some(1),
            ..base
        }),
        F::Timeout => Some(Fault {
            delay_ms: 2_000,
            ..base
        }),
        F::Refused => None,
        F::Malformed => Some(Fault {
            status: 200,
            body: Some("<html>upstream proxy error".into()),
            ..base
        }),
        F::Slow => Some(Fault {
            status: 0,
            delay_ms: 150,
            ..base
        }),
    }
}

/// A port that refuses connections for the rest of the test process: bound but never
/// listening. Binding and dropping a listener is not enough — the sandbox started next
/// (or a parallel test) can be handed the same port, and "refused" then succeeds.
fn closed_port_url() -> String {
    static HELD: std::sync::Mutex<Vec<tokio::net::TcpSocket>> = std::sync::Mutex::new(Vec::new());
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    HELD.lock().unwrap().push(socket);
    format!("http://127.0.0.1:{port}")
}

struct Rig {
    _dir: tempfile::TempDir,
    sandbox: Option<Sandbox>,
    secret: String,
    w: RemoteWiring,
    store: Arc<dyn Store>,
    p: Arc<Pipeline>,
}

async fn rig(tweak: impl FnOnce(&mut Pipeline, &Rig0)) -> Rig {
    dealflow::auth::set_http_timeout(CLIENT_TIMEOUT);
    let sandbox = Sandbox::start(None).await.unwrap();
    sandbox.state.auth0.set_timing(|t| {
        t.ms_per_second = 20;
        t.device_interval_s = 1;
        t.ciba_interval_s = 1;
    });
    let base = sandbox.base_url();
    let secret = sandbox.state.auth0.agent_client_secret();
    let w = wire_remote(
        &base,
        &secret,
        sandbox.state.admin.expose(),
        Duration::from_millis(20),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let mut p = Pipeline::new(
        store.clone(),
        w.creds.clone(),
        Endpoints::sandbox(&base),
        "rep@dealflow.test".into(),
    );
    p.http = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .build()
        .unwrap();
    p.retry.max_429_retries = 1;
    let r0 = Rig0 {
        secret: secret.clone(),
        session: w.session.clone(),
    };
    tweak(&mut p, &r0);
    Rig {
        _dir: dir,
        sandbox: Some(sandbox),
        secret,
        w,
        store,
        p: Arc::new(p),
    }
}

/// What a tweak may use to rebuild parts of the pipeline.
struct Rig0 {
    secret: String,
    session: Arc<Session>,
}

impl Rig {
    fn sb(&self) -> &Sandbox {
        self.sandbox.as_ref().unwrap()
    }

    fn propose(&self, params: ActionParams) -> String {
        self.p
            .submit(
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
    }

    fn approved(&self, params: ActionParams) -> String {
        let id = self.propose(params);
        me().approve(self.store.as_ref(), &id, true, now_ms())
            .unwrap();
        id
    }

    fn events_for(&self, id: &str) -> Vec<(String, String, String)> {
        self.store
            .audit_page(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.action_id.as_deref() == Some(id))
            .map(|e| (e.event, e.outcome, e.detail.to_string()))
            .collect()
    }

    fn all_events(&self) -> Vec<(String, String, String)> {
        self.store
            .audit_page(0, 10_000)
            .unwrap()
            .into_iter()
            .map(|e| (e.event, e.outcome, e.detail.to_string()))
            .collect()
    }
}

fn me() -> Reviewer {
    Reviewer {
        actor: "user:tester".into(),
        surface: Surface::ActionCenter,
    }
}

fn email() -> ActionParams {
    ActionParams::SendEmail(Email {
        to: vec!["bill@initech.example".into()],
        cc: vec![],
        subject: "Checking in".into(),
        body: "Hi".into(),
        deal_id: None,
    })
}

fn meeting() -> ActionParams {
    ActionParams::ScheduleMeeting {
        title: "Sync".into(),
        attendees: vec!["pepper@stark.example".into()],
        start: 1_800_000_000_000,
        end: 1_800_000_000_000 + 1_800_000,
        description: String::new(),
    }
}

fn slack() -> ActionParams {
    ActionParams::PostSlack {
        channel: "#deals".into(),
        text: "Initech signed".into(),
    }
}

type Cell = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Runs each cell with a time bound and reports the row.
async fn row<Fut>(name: &str, cell: impl Fn(F) -> Fut)
where
    Fut: std::future::Future<Output = Cell>,
{
    let mut failures = Vec::new();
    let mut skipped = 0;
    for f in ALL {
        let started = std::time::Instant::now();
        let r = match tokio::time::timeout(Duration::from_secs(20), cell(f)).await {
            Ok(r) => r,
            Err(_) => Err("no answer within 20 s".into()),
        };
        let verdict = match &r {
            Ok(()) => "pass",
            Err(e) if e.starts_with("n/a") => {
                skipped += 1;
                e.as_str()
            }
            Err(_) => "FAIL",
        };
        eprintln!("{name} × {f:?}: {verdict} ({:?})", started.elapsed());
        if let Err(e) = r
            && !e.starts_with("n/a")
        {
            failures.push(format!("{name} × {f:?}: {e}"));
        }
    }
    eprintln!(
        "{name}: {}/{} cells passed, {skipped} not applicable",
        ALL.len() - failures.len() - skipped,
        ALL.len() - skipped
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------- providers

#[derive(Clone, Copy)]
enum Prov {
    Gmail,
    Calendar,
    Slack,
    /// A create in Salesforce (`[crm] provider = "salesforce"`).
    Salesforce,
}

impl Prov {
    fn endpoint(self) -> &'static str {
        match self {
            Prov::Gmail => "gmail.send",
            Prov::Calendar => "calendar.insert",
            Prov::Slack => "slack.post",
            Prov::Salesforce => "salesforce.upsert",
        }
    }
    fn params(self) -> ActionParams {
        match self {
            Prov::Gmail => email(),
            Prov::Calendar => meeting(),
            Prov::Slack => slack(),
            // No account: the upsert is the only call after the instance is known.
            Prov::Salesforce => ActionParams::CreateDeal {
                name: "Wayne expansion".into(),
                account: String::new(),
                amount_cents: 1_000_000,
                stage: dealflow::core::domain::Stage::Qualified,
            },
        }
    }
    fn effects(self, sb: &Sandbox) -> usize {
        let p = &sb.state.providers;
        match self {
            Prov::Gmail => p.sent().len(),
            Prov::Calendar => p.events().len(),
            Prov::Slack => p.slack_posts().len(),
            Prov::Salesforce => p.salesforce_org().creates as usize,
        }
    }
}

async fn provider_cell(prov: Prov, f: F) -> Cell {
    let closed = closed_port_url();
    let r = rig(|p, _| {
        if let Prov::Salesforce = prov {
            use dealflow::connectors::salesforce::{Salesforce, Settings};
            let base = p.endpoints.gmail.trim_end_matches("/gmail/v1").to_string();
            let origin = if f == F::Refused { &closed } else { &base };
            // The instance is configured, so the identity service is not asked first.
            let mut s = Settings::new(&format!("{base}/salesforce"));
            s.instance_url = Some(format!("{origin}/salesforce/instance"));
            p.crm = dealflow::runtime::crm::Crm::Salesforce(Arc::new(Salesforce::new(s)));
        } else if f == F::Refused {
            p.endpoints = Endpoints::sandbox(&closed);
        }
    })
    .await;
    if let Some(fault) = fault(f) {
        r.sb().state.providers.inject(prov.endpoint(), fault);
    }
    let id = r.approved(prov.params());
    let done =
        r.p.execute(&id, &Subject::User, now_ms())
            .await
            .map_err(|e| format!("execute: {e}"))?;
    let effects = prov.effects(r.sb());
    let a = r.store.get_action(&id).unwrap();
    let events = r.events_for(&id);
    let executed = events.iter().find(|e| e.0 == "action.executed");
    if f == F::Slow {
        ensure!(
            done.outcome.is_ok(),
            "slow should succeed: {:?}",
            done.outcome
        );
        ensure!(effects == 1, "{effects} side effects");
        ensure!(a.state == ActionState::Succeeded, "{}", a.state);
        return Ok(());
    }
    let err = match &done.outcome {
        Ok(o) => return Err(format!("succeeded despite the fault: {o:?}")),
        Err(e) => e.to_string(),
    };
    ensure!(
        err.contains(prov.endpoint()),
        "error does not name the endpoint: {err}"
    );
    ensure!(effects == 0, "{effects} side effects");
    let Some(executed) = executed else {
        return Err(format!("no action.executed in the audit log: {events:?}"));
    };
    ensure!(
        executed.2.contains(prov.endpoint()),
        "audit does not name the endpoint: {executed:?}"
    );
    if f == F::R429 {
        // Retry-After was honoured once, then it gave up with a clear error.
        let calls = r.sb().state.providers.calls(prov.endpoint());
        ensure!(calls == 2, "{calls} calls");
        ensure!(err.contains("rate limited"), "{err}");
    }
    if f == F::Timeout || f == F::Malformed {
        // No answer, or a 2xx we cannot read: it may have happened, so it must be
        // reconciled, never re-run blindly.
        ensure!(a.state == ActionState::NeedsReconciliation, "{}", a.state);
        ensure!(executed.1 == "unknown", "{executed:?}");
        r.p.reconcile(now_ms() + 1)
            .await
            .map_err(|e| e.to_string())?;
        let after = r.store.get_action(&id).unwrap();
        match prov {
            // Gmail and Calendar can be asked by the derived id, Salesforce by the
            // external id: not there, safe to retry.
            Prov::Gmail | Prov::Calendar | Prov::Salesforce => {
                ensure!(after.state == ActionState::Failed, "{}", after.state);
                ensure!(
                    r.events_for(&id).iter().any(|e| e.0 == "action.reconciled"),
                    "reconciliation not audited"
                );
            }
            Prov::Slack => ensure!(
                after.state == ActionState::NeedsReconciliation,
                "{}",
                after.state
            ),
        }
        ensure!(prov.effects(r.sb()) == 0, "reconcile re-ran it");
    } else {
        ensure!(a.state == ActionState::Failed, "{}", a.state);
        ensure!(executed.1 == "failed", "{executed:?}");
    }
    ensure!(
        a.outcome
            .as_deref()
            .is_some_and(|o| o.contains(prov.endpoint())),
        "the queue does not say why: {:?}",
        a.outcome
    );
    // A failed action never runs again by itself.
    ensure!(
        matches!(
            r.p.execute(&id, &Subject::User, now_ms()).await,
            Err(PipelineError::NotApproved { .. })
        ),
        "a failed action could be executed again"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_gmail() {
    row("gmail.send", |f| provider_cell(Prov::Gmail, f)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_calendar() {
    row("calendar.insert", |f| provider_cell(Prov::Calendar, f)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_slack() {
    row("slack.post", |f| provider_cell(Prov::Slack, f)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_salesforce() {
    row("salesforce.upsert", |f| provider_cell(Prov::Salesforce, f)).await;
}

// ---------------------------------------------------------------- Token Vault

async fn vault_cell(f: F) -> Cell {
    let closed = closed_port_url();
    let r = rig(|p, r0| {
        if f == F::Refused {
            let mut s = sign_in::settings(&closed);
            s.poll_unit = Duration::from_millis(20);
            p.creds = Arc::new(VaultCredentials {
                vault: VaultClient::new(s, dealflow::auth::Secret::new(r0.secret.clone())),
                session: r0.session.clone(),
                exchange_lock: tokio::sync::Mutex::new(()),
            });
        }
    })
    .await;
    if let Some(fault) = fault(f) {
        r.sb().state.providers.inject("auth0.vault", fault);
    }
    let id = r.approved(email());
    let res = r.p.execute(&id, &Subject::User, now_ms()).await;
    let a = r.store.get_action(&id).unwrap();
    let sent = r.sb().state.providers.sent().len();
    if f == F::Slow {
        let done = res.map_err(|e| e.to_string())?;
        ensure!(done.outcome.is_ok(), "{:?}", done.outcome);
        ensure!(sent == 1, "{sent} sent");
        return Ok(());
    }
    let err = match res {
        Err(e @ PipelineError::Credentials { .. }) => e.to_string(),
        other => return Err(format!("expected a credentials error, got {other:?}")),
    };
    ensure!(
        err.contains("/oauth/token"),
        "error does not name the endpoint: {err}"
    );
    ensure!(sent == 0, "{sent} sent");
    // Blocked before the claim: still approved, nothing lost, and audited.
    ensure!(a.state == ActionState::Approved, "{}", a.state);
    let events = r.events_for(&id);
    ensure!(
        events.iter().any(|e| e.0 == "action.blocked"
            && e.2.contains("token_exchange")
            && e.2.contains("/oauth/token")),
        "blocked exchange not audited: {events:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_token_vault() {
    row("auth0 token vault exchange", vault_cell).await;
}

// ---------------------------------------------------------------- CIBA

async fn batch_with_phone(r: &Rig, approve: bool) -> BatchReport {
    let cancel = CancellationToken::new();
    let (p, device) = (r.p.clone(), r.w.device.clone());
    let task = tokio::spawn(async move {
        run_once(p, device.as_ref(), &BatchOptions::default(), &cancel).await
    });
    if approve {
        let state = r.sb().state.clone();
        tokio::spawn(async move {
            for _ in 0..1000 {
                for req in state.phone_pending() {
                    state.phone_approve(&req.id);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    task.await.unwrap().unwrap()
}

async fn ciba_cell(endpoint: &str, f: F) -> Cell {
    let closed = closed_port_url();
    let mut r = rig(|_, _| {}).await;
    if f == F::Refused && endpoint == "auth0.bc_authorize" {
        let mut s = sign_in::settings(&closed);
        s.poll_unit = Duration::from_millis(20);
        r.w.device = Arc::new(CibaDevice::new(
            CibaClient::new(s, dealflow::auth::Secret::new(r.secret.clone())),
            r.w.session.clone(),
        ));
    }
    if let Some(fault) = fault(f) {
        r.sb().state.providers.inject(endpoint, fault);
    }
    let ids = [r.propose(email()), r.propose(meeting())];
    for id in &ids {
        me().queue_for_device(r.store.as_ref(), id, now_ms())
            .unwrap();
    }
    let report = if f == F::Refused && endpoint == "auth0.ciba_poll" {
        // The request goes out; then the server is gone while the batch polls.
        let cancel = CancellationToken::new();
        let (p, device) = (r.p.clone(), r.w.device.clone());
        let task = tokio::spawn(async move {
            run_once(p, device.as_ref(), &BatchOptions::default(), &cancel).await
        });
        let state = r.sb().state.clone();
        while state.phone_pending().is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(r.sandbox.take());
        task.await.unwrap().unwrap()
    } else {
        batch_with_phone(&r, true).await
    };
    let states: Vec<ActionState> = ids
        .iter()
        .map(|id| r.store.get_action(id).unwrap().state)
        .collect();
    if f == F::Slow {
        ensure!(report.succeeded.len() == 2, "{report:?}");
        ensure!(
            r.sb().state.providers.sent().len() == 1 && r.sb().state.providers.events().len() == 1,
            "side effects"
        );
        return Ok(());
    }
    // Nothing ran, nothing was lost: both still queued for the next batch, and the log says why.
    ensure!(
        states.iter().all(|s| *s == ActionState::AwaitingConsent),
        "{states:?}"
    );
    ensure!(report.succeeded.is_empty(), "{report:?}");
    ensure!(report.leftover.len() == 2, "{report:?}");
    if let Some(sb) = &r.sandbox {
        ensure!(
            sb.state.providers.sent().is_empty() && sb.state.providers.events().is_empty(),
            "side effects"
        );
    }
    let events = r.all_events();
    let path = if endpoint == "auth0.bc_authorize" {
        "/bc-authorize"
    } else {
        "/oauth/token"
    };
    let failure = events.iter().find(|e| {
        matches!(
            e.0.as_str(),
            "batch.request_failed" | "batch.poll_failed" | "batch.expired"
        )
    });
    let Some(failure) = failure else {
        return Err(format!("batch failure not audited: {events:?}"));
    };
    if failure.0 != "batch.expired" {
        ensure!(
            failure.2.contains(path),
            "audit does not name {path}: {failure:?}"
        );
    }
    eprintln!("  {endpoint} × {f:?} → {} {}", failure.0, failure.2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_bc_authorize() {
    row("auth0 /bc-authorize", |f| {
        ciba_cell("auth0.bc_authorize", f)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_ciba_poll() {
    row("auth0 CIBA poll", |f| ciba_cell("auth0.ciba_poll", f)).await;
}

// ---------------------------------------------------------------- sign-in

async fn login_cell(endpoint: &str, f: F) -> Cell {
    dealflow::auth::set_http_timeout(CLIENT_TIMEOUT);
    let sandbox = Sandbox::start(None).await.unwrap();
    sandbox.state.auth0.set_timing(|t| {
        t.ms_per_second = 20;
        t.device_interval_s = 1;
    });
    let base = if f == F::Refused {
        closed_port_url()
    } else {
        sandbox.base_url()
    };
    if let Some(fault) = fault(f) {
        sandbox.state.providers.inject(endpoint, fault);
    }
    let mut settings = sign_in::settings(&base).with_sandbox_key(sandbox.state.admin.expose());
    settings.poll_unit = Duration::from_millis(20);
    let res = sign_in::session(settings).await;
    if f == F::Slow {
        let s = res.map_err(|e| e.to_string())?;
        s.sub().await.map_err(|e| e.to_string())?;
        return Ok(());
    }
    let err = match res {
        Ok(_) => return Err("signed in despite the fault".into()),
        Err(e) => e.to_string(),
    };
    let path = if endpoint == "auth0.device_code" || f == F::Refused {
        "/oauth/device/code"
    } else {
        "/oauth/token"
    };
    ensure!(err.contains(path), "error does not name {path}: {err}");
    eprintln!("  {endpoint} × {f:?} → {err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_device_code() {
    row("auth0 /oauth/device/code", |f| {
        login_cell("auth0.device_code", f)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_auth0_token() {
    row("auth0 /oauth/token (sign-in)", |f| {
        login_cell("auth0.token", f)
    })
    .await;
}

// ---------------------------------------------------------------- Messages API

async fn llm_cell(f: F) -> Cell {
    use dealflow::llm::{AnthropicClient, AnthropicConfig, ApiKey, RetryPolicy};
    use dealflow::runtime::chat::{ChatIo, ChatModel};
    use dealflow::sandbox::fake_llm::{FakeLlm, Frame, Reply};
    let r = rig(|_, _| {}).await;
    let script = match f {
        F::E500 => vec![Reply::error(500, "api_error", "injected"); 3],
        F::R429 => vec![Reply::rate_limited(1); 3],
        // The reply stalls longer than llm.timeout (shortened here), every attempt.
        F::Timeout => vec![Reply::text("too late").slow(Duration::from_millis(900)); 3],
        F::Refused => vec![],
        F::Malformed => vec![
            Reply::Stream(vec![Frame {
                event: "message_start".into(),
                data: serde_json::json!("<html>upstream proxy error"),
            }]);
            3
        ],
        F::Slow => vec![Reply::text("All good.").slow(Duration::from_millis(40))],
    };
    let fake = FakeLlm::start(script).await.unwrap();
    let base_url = if f == F::Refused {
        closed_port_url()
    } else {
        fake.base_url()
    };
    let model = AnthropicClient::new(AnthropicConfig {
        base_url,
        model: "claude-test".into(),
        max_tokens: 256,
        read_timeout: if f == F::Timeout {
            Duration::from_millis(150)
        } else {
            Duration::from_secs(120)
        },
        api_key: ApiKey::new("sk-ant-api03-fault-matrix").unwrap(),
        retry: RetryPolicy {
            base_backoff: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
    })
    .unwrap();
    let io = ChatIo::new(
        ChatModel::Remote(Arc::new(model)),
        r.p.clone(),
        r.w.device.clone(),
        "user:tester".into(),
    );
    let mut tab = dealflow::tui::chat::ChatTab::new(8);
    let (_, end) = chat_turn::run_turn(&mut tab, &io, "follow up with Bill", vec![]).await;
    let end = dealflow::core::agent::describe_end(&end);
    let actions = r
        .store
        .list_actions(&dealflow::store::ActionFilter::default())
        .unwrap();
    ensure!(actions.is_empty(), "{} actions filed", actions.len());
    if f == F::Slow {
        ensure!(end == "done", "{end}");
        return Ok(());
    }
    ensure!(
        end.starts_with("failed:") && end.contains("model"),
        "the turn does not say the model API failed: {end}"
    );
    if f == F::R429 || f == F::Timeout {
        ensure!(
            fake.requests().len() == 3,
            "{} requests",
            fake.requests().len()
        );
    }
    if f == F::Timeout {
        ensure!(
            end.contains("sent nothing for 150ms (llm.timeout)"),
            "a stalled reply is not named as such: {end}"
        );
    }
    eprintln!("  messages API × {f:?} → {end}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_messages_api() {
    row("Messages API", llm_cell).await;
}

// ---------------------------------------------------------------- Redis

/// A TCP server on loopback that accepts and then answers `reply` to anything (or never).
fn fake_redis(reply: Option<&'static [u8]>) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    if let Some(r) = reply {
                        let _ = c.write_all(r);
                    }
                }
            });
        }
    });
    format!("redis://127.0.0.1:{port}")
}

async fn redis_cell(f: F) -> Cell {
    let url = match f {
        F::Refused => closed_port_url().replace("http://", "redis://"),
        F::Timeout => fake_redis(None),
        F::Malformed => fake_redis(Some(b"HTTP/1.1 400 Bad Request\r\n\r\n")),
        // Redis speaks RESP, not HTTP: no 500, no 429; latency is covered by the
        // store contract suite against the real server.
        F::E500 | F::R429 | F::Slow => return Err("n/a: not HTTP".into()),
    };
    let res = tokio::task::spawn_blocking(move || {
        dealflow::store::RedisStore::open(&url, "fault-matrix", None).and_then(|s| {
            s.list_actions(&dealflow::store::ActionFilter::default())
                .map(|_| ())
        })
    })
    .await
    .map_err(|e| format!("panicked: {e}"))?;
    let err = match res {
        Ok(()) => return Err("a broken Redis answered".into()),
        Err(e) => e.to_string(),
    };
    ensure!(
        err.contains("redis://127.0.0.1"),
        "error does not name the server: {err}"
    );
    eprintln!("  redis × {f:?} → {err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_redis() {
    row("Redis", redis_cell).await;
}
