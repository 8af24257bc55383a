//! Keys to commands and commands to state: the keymap's verbs, cursor moves, tab
//! switches, mouse clicks, the `/` filter and the palette.

use super::*;
use crate::tui::actions::{SavedView, bulk_plan, is_pending};
use crate::tui::audit::VerifyState;
use crate::tui::editor::EditorState;
use crate::tui::keymap::{Command, Section};
use crate::tui::msg::Effect;
use crate::tui::msg::{PipelineEffect, StoreEffect, UiEffect};
use crate::tui::permissions::rows as perm_rows;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeSet;

impl App {
    pub(super) fn on_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if self.popup.is_some() {
            return self.on_popup_key(k);
        }
        if self.filtering {
            return self.on_filter_key(k);
        }
        // A pending step-up owns the keyboard in Chat, even while composing: its answer
        // must not be typed into the input box (the input guard still applies).
        if self.tab == Tab::Chat && self.chat.step_up.is_some() {
            return match k.code {
                KeyCode::Char('y') => self.answer_chat_step_up(true),
                KeyCode::Char('n') => self.answer_chat_step_up(false),
                // Esc is always honoured, guard or not: refusing is never dangerous.
                KeyCode::Esc => super::messages::chat_effects(self.chat.answer(false, self.now)),
                code => match popup_keys::payload_scroll(code) {
                    Some(by) => self.scroll_step_up(by),
                    None => vec![],
                },
            };
        }
        if self.tab == Tab::Chat && self.chat.composing {
            return self.on_compose_key(k);
        }
        match self.keymap.resolve(self.tab.section(), &k) {
            Some(cmd) => self.run(cmd),
            None => {
                self.dirty = false;
                vec![]
            }
        }
    }

    /// Runs a named command (from a key or the palette).
    pub fn run(&mut self, cmd: Command) -> Vec<Effect> {
        let armed = std::mem::take(&mut self.quit_armed);
        match cmd {
            // Quitting leaves what waits in the outbox approved and unsent: say so first,
            // and quit on the second press.
            Command::Quit if !self.outbox.is_empty() && !armed => {
                self.quit_armed = true;
                let n = self.outbox.len();
                let key = |c| self.keymap.keys_for(Section::Actions, c);
                let msg = format!(
                    "{n} send{} still in the outbox: quitting leaves {} approved and unsent · {} sends now · {} takes back · {} again quits",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "it" } else { "them" },
                    key(Command::ExecuteApproved),
                    key(Command::UndoSend),
                    key(Command::Quit),
                );
                self.set_status(Level::Warn, msg);
                vec![]
            }
            Command::Quit => {
                self.quit = true;
                vec![Effect::Ui(UiEffect::Quit)]
            }
            Command::Help => {
                self.popup = Some(Popup::Help { scroll: 0 });
                vec![]
            }
            Command::Palette => {
                self.popup = Some(Popup::Palette {
                    query: String::new(),
                    selected: 0,
                });
                vec![]
            }
            Command::NextTab | Command::PrevTab => {
                let i = Tab::ALL.iter().position(|t| *t == self.tab).unwrap_or(0);
                let n = Tab::ALL.len();
                let j = if cmd == Command::NextTab {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.switch(Tab::ALL[j])
            }
            Command::TabActions => self.switch(Tab::Actions),
            Command::TabChat => self.switch(Tab::Chat),
            Command::TabPermissions => self.switch(Tab::Permissions),
            Command::TabAudit => self.switch(Tab::Audit),
            Command::Down
            | Command::Up
            | Command::Top
            | Command::Bottom
            | Command::PageDown
            | Command::PageUp => self.move_cursor(cmd),
            Command::Filter => {
                if matches!(self.tab, Tab::Actions | Tab::Audit) {
                    self.filtering = true;
                }
                vec![]
            }
            Command::Refresh => match self.tab {
                Tab::Audit => {
                    self.audit.verify = VerifyState::Running;
                    let mut out = self.audit.reload();
                    out.push(Effect::Store(StoreEffect::VerifyAudit));
                    out
                }
                _ => vec![Effect::Store(StoreEffect::LoadActions)],
            },
            Command::Redraw => {
                self.clear = true;
                vec![]
            }
            Command::Approve => self.approve_current(),
            Command::Reject => {
                let ids = self.actions.reject_targets();
                if ids.is_empty() {
                    self.set_status(Level::Warn, "nothing pending or approved to reject here");
                } else {
                    // The countdown must not send what the person is about to reject.
                    let resume: Vec<String> = ids
                        .iter()
                        .filter(|id| self.outbox.remove(id))
                        .cloned()
                        .collect();
                    self.popup = Some(Popup::Reject {
                        ids,
                        reason: String::new(),
                        resume,
                    });
                }
                vec![]
            }
            Command::Edit => {
                match self.actions.current() {
                    Some(r) if is_pending(r.action.state) => {
                        let a = &r.action;
                        self.popup = Some(Popup::Editor(Box::new(EditorState::new(
                            a.id.clone(),
                            a.version,
                            &a.params,
                            &a.original,
                            self.utc_offset_s,
                        ))));
                    }
                    Some(r) => {
                        let msg = format!(
                            "{} is {}: only pending actions can be edited",
                            r.action.id, r.action.state
                        );
                        self.set_status(Level::Warn, msg);
                    }
                    None => self.set_status(Level::Warn, "nothing selected"),
                }
                vec![]
            }
            Command::Mark => {
                self.actions.toggle_mark();
                self.move_cursor(Command::Down);
                vec![]
            }
            Command::Range => {
                let was = self.actions.range_anchor.is_some();
                let n = self.actions.range();
                if was {
                    self.set_status(Level::Info, format!("marked {n} in range"));
                } else {
                    self.set_status(Level::Info, "range started: move, then v again");
                }
                vec![]
            }
            Command::ClearMarks => {
                self.actions.marks.clear();
                self.actions.range_anchor = None;
                vec![]
            }
            Command::ApproveMarked => {
                if self.actions.marks.is_empty() {
                    self.set_status(Level::Warn, "no marks: space marks, v marks a range");
                    return vec![];
                }
                let ids = self.actions.targets();
                let rows: Vec<_> = ids
                    .iter()
                    .filter_map(|id| self.actions.row_by_id(id))
                    .collect();
                let plan = bulk_plan(&rows);
                self.popup = Some(Popup::Bulk {
                    plan,
                    typed: String::new(),
                    opened_at: self.now,
                    scroll: 0,
                });
                vec![]
            }
            Command::SendToBatch => {
                let ids = self.actions.targets();
                if ids.is_empty() {
                    self.set_status(Level::Warn, "nothing pending to send");
                    return vec![];
                }
                vec![Effect::Pipeline(PipelineEffect::SendToBatch(ids))]
            }
            Command::UndoSend => self.undo_send(),
            Command::DetailDown | Command::DetailUp => {
                let by = if cmd == Command::DetailDown { 3 } else { -3 };
                match self.tab {
                    Tab::Audit => self.audit.scroll_evidence(by),
                    _ => self.actions.scroll_detail(by),
                }
                vec![]
            }
            Command::Trust => {
                self.popup = Some(Popup::Trust {
                    cursor: 0,
                    opened_at: self.now,
                });
                vec![]
            }
            Command::Calibration => {
                self.popup = Some(Popup::Calibration { kind: 0 });
                vec![]
            }
            Command::ExecuteApproved => {
                // "Now" includes the outbox: X is the send-now key. What waits there runs
                // even if the last reload has not shown it as approved yet.
                let mut ids: Vec<String> = self.outbox.drain();
                for id in self.actions.approved_ids() {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                if ids.is_empty() {
                    self.set_status(Level::Warn, "no approved actions to execute");
                    return vec![];
                }
                vec![Effect::Pipeline(PipelineEffect::ExecuteApproved(ids))]
            }
            Command::NextView => {
                self.set_view(self.actions.view.next());
                vec![]
            }
            Command::Increase | Command::Decrease => self.perm_step(cmd == Command::Increase),
            Command::Connect => self.connect_row(),
            Command::Verify => {
                self.audit.verify = VerifyState::Running;
                vec![Effect::Store(StoreEffect::VerifyAudit)]
            }
            Command::Export => vec![Effect::Store(StoreEffect::ExportAudit)],
            Command::Compose => {
                self.chat.composing = true;
                vec![]
            }
            Command::Confirm | Command::Deny => self.answer_chat_step_up(cmd == Command::Confirm),
            Command::CancelTurn => super::messages::chat_effects(self.chat.cancel(self.now)),
            Command::ToggleFold => {
                self.chat.unfolded = !self.chat.unfolded;
                vec![]
            }
            Command::None => vec![],
        }
    }

    pub(super) fn switch(&mut self, tab: Tab) -> Vec<Effect> {
        self.tab = tab;
        self.filtering = false;
        match tab {
            Tab::Audit if !self.audit.loaded => {
                self.audit.verify = VerifyState::Running;
                let mut out = self.audit.reload();
                out.push(Effect::Store(StoreEffect::VerifyAudit));
                out
            }
            Tab::Audit => self.audit.reload(),
            _ => vec![],
        }
    }

    /// A click on a list row selects it.
    pub(super) fn click_row(&mut self, col: u16, row: u16) {
        let area = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
        let Some(rows) = crate::tui::layout::list_rows(self.tab, area) else {
            return;
        };
        if col < rows.x || col >= rows.x + rows.width || row < rows.y || row >= rows.y + rows.height
        {
            return;
        }
        let h = rows.height as usize;
        let (cursor, len) = match self.tab {
            Tab::Actions => (&mut self.actions.cursor, self.actions.visible.len()),
            Tab::Audit => (&mut self.audit.cursor, self.audit.rows.len()),
            _ => return,
        };
        let pos = crate::tui::layout::window_start(*cursor, h) + (row - rows.y) as usize;
        if pos < len {
            *cursor = pos;
        }
    }

    pub fn set_view(&mut self, v: SavedView) {
        self.actions.view = v;
        self.actions.cursor = 0;
        self.actions.refilter();
        self.set_status(Level::Info, format!("view: {}", v.name()));
    }

    /// Moves the list cursor; on the Audit tab, pages follow it (and `g`/`G` jump to
    /// the newest and oldest page).
    pub(super) fn move_cursor(&mut self, cmd: Command) -> Vec<Effect> {
        let (cursor, len) = match self.tab {
            Tab::Actions => (&mut self.actions.cursor, self.actions.visible.len()),
            Tab::Audit => match cmd {
                Command::Top => return self.audit.top(),
                Command::Bottom => return self.audit.bottom(),
                _ => (&mut self.audit.cursor, self.audit.rows.len()),
            },
            Tab::Permissions => (&mut self.perms.cursor, perm_rows().len()),
            Tab::Chat => {
                // Rows scrolled back from the newest; the view clamps it to the top.
                let back = &mut self.chat.scroll_back;
                *back = match cmd {
                    Command::Up => back.saturating_add(1),
                    Command::Down => back.saturating_sub(1),
                    Command::PageUp => back.saturating_add(10),
                    Command::PageDown => back.saturating_sub(10),
                    Command::Top => usize::MAX / 2,
                    Command::Bottom => 0,
                    _ => *back,
                };
                return vec![];
            }
        };
        let last = len.saturating_sub(1);
        // A page is what the list shows at this terminal size (24 rows over SSH shows
        // far fewer than 10), so PageDown lands on the next window's first row.
        let area = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
        let page = crate::tui::layout::list_rows(self.tab, area)
            .map_or(10, |r| r.height as usize)
            .max(1);
        // Whether the move ran into the end (`Some(true)`) or the start of the list.
        let past = match cmd {
            Command::Down | Command::PageDown if len == 0 || *cursor == last => Some(true),
            Command::Up | Command::PageUp if *cursor == 0 => Some(false),
            _ => None,
        };
        *cursor = match cmd {
            Command::Down => (*cursor + 1).min(last),
            Command::Up => cursor.saturating_sub(1),
            Command::Top => 0,
            Command::Bottom => last,
            Command::PageDown => (*cursor + page).min(last),
            Command::PageUp => cursor.saturating_sub(page),
            _ => *cursor,
        };
        if self.tab == Tab::Audit {
            return self.audit.follow(past);
        }
        if self.tab == Tab::Actions
            && let Some(before) = self.actions.more()
        {
            return vec![Effect::Store(StoreEffect::LoadOlderActions { before })];
        }
        vec![]
    }

    pub(super) fn on_filter_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let (filter, is_actions) = match self.tab {
            Tab::Audit => (&mut self.audit.filter, false),
            _ => (&mut self.actions.filter, true),
        };
        match k.code {
            KeyCode::Enter => self.filtering = false,
            KeyCode::Esc => {
                filter.clear();
                self.filtering = false;
            }
            KeyCode::Backspace => {
                filter.pop();
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => filter.push(c),
            _ => return vec![],
        }
        if is_actions {
            self.actions.refilter();
            vec![]
        } else {
            self.audit.refilter()
        }
    }

    pub fn palette_items(&self, query: &str) -> Vec<PaletteItem> {
        let q = query.to_lowercase();
        let mut seen = BTreeSet::new();
        let mut items: Vec<PaletteItem> = self
            .keymap
            .help()
            .into_iter()
            .filter(|r| seen.insert(r.command))
            .map(|r| PaletteItem::Run(r.command, r.desc))
            .collect();
        items.extend(SavedView::ALL.into_iter().map(PaletteItem::SavedView));
        items.retain(|i| q.is_empty() || i.label().to_lowercase().contains(&q));
        items
    }

    /// How far the help list scrolls before its last line is at the bottom of the popup
    /// (the popup is the screen less two rows each side, less its border).
    pub fn help_max_scroll(&self) -> usize {
        let rows = self.keymap.help();
        let mut sections: Vec<_> = rows.iter().map(|r| r.section).collect();
        sections.dedup();
        let lines = rows.len() + sections.len();
        let body = (self.size.1 as usize).saturating_sub(6);
        lines.saturating_sub(body)
    }
}
