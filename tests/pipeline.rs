//! The execution pipeline end to end: real SQLite, real HTTP to the sandbox emulators, and
//! the real Token Vault client (`VaultCredentials`, signed in as the demo user by a device
//! flow) exchanging against the emulated Auth0. What the vault grants is changed in the
//! emulator's state, so the client sees it as it would see Auth0's. The emulators are the
//! only stand-ins: Auth0, Gmail, Calendar and Slack cannot run here.

#![allow(clippy::unwrap_used)]

use dealflow::connectors::Endpoints;
use dealflow::core::audit::NewAuditEntry;
use dealflow::core::domain::ActionKind;
use dealflow::core::domain::{ActionParams, ActionState, Connection, Email, Stage, Surface};
use dealflow::core::permissions::{Autonomy, PermissionChange};
use dealflow::runtime::auth0::VaultCredentials;
use dealflow::runtime::credentials::{Credentials, Subject};
use dealflow::runtime::pipeline::{Pipeline, PipelineError, Proposal};
use dealflow::runtime::review::{ReviewError, Reviewer};
use dealflow::sandbox::Sandbox;
use dealflow::sandbox::auth0::model::DEMO_SUB;
use dealflow::sandbox::providers::Fault;
use dealflow::sandbox::wiring::wire_remote;
use dealflow::store::{ActionFilter, SqliteStore, Store, Transition};
use std::sync::Arc;
use std::time::Duration;

struct Rig {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    creds: Arc<VaultCredentials>,
    store: Arc<dyn Store>,
    p: Pipeline,
}

impl Rig {
    /// Token Vault exchanges the emulated Auth0 has answered (or refused) so far.
    fn exchanges(&self) -> u64 {
        self.sandbox.state.auth0.vault_exchange_count()
    }
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let sandbox = Sandbox::start(None).await.unwrap();
    // Protocol seconds last 20 ms, so the device sign-in polls without waiting seconds.
    sandbox.state.auth0.set_timing(|t| {
        t.ms_per_second = 20;
        t.device_interval_s = 1;
        t.ciba_interval_s = 1;
    });
    let base = sandbox.base_url();
    let w = wire_remote(
        &base,
        &sandbox.state.auth0.agent_client_secret(),
        sandbox.state.admin.expose(),
        Duration::from_millis(20),
    )
    .await
    .unwrap();
    let mut p = Pipeline::new(
        store.clone(),
        w.creds.clone(),
        Endpoints::sandbox(&base),
        "rep@dealflow.test".into(),
    );
    p.retry.max_wait = Duration::from_secs(2);
    p.executing_lease = Duration::ZERO;
    Rig {
        _dir: dir,
        sandbox,
        creds: w.creds,
        store,
        p,
    }
}

fn email(to: &str) -> ActionParams {
    ActionParams::SendEmail(Email {
        to: vec![to.into()],
        cc: vec![],
        subject: "Following up".into(),
        body: "Hi Bill,\nDo you have 20 minutes this week?".into(),
        deal_id: None,
    })
}

fn proposal(params: ActionParams, surface: Surface, confidence: f64) -> Proposal {
    Proposal {
        title: format!("{}", params.kind()),
        params,
        surface,
        confidence,
        justification: "test".into(),
        proposer: "agent:test".into(),
    }
}

fn me() -> Reviewer {
    Reviewer {
        actor: "user:tester".into(),
        surface: Surface::ActionCenter,
    }
}

fn change(store: &dyn Store, c: PermissionChange) {
    store
        .change_permissions(
            &c,
            NewAuditEntry {
                ts: 1,
                actor: "user:tester".into(),
                surface: Some(Surface::Cli),
                event: "permissions.changed".into(),
                action_id: None,
                outcome: "ok".into(),
                detail: serde_json::json!({}),
            },
        )
        .unwrap();
}

fn events(store: &dyn Store) -> Vec<(String, String)> {
    store
        .audit_page(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.outcome))
        .collect()
}

#[tokio::test]
async fn review_gate_then_execute_sends_one_email_with_a_derived_message_id() {
    let r = rig().await;
    let s =
        r.p.submit(
            proposal(email("bill@initech.example"), Surface::ActionCenter, 0.9),
            10,
        )
        .unwrap();
    assert_eq!(s.action.state, ActionState::Proposed);
    assert_eq!(s.decision.gate().name(), "review");
    // Not approved: nothing runs.
    assert!(matches!(
        r.p.execute(&s.action.id, &Subject::User, 11).await,
        Err(PipelineError::NotApproved { .. })
    ));
    me().approve(r.store.as_ref(), &s.action.id, false, 12)
        .unwrap();
    let done = r.p.execute(&s.action.id, &Subject::User, 13).await.unwrap();
    assert_eq!(done.action.state, ActionState::Succeeded);
    let sent = r.sandbox.state.providers.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "bill@initech.example");
    assert_eq!(
        sent[0].message_id,
        dealflow::connectors::gmail::message_id(&s.action.id)
    );
    // Executing again is refused: at most once.
    assert!(r.p.execute(&s.action.id, &Subject::User, 14).await.is_err());
    assert_eq!(r.sandbox.state.providers.sent().len(), 1);
    let log = r.store.audit_page(0, 100).unwrap();
    let exec = log.iter().find(|e| e.event == "action.executed").unwrap();
    assert_eq!(exec.detail["evidence"]["by"], "reviewed");
    assert_eq!(exec.detail["evidence"]["actor"], "user:tester");
    assert_eq!(exec.detail["gate"]["gate"], "review");
    assert_eq!(exec.detail["band"], "≥ 0.90");
    assert_eq!(r.store.verify_audit().unwrap(), Ok(log.len() as i64));
}

