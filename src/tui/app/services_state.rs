//! Whether the signed-in services exist yet, as app state: what needs them is held here
//! while they are being built (the first frame does not wait for sign-in) and released,
//! in order, when they settle — to run, or to be answered "not signed in" by the driver.

use super::{App, Level};
use crate::tui::msg::{Effect, Ready, StoreEffect};

#[derive(Debug, Clone, Default, PartialEq)]
pub enum ServicesState {
    /// Being built (sign-in, the sandbox starting, start-up reconciliation); holds what
    /// waits for them, oldest first.
    Starting(Vec<Effect>),
    /// Built, or known not to be: the driver runs or answers what needs them.
    #[default]
    Settled,
}

impl App {
    /// Whether the services have settled (built or not): the start-up benchmark waits
    /// for it.
    pub fn services_settled(&self) -> bool {
        self.services == ServicesState::Settled
    }

    /// Keeps back what needs the services while they are being built, and says so.
    pub(super) fn hold(&mut self, effects: Vec<Effect>) -> Vec<Effect> {
        let ServicesState::Starting(held) = &mut self.services else {
            return effects;
        };
        let mut out = Vec::with_capacity(effects.len());
        let mut said = None;
        for e in effects {
            if e.needs_services() {
                said = Some(format!(
                    "{} queued: it runs as soon as sign-in finishes",
                    e.describe()
                ));
                held.push(e);
            } else {
                out.push(e);
            }
        }
        if let Some(text) = said {
            self.set_status(Level::Ok, text);
        }
        out
    }

    /// The services settled: say how, and release what waited for them, in order.
    pub(super) fn on_services_ready(&mut self, report: Result<Ready, String>) -> Vec<Effect> {
        let held = match std::mem::take(&mut self.services) {
            ServicesState::Starting(held) => held,
            ServicesState::Settled => vec![],
        };
        match report {
            Ok(ready) => {
                self.chat.offline = ready.offline_chat;
                self.background_status(Level::Ok, ready.text)
            }
            Err(why) => self.background_status(
                Level::Warn,
                format!("{why}; running without execution (reviews still work)"),
            ),
        }
        let mut out = held;
        out.push(Effect::Store(StoreEffect::LoadActions));
        out
    }
}
