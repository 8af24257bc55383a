//! The real binary on a real Redis: `store.url` selects it, `doctor` checks it, and on a
//! shared box every audit row the CLI writes names the Unix user and the SSH origin.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use dealflow::core::domain::{Action, ActionParams, ActionState, Surface};
use dealflow::store::{RedisStore, Store};

fn redis_url() -> String {
    std::env::var("DEALFLOW_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A signed-in user with their own namespace (their Auth0 `sub`), a config pointing at
/// Redis, and cleanup on drop.
struct User {
    dir: tempfile::TempDir,
    name: String,
    store: RedisStore,
}

impl User {
    fn new() -> User {
        let name = format!("clitest-{:016x}", rand::random::<u64>());
        let store = RedisStore::open(&redis_url(), &name, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            format!("[store]\nurl = \"{}\"\n", redis_url()),
        )
        .unwrap();
        // Signed in as `name`: the identity `dealflow login` keeps in the user's own
        // keyring (here the opt-in file store under their state dir) names the namespace.
        let keyring = dir.path().join("state/dealflow/secrets.json");
        std::fs::create_dir_all(keyring.parent().unwrap()).unwrap();
        let identity = serde_json::json!({ "sub": name, "name": "CLI Test" }).to_string();
        std::fs::write(
            &keyring,
            serde_json::json!({ "login-identity": identity }).to_string(),
        )
        .unwrap();
        User { dir, name, store }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("dealflow").unwrap();
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("DEALFLOW_KEYRING", "file")
            // Not trusted for anything: the actor comes from the identity and the uid.
            .env("USER", "mallory")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .timeout(std::time::Duration::from_secs(60));
        c
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = self.store.purge_namespace();
    }
}

fn slack(id: &str) -> Action {
    let params = ActionParams::PostSlack {
        channel: "#deals".into(),
        text: format!("update {id}"),
    };
    Action {
        id: id.into(),
        original: params.clone(),
        params,
        state: ActionState::Proposed,
        version: 1,
        surface: Surface::ActionCenter,
        confidence: 0.93,
        justification: "test".into(),
        title: format!("post {id}"),
        created_at: 1,
        updated_at: 1,
        outcome: None,
        evidence: None,
    }
}

#[test]
fn store_url_selects_redis_in_the_users_namespace() {
    let u = User::new();
    u.store.insert_action(&slack("r1")).unwrap();
    let a = u
        .cmd()
        .args(["actions", "list", "--json"])
        .assert()
        .success();
    let list: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(list[0]["id"], "r1");
    // Another user on the same server sees nothing of it.
    let other = User::new();
    let a = other
        .cmd()
        .args(["actions", "list", "--json"])
        .assert()
        .success();
    let list: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(list, serde_json::json!([]));
    other
        .cmd()
        .args(["actions", "approve", "r1", "--confirm", "r1"])
        .assert()
        .failure();
    assert_eq!(
        u.store.get_action("r1").unwrap().state,
        ActionState::Proposed
    );
}

#[test]
fn doctor_pings_redis_and_names_the_namespace() {
    let u = User::new();
    let a = u.cmd().arg("doctor").assert().success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("ok    redis     PING"), "{out}");
    assert!(out.contains(&format!("namespace {}", u.name)), "{out}");

    // A server that is not there: doctor says so and fails, instead of a bare error.
    std::fs::write(
        u.dir.path().join("config.toml"),
        "[store]\nurl = \"redis://127.0.0.1:1\"\n",
    )
    .unwrap();
    let a = u.cmd().arg("doctor").assert().failure();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("FAIL  store"), "{out}");
}

