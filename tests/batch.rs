//! CIBA batches end to end: the real Auth0 clients against the emulator, the sandbox
//! phone approving or denying, real SQLite, the emulated providers counting side effects.

#![allow(clippy::unwrap_used)]

use dealflow::connectors::Endpoints;
use dealflow::core::domain::{ActionParams, ActionState, Email, Surface};
use dealflow::runtime::batch::{
    BatchOptions, BatchReport, binding_message, binding_message_for, rep_label, run_once,
};
use dealflow::runtime::pipeline::{Pipeline, Proposal};
use dealflow::runtime::review::Reviewer;
use dealflow::sandbox::wiring::{SandboxWiring, wire_fast_sandbox};
use dealflow::store::{ActionFilter, SqliteStore, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Rig {
    _dir: tempfile::TempDir,
    w: SandboxWiring,
    p: Arc<Pipeline>,
    store: Arc<dyn Store>,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    // Protocol seconds last 20 ms, so CIBA intervals and expiries take milliseconds.
    let w = wire_fast_sandbox().await.unwrap();
    let base = w.sandbox.base_url();
    let p = Arc::new(Pipeline::new(
        store.clone(),
        w.creds.clone(),
        Endpoints::sandbox(&base),
        "rep@dealflow.test".into(),
    ));
    Rig {
        _dir: dir,
        w,
        p,
        store,
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

fn meeting(n: i64) -> ActionParams {
    ActionParams::ScheduleMeeting {
        title: format!("Sync {n}"),
        attendees: vec!["pepper@stark.example".into()],
        start: 1_800_000_000_000 + n * 3_600_000,
        end: 1_800_000_000_000 + n * 3_600_000 + 1_800_000,
        description: String::new(),
    }
}

/// Files `params` in the Action Center and sends each to the device queue (the TUI's `b`).
fn queue(r: &Rig, params: Vec<ActionParams>) -> Vec<String> {
    let me = Reviewer {
        actor: "user:tester".into(),
        surface: Surface::ActionCenter,
    };
    params
        .into_iter()
        .map(|params| {
            let s =
                r.p.submit(
                    Proposal {
                        title: params.kind().to_string(),
                        params,
                        surface: Surface::ActionCenter,
                        confidence: 0.9,
                        justification: "test".into(),
                        proposer: "agent:test".into(),
                    },
                    1,
                )
                .unwrap();
            me.queue_for_device(r.store.as_ref(), &s.action.id, 2)
                .unwrap()
                .id
        })
        .collect()
}

/// Runs one batch round while `phone` answers the device request it sees.
async fn batch_with_phone(
    r: &Rig,
    opts: BatchOptions,
    phone: impl FnOnce(&Rig, &str) + Send,
) -> BatchReport {
    let cancel = CancellationToken::new();
    let (p, device) = (r.p.clone(), r.w.device.clone());
    let task = tokio::spawn(async move { run_once(p, device.as_ref(), &opts, &cancel).await });
    let state = r.w.sandbox.state.clone();
    let mut pending = Vec::new();
    for _ in 0..500 {
        pending = state.phone_pending();
        if !pending.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if pending.is_empty() {
        let events: Vec<_> = r
            .store
            .audit_page(0, 1000)
            .unwrap()
            .into_iter()
            .map(|e| (e.event, e.detail.to_string()))
            .collect();
        panic!("no device request; audit: {events:?}");
    }
    assert_eq!(pending.len(), 1, "one device request for the whole batch");
    phone(r, &pending[0].id);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

fn states(r: &Rig, ids: &[String]) -> Vec<ActionState> {
    ids.iter()
        .map(|id| r.store.get_action(id).unwrap().state)
        .collect()
}

fn audit_events(r: &Rig) -> Vec<(String, String)> {
    r.store
        .audit_page(0, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.outcome))
        .collect()
}

#[tokio::test]
async fn one_push_approves_the_batch_and_each_connection_is_exchanged_once() {
    let r = rig().await;
    let ids = queue(
        &r,
        vec![
            email("a@x.example"),
            email("b@x.example"),
            email("c@x.example"),
            meeting(1),
            meeting(2),
        ],
    );
    let before = r.w.sandbox.state.auth0.vault_exchange_count();
    let report = batch_with_phone(&r, BatchOptions::default(), |r, id| {
        let req =
            r.w.sandbox
                .state
                .phone_pending()
                .into_iter()
                .find(|p| p.id == id)
                .unwrap();
        assert_eq!(req.binding_message, "dealflow: 5 actions - 3 email 2 cal");
        assert!(r.w.sandbox.state.phone_approve(id));
    })
    .await;
    assert_eq!(report.succeeded.len(), 5, "{report:?}");
    assert!(
        states(&r, &ids)
            .iter()
            .all(|s| *s == ActionState::Succeeded)
    );
    assert_eq!(r.w.sandbox.state.providers.sent().len(), 3);
    assert_eq!(r.w.sandbox.state.providers.events().len(), 2);
    // One Token Vault exchange per connection per batch (google only here), not per action.
    assert_eq!(r.w.sandbox.state.auth0.vault_exchange_count() - before, 1);
    let log = r.store.audit_page(0, 10_000).unwrap();
    let req = log.iter().find(|e| e.event == "batch.requested").unwrap();
    assert_eq!(
        req.detail["binding_message"],
        "dealflow: 5 actions - 3 email 2 cal"
    );
    assert_eq!(req.detail["batch_hash"].as_str().unwrap().len(), 64);
    let exec = log
        .iter()
        .filter(|e| e.event == "action.executed")
        .collect::<Vec<_>>();
    assert_eq!(exec.len(), 5);
    assert!(exec.iter().all(|e| e.detail["evidence"]["by"] == "ciba"
        && e.detail["evidence"]["binding_message"] == "dealflow: 5 actions - 3 email 2 cal"));
    assert_eq!(r.store.verify_audit().unwrap(), Ok(log.len() as i64));
}

#[tokio::test]
async fn a_denied_push_executes_nothing() {
    let r = rig().await;
    let ids = queue(&r, vec![email("a@x.example"), meeting(1)]);
    let report = batch_with_phone(&r, BatchOptions::default(), |r, id| {
        assert!(r.w.sandbox.state.phone_deny(id));
    })
    .await;
    assert_eq!(report.rejected.len(), 2);
    assert_eq!(
        states(&r, &ids),
        [ActionState::Rejected, ActionState::Rejected]
    );
    assert!(r.w.sandbox.state.providers.sent().is_empty());
    assert!(r.w.sandbox.state.providers.events().is_empty());
    assert!(audit_events(&r).contains(&("batch.denied".into(), "denied".into())));
}

#[tokio::test]
async fn an_unanswered_push_times_out_as_a_timeout_not_a_no() {
    let r = rig().await;
    r.w.sandbox
        .state
        .auth0
        .set_timing(|t| t.ciba_expires_in_s = 15);
    let ids = queue(&r, vec![email("a@x.example")]);
    let report = batch_with_phone(&r, BatchOptions::default(), |_, _| {}).await;
    assert_eq!(report.leftover, ids);
    assert_eq!(
        states(&r, &ids),
        [ActionState::AwaitingConsent],
        "still queued, not rejected"
    );
    assert!(r.w.sandbox.state.providers.sent().is_empty());
    let events = audit_events(&r);
    assert!(events.contains(&("batch.expired".into(), "timeout".into())));
    assert!(!events.iter().any(|(e, _)| e == "batch.denied"));
}

/// With the actions on the phone (RAR), the token approves each payload by its digest:
/// an edit after the push keeps the edited action from running and lets the rest run.
#[tokio::test]
async fn an_edit_after_the_request_keeps_only_that_action_from_running() {
    let r = rig().await;
    let ids = queue(&r, vec![email("a@x.example"), email("b@x.example")]);
    let store = r.store.clone();
    let target = ids[1].clone();
    let report = batch_with_phone(&r, BatchOptions::default(), move |r, id| {
        let me = Reviewer {
            actor: "user:tester".into(),
            surface: Surface::ActionCenter,
        };
        me.edit(store.as_ref(), &target, &email("someone-else@x.example"), 5)
            .unwrap();
        assert!(r.w.sandbox.state.phone_approve(id));
    })
    .await;
    assert_eq!(report.voided, 0);
    assert_eq!(report.succeeded, [ids[0].clone()]);
    assert_eq!(report.not_approved, [ids[1].clone()]);
    let sent = r.w.sandbox.state.providers.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].to.contains("a@x.example"), "{sent:?}");
    assert_eq!(
        states(&r, &ids),
        [ActionState::Succeeded, ActionState::Proposed]
    );
}

/// Without RAR (an older tenant ignores the parameter), the approval covers the batch
/// hash: any edit after the push voids all of it.
#[tokio::test]
async fn an_edit_after_the_request_voids_the_approval() {
    let r = rig().await;
    r.w.sandbox
        .state
        .auth0
        .set_rar(dealflow::sandbox::auth0::rar::RarSupport::Ignored);
    let ids = queue(&r, vec![email("a@x.example"), email("b@x.example")]);
    let store = r.store.clone();
    let target = ids[1].clone();
    let report = batch_with_phone(&r, BatchOptions::default(), move |r, id| {
        let me = Reviewer {
            actor: "user:tester".into(),
            surface: Surface::ActionCenter,
        };
        me.edit(store.as_ref(), &target, &email("someone-else@x.example"), 5)
            .unwrap();
        assert!(r.w.sandbox.state.phone_approve(id));
    })
    .await;
    assert_eq!(report.voided, 1);
    assert!(report.succeeded.is_empty());
    assert!(
        r.w.sandbox.state.providers.sent().is_empty(),
        "the phone approved something else"
    );
    assert_eq!(
        states(&r, &ids),
        [ActionState::AwaitingConsent, ActionState::Proposed]
    );
    assert!(audit_events(&r).contains(&("batch.voided".into(), "denied".into())));
}

#[tokio::test]
async fn when_the_window_ends_mid_batch_the_rest_goes_back_to_the_queue() {
    let r = rig().await;
    r.w.sandbox.state.providers.set_latency_ms(300);
    let ids = queue(&r, (0..6).map(meeting).collect());
    let opts = BatchOptions {
        window: Duration::from_millis(1000),
        concurrency: 1,
        ..Default::default()
    };
    let report = batch_with_phone(&r, opts, |r, id| {
        assert!(r.w.sandbox.state.phone_approve(id));
    })
    .await;
    assert!(!report.succeeded.is_empty(), "{report:?}");
    assert!(!report.leftover.is_empty(), "{report:?}");
    assert_eq!(report.succeeded.len() + report.leftover.len(), 6);
    let st = states(&r, &ids);
    assert_eq!(
        st.iter().filter(|s| **s == ActionState::Succeeded).count(),
        report.succeeded.len()
    );
    assert_eq!(
        st.iter()
            .filter(|s| **s == ActionState::AwaitingConsent)
            .count(),
        report.leftover.len()
    );
    assert_eq!(
        r.w.sandbox.state.providers.events().len(),
        report.succeeded.len()
    );
    assert!(audit_events(&r).contains(&("batch.leftover".into(), "timeout".into())));
    // The next batch picks the leftovers up.
    r.w.sandbox.state.providers.set_latency_ms(0);
    let again = batch_with_phone(&r, BatchOptions::default(), |r, id| {
        assert!(r.w.sandbox.state.phone_approve(id));
    })
    .await;
    assert_eq!(again.succeeded.len(), report.leftover.len());
    assert_eq!(r.w.sandbox.state.providers.events().len(), 6);
}

#[test]
fn binding_messages_fit_ciba_and_say_what_is_asked() {
    let a = |p: ActionParams| dealflow::core::domain::Action {
        id: "x".into(),
        original: p.clone(),
        params: p,
        state: ActionState::AwaitingConsent,
        version: 1,
        surface: Surface::Mcp,
        confidence: 1.0,
        justification: String::new(),
        title: String::new(),
        created_at: 0,
        updated_at: 0,
        outcome: None,
        evidence: None,
    };
    assert_eq!(
        binding_message(&[a(email("bill@initech.example"))]),
        "dealflow: send_email bill at initech.example"
    );
    let long = email(&format!("{}@x.example", "a".repeat(80)));
    assert_eq!(binding_message(&[a(long)]).chars().count(), 64);
    assert_eq!(
        binding_message(&[a(ActionParams::PostSlack {
            channel: "#deals".into(),
            text: "x".into()
        })]),
        "dealflow: post_slack #deals"
    );
    let odd = binding_message(&[a(ActionParams::CreateDeal {
        name: "Ünïcode (Ltd) & co!".into(),
        account: "x".into(),
        amount_cents: 1,
        stage: dealflow::core::domain::Stage::Qualified,
    })]);
    assert!(
        odd.chars()
            .all(|c| c.is_ascii_alphanumeric() || " +-_.,:#".contains(c)),
        "{odd}"
    );
    let many: Vec<_> = (0..40)
        .map(|i| {
            a(if i % 2 == 0 {
                meeting(i)
            } else {
                email("x@y.example")
            })
        })
        .collect();
    let m = binding_message(&many);
    assert!(
        m.len() <= 64 && m.starts_with("dealflow: 40 actions - 20 cal 20 email"),
        "{m}"
    );
}

#[tokio::test]
async fn nothing_is_queued_nothing_is_asked() {
    let r = rig().await;
    let report = run_once(
        r.p.clone(),
        r.w.device.as_ref(),
        &BatchOptions::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.requests, 0);
    assert!(r.w.sandbox.state.phone_pending().is_empty());
    let _ = r.store.list_actions(&ActionFilter::default()).unwrap();
}

/// A close-won rule naming a team lead goes to the lead's phone, and runs only on the
/// lead's yes: the evidence carries the verified token's subject, which is the lead.
#[tokio::test]
async fn a_close_that_needs_the_team_lead_runs_on_the_leads_yes() {
    use dealflow::core::audit::NewAuditEntry;
    use dealflow::core::permissions::{Approver, Autonomy, PermissionChange};
    use dealflow::sandbox::auth0::model::LEAD_SUB;
    let r = rig().await;
    dealflow::sandbox::demo::seed(r.store.as_ref(), 1).unwrap();
    r.store
        .change_permissions(
            &PermissionChange::SetCloseWon {
                level: Autonomy::Ciba,
                approver: Approver::TeamLead(LEAD_SUB.into()),
            },
            NewAuditEntry {
                ts: 1,
                actor: "user:tester".into(),
                surface: None,
                event: "permissions.changed".into(),
                action_id: None,
                outcome: "ok".into(),
                detail: serde_json::json!({}),
            },
        )
        .unwrap();
    let s =
        r.p.submit(
            Proposal {
                title: "close acme".into(),
                params: ActionParams::CloseDeal {
                    revision: None,
                    deal_id: "deal-acme".into(),
                    won: true,
                    amount_cents: 0,
                },
                surface: Surface::Chat,
                confidence: 1.0,
                justification: "test".into(),
                proposer: "user:tester".into(),
            },
            1,
        )
        .unwrap();
    assert_eq!(s.action.state, ActionState::AwaitingConsent);
    // The rep's own approval cannot stand in for the lead's.
    let me = Reviewer {
        actor: "user:tester".into(),
        surface: Surface::Cli,
    };
    assert!(
        me.approve(r.store.as_ref(), &s.action.id, true, 2)
            .unwrap_err()
            .to_string()
            .contains("team lead")
    );
    let report = batch_with_phone(&r, BatchOptions::default(), |r, id| {
        assert!(r.w.sandbox.state.phone_approve(id));
    })
    .await;
    assert_eq!(report.succeeded, vec![s.action.id.clone()], "{report:?}");
    let log = r.store.audit_page(0, 10_000).unwrap();
    let exec = log.iter().find(|e| e.event == "action.executed").unwrap();
    assert_eq!(exec.detail["evidence"]["sub"], LEAD_SUB);
    assert_eq!(
        r.store.get_deal("deal-acme").unwrap().unwrap().stage,
        dealflow::core::domain::Stage::ClosedWon
    );
}

/// Two gatherers on one store (the TUI and `batch --every`, or the service): while one
/// round waits on the phone, another sends nothing, so no action is pushed twice; after
/// the round the lease is free again.
#[tokio::test]
async fn a_second_gatherer_during_a_round_pushes_nothing() {
    let r = rig().await;
    let ids = queue(&r, vec![email("a@x.example"), meeting(1)]);
    let second = {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&r._dir.path().join("s.db")).unwrap());
        Arc::new(Pipeline::new(
            store,
            r.w.creds.clone(),
            Endpoints::sandbox(&r.w.sandbox.base_url()),
            "rep@dealflow.test".into(),
        ))
    };
    let device = r.w.device.clone();
    let report = batch_with_phone(&r, BatchOptions::default(), |_, _| {
        let other = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Runtime::new().unwrap().block_on(run_once(
                    second.clone(),
                    device.as_ref(),
                    &BatchOptions::default(),
                    &CancellationToken::new(),
                ))
            })
            .join()
            .unwrap()
        })
        .unwrap();
        assert!(other.elsewhere.unwrap().contains("pid "));
        assert_eq!(other.requests, 0);
        assert_eq!(r.w.sandbox.state.phone_pending().len(), 1, "still one push");
        assert!(
            r.w.sandbox
                .state
                .phone_approve(&r.w.sandbox.state.phone_pending()[0].id)
        );
    })
    .await;
    assert_eq!(report.succeeded.len(), 2, "{report:?}");
    assert!(
        states(&r, &ids)
            .iter()
            .all(|s| *s == ActionState::Succeeded)
    );
    // Released, not merely lapsed: no lease is left at any time.
    assert!(r.store.leases(0).unwrap().is_empty());
}

