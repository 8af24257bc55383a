//! The real binary on a real Redis: `store.url` selects it, `doctor` checks it, and on a
//! shared box every audit row the CLI writes names the Unix user and the SSH origin.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use dealflow::core::domain::{Action, ActionParams, ActionState, Surface};
use dealflow::store::{RedisStore, Store};

use super::redis_server;
use redis_server::RedisServer;

fn redis_url() -> String {
    std::env::var("DEALFLOW_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A signed-in user with their own namespace (their Auth0 `sub`), a config pointing at
/// Redis, and cleanup on drop. Every command runs with `USER=mallory` (and whatever
/// `env` adds), which must count for nothing.
struct User {
    dir: tempfile::TempDir,
    name: String,
    store: RedisStore,
    env: Vec<(String, String)>,
}

impl User {
    fn new() -> User {
        User::on(&redis_url())
    }

    /// Signed in, on the server at `url`.
    fn on(url: &str) -> User {
        let u = User::unsigned_on(url);
        u.sign_in(&u.name.clone());
        u
    }

    /// Someone on the box who never signed in: a home, a config, no identity.
    fn unsigned_on(url: &str) -> User {
        let name = format!("clitest-{:016x}", rand::random::<u64>());
        let store = RedisStore::open(url, &name, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            format!("[store]\nurl = \"{url}\"\n"),
        )
        .unwrap();
        User {
            dir,
            name,
            store,
            env: Vec::new(),
        }
    }

    /// Signed in as `sub`: the identity `dealflow login` keeps in the user's own
    /// keyring (here the opt-in file store under their state dir) names the namespace.
    fn sign_in(&self, sub: &str) {
        let keyring = self.dir.path().join("state/dealflow/secrets.json");
        std::fs::create_dir_all(keyring.parent().unwrap()).unwrap();
        let identity = serde_json::json!({ "sub": sub, "name": "CLI Test" }).to_string();
        std::fs::write(
            &keyring,
            serde_json::json!({ "login-identity": identity }).to_string(),
        )
        .unwrap();
    }

    /// Also set `key=value` in every command's environment.
    fn with_env(mut self, key: &str, value: &str) -> User {
        self.env.push((key.into(), value.into()));
        self
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("dealflow").unwrap();
        c.env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("DEALFLOW_KEYRING", "file")
            // Not trusted for anything: the actor comes from the identity and the uid.
            .env("USER", "mallory")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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
    assert!(
        out.contains("ok    tls       TLS off (a server on this machine)"),
        "{out}"
    );
    // The shared server's default user reaches everything: doctor says so.
    assert!(
        out.contains("todo  acl       Redis user default: reaches every key"),
        "{out}"
    );

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
    assert!(run(&["team", "init"]).contains("are its admin"));
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
    RedisStore::open(&redis_url(), &u.name, Some(&team))
        .unwrap()
        .purge_team()
        .unwrap();
}

/// Not signed in, there is no Redis store (nothing to fall back on: the Unix account
/// names no namespace any more), and every command says what to do.
#[test]
fn not_signed_in_there_is_no_redis_store_and_it_says_to_log_in() {
    let u = User::unsigned_on(&redis_url());
    for args in [
        &["actions", "list", "--json"][..],
        &["permissions", "autonomy", "send_email", "auto"],
    ] {
        let a = u.cmd().args(args).assert().failure();
        let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
        assert!(err.contains("`dealflow login`"), "{args:?}: {err}");
        assert!(a.get_output().stdout.is_empty(), "{args:?}");
    }
    let a = u.cmd().arg("doctor").assert().failure();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(
        out.contains("FAIL  store") && out.contains("dealflow login"),
        "{out}"
    );
    assert_eq!(
        u.store.audit_head().unwrap().0,
        0,
        "nothing was written anywhere"
    );
}

/// Another account on the same box, setting `USER` (and `LOGNAME`) to Alice's name or
/// her `sub`, gets nothing of hers: not signed in, no store at all; signed in as
/// themselves, only their own namespace. Alice's queue, leash and log stay as they were.
#[test]
fn naming_another_user_in_the_environment_reaches_none_of_their_data() {
    let alice = User::new();
    alice.store.insert_action(&slack("a1")).unwrap();
    alice
        .cmd()
        .args(["permissions", "autonomy", "send_email", "review"])
        .assert()
        .success();
    let before = alice.store.audit_head().unwrap();
    let perms = alice.store.own_permissions().unwrap();
    for claimed in ["alice", alice.name.as_str()] {
        let mallory = User::unsigned_on(&redis_url())
            .with_env("USER", claimed)
            .with_env("LOGNAME", claimed);
        mallory
            .cmd()
            .args(["actions", "list", "--json"])
            .assert()
            .failure();
        mallory
            .cmd()
            .args(["permissions", "autonomy", "send_email", "auto"])
            .assert()
            .failure();
        mallory.sign_in(&mallory.name);
        let a = mallory
            .cmd()
            .args(["actions", "list", "--json"])
            .assert()
            .success();
        let list: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
        assert_eq!(list, serde_json::json!([]), "USER={claimed}");
        mallory
            .cmd()
            .args(["actions", "reject", "a1", "--reason", "mine now"])
            .assert()
            .failure();
        mallory
            .cmd()
            .args(["permissions", "autonomy", "send_email", "auto"])
            .assert()
            .success();
        // What Mallory did is in Mallory's namespace, under Mallory's name.
        let rows = mallory.store.audit_page(0, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].actor, format!("user:{}", mallory.name));
    }
    assert_eq!(
        alice.store.get_action("a1").unwrap().state,
        ActionState::Proposed
    );
    assert_eq!(alice.store.own_permissions().unwrap(), perms);
    assert_eq!(alice.store.audit_head().unwrap(), before);
}

/// The namespace dealflow used before it was keyed by identity (the Unix account of
/// the uid) moves into the signed-in `sub`'s once, audited there with where it came
/// from; its chain still verifies. On a server of its own: the legacy namespace is
/// the test account's, which every other signed-in test process would adopt too.
#[test]
fn the_unix_accounts_namespace_is_adopted_once_by_the_signed_in_identity() {
    let server = RedisServer::start(&[]);
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8_lossy(&me.stdout).trim().to_string();
    let legacy = RedisStore::open(&server.url(), &me, None).unwrap();
    legacy.insert_action(&slack("old1")).unwrap();
    legacy
        .append_audit(dealflow::core::audit::NewAuditEntry {
            ts: 1,
            actor: format!("unix:{me}"),
            surface: None,
            event: "permissions.changed".into(),
            action_id: None,
            outcome: "ok".into(),
            detail: serde_json::json!({}),
        })
        .unwrap();

    // Alice's pre-identity namespace on the same server: naming her in `USER` must not
    // adopt it (the legacy namespace comes from the uid, never the environment).
    let alice = RedisStore::open(&server.url(), "alice", None).unwrap();
    alice.insert_action(&slack("alices")).unwrap();

    let u = User::on(&server.url()).with_env("USER", "alice");
    let a = u
        .cmd()
        .args(["actions", "list", "--json"])
        .assert()
        .success();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.contains(&format!("from the namespace {me:?}")), "{err}");
    let list: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], "old1");
    assert_eq!(
        alice.get_action("alices").unwrap().state,
        ActionState::Proposed
    );
    assert_eq!(legacy.list_actions(&Default::default()).unwrap().len(), 0);
    assert_eq!(
        legacy.audit_head().unwrap().0,
        0,
        "the legacy keys are gone"
    );

    let rows = u.store.audit_page(0, 10).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].actor, format!("unix:{me}"));
    assert_eq!(rows[1].event, "store.namespace_adopted");
    assert_eq!(rows[1].actor, format!("user:{}", u.name));
    assert_eq!(rows[1].detail["from_namespace"], me.as_str());
    assert_eq!(rows[1].detail["moved"], true);
    assert_eq!(u.store.verify_audit().unwrap(), Ok(2));

    // Once: new data under the old name later is not pulled in again.
    legacy.insert_action(&slack("old2")).unwrap();
    let a = u
        .cmd()
        .args(["actions", "list", "--json"])
        .assert()
        .success();
    assert!(a.get_output().stderr.is_empty());
    let list: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(u.store.audit_head().unwrap().0, 2);
}

