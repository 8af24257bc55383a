//! `dealflow policy …` on the real binary and a real SQLite store: the simulator replays
//! real decisions made through the CLI; calibration nudges, accept and revoke.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use dealflow::core::domain::{Action, ActionParams, ActionState, Email, Surface};
use dealflow::store::{SqliteStore, Store};
use std::path::PathBuf;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> PathBuf {
        self.dir.path().join("store.db")
    }
    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.db()).unwrap()
    }
    fn run(&self, args: &[&str]) -> String {
        let a = Command::cargo_bin("dealflow")
            .unwrap()
            .env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("cfg"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("DEALFLOW_KEYRING", "file")
            .env("USER", "tester")
            .arg("--store")
            .arg(self.db())
            .args(args)
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .success();
        String::from_utf8_lossy(&a.get_output().stdout).into_owned()
    }
    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.run(args)).unwrap()
    }
    /// Runs a command that must fail; its stderr.
    fn fail(&self, args: &[&str]) -> String {
        let a = Command::cargo_bin("dealflow")
            .unwrap()
            .env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("cfg"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("DEALFLOW_KEYRING", "file")
            .env("USER", "tester")
            .arg("--store")
            .arg(self.db())
            .args(args)
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .failure();
        String::from_utf8_lossy(&a.get_output().stderr).into_owned()
    }
    /// Writes a policy file and returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }
}

fn email(id: &str, to: &str, confidence: f64) -> Action {
    let params = ActionParams::SendEmail(Email {
        to: vec![to.into()],
        cc: vec![],
        subject: "Follow-up".into(),
        body: "Thanks for the call today. Attached is the summary we discussed.".into(),
        deal_id: None,
    });
    Action {
        id: id.into(),
        original: params.clone(),
        params,
        state: ActionState::Proposed,
        version: 1,
        surface: Surface::ActionCenter,
        confidence,
        justification: "follow-up".into(),
        title: format!("email {id}"),
        created_at: 1,
        updated_at: 1,
        outcome: None,
        evidence: None,
    }
}

