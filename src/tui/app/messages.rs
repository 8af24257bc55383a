//! The app's answer to each message: keys and ticks are routed on, background
//! results (loads, reviews, executions, audit pages, calibration) change the state.

use super::*;
use crate::tui::audit::VerifyState;
use crate::tui::keymap::Command;
use crate::tui::msg::{Effect, Msg, Verb};
use crate::tui::msg::{StoreEffect, UiEffect};
use ratatui::crossterm::event::MouseEventKind;

impl App {
    pub(super) fn handle(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(k) => self.on_key(k),
            Msg::Paste(text) => {
                let clean = strip_controls(&text).replace('\n', " ");
                match &mut self.popup {
                    Some(Popup::Editor(ed)) => {
                        ed.textarea.insert_str(&text);
                    }
                    Some(Popup::Reject { reason: t, .. })
                    | Some(Popup::Palette { query: t, .. })
                    | Some(Popup::PermValue { text: t, .. })
                    | Some(Popup::Connect { pasted: t, .. }) => t.push_str(&clean),
                    // Never paste into a confirmation prompt.
                    Some(_) => {}
                    None if self.filtering => match self.tab {
                        Tab::Audit => {
                            self.audit.filter.push_str(&clean);
                            return self.audit.refilter();
                        }
                        _ => {
                            self.actions.filter.push_str(&clean);
                            self.actions.refilter();
                        }
                    },
                    None if self.chat.composing => self.chat.input.push_str(&clean),
                    _ => {}
                }
                vec![]
            }
            Msg::Mouse(_) if self.popup.is_some() => {
                self.dirty = false;
                vec![]
            }
            Msg::Mouse(m) => match m.kind {
                MouseEventKind::ScrollDown => self.run(Command::Down),
                MouseEventKind::ScrollUp => self.run(Command::Up),
                MouseEventKind::Down(_) if m.row > 0 => {
                    self.click_row(m.column, m.row);
                    vec![]
                }
                MouseEventKind::Down(_) => {
                    // The tab bar: " 1 Actions " plus a space per tab (see view::render_tabs).
                    let mut x = 0u16;
                    for t in Tab::ALL {
                        let w = t.title().len() as u16 + 5;
                        if m.column < x + w {
                            return self.switch(t);
                        }
                        x += w;
                    }
                    vec![]
                }
                _ => {
                    self.dirty = false;
                    vec![]
                }
            },
            Msg::Resize(w, h) => {
                self.size = (w, h);
                vec![]
            }
            // Refresh on every tab: execution status stays live and new work notifies
            // wherever the user is.
            Msg::Tick => {
                let mut out = self.send_due();
                out.push(Effect::Store(StoreEffect::LoadActions));
                out.extend(self.calibrate());
                out.extend(chat_effects(self.chat.tick(self.now)));
                out
            }
            Msg::Clock => {
                let mut out = self.send_due();
                out.extend(chat_effects(self.chat.tick(self.now)));
                out
            }
            Msg::FinishedTotal(n) => {
                self.actions.finished_total = Some(n);
                vec![]
            }
            Msg::OlderActionsLoaded { gated, asked } => {
                self.actions.load_older(gated, &asked);
                vec![]
            }
            // The first frame's page: shown at once, the whole queue asked for. What was
            // left approved, calibration and "new" notices wait for the whole queue.
            Msg::FirstActions { gated, permissions } => {
                if self.loaded_once {
                    return vec![];
                }
                self.actions.load(gated);
                self.actions.partial = true;
                self.perms.perms.get_or_insert(*permissions);
                vec![Effect::Store(StoreEffect::LoadActions)]
            }
            Msg::ActionsLoaded { gated, permissions } => {
                self.actions.partial = false;
                self.actions.load(gated);
                // Only an action still waiting approved can be blocked.
                let rows = &self.actions.rows;
                self.blocked.retain(|id, _| {
                    rows.iter().any(|r| {
                        &r.action.id == id
                            && r.action.state == crate::core::domain::ActionState::Approved
                    })
                });
                let selected = self.trust_selection();
                let before = self.perms.perms.replace(*permissions);
                self.keep_trust_selection(selected);
                self.say_newly_paused(before.as_ref());
                let mut out = vec![];
                if !self.loaded_once {
                    self.loaded_once = true;
                    self.say_what_was_left_approved();
                    out.extend(self.calibrate());
                }
                out.extend(self.notify_new());
                out
            }
            Msg::LoadFailed(e) => {
                self.set_status(Level::Error, e);
                vec![]
            }
            Msg::Reviewed { id, verb, result } => {
                match result {
                    Ok(a) => {
                        self.set_status(Level::Ok, format!("{} {id}: {}", verb.past(), a.state));
                        // Approving in the Action Center means "do it": run it now, or,
                        // for an irreversible send, once the undo window has passed.
                        if verb == Verb::Approve
                            && a.state == crate::core::domain::ActionState::Approved
                        {
                            self.pace.record(self.now);
                            return self.send_or_hold(&a);
                        }
                        // Anything else done to it (an edit, a reject, a withdrawal)
                        // takes it out of the outbox: it must not run on the old approval.
                        self.outbox.remove(&id);
                    }
                    Err(e) => self.set_status(Level::Error, e),
                }
                vec![]
            }
            Msg::Executed { id, result } => {
                match &result {
                    Ok(_) => {
                        self.blocked.remove(&id);
                    }
                    Err(e) => {
                        let why = e.strip_prefix(&format!("{id}: ")).unwrap_or(e);
                        self.blocked.insert(id.clone(), why.to_string());
                    }
                }
                match result {
                    Ok(line) => self.set_status(Level::Ok, format!("{id}: {line}")),
                    // Pipeline errors already start with the id: not twice on 80 columns.
                    Err(e) if e.starts_with(&format!("{id}: ")) => self.set_status(Level::Error, e),
                    Err(e) => self.set_status(Level::Error, format!("{id}: {e}")),
                }
                vec![Effect::Store(StoreEffect::LoadActions)]
            }
            Msg::ServiceSeen(seen) => {
                self.service = seen;
                vec![]
            }
            Msg::LeadWaiting(n) => {
                self.lead_waiting = n.unwrap_or(0);
                vec![]
            }
            Msg::Status { ok, text } => {
                self.background_status(if ok { Level::Ok } else { Level::Warn }, text);
                vec![Effect::Store(StoreEffect::LoadActions)]
            }
            Msg::ReviewSummary { verb, ok, failed } => {
                let total = ok + failed.len();
                match failed.first() {
                    None => self.set_status(Level::Ok, format!("{} {ok} of {total}", verb.past())),
                    Some((id, e)) => {
                        let more = if failed.len() > 1 {
                            format!(" (+{} more failed)", failed.len() - 1)
                        } else {
                            String::new()
                        };
                        self.set_status(
                            Level::Error,
                            format!("{} {ok} of {total} · {id}: {e}{more}", verb.past()),
                        );
                    }
                }
                vec![]
            }
            Msg::PermissionsSaved(r) => match r {
                Ok(p) => {
                    let selected = self.trust_selection();
                    self.perms.perms = Some(*p);
                    self.keep_trust_selection(selected);
                    self.set_status(Level::Ok, "permissions saved (audited)");
                    vec![Effect::Store(StoreEffect::LoadActions)]
                }
                Err(e) => {
                    self.set_status(Level::Error, e);
                    vec![]
                }
            },
            Msg::AuditPage(Ok(page)) => self.audit.apply(*page),
            Msg::AuditPage(Err(e)) => {
                self.audit.failed();
                self.set_status(Level::Error, e);
                vec![]
            }
            Msg::AuditVerified(r) => {
                // Said on the status line too: `:verify` may run from any tab.
                match &r {
                    Ok(Ok(n)) => {
                        self.set_status(Level::Ok, format!("audit chain: ✓ {n} entries verified"))
                    }
                    Ok(Err(b)) => self.set_status(
                        Level::Error,
                        format!("audit chain BROKEN at #{}: {}", b.seq, b.problem),
                    ),
                    Err(e) => self.set_status(Level::Error, format!("audit verify failed: {e}")),
                }
                self.audit.verify = match r {
                    Ok(Ok(n)) => VerifyState::Verified {
                        entries: n,
                        at: self.now,
                    },
                    Ok(Err(b)) => VerifyState::Broken(b),
                    Err(e) => VerifyState::Failed(e),
                };
                vec![]
            }
            Msg::Exported(r) => {
                match r {
                    Ok(m) => self.set_status(Level::Ok, m),
                    Err(e) => self.set_status(Level::Error, e),
                }
                vec![]
            }
            Msg::Unavailable(what) => {
                let mut out = vec![];
                if what.starts_with("chat") {
                    // The turn cannot stream: it ends, saying why.
                    out = chat_effects(self.chat.abandon(what.clone(), self.now));
                }
                self.set_status(Level::Warn, what);
                out
            }
            // Not locked (anymore): nothing to unlock.
            Msg::Unlock(_) => vec![],
            Msg::Connect(ev) => self.on_connect(ev),
            Msg::ServicesReady(report) => self.on_services_ready(report),
            Msg::Calibrated(r) => self.on_calibrated(r),
            Msg::Chat(ev) => {
                let asked_before = self.chat.step_up.is_some();
                let mut out = chat_effects(self.chat.on_event(ev, self.now));
                if !asked_before
                    && self.session.notify
                    && let Some(p) = &self.chat.step_up
                {
                    out.push(Effect::Ui(UiEffect::Notify {
                        title: "dealflow: confirm in Chat".into(),
                        body: p.summary.clone(),
                    }));
                }
                out
            }
        }
    }
}

/// What the chat machine asks for, as effects.
pub(super) fn chat_effects(io: Vec<crate::core::agent::Io>) -> Vec<Effect> {
    io.into_iter().map(Effect::Chat).collect()
}
