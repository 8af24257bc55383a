//! The pipeline's real clients wired to an in-process sandbox: a real device sign-in as
//! the demo user and the real vault and CIBA clients (what the TUI's `--sandbox`, tests
//! and benchmarks run on). It lives with the sandbox so production code does not
//! depend on the sandbox (issue 17).

use crate::auth::AuthError;
use crate::auth::ciba::CibaClient;
use crate::auth::session::Session;
use crate::auth::vault::VaultClient;
use crate::runtime::auth0::{CibaDevice, VaultCredentials};
use std::sync::Arc;

/// Everything needed to run the pipeline against an in-process sandbox: a real device
/// sign-in as the demo user, the real vault and CIBA clients, the emulated providers.
pub struct SandboxWiring {
    pub sandbox: super::Sandbox,
    pub session: Arc<Session>,
    pub creds: Arc<VaultCredentials>,
    pub device: Arc<CibaDevice>,
}

pub async fn wire_sandbox(sandbox: super::Sandbox) -> Result<SandboxWiring, AuthError> {
    wire_sandbox_with(sandbox, std::time::Duration::from_secs(1)).await
}

/// As [`wire_sandbox`], with the client's polling unit matched to the emulator's
/// `Timing::ms_per_second` (tests speed protocol time up).
pub async fn wire_sandbox_with(
    sandbox: super::Sandbox,
    poll_unit: std::time::Duration,
) -> Result<SandboxWiring, AuthError> {
    let secret = sandbox.state.auth0.agent_client_secret();
    let w = wire_remote(
        &sandbox.base_url(),
        &secret,
        sandbox.state.admin.expose(),
        poll_unit,
    )
    .await?;
    Ok(SandboxWiring {
        sandbox,
        session: w.session,
        creds: w.creds,
        device: w.device,
    })
}

/// A sandbox whose protocol seconds last 20 ms (CIBA intervals and expiries take
/// milliseconds), signed in and wired: what tests and benchmarks want.
pub async fn wire_fast_sandbox() -> Result<SandboxWiring, AuthError> {
    let sandbox = super::Sandbox::start(None)
        .await
        .map_err(|e| AuthError::Transport {
            endpoint: "sandbox".into(),
            message: e.to_string(),
        })?;
    sandbox.state.auth0.set_timing(|t| {
        t.ms_per_second = 20;
        t.device_interval_s = 1;
        t.ciba_interval_s = 1;
    });
    wire_sandbox_with(sandbox, std::time::Duration::from_millis(20)).await
}

/// The clients of [`SandboxWiring`] without the server: for a
/// sandbox another process runs (multi-process tests), given its URL and agent secret.
pub struct RemoteWiring {
    pub session: Arc<Session>,
    pub creds: Arc<VaultCredentials>,
    pub device: Arc<CibaDevice>,
}

/// Signs in to the sandbox at `base_url` as the demo user (device flow over HTTP, the
/// approval presenting the sandbox's control `key`) and builds the real vault and CIBA
/// clients against it.
pub async fn wire_remote(
    base_url: &str,
    agent_secret: &str,
    key: &str,
    poll_unit: std::time::Duration,
) -> Result<RemoteWiring, AuthError> {
    let mut settings = super::sign_in::settings(base_url).with_sandbox_key(key);
    settings.poll_unit = poll_unit;
    let secret = crate::auth::Secret::new(agent_secret.to_string());
    let session = Arc::new(super::sign_in::session(settings.clone()).await?);
    let creds = Arc::new(VaultCredentials {
        vault: VaultClient::new(settings.clone(), secret.clone()),
        session: session.clone(),
        exchange_lock: tokio::sync::Mutex::new(()),
    });
    let device = Arc::new(CibaDevice::new(
        CibaClient::new(settings, secret),
        session.clone(),
    ));
    Ok(RemoteWiring {
        session,
        creds,
        device,
    })
}
