//! Calibration in the app: asking for a replay, taking its answer, and saying when a
//! rule was paused, while the Trust popup keeps its selection.

use super::*;
use crate::tui::keymap::{Command, Section};
use crate::tui::msg::Effect;
use crate::tui::msg::{StoreEffect, UiEffect};
use std::collections::BTreeSet;

impl App {
    /// Asks for a fresh calibration unless one is running (the executor answers at
    /// once when the audit log has not moved).
    pub(super) fn calibrate(&mut self) -> Vec<Effect> {
        if self.trust.loading {
            return vec![];
        }
        self.trust.loading = true;
        vec![Effect::Store(StoreEffect::LoadCalibration {
            known_head: self.trust.head(),
        })]
    }

    /// A "no" just paused a rule (a reject or an undo here, or the CLI): say which, and
    /// where to look at it. Not on the first load, which has nothing to compare with.
    pub(super) fn say_newly_paused(
        &mut self,
        before: Option<&crate::core::permissions::Permissions>,
    ) {
        let Some(before) = before else { return };
        let was_paused = |id: &str| {
            before
                .auto_rules
                .iter()
                .any(|r| r.id == id && r.paused.is_some())
        };
        let Some(now) = &self.perms.perms else { return };
        let fresh: Vec<String> = now
            .auto_rules
            .iter()
            .filter(|r| !was_paused(&r.id))
            .filter_map(|r| {
                let p = r.paused.as_ref()?;
                Some(format!(
                    "auto-approve rule {} to {} paused: you {} {}",
                    r.kind, r.target, p.by, p.action_id
                ))
            })
            .collect();
        if let Some(first) = fresh.first() {
            let key = self.keymap.keys_for(Section::Actions, Command::Trust);
            self.set_status(
                Level::Warn,
                format!("{first} · {key} opens Trust to resume or revoke it"),
            );
        }
    }

    /// The Trust popup's selected row, by identity.
    pub(super) fn trust_selection(&self) -> Option<String> {
        let Some(Popup::Trust { cursor, .. }) = &self.popup else {
            return None;
        };
        self.trust
            .items(self.perms.perms.as_ref())
            .get(*cursor)
            .map(|i| i.key())
    }

    /// After the Trust list changed under an open popup: the cursor follows the row it
    /// was on, and if that row moved or went, the input guard starts again, so a key
    /// meant for one nudge never accepts another.
    pub(super) fn keep_trust_selection(&mut self, before: Option<String>) {
        if !matches!(self.popup, Some(Popup::Trust { .. })) {
            return;
        }
        let items: Vec<String> = self
            .trust
            .items(self.perms.perms.as_ref())
            .iter()
            .map(|i| i.key())
            .collect();
        if let Some(Popup::Trust { cursor, opened_at }) = &mut self.popup {
            let now_at = before
                .as_ref()
                .and_then(|k| items.iter().position(|i| i == k));
            if now_at != Some(*cursor) {
                *cursor = now_at.unwrap_or((*cursor).min(items.len().saturating_sub(1)));
                *opened_at = self.now;
            }
        }
    }

    pub(super) fn on_calibrated(
        &mut self,
        r: Result<Option<Box<crate::tui::trust::Calibrated>>, String>,
    ) -> Vec<Effect> {
        self.trust.loading = false;
        let mut ring = vec![];
        let selected = self.trust_selection();
        match r {
            Ok(Some(c)) => {
                let before: BTreeSet<(crate::core::domain::ActionKind, String)> = self
                    .trust
                    .nudges()
                    .iter()
                    .map(|n| (n.kind, n.target.clone()))
                    .collect();
                let first = self.trust.latest.is_none();
                self.trust.latest = Some(*c);
                let fresh = self
                    .trust
                    .nudges()
                    .into_iter()
                    .find(|n| !before.contains(&(n.kind, n.target.clone())))
                    .map(|n| n.text.clone());
                // Suggest once, quietly, on the status line: never a popup in the way.
                // A new nudge (not one found on start-up) also rings, once.
                if let Some(text) = fresh
                    && (!first || self.status.is_none())
                {
                    let key = self.keymap.keys_for(Section::Actions, Command::Trust);
                    self.set_status(
                        Level::Info,
                        format!("calibration suggests: {text} · {key} to review"),
                    );
                    if !first && self.session.notify {
                        ring.push(Effect::Ui(UiEffect::Notify {
                            title: "dealflow: calibration suggests a rule".into(),
                            body: text,
                        }));
                    }
                }
            }
            Ok(None) => {}
            Err(e) => self.set_status(Level::Warn, e),
        }
        self.keep_trust_selection(selected);
        ring
    }
}
