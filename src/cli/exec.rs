//! Running approved actions from the command line: the same pipeline every surface
//! uses. In the sandbox, the emulators run in this process for the command's lifetime.

use super::{Ctx, now_ms};
use crate::connectors::Endpoints;
use crate::runtime::auth0::{CibaDevice, SandboxWiring, wire_sandbox};
use crate::runtime::credentials::Subject;
use crate::runtime::pipeline::{Executed, Pipeline, PipelineError};
use crate::sandbox::Sandbox;
use anyhow::{Result, bail};
use std::sync::Arc;

/// A pipeline wired for this invocation, plus what must live as long as it.
pub struct Wired {
    pub pipeline: Pipeline,
    /// The in-process sandbox's base URL (for the phone in a second terminal).
    pub sandbox_url: Option<String>,
    pub device: Arc<CibaDevice>,
    _sandbox: Option<SandboxWiring>,
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub async fn wire(ctx: &Ctx) -> Result<Wired> {
    if !ctx.sandbox {
        bail!(
            "executing against your tenant needs `dealflow login`, which is not built yet; try --sandbox"
        );
    }
    let sandbox = Sandbox::start(None).await?;
    let base = sandbox.base_url();
    let wiring = wire_sandbox(sandbox).await?;
    let pipeline = Pipeline::new(
        ctx.store.clone(),
        wiring.creds.clone(),
        Endpoints::sandbox(&base),
        "demo@dealflow.test".into(),
    );
    // Anything a crashed run left executing is checked before anything new runs.
    let swept = pipeline.reconcile(now_ms()).await?;
    for a in swept {
        eprintln!(
            "reconciled {}: {} ({})",
            a.id,
            a.state,
            a.outcome.unwrap_or_default()
        );
    }
    Ok(Wired {
        pipeline,
        sandbox_url: Some(base),
        device: wiring.device.clone(),
        _sandbox: Some(wiring),
    })
}

/// Executes one approved action and explains the result in one line.
pub async fn execute_one(w: &Wired, id: &str) -> Result<Executed, PipelineError> {
    w.pipeline.execute(id, &Subject::User, now_ms()).await
}
