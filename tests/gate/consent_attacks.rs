//! Attacks on the consent engine by someone on the same box, each against the real
//! binary and the real SQLite store: a rule naming a lead, an edit that moves a close to
//! a bigger deal, consent typed straight into the store, a spoofed `$USER`, a cut or
//! wiped audit log, and a prompt-injected recipient. Every one must be refused with a
//! clear message and leave an audit entry.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use dealflow::core::domain::{Action, ActionParams, ActionState, Email, Stage, Surface};
use dealflow::store::{SqliteStore, Store};
use std::path::PathBuf;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let e = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        // Seeds the demo pipeline.
        e.ok(&["actions", "list"]);
        e
    }
    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("dealflow").unwrap();
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("cfg"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            // Each test its own consent key and checkpoint, as each user has their own.
            .env("DEALFLOW_KEYRING", "file")
            .arg("--sandbox")
            .timeout(std::time::Duration::from_secs(60));
        c
    }
    fn run(&self, args: &[&str]) -> (String, String, i32) {
        let o = self.cmd().args(args).output().unwrap();
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            o.status.code().unwrap_or(-1),
        )
    }
    fn ok(&self, args: &[&str]) -> String {
        let (out, err, code) = self.run(args);
        assert_eq!(code, 0, "{args:?} failed: {out}{err}");
        out
    }
    fn refused(&self, args: &[&str]) -> String {
        let (out, err, code) = self.run(args);
        assert_ne!(code, 0, "{args:?} should be refused: {out}{err}");
        format!("{out}{err}")
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("data/dealflow/sandbox.db")
    }
    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.db()).unwrap()
    }
    fn sql(&self, q: &str) {
        let c = rusqlite::Connection::open(self.db()).unwrap();
        c.execute_batch(q).unwrap();
    }
    fn audit_events(&self) -> Vec<(String, String, serde_json::Value)> {
        self.store()
            .audit_page(0, 10_000)
            .unwrap()
            .into_iter()
            .map(|e| (e.event, e.actor, e.detail))
            .collect()
    }
    fn deal_stage(&self, id: &str) -> Stage {
        self.store().get_deal(id).unwrap().unwrap().stage
    }
    /// Files an action as a proposer would (the agent, an MCP client): straight into the
    /// store, in `proposed`, where a person then decides.
    fn propose(&self, id: &str, params: ActionParams, surface: Surface, confidence: f64) {
        let a = Action {
            id: id.into(),
            original: params.clone(),
            params,
            state: ActionState::Proposed,
            version: 1,
            surface,
            confidence,
            justification: "test".into(),
            title: "test".into(),
            created_at: 1,
            updated_at: 1,
            outcome: None,
            evidence: None,
        };
        self.store().insert_action(&a).unwrap();
    }
}

#[test]
fn a_team_lead_rule_is_not_met_by_the_reps_own_confirmation() {
    let e = Env::new();
    // "step_up by a lead" cannot be satisfied at the rep's keyboard: refused as a setting.
    let msg = e.refused(&[
        "permissions",
        "close-won",
        "step_up",
        "lead:auth0|team-lead",
    ]);
    assert!(msg.contains("approves on their own device"), "{msg}");
    e.ok(&["permissions", "close-won", "ciba", "lead:auth0|team-lead"]);
    let msg = e.refused(&[
        "actions",
        "approve",
        "act-demo-acme-close",
        "--confirm",
        "act-demo-acme-close",
    ]);
    assert!(msg.contains("team lead auth0|team-lead"), "{msg}");
    assert!(msg.contains("queued"), "{msg}");
    assert_eq!(e.deal_stage("deal-acme"), Stage::Negotiation);
    // It waits for the lead's phone (tests/batch.rs runs it on the lead's yes).
    assert_eq!(
        e.store().get_action("act-demo-acme-close").unwrap().state,
        ActionState::AwaitingConsent
    );
    assert!(
        e.audit_events()
            .iter()
            .any(|(ev, ..)| ev == "action.approve_refused"),
        "the refusal is audited"
    );
}

#[test]
fn an_edit_cannot_move_a_close_to_a_bigger_deal_without_its_step_up() {
    let e = Env::new();
    // Acme is a close as won (step-up). Point it at Stark ($250K), as lost, amount zero.
    e.ok(&[
        "actions",
        "edit",
        "act-demo-acme-close",
        "--set",
        "deal_id=deal-stark",
        "--set",
        "won=false",
        "--set",
        "amount_cents=0",
    ]);
    let show = e.ok(&["actions", "show", "act-demo-acme-close"]);
    assert!(
        show.contains("$250,000"),
        "the store's amount decides: {show}"
    );
    let msg = e.refused(&["actions", "approve", "act-demo-acme-close"]);
    assert!(msg.contains("step-up"), "{msg}");
    assert_eq!(e.deal_stage("deal-stark"), Stage::Proposal);
    // The edit is audited with what it now needs.
    let edited = e
        .audit_events()
        .into_iter()
        .find(|(ev, ..)| ev == "action.edited")
        .unwrap();
    assert_eq!(edited.2["gate"]["gate"], "step_up", "{}", edited.2);
}