/// In the sandbox the namespace is the emulated user's `sub` under this Unix account's
/// uid: the rep's by default, the lead's with `--sandbox-user team-lead`; never a
/// shared "sandbox", and never another account's sandbox.
#[test]
fn the_sandbox_keys_redis_by_the_emulated_users_sub() {
    let server = RedisServer::start(&[]);
    let u = User::unsigned_on(&server.url());
    u.cmd()
        .args(["--sandbox", "actions", "list", "--json"])
        .assert()
        .success();
    u.cmd()
        .args([
            "--sandbox",
            "--sandbox-user",
            "team-lead",
            "actions",
            "list",
        ])
        .assert()
        .success();
    let mut c = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    let namespaces: std::collections::BTreeSet<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix("dealflow:u:{")?.split_once('}'))
        .map(|(ns, _)| ns)
        .collect();
    // Under this Unix account: another account's sandbox signs in as the same emulated
    // users and must not land in these namespaces.
    let uid = String::from_utf8(
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert_eq!(
        namespaces.into_iter().collect::<Vec<_>>(),
        [
            format!("sandbox-uid{uid}-auth0|demo-user"),
            format!("sandbox-uid{uid}-auth0|team-lead")
        ],
        "{keys:?}"
    );
}

/// A child process the test talks to while it runs (`sandbox serve`, `batch` waiting
/// for the phone), killed when dropped if it is still running.
struct Child(Option<std::process::Child>);