#[tokio::test]
async fn allow_gate_runs_without_asking_and_deny_gate_never_runs() {
    let r = rig().await;
    change(
        r.store.as_ref(),
        PermissionChange::SetAutonomy {
            kind: ActionKind::DraftEmail,
            level: Autonomy::Auto,
        },
    );
    change(
        r.store.as_ref(),
        PermissionChange::SetAutonomy {
            kind: ActionKind::PostSlack,
            level: Autonomy::Deny,
        },
    );
    let draft = match email("bill@initech.example") {
        ActionParams::SendEmail(e) => ActionParams::DraftEmail(e),
        _ => unreachable!(),
    };
    let s =
        r.p.submit(proposal(draft, Surface::Chat, 0.95), 10)
            .unwrap();
    assert_eq!(s.action.state, ActionState::Approved);
    let recorded = s.action.evidence.clone().expect("consent recorded");
    assert_eq!(
        recorded.evidence,
        dealflow::core::consent::Evidence::Autonomous
    );
    assert!(recorded.seal.is_some(), "autonomous consent is sealed too");
    r.p.execute(&s.action.id, &Subject::User, 11).await.unwrap();
    assert_eq!(r.sandbox.state.providers.drafts().len(), 1);

    // Low confidence is reviewed even where the kind is auto.
    let low =
        r.p.submit(proposal(email_draft(), Surface::ActionCenter, 0.3), 12)
            .unwrap();
    assert_eq!(low.action.state, ActionState::Proposed);

    let slack = ActionParams::PostSlack {
        channel: "#deals".into(),
        text: "hi".into(),
    };
    let s =
        r.p.submit(proposal(slack, Surface::ActionCenter, 0.99), 13)
            .unwrap();
    assert_eq!(s.action.state, ActionState::Rejected);
    assert!(
        me().approve(r.store.as_ref(), &s.action.id, true, 14)
            .is_err()
    );
    assert!(r.p.execute(&s.action.id, &Subject::User, 15).await.is_err());
    assert!(r.sandbox.state.providers.slack_posts().is_empty());
    assert!(events(r.store.as_ref()).contains(&("action.denied".into(), "denied".into())));
}

