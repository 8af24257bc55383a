//! Wiring the one pipeline for a command: the Auth0 clients (from the keyring, or a
//! device sign-in against the in-process sandbox), the providers' endpoints, and the
//! start-up reconciliation of anything a crashed run left behind.

use super::Ctx;
use crate::auth::{AuthClients, keyring};
use crate::connectors::Endpoints;
use crate::core::domain::CrmProvider;
use crate::runtime::auth0::{CibaDevice, VaultCredentials};
use crate::runtime::batch::DeviceConsent;
use crate::runtime::credentials::Subject;
use crate::runtime::crm::Crm;
use crate::runtime::pipeline::{Executed, Pipeline, PipelineError};
use crate::sandbox::Sandbox;
use crate::sandbox::discovery::Published;
use crate::sandbox::sign_in;
use crate::wall::now_ms;
use anyhow::{Context, Result};
use std::sync::Arc;

/// A pipeline wired for this invocation, plus what must live as long as it.
pub struct Wired {
    pub pipeline: Arc<Pipeline>,
    pub device: Arc<dyn DeviceConsent>,
    /// The signed-in user's session (My Account calls, whoami).
    pub session: Arc<crate::auth::session::Session>,
    /// The in-process sandbox's base URL (for the phone in a second terminal).
    pub sandbox_url: Option<String>,
    /// What start-up reconciliation resolved (left `executing` by a crashed run).
    pub reconciled: Vec<crate::core::domain::Action>,
    _sandbox: Option<(Sandbox, Option<Published>)>,
}