#[test]
fn an_update_cannot_be_edited_into_a_close() {
    let e = Env::new();
    e.propose(
        "act-upd",
        ActionParams::UpdateDeal {
            revision: None,
            deal_id: "deal-stark".into(),
            stage: Some(Stage::Negotiation),
            amount_cents: None,
            notes: None,
        },
        Surface::ActionCenter,
        0.9,
    );
    let msg = e.refused(&["actions", "edit", "act-upd", "--set", "stage=closed_won"]);
    assert!(msg.contains("close_deal"), "{msg}");
    // An edit to a deal that does not exist is refused as well.
    let msg = e.refused(&["actions", "edit", "act-upd", "--set", "deal_id=deal-nope"]);
    assert!(msg.contains("no deal"), "{msg}");
    // And an update written to closed_won behind dealflow's back is gated as the close.
    e.sql(
        "UPDATE actions SET params = json_set(params, '$.stage', 'closed_won') WHERE id = 'act-upd'",
    );
    let show = e.ok(&["actions", "show", "act-upd"]);
    assert!(show.contains("closing as won"), "{show}");
}

#[test]
fn consent_written_into_the_store_does_not_run() {
    let e = Env::new();
    // Approved, with evidence that looks right, typed straight into SQLite.
    e.sql(
        r#"UPDATE actions SET state = 'approved', version = version + 1,
           evidence = '{"by":"stepped_up","actor":"user:auth0|demo-user","at":1}'
           WHERE id = 'act-demo-acme-close'"#,
    );
    let msg = e.refused(&["actions", "execute", "act-demo-acme-close"]);
    assert!(msg.contains("does not verify"), "{msg}");
    assert_eq!(e.deal_stage("deal-acme"), Stage::Negotiation);
    assert!(
        e.audit_events()
            .iter()
            .any(|(ev, _, d)| ev == "action.consent_void"
                && d["why"].as_str().unwrap().contains("does not verify")),
        "the refusal is audited"
    );
    // A seal copied from another action does not carry over either.
    e.ok(&["actions", "approve", "act-demo-stark-call", "--hold"]);
    e.sql(
        "UPDATE actions SET state = 'proposed' WHERE id = 'act-demo-acme-close';
         UPDATE actions SET state = 'approved',
           evidence = (SELECT evidence FROM actions WHERE id = 'act-demo-stark-call')
         WHERE id = 'act-demo-acme-close'",
    );
    let msg = e.refused(&["actions", "execute", "act-demo-acme-close"]);
    assert!(msg.contains("does not verify"), "{msg}");
    assert_eq!(e.deal_stage("deal-acme"), Stage::Negotiation);
}

#[test]
fn a_used_consent_does_not_run_again() {
    let e = Env::new();
    // Approve and send the Initech follow-up, then restore its row to `approved` with
    // the very evidence (and seal) it ran on: a replay.
    e.ok(&["actions", "approve", "act-demo-initech-followup"]);
    let sent = e.store().get_action("act-demo-initech-followup").unwrap();
    assert_eq!(sent.state, ActionState::Succeeded);
    e.sql(
        "UPDATE actions SET state = 'approved', version = version - 2
         WHERE id = 'act-demo-initech-followup'",
    );
    let msg = e.refused(&["actions", "execute", "act-demo-initech-followup"]);
    assert!(msg.contains("already used"), "{msg}");
    let executed = e
        .audit_events()
        .iter()
        .filter(|(ev, ..)| ev == "action.executed")
        .count();
    assert_eq!(executed, 1, "sent once");
}

/// Whatever the environment claims — another person, the lead, root, the real user's
/// own id, an empty name, a terminal escape — the actor is the verified sign-in and the
/// Unix account is the uid's.
#[test]
fn the_actor_is_the_identity_and_uid_not_user() {
    let e = Env::new();
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8_lossy(&me.stdout).trim().to_string();
    let ids = [
        "act-demo-hooli-slack",
        "act-demo-initech-followup",
        "act-demo-stark-call",
        "act-demo-acme-close",
    ];
    let claims = ["mallory", "auth0|team-lead", "", "\u{1b}[2Jroot"];
    for (id, claim) in ids.iter().zip(claims) {
        let o = e
            .cmd()
            .env("USER", claim)
            .env("LOGNAME", claim)
            .env("SUDO_USER", claim)
            .args(["actions", "reject", id])
            .output()
            .unwrap();
        assert!(o.status.success(), "{claim:?}: {o:?}");
        let (_, actor, detail) = e
            .audit_events()
            .into_iter()
            .rfind(|(ev, ..)| ev == "action.rejected")
            .unwrap();
        assert_eq!(actor, "user:auth0|demo-user", "{claim:?}");
        assert_eq!(
            detail["origin"]["unix_user"],
            me.as_str(),
            "{claim:?}: {detail}"
        );
    }
}