// ---------------------------------------------------------------- RAR (RFC 9396)

fn approved_detail(r: &Rig) -> serde_json::Value {
    r.store
        .audit_page(0, 10_000)
        .unwrap()
        .into_iter()
        .rfind(|e| e.event == "batch.approved")
        .map(|e| e.detail)
        .unwrap()
}

/// Three actions reach the phone as three typed entries (what, to whom, subject, the
/// payload's digest) beside the short binding message; approving all runs all, and the
/// audit says the approval is proven by what the token carries.
#[tokio::test]
async fn three_actions_arrive_on_the_phone_as_three_entries_and_all_run() {
    let r = rig().await;
    let ids = queue(
        &r,
        vec![email("a@x.example"), email("b@x.example"), meeting(1)],
    );
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = shown.clone();
    let report = batch_with_phone(&r, BatchOptions::default(), move |r, id| {
        let req = r.w.sandbox.state.phone_pending().pop().unwrap();
        *seen.lock().unwrap() = req.authorization_details.clone();
        assert!(req.binding_message.starts_with("dealflow: 3 actions"));
        assert!(r.w.sandbox.state.phone_approve(id));
    })
    .await;
    let shown = shown.lock().unwrap().clone();
    assert_eq!(shown.len(), 3, "{shown:?}");
    let mut on_phone: Vec<(&str, &str, &str)> = shown
        .iter()
        .map(|d| {
            (
                d["type"].as_str().unwrap(),
                d["action"].as_str().unwrap(),
                d["counterparty"].as_str().unwrap(),
            )
        })
        .collect();
    on_phone.sort();
    assert_eq!(
        on_phone,
        [
            (
                "dealflow_action",
                "schedule_meeting",
                "pepper@stark.example"
            ),
            ("dealflow_action", "send_email", "a@x.example"),
            ("dealflow_action", "send_email", "b@x.example"),
        ]
    );
    for id in &ids {
        let d = shown
            .iter()
            .find(|d| d["action_id"] == id.as_str())
            .unwrap();
        let a = r.store.get_action(id).unwrap();
        assert_eq!(
            d["digest"],
            dealflow::core::consent::payload_digest(&a.params)
        );
    }
    assert_eq!(report.succeeded.len(), 3, "{report:?}");
    assert!(report.not_approved.is_empty());
    let detail = approved_detail(&r);
    assert_eq!(detail["proof"], "authorization_details");
}