/// The CRM `[crm]` names. In the sandbox, Salesforce is the sandbox's emulator (its
/// identity service says where its instance is, as the real one does).
pub fn crm_of(config: &crate::config::Config, sandbox_url: Option<&str>) -> Crm {
    use crate::connectors::salesforce::{Salesforce, Settings, StageMap};
    match config.crm {
        CrmProvider::Local => Crm::Local,
        CrmProvider::Salesforce => {
            let sf = &config.raw.crm.salesforce;
            let mut settings = match sandbox_url {
                Some(url) => Settings::new(&format!("{url}/salesforce")),
                None => {
                    let mut s = Settings::new(&sf.login_url);
                    s.instance_url = Some(sf.instance_url.trim_end_matches('/').to_string())
                        .filter(|u| !u.is_empty());
                    s
                }
            };
            settings.external_id_field = sf.external_id_field.clone();
            settings.stages = StageMap::with_overrides(&config.crm_stages);
            Crm::Salesforce(Arc::new(Salesforce::new(settings)))
        }
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// [`wire_quietly`], then says on stderr what start-up reconciliation resolved.
pub async fn wire(ctx: &Ctx) -> Result<Wired> {
    let w = wire_quietly(ctx).await?;
    for a in &w.reconciled {
        eprintln!(
            "reconciled {}: {} ({})",
            a.id,
            a.state,
            a.outcome.as_deref().unwrap_or_default()
        );
    }
    Ok(w)
}

/// Wires the pipeline without writing to the terminal (the TUI owns it by then).
pub async fn wire_quietly(ctx: &Ctx) -> Result<Wired> {
    let joined = if ctx.sandbox {
        join_running().await
    } else {
        None
    };
    let (clients, endpoints, sandbox, sandbox_url) = if let Some((url, clients)) = joined {
        (clients, Endpoints::sandbox(&url), None, Some(url))
    } else if ctx.sandbox {
        let sandbox = Sandbox::start(None).await?;
        keep_world(&sandbox)?;
        // The sandbox approves its own sign-in before the first poll, so that poll may go
        // at once (interval 0) instead of a second later: the second was most of the time
        // to the first frame. Later device flows on this sandbox poll every second.
        sandbox.state.auth0.set_timing(|t| t.device_interval_s = 0);
        let settings =
            sign_in::settings(&sandbox.base_url()).with_sandbox_key(sandbox.state.admin.expose());
        let clients = sign_in::clients(&sandbox, settings).await;
        sandbox.state.auth0.set_timing(|t| t.device_interval_s = 1);
        let clients = clients.context("sandbox sign-in")?;
        let published = sandbox
            .publish_url()
            .map_err(|e| tracing::warn!(error = %e, "cannot publish the sandbox URL for the phone"))
            .ok();
        let url = sandbox.base_url();
        (
            clients,
            Endpoints::sandbox(&url),
            Some((sandbox, published)),
            Some(url),
        )
    } else {
        let store = keyring::open_default()?;
        let clients = AuthClients::from_keyring(&ctx.config.raw.auth, store)
            .await
            .context("signing in from the keyring")?;
        (clients, Endpoints::production(), None, None)
    };
    let AuthClients {
        session,
        vault,
        ciba,
        ..
    } = clients;
    let session = Arc::new(session);
    let creds = Arc::new(VaultCredentials {
        vault,
        session: session.clone(),
        exchange_lock: tokio::sync::Mutex::new(()),
    });
    let device: Arc<dyn DeviceConsent> = Arc::new(CibaDevice::new(ciba, session.clone()));
    let owner = if ctx.sandbox {
        "demo@dealflow.test".to_string()
    } else {
        super::local_actor()
    };
    let crm = crm_of(&ctx.config, sandbox_url.as_deref());
    let pipeline =
        Arc::new(Pipeline::new(ctx.store.clone(), creds, endpoints, owner).with_crm(crm));
    // Anything a crashed run left executing is checked before anything new runs.
    let reconciled = pipeline.reconcile(now_ms()).await?;
    Ok(Wired {
        reconciled,
        pipeline,
        device,
        session,
        sandbox_url,
        _sandbox: sandbox,
    })
}

/// One sandbox world per user: when the URL file names a sandbox that answers with
/// this user's key (a TUI, `sandbox serve`), this process signs in to it instead of
/// starting its own, so mail sent here, a grant revoked there and the phone all agree.
/// `None` (start a fresh one) when there is none, it is gone, or it is not ours.
async fn join_running() -> Option<(String, AuthClients)> {
    let found = crate::sandbox::discovery::read()?;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .ok()?;
    use crate::sandbox::proof;
    let nonce = crate::wall::random_token("join-");
    let v: serde_json::Value = http
        .get(format!("{}/sandbox/agent", found.url))
        .query(&[
            ("nonce", nonce.as_str()),
            ("proof", &proof::proof(&found.key, proof::CLIENT, &nonce)),
        ])
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()?;
    // Whoever answers on that port must prove the key too: a sandbox that died may
    // have left its port to another user of the machine.
    let theirs = v.get("proof")?.as_str()?;
    if !proof::check(&found.key, proof::SERVER, &nonce, theirs) {
        tracing::warn!(url = %found.url, "the sandbox URL file names a server that does not hold its key; starting a sandbox of our own");
        return None;
    }
    let secret = v.get("agent_client_secret")?.as_str()?.to_string();
    let settings = sign_in::settings(&found.url).with_sandbox_key(&found.key);
    match sign_in::remote_clients(settings, crate::auth::Secret::new(secret)).await {
        Ok(c) => Some((found.url, c)),
        Err(e) => {
            tracing::warn!(error = %e, url = %found.url, "cannot sign in to the running sandbox; starting one");
            None
        }
    }
}

/// Executes one approved action.
pub async fn execute_one(w: &Wired, id: &str) -> Result<Executed, PipelineError> {
    w.pipeline.execute(id, &Subject::User, now_ms()).await
}

/// The sandbox world outlives the process that ran it (`sandbox-world.json` beside
/// `sandbox.db`): what the emulated Gmail acknowledged is still there for the next
/// run's reconciliation, as the real one would be.
pub fn keep_world(sandbox: &Sandbox) -> Result<()> {
    let Some(dirs) = crate::config::project_dirs() else {
        return Ok(());
    };
    let path = dirs.data_dir().join("sandbox-world.json");
    sandbox
        .keep_world(&path)
        .with_context(|| format!("the sandbox world in {}", path.display()))
}
