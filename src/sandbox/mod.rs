//! The sandbox: everything dealflow needs, running on this machine with no tenant and
//! no API key. One HTTP server on 127.0.0.1 (random port) hosts the emulated Auth0
//! (`auth0`) and the emulated Gmail, Calendar and Slack (`providers`), sharing one
//! [`state::SandboxState`]; `demo` holds the demo pipeline.

pub mod auth0;
pub mod demo;
pub mod discovery;
pub mod fake_llm;
pub mod proof;
pub mod providers;
pub mod salesforce;
pub mod sign_in;
pub mod soql;
pub mod state;
pub mod wiring;
pub mod world;

use state::SandboxState;
use std::net::SocketAddr;
use std::sync::Arc;

/// A running sandbox server. Dropping it stops the server.
pub struct Sandbox {
    pub addr: SocketAddr,
    pub state: Arc<SandboxState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Sandbox {
    /// Binds 127.0.0.1 on a random port (or `port` if given) and serves until dropped.
    pub async fn start(port: Option<u16>) -> std::io::Result<Sandbox> {
        Self::start_with(Arc::new(SandboxState::default()), port).await
    }

    pub async fn start_with(
        state: Arc<SandboxState>,
        port: Option<u16>,
    ) -> std::io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).await?;
        let addr = listener.local_addr()?;
        state.auth0.set_issuer(format!("http://{addr}/"));
        let app = axum::Router::new()
            .merge(auth0::router(state.clone()))
            .merge(providers::router(state.clone()))
            .merge(salesforce::router(state.clone()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Sandbox {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    /// "http://127.0.0.1:PORT"
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Keeps the providers' world (sent mail, events, posts) in `path` across runs.
    pub fn keep_world(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.state.providers.persist_to(path)
    }

    /// Writes this sandbox's URL where `dealflow sandbox phone` looks for it (see
    /// [`discovery`]); keep the guard alive as long as the sandbox runs.
    pub fn publish_url(&self) -> std::io::Result<discovery::Published> {
        discovery::publish(&self.base_url(), self.state.admin.expose())
    }
}

pub(crate) use crate::files::write_private;

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
