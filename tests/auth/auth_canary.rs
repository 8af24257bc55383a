#![allow(clippy::unwrap_used)]
//! Secret canary: run every auth flow against the emulator with TRACE logging captured,
//! record what a pipeline would record (Debug/Display of every result and error) in the
//! SQLite store and its audit log, then look for every token string the emulator issued
//! (and the agent secret) in the logs, the store file and the command's output. None may
//! appear.

use dealflow::auth::Secret;
use dealflow::auth::ciba::CibaClient;
use dealflow::auth::connect::{ConnectClient, LoopbackRedirect};
use dealflow::auth::vault::VaultClient;
use dealflow::core::audit::NewAuditEntry;
use dealflow::core::domain::Connection;
use dealflow::sandbox::Sandbox;
use dealflow::sandbox::auth0::model::DEMO_SUB;
use dealflow::sandbox::sign_in;
use dealflow::store::{SqliteStore, Store};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fn leaks<'a>(haystack: &[u8], needles: &'a [String]) -> Vec<&'a str> {
    let hay = String::from_utf8_lossy(haystack);
    needles
        .iter()
        .filter(|n| hay.contains(n.as_str()))
        .map(|n| &n[..n.len().min(12)])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_issued_token_reaches_logs_store_audit_or_output() {
    let cap = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(cap.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("canary.db");
    let store = SqliteStore::open(&db).unwrap();
    let mut output = String::new();
    let mut record = |event: &str, what: String| {
        tracing::info!(event, detail = %what, "auth result");
        output.push_str(&what);
        output.push('\n');
        store
            .append_audit(NewAuditEntry {
                ts: 0,
                actor: "agent".into(),
                surface: None,
                event: event.into(),
                action_id: None,
                outcome: "ok".into(),
                detail: serde_json::json!({ "result": what }),
            })
            .unwrap();
    };

    let sb = Sandbox::start(None).await.unwrap();
    sb.state.auth0.set_timing(|t| t.ms_per_second = 10);
    let mut s = sign_in::settings(&sb.base_url()).with_sandbox_key(sb.state.admin.expose());
    s.poll_unit = Duration::from_millis(10);
    let secret = Secret::new(sb.state.auth0.agent_client_secret());

    // Sign-in, refresh, userinfo.
    let sess = sign_in::session(s.clone()).await.unwrap();
    record("login", format!("{:?}", sess.access_token().await));
    record("whoami", format!("{:?}", sess.userinfo().await));

    // Vault, success and failure.
    let vault = VaultClient::new(s.clone(), secret.clone());
    let at = sess.access_token().await.unwrap();
    for c in [Connection::Google, Connection::Slack] {
        let r = vault.exchange(at.expose(), c).await;
        record("vault", format!("{r:?}"));
    }
    sb.state.disconnect_account(DEMO_SUB, "google-oauth2");
    vault.invalidate(Connection::Google);
    let e = vault.exchange(at.expose(), Connection::Google).await;
    record(
        "vault.error",
        format!("{e:?} / {}", e.as_ref().unwrap_err()),
    );

    // CIBA approve + deny + bad binding message.
    let ciba = CibaClient::new(s.clone(), secret.clone());
    for approve in [true, false] {
        let req = ciba.start(DEMO_SUB, "canary check", "").await.unwrap();
        record("ciba.start", format!("{req:?}"));
        let id = loop {
            if let Some(r) = sb.state.phone_pending().into_iter().next() {
                break r.id;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        if approve {
            sb.state.phone_approve(&id);
        } else {
            sb.state.phone_deny(&id);
        }
        let out = ciba.poll(&req, &CancellationToken::new()).await;
        record("ciba.outcome", format!("{out:?}"));
        if let Ok(dealflow::auth::ciba::CibaOutcome::Approved { access_token, .. }) = &out {
            let r = vault
                .exchange(access_token.expose(), Connection::Slack)
                .await;
            record("vault.ciba", format!("{r:?}"));
        }
    }
    let e = ciba.start(DEMO_SUB, &"y".repeat(80), "").await;
    record("ciba.error", format!("{e:?}"));

    // Connect flow (My Account token via multi-resource refresh).
    let cc = ConnectClient::new(&sess);
    let lb = LoopbackRedirect::bind().await.unwrap();
    let start = cc
        .start(Connection::Google, &["openid"], &lb.redirect_uri)
        .await
        .unwrap();
    record("connect.start", format!("{start:?}"));
    let w = tokio::spawn(lb.wait());
    reqwest::get(&start.connect_url).await.unwrap();
    let (code, state) = w.await.unwrap().unwrap();
    record(
        "connect.complete",
        format!("{:?}", cc.complete(&start, &code, &state).await),
    );

    // Logout.
    record("logout", format!("{:?}", sess.logout().await));
    drop(store);

    let mut needles = sb.state.auth0.issued_tokens();
    // Access, refresh, id, My Account and provider tokens were all issued.
    assert!(needles.len() >= 8, "only {} tokens issued", needles.len());
    assert!(needles.iter().any(|t| t.starts_with("v1.sbx-rt-")));
    assert!(needles.iter().any(|t| t.starts_with("ya29.")));
    assert!(needles.iter().any(|t| t.starts_with("xoxp-")));
    needles.push(secret.expose().to_string());

    // The scanner itself works: a planted token is found.
    let planted = format!("x {} y", needles[0]);
    assert_eq!(leaks(planted.as_bytes(), &needles).len(), 1);

    let logs = cap.0.lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&logs).contains("auth result"),
        "logging was not captured"
    );
    assert_eq!(leaks(&logs, &needles), Vec::<&str>::new(), "in logs");
    assert_eq!(
        leaks(output.as_bytes(), &needles),
        Vec::<&str>::new(),
        "in output"
    );
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(
            leaks(&bytes, &needles),
            Vec::<&str>::new(),
            "in {}",
            p.display()
        );
    }
    // The audit rows are really there (the scan looked at real content).
    let store = SqliteStore::open(&db).unwrap();
    assert!(store.audit_page(0, 100).unwrap().len() >= 10);
}

/// The CLI in sandbox mode: nothing on stdout/stderr or in the store looks like a token.
#[test]
fn cli_sandbox_login_whoami_print_no_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = assert_cmd::Command::cargo_bin("dealflow")
            .unwrap()
            .env_clear()
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("cfg"))
            .env("RUST_LOG", "trace")
            .args(args)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        [o.stdout, o.stderr].concat()
    };
    let mut all = run(&["--sandbox", "login"]);
    assert!(String::from_utf8_lossy(&all).contains("Dana Demo"));
    all.extend(run(&["--sandbox", "whoami"]));
    all.extend(run(&["--sandbox", "doctor"]));
    // Doctor creates nothing; the store the scan below reads is the first real command's.
    all.extend(run(&["--sandbox", "status"]));
    let patterns: Vec<String> = [
        "eyJ",
        "v1.sbx-rt-",
        "sbx-agent-secret-",
        "ya29.",
        "xoxp-",
        "sbx-dc-",
        "sbx-areq-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(leaks(&all, &patterns), Vec::<&str>::new());
    let db = dir.path().join("data/dealflow/sandbox.db");
    assert!(db.exists());
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert_eq!(leaks(&bytes, &patterns), Vec::<&str>::new());
    }
}
