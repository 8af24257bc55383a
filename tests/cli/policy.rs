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
    // A no beats the always: rejecting one the rule covers pauses it until resumed.
    s.insert_action(&email("e5", "bill@initech.example", 0.95))
        .unwrap();
    e.run(&["actions", "reject", "e5"]);
    let p = e.json(&["permissions", "show", "--json"]);
    assert_eq!(p["auto_rules"][0]["paused"]["action_id"], "e5", "{p}");
    let out = e.run(&["policy", "resume", &id]);
    assert!(out.contains(&id), "{out}");
    let p = e.json(&["permissions", "show", "--json"]);
    assert!(p["auto_rules"][0].get("paused").is_none(), "{p}");
    e.run(&["policy", "revoke", &id]);
    assert!(
        e.json(&["permissions", "show", "--json"])
            .get("auto_rules")
            .is_none()
    );
    assert!(s.verify_audit().unwrap().is_ok());
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

/// `policy rules`: the consent rules in the order the gate applies them, as the
/// README's "How it fits together" names them.
#[test]
fn policy_rules_lists_the_gates_rules_in_the_readmes_order() {
    let e = Env::new();
    let out = e.run(&["policy", "rules"]);
    let listed: Vec<(usize, String)> = out
        .lines()
        .map(|l| {
            let (n, rest) = l.trim().split_once(". ").unwrap();
            let name = rest.split_whitespace().next().unwrap().to_string();
            (n.parse().unwrap(), name)
        })
        .collect();
    let numbers: Vec<usize> = listed.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (1..=listed.len()).collect::<Vec<_>>(), "{out}");
    // Each rule says what it is for, on its line.
    assert!(
        out.lines().all(|l| l.split_whitespace().count() > 3),
        "{out}"
    );
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let from = readme.find("`reads` ·").expect("the README's rule list");
    let last = format!("`{}`", listed.last().unwrap().1);
    let to = from
        + readme[from..]
            .find(&last)
            .unwrap_or_else(|| panic!("the README's rule list does not name {last}"))
        + last.len();
    // The names, leaving out what the parentheses say about them.
    let mut depth = 0;
    let names_only: String = readme[from..to]
        .chars()
        .filter(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => return depth == 0,
            }
            false
        })
        .collect();
    let documented: Vec<&str> = names_only
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    let names: Vec<&str> = listed.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, documented, "{out}");
}

fn redis_url() -> String {
    std::env::var("DEALFLOW_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A member of a team on a shared Redis store: their own home and keyring (signed in
/// as `sub`, which names their namespace) and the team's `store.team`.
struct Member {
    dir: tempfile::TempDir,
    sub: String,
    store: dealflow::store::RedisStore,
}

impl Member {
    fn new(team: &str) -> Member {
        let sub = format!("policytest-{:016x}", rand::random::<u64>());
        let store = dealflow::store::RedisStore::open(&redis_url(), &sub, Some(team)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            format!("[store]\nurl = \"{}\"\nteam = \"{team}\"\n", redis_url()),
        )
        .unwrap();
        // Signed in: the identity `dealflow login` keeps in the member's keyring.
        let keyring = dir.path().join("state/dealflow/secrets.json");
        std::fs::create_dir_all(keyring.parent().unwrap()).unwrap();
        let identity = serde_json::json!({ "sub": sub, "name": "Policy Test" }).to_string();
        std::fs::write(
            &keyring,
            serde_json::json!({ "login-identity": identity }).to_string(),
        )
        .unwrap();
        Member { dir, sub, store }
    }
    fn cmd(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        Command::cargo_bin("dealflow")
            .unwrap()
            .env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("DEALFLOW_KEYRING", "file")
            // Not trusted for anything: who acts is the signed-in identity.
            .env("USER", "mallory")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args)
            .timeout(std::time::Duration::from_secs(60))
            .assert()
    }
    fn ok(&self, args: &[&str]) -> String {
        let a = self.cmd(args).success();
        String::from_utf8_lossy(&a.get_output().stdout).into_owned()
    }
    fn effective(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["permissions", "show", "--json"])).unwrap()
    }
    /// A policy file in this member's home.
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        use dealflow::core::audit::NewAuditEntry;
        let _ = self.store.clear_team_policy(NewAuditEntry {
            ts: 1,
            actor: "test".into(),
            surface: None,
            event: "team.policy_cleared".into(),
            action_id: None,
            outcome: "ok".into(),
            detail: serde_json::json!({}),
        });
        let _ = self.store.purge_namespace();
        let _ = self.store.purge_team();
    }
}

/// Who sets a team policy binds every member, not only themselves, and the log names
/// who set and who cleared it by their signed-in identity (never `$USER`).
#[test]
fn a_team_policy_one_member_sets_binds_the_others_and_names_who_set_it() {
    let team = format!("team-{:08x}", rand::random::<u32>());
    let (alice, bob) = (Member::new(&team), Member::new(&team));
    alice.ok(&["permissions", "autonomy", "send_email", "auto"]);
    assert_eq!(alice.effective()["autonomy"]["send_email"], "auto");
    let policy = bob.file(
        "team.toml",
        "always_review = [\"@acme.example\"]\n[autonomy]\nsend_email = \"step_up\"\n",
    );
    // Bob makes the team, so he is its admin.
    let out = bob.ok(&["team", "init"]);
    assert!(
        out.contains(&format!("you ({}) are its admin", bob.sub)),
        "{out}"
    );
    let out = bob.ok(&["team", "set", &policy]);
    assert!(out.contains(&format!("team {team}: policy set")), "{out}");
    // Alice's own setting is unchanged; in effect the team holds her to step_up.
    let p = alice.effective();
    assert_eq!(p["autonomy"]["send_email"], "step_up", "{p}");
    assert_eq!(p["always_review"], serde_json::json!(["@acme.example"]));
    let shown: serde_json::Value =
        serde_json::from_str(&alice.ok(&["team", "show", "--json"])).unwrap();
    assert_eq!(shown["autonomy"]["send_email"], "step_up");

    bob.ok(&["team", "clear"]);
    assert_eq!(alice.effective()["autonomy"]["send_email"], "auto");
    assert_eq!(alice.ok(&["team", "show", "--json"]).trim(), "null");
    let by: Vec<(String, String)> = bob
        .store
        .audit_page(0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.event.starts_with("team."))
        .map(|e| (e.event, e.actor))
        .collect();
    let who = format!("user:{}", bob.sub);
    assert_eq!(
        by,
        [
            ("team.policy_set".to_string(), who.clone()),
            ("team.policy_cleared".to_string(), who)
        ]
    );
}

