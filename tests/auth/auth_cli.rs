#![allow(clippy::unwrap_used)]
//! `dealflow sandbox phone` in a "second terminal" (a subprocess) finds a running sandbox
//! through the URL file and approves/denies the CIBA request the agent is waiting on.

use dealflow::auth::Secret;
use dealflow::auth::ciba::{CibaClient, CibaOutcome};
use dealflow::sandbox::Sandbox;
use dealflow::sandbox::auth0::model::DEMO_SUB;
use dealflow::sandbox::sign_in;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn phone(dir: &std::path::Path, url_file: &std::path::Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("dealflow").unwrap();
    c.env_clear()
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("cfg"))
        .env("DEALFLOW_SANDBOX_URL_FILE", url_file)
        .args(["sandbox", "phone"])
        .timeout(Duration::from_secs(60));
    c
}

async fn run(c: assert_cmd::Command) -> std::process::Output {
    let mut c = c;
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_in_a_second_terminal_approves_and_denies() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("run/sandbox.url");
    let sb = Sandbox::start(None).await.unwrap();
    sb.state.auth0.set_timing(|t| t.ms_per_second = 20);
    let published = dealflow::sandbox::discovery::publish_to(
        &url_file,
        &sb.base_url(),
        sb.state.admin.expose(),
    )
    .unwrap();
    let mut s = sign_in::settings(&sb.base_url()).with_sandbox_key(sb.state.admin.expose());
    s.poll_unit = Duration::from_millis(20);
    let ciba = CibaClient::new(s, Secret::new(sb.state.auth0.agent_client_secret()));

    // No sandbox file → a clear error.
    let o = run(phone(dir.path(), &dir.path().join("nope.url"))).await;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no running sandbox"));

    let req = ciba
        .start(DEMO_SUB, "dealflow: 3 actions - 2 email 1 cal", "")
        .await
        .unwrap();
    let mut c = phone(dir.path(), &url_file);
    c.arg("--list");
    let o = run(c).await;
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success());
    assert!(out.contains("dealflow: 3 actions - 2 email 1 cal"), "{out}");
    assert!(
        out.contains("Dana Demo") && out.contains("dealflow agent"),
        "{out}"
    );
    assert!(out.contains("left"), "{out}");

    // Interactive: approve request 1, quit.
    let mut c = phone(dir.path(), &url_file);
    c.write_stdin("a 1\nq\n");
    let o = run(c).await;
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("approved"), "{out}");
    let outcome = ciba.poll(&req, &CancellationToken::new()).await.unwrap();
    assert!(
        matches!(outcome, CibaOutcome::Approved { .. }),
        "{outcome:?}"
    );

    // One-shot deny with --url instead of the file: the port is open to every user of
    // the machine, so the URL alone (what another user can find) is refused...
    let req = ciba.start(DEMO_SUB, "deny me", "").await.unwrap();
    let mut c = phone(dir.path(), &dir.path().join("nope.url"));
    c.args(["--url", &sb.base_url(), "--deny", "1"]);
    let o = run(c).await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused the phone"), "{err}");
    // ... and the owner's key (from their URL file) opens it.
    let mut c = phone(dir.path(), &dir.path().join("nope.url"));
    c.env("DEALFLOW_SANDBOX_KEY", sb.state.admin.expose())
        .args(["--url", &sb.base_url(), "--deny", "1"]);
    let o = run(c).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let outcome = ciba.poll(&req, &CancellationToken::new()).await.unwrap();
    assert!(matches!(outcome, CibaOutcome::Denied), "{outcome:?}");

    // The URL file goes away with the sandbox's guard.
    assert!(url_file.exists());
    drop(published);
    assert!(!url_file.exists());
}

#[test]
fn agent_credential_goes_to_the_opted_in_file_store_and_doctor_sees_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = assert_cmd::Command::cargo_bin("dealflow").unwrap();
        c.env_clear()
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env("XDG_CONFIG_HOME", dir.path().join("cfg"))
            .env("DEALFLOW_KEYRING", "file")
            .args(args)
            .timeout(Duration::from_secs(60));
        c
    };
    let o = cmd(&["auth", "agent-credential"])
        .write_stdin("s3cr3t-agent-value\n")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = [o.stdout.clone(), o.stderr.clone()].concat();
    assert!(!String::from_utf8_lossy(&all).contains("s3cr3t"));
    let file = dir.path().join("state/dealflow/secrets.json");
    let body = std::fs::read_to_string(&file).unwrap();
    assert!(body.contains("s3cr3t-agent-value"));
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = cmd(&["doctor"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ok    keyring   file"), "{out}");
    assert!(
        out.contains("ok    agent     client secret present"),
        "{out}"
    );
    assert!(out.contains("not signed in"), "{out}");
    // Empty stdin is refused.
    let o = cmd(&["auth", "agent-credential"])
        .write_stdin("\n")
        .output()
        .unwrap();
    assert!(!o.status.success());
    // A private key that is not one is refused before it is stored, without echoing it.
    let o = cmd(&["auth", "agent-credential", "--private-key"])
        .write_stdin("-----BEGIN PRIVATE KEY-----\nbm90LWEta2V5\n-----END PRIVATE KEY-----\n")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not an EC P-256 or RSA private key"), "{err}");
    assert!(!err.contains("bm90LWEta2V5"), "{err}");
    assert!(
        !std::fs::read_to_string(&file)
            .unwrap()
            .contains("agent-client-private-key")
    );
    // login without [auth] configured says what to set.
    let o = cmd(&["login"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("auth.domain"));
}
