//! The one place effects run: one `match` over [`Effect`]'s lanes, on the runtime the
//! event loop runs on. Store effects cross one `spawn_blocking` boundary (writes and
//! reloads one at a time and in order, so an older reload never lands after a newer
//! one; slow reads on their own, never queued in front of a decision); what needs the
//! signed-in services goes to [`Services`], or is answered "not signed in" when there are
//! none; the terminal's own effects are written here.
//!
//! Whether the services are still being built is the app's state, not the driver's:
//! `App::update` holds what needs them until `Msg::ServicesReady`, so the driver never
//! queues and never decides at run time who takes an effect.

use super::executor::Executor;
use super::msg::{ConnectEvent, Effect, Msg, PipelineEffect, Ready, StoreEffect, UiEffect};
use super::notify;
use super::services::Services;
use crate::core::agent::Io;
use std::io::Write;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What to do when nothing is signed in, right whether or not a tenant is configured
/// (`dealflow login` alone fails until `init` has written one).
pub const SIGN_IN: &str = "not signed in — `dealflow init` sets up your Auth0 tenant (once), then `dealflow login`; or try it all with `dealflow --sandbox`";

pub struct Driver {
    exec: Executor,
    services: Option<Arc<Services>>,
    ordered: mpsc::UnboundedSender<StoreEffect>,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Driver {
    /// Starts the ordered store worker; call inside the runtime.
    pub fn new(exec: Executor, tx: mpsc::UnboundedSender<Msg>) -> Driver {
        let (ordered, mut work) = mpsc::unbounded_channel::<StoreEffect>();
        let (e, t) = (exec.clone(), tx.clone());
        tokio::spawn(async move {
            while let Some(effect) = work.recv().await {
                for m in blocking(&e, effect).await {
                    if t.send(m).is_err() {
                        return;
                    }
                }
            }
        });
        Driver {
            exec,
            services: None,
            ordered,
            tx,
        }
    }

    /// The services, once built (`None`: they could not be; effects that need them are
    /// answered "not signed in").
    pub fn install(&mut self, services: Option<Arc<Services>>) {
        self.services = services;
    }

    pub fn run(&self, effect: Effect) {
        match effect {
            Effect::Store(e) if e.is_slow_read() => {
                let (exec, tx) = (self.exec.clone(), self.tx.clone());
                tokio::spawn(async move {
                    for m in blocking(&exec, e).await {
                        let _ = tx.send(m);
                    }
                });
            }
            Effect::Store(e) => {
                if self.ordered.send(e).is_err() {
                    let _ = self
                        .tx
                        .send(Msg::LoadFailed("the store worker stopped".into()));
                }
            }
            Effect::Pipeline(e) => match &self.services {
                Some(s) => s.run_pipeline(e, &self.tx),
                None => self.answer(pipeline_unsigned(e)),
            },
            Effect::Chat(e) => match &self.services {
                Some(s) => s.run_chat(e, &self.tx),
                None => self.answer(chat_unsigned(e)),
            },
            Effect::Ui(e) => terminal(e),
        }
    }

    /// Before the loop returns: what the person decided last (a chat step-up declined
    /// just before quitting) is written, not lost with the runtime. Bounded: a store
    /// that does not answer does not keep the terminal from being restored.
    pub async fn settle(&self) {
        if let Some(s) = &self.services {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.settled()).await;
        }
    }

    fn answer(&self, msgs: Vec<Msg>) {
        for m in msgs {
            let _ = self.tx.send(m);
        }
    }
}

/// The one boundary between the UI's runtime and the (synchronous) store.
async fn blocking(exec: &Executor, effect: StoreEffect) -> Vec<Msg> {
    let exec = exec.clone();
    let what = Effect::Store(effect.clone()).describe();
    tokio::task::spawn_blocking(move || exec.run(effect))
        .await
        .unwrap_or_else(|_| vec![Msg::LoadFailed(format!("{what}: the store call failed"))])
}

/// The terminal's own effects: escape sequences on stdout, written between frames.
fn terminal(effect: UiEffect) {
    let seq = match effect {
        UiEffect::Quit => return,
        UiEffect::Copy(text) => notify::copy_sequence(&text),
        UiEffect::Notify { title, body } => {
            notify::sequence(&title, &body, std::env::var_os("TMUX").is_some())
        }
    };
    let mut out = std::io::stdout();
    let _ = out.write_all(seq.as_bytes());
    let _ = out.flush();
}

