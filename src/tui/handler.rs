//! The seam for backends built elsewhere (the execution pipeline, CIBA batches, the chat
//! agent): an [`EffectHandler`] takes the effects it knows, runs them (spawning tokio
//! tasks for long work) and reports back with `Msg`s on the channel it is given. Effects
//! no handler takes fall through to the built-in executor, which answers honestly with
//! `Msg::NotBuilt` for what it cannot do.

use super::msg::{Effect, Msg};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

pub trait EffectHandler: Send + Sync {
    /// Takes `effect` (returning `None`) or hands it back untouched (`Some`). Called on
    /// the UI task inside the tokio runtime: never block here; `tokio::spawn` the work
    /// and send results (e.g. `Msg::Chat`, `Msg::ActionsLoaded`) through `tx`.
    fn handle(&self, effect: Effect, tx: &UnboundedSender<Msg>) -> Option<Effect>;
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
