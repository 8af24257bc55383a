//! Signing in to a sandbox with the real Auth0 clients: its settings, approving a device
//! code as the sandbox user instead of a browser, and the session and clients that
//! result. It lives here, not in `auth`, so production code never depends on the
//! sandbox (issue 17); only the composition root (`cli`) and tests call it.

use super::Sandbox;
use super::auth0::model;
use crate::auth::device::DeviceLogin;
use crate::auth::keyring::MemoryStore;
use crate::auth::session::Session;
use crate::auth::{AuthClients, AuthError, AuthSettings, Secret, ciba, vault};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Settings for a sandbox at `base_url` (in this process or another).
pub fn settings(base_url: &str) -> AuthSettings {
    AuthSettings {
        base_url: base_url.trim_end_matches('/').to_string(),
        login_client_id: model::LOGIN_CLIENT_ID.into(),
        agent_client_id: model::AGENT_CLIENT_ID.into(),
        audience: model::API_AUDIENCE.into(),
        poll_unit: Duration::from_secs(1),
        poll_wait: crate::wall::Wait::sleep(),
        refresh_margin: Duration::from_secs(60),
        sandbox_key: None,
    }
}

/// Approves a pending device code as the sandbox user (the rep, or the lead with
/// `--sandbox-user team-lead`).
pub async fn approve_device(settings: &AuthSettings, user_code: &str) -> Result<(), AuthError> {
    let path = "/sandbox/device/approve";
    let mut req = crate::auth::http_client().post(settings.url(path));
    if let Some(k) = &settings.sandbox_key {
        req = req.bearer_auth(k.expose());
    }
    let resp = req
        .json(&serde_json::json!({
            "user_code": user_code,
            "sub": model::SandboxUser::current().sub(),
        }))
        .send()
        .await
        .map_err(|_| AuthError::Transport {
            endpoint: path.into(),
            message: "request failed".into(),
        })?;
    crate::auth::read_json(path, resp).await.map(|_| ())
}

/// A real device-flow sign-in, approved through [`approve_device`]: the same client code
/// path as a real login, with secrets kept in memory.
pub async fn session(settings: AuthSettings) -> Result<Session, AuthError> {
    let login = DeviceLogin::new(settings.clone());
    let prompt = login.start().await?;
    approve_device(&settings, &prompt.user_code).await?;
    let tokens = login.complete(&prompt, &CancellationToken::new()).await?;
    Session::from_tokens(settings, Arc::new(MemoryStore::default()), tokens).await
}

/// `--sandbox`: a session against the in-process sandbox `sb` and its agent client's
/// secret (tests pass settings with a faster `poll_unit`).
pub async fn clients(sb: &Sandbox, settings: AuthSettings) -> Result<AuthClients, AuthError> {
    let agent = Secret::new(sb.state.auth0.agent_client_secret());
    remote_clients(settings, agent).await
}

/// Against a sandbox another process runs, given its agent client secret.
pub async fn remote_clients(
    settings: AuthSettings,
    agent_secret: Secret,
) -> Result<AuthClients, AuthError> {
    let session = session(settings.clone()).await?;
    Ok(AuthClients {
        vault: vault::VaultClient::new(settings.clone(), agent_secret.clone()),
        ciba: ciba::CibaClient::new(settings.clone(), agent_secret),
        session,
        settings,
    })
}