impl Child {
    fn spawn(u: &User, args: &[&str]) -> Child {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dealflow"));
        c.env_clear()
            .env("HOME", u.dir.path())
            .env("XDG_STATE_HOME", u.dir.path().join("state"))
            .env("DEALFLOW_KEYRING", "file")
            .env("USER", "mallory")
            .arg("--config")
            .arg(u.dir.path().join("config.toml"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        Child(Some(c.spawn().unwrap()))
    }

    fn output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Approvals that reach the lead, on one Redis with a team: the rep's close-won, gated
/// on the lead, is pushed by the rep's `batch` to the lead's phone with a binding
/// message naming the rep; the lead — whose store reads only the team's stream, not the
/// rep's keys — sees it in `actions list --for-team` until answering on the phone, and
/// the team's chained stream holds the push, the answer and what ran.
#[test]
fn a_close_gated_on_the_lead_waits_in_the_leads_team_list_until_answered() {
    use std::io::BufRead;
    let server = RedisServer::start(&[]);
    let team = format!("team-{:08x}", rand::random::<u32>());
    let u = User::unsigned_on(&server.url());
    std::fs::write(
        u.dir.path().join("config.toml"),
        format!("[store]\nurl = \"{}\"\nteam = \"{team}\"\n", server.url()),
    )
    .unwrap();
    let rep = |args: &[&str]| u.cmd().arg("--sandbox").args(args).assert();
    let lead = |args: &[&str]| {
        u.cmd()
            .args(["--sandbox", "--sandbox-user", "team-lead"])
            .args(args)
            .assert()
    };
    let stdout = |a: assert_cmd::assert::Assert| {
        String::from_utf8_lossy(&a.get_output().stdout).into_owned()
    };
    let waiting = || -> Vec<serde_json::Value> {
        serde_json::from_str(&stdout(
            lead(&["actions", "list", "--for-team", "--json"]).success(),
        ))
        .unwrap()
    };
    let id = "act-demo-acme-close";

    lead(&["team", "init"]).success();
    rep(&["permissions", "close-won", "ciba", "lead:auth0|team-lead"]).success();
    assert!(waiting().is_empty());
    // The rep's confirmation only queues it for the lead's device.
    rep(&["actions", "approve", id, "--confirm", id]).failure();

    let mut serve = Child::spawn(&u, &["sandbox", "serve"]);
    let mut lines =
        std::io::BufReader::new(serve.0.as_mut().unwrap().stdout.take().unwrap()).lines();
    let mut said = String::new();
    while !said.contains("Ctrl-C to stop.") {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("sandbox serve ended: {said}"))
            .unwrap();
        said.push_str(&line);
    }
    let batch = Child::spawn(&u, &["--sandbox", "batch"]);
    let phone = |args: &[&str]| {
        u.cmd()
            .args(["--sandbox-user", "team-lead", "sandbox", "phone"])
            .args(args)
            .output()
            .unwrap()
    };
    let mut listed = String::new();
    for _ in 0..300 {
        listed = String::from_utf8_lossy(&phone(&["--list"]).stdout).into_owned();
        if listed.contains("[1]") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        listed.contains("dealflow: Dana - close_deal deal-acme"),
        "{listed}"
    );

    // Before the lead answers: it waits on them, the rep named.
    let w = waiting();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0]["rep"], "auth0|demo-user");
    assert_eq!(w[0]["rep_name"], "Dana Demo");
    assert_eq!(
        w[0]["binding_message"],
        "dealflow: Dana - close_deal deal-acme"
    );
    assert_eq!(w[0]["actions"][0]["id"], id);
    let text = stdout(lead(&["actions", "list", "--for-team"]).success());
    assert!(
        text.contains(id) && text.contains("from Dana Demo (auth0|demo-user)"),
        "{text}"
    );

