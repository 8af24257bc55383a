#![allow(clippy::unwrap_used)]
//! Unlocking the TUI's idle lock when signed in takes a yes on the user's phone: the
//! backend sends a CIBA request to the emulated tenant and reports the device's answer.

use dealflow::connectors::Endpoints;
use dealflow::runtime::auth0::wire_fast_sandbox;
use dealflow::runtime::batch::BatchOptions;
use dealflow::runtime::pipeline::Pipeline;
use dealflow::store::{SqliteStore, Store};
use dealflow::tui::backend::Backend;
use dealflow::tui::handler::EffectHandler;
use dealflow::tui::msg::{Effect, Msg};
use std::sync::Arc;
use std::time::Duration;

async fn answer_on_phone(w: &dealflow::runtime::auth0::SandboxWiring, approve: bool) -> String {
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

async fn unlock_answer(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Msg>,
) -> Result<String, String> {
    let m = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    match m {
        Msg::Unlock(r) => r,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unlock_needs_a_yes_on_the_phone() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let w = wire_fast_sandbox().await.unwrap();
    let pipeline = Arc::new(Pipeline::new(
        store,
        w.creds.clone(),
        Endpoints::sandbox(&w.sandbox.base_url()),
        "rep@dealflow.test".into(),
    ));
    let backend = Backend::new(
        pipeline,
        w.device.clone(),
        BatchOptions::default(),
        "user:ana".into(),
        None,
        4,
    );
    assert!(Backend::takes(&Effect::RequestUnlock));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();

    assert!(backend.handle(Effect::RequestUnlock, &tx).is_none());
    let shown = answer_on_phone(&w, false).await;
    assert_eq!(shown, "Unlock dealflow for ana");
    assert_eq!(
        unlock_answer(&mut rx).await,
        Err("denied on the device".into())
    );

    assert!(backend.handle(Effect::RequestUnlock, &tx).is_none());
    answer_on_phone(&w, true).await;
    assert_eq!(
        unlock_answer(&mut rx).await,
        Ok("approved on the device".into())
    );
}
