//! Salesforce as the CRM, end to end through the pipeline: the real Token Vault client,
//! the real Salesforce connector over loopback HTTP, and the sandbox's Salesforce
//! emulator (Salesforce cannot run here) holding the demo pipeline as Opportunities.

use super::*;
use dealflow::connectors::salesforce::{Salesforce, Settings};
use dealflow::runtime::crm::Crm;

fn with_salesforce(r: &mut Rig, instance: Option<String>) {
    let mut s = Settings::new(&format!("{}/salesforce", r.sandbox.base_url()));
    s.instance_url = instance;
    r.p.crm = Crm::Salesforce(Arc::new(Salesforce::new(s)));
}

async fn sf_rig() -> Rig {
    let mut r = rig().await;
    with_salesforce(&mut r, None);
    r
}

fn org(r: &Rig) -> dealflow::sandbox::salesforce::Org {
    r.sandbox.state.providers.salesforce_org()
}

/// The open Opportunity of the demo org named `name`.
fn opp(r: &Rig, name: &str) -> dealflow::sandbox::salesforce::Opportunity {
    org(r)
        .opportunities
        .values()
        .find(|o| o.name == name)
        .cloned()
        .unwrap()
}

fn read(params: ActionParams) -> Proposal {
    proposal(params, Surface::Chat, 1.0)
}

/// Approves `id` the way its gate asks (a step-up where it needs one).
fn approve(r: &Rig, id: &str, at: i64) {
    match me().approve(r.store.as_ref(), id, false, at) {
        Err(ReviewError::NeedsStepUp { .. }) => {
            me().approve(r.store.as_ref(), id, true, at).unwrap();
        }
        other => {
            other.unwrap();
        }
    }
}

/// The process claimed `a` and died before anything was audited.
fn died_after_claiming(r: &Rig, a: &dealflow::core::domain::Action, at: i64) {
    r.store
        .transition(
            &a.id,
            &Transition {
                from: a.state,
                version: a.version,
                to: ActionState::Executing,
                outcome: None,
                evidence: None,
                at,
            },
        )
        .unwrap();
}

/// A close of `deal_id` filed from the Action Center at t=10 (amount and revision are
/// the store's, whatever is stated).
fn propose_close(r: &Rig, deal_id: &str, won: bool) -> dealflow::runtime::pipeline::Submitted {
    r.p.submit(
        proposal(
            ActionParams::CloseDeal {
                deal_id: deal_id.into(),
                won,
                amount_cents: 0,
                revision: None,
            },
            Surface::ActionCenter,
            0.9,
        ),
        10,
    )
    .unwrap()
}

/// The next `remaining` calls answer `status` with the provider's usual body.
fn fault(status: u16, remaining: u32) -> Fault {
    Fault {
        status,
        body: None,
        retry_after_secs: None,
        delay_ms: 0,
        remaining,
    }
}