/// How an effect that needs the pipeline is answered when nobody is signed in: it says
/// how to fix that, and nothing that waits for an answer waits forever.
pub fn pipeline_unsigned(effect: PipelineEffect) -> Vec<Msg> {
    match effect {
        PipelineEffect::ExecuteApproved(_) => vec![Msg::Unavailable(format!(
            "execution: {SIGN_IN} — approved actions stay approved"
        ))],
        PipelineEffect::SendToBatch(ids) => vec![Msg::Unavailable(format!(
            "batch: {SIGN_IN} — {} action(s) not sent to your device",
            ids.len()
        ))],
        // No device to confirm with: the lock is a privacy screen and the keypress lifts
        // it (said so, audited).
        PipelineEffect::RequestUnlock => vec![Msg::Unlock(Ok(
            "keypress (not signed in: no device to confirm with)".into(),
        ))],
        PipelineEffect::ConnectAccount(c) => vec![Msg::Connect(ConnectEvent::Done {
            connection: c,
            result: Err(format!("connect {}: {SIGN_IN}", c.as_str())),
        })],
        PipelineEffect::ConnectRedirect(_) | PipelineEffect::CancelConnect => vec![],
    }
}

/// How the Chat tab is answered when nobody is signed in: a turn cannot stream (and so
/// never asks for anything else).
pub fn chat_unsigned(io: Io) -> Vec<Msg> {
    match io {
        Io::StartStream { .. } => vec![Msg::Unavailable(format!("chat: {SIGN_IN}"))],
        _ => vec![],
    }
}

/// Runs an effect on the calling thread as the driver would with no services (not
/// signed in): headless tests and benchmarks drive the real app and executor with it.
pub fn run_headless(exec: &Executor, effect: Effect) -> Vec<Msg> {
    match effect {
        Effect::Store(e) => exec.run(e),
        Effect::Pipeline(e) => pipeline_unsigned(e),
        Effect::Chat(e) => chat_unsigned(e),
        Effect::Ui(_) => vec![],
    }
}

/// The services as they settle: built (with what to say) or why not.
pub struct Arrival {
    pub services: Option<Arc<Services>>,
    pub report: Result<Ready, String>,
}

/// What the composition root keeps to talk to the loop: where the services arrive
/// once built, and a line for reports from background work (the suggestion engine).
pub struct WiringHandle {
    tx: mpsc::UnboundedSender<Msg>,
    services: std::sync::Mutex<Option<oneshot::Sender<Arrival>>>,
    first_frame: Arc<tokio::sync::Notify>,
}

impl WiringHandle {
    /// Waits until the loop drew its first frame (at most [`FIRST_FRAME_HOLD`]): on two
    /// cores, building the services while the first page of the queue was read and
    /// drawn delayed the frame with data by about as long as the build took.
    pub async fn first_frame(&self) {
        let _ = tokio::time::timeout(FIRST_FRAME_HOLD, self.first_frame.notified()).await;
    }

    /// Settles the services (once; a second call is ignored).
    pub fn ready(&self, services: Option<Arc<Services>>, report: Result<Ready, String>) {
        let slot = self
            .services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(s) = slot {
            let _ = s.send(Arrival { services, report });
        }
    }

    /// A line for the status bar from work that is not an answer to an effect.
    pub fn report(&self, msg: Msg) {
        let _ = self.tx.send(msg);
    }
}

/// What the loop is handed: its message channel (background reports come in on it) and
/// where the services arrive.
pub struct Wiring {
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    pub(super) rx: mpsc::UnboundedReceiver<Msg>,
    pub(super) services: oneshot::Receiver<Arrival>,
    /// Told once the first frame is on screen.
    pub(super) first_frame: Arc<tokio::sync::Notify>,
}

/// How long the services' build waits for the first frame before it starts anyway.
const FIRST_FRAME_HOLD: std::time::Duration = std::time::Duration::from_millis(250);

/// A loop's wiring and the handle the composition root keeps.
pub fn wiring() -> (Wiring, WiringHandle) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (stx, srx) = oneshot::channel();
    let first_frame = Arc::new(tokio::sync::Notify::new());
    (
        Wiring {
            tx: tx.clone(),
            rx,
            services: srx,
            first_frame: first_frame.clone(),
        },
        WiringHandle {
            tx,
            services: std::sync::Mutex::new(Some(stx)),
            first_frame,
        },
    )
}