#[test]
fn simulate_reports_what_would_have_run_and_what_you_changed() {
    let e = Env::new();
    let s = e.store();
    for i in 0..6 {
        s.insert_action(&email(&format!("e{i}"), "bill@initech.example", 0.95))
            .unwrap();
    }
    s.insert_action(&email("low", "bill@initech.example", 0.5))
        .unwrap();
    let slack = ActionParams::PostSlack {
        channel: "#deals".into(),
        text: "won!".into(),
    };
    s.insert_action(&Action {
        params: slack.clone(),
        original: slack,
        ..email("s1", "x@y.example", 0.95)
    })
    .unwrap();
    for id in ["e0", "e1", "e2", "e3", "low", "s1"] {
        e.run(&["actions", "approve", id]);
    }
    e.run(&[
        "actions",
        "edit",
        "e4",
        "--set",
        "body=We are raising the price by 20% next quarter, sorry.",
    ]);
    e.run(&["actions", "approve", "e4"]);
    e.run(&["actions", "reject", "e5", "--reason", "wrong tone"]);

    // Emails on auto: the six at 0.95 would have run; the 0.50 one is still reviewed.
    let toml = e.dir.path().join("emails-auto.toml");
    std::fs::write(&toml, "[autonomy]\nsend_email = \"auto\"\n").unwrap();
    let r = e.json(&[
        "policy",
        "simulate",
        "--with",
        toml.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r["replayed"], 8);
    assert_eq!(r["would_auto_execute"], 6);
    assert_eq!(r["newly_auto"], 6);
    assert_eq!(r["approved_unedited"], 4);
    assert_eq!(r["edited"], 1);
    assert_eq!(r["rejected"], 1);
    let ids: Vec<&str> = r["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e0", "e1", "e2", "e3", "e4", "e5"]);
    let e4 = &r["actions"][4];
    assert_eq!(e4["you"], "edited");
    assert!(e4["edit_size"].as_f64().unwrap() > 0.3);
    assert_eq!(e4["target"], "@initech.example");

    // Global auto-approve at 0.9 (JSON): the Slack post joins in.
    let json = e.dir.path().join("auto.json");
    std::fs::write(&json, r#"{"confidence": {"auto_approve_at": 0.9}}"#).unwrap();
    let r = e.json(&[
        "policy",
        "simulate",
        "--with",
        json.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r["would_auto_execute"], 7);
    assert_eq!(
        (r["edited"].as_u64(), r["rejected"].as_u64()),
        (Some(1), Some(1))
    );

    // The table says the same, and simulating changes nothing.
    let table = e.run(&["policy", "simulate", "--with", toml.to_str().unwrap()]);
    assert!(table.contains("would auto-execute 6"), "{table}");
    assert!(table.contains("you edited 1 and rejected 1"), "{table}");
    assert!(table.contains("e4") && table.contains("edited"), "{table}");
    assert_eq!(
        e.json(&["permissions", "show", "--json"])["autonomy"]["send_email"],
        "review"
    );
}

#[test]
fn a_nudge_is_accepted_as_an_audited_rule_and_revoked_in_one_call() {
    let e = Env::new();
    let s = e.store();
    for i in 0..5 {
        s.insert_action(&email(&format!("e{i}"), "bill@initech.example", 0.93))
            .unwrap();
    }
    for i in 0..4 {
        e.run(&["actions", "approve", &format!("e{i}")]);
    }
    let c = e.json(&["policy", "calibration", "--json"]);
    assert_eq!(c["nudges"], serde_json::json!([]), "four is not enough");
    e.run(&["actions", "approve", "e4"]);
    let c = e.json(&["policy", "calibration", "--json"]);
    assert_eq!(c["nudges"].as_array().unwrap().len(), 1);
    assert_eq!(c["nudges"][0]["target"], "@initech.example");
    let text = e.run(&["policy", "calibration"]);
    assert!(
        text.contains("send_email ≥ 0.90: 5/5 approved unedited"),
        "{text}"
    );
    // Calibration alone changed nothing.
    assert!(
        e.json(&["permissions", "show", "--json"])
            .get("auto_rules")
            .is_none()
    );

    let out = e.run(&["policy", "accept", "1", "--days", "7"]);
    assert!(out.contains("auto-approve rule"), "{out}");
    let p = e.json(&["permissions", "show", "--json"]);
    let rule = &p["auto_rules"][0];
    assert_eq!(rule["kind"], "send_email");
    assert_eq!(rule["min_confidence"], 0.9);
    let life = rule["expires_at"].as_i64().unwrap() - rule["created_at"].as_i64().unwrap();
    assert_eq!(life, 7 * 24 * 3600 * 1000);
    // Audited with the evidence that led to it.
    let last = s.audit_page(0, 100).unwrap().pop().unwrap();
    assert_eq!(last.event, "permissions.changed");
    assert_eq!(
        last.detail["evidence"],
        serde_json::json!(["e0", "e1", "e2", "e3", "e4"])
    );
    let c = e.json(&["policy", "calibration", "--json"]);
    assert_eq!(c["nudges"], serde_json::json!([]), "the rule covers it now");
    assert_eq!(c["rules"][0]["active"], true);

    let id = rule["id"].as_str().unwrap().to_string();
    e.run(&["policy", "revoke", &id]);
    assert!(
        e.json(&["permissions", "show", "--json"])
            .get("auto_rules")
            .is_none()
    );
    assert_eq!(s.verify_audit().unwrap(), Ok(7));
}

#[test]
fn splitting_a_deal_under_the_threshold_still_needs_step_up() {
    let e = Env::new();
    let s = e.store();
    let deal = |id: &str, account: &str, cents: i64| {
        let p = ActionParams::CreateDeal {
            name: format!("{account} {id}"),
            account: account.into(),
            amount_cents: cents,
            stage: dealflow::core::domain::Stage::Qualified,
        };
        Action {
            params: p.clone(),
            original: p,
            ..email(id, "x@y.example", 0.95)
        }
    };
    s.insert_action(&deal("d1", "Acme", 3_000_000)).unwrap();
    s.insert_action(&deal("d2", "Acme", 3_000_000)).unwrap();
    s.insert_action(&deal("d3", "Initech", 3_000_000)).unwrap();
    e.run(&["actions", "approve", "d1"]);
    // Another account's $30,000 is unaffected.
    e.run(&["actions", "approve", "d3"]);
    // The second half for Acme adds up to $60,000 > $50,000: step-up, with the reason.
    let a = Command::cargo_bin("dealflow")
        .unwrap()
        .env_clear()
        .env("HOME", e.dir.path())
        .env("XDG_STATE_HOME", e.dir.path().join("state"))
        .env("DEALFLOW_KEYRING", "file")
        .env("USER", "tester")
        .arg("--store")
        .arg(e.db())
        .args(["actions", "approve", "d2"])
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains("needs step-up"), "{err}");
    assert!(err.contains("split amounts"), "{err}");
    assert!(err.contains("$60,000 > threshold $50,000"), "{err}");
    let refused = s.audit_page(0, 100).unwrap().pop().unwrap();
    assert_eq!(refused.event, "action.approve_refused");
    e.run(&["actions", "approve", "d2", "--confirm", "d2"]);
    assert_eq!(s.get_action("d2").unwrap().state, ActionState::Approved);
}

#[test]
fn simulate_reports_what_would_now_ask_or_be_refused() {
    let e = Env::new();
    let s = e.store();
    s.insert_action(&email("e0", "bill@initech.example", 0.95))
        .unwrap();
    s.insert_action(&email("e1", "ann@acme.example", 0.95))
        .unwrap();
    let slack = ActionParams::PostSlack {
        channel: "#deals".into(),
        text: "won!".into(),
    };
    s.insert_action(&Action {
        params: slack.clone(),
        original: slack,
        ..email("s1", "x@y.example", 0.95)
    })
    .unwrap();
    for id in ["e0", "e1", "s1"] {
        e.run(&["actions", "approve", id]);
    }
    // Today emails run without asking; the proposal puts them back to review and
    // denies Slack posts.
    e.run(&["permissions", "autonomy", "send_email", "auto"]);
    let f = e.file(
        "tighter.toml",
        "[autonomy]\nsend_email = \"review\"\npost_slack = \"deny\"\n",
    );
    let r = e.json(&["policy", "simulate", "--with", &f, "--json"]);
    assert_eq!(r["would_auto_execute"], 0);
    assert_eq!(r["tightened"], 3);
    assert_eq!(r["would_now_ask"], 2);
    assert_eq!(r["would_now_refuse"], 1);
    let rows: Vec<(String, String, String)> = r["tightened_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap().to_string();
            (s("id"), s("gate_now"), s("gate_proposed"))
        })
        .collect();
    let row = |id: &str, now: &str, prop: &str| (id.to_string(), now.to_string(), prop.to_string());
    assert_eq!(
        rows,
        [
            row("e0", "allow", "review"),
            row("e1", "allow", "review"),
            row("s1", "review", "deny")
        ]
    );
    let text = e.run(&["policy", "simulate", "--with", &f]);
    assert!(
        text.contains("tighter: 3 would need more consent: 2 that run without asking today would ask, 1 would be refused"),
        "{text}"
    );
    assert!(text.contains("would ask (or be refused)"), "{text}");

    // The other way round, the same replay reports the loosening.
    e.run(&["permissions", "autonomy", "send_email", "review"]);
    let f = e.file("looser.json", r#"{"autonomy": {"send_email": "auto"}}"#);
    let r = e.json(&["policy", "simulate", "--with", &f, "--json"]);
    assert_eq!(
        (r["would_auto_execute"].as_u64(), r["tightened"].as_u64()),
        (Some(2), Some(0))
    );

    // Looser short of running unasked is reported too: Slack denied today, reviewed
    // under the proposal.
    e.run(&["permissions", "autonomy", "post_slack", "deny"]);
    let f = e.file("eased.toml", "[autonomy]\npost_slack = \"review\"\n");
    let r = e.json(&["policy", "simulate", "--with", &f, "--json"]);
    assert_eq!(r["eased"], 1, "{r}");
    assert_eq!(r["eased_actions"][0]["id"], "s1");
    let text = e.run(&["policy", "simulate", "--with", &f]);
    assert!(
        text.contains("easier:  1 would need less consent"),
        "{text}"
    );
}

#[test]
fn simulate_refuses_unknown_keys_with_file_line_and_key() {
    let e = Env::new();
    e.store();
    let f = e.file(
        "typo.toml",
        "[autonomy]\nsend_email = \"auto\"\n\n[autonomi]\nget_deal = \"deny\"\n",
    );
    let err = e.fail(&["policy", "simulate", "--with", &f]);
    assert!(err.contains(&format!("{f}:4:")), "{err}");
    assert!(err.contains("unknown key `autonomi`"), "{err}");
    assert!(err.contains("did you mean `autonomy`"), "{err}");

    let f = e.file("typo.toml", "[confidence]\nauto_aprove_at = 0.9\n");
    let err = e.fail(&["policy", "simulate", "--with", &f]);
    assert!(err.contains(&format!("{f}:2:")), "{err}");
    assert!(
        err.contains("unknown key `confidence.auto_aprove_at`"),
        "{err}"
    );

    let f = e.file(
        "typo.json",
        "{\n  \"confidence\": {\n    \"auto_aprove_at\": 0.9\n  }\n}\n",
    );
    let err = e.fail(&["policy", "simulate", "--with", &f]);
    assert!(err.contains(&format!("{f}:3:")), "{err}");
    assert!(err.contains("unknown key `auto_aprove_at`"), "{err}");

    let f = e.file("kind.toml", "[autonomy]\nsend_emial = \"auto\"\n");
    let err = e.fail(&["policy", "simulate", "--with", &f]);
    assert!(
        err.contains(&format!("{f}:2:")) && err.contains("send_emial"),
        "{err}"
    );

    // What `permissions` would refuse is refused here too.
    let f = e.file("read.toml", "[autonomy]\nget_deal = \"review\"\n");
    let err = e.fail(&["policy", "simulate", "--with", &f]);
    assert!(err.contains("get_deal is a read"), "{err}");
}

#[test]
fn simulate_normalises_pins_as_permissions_pin_does() {
    let e = Env::new();
    let s = e.store();
    s.insert_action(&email("e0", "bill@initech.example", 0.95))
        .unwrap();
    s.insert_action(&email("e1", "ann@acme.example", 0.95))
        .unwrap();
    e.run(&["actions", "approve", "e0"]);
    e.run(&["actions", "approve", "e1"]);
    // " @Initech.EXAMPLE " is the pin `permissions pin` would store as @initech.example.
    let f = e.file(
        "pinned.toml",
        "always_review = [\" @Initech.EXAMPLE \"]\n[autonomy]\nsend_email = \"auto\"\n",
    );
    let r = e.json(&["policy", "simulate", "--with", &f, "--json"]);
    assert_eq!(r["would_auto_execute"], 1, "{r}");
    assert_eq!(r["actions"][0]["id"], "e1");
    // And one it would refuse is refused.
    let f = e.file("bad-pin.toml", "always_review = [\"  \"]\n");
    let err = e.fail(&["policy", "simulate", "--with", &f]);
    assert!(err.contains(&f) && err.contains("a pin is"), "{err}");
}