/// Only a team's admins may change its policy: a member who is not one cannot clear it
/// or replace it with a looser one, and is told so. What the admin did is in the team's
/// stream, which the member reads and verifies, naming the admin.
#[test]
fn a_member_who_is_no_team_admin_cannot_set_or_clear_the_team_policy() {
    let team = format!("team-{:08x}", rand::random::<u32>());
    let admin = Member::new(&team);
    let member = Member::new(&team);
    // Before the team exists nobody sets its policy.
    let strict = admin.file("strict.toml", "[autonomy]\nsend_email = \"step_up\"\n");
    let err = member.cmd(&["team", "set", &strict]).failure();
    let err = String::from_utf8_lossy(&err.get_output().stderr).into_owned();
    assert!(err.contains("dealflow team init"), "{err}");
    admin.ok(&["team", "init"]);
    // One team, one creation.
    member.cmd(&["team", "init"]).failure();
    admin.ok(&["team", "set", &strict]);
    assert_eq!(member.effective()["autonomy"]["send_email"], "step_up");
    let policy = admin.store.team_policy().unwrap();

    let err = member.cmd(&["team", "clear"]).failure();
    let err = String::from_utf8_lossy(&err.get_output().stderr).into_owned();
    assert!(err.contains("admin"), "{err}");
    assert!(err.contains(&admin.sub), "names who can: {err}");
    let loose = member.file("loose.toml", "[autonomy]\nsend_email = \"review\"\n");
    let err = member.cmd(&["team", "set", &loose]).failure();
    let err = String::from_utf8_lossy(&err.get_output().stderr).into_owned();
    assert!(err.contains("admin"), "{err}");
    assert_eq!(member.effective()["autonomy"]["send_email"], "step_up");
    assert_eq!(admin.store.team_policy().unwrap(), policy);
    assert!(policy.is_some());

    // The member's view of the team's stream: created and set, by the admin; it verifies.
    let lines: Vec<serde_json::Value> = member
        .ok(&["audit", "export", "--team"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let who = format!("user:{}", admin.sub);
    let events: Vec<(&str, &str)> = lines
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("team.created", who.as_str()),
            ("team.policy_set", who.as_str())
        ]
    );
    assert_eq!(
        lines[1]["detail"]["policy"]["autonomy"]["send_email"],
        "step_up"
    );
    let out = member.ok(&["audit", "verify", "--team"]);
    assert!(out.contains("2 entries verified"), "{out}");
    // The refused attempts wrote nothing anywhere.
    assert_eq!(member.store.audit_head().unwrap().0, 0);
}

/// `permissions escalate`: set, shown, audited, refused when it makes no sense, and off.
#[test]
fn escalate_routes_unanswered_device_requests_to_a_lead() {
    let e = Env::new();
    let said = e.run(&["permissions", "escalate", "4h", "lead:auth0|team-lead"]);
    assert!(
        said.contains("escalation: off -> to team lead auth0|team-lead after 4h"),
        "{said}"
    );
    let shown = e.run(&["permissions", "show"]);
    assert!(
        shown.contains("unanswered device requests to team lead auth0|team-lead after 4h"),
        "{shown}"
    );
    let err = e.fail(&["permissions", "escalate", "10s", "lead:auth0|team-lead"]);
    assert!(err.contains("between 1 minute and 7 days"), "{err}");
    let err = e.fail(&["permissions", "escalate", "4h", "auth0|team-lead"]);
    assert!(err.contains("lead:<auth0 sub>"), "{err}");
    let err = e.fail(&["permissions", "escalate", "soon", "lead:x"]);
    assert!(err.contains("not a duration"), "{err}");
    let said = e.run(&["permissions", "escalate", "off"]);
    assert!(said.contains("-> off"), "{said}");
    assert!(
        e.run(&["permissions", "show"])
            .contains("escalate             off")
    );
}

/// `permissions two-approvers`: needs a close-won rule that names the lead; set, shown,
/// refused when not an amount, and off. (tests/batch.rs runs a big close through both
/// devices.)
#[test]
fn two_approvers_need_a_lead_and_gate_a_big_close_on_the_rep_first() {
    let e = Env::new();
    let err = e.fail(&["permissions", "two-approvers", "50000"]);
    assert!(err.contains("first name the lead"), "{err}");
    e.run(&["permissions", "close-won", "ciba", "lead:auth0|team-lead"]);
    let said = e.run(&["permissions", "two-approvers", "50000"]);
    assert!(said.contains("off -> above $50,000"), "{said}");
    assert!(
        e.run(&["permissions", "show"])
            .contains("closing as won above $50,000: your device, then the lead's")
    );
    let err = e.fail(&["permissions", "two-approvers", "lots"]);
    assert!(err.contains("not a dollar amount"), "{err}");
    assert!(
        e.run(&["permissions", "two-approvers", "off"])
            .contains("-> off")
    );
}