/// The approver says yes to two of three: the token carries two, two run, the third is
/// reported and goes back to the queue for a person (not to the next push).
#[tokio::test]
async fn a_token_that_carries_two_of_three_runs_two_and_reports_the_third() {
    let r = rig().await;
    let ids = queue(
        &r,
        vec![
            email("a@x.example"),
            email("b@x.example"),
            email("c@x.example"),
        ],
    );
    let report = batch_with_phone(&r, BatchOptions::default(), |r, id| {
        // The approver reads the entries and leaves out the one to b.
        let req = r.w.sandbox.state.phone_pending().pop().unwrap();
        let keep: Vec<usize> = (0..req.authorization_details.len())
            .filter(|&i| req.authorization_details[i]["counterparty"] != "b@x.example")
            .collect();
        assert_eq!(keep.len(), 2);
        assert!(r.w.sandbox.state.phone_approve_only(id, &keep));
    })
    .await;
    let mut ran = report.succeeded.clone();
    ran.sort();
    let mut expected = vec![ids[0].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(ran, expected);
    assert_eq!(report.not_approved, [ids[1].clone()]);
    assert_eq!(
        states(&r, &ids),
        [
            ActionState::Succeeded,
            ActionState::Proposed,
            ActionState::Succeeded
        ]
    );
    let b = r.store.get_action(&ids[1]).unwrap();
    assert!(
        b.outcome
            .unwrap()
            .contains("not among the actions the approval carries"),
        "the queue says why"
    );
    let sent: Vec<String> =
        r.w.sandbox
            .state
            .providers
            .sent()
            .into_iter()
            .map(|m| m.to)
            .collect();
    assert_eq!(sent.len(), 2);
    assert!(!sent.iter().any(|t| t.contains("b@x.example")), "{sent:?}");
    let detail = approved_detail(&r);
    assert_eq!(detail["not_approved"][0]["id"], ids[1].as_str());
    // The next round asks nothing: the third waits for a person, not for the phone.
    let again = run_once(
        r.p.clone(),
        r.w.device.as_ref(),
        &BatchOptions::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(again.requests, 0);
}

/// A tenant without the type registered refuses `authorization_details`: the push goes
/// without them (once refused, this process stops asking), the batch is bound by its
/// hash as before, and the audit says why.
#[tokio::test]
async fn a_tenant_that_refuses_the_type_gets_a_hash_bound_batch() {
    let r = rig().await;
    r.w.sandbox
        .state
        .auth0
        .set_rar(dealflow::sandbox::auth0::rar::RarSupport::Types(vec![]));
    let ids = queue(&r, vec![email("a@x.example"), email("b@x.example")]);
    let report = batch_with_phone(&r, BatchOptions::default(), |r, id| {
        let req = r.w.sandbox.state.phone_pending().pop().unwrap();
        assert!(req.authorization_details.is_empty());
        assert!(r.w.sandbox.state.phone_approve(id));
    })
    .await;
    assert_eq!(report.succeeded.len(), 2, "{report:?}");
    assert_eq!(states(&r, &ids), [ActionState::Succeeded; 2]);
    let detail = approved_detail(&r);
    assert_eq!(detail["proof"], "batch_hash");
    assert!(
        detail["details_refused"]
            .as_str()
            .unwrap()
            .contains("dealflow_action is not registered"),
        "{detail}"
    );
}

/// Auth0 allows about 5 pushes a minute per approver and refuses the rest. The emulator
/// does the same; a process waits for a slot instead of being refused.
#[tokio::test]
async fn pushes_wait_for_a_slot_instead_of_hitting_the_push_rate() {
    use dealflow::core::permissions::Approver;
    use dealflow::runtime::batch::DeviceConsent;
    let r = rig().await;
    // Past the rate, straight at the endpoint (no waiting): the sixth is refused.
    let raw = dealflow::auth::ciba::CibaClient::new(
        {
            let mut s = dealflow::sandbox::sign_in::settings(&r.w.sandbox.base_url());
            s.poll_unit = Duration::from_millis(20);
            s
        },
        dealflow::auth::Secret::new(r.w.sandbox.state.auth0.agent_client_secret()),
    );
    let lead = dealflow::sandbox::auth0::model::LEAD_SUB;
    for _ in 0..5 {
        raw.start(lead, "dealflow: rate", "").await.unwrap();
    }
    let refused = raw.start(lead, "dealflow: rate", "").await.unwrap_err();
    assert_eq!(refused.status(), Some(429), "{refused}");
    // Through the device: seven pushes to the user in a row all go out.
    for i in 0..7 {
        r.w.device
            .request(&Approver::User, &format!("dealflow: push {i}"), None)
            .await
            .unwrap_or_else(|e| panic!("push {i}: {e}"));
    }
}

// ---------------------------------------------------------------- escalation

/// Files `params` and queues it for the device at `at` (when the rep was first asked).
fn queue_at(r: &Rig, params: ActionParams, at: i64) -> String {
    let s =
        r.p.submit(
            Proposal {
                title: params.kind().to_string(),
                params,
                surface: Surface::ActionCenter,
                confidence: 0.9,
                justification: "test".into(),
                proposer: "agent:test".into(),
            },
            at,
        )
        .unwrap();
    if s.action.state == ActionState::AwaitingConsent {
        return s.action.id; // its own gate already sent it to the device queue
    }
    Reviewer {
        actor: "user:tester".into(),
        surface: Surface::ActionCenter,
    }
    .queue_for_device(r.store.as_ref(), &s.action.id, at)
    .unwrap()
    .id
}

fn escalate_after(r: &Rig, after_ms: i64) {
    r.store
        .change_permissions(
            &dealflow::core::permissions::PermissionChange::SetEscalation {
                escalation: Some(dealflow::core::permissions::Escalation {
                    after_ms,
                    to: dealflow::sandbox::auth0::model::LEAD_SUB.into(),
                }),
            },
            dealflow::core::audit::NewAuditEntry {
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

/// A device request the rep has not answered within `escalate_after` goes to the team
/// lead's phone; the lead's yes runs it, with the lead as the verified approver, and the
/// audit records the escalation once. One queued just now still goes to the rep.
#[tokio::test]
async fn an_unanswered_request_escalates_to_the_lead_and_runs_on_the_leads_yes() {
    use dealflow::sandbox::auth0::model::{DEMO_SUB, LEAD_SUB};
    let r = rig().await;
    escalate_after(&r, 60 * 60_000);
    let now = dealflow::wall::now_ms();
    let fresh = queue_at(&r, email("fresh@x.example"), now);
    let waited = queue_at(&r, email("waited@x.example"), now - 2 * 60 * 60_000);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let cancel = CancellationToken::new();
    let (p, device) = (r.p.clone(), r.w.device.clone());
    let stop = cancel.clone();
    let task =
        tokio::spawn(
            async move { run_once(p, device.as_ref(), &BatchOptions::default(), &stop).await },
        );
    // Two pushes: the rep's for the fresh one, the lead's for the one that waited. The
    // lead says yes; the rep does not answer.
    let state = r.w.sandbox.state.clone();
    let mut lead_said_yes = false;
    for _ in 0..1000 {
        for req in state.phone_pending() {
            let mut l = log.lock().unwrap();
            if !l
                .iter()
                .any(|(id, ..): &(String, String, String)| *id == req.id)
            {
                l.push((
                    req.id.clone(),
                    req.user_sub.clone(),
                    req.binding_message.clone(),
                ));
            }
            if req.user_sub == LEAD_SUB && !lead_said_yes {
                lead_said_yes = state.phone_approve(&req.id);
            }
        }
        if lead_said_yes && log.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        lead_said_yes,
        "no push reached the lead: {:?}",
        seen.lock().unwrap()
    );
    // The rep says no to their own push, so the round ends.
    for req in state.phone_pending() {
        if req.user_sub == DEMO_SUB {
            state.phone_deny(&req.id);
        }
    }
    let report = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let pushes = seen.lock().unwrap().clone();
    let to_lead: Vec<_> = pushes
        .iter()
        .filter(|(_, sub, _)| sub == LEAD_SUB)
        .collect();
    let to_rep: Vec<_> = pushes
        .iter()
        .filter(|(_, sub, _)| sub == DEMO_SUB)
        .collect();
    assert_eq!((to_lead.len(), to_rep.len()), (1, 1), "{pushes:?}");
    assert!(to_lead[0].2.contains("waited at x.example"), "{pushes:?}");
    assert_eq!(
        report.succeeded,
        std::slice::from_ref(&waited),
        "{report:?}"
    );
    assert_eq!(report.rejected, std::slice::from_ref(&fresh), "{report:?}");
    // It went from the rep's mailbox, on the rep's session: the lead approved, not sent.
    let sent = r.w.sandbox.state.providers.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].to.contains("waited@x.example"));
    let a = r.store.get_action(&waited).unwrap();
    match a.evidence.map(|e| e.evidence) {
        Some(dealflow::core::consent::Evidence::Ciba { sub, approver, .. }) => {
            assert_eq!(sub, LEAD_SUB);
            assert_eq!(
                approver,
                dealflow::core::permissions::Approver::TeamLead(LEAD_SUB.into())
            );
        }
        other => panic!("{other:?}"),
    }
    let escalated: Vec<_> = r
        .store
        .audit_page(0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "action.escalated")
        .collect();
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0].action_id.as_deref(), Some(waited.as_str()));
    assert!(
        escalated[0].detail["why"]
            .as_str()
            .unwrap()
            .contains("escalate_after 1h"),
        "{:?}",
        escalated[0].detail
    );
}

/// Close-won above the second threshold takes two devices: the rep's yes is recorded as
/// the first approval and runs nothing; the next round asks the lead, whose yes closes
/// the deal with the lead as the verified approver.
#[tokio::test]
async fn a_big_close_needs_the_reps_and_then_the_leads_yes() {
    use dealflow::core::permissions::{Approver, Autonomy, PermissionChange};
    use dealflow::sandbox::auth0::model::{DEMO_SUB, LEAD_SUB};
    let r = rig().await;
    dealflow::sandbox::demo::seed(r.store.as_ref(), 1).unwrap();
    let change = |c: PermissionChange| {
        r.store
            .change_permissions(
                &c,
                dealflow::core::audit::NewAuditEntry {
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
    };
    change(PermissionChange::SetCloseWon {
        level: Autonomy::Ciba,
        approver: Approver::TeamLead(LEAD_SUB.into()),
    });
    change(PermissionChange::SetTwoApprovers {
        above: Some(5_000_000),
    });
    let id = queue_at(
        &r,
        ActionParams::CloseDeal {
            revision: None,
            deal_id: "deal-acme".into(),
            won: true,
            amount_cents: 0,
        },
        dealflow::wall::now_ms(),
    );
    // Round one goes to the rep, whose yes runs nothing yet.
    let first = batch_with_phone(&r, BatchOptions::default(), |r, id| {
        let req = r.w.sandbox.state.phone_pending().pop().unwrap();
        assert_eq!(req.user_sub, DEMO_SUB);
        assert!(r.w.sandbox.state.phone_approve(id));
    })
    .await;
    assert_eq!(
        first.awaiting_second,
        std::slice::from_ref(&id),
        "{first:?}"
    );
    assert!(first.succeeded.is_empty());
    assert_eq!(
        states(&r, std::slice::from_ref(&id)),
        [ActionState::AwaitingConsent]
    );
    assert_eq!(
        r.store.get_deal("deal-acme").unwrap().unwrap().stage,
        dealflow::core::domain::Stage::Negotiation
    );
    // Round two goes to the lead.
    let second = batch_with_phone(&r, BatchOptions::default(), |r, id| {
        let req = r.w.sandbox.state.phone_pending().pop().unwrap();
        assert_eq!(req.user_sub, LEAD_SUB, "the second approver");
        assert!(r.w.sandbox.state.phone_approve(id));
    })
    .await;
    assert_eq!(
        second.succeeded,
        std::slice::from_ref(&id),
        "{second:?} {:?}",
        r.store
            .audit_about(&id, 0)
            .unwrap()
            .iter()
            .map(|e| (e.event.clone(), e.detail.to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        r.store.get_deal("deal-acme").unwrap().unwrap().stage,
        dealflow::core::domain::Stage::ClosedWon
    );
    let events: Vec<(String, String)> = r
        .store
        .audit_about(&id, 0)
        .unwrap()
        .into_iter()
        .rev()
        .map(|e| (e.event, e.actor))
        .collect();
    let first_yes = events
        .iter()
        .position(|(e, a)| e == "action.first_approval" && a == &format!("device:{DEMO_SUB}"))
        .unwrap_or_else(|| panic!("{events:?}"));
    let ran = events
        .iter()
        .position(|(e, a)| e == "action.executed" && a == &format!("device:{LEAD_SUB}"))
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(first_yes < ran);
}

/// A push to the team lead names the rep and the action, within Auth0's 64 characters
/// and its allowed characters, whatever the rep's name or `sub` holds.
#[test]
fn a_leads_binding_message_names_the_rep_and_the_action() {
    use dealflow::runtime::identity::SignedIn;
    let a = |p: ActionParams| dealflow::core::domain::Action {
        id: "x".into(),
        original: p.clone(),
        params: p,
        state: ActionState::AwaitingConsent,
        version: 1,
        surface: Surface::Batch,
        confidence: 1.0,
        justification: String::new(),
        title: String::new(),
        created_at: 0,
        updated_at: 0,
        outcome: None,
        evidence: None,
    };
    let close = |deal: &str| {
        a(ActionParams::CloseDeal {
            revision: None,
            deal_id: deal.into(),
            won: true,
            amount_cents: 1,
        })
    };
    let who = |sub: &str, name: &str| SignedIn {
        sub: sub.into(),
        name: name.into(),
        emulated: false,
    };
    let allowed = |m: &str| {
        m.chars().count() <= 64
            && m.chars()
                .all(|c| c.is_ascii_alphanumeric() || " +-_.,:#".contains(c))
    };
    let dana = rep_label(&who("auth0|demo-user", "Dana Demo"));
    assert_eq!(dana, "Dana");
    assert_eq!(
        binding_message_for(&[close("deal-acme")], Some(&dana)),
        "dealflow: Dana - close_deal deal-acme"
    );
    // No name: a short form of the sub, never its "auth0|" prefix.
    let bare = rep_label(&who("auth0|rep-7f3a", ""));
    assert_eq!(bare, "rep-7f3a");
    assert_eq!(
        binding_message_for(&[close("deal-acme")], Some(&bare)),
        "dealflow: rep-7f3a - close_deal deal-acme"
    );
    // Odd names and long targets still fit, with only allowed characters.
    let odd = rep_label(&who(
        "google-oauth2|1234567890123456789012",
        "Zoë (O'Brien)",
    ));
    let long = close(&format!("deal-{}", "z".repeat(90)));
    let m = binding_message_for(&[long], Some(&odd));
    assert!(allowed(&m) && m.starts_with("dealflow: Zo"), "{m}");
    let nameless = rep_label(&who("google-oauth2|1234567890123456789012", " "));
    assert!(allowed(&nameless) && nameless.len() <= 16, "{nameless}");
    let many: Vec<_> = (0..30)
        .map(|i| {
            if i % 3 == 0 {
                close("deal-x")
            } else {
                a(email("x@y.example"))
            }
        })
        .collect();
    let m = binding_message_for(&many, Some(&dana));
    assert!(
        allowed(&m) && m.starts_with("dealflow: Dana - 30 actions - 20 email 10 crm"),
        "{m}"
    );
    // Without a rep it is the rep's own message, unchanged.
    assert_eq!(
        binding_message_for(&[close("deal-acme")], None),
        binding_message(&[close("deal-acme")])
    );
}
