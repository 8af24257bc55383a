#![allow(clippy::unwrap_used)]
//! The TUI's signed-in services against the emulated tenant, for what asks the user's accounts or
//! device: connecting a provider account from the TUI (Permissions, `c`) — the My
//! Account connect flow, completed on the loopback redirect or on an address pasted from
//! a browser on another machine — and unlocking the idle lock, which takes a yes on the
//! user's phone (CIBA).

use dealflow::connectors::Endpoints;
use dealflow::core::domain::Connection;
use dealflow::runtime::batch::BatchOptions;
use dealflow::runtime::pipeline::Pipeline;
use dealflow::sandbox::auth0::model::DEMO_SUB;
use dealflow::sandbox::wiring::{SandboxWiring, wire_fast_sandbox};
use dealflow::store::{SqliteStore, Store};
use dealflow::tui::msg::{ConnectEvent, Msg, PipelineEffect};
use dealflow::tui::services::Services;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

async fn backend() -> (Services, SandboxWiring, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let w = wire_fast_sandbox().await.unwrap();
    let pipeline = Arc::new(Pipeline::new(
        store,
        w.creds.clone(),
        Endpoints::sandbox(&w.sandbox.base_url()),
        "rep@dealflow.test".into(),
    ));
    let b = Services::new(
        pipeline,
        w.device.clone(),
        BatchOptions::default(),
        "user:ana".into(),
        None,
    )
    .with_session(w.session.clone());
    (b, w, dir)
}

async fn next(rx: &mut UnboundedReceiver<Msg>) -> Msg {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap()
}

async fn link(rx: &mut UnboundedReceiver<Msg>) -> String {
    match next(rx).await {
        Msg::Connect(ConnectEvent::Link { url, .. }) => url,
        other => panic!("{other:?}"),
    }
}

async fn done(rx: &mut UnboundedReceiver<Msg>) -> (Connection, Result<String, String>) {
    loop {
        match next(rx).await {
            Msg::Connect(ConnectEvent::Done { connection, result }) => return (connection, result),
            Msg::Status { .. } => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn connect_completes_on_the_loopback_redirect() {
    let (b, w, _dir) = backend().await;
    w.sandbox
        .state
        .auth0
        .delete_connected_account(DEMO_SUB, "sign-in-with-slack");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    b.run_pipeline(PipelineEffect::ConnectAccount(Connection::Slack), &tx);
    let url = link(&mut rx).await;
    assert!(url.contains("ticket="), "{url}");
    // The browser follows the consent redirect to the loopback listener.
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(page.contains("Account connected"));
    let (c, r) = done(&mut rx).await;
    assert_eq!(c, Connection::Slack);
    let line = r.unwrap();
    assert!(line.starts_with("connected sign-in-with-slack:"), "{line}");
    assert!(line.contains("chat:write"), "{line}");
}

#[tokio::test]
async fn connect_completes_on_a_pasted_address_and_refuses_a_wrong_one() {
    let (b, w, _dir) = backend().await;
    // The user took gmail.send back at Google: the connect adds it and keeps the rest.
    let send = "https://www.googleapis.com/auth/gmail.send".to_string();
    w.sandbox
        .state
        .revoke_grant(DEMO_SUB, "google-oauth2", std::slice::from_ref(&send))
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    b.run_pipeline(PipelineEffect::ConnectAccount(Connection::Google), &tx);
    let url = link(&mut rx).await;
    // A browser on another machine: it ends on the loopback address, which the rep copies.
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_follow.get(&url).send().await.unwrap();
    let ended_on = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(ended_on.contains("connect_code="), "{ended_on}");
    b.run_pipeline(
        PipelineEffect::ConnectRedirect("not an address".into()),
        &tx,
    );
    match next(&mut rx).await {
        Msg::Status { ok: false, text } => assert!(text.contains("paste the full URL"), "{text}"),
        other => panic!("{other:?}"),
    }
    b.run_pipeline(PipelineEffect::ConnectRedirect(ended_on), &tx);
    let (c, r) = done(&mut rx).await;
    assert_eq!(c, Connection::Google);
    let line = r.unwrap();
    assert!(
        line.starts_with("connected google-oauth2: added gmail.send; 5 scope(s)"),
        "{line}"
    );
    let accounts = w.sandbox.state.auth0.connected_accounts(DEMO_SUB);
    let google = accounts
        .iter()
        .find(|a| a.connection == "google-oauth2")
        .unwrap();
    assert_eq!(google.scopes.len(), 5, "{:?}", google.scopes);
}

#[tokio::test]
async fn connecting_what_is_fully_granted_renews_the_grant() {
    // A grant that lists every scope can still be dead (its refresh token revoked at
    // the provider): an explicit connect must still be able to renew it.
    let (b, _w, _dir) = backend().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    b.run_pipeline(PipelineEffect::ConnectAccount(Connection::Google), &tx);
    let url = link(&mut rx).await;
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(page.contains("Account connected"));
    let (c, r) = done(&mut rx).await;
    assert_eq!(c, Connection::Google);
    assert!(r.unwrap().contains("grant renewed; 5 scope(s)"));
}

#[tokio::test]
async fn a_cancelled_connect_says_so() {
    let (b, w, _dir) = backend().await;
    w.sandbox
        .state
        .revoke_grant(DEMO_SUB, "sign-in-with-slack", &["chat:write".to_string()])
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    b.run_pipeline(PipelineEffect::ConnectAccount(Connection::Slack), &tx);
    link(&mut rx).await;
    b.run_pipeline(PipelineEffect::CancelConnect, &tx);
    let (_, r) = done(&mut rx).await;
    assert_eq!(r, Err("connect sign-in-with-slack: cancelled".into()));
}

async fn answer_on_phone(w: &SandboxWiring, approve: bool) -> String {
    for _ in 0..500 {
        if let Some(req) = w.sandbox.state.phone_pending().into_iter().next() {
            if approve {
                w.sandbox.state.phone_approve(&req.id);
            } else {
                w.sandbox.state.phone_deny(&req.id);
            }
            return req.binding_message;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no unlock request reached the phone");
}

async fn unlock_answer(rx: &mut UnboundedReceiver<Msg>) -> Result<String, String> {
    match next(rx).await {
        Msg::Unlock(r) => r,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unlock_needs_a_yes_on_the_phone() {
    let (backend, w, _dir) = backend().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();

    backend.run_pipeline(PipelineEffect::RequestUnlock, &tx);
    let shown = answer_on_phone(&w, false).await;
    assert_eq!(shown, "Unlock dealflow for ana");
    assert_eq!(
        unlock_answer(&mut rx).await,
        Err("denied on the device".into())
    );

    backend.run_pipeline(PipelineEffect::RequestUnlock, &tx);
    answer_on_phone(&w, true).await;
    assert_eq!(
        unlock_answer(&mut rx).await,
        Ok("approved on the device".into())
    );
}
