//! Team mode on a Redis with ACLs, end to end through the real binary: dealflow makes
//! each member a Redis user that reaches only their own keys, and Redis itself holds
//! the line — through dealflow (even with a forged sign-in) and through a raw
//! connection with the member's credential. On a redis-server of the test's own (its
//! ACLs must not touch the shared one), plain and over TLS with a private CA.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use dealflow::core::domain::{Action, ActionParams, ActionState, Surface};
use dealflow::store::Store;
use dealflow::store::redis::{Connect, Credential, RedisStore};

use super::{redis_server, tls};
use redis_server::RedisServer;
use std::path::PathBuf;
use tls::TlsRedis;

const ADMIN_PW: &str = "admin-pw-7d1f0c2e";

/// A server of the test's own (plain, or TLS-only with a CA made now) whose `default`
/// user is off: every connection names a user.
struct Srv {
    url: String,
    ca: Option<PathBuf>,
    _plain: Option<RedisServer>,
    _tls: Option<TlsRedis>,
}

impl Srv {
    fn plain() -> Srv {
        let s = RedisServer::start(&[]);
        Srv::with_acls(Srv {
            url: s.url(),
            ca: None,
            _plain: Some(s),
            _tls: None,
        })
    }

    fn tls() -> Srv {
        let t = TlsRedis::start();
        Srv::with_acls(Srv {
            url: t.url(),
            ca: Some(t.ca()),
            _plain: None,
            _tls: Some(t),
        })
    }