    let yes = phone(&["--approve", "1"]);
    assert!(yes.status.success(), "{yes:?}");
    let done = batch.output();
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success() && said.contains("1 succeeded"),
        "{said}"
    );

    // Answered: nothing waits on the lead; the close ran on the rep's side.
    assert!(waiting().is_empty());
    let text = stdout(lead(&["actions", "list", "--for-team"]).success());
    assert!(text.contains("nothing waits on you"), "{text}");
    let shown: serde_json::Value =
        serde_json::from_str(&stdout(rep(&["actions", "show", id, "--json"]).success())).unwrap();
    assert_eq!(shown["action"]["state"], "succeeded", "{shown}");

    // The team's stream, as the lead's store reads it: the push, the answer, the run.
    let team_store = RedisStore::open(&server.url(), "auth0|team-lead", Some(&team)).unwrap();
    let stream = team_store.team_audit_page(0, 100).unwrap();
    let events: Vec<&str> = stream.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        events,
        ["team.created", "lead.pushed", "lead.answered", "lead.ran"],
        "{stream:?}"
    );
    let (pushed, answered, ran) = (&stream[1], &stream[2], &stream[3]);
    assert_eq!(pushed.actor, "user:auth0|demo-user");
    assert_eq!(pushed.detail["lead"], "auth0|team-lead");
    assert_eq!(pushed.detail["team"], team.as_str());
    assert_eq!(answered.detail["auth_req_id"], pushed.detail["auth_req_id"]);
    assert_eq!(answered.detail["answer"], "approved");
    assert_eq!(answered.actor, "device:auth0|team-lead");
    assert_eq!(ran.detail["succeeded"][0], id);
    assert!(team_store.verify_team_audit().unwrap().is_ok());
    drop(serve);
}

/// On a store without a team there is no team stream to read, and it says so.
#[test]
fn actions_for_team_needs_a_team_store() {
    let u = User::new();
    let a = u
        .cmd()
        .args(["actions", "list", "--for-team"])
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(
        err.contains("`actions list --for-team` needs a team store"),
        "{err}"
    );
}

/// `dealflow import` on a Redis store: one batch into the signed-in user's namespace,
/// audited with their verified identity whatever `USER` says; a re-import changes
/// nothing, and an invalid file writes nothing.
#[test]
fn import_writes_deals_into_the_users_namespace_and_audits_the_signed_in_actor() {
    let u = User::new();
    let csv = u.dir.path().join("deals.csv");
    let mut body = String::from("Opportunity ID,Opportunity Name,Account Name,Amount,Stage\n");
    for i in 0..500 {
        body.push_str(&format!(
            "X{i},Deal {i},Account {},{i}00,Closed Won\n",
            i % 7
        ));
    }
    std::fs::write(&csv, &body).unwrap();
    let csv = csv.display().to_string();
    let a = u.cmd().args(["import", "deals", &csv]).assert().success();
    let o = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(
        o.starts_with("imported 500 deals: 500 new, 0 changed, 0 unchanged"),
        "{o}"
    );
    let deals = u.store.list_deals().unwrap();
    assert_eq!(deals.len(), 500);
    assert!(deals.iter().all(|d| d.stage.is_closed()));
    let a = u.cmd().args(["import", "deals", &csv]).assert().success();
    let o = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(o.contains("0 new, 0 changed, 500 unchanged"), "{o}");

    std::fs::write(
        u.dir.path().join("bad.csv"),
        "name,account,amount\nNew deal,Acme,abc\n",
    )
    .unwrap();
    u.cmd()
        .args(["import", "deals"])
        .arg(u.dir.path().join("bad.csv"))
        .assert()
        .failure();
    assert_eq!(u.store.list_deals().unwrap().len(), 500);

    let rows = u.store.audit_page(0, 100).unwrap();
    let imports: Vec<_> = rows
        .iter()
        .filter(|r| r.event == "store.imported")
        .collect();
    assert_eq!(imports.len(), 2);
    assert_eq!(imports[0].actor, format!("user:{}", u.name));
    assert_eq!(imports[0].detail["new"], 500);
    assert_eq!(imports[1].detail["unchanged"], 500);
    assert!(!imports[0].detail.to_string().contains("mallory"));
    assert_eq!(u.store.verify_audit().unwrap(), Ok(2));
}
