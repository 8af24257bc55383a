//! The seam for backends built elsewhere (the execution pipeline, CIBA batches, the chat
//! agent): an [`EffectHandler`] takes the effects it knows, runs them (spawning tokio
//! tasks for long work) and reports back with `Msg`s on the channel it is given. Effects
//! no handler takes fall through to the built-in executor, which answers honestly with
//! `Msg::Unavailable` for what it cannot do.

use super::msg::{Effect, Msg};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

pub trait EffectHandler: Send + Sync {
    /// Takes `effect` (returning `None`) or hands it back untouched (`Some`). Called on
    /// the UI task inside the tokio runtime: never block here; `tokio::spawn` the work
    /// and send results (e.g. `Msg::Chat`, `Msg::ActionsLoaded`) through `tx`.
    fn handle(&self, effect: Effect, tx: &UnboundedSender<Msg>) -> Option<Effect>;

    /// Called once by the event loop, on the UI runtime, before any effect: a handler
    /// that reports on its own (not only in answer to an effect) keeps `tx`, and
    /// `fallback` runs an effect the way the loop would if no handler took it.
    fn attach(&self, _tx: &UnboundedSender<Msg>, _fallback: Fallback) {}

    /// Whether it can run what it takes now (false while a [`Deferred`] is being built).
    fn ready(&self) -> bool {
        true
    }
}

/// The built-in executor, as a handler sees it: runs an effect, returns its answers.
pub type Fallback = Arc<dyn Fn(Effect) -> Vec<Msg> + Send + Sync>;

/// A backend still being built when the first frame is drawn (the sandbox starting,
/// sign-in, start-up reconciliation): the rep sees the pipeline at once instead of
/// waiting on round trips. Effects the backend will take are queued, said so, and run
/// in order once it is ready; if it cannot be built they are answered, never dropped.
pub struct Deferred {
    takes: fn(&Effect) -> bool,
    state: Mutex<DeferredState>,
}

#[derive(Default)]
struct DeferredState {
    ready: Option<Result<Arc<dyn EffectHandler>, String>>,
    queued: Vec<Effect>,
    /// Reports made before the event loop attached.
    outbox: Vec<Msg>,
    link: Option<(UnboundedSender<Msg>, tokio::runtime::Handle, Fallback)>,
}

impl DeferredState {
    /// Delivers what can be delivered: reports, and queued effects once the backend is
    /// settled. Runs under the lock so an effect that arrives meanwhile cannot overtake
    /// the queue (handlers only spawn, so holding it is short).
    fn flush(&mut self) {
        let Some((tx, rt, fallback)) = self.link.clone() else {
            return;
        };
        for m in self.outbox.drain(..) {
            let _ = tx.send(m);
        }
        let Some(ready) = &self.ready else { return };
        let _on_ui_runtime = rt.enter();
        for effect in self.queued.drain(..) {
            let unanswered = match ready {
                Ok(h) => h.handle(effect, &tx),
                Err(_) => Some(effect),
            };
            // Not built (or not taken): answered as if no backend had ever been wired —
            // an unlock falls back to the keypress, a connect says "not signed in" —
            // so nothing that waits for an answer waits forever.
            if let Some(effect) = unanswered {
                for m in fallback(effect) {
                    let _ = tx.send(m);
                }
            }
        }
    }
}

impl Deferred {
    /// `takes` says which effects the backend-to-be will take (the rest go on to the
    /// built-in executor at once).
    pub fn new(takes: fn(&Effect) -> bool) -> Deferred {
        Deferred {
            takes,
            state: Mutex::new(DeferredState::default()),
        }
    }

    /// Settles the backend: `Err` carries why it could not be built (shown; queued
    /// effects are answered with it). `report` is shown as the status line.
    pub fn resolve(&self, backend: Result<Arc<dyn EffectHandler>, String>, report: Msg) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.ready = Some(backend);
        s.outbox.push(report);
        s.flush();
    }
}

impl Deferred {
    /// A report from background work that is not an answer to an effect (the
    /// suggestion engine's runs): shown on the status line, kept until the loop attaches.
    pub fn report(&self, msg: Msg) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.outbox.push(msg);
        s.flush();
    }
}

impl EffectHandler for Deferred {
    fn handle(&self, effect: Effect, tx: &UnboundedSender<Msg>) -> Option<Effect> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &s.ready {
            Some(Ok(h)) => {
                let h = h.clone();
                drop(s);
                h.handle(effect, tx)
            }
            // Not built: the executor answers, as when nothing was ever wired.
            Some(Err(_)) => Some(effect),
            None if (self.takes)(&effect) => {
                let _ = tx.send(Msg::Status {
                    ok: true,
                    text: format!(
                        "{} queued: it runs as soon as sign-in finishes",
                        effect.describe()
                    ),
                });
                s.queued.push(effect);
                None
            }
            None => Some(effect),
        }
    }

    fn ready(&self) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.ready.is_some()
    }

    fn attach(&self, tx: &UnboundedSender<Msg>, fallback: Fallback) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            s.link = Some((tx.clone(), rt, fallback));
        }
        s.flush();
    }
}