#[test]
fn shared_box_rows_record_unix_user_and_ssh_origin() {
    let u = User::new();
    u.store.insert_action(&slack("s1")).unwrap();
    u.store.insert_action(&slack("s2")).unwrap();
    u.cmd()
        .env("SSH_CONNECTION", "203.0.113.7 51022 10.0.0.5 22")
        .args(["actions", "approve", "s1", "--confirm", "s1"])
        .assert()
        .success();
    u.cmd()
        .env("SSH_CLIENT", "198.51.100.9 40000 22")
        .args(["actions", "reject", "s2", "--reason", "wrong channel"])
        .assert()
        .success();
    u.cmd()
        .args(["permissions", "mcp-writes", "off"])
        .assert()
        .success();
    let rows = u.store.audit_page(0, 100).unwrap();
    assert_eq!(rows.len(), 3);
    let origin = |i: usize| rows[i].detail["origin"].clone();
    // The Unix account is the uid's, whatever $USER claims.
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8_lossy(&me.stdout).trim().to_string();
    assert_eq!(origin(0)["unix_user"], me.as_str());
    assert_eq!(rows[0].actor, format!("user:{}", u.name));
    assert_eq!(origin(0)["ssh"], "203.0.113.7");
    assert_eq!(rows[0].event, "action.approved");
    assert_eq!(origin(1)["ssh"], "198.51.100.9");
    assert_eq!(origin(2)["ssh"], serde_json::Value::Null, "not over SSH");
    assert_eq!(origin(2)["unix_user"], me.as_str());
    // Calibration fields ride along with each decision.
    assert_eq!(rows[0].detail["kind"], "post_slack");
    assert_eq!(rows[0].detail["target"], "#deals");
    assert_eq!(rows[0].detail["confidence"], 0.93);
    assert_eq!(u.store.verify_audit().unwrap(), Ok(3));
}

/// A team policy set from a file tightens a member's own settings and cannot be loosened
/// by them; a policy that breaks a rule is refused naming the file; clearing it hands the
/// member their own settings back. Every step is in the audit log.
#[test]
fn a_team_policy_tightens_members_and_only_tightens() {
    let u = User::new();
    let team = format!("team-{:08x}", rand::random::<u32>());
    std::fs::write(
        u.dir.path().join("config.toml"),
        format!("[store]\nurl = \"{}\"\nteam = \"{team}\"\n", redis_url()),
    )
    .unwrap();
    let run = |args: &[&str]| -> String {
        let a = u.cmd().args(args).assert().success();
        String::from_utf8_lossy(&a.get_output().stdout).into_owned()
    };
    let effective = || -> serde_json::Value {
        serde_json::from_str(&run(&["permissions", "show", "--json"])).unwrap()
    };
    assert!(run(&["team", "show"]).contains("no policy"));
    run(&["permissions", "autonomy", "send_email", "auto"]);
    assert_eq!(effective()["autonomy"]["send_email"], "auto");

    let bad = u.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[close_won]\nlevel = \"auto\"\napprover = { who = \"self\" }\n",
    )
    .unwrap();
    let a = u.cmd().args(["team", "set"]).arg(&bad).assert().failure();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("bad.toml") && err.contains("at least step_up"),
        "{err}"
    );

    let policy = u.dir.path().join("team.toml");
    std::fs::write(
        &policy,
        "always_review = [\"@acme.example\"]\n[autonomy]\nsend_email = \"step_up\"\n",
    )
    .unwrap();
    let out = run(&["team", "set", policy.to_str().unwrap()]);
    assert!(out.contains(&format!("team {team}: policy set")), "{out}");
    let p = effective();
    assert_eq!(p["autonomy"]["send_email"], "step_up");
    assert_eq!(p["always_review"], serde_json::json!(["@acme.example"]));
    // The member's own looser setting does not lift the team's floor, and says so.
    let out = run(&["permissions", "autonomy", "send_email", "auto"]);
    assert!(
        out.contains("in effect: send_email stays step_up (the team policy holds it there)"),
        "{out}"
    );
    assert_eq!(effective()["autonomy"]["send_email"], "step_up");
    let shown: serde_json::Value = serde_json::from_str(&run(&["team", "show", "--json"])).unwrap();
    assert_eq!(shown["autonomy"]["send_email"], "step_up");

    run(&["team", "clear"]);
    assert_eq!(effective()["autonomy"]["send_email"], "auto");
    let events: Vec<String> = u
        .store
        .audit_page(0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e.starts_with("team."))
        .collect();
    assert_eq!(events, ["team.policy_set", "team.policy_cleared"]);
}