#[test]
fn a_cut_wiped_or_rewritten_audit_log_is_reported() {
    let e = Env::new();
    e.ok(&["actions", "reject", "act-demo-hooli-slack"]);
    e.ok(&["permissions", "pin", "@acme.example"]);
    let out = e.ok(&["audit", "verify"]);
    assert!(out.contains("matches the keyring checkpoint"), "{out}");
    let n: i64 = e.store().audit_head().unwrap().0;
    assert!(n >= 3);

    // Cut the last two entries and move the head record to match: the chain alone
    // still verifies, the checkpoint does not.
    e.sql(&format!(
        "DELETE FROM audit WHERE seq > {keep};
         UPDATE audit_head SET count = {keep},
           hash = (SELECT hash FROM audit WHERE seq = {keep})",
        keep = n - 2
    ));
    let msg = e.refused(&["audit", "verify"]);
    assert!(msg.contains("TRUNCATED"), "{msg}");

    e.sql("DELETE FROM audit; DELETE FROM audit_head;");
    let msg = e.refused(&["audit", "verify"]);
    assert!(msg.contains("WIPED"), "{msg}");
    // Work goes on after it: the checkpoint keeps the evidence, it is not overwritten.
    e.ok(&["permissions", "unpin", "@acme.example"]);
    let msg = e.refused(&["audit", "verify"]);
    assert!(msg.contains("TRUNCATED"), "{msg}");
    // Until the person says the change was theirs, which is the new log's first entry.
    let out = e.ok(&["audit", "reset-anchor"]);
    assert!(out.contains("re-anchored"), "{out}");
    let out = e.ok(&["audit", "verify"]);
    assert!(out.contains("matches the keyring checkpoint"), "{out}");
    assert!(
        e.audit_events().iter().any(
            |(ev, _, d)| ev == "audit.anchor_reset" && d["previous_checkpoint"]["seq"].is_i64()
        )
    );
}

#[test]
fn a_rewritten_entry_is_reported_even_with_the_chain_recomputed() {
    let e = Env::new();
    e.ok(&["actions", "reject", "act-demo-hooli-slack"]);
    let store = e.store();
    let entries = store.audit_page(0, 10_000).unwrap();
    let last = entries.last().unwrap().seq;
    // Rewrite the last entry's detail and recompute its hash and the head: anyone can
    // do that without the key, since the chain itself is not keyed.
    let mut forged = entries.last().unwrap().unsealed();
    forged.detail = serde_json::json!({ "reason": "nothing happened" });
    let prev = entries.last().unwrap().prev_hash.clone();
    let hash = dealflow::core::audit::entry_hash(last, &prev, &forged);
    e.sql(&format!(
        "UPDATE audit SET detail = '{}', hash = '{hash}' WHERE seq = {last};
         UPDATE audit_head SET hash = '{hash}'",
        forged.detail
    ));
    assert!(
        store.verify_audit().unwrap().is_ok(),
        "the chain is consistent"
    );
    let msg = e.refused(&["audit", "verify"]);
    assert!(msg.contains("REWRITTEN"), "{msg}");
}

#[test]
fn an_unknown_recipient_is_reviewed_whatever_autonomy_says() {
    let e = Env::new();
    e.ok(&["permissions", "autonomy", "send_email", "auto"]);
    let email = |to: &str| {
        ActionParams::SendEmail(Email {
            to: vec![to.into()],
            cc: vec![],
            subject: "Invoice".into(),
            body: "Please wire the balance.".into(),
            deal_id: None,
        })
    };
    e.propose(
        "act-inj",
        email("payments@attacker.example"),
        Surface::ActionCenter,
        0.99,
    );
    let show = e.ok(&["actions", "show", "act-inj"]);
    assert!(show.contains("not a known contact"), "{show}");
    assert!(
        show.contains("gate: review") || show.contains("review"),
        "{show}"
    );
    // A known contact goes through on autonomy alone.
    e.propose(
        "act-bill",
        email("bill@initech.example"),
        Surface::ActionCenter,
        0.99,
    );
    let show = e.ok(&["actions", "show", "act-bill"]);
    assert!(!show.contains("not a known contact"), "{show}");
    // Widening the known set by domain is the user's call, and audited.
    e.ok(&["permissions", "know", "@attacker.example"]);
    let show = e.ok(&["actions", "show", "act-inj"]);
    assert!(!show.contains("not a known contact"), "{show}");
}

#[test]
fn split_amounts_compare_accounts_loosely() {
    let e = Env::new();
    let create = |account: &str, dollars: i64| ActionParams::CreateDeal {
        name: format!("{account} part"),
        account: account.into(),
        amount_cents: dollars * 100,
        stage: Stage::Prospecting,
    };
    e.propose(
        "act-w1",
        create("Wayne", 40_000),
        Surface::ActionCenter,
        0.9,
    );
    e.ok(&["actions", "approve", "act-w1", "--hold"]);
    e.propose(
        "act-w2",
        create(" wayne.", 40_000),
        Surface::ActionCenter,
        0.9,
    );
    let show = e.ok(&["actions", "show", "act-w2"]);
    assert!(show.contains("split amounts"), "{show}");
    let msg = e.refused(&["actions", "approve", "act-w2"]);
    assert!(msg.contains("step-up"), "{msg}");
}
