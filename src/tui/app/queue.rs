//! The Action Center's decisions and their consequences: approving (step-up, bulk,
//! the account an action needs), the outbox's undo window, what a load says is new.

use super::*;
use crate::core::consent::Gate;
use crate::tui::actions::{is_pending, what_will_happen};
use crate::tui::keymap::{Command, Section};
use crate::tui::msg::Effect;
use crate::tui::msg::{PipelineEffect, StoreEffect, UiEffect};

impl App {
    pub(super) fn approve_current(&mut self) -> Vec<Effect> {
        let Some(r) = self.actions.current() else {
            self.set_status(Level::Warn, "nothing selected");
            return vec![];
        };
        let a = &r.action;
        if !is_pending(a.state) {
            let msg = format!(
                "{} is {}: only pending actions can be approved",
                a.id, a.state
            );
            self.set_status(Level::Warn, msg);
            return vec![];
        }
        // A write to a deal read from Salesforce (it carries the record's revision)
        // needs the salesforce account, whatever the kind needs by itself.
        let needs = a.kind().connection().or(match &a.params {
            crate::core::domain::ActionParams::UpdateDeal {
                revision: Some(_), ..
            }
            | crate::core::domain::ActionParams::CloseDeal {
                revision: Some(_), ..
            } => Some(crate::core::domain::Connection::Salesforce),
            _ => None,
        });
        if let Some(connection) = needs.filter(|c| {
            self.perms
                .perms
                .as_ref()
                .is_some_and(|p| p.disconnected.contains(c))
        }) {
            self.popup = Some(Popup::NeedsAccount {
                connection,
                what: format!("{} ({})", a.title, a.kind()),
            });
            return vec![];
        }
        let id = a.id.clone();
        let version = a.version;
        let irreversible = !a.kind().risk().reversible;
        match r.decision.gate().clone() {
            // Approving one after another faster than anyone reads: the next thing that
            // cannot be undone gets the full confirmation, once.
            Gate::Allow | Gate::Review
                if irreversible && self.pace.too_fast(self.now).is_some() =>
            {
                let n = self
                    .pace
                    .too_fast(self.now)
                    .unwrap_or(crate::tui::pace::LIMIT);
                self.pace.reset();
                let lines = what_will_happen(a);
                self.popup = Some(Popup::StepUp {
                    id,
                    version,
                    lines,
                    gate: format!(
                        "pace check: {n} approvals in {} s; this one cannot be undone",
                        crate::tui::pace::WINDOW_MS / 1000
                    ),
                    opened_at: self.now,
                    scroll: 0,
                });
                vec![]
            }
            Gate::Allow | Gate::Review => {
                self.set_status(Level::Info, format!("approving {id}…"));
                vec![Effect::Store(StoreEffect::Approve {
                    seen: [(id.clone(), version)].into(),
                    ids: vec![id],
                    stepped_up: vec![],
                })]
            }
            g @ Gate::StepUp { .. } => {
                let lines = what_will_happen(a);
                self.popup = Some(Popup::StepUp {
                    id,
                    version: a.version,
                    lines,
                    gate: g.to_string(),
                    opened_at: self.now,
                    scroll: 0,
                });
                vec![]
            }
            Gate::Ciba { approver, reason } => {
                self.set_status(
                    Level::Warn,
                    format!("{id} needs approval on {} device ({reason}): press b to send it to the batch", approver.whose()),
                );
                vec![]
            }
            Gate::Deny { reason } => {
                self.set_status(
                    Level::Error,
                    format!("{id} is denied by your permissions: {reason}"),
                );
                vec![]
            }
        }
    }

    /// An approved action runs now, unless it is an irreversible send and the outbox
    /// is on: then it waits out the undo window.
    pub(super) fn send_or_hold(&mut self, a: &crate::core::domain::Action) -> Vec<Effect> {
        match self.outbox.hold(&a.id, a.kind(), self.now) {
            Some(_) => {
                let secs = self.outbox.secs_left(&a.id, self.now).unwrap_or_default();
                let undo = self.keymap.keys_for(Section::Actions, Command::UndoSend);
                self.set_status(
                    Level::Ok,
                    format!("{}: sends in {secs}s · {undo} takes it back", a.id),
                );
                vec![]
            }
            None => vec![Effect::Pipeline(PipelineEffect::ExecuteApproved(vec![
                a.id.clone(),
            ]))],
        }
    }

