//! The outbox (`ui.undo_send`): an irreversible send approved in the Action Center (an
//! email, a Slack post, closing a deal) waits a few seconds, shown with a countdown,
//! before it runs, and `u` takes it back. The action is `approved` in the store while it
//! waits, so a quit or a crash leaves it approved and not run — visible, and `X` runs
//! it — never half-sent and never lost. Reversible writes (drafts, CRM fields, meetings)
//! run at once: undoing them is a later edit, not a race against the clock.

use crate::core::domain::{ActionKind, Millis};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct Outbox {
    /// How long a send waits; `None`: no outbox, approvals run at once.
    pub window_ms: Option<Millis>,
    /// Action id → when it runs.
    due: BTreeMap<String, Millis>,
    /// Ids already announced as about to go (each rings once).
    warned: std::collections::BTreeSet<String>,
}

impl Outbox {
    pub fn new(window_ms: Option<Millis>) -> Self {
        Outbox {
            window_ms: window_ms.filter(|w| *w > 0),
            due: BTreeMap::new(),
            warned: Default::default(),
        }
    }

    /// Holds `id` if its kind waits in the outbox; `Some(due)` when it does.
    pub fn hold(&mut self, id: &str, kind: ActionKind, now: Millis) -> Option<Millis> {
        let window = self.window_ms?;
        if !kind.is_write() || kind.risk().reversible {
            return None;
        }
        let due = now.saturating_add(window);
        self.due.insert(id.to_string(), due);
        self.warned.remove(id);
        Some(due)
    }

    /// Waiting ids that run within `lead_ms` and were not announced yet; each is
    /// returned once per hold, so a person away from the pane hears it once in time
    /// to take it back.
    pub fn about_to_go(&mut self, now: Millis, lead_ms: Millis) -> Vec<String> {
        let soon: Vec<String> = self
            .due
            .iter()
            .filter(|(id, due)| **due - now <= lead_ms && !self.warned.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        self.warned.extend(soon.iter().cloned());
        soon
    }

    /// Takes out and returns every id whose time has come, oldest first.
    pub fn take_due(&mut self, now: Millis) -> Vec<String> {
        let mut ready: Vec<(Millis, String)> = self
            .due
            .iter()
            .filter(|(_, due)| **due <= now)
            .map(|(id, due)| (*due, id.clone()))
            .collect();
        ready.sort();
        for (_, id) in &ready {
            self.due.remove(id);
            self.warned.remove(id);
        }
        ready.into_iter().map(|(_, id)| id).collect()
    }

    /// Takes `id` out (undo, edit, reject, or "send now"); whether it was waiting.
    pub fn remove(&mut self, id: &str) -> bool {
        self.warned.remove(id);
        self.due.remove(id).is_some()
    }

    /// Takes every waiting id out.
    pub fn drain(&mut self) -> Vec<String> {
        self.warned.clear();
        std::mem::take(&mut self.due).into_keys().collect()
    }

    /// Milliseconds until `id` runs, if it is waiting.
    pub fn remaining(&self, id: &str, now: Millis) -> Option<Millis> {
        self.due.get(id).map(|due| (*due - now).max(0))
    }

    /// Whole seconds until `id` runs, rounded up, as the countdown shows them.
    pub fn secs_left(&self, id: &str, now: Millis) -> Option<Millis> {
        self.remaining(id, now).map(|ms| (ms + 999) / 1000)
    }

    /// The id `u` takes back when the cursor is not on a waiting row: the one that runs
    /// last, i.e. the most recent approval.
    pub fn latest(&self) -> Option<&str> {
        self.due
            .iter()
            .max_by_key(|(_, due)| **due)
            .map(|(id, _)| id.as_str())
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_irreversible_writes_wait_and_they_come_out_in_order() {
        let mut o = Outbox::new(Some(10_000));
        assert_eq!(o.hold("d", ActionKind::DraftEmail, 0), None);
        assert_eq!(o.hold("u", ActionKind::UpdateDeal, 0), None);
        assert_eq!(o.hold("r", ActionKind::ListDeals, 0), None);
        assert_eq!(o.hold("s", ActionKind::PostSlack, 2_000), Some(12_000));
        assert_eq!(o.hold("e", ActionKind::SendEmail, 1_000), Some(11_000));
        assert_eq!(o.latest(), Some("s"));
        assert_eq!(o.remaining("e", 4_000), Some(7_000));
        assert!(o.take_due(10_999).is_empty());
        assert_eq!(o.take_due(12_000), vec!["e".to_string(), "s".to_string()]);
        assert!(o.is_empty());
    }

    #[test]
    fn no_window_means_no_outbox_and_remove_says_whether_it_waited() {
        let mut off = Outbox::new(Some(0));
        assert_eq!(off.hold("e", ActionKind::SendEmail, 0), None);
        let mut o = Outbox::new(Some(5_000));
        o.hold("c", ActionKind::CloseDeal, 0);
        assert!(o.remove("c"));
        assert!(!o.remove("c"));
        assert!(o.take_due(i64::MAX).is_empty());
    }
}