/// Offers `effect` to each handler in order; returns it if none took it.
pub fn route(
    effect: Effect,
    handlers: &[Arc<dyn EffectHandler>],
    tx: &UnboundedSender<Msg>,
) -> Option<Effect> {
    let mut effect = effect;
    for h in handlers {
        effect = h.handle(effect, tx)?;
    }
    Some(effect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::msg::ChatEvent;

    struct FakeChat;

    impl EffectHandler for FakeChat {
        fn handle(&self, effect: Effect, tx: &UnboundedSender<Msg>) -> Option<Effect> {
            match effect {
                Effect::StartChatTurn(text) => {
                    let _ = tx.send(Msg::Chat(ChatEvent::AssistantDelta(format!("echo {text}"))));
                    None
                }
                other => Some(other),
            }
        }
    }

    fn fallback() -> Fallback {
        Arc::new(|e: Effect| vec![Msg::Unavailable(format!("executor: {}", e.describe()))])
    }

    fn chat_only(e: &Effect) -> bool {
        matches!(e, Effect::StartChatTurn(_))
    }

    fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Msg>) -> Vec<String> {
        let mut out = vec![];
        while let Ok(m) = rx.try_recv() {
            out.push(match m {
                Msg::Chat(ChatEvent::AssistantDelta(t)) => t,
                Msg::Status { text, .. } => format!("status: {text}"),
                Msg::Unavailable(t) => format!("unavailable: {t}"),
                other => format!("{other:?}"),
            });
        }
        out
    }

    #[tokio::test]
    async fn a_deferred_backend_queues_what_it_will_take_and_runs_it_in_order_once_ready() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let d = Arc::new(Deferred::new(chat_only));
        let hs: Vec<Arc<dyn EffectHandler>> = vec![d.clone()];
        d.attach(&tx, fallback());
        assert!(!d.ready());
        assert_eq!(route(Effect::StartChatTurn("one".into()), &hs, &tx), None);
        assert_eq!(route(Effect::StartChatTurn("two".into()), &hs, &tx), None);
        // What the backend will not take goes on to the executor at once.
        assert_eq!(
            route(Effect::LoadActions, &hs, &tx),
            Some(Effect::LoadActions)
        );
        let waiting = drain(&mut rx);
        assert_eq!(waiting.len(), 2);
        assert!(waiting[0].contains("queued"), "{waiting:?}");
        d.resolve(
            Ok(Arc::new(FakeChat)),
            Msg::Status {
                ok: true,
                text: "ready".into(),
            },
        );
        assert!(d.ready());
        assert_eq!(drain(&mut rx), ["status: ready", "echo one", "echo two"]);
        assert_eq!(route(Effect::StartChatTurn("three".into()), &hs, &tx), None);
        assert_eq!(drain(&mut rx), ["echo three"]);
    }

    #[tokio::test]
    async fn a_backend_that_cannot_be_built_answers_what_waited_and_reports_before_attach() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let d = Arc::new(Deferred::new(chat_only));
        // Settled before the event loop attached: the report waits for it.
        let early = Arc::new(Deferred::new(chat_only));
        early.resolve(
            Err("sign-in: no keyring entry".into()),
            Msg::Status {
                ok: false,
                text: "no sign-in".into(),
            },
        );
        early.attach(&tx, fallback());
        assert_eq!(drain(&mut rx), ["status: no sign-in"]);

        d.attach(&tx, fallback());
        let hs: Vec<Arc<dyn EffectHandler>> = vec![d.clone()];
        assert_eq!(route(Effect::StartChatTurn("hi".into()), &hs, &tx), None);
        drain(&mut rx);
        d.resolve(
            Err("sign-in: token endpoint answered 500".into()),
            Msg::Status {
                ok: false,
                text: "failed".into(),
            },
        );
        assert_eq!(
            drain(&mut rx),
            ["status: failed", "unavailable: executor: chat message"]
        );
        // Afterwards the executor answers, as when nothing was wired.
        assert!(route(Effect::StartChatTurn("again".into()), &hs, &tx).is_some());
    }

    #[test]
    fn handlers_take_what_they_know_and_pass_the_rest() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let hs: Vec<Arc<dyn EffectHandler>> = vec![Arc::new(FakeChat)];
        assert_eq!(route(Effect::StartChatTurn("hi".into()), &hs, &tx), None);
        assert!(matches!(
            rx.try_recv(),
            Ok(Msg::Chat(ChatEvent::AssistantDelta(t))) if t == "echo hi"
        ));
        assert_eq!(
            route(Effect::LoadActions, &hs, &tx),
            Some(Effect::LoadActions)
        );
    }
}