fn email_draft() -> ActionParams {
    match email("x@y.example") {
        ActionParams::SendEmail(e) => ActionParams::DraftEmail(e),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn step_up_gate_needs_the_confirmation_then_creates_the_deal() {
    let r = rig().await;
    let deal = ActionParams::CreateDeal {
        name: "Wayne Enterprises".into(),
        account: "Wayne".into(),
        amount_cents: 90_000_000,
        stage: Stage::Qualified,
    };
    let s =
        r.p.submit(proposal(deal, Surface::ActionCenter, 0.95), 10)
            .unwrap();
    assert_eq!(
        s.decision.gate().to_string(),
        "step-up: amount $900,000 > threshold $50,000"
    );
    assert!(matches!(
        me().approve(r.store.as_ref(), &s.action.id, false, 11),
        Err(ReviewError::NeedsStepUp { .. })
    ));
    assert!(r.store.list_deals().unwrap().is_empty());
    me().approve(r.store.as_ref(), &s.action.id, true, 12)
        .unwrap();
    let done = r.p.execute(&s.action.id, &Subject::User, 13).await.unwrap();
    assert_eq!(done.action.state, ActionState::Succeeded);
    let deals = r.store.list_deals().unwrap();
    assert_eq!(deals.len(), 1);
    assert_eq!(deals[0].amount_cents, 90_000_000);
    let log = r.store.audit_page(0, 100).unwrap();
    let exec = log.iter().find(|e| e.event == "action.executed").unwrap();
    assert_eq!(exec.detail["evidence"]["by"], "stepped_up");
}

#[tokio::test]
async fn mcp_writes_wait_for_the_device() {
    let r = rig().await;
    let s =
        r.p.submit(proposal(email("a@b.example"), Surface::Mcp, 1.0), 10)
            .unwrap();
    assert_eq!(s.action.state, ActionState::AwaitingConsent);
    assert_eq!(s.decision.gate().name(), "ciba");
    // A person's review is not enough for a CIBA gate.
    assert!(matches!(
        me().approve(r.store.as_ref(), &s.action.id, true, 11),
        Err(ReviewError::NeedsDevice { .. })
    ));
    assert!(r.p.execute(&s.action.id, &Subject::User, 12).await.is_err());
    assert!(r.sandbox.state.providers.sent().is_empty());
}

#[tokio::test]
async fn a_disconnected_account_blocks_the_exchange_even_though_the_vault_has_tokens() {
    let r = rig().await;
    // The vault still holds the Google tokenset: only dealflow's own switch is off.
    assert!(
        r.sandbox
            .state
            .auth0
            .connected_accounts(DEMO_SUB)
            .iter()
            .any(|a| a.connection == "google-oauth2")
    );
    let exchanges = r.exchanges();
    let s =
        r.p.submit(
            proposal(email("a@b.example"), Surface::ActionCenter, 0.9),
            10,
        )
        .unwrap();
    me().approve(r.store.as_ref(), &s.action.id, false, 11)
        .unwrap();
    change(
        r.store.as_ref(),
        PermissionChange::SetConnected {
            connection: Connection::Google,
            connected: false,
        },
    );
    let err =
        r.p.execute(&s.action.id, &Subject::User, 12)
            .await
            .unwrap_err();
    assert!(matches!(err, PipelineError::Disconnected { .. }), "{err}");
    assert_eq!(
        r.exchanges(),
        exchanges,
        "no exchange for a disconnected account"
    );
    assert!(r.sandbox.state.providers.sent().is_empty());
    assert_eq!(
        r.store.get_action(&s.action.id).unwrap().state,
        ActionState::Approved
    );
    assert!(events(r.store.as_ref()).contains(&("action.blocked".into(), "blocked".into())));
    // Reconnect: it runs.
    change(
        r.store.as_ref(),
        PermissionChange::SetConnected {
            connection: Connection::Google,
            connected: true,
        },
    );
    r.p.execute(&s.action.id, &Subject::User, 13).await.unwrap();
    assert_eq!(r.sandbox.state.providers.sent().len(), 1);
    assert_eq!(r.exchanges(), exchanges + 1);
}

#[tokio::test]
async fn a_missing_scope_asks_for_an_incremental_connect_naming_it() {
    let r = rig().await;
    // The connected account (as the vault and My Account see it) granted calendar only.
    r.sandbox.state.auth0.set_connected_account(
        DEMO_SUB,
        "google-oauth2",
        &["https://www.googleapis.com/auth/calendar.events"],
    );
    let exchanges = r.exchanges();
    let s =
        r.p.submit(
            proposal(email("a@b.example"), Surface::ActionCenter, 0.9),
            10,
        )
        .unwrap();
    me().approve(r.store.as_ref(), &s.action.id, false, 11)
        .unwrap();
    match r.p.execute(&s.action.id, &Subject::User, 12).await {
        Err(PipelineError::NeedsConnect {
            scopes, connection, ..
        }) => {
            assert_eq!(connection, "google-oauth2");
            assert_eq!(scopes, ["https://www.googleapis.com/auth/gmail.send"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        r.store.get_action(&s.action.id).unwrap().state,
        ActionState::Approved
    );
    assert_eq!(r.exchanges(), exchanges, "blocked before any exchange");
    assert!(r.sandbox.state.providers.sent().is_empty());
}

#[tokio::test]
async fn an_edit_or_a_tightened_permission_voids_consent() {
    let r = rig().await;
    let s =
        r.p.submit(
            proposal(email("a@b.example"), Surface::ActionCenter, 0.9),
            10,
        )
        .unwrap();
    let approved = me()
        .approve(r.store.as_ref(), &s.action.id, false, 11)
        .unwrap();
    me().edit(r.store.as_ref(), &s.action.id, &email("c@d.example"), 12)
        .unwrap();
    assert!(matches!(
        r.p.execute(&s.action.id, &Subject::User, 13).await,
        Err(PipelineError::NotApproved { .. })
    ));
    assert_ne!(
        approved.params,
        r.store.get_action(&s.action.id).unwrap().params
    );

    me().approve(r.store.as_ref(), &s.action.id, false, 14)
        .unwrap();
    change(
        r.store.as_ref(),
        PermissionChange::SetAutonomy {
            kind: ActionKind::SendEmail,
            level: Autonomy::StepUp,
        },
    );
    assert!(matches!(
        r.p.execute(&s.action.id, &Subject::User, 15).await,
        Err(PipelineError::ConsentVoid { .. })
    ));
    assert_eq!(
        r.store.get_action(&s.action.id).unwrap().state,
        ActionState::Proposed
    );
    assert!(r.sandbox.state.providers.sent().is_empty());
}

#[tokio::test]
async fn a_provider_401_re_exchanges_once_and_succeeds() {
    let r = rig().await;
    let s =
        r.p.submit(
            proposal(email("a@b.example"), Surface::ActionCenter, 0.9),
            10,
        )
        .unwrap();
    me().approve(r.store.as_ref(), &s.action.id, false, 11)
        .unwrap();
    // Prime the cache, then revoke at the provider: the cached token is now stale.
    let exchanges = r.exchanges();
    let stale = r
        .creds
        .token(Connection::Google, &Subject::User)
        .await
        .unwrap();
    assert_eq!(
        r.sandbox.state.provider_grant(stale.expose()).unwrap().sub,
        DEMO_SUB,
        "the token is the signed-in user's"
    );
    r.sandbox
        .state
        .revoke_provider_tokens(DEMO_SUB, "google-oauth2");
    let done = r.p.execute(&s.action.id, &Subject::User, 12).await.unwrap();
    assert_eq!(
        done.action.state,
        ActionState::Succeeded,
        "{:?}",
        done.action.outcome
    );
    assert_eq!(r.exchanges(), exchanges + 2);
    assert_eq!(r.sandbox.state.providers.calls("gmail.send"), 2);
    assert_eq!(r.sandbox.state.providers.sent().len(), 1);
}

#[tokio::test]
async fn slack_auth_failures_arrive_as_200_ok_false_and_are_mapped() {
    let r = rig().await;
    // The connection claims chat:write but the provider's grant lacks it.
    r.sandbox.state.providers.inject(
        "slack.post",
        Fault {
            status: 200,
            body: Some(r#"{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"channels:read"}"#.into()),
            retry_after_secs: None,
            delay_ms: 0,
            remaining: 1,
        },
    );
    let post = ActionParams::PostSlack {
        channel: "#deals".into(),
        text: "hello".into(),
    };
    let s =
        r.p.submit(proposal(post, Surface::ActionCenter, 0.9), 10)
            .unwrap();
    me().approve(r.store.as_ref(), &s.action.id, false, 11)
        .unwrap();
    let done = r.p.execute(&s.action.id, &Subject::User, 12).await.unwrap();
    assert_eq!(done.action.state, ActionState::Failed);
    assert!(
        done.action
            .outcome
            .unwrap()
            .contains("incremental connect needed: grant chat:write")
    );
    assert!(r.sandbox.state.providers.slack_posts().is_empty());
}

#[tokio::test]
async fn a_429_backs_off_for_retry_after_then_succeeds() {
    let mut r = rig().await;
    // Time is injected: the back-off records what it was asked to wait, and waits not.
    let waited = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = waited.clone();
    r.p.retry.wait = dealflow::wall::Wait(Arc::new(move |d| {
        log.lock().unwrap().push(d);
        Box::pin(std::future::ready(()))
    }));
    r.sandbox.state.providers.inject(
        "calendar.insert",
        Fault {
            status: 429,
            body: None,
            retry_after_secs: Some(1),
            delay_ms: 0,
            remaining: 1,
        },
    );
    let meet = ActionParams::ScheduleMeeting {
        title: "Security review".into(),
        attendees: vec!["pepper@stark.example".into()],
        start: 1_800_000_000_000,
        end: 1_800_000_000_000 + 3_600_000,
        description: String::new(),
    };
    let s =
        r.p.submit(proposal(meet, Surface::ActionCenter, 0.9), 10)
            .unwrap();
    me().approve(r.store.as_ref(), &s.action.id, false, 11)
        .unwrap();
    let done = r.p.execute(&s.action.id, &Subject::User, 12).await.unwrap();
    assert_eq!(
        *waited.lock().unwrap(),
        vec![Duration::from_secs(1)],
        "backed off once, for the Retry-After the provider gave"
    );
    assert_eq!(done.action.state, ActionState::Succeeded);
    assert_eq!(r.sandbox.state.providers.calls("calendar.insert"), 2);
    let events = r.sandbox.state.providers.events();
    assert_eq!(events.len(), 1);
    assert!(events.contains_key(&dealflow::connectors::derived_id(&s.action.id)));
}

#[tokio::test]
async fn provider_errors_fail_cleanly_naming_the_endpoint() {
    let r = rig().await;
    // A 5xx says the provider did not act: failed. A 2xx it could not read probably
    // did act: it must be reconciled, never offered for a blind retry.
    for (status, body, want, state) in [
        (
            500,
            None,
            "calendar.insert: provider error 500",
            ActionState::Failed,
        ),
        (
            200,
            Some("<html>oops</html>".to_string()),
            "calendar.insert: unreadable answer",
            ActionState::NeedsReconciliation,
        ),
    ] {
        r.sandbox.state.providers.inject(
            "calendar.insert",
            Fault {
                status,
                body,
                retry_after_secs: None,
                delay_ms: 0,
                remaining: 1,
            },
        );
        let meet = ActionParams::ScheduleMeeting {
            title: "Sync".into(),
            attendees: vec![],
            start: 1_800_000_000_000,
            end: 1_800_000_000_000 + 1_800_000,
            description: String::new(),
        };
        let s =
            r.p.submit(proposal(meet, Surface::ActionCenter, 0.9), 10)
                .unwrap();
        me().approve(r.store.as_ref(), &s.action.id, false, 11)
            .unwrap();
        let done = r.p.execute(&s.action.id, &Subject::User, 12).await.unwrap();
        assert_eq!(done.action.state, state);
        let outcome = done.action.outcome.unwrap();
        assert!(outcome.contains(want), "{outcome}");
    }
    assert!(r.sandbox.state.providers.events().is_empty());
    let outcomes: Vec<String> = events(r.store.as_ref())
        .into_iter()
        .filter(|(e, _)| e == "action.executed")
        .map(|(_, o)| o)
        .collect();
    assert_eq!(outcomes, ["failed", "unknown"]);
}

#[tokio::test]
async fn a_crash_mid_execution_is_reconciled_by_derived_ids_never_re_run() {
    let r = rig().await;
    let meet = |title: &str| ActionParams::ScheduleMeeting {
        title: title.into(),
        attendees: vec![],
        start: 1_800_000_000_000,
        end: 1_800_000_000_000 + 1_800_000,
        description: String::new(),
    };
    let landed =
        r.p.submit(proposal(meet("landed"), Surface::ActionCenter, 0.9), 10)
            .unwrap()
            .action;
    let lost =
        r.p.submit(proposal(meet("lost"), Surface::ActionCenter, 0.9), 10)
            .unwrap()
            .action;
    let mailed =
        r.p.submit(
            proposal(email("a@b.example"), Surface::ActionCenter, 0.9),
            10,
        )
        .unwrap()
        .action;
    let slack =
        r.p.submit(
            proposal(
                ActionParams::PostSlack {
                    channel: "#deals".into(),
                    text: "x".into(),
                },
                Surface::ActionCenter,
                0.9,
            ),
            10,
        )
        .unwrap()
        .action;
    // Simulate a process that claimed each, called (or not) the provider, and died.
    for a in [&landed, &lost, &mailed, &slack] {
        let ap = me().approve(r.store.as_ref(), &a.id, false, 11).unwrap();
        r.store
            .transition(
                &a.id,
                &Transition {
                    from: ap.state,
                    version: ap.version,
                    to: ActionState::Executing,
                    outcome: None,
                    evidence: None,
                    at: 12,
                },
            )
            .unwrap();
    }
    let t = r
        .creds
        .token(Connection::Google, &Subject::User)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let ep = Endpoints::sandbox(&r.sandbox.base_url());
    let m = dealflow::connectors::calendar::Meeting {
        title: "landed",
        attendees: &[],
        start: 1_800_000_000_000,
        end: 1_800_000_001_000,
        description: "",
    };
    dealflow::connectors::calendar::insert(
        &http,
        &ep,
        t.expose(),
        &landed.id,
        &m,
        &Default::default(),
    )
    .await
    .unwrap();
    let e = match email("a@b.example") {
        ActionParams::SendEmail(e) => e,
        _ => unreachable!(),
    };
    dealflow::connectors::gmail::send_email(
        &http,
        &ep,
        t.expose(),
        &mailed.id,
        &e,
        &Default::default(),
    )
    .await
    .unwrap();

    let out = r.p.reconcile(20).await.unwrap();
    let state = |id: &str| r.store.get_action(id).unwrap().state;
    assert_eq!(state(&landed.id), ActionState::Succeeded);
    assert_eq!(state(&mailed.id), ActionState::Succeeded);
    assert_eq!(state(&lost.id), ActionState::Failed);
    assert!(
        r.store
            .get_action(&lost.id)
            .unwrap()
            .outcome
            .unwrap()
            .contains("safe to retry")
    );
    assert_eq!(
        state(&slack.id),
        ActionState::NeedsReconciliation,
        "Slack cannot be checked: left to the user"
    );
    assert_eq!(out.len(), 4);
    // Nothing was re-run.
    assert_eq!(r.sandbox.state.providers.events().len(), 1);
    assert_eq!(r.sandbox.state.providers.sent().len(), 1);
    assert!(r.sandbox.state.providers.slack_posts().is_empty());
}

#[tokio::test]
async fn reads_run_at_once_and_leave_one_audit_entry_and_no_queue_row() {
    let r = rig().await;
    dealflow::sandbox::demo::seed(r.store.as_ref(), 1).unwrap();
    let queue_before = r
        .store
        .list_actions(&ActionFilter::default())
        .unwrap()
        .len();
    let audit_before = r.store.audit_head().unwrap().0;
    let read = ActionParams::SearchContacts {
        query: "initech".into(),
    };
    let mut p = proposal(read, Surface::Mcp, 0.0);
    p.proposer = "mcp:claude-code".into();
    let done = r.p.run_read(p, 10).await.unwrap();
    assert_eq!(done.action.state, ActionState::Succeeded);
    let o = done.outcome.unwrap();
    assert_eq!(o.data["contacts"][0]["email"], "bill@initech.example");
    let chans =
        r.p.run_read(
            proposal(ActionParams::ListSlackChannels {}, Surface::Mcp, 0.0),
            11,
        )
        .await
        .unwrap();
    assert_eq!(
        chans.outcome.unwrap().data["channels"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        r.store
            .list_actions(&ActionFilter::default())
            .unwrap()
            .len(),
        queue_before,
        "a read is not a queue item"
    );
    let log = r.store.audit_page(audit_before, 100).unwrap();
    assert_eq!(
        log.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["action.read", "action.read"],
        "one entry per read"
    );
    assert_eq!(log[0].actor, "mcp:claude-code");
    assert_eq!(log[0].outcome, "ok");
    assert_eq!(log[0].detail["kind"], "search_contacts");
    assert_eq!(log[0].detail["evidence"]["by"], "autonomous");
    assert!(
        log[0].detail.get("provider").is_none(),
        "what was read stays with the reader: {}",
        log[0].detail
    );
    assert!(r.store.verify_audit().is_ok());

    // A read of a disconnected account is refused before any exchange, and audited.
    change(
        r.store.as_ref(),
        PermissionChange::SetConnected {
            connection: Connection::Slack,
            connected: false,
        },
    );
    let exchanges = r.exchanges();
    let err =
        r.p.run_read(
            proposal(ActionParams::ListSlackChannels {}, Surface::Mcp, 0.0),
            12,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::Disconnected { .. }), "{err}");
    assert_eq!(r.exchanges(), exchanges);
    // Reads the permissions deny are refused, and audited as denied.
    change(
        r.store.as_ref(),
        PermissionChange::SetAutonomy {
            kind: ActionKind::SearchContacts,
            level: Autonomy::Deny,
        },
    );
    let err =
        r.p.run_read(
            proposal(
                ActionParams::SearchContacts {
                    query: "initech".into(),
                },
                Surface::Mcp,
                0.0,
            ),
            13,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PipelineError::Denied { .. }), "{err}");
    let tail: Vec<_> = events(r.store.as_ref()).into_iter().rev().take(3).collect();
    assert!(
        tail.contains(&("action.denied".into(), "denied".into()))
            && tail.contains(&("action.blocked".into(), "blocked".into())),
        "{tail:?}"
    );
    // A write is never run as a read.
    assert!(matches!(
        r.p.run_read(proposal(email("a@b.example"), Surface::Mcp, 0.0), 14)
            .await,
        Err(PipelineError::Invalid { .. })
    ));
}

#[tokio::test]
async fn amounts_come_from_the_store_not_from_the_proposer() {
    let r = rig().await;
    dealflow::sandbox::demo::seed(r.store.as_ref(), 1).unwrap();
    // Closing the $75,000 Acme deal as lost, claiming it is worth nothing.
    let sneaky = ActionParams::CloseDeal {
        revision: None,
        deal_id: "deal-acme".into(),
        won: false,
        amount_cents: 0,
    };
    let s =
        r.p.submit(proposal(sneaky, Surface::Chat, 1.0), 10)
            .unwrap();
    assert_eq!(
        s.decision.gate().to_string(),
        "step-up: amount $75,000 > threshold $50,000"
    );
    match &s.action.params {
        ActionParams::CloseDeal { amount_cents, .. } => assert_eq!(*amount_cents, 7_500_000),
        other => panic!("{other:?}"),
    }
    // Closing through update_deal would dodge the close-won rule: refused.
    let dodge = ActionParams::UpdateDeal {
        revision: None,
        deal_id: "deal-acme".into(),
        stage: Some(Stage::ClosedWon),
        amount_cents: None,
        notes: None,
    };
    assert!(matches!(
        r.p.submit(proposal(dodge, Surface::Chat, 1.0), 11),
        Err(PipelineError::Invalid { .. })
    ));
    let ghost = ActionParams::CloseDeal {
        revision: None,
        deal_id: "deal-nope".into(),
        won: true,
        amount_cents: 0,
    };
    assert!(matches!(
        r.p.submit(proposal(ghost, Surface::Chat, 1.0), 12),
        Err(PipelineError::Invalid { .. })
    ));
}

#[tokio::test]
async fn a_fresh_execution_in_another_process_is_not_swept() {
    let r = rig().await;
    let mut p = Pipeline::new(
        r.store.clone(),
        r.creds.clone(),
        Endpoints::sandbox(&r.sandbox.base_url()),
        "x".into(),
    );
    p.executing_lease = Duration::from_secs(120);
    let s =
        r.p.submit(
            proposal(email("a@b.example"), Surface::ActionCenter, 0.9),
            10,
        )
        .unwrap();
    let ap = me()
        .approve(r.store.as_ref(), &s.action.id, false, 11)
        .unwrap();
    let now = dealflow::wall::now_ms();
    r.store
        .transition(
            &s.action.id,
            &Transition {
                from: ap.state,
                version: ap.version,
                to: ActionState::Executing,
                outcome: None,
                evidence: None,
                at: now,
            },
        )
        .unwrap();
    p.reconcile(now + 1_000).await.unwrap();
    assert_eq!(
        r.store.get_action(&s.action.id).unwrap().state,
        ActionState::Executing,
        "within its lease"
    );
    p.reconcile(now + 121_000).await.unwrap();
    assert_ne!(
        r.store.get_action(&s.action.id).unwrap().state,
        ActionState::Executing,
        "past its lease"
    );
}

/// A Monday, 09:00 UTC: budget reasons name the time, so it should read like one.
const MONDAY_9: i64 = 1_700_470_800_000;

/// Blast-radius budget, end to end on the sandbox: with send_email on `auto` and a 20 per
/// day budget, twenty emails run without anyone asked (each through `execute`, whose own
/// re-check does not count an action against itself), the 21st stops for review with the
/// budget in its reason chain, a person's approval of it does not spend the budget, and
/// once the first of the twenty is a day old the window has room again.
#[tokio::test]
async fn the_21st_email_of_a_day_under_a_20_budget_stops_for_review() {
    let r = rig().await;
    let s = r.store.as_ref();
    change(
        s,
        PermissionChange::SetAutonomy {
            kind: ActionKind::SendEmail,
            level: Autonomy::Auto,
        },
    );
    change(
        s,
        PermissionChange::Know {
            pattern: "@initech.example".into(),
        },
    );
    change(
        s,
        dealflow::core::permissions::budget_change("send_email", "20/day", false).unwrap(),
    );
    let at = |i: i64| MONDAY_9 + i * 60_000;
    for i in 0..20 {
        let sub =
            r.p.submit(
                proposal(
                    email(&format!("rep{i}@initech.example")),
                    Surface::ActionCenter,
                    0.95,
                ),
                at(i),
            )
            .unwrap();
        assert_eq!(
            sub.action.state,
            ActionState::Approved,
            "#{} ran without review: {}",
            i + 1,
            sub.decision.explain()
        );
        let done =
            r.p.execute(&sub.action.id, &Subject::User, at(i))
                .await
                .unwrap();
        assert_eq!(done.action.state, ActionState::Succeeded);
    }
    assert_eq!(r.sandbox.state.providers.sent().len(), 20);

    let over =
        r.p.submit(
            proposal(email("bill@initech.example"), Surface::ActionCenter, 0.95),
            at(20),
        )
        .unwrap();
    assert_eq!(over.action.state, ActionState::Proposed);
    assert_eq!(over.decision.gate().name(), "review");
    let why = over.decision.explain();
    assert!(
        why.contains(
            "budget: 20 send_email per day reached (20 ran without review since 2023-11-20 09:00 UTC)"
        ),
        "{why}"
    );
    // The proposal's audit entry carries the same chain.
    let proposed = s
        .audit_about(&over.action.id, 0)
        .unwrap()
        .into_iter()
        .find(|e| e.event == "action.proposed")
        .unwrap();
    assert!(
        proposed.detail["reasons"]
            .to_string()
            .contains("budget: 20 send_email")
    );
    assert!(
        matches!(
            r.p.execute(&over.action.id, &Subject::User, at(20)).await,
            Err(PipelineError::NotApproved { .. })
        ),
        "nothing runs before a person looks"
    );
    assert_eq!(r.sandbox.state.providers.sent().len(), 20);

    // A person's approval is a review: it runs, and spends no budget.
    me().approve(s, &over.action.id, false, at(21)).unwrap();
    r.p.execute(&over.action.id, &Subject::User, at(21))
        .await
        .unwrap();
    assert_eq!(r.sandbox.state.providers.sent().len(), 21);

    // A day after the first of the twenty, the window holds nineteen: room for one more.
    let next_day = at(0) + 24 * 3_600_000 + 1;
    let later =
        r.p.submit(
            proposal(email("ann@initech.example"), Surface::ActionCenter, 0.95),
            next_day,
        )
        .unwrap();
    assert_eq!(
        later.action.state,
        ActionState::Approved,
        "{}",
        later.decision.explain()
    );
    assert_eq!(s.verify_audit().unwrap().map(|n| n > 40), Ok(true));
}

/// A per-counterparty budget and an auto-approve rule: the rule lets suggestions to
/// @initech.example through until three ran without review that day; the fourth is
/// reviewed, naming the domain, and the rule is not credited with it.
#[tokio::test]
async fn a_per_counterparty_budget_stops_an_auto_approve_rule() {
    let r = rig().await;
    let s = r.store.as_ref();
    change(
        s,
        PermissionChange::Know {
            pattern: "@initech.example".into(),
        },
    );
    change(
        s,
        PermissionChange::AddAutoRule {
            rule: dealflow::core::permissions::AutoApproveRule {
                id: "rule-initech".into(),
                kind: ActionKind::SendEmail,
                target: "@initech.example".into(),
                min_confidence: 0.9,
                created_at: MONDAY_9 - 1_000,
                expires_at: MONDAY_9 + 86_400_000,
                paused: None,
            },
        },
    );
    change(
        s,
        dealflow::core::permissions::budget_change("send_email", "3/day", true).unwrap(),
    );
    for i in 0..3 {
        let sub =
            r.p.submit(
                proposal(email("bill@initech.example"), Surface::ActionCenter, 0.95),
                MONDAY_9 + i,
            )
            .unwrap();
        assert_eq!(sub.decision.auto_rule(), Some("rule-initech"));
        assert_eq!(sub.action.state, ActionState::Approved);
    }
    let fourth =
        r.p.submit(
            proposal(email("ann@initech.example"), Surface::ActionCenter, 0.95),
            MONDAY_9 + 10,
        )
        .unwrap();
    assert_eq!(fourth.action.state, ActionState::Proposed);
    assert_eq!(fourth.decision.auto_rule(), None);
    assert!(
        fourth.decision.explain().contains(
            "budget: 3 send_email per day to @initech.example reached (3 ran without review"
        ),
        "{}",
        fourth.decision.explain()
    );
}

/// A "no" beats an earlier "always": rejecting a suggestion an auto-approve rule let
/// through pauses the rule (an audited permission change naming the action); while
/// paused, a matching suggestion waits for review and its chain says why; resuming
/// restores it; taking an approval back (the outbox's undo) pauses it again.
#[tokio::test]
async fn a_rejection_pauses_the_rule_that_would_have_run_it_until_resumed() {
    let r = rig().await;
    let s = r.store.as_ref();
    change(
        s,
        PermissionChange::Know {
            pattern: "@initech.example".into(),
        },
    );
    change(
        s,
        PermissionChange::AddAutoRule {
            rule: dealflow::core::permissions::AutoApproveRule {
                id: "rule-initech".into(),
                kind: ActionKind::SendEmail,
                target: "@initech.example".into(),
                min_confidence: 0.9,
                created_at: MONDAY_9 - 1_000,
                expires_at: MONDAY_9 + 30 * 86_400_000,
                paused: None,
            },
        },
    );
    let suggest = |to: &str, at: i64| {
        r.p.submit(proposal(email(to), Surface::ActionCenter, 0.95), at)
            .unwrap()
    };
    let first = suggest("bill@initech.example", MONDAY_9);
    assert_eq!(first.action.state, ActionState::Approved);
    assert_eq!(first.decision.auto_rule(), Some("rule-initech"));
    // The person says no before it runs.
    me().reject(s, &first.action.id, Some("wrong tone".into()), MONDAY_9 + 1)
        .unwrap();
    let rule = || s.load_permissions().unwrap().auto_rules[0].clone();
    let pause = rule().paused.expect("the rule is paused");
    assert_eq!(pause.action_id, first.action.id);
    assert_eq!(pause.by, "rejected");
    assert_eq!(pause.at, MONDAY_9 + 1);
    assert_eq!(pause.reason.as_deref(), Some("wrong tone"));
    let audited = s
        .audit_about(&first.action.id, 0)
        .unwrap()
        .into_iter()
        .find(|e| e.event == "permissions.changed")
        .expect("the pause is audited with the action");
    assert_eq!(audited.actor, "user:tester");
    let summary = audited.detail["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!(
            "auto-approve rule rule-initech paused: you rejected {} (bill@initech.example) at 2023-11-20 09:00 UTC: wrong tone",
            first.action.id
        )),
        "{summary}"
    );
    assert!(
        r.p.execute(&first.action.id, &Subject::User, MONDAY_9 + 2)
            .await
            .is_err()
    );
    assert!(r.sandbox.state.providers.sent().is_empty());

    // Paused, it approves nothing: the next one to Initech waits, and says why.
    let second = suggest("ann@initech.example", MONDAY_9 + 10);
    assert_eq!(second.action.state, ActionState::Proposed);
    assert_eq!(second.decision.auto_rule(), None);
    assert!(
        second
            .decision
            .explain()
            .contains("auto-approve rule rule-initech is paused: you rejected"),
        "{}",
        second.decision.explain()
    );
    // A second rejection of the same pattern does not pause it twice.
    let entries = || s.audit_page(0, 10_000).unwrap().len();
    let before = entries();
    me().reject(s, &second.action.id, None, MONDAY_9 + 11)
        .unwrap();
    assert_eq!(entries(), before + 1, "only the rejection");

    // The person looks at it and resumes it: the rule approves again.
    change(
        s,
        PermissionChange::ResumeAutoRule {
            id: "rule-initech".into(),
        },
    );
    assert!(rule().paused.is_none());
    let third = suggest("carl@initech.example", MONDAY_9 + 20);
    assert_eq!(third.action.state, ActionState::Approved);
    assert_eq!(third.decision.auto_rule(), Some("rule-initech"));
    r.p.execute(&third.action.id, &Subject::User, MONDAY_9 + 21)
        .await
        .unwrap();
    assert_eq!(r.sandbox.state.providers.sent().len(), 1);

    // Taking an approval back out of the outbox is a "no" too.
    let fourth = suggest("dee@initech.example", MONDAY_9 + 30);
    assert_eq!(fourth.action.state, ActionState::Approved);
    me().withdraw(s, &fourth.action.id, "undo send", MONDAY_9 + 31)
        .unwrap();
    assert_eq!(rule().paused.unwrap().by, "withdrew");
    // A suggestion the rule does not cover (another domain) pauses nothing.
    change(
        s,
        PermissionChange::ResumeAutoRule {
            id: "rule-initech".into(),
        },
    );
    let other = suggest("ann@acme.example", MONDAY_9 + 40);
    me().reject(s, &other.action.id, None, MONDAY_9 + 41)
        .unwrap();
    assert!(rule().paused.is_none());
    assert_eq!(s.verify_audit().unwrap().map(|n| n > 10), Ok(true));
}

#[path = "pipeline/salesforce.rs"]
mod salesforce;