#[tokio::test]
async fn reads_come_from_the_org_and_fill_the_mirror_learning_the_instance_once() {
    let r = sf_rig().await;
    assert!(r.store.list_deals().unwrap().is_empty());
    let open: Vec<String> = org(&r)
        .opportunities
        .values()
        .filter(|o| !o.stage_name.starts_with("Closed"))
        .map(|o| o.id.clone())
        .collect();
    let got =
        r.p.run_read(read(ActionParams::ListDeals { stage: None }), 10)
            .await
            .unwrap();
    let deals = got.outcome.unwrap().data["deals"]
        .as_array()
        .unwrap()
        .clone();
    let mut ids: Vec<String> = deals
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want = open.clone();
    want.sort();
    assert_eq!(
        ids, want,
        "the org's open Opportunities, by their Salesforce ids"
    );
    assert!(ids.iter().all(|i| i.starts_with("006")));
    // The mirror holds them, each with the revision it was read at.
    let mirror = r.store.list_deals().unwrap();
    assert_eq!(mirror.len(), open.len());
    assert!(mirror.iter().all(|d| d.crm.is_some()));
    // A second read and a sync ask the identity service nothing more.
    r.p.run_read(
        read(ActionParams::GetDeal {
            deal_id: open[0].clone(),
        }),
        11,
    )
    .await
    .unwrap();
    let synced = r.p.sync_crm().await.unwrap();
    assert_eq!(synced.deals, open.len());
    assert_eq!(synced.changed, 0, "nothing moved since the read");
    assert_eq!(r.sandbox.state.providers.calls("salesforce.userinfo"), 1);
    // Contacts came with the sync, for the engine, but not into the store: a Contact
    // anyone adds to the org must not make its address a known counterparty.
    assert!(!r.p.crm_contacts().is_empty());
    assert!(r.store.list_contacts().unwrap().is_empty());
    // A search asks Salesforce, escaping what it is given.
    let hits =
        r.p.run_read(
            read(ActionParams::SearchContacts {
                query: "acme".into(),
            }),
            12,
        )
        .await
        .unwrap();
    assert!(
        !hits.outcome.unwrap().data["contacts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let none =
        r.p.run_read(
            read(ActionParams::SearchContacts {
                query: "%' OR Name != '".into(),
            }),
            13,
        )
        .await
        .unwrap();
    assert_eq!(
        none.outcome.unwrap().data["contacts"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "a quote in the search is text, not SOQL"
    );
}

#[tokio::test]
async fn a_configured_instance_skips_the_identity_service_and_pages_are_followed() {
    let mut r = rig().await;
    let instance = format!("{}/salesforce/instance", r.sandbox.base_url());
    with_salesforce(&mut r, Some(instance));
    r.sandbox
        .state
        .providers
        .salesforce_page
        .store(2, std::sync::atomic::Ordering::Relaxed);
    let synced = r.p.sync_crm().await.unwrap();
    let open = org(&r)
        .opportunities
        .values()
        .filter(|o| !o.stage_name.starts_with("Closed"))
        .count();
    assert!(open > 2, "the demo org spans pages");
    assert_eq!(synced.deals, open, "every page was read");
    assert_eq!(r.sandbox.state.providers.calls("salesforce.userinfo"), 0);
}

#[tokio::test]
async fn a_close_won_updates_the_opportunity_once_and_the_mirror_follows() {
    let r = sf_rig().await;
    r.p.sync_crm().await.unwrap();
    let o = opp(&r, "Initech seat expansion");
    let s =
        r.p.submit(
            proposal(
                ActionParams::CloseDeal {
                    deal_id: o.id.clone(),
                    won: true,
                    amount_cents: 1, // never trusted: the CRM's amount is filled in
                    revision: Some("forged".into()),
                },
                Surface::ActionCenter,
                0.9,
            ),
            10,
        )
        .unwrap();
    let ActionParams::CloseDeal {
        amount_cents,
        revision,
        ..
    } = &s.action.params
    else {
        panic!()
    };
    assert_eq!(*amount_cents, (o.amount * 100.0).round() as i64);
    assert_eq!(
        revision.as_deref(),
        Some(dealflow::sandbox::salesforce::datetime(o.last_modified_ms).as_str()),
        "the revision is the mirror's, not the proposer's"
    );
    approve(&r, &s.action.id, 11);
    let done = r.p.execute(&s.action.id, &Subject::User, 12).await.unwrap();
    assert_eq!(
        done.action.state,
        ActionState::Succeeded,
        "{:?}",
        done.action.outcome
    );
    assert_eq!(opp(&r, "Initech seat expansion").stage_name, "Closed Won");
    assert_eq!(r.sandbox.state.providers.calls("salesforce.update"), 1);
    assert_eq!(
        r.store.get_deal(&o.id).unwrap().unwrap().stage,
        Stage::ClosedWon
    );
    assert!(r.p.execute(&s.action.id, &Subject::User, 13).await.is_err());
    assert_eq!(r.sandbox.state.providers.calls("salesforce.update"), 1);
}

#[tokio::test]
async fn a_stage_changed_in_salesforce_after_approval_is_a_conflict_not_overwritten() {
    let r = sf_rig().await;
    r.p.sync_crm().await.unwrap();
    let o = opp(&r, "Initech seat expansion");
    let s = propose_close(&r, &o.id, true);
    approve(&r, &s.action.id, 11);
    // Someone closes it as lost in Salesforce after the rep said yes.
    let edited = r.sandbox.state.providers.salesforce.lock().unwrap().edit(
        &o.id,
        Some("Closed Lost"),
        None,
        dealflow::wall::now_ms(),
    );
    assert!(edited);
    let done = r.p.execute(&s.action.id, &Subject::User, 12).await.unwrap();
    assert_eq!(done.action.state, ActionState::Failed);
    let why = done.action.outcome.unwrap();
    assert!(why.contains("changed since it was approved"), "{why}");
    assert!(why.contains("closed_lost"), "names what changed: {why}");
    assert!(why.contains("nothing was written"), "{why}");
    assert_eq!(opp(&r, "Initech seat expansion").stage_name, "Closed Lost");
    assert_eq!(r.sandbox.state.providers.calls("salesforce.update"), 0);
    // The rep now sees the record as it is.
    assert_eq!(
        r.store.get_deal(&o.id).unwrap().unwrap().stage,
        Stage::ClosedLost
    );
}

#[tokio::test]
async fn a_create_interrupted_between_the_call_and_the_audit_is_found_not_made_twice() {
    let r = sf_rig().await;
    let s =
        r.p.submit(
            proposal(
                ActionParams::CreateDeal {
                    name: "Wayne expansion".into(),
                    account: "Acme Corp".into(),
                    amount_cents: 1_200_000,
                    stage: Stage::Qualified,
                },
                Surface::ActionCenter,
                0.9,
            ),
            10,
        )
        .unwrap();
    approve(&r, &s.action.id, 11);
    let a = r.store.get_action(&s.action.id).unwrap();
    // The process claimed it, Salesforce made the record, and the process died before
    // the audit: the upsert landed, the queue still says executing.
    died_after_claiming(&r, &a, 12);
    let Crm::Salesforce(sf) = &r.p.crm else {
        panic!()
    };
    let token = r
        .creds
        .token(Connection::Salesforce, &Subject::User)
        .await
        .unwrap();
    let made = sf
        .create_deal(
            &r.p.http,
            token.expose(),
            &a.id,
            "Wayne expansion",
            "Acme Corp",
            1_200_000,
            Stage::Qualified,
            12,
            &r.p.retry,
        )
        .await
        .unwrap();
    assert_eq!(made.account, "Acme Corp", "linked to the existing Account");
    let back = r.p.reconcile(13).await.unwrap();
    let a = r.store.get_action(&a.id).unwrap();
    assert_eq!(a.state, ActionState::Succeeded, "{back:?}");
    assert!(a.outcome.unwrap().contains(&made.id));
    assert_eq!(org(&r).creates, 1);
    // A retry of the same create (same action id) is the same record.
    sf.create_deal(
        &r.p.http,
        token.expose(),
        &a.id,
        "Wayne expansion",
        "Acme Corp",
        1_200_000,
        Stage::Qualified,
        14,
        &r.p.retry,
    )
    .await
    .unwrap();
    assert_eq!(org(&r).creates, 1);
    let names: Vec<_> = org(&r)
        .opportunities
        .values()
        .filter(|o| o.name == "Wayne expansion")
        .count()
        .to_string()
        .chars()
        .collect();
    assert_eq!(names, vec!['1']);
}

#[tokio::test]
async fn salesforce_errors_are_named_and_a_stale_session_re_exchanges_once() {
    let r = sf_rig().await;
    r.p.sync_crm().await.unwrap();
    // INVALID_SESSION_ID: one more exchange, one more try.
    let exchanges = r.exchanges();
    r.sandbox
        .state
        .providers
        .inject("salesforce.query", fault(401, 1));
    let ok =
        r.p.run_read(read(ActionParams::ListDeals { stage: None }), 10)
            .await
            .unwrap();
    assert!(ok.outcome.is_ok(), "{:?}", ok.outcome);
    assert_eq!(r.exchanges(), exchanges + 1);
    // The new token may be another org's: its instance is asked again.
    assert_eq!(r.sandbox.state.providers.calls("salesforce.userinfo"), 2);
    // REQUEST_LIMIT_EXCEEDED is a rate limit, named.
    r.sandbox
        .state
        .providers
        .inject("salesforce.query", fault(403, 1));
    let limited =
        r.p.run_read(read(ActionParams::ListDeals { stage: None }), 11)
            .await
            .unwrap();
    let e = limited.outcome.unwrap_err().to_string();
    assert!(
        e.contains("salesforce.query: rate limited") && e.contains("REQUEST_LIMIT_EXCEEDED"),
        "{e}"
    );
    // A validation rule's refusal names its code and field.
    let o = opp(&r, "Initech seat expansion");
    let s =
        r.p.submit(
            proposal(
                ActionParams::UpdateDeal {
                    deal_id: o.id.clone(),
                    stage: Some(Stage::Negotiation),
                    amount_cents: None,
                    notes: None,
                    revision: None,
                },
                Surface::ActionCenter,
                0.9,
            ),
            12,
        )
        .unwrap();
    approve(&r, &s.action.id, 13);
    r.sandbox.state.providers.inject(
        "salesforce.update",
        Fault {
            body: Some(
                serde_json::json!([{"message": "Next step is required in Negotiation", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": ["NextStep"]}])
                    .to_string(),
            ),
            ..fault(400, 1)
        },
    );
    let done = r.p.execute(&s.action.id, &Subject::User, 14).await.unwrap();
    assert_eq!(done.action.state, ActionState::Failed);
    let why = done.action.outcome.unwrap();
    assert!(
        why.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION on NextStep: Next step is required"),
        "{why}"
    );
    assert_ne!(
        opp(&r, "Initech seat expansion").stage_name,
        "Negotiation/Review"
    );
}

#[tokio::test]
async fn a_connection_without_the_api_scope_asks_for_a_connect_naming_it() {
    let r = sf_rig().await;
    r.sandbox
        .state
        .auth0
        .set_connected_account(DEMO_SUB, "salesforce", &["refresh_token", "id"]);
    let got =
        r.p.run_read(read(ActionParams::ListDeals { stage: None }), 10)
            .await;
    match got {
        Err(PipelineError::NeedsConnect {
            connection, scopes, ..
        }) => {
            assert_eq!(connection, "salesforce");
            assert_eq!(scopes, ["api"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.sandbox.state.providers.calls("salesforce.query"), 0);
    assert_eq!(
        r.p.account_ready(ActionKind::CloseDeal).await.unwrap_err(),
        "close_deal needs salesforce to grant api: an incremental connect adds it and keeps the rest (`c` on its row in the Permissions tab, or `dealflow accounts connect salesforce`), then ask again"
    );
}

/// The process dies after Salesforce applied the close but before it heard so (the
/// future is dropped mid-call: no audit of the result, the row left executing). The
/// next start reconciles it by reading the record: done, and never written twice.
#[tokio::test]
async fn a_close_cut_off_after_salesforce_applied_it_is_reconciled_not_repeated() {
    let r = sf_rig().await;
    r.p.sync_crm().await.unwrap();
    let o = opp(&r, "Globex analytics pilot");
    let s = propose_close(&r, &o.id, true);
    approve(&r, &s.action.id, 11);
    r.sandbox
        .state
        .providers
        .salesforce_answer_delay_ms
        .store(5_000, std::sync::atomic::Ordering::Relaxed);
    let applied = async {
        while opp(&r, "Globex analytics pilot").stage_name != "Closed Won" {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        done = r.p.execute(&s.action.id, &Subject::User, 12) => panic!("finished: {done:?}"),
        () = applied => {} // the execute future is dropped here, mid-call
    }
    assert_eq!(
        r.store.get_action(&s.action.id).unwrap().state,
        ActionState::Executing,
        "cut off between the call and the audit"
    );
    r.sandbox
        .state
        .providers
        .salesforce_answer_delay_ms
        .store(0, std::sync::atomic::Ordering::Relaxed);
    r.p.reconcile(13).await.unwrap();
    let a = r.store.get_action(&s.action.id).unwrap();
    assert_eq!(a.state, ActionState::Succeeded, "{:?}", a.outcome);
    assert!(a.outcome.unwrap().contains("found at the provider"));
    assert_eq!(r.sandbox.state.providers.calls("salesforce.update"), 1);
    assert!(
        r.store
            .audit_page(0, 1000)
            .unwrap()
            .iter()
            .any(|e| e.event == "action.reconciled" && e.action_id.as_deref() == Some(&s.action.id))
    );
}

#[tokio::test]
async fn a_sync_with_a_stale_session_exchanges_once_and_an_outage_names_the_endpoint() {
    let r = sf_rig().await;
    r.p.sync_crm().await.unwrap();
    let exchanges = r.exchanges();
    r.sandbox
        .state
        .providers
        .inject("salesforce.query", fault(401, 1));
    r.p.sync_crm().await.unwrap();
    assert_eq!(r.exchanges(), exchanges + 1);
    r.sandbox
        .state
        .providers
        .inject("salesforce.query", fault(503, 10));
    let e = r.p.sync_crm().await.unwrap_err().to_string();
    assert!(e.contains("salesforce.query: provider error 503"), "{e}");
    assert!(!e.contains("00DSB"), "no token in the error: {e}");
}

#[tokio::test]
async fn a_sync_keeps_to_the_accounts_switch_and_is_in_the_log() {
    let r = sf_rig().await;
    let s = r.p.sync_crm().await.unwrap();
    assert!(s.skipped.is_none() && s.deals > 0);
    let log = r.store.audit_page(0, 1000).unwrap();
    let synced = log.iter().find(|e| e.event == "crm.synced").unwrap();
    assert_eq!(synced.detail["deals"], s.deals);
    change(
        r.store.as_ref(),
        PermissionChange::SetConnected {
            connection: Connection::Salesforce,
            connected: false,
        },
    );
    let calls = r.sandbox.state.providers.calls("salesforce.query");
    let s = r.p.sync_crm().await.unwrap();
    assert!(s.skipped.unwrap().contains("off in dealflow"));
    assert_eq!(
        r.sandbox.state.providers.calls("salesforce.query"),
        calls,
        "nothing read while the rep has it off"
    );
}

/// An edited store lowers a deal's amount (keeping its revision) to dodge the step-up;
/// the read before the gate fails, so the gate sees the edited amount. The write's own
/// read finds the amount consent was given for is not the record's: nothing written.
#[tokio::test]
async fn a_close_for_an_amount_the_record_does_not_hold_is_refused() {
    let r = sf_rig().await;
    r.p.sync_crm().await.unwrap();
    let o = opp(&r, "Stark Industries enterprise");
    let mut forged = r.store.get_deal(&o.id).unwrap().unwrap();
    forged.amount_cents = 100;
    r.store.upsert_deal(&forged).unwrap();
    let s = propose_close(&r, &o.id, false);
    approve(&r, &s.action.id, 11);
    r.sandbox
        .state
        .providers
        .inject("salesforce.query", fault(503, 1));
    let done = r.p.execute(&s.action.id, &Subject::User, 12).await.unwrap();
    assert_eq!(done.action.state, ActionState::Failed);
    let why = done.action.outcome.unwrap();
    assert!(
        why.contains("changed since it was approved") && why.contains("$250,000"),
        "{why}"
    );
    assert_eq!(
        opp(&r, "Stark Industries enterprise").stage_name,
        "Proposal/Price Quote"
    );
    assert_eq!(r.sandbox.state.providers.calls("salesforce.update"), 0);
}

/// An update cut off before its PATCH left (the read before it had no answer) is still
/// at its revision: reconciled as not done, safe to retry — not as "found".
#[tokio::test]
async fn an_update_that_never_landed_reconciles_as_not_done() {
    let r = sf_rig().await;
    r.p.sync_crm().await.unwrap();
    let o = opp(&r, "Hooli team plan");
    let s =
        r.p.submit(
            proposal(
                ActionParams::UpdateDeal {
                    deal_id: o.id.clone(),
                    stage: None,
                    amount_cents: None,
                    notes: Some("Gavin asked for a trial".into()),
                    revision: None,
                },
                Surface::ActionCenter,
                0.9,
            ),
            10,
        )
        .unwrap();
    approve(&r, &s.action.id, 11);
    let a = r.store.get_action(&s.action.id).unwrap();
    died_after_claiming(&r, &a, 12);
    r.p.reconcile(13).await.unwrap();
    let a = r.store.get_action(&a.id).unwrap();
    assert_eq!(a.state, ActionState::Failed, "{:?}", a.outcome);
    assert!(a.outcome.unwrap().contains("safe to retry"));
}

#[tokio::test]
async fn an_opportunity_in_an_unmapped_stage_is_left_out_not_fatal() {
    let r = sf_rig().await;
    let o = opp(&r, "Hooli team plan");
    r.sandbox.state.providers.salesforce.lock().unwrap().edit(
        &o.id,
        Some("Discovery"),
        None,
        dealflow::wall::now_ms(),
    );
    let s = r.p.sync_crm().await.unwrap();
    assert!(s.deals >= 4, "{s:?}");
    assert!(r.store.get_deal(&o.id).unwrap().is_none());
}

/// A deal closed in Salesforce leaves the org's open listing; the mirror follows it
/// (read by id) instead of keeping it open for the engine and the gate.
#[tokio::test]
async fn a_deal_closed_in_salesforce_is_closed_in_the_mirror() {
    let r = sf_rig().await;
    let first = r.p.sync_crm().await.unwrap();
    let o = opp(&r, "Umbrella security add-on");
    r.sandbox.state.providers.salesforce.lock().unwrap().edit(
        &o.id,
        Some("Closed Lost"),
        None,
        dealflow::wall::now_ms(),
    );
    let s = r.p.sync_crm().await.unwrap();
    assert_eq!(s.deals, first.deals - 1, "{s:?}");
    assert_eq!(s.changed, 1);
    assert_eq!(
        r.store.get_deal(&o.id).unwrap().unwrap().stage,
        Stage::ClosedLost
    );
}