    /// A client as `user` (None: the default user), over TLS when the server is.
    fn client(&self, user: Option<(&str, &str)>) -> redis::Client {
        let mut info = redis::IntoConnectionInfo::into_connection_info(self.url.as_str()).unwrap();
        if let Some((u, p)) = user {
            let settings = info
                .redis_settings()
                .clone()
                .set_username(u)
                .set_password(p);
            info = info.set_redis_settings(settings);
        }
        match &self.ca {
            None => redis::Client::open(info).unwrap(),
            Some(ca) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(ca).unwrap()),
                },
            )
            .unwrap(),
        }
    }

    fn with_acls(self) -> Srv {
        let mut c = self.client(None).get_connection().unwrap();
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("admin")
            .arg("on")
            .arg(format!(">{ADMIN_PW}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .query::<()>(&mut c)
            .unwrap();
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("off")
            .query::<()>(&mut c)
            .unwrap();
        self
    }
}

/// A person with their own home and keyring, signed in as `sub`, on `team`.
struct Person {
    dir: tempfile::TempDir,
    sub: String,
}

impl Person {
    fn new(server: &Srv, team: &str, tag: &str) -> Person {
        let sub = format!("auth0|{tag}-{:08x}", rand::random::<u32>());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "[store]\nurl = \"{}\"\nteam = \"{team}\"\nca_file = \"{}\"\n",
                server.url,
                server
                    .ca
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        )
        .unwrap();
        let p = Person { dir, sub };
        p.claim(&p.sub.clone());
        p
    }

    fn keyring(&self) -> std::path::PathBuf {
        self.dir.path().join("state/dealflow/secrets.json")
    }

    /// Writes `sub` as the signed-in identity into this person's own keyring — which is
    /// theirs to write, so it is also how they would forge one.
    fn claim(&self, sub: &str) {
        let path = self.keyring();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut map: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let identity = serde_json::json!({ "sub": sub, "name": "ACL Test" }).to_string();
        map.insert("login-identity".into(), identity.into());
        std::fs::write(&path, serde_json::Value::Object(map).to_string()).unwrap();
    }

    fn cmd(&self, args: &[&str], stdin: &str) -> assert_cmd::assert::Assert {
        Command::cargo_bin("dealflow")
            .unwrap()
            .env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("DEALFLOW_KEYRING", "file")
            .env("USER", "mallory")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .args(args)
            .write_stdin(stdin)
            .timeout(std::time::Duration::from_secs(60))
            .assert()
    }

    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let a = self.cmd(args, stdin).success();
        String::from_utf8_lossy(&a.get_output().stdout).into_owned()
    }

    fn err(&self, args: &[&str]) -> String {
        let a = self.cmd(args, "").failure();
        String::from_utf8_lossy(&a.get_output().stderr).into_owned()
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

fn raw(server: &Srv, user: &str, password: &str) -> redis::Connection {
    server
        .client(Some((user, password)))
        .get_connection()
        .unwrap()
}

fn noperm<T: std::fmt::Debug>(r: redis::RedisResult<T>) {
    let e = r.unwrap_err();
    assert!(e.to_string().contains("NoPerm"), "{e}");
}

#[test]
fn each_member_reaches_only_their_own_keys_and_only_admins_change_the_policy() {
    scenario(&Srv::plain());
}

/// The same over TLS, verified against the team's private CA (`store.ca_file`).
#[test]
fn the_same_holds_over_tls_with_a_private_ca() {
    scenario(&Srv::tls());
}

fn scenario(server: &Srv) {
    let team = format!("t{:08x}", rand::random::<u32>());
    let lead = Person::new(server, &team, "lead");
    let rep = Person::new(server, &team, "rep");
    let admin_stdin = format!("{ADMIN_PW}\n");

    // Without a credential the server lets no one in.
    let err = lead.err(&["actions", "list"]);
    assert!(!err.contains(ADMIN_PW), "{err}");

    // The lead sets the team up with the Redis admin credential (stdin), and makes
    // Redis users for themselves (an admin) and the rep.
    lead.ok(&["team", "init", "--redis-user", "admin"], &admin_stdin);
    let lead_pw = lead.ok(
        &[
            "team",
            "add-member",
            &lead.sub,
            "--admin",
            "--redis-user",
            "admin",
        ],
        &admin_stdin,
    );
    let rep_pw = lead.ok(
        &["team", "add-member", &rep.sub, "--redis-user", "admin"],
        &admin_stdin,
    );
    let (lead_pw, rep_pw) = (lead_pw.trim().to_string(), rep_pw.trim().to_string());
    assert_eq!(lead_pw.len(), 64);
    assert_ne!(lead_pw, rep_pw);
    lead.ok(&["store", "credential"], &format!("{lead_pw}\n"));
    rep.ok(&["store", "credential"], &format!("{rep_pw}\n"));
    // The password went to the keyring file, never to config.toml.
    let config = std::fs::read_to_string(rep.dir.path().join("config.toml")).unwrap();
    assert!(!config.contains(&rep_pw));
    assert!(
        std::fs::read_to_string(rep.keyring())
            .unwrap()
            .contains(&rep_pw)
    );

    // Doctor names the user in use, narrower than the default one.
    let out = rep.ok(&["doctor"], "");
    assert!(
        out.contains(&format!(
            "ok    acl       Redis user {}: narrower",
            dealflow::store::redis::member_user(&team, &rep.sub)
        )),
        "{out}"
    );

    assert_eq!(
        out.contains("ok    tls       TLS on: server certificate verified against store.ca_file"),
        server.ca.is_some(),
        "{out}"
    );

    // Each works in their own namespace through dealflow.
    let lead_user = dealflow::store::redis::member_user(&team, &lead.sub);
    let rep_user = dealflow::store::redis::member_user(&team, &rep.sub);
    let lead_store = RedisStore::open_with(
        &server.url,
        &Connect {
            credential: Some(Credential {
                user: lead_user.clone(),
                password: lead_pw.clone(),
            }),
            ca_file: server.ca.clone(),
        },
        &lead.sub,
        Some(&team),
    )
    .unwrap();
    lead_store.insert_action(&slack("lead-1")).unwrap();
    lead.ok(&["permissions", "autonomy", "send_email", "review"], "");
    let lead_head = lead_store.audit_head().unwrap();
    let list: serde_json::Value =
        serde_json::from_str(&rep.ok(&["actions", "list", "--json"], "")).unwrap();
    assert_eq!(list, serde_json::json!([]));
    rep.ok(&["permissions", "autonomy", "send_email", "auto"], "");

    // The rep forges the lead's sub in their own keyring: dealflow now keys the lead's
    // namespace, and Redis refuses the rep's user every read and write of it.
    rep.claim(&lead.sub);
    let err = rep.err(&["actions", "list", "--json"]);
    assert!(err.contains("NoPerm"), "{err}");
    let err = rep.err(&["actions", "reject", "lead-1", "--reason", "x"]);
    assert!(err.contains("NoPerm"), "{err}");
    let err = rep.err(&["permissions", "autonomy", "send_email", "auto"]);
    assert!(err.contains("NoPerm"), "{err}");
    assert!(!err.contains(&rep_pw), "{err}");
    rep.claim(&rep.sub);

    // And through a raw connection with the rep's credential.
    let mut c = raw(server, &rep_user, &rep_pw);
    let lead_key = |k: &str| format!("dealflow:u:{{{}}}:{k}", lead.sub);
    noperm(
        redis::cmd("HGETALL")
            .arg(lead_key("action:lead-1"))
            .query::<Vec<String>>(&mut c),
    );
    noperm(
        redis::cmd("GET")
            .arg(lead_key("permissions"))
            .query::<Option<String>>(&mut c),
    );
    noperm(
        redis::cmd("SET")
            .arg(lead_key("permissions"))
            .arg("{}")
            .query::<()>(&mut c),
    );
    noperm(
        redis::cmd("DEL")
            .arg(lead_key("audit:log"))
            .query::<i64>(&mut c),
    );
    noperm(
        redis::cmd("EVAL")
            .arg("return redis.call('DEL', KEYS[1])")
            .arg(1)
            .arg(lead_key("audit:log"))
            .query::<i64>(&mut c),
    );
    noperm(redis::cmd("FLUSHALL").query::<()>(&mut c));
    noperm(
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&rep_user)
            .arg("~*")
            .query::<()>(&mut c),
    );
    let policy_key = format!("dealflow:t:{{{team}}}:policy");
    let admins_key = format!("dealflow:t:{{{team}}}:admins");
    let stream_key = format!("dealflow:t:{{{team}}}:audit");
    noperm(
        redis::cmd("SET")
            .arg(&policy_key)
            .arg("{}")
            .query::<()>(&mut c),
    );
    noperm(
        redis::cmd("SADD")
            .arg(&admins_key)
            .arg(&rep.sub)
            .query::<i64>(&mut c),
    );
    noperm(
        redis::cmd("XDEL")
            .arg(&stream_key)
            .arg("1-0")
            .query::<i64>(&mut c),
    );
    noperm(redis::cmd("DEL").arg(&stream_key).query::<i64>(&mut c));
    // What the rep may: their own keys, reading the team's.
    let own: Option<String> = redis::cmd("GET")
        .arg(format!("dealflow:u:{{{}}}:permissions", rep.sub))
        .query(&mut c)
        .unwrap();
    assert!(own.is_some());
    let _: Option<String> = redis::cmd("GET").arg(&policy_key).query(&mut c).unwrap();
    assert_eq!(lead_store.audit_head().unwrap(), lead_head);
    assert_eq!(
        lead_store.get_action("lead-1").unwrap().state,
        ActionState::Proposed
    );

    // Only the admin changes the team policy: the rep is told so; the lead's own Redis
    // user may write it.
    let strict = rep.dir.path().join("strict.toml");
    std::fs::write(&strict, "[autonomy]\nsend_email = \"step_up\"\n").unwrap();
    let err = rep.err(&["team", "set", strict.to_str().unwrap()]);
    assert!(err.contains("only an admin"), "{err}");
    lead.ok(&["team", "set", strict.to_str().unwrap()], "");
    let p: serde_json::Value =
        serde_json::from_str(&rep.ok(&["permissions", "show", "--json"], "")).unwrap();
    assert_eq!(p["autonomy"]["send_email"], "step_up");
    let err = rep.err(&["team", "clear"]);
    assert!(err.contains("only an admin"), "{err}");

    // The rep reads the team's stream: who made whom a member, and the lead's change.
    let events: Vec<(String, String)> = rep
        .ok(&["audit", "export", "--team"], "")
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                e["event"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let by_lead = format!("user:{}", lead.sub);
    let expected: Vec<(String, String)> = [
        "team.created",
        "team.member_added",
        "team.member_added",
        "team.policy_set",
    ]
    .iter()
    .map(|e| (e.to_string(), by_lead.clone()))
    .collect();
    assert_eq!(events, expected);
    assert!(
        rep.ok(&["audit", "verify", "--team"], "")
            .contains("4 entries verified")
    );

    // Removed, the rep's user is gone: dealflow cannot connect with it any more.
    lead.ok(
        &["team", "remove-member", &rep.sub, "--redis-user", "admin"],
        &admin_stdin,
    );
    let err = rep.err(&["actions", "list"]);
    assert!(!err.contains(&rep_pw), "{err}");
    assert!(
        server
            .client(None)
            .get_connection()
            .and_then(|mut c| redis::cmd("AUTH")
                .arg(&rep_user)
                .arg(&rep_pw)
                .query::<()>(&mut c))
            .is_err()
    );
}
