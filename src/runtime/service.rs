//! The background worker ("the service"): the suggestion engine and the batch gatherer
//! on their intervals with no terminal open, for one user, on the same store, keyring
//! and audit log as the TUI. It holds the store's `service` lease (one service per user,
//! visible in `doctor`), and the engine and gatherer take their own leases per run, so a
//! TUI or a manual `batch` running beside it never does the same work twice.
//!
//! What it last did is kept in a small status file beside the log (`service.json`,
//! 0600): `dealflow service status` and the TUI's status bar read it. It holds times and
//! one-line summaries, never a token or a payload.

use super::batch::{BatchOptions, BatchReport, DeviceConsent, run_once};
use super::suggester::{SuggestError, Suggester};
use crate::core::domain::Millis;
use crate::store::lease;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the worker last did, as its status file records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub pid: u32,
    /// Its name in the store's `service` lease ("pid 4242 on host #1").
    pub holder: String,
    pub started: Millis,
    /// Set on a clean exit; a status without it whose process is gone crashed.
    pub stopped: Option<Millis>,
    pub suggest_every_s: u64,
    pub batch_every_s: u64,
    pub last_suggest: Option<Millis>,
    pub last_suggest_summary: Option<String>,
    /// The last run that filed something.
    pub last_proposed: Option<Millis>,
    pub last_batch: Option<Millis>,
    pub last_batch_summary: Option<String>,
    pub next_batch: Option<Millis>,
}

/// How the worker is seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Running,
    /// Exited cleanly (stopped, or a `--once` run finished).
    Stopped,
    /// The process is gone without saying so: killed or crashed.
    Died,
}

impl ServiceStatus {
    pub fn liveness(&self) -> Liveness {
        match self.stopped {
            Some(_) => Liveness::Stopped,
            None if super::pid_alive(self.pid) => Liveness::Running,
            None => Liveness::Died,
        }
    }

    /// When the engine looks next at the latest (it also looks as soon as the pipeline
    /// changes).
    pub fn next_suggest(&self) -> Option<Millis> {
        self.last_suggest
            .map(|t| t + self.suggest_every_s as Millis * 1000)
    }

    /// The status file at `path`, if there is one this user wrote. A file owned by
    /// anyone else is ignored: what it says would be shown as ours.
    pub fn read(path: &Path) -> Option<ServiceStatus> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        if meta.uid() != unsafe { libc::geteuid() } {
            tracing::warn!(path = %path.display(), "the service status file is not ours; ignored");
            return None;
        }
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Replaces the file atomically (a reader never sees half of it), 0600.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::files::write_private(path, serde_json::to_string_pretty(self)?.as_bytes())
    }
}

/// The status file: beside the log in the state directory; the sandbox's is separate,
/// like its store.
pub fn status_path(sandbox: bool) -> Option<PathBuf> {
    let name = if sandbox {
        "sandbox-service.json"
    } else {
        "service.json"
    };
    Some(crate::config::state_dir()?.join(name))
}