    /// Runs what the outbox has held long enough.
    pub(super) fn send_due(&mut self) -> Vec<Effect> {
        let mut out = vec![];
        let soon = self.outbox.about_to_go(self.now, OUTBOX_WARNING_MS);
        if !soon.is_empty() && self.session.notify {
            let what: Vec<String> = soon
                .iter()
                .filter_map(|id| self.actions.row_by_id(id))
                .map(|r| format!("{} ({})", r.action.title, r.action.kind()))
                .collect();
            let key = self.keymap.keys_for(Section::Actions, Command::UndoSend);
            out.push(Effect::Ui(UiEffect::Notify {
                title: format!(
                    "dealflow: {} sending in {} s",
                    soon.len(),
                    OUTBOX_WARNING_MS / 1000
                ),
                body: format!("{} · {key} takes it back", what.join(", ")),
            }));
        }
        let due = self.outbox.take_due(self.now);
        if !due.is_empty() {
            out.push(Effect::Pipeline(PipelineEffect::ExecuteApproved(due)));
        }
        out
    }

    /// `u`: the send under the cursor if it waits in the outbox, else the latest one.
    pub(super) fn undo_send(&mut self) -> Vec<Effect> {
        let current = self
            .actions
            .current()
            .map(|r| r.action.id.clone())
            .filter(|id| self.outbox.remaining(id, self.now).is_some());
        let Some(id) = current.or_else(|| self.outbox.latest().map(str::to_string)) else {
            self.set_status(Level::Warn, "nothing waiting in the outbox to take back");
            return vec![];
        };
        self.outbox.remove(&id);
        self.set_status(Level::Info, format!("{id}: taking the send back…"));
        vec![Effect::Store(StoreEffect::Withdraw(id))]
    }

    /// After a quit or a crash, approvals that never ran (an outbox left behind, `--hold`)
    /// are still approved: say so once, rather than run them unasked or hide them.
    pub(super) fn say_what_was_left_approved(&mut self) {
        let n = self.actions.approved_ids().len();
        if n > 0 {
            let run = self
                .keymap
                .keys_for(Section::Actions, Command::ExecuteApproved);
            let line =
                format!("{n} approved but not run (held, or left in the outbox): {run} runs them");
            // Alongside a start-up warning (a keymap typo), not instead of it.
            let text = match self.status.take() {
                Some((_, earlier)) => format!("{line} · {earlier}"),
                None => line,
            };
            self.set_status(Level::Warn, text);
        }
    }

    /// Rings when something newly needs the user (not on the first load).
    pub(super) fn notify_new(&mut self) -> Vec<Effect> {
        let now_pending = self.actions.pending_ids();
        let mut out = vec![];
        if let Some(seen) = &self.seen_pending {
            // Chat's own requests are answered in Chat, which rings for them itself.
            // One pass over the rows: the queue may hold a hundred thousand.
            let fresh: Vec<&crate::core::domain::Action> = self
                .actions
                .rows
                .iter()
                .map(|r| &r.action)
                .filter(|a| {
                    a.surface != crate::core::domain::Surface::Chat
                        && now_pending.contains(&a.id)
                        && !seen.contains(&a.id)
                })
                .collect();
            if !fresh.is_empty() && self.session.notify {
                let first = fresh
                    .first()
                    .map(|a| format!("{} ({})", a.title, a.kind()))
                    .unwrap_or_default();
                out.push(Effect::Ui(UiEffect::Notify {
                    title: format!("dealflow: {} new to review", fresh.len()),
                    body: first,
                }));
            }
        }
        self.seen_pending = Some(now_pending);
        out
    }
}
