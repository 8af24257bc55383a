//! Redis over TLS (`rediss://`): a redis-server of the test's own with only a TLS port,
//! its certificate signed by a CA made at test time. The CA comes from the `openssl`
//! command (Debian's ca-certificates depends on it, so it is wherever the system's
//! roots are) rather than a certificate crate: no dependency to build for a test.

#![allow(clippy::unwrap_used)]

use assert_cmd::Command;
use dealflow::store::Store;
use dealflow::store::redis::{Connect, RedisStore};
use std::path::Path;

use super::tls;
use tls::{TlsRedis, make_ca};

fn action(id: &str) -> dealflow::core::domain::Action {
    use dealflow::core::domain::{Action, ActionParams, ActionState, Surface};
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
        confidence: 0.9,
        justification: "test".into(),
        title: id.into(),
        created_at: 1,
        updated_at: 1,
        outcome: None,
        evidence: None,
    }
}

/// With the private CA the store works over TLS: actions, the audit chain, a lease.
/// Without it (the system's roots do not know it), or with another CA, the connection
/// is refused: verification is on and cannot be skipped.
#[test]
fn rediss_verifies_the_server_against_the_configured_ca() {
    let tls = TlsRedis::start();
    let s = tls.store("tls-user", Some(tls.ca())).unwrap();
    assert!(s.tls());
    s.insert_action(&action("t1")).unwrap();
    assert_eq!(s.get_action("t1").unwrap().id, "t1");
    s.append_audit(dealflow::core::audit::NewAuditEntry {
        ts: 1,
        actor: "user:tls-user".into(),
        surface: None,
        event: "test.event".into(),
        action_id: None,
        outcome: "ok".into(),
        detail: serde_json::json!({}),
    })
    .unwrap();
    assert_eq!(s.verify_audit().unwrap(), Ok(1));
    assert!(s.take_lease("suggest", "me", 1, 10).unwrap().is_ok());

    // The system's roots: this CA is not among them.
    let e = tls
        .store("tls-user", None)
        .err()
        .expect("an unknown CA is refused");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // Another CA altogether.
    let other = tempfile::tempdir().unwrap();
    make_ca(other.path(), "someone else's CA");
    let e = tls
        .store("tls-user", Some(other.path().join("ca.crt")))
        .err()
        .expect("another CA is refused");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    // A CA file with a plain redis:// URL would leave the connection in clear text.
    let e = RedisStore::open_with(
        &format!("redis://localhost:{}", tls.server.port),
        &Connect {
            ca_file: Some(tls.ca()),
            ..Default::default()
        },
        "tls-user",
        None,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("not rediss://"), "{e}");
}

fn dealflow(home: &Path, config: &str) -> Command {
    std::fs::write(home.join("config.toml"), config).unwrap();
    let keyring = home.join("state/dealflow/secrets.json");
    std::fs::create_dir_all(keyring.parent().unwrap()).unwrap();
    let identity = serde_json::json!({ "sub": "auth0|tls-cli", "name": "TLS" }).to_string();
    std::fs::write(
        &keyring,
        serde_json::json!({ "login-identity": identity }).to_string(),
    )
    .unwrap();
    let mut c = Command::cargo_bin("dealflow").unwrap();
    c.env_clear()
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("DEALFLOW_KEYRING", "file")
        .arg("--config")
        .arg(home.join("config.toml"))
        .timeout(std::time::Duration::from_secs(60));
    c
}

/// The real binary: `store.ca_file` makes a `rediss://` store work and `doctor` says
/// TLS is on; without it the certificate is refused and nothing runs, and a password
/// in the URL is never shown.
#[test]
fn the_cli_uses_store_ca_file_and_doctor_reports_tls() {
    let tls = TlsRedis::start();
    let home = tempfile::tempdir().unwrap();
    let with_ca = format!(
        "[store]\nurl = \"{}\"\nca_file = \"{}\"\n",
        tls.url(),
        tls.ca().display()
    );
    let a = dealflow(home.path(), &with_ca)
        .args(["permissions", "autonomy", "send_email", "review"])
        .assert()
        .success();
    drop(a);
    let a = dealflow(home.path(), &with_ca).arg("doctor").assert();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("TLS on"), "{out}");
    let s = tls.store("auth0|tls-cli", Some(tls.ca())).unwrap();
    assert_eq!(s.audit_head().unwrap().0, 1);

    let without = format!(
        "[store]\nurl = \"rediss://:s3cret-pw@localhost:{}\"\n",
        tls.server.port
    );
    let a = dealflow(home.path(), &without)
        .args(["actions", "list"])
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
}