pub struct WorkerOptions {
    pub suggest_every: Duration,
    pub batch_every: Duration,
    pub batch: BatchOptions,
    /// One suggestion run and one batch round, then exit (for cron).
    pub once: bool,
    pub status_path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(
        "another dealflow service ({0}) is already running for this user; stop it first (`dealflow service status` shows it)"
    )]
    Elsewhere(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Pipeline(#[from] super::pipeline::PipelineError),
}

/// How long the `service` lease lasts between renewals: a killed service (not on this
/// host, where a dead pid is noticed at once) blocks a new one for at most this long.
const LEASE_FOR: Millis = 3 * 60_000;
const RENEW_EVERY: Duration = Duration::from_secs(60);

/// Runs the worker until `cancel` (or, with `once`, for one round). Each step is logged
/// at info (the journal, under systemd) and recorded in the status file.
pub async fn run(
    engine: Arc<Suggester>,
    device: Arc<dyn DeviceConsent>,
    opts: WorkerOptions,
    now: Arc<dyn Fn() -> Millis + Send + Sync>,
    cancel: CancellationToken,
) -> Result<ServiceStatus, WorkerError> {
    let store = engine.pipeline.store.clone();
    let holder = super::lease_holder();
    let started = now();
    if let Err(other) = super::take_lease(
        store.as_ref(),
        lease::SERVICE,
        &holder,
        started,
        started + LEASE_FOR,
    )? {
        return Err(WorkerError::Elsewhere(other.holder));
    }
    let status = Arc::new(Mutex::new(ServiceStatus {
        pid: std::process::id(),
        holder: holder.clone(),
        started,
        suggest_every_s: opts.suggest_every.as_secs(),
        batch_every_s: opts.batch_every.as_secs(),
        ..Default::default()
    }));
    let path = opts.status_path.clone();
    let save = {
        let status = status.clone();
        move || {
            let Some(path) = &path else { return };
            let s = status.lock().map(|s| s.clone()).unwrap_or_default();
            if let Err(e) = s.write(path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the service status file");
            }
        }
    };
    let save = Arc::new(save);
    save();
    tracing::info!(
        holder = %holder,
        suggest_every_s = opts.suggest_every.as_secs(),
        batch_every_s = opts.batch_every.as_secs(),
        once = opts.once,
        "service started"
    );

    let on_run = {
        let (status, save, now) = (status.clone(), save.clone(), now.clone());
        Arc::new(move |r: Result<super::suggester::Run, SuggestError>| {
            let at = now();
            let summary = match &r {
                Ok(run) => {
                    tracing::info!(filed = run.filed.len(), "{}", run.summary());
                    run.summary()
                }
                Err(SuggestError::Elsewhere { holder: who }) => {
                    tracing::info!(holder = %who, "another engine is running; this round left to it");
                    format!("another engine ({who}) ran this round")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "suggestion run failed");
                    format!("suggestions: {e}")
                }
            };
            if let Ok(mut s) = status.lock() {
                s.last_suggest = Some(at);
                s.last_suggest_summary = Some(summary);
                if r.as_ref().is_ok_and(|run| !run.filed.is_empty()) {
                    s.last_proposed = Some(at);
                }
            }
            save();
        })
    };

    let result = if opts.once {
        let r = engine.run_until(now(), &cancel).await;
        if !matches!(r, Err(SuggestError::Stopped)) {
            on_run(r);
        }
        batch_round(&engine, device.as_ref(), &opts, &status, &*now, &cancel).await
    } else {
        let renew = {
            let (store, holder, now, cancel) =
                (store.clone(), holder.clone(), now.clone(), cancel.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(RENEW_EVERY) => {}
                    }
                    let t = now();
                    let (store, holder) = (store.clone(), holder.clone());
                    let renewed = tokio::task::spawn_blocking(move || {
                        store.take_lease(lease::SERVICE, &holder, t, t + LEASE_FOR)
                    })
                    .await;
                    if !matches!(renewed, Ok(Ok(Ok(())))) {
                        tracing::warn!(
                            "the service lease could not be renewed; another service may start"
                        );
                    }
                }
            })
        };
        let suggest = tokio::spawn(engine.clone().watch(
            opts.suggest_every,
            super::suggester::CHANGE_POLL,
            now.clone(),
            on_run,
            cancel.clone(),
        ));
        while !cancel.is_cancelled() {
            // A store or device fault is logged and tried again next round: a service
            // that exits on a network blip would need a human to restart it.
            let _ = batch_round(&engine, device.as_ref(), &opts, &status, &*now, &cancel).await;
            save();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(opts.batch_every) => {}
            }
        }
        // A run that is filing or running an allowed action finishes it first.
        let _ = tokio::time::timeout(Duration::from_secs(30), suggest).await;
        renew.abort();
        Ok(())
    };
    if let Err(e) = store.release_lease(lease::SERVICE, &holder) {
        tracing::warn!(error = %e, "the service lease was not released; it lapses on its own");
    }
    let done = match status.lock() {
        Ok(mut s) => {
            s.stopped = Some(now());
            s.clone()
        }
        Err(_) => ServiceStatus::default(),
    };
    save();
    tracing::info!("service stopped");
    result.map(|()| done)
}

/// One round of the gatherer, recorded in the status.
async fn batch_round(
    engine: &Suggester,
    device: &dyn DeviceConsent,
    opts: &WorkerOptions,
    status: &Mutex<ServiceStatus>,
    now: &(dyn Fn() -> Millis + Send + Sync),
    cancel: &CancellationToken,
) -> Result<(), WorkerError> {
    let report = run_once(engine.pipeline.clone(), device, &opts.batch, cancel).await;
    let at = now();
    let summary = match &report {
        Ok(r) => batch_summary(r),
        Err(e) => format!("batch: {e}"),
    };
    match &report {
        Ok(_) => tracing::info!("{summary}"),
        Err(_) => tracing::warn!("{summary}"),
    }
    if let Ok(mut s) = status.lock() {
        s.last_batch = Some(at);
        s.last_batch_summary = Some(summary);
        s.next_batch = (!opts.once).then(|| at + opts.batch_every.as_millis() as Millis);
    }
    report.map(|_| ()).map_err(WorkerError::from)
}

/// One line for a batch round, as the log and `service status` say it.
pub fn batch_summary(r: &BatchReport) -> String {
    if let Some(holder) = &r.elsewhere {
        return format!("another worker ({holder}) was gathering the device queue");
    }
    if r.requests == 0 {
        return "nothing queued for device consent".into();
    }
    format!("{} push(es) to the device: {}", r.requests, r.counts())
}
