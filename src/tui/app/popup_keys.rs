//! Keys while a popup is open: help, step-up (with the input guard), reject reason,
//! bulk confirmation, palette, editor, typed permission values.

use super::{App, INPUT_GUARD_MS, Level, PaletteItem, Popup, Tab};
use crate::tui::editor::{EditorState, parse_draft};
use crate::tui::msg::Effect;
use crate::tui::msg::{PipelineEffect, StoreEffect, UiEffect};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

impl App {
    pub(super) fn on_popup_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let Some(popup) = self.popup.take() else {
            return vec![];
        };
        if let Some(since) = popup.guarded_since()
            && self.now - since < INPUT_GUARD_MS
        {
            if k.code == KeyCode::Esc {
                self.set_status(Level::Info, "cancelled");
                return vec![];
            }
            self.popup = Some(popup);
            self.say_input_guard();
            return vec![];
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match popup {
            Popup::Help { scroll } => match k.code {
                KeyCode::Char('j') | KeyCode::Down => {
                    self.popup = Some(Popup::Help {
                        scroll: (scroll + 1).min(self.help_max_scroll()),
                    })
                }
                KeyCode::Char('k') | KeyCode::Up => {
                    self.popup = Some(Popup::Help {
                        scroll: scroll.saturating_sub(1),
                    })
                }
                // G and End reach the last key rather than closing the list.
                KeyCode::Char('G') | KeyCode::End => {
                    self.popup = Some(Popup::Help {
                        scroll: self.help_max_scroll(),
                    })
                }
                KeyCode::Char('g') | KeyCode::Home => self.popup = Some(Popup::Help { scroll: 0 }),
                KeyCode::PageDown => {
                    self.popup = Some(Popup::Help {
                        scroll: (scroll + 10).min(self.help_max_scroll()),
                    })
                }
                KeyCode::PageUp => {
                    self.popup = Some(Popup::Help {
                        scroll: scroll.saturating_sub(10),
                    })
                }
                _ => {}
            },
            Popup::StepUp {
                id,
                version,
                lines,
                gate,
                opened_at,
                mut scroll,
            } => match k.code {
                // "Approve exactly this" means all of it: the last row must have been shown.
                KeyCode::Char('y')
                    if self.size.0 == 0
                        || self.size.1 == 0
                        || crate::tui::layout::step_up_unseen(
                            &id,
                            &lines,
                            &gate,
                            scroll,
                            ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1),
                        ) > 0 =>
                {
                    self.set_status(
                        Level::Warn,
                        "read it all first: more rows below (j / space / G scroll)",
                    );
                    self.popup = Some(Popup::StepUp {
                        id,
                        version,
                        lines,
                        gate,
                        opened_at,
                        scroll,
                    });
                }
                // Only an explicit `y`: Enter is what a person typing elsewhere hits.
                KeyCode::Char('y') => {
                    self.set_status(Level::Info, format!("approving {id} (step-up confirmed)…"));
                    return vec![Effect::Store(StoreEffect::Approve {
                        seen: [(id.clone(), version)].into(),
                        ids: vec![id.clone()],
                        stepped_up: vec![id],
                    })];
                }
                KeyCode::Char('n') | KeyCode::Esc => self.set_status(Level::Info, "not approved"),
                code => {
                    let by = payload_scroll(code).unwrap_or(0);
                    let area = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
                    let max = crate::tui::layout::step_up_unseen(&id, &lines, &gate, 0, area);
                    scroll = scroll.saturating_add_signed(by).min(max);
                    self.popup = Some(Popup::StepUp {
                        id,
                        version,
                        lines,
                        gate,
                        opened_at,
                        scroll,
                    })
                }
            },
            Popup::Reject {
                ids,
                mut reason,
                resume,
            } => match k.code {
                KeyCode::Enter => {
                    let reason = reason.trim().to_string();
                    return vec![Effect::Store(StoreEffect::Reject {
                        ids,
                        reason: (!reason.is_empty()).then_some(reason),
                    })];
                }
                KeyCode::Esc => {
                    // Back in the outbox with a fresh window: nothing leaves the moment
                    // the prompt closes.
                    for id in &resume {
                        if let Some(kind) = self.actions.row_by_id(id).map(|r| r.action.kind()) {
                            self.outbox.hold(id, kind, self.now);
                        }
                    }
                    self.set_status(Level::Info, "not rejected");
                }
                KeyCode::Backspace => {
                    reason.pop();
                    self.popup = Some(Popup::Reject {
                        ids,
                        reason,
                        resume,
                    });
                }
                KeyCode::Char(c) if !ctrl => {
                    reason.push(c);
                    self.popup = Some(Popup::Reject {
                        ids,
                        reason,
                        resume,
                    });
                }
                _ => {
                    self.popup = Some(Popup::Reject {
                        ids,
                        reason,
                        resume,
                    })
                }
            },
            Popup::Bulk {
                plan,
                mut typed,
                opened_at,
                mut scroll,
            } => {
                let area = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
                let unseen = |app: &App, scroll: usize| {
                    if app.size.0 == 0 || app.size.1 == 0 {
                        usize::MAX
                    } else {
                        crate::tui::layout::bulk_unseen(
                            &app.theme,
                            &app.actions,
                            &plan,
                            scroll,
                            area,
                        )
                    }
                };
                match k.code {
                    // Typing the count confirms the step-ups it lists: all of them shown.
                    KeyCode::Enter
                        if typed.trim() == plan.approvable.len().to_string()
                            && !plan.approvable.is_empty()
                            && unseen(self, scroll) > 0 =>
                    {
                        self.set_status(
                            Level::Warn,
                            "read it all first: more rows below (j / G scroll)",
                        );
                    }
                    KeyCode::Enter
                        if typed.trim() == plan.approvable.len().to_string()
                            && !plan.approvable.is_empty() =>
                    {
                        self.actions.marks.clear();
                        let n = plan.approvable.len();
                        self.set_status(Level::Info, format!("approving {n}…"));
                        return vec![Effect::Store(StoreEffect::Approve {
                            ids: plan.approvable,
                            stepped_up: plan.step_up_ids,
                            seen: plan.seen,
                        })];
                    }
                    KeyCode::Enter => {
                        self.set_status(
                            Level::Warn,
                            format!("type {} to approve them", plan.approvable.len()),
                        );
                    }
                    KeyCode::Esc => {
                        self.set_status(Level::Info, "nothing approved");
                        return vec![];
                    }
                    KeyCode::Backspace => {
                        typed.pop();
                    }
                    KeyCode::Char(c) if c.is_ascii_digit() => typed.push(c),
                    code => {
                        let by = payload_scroll(code).unwrap_or(0);
                        let max = unseen(self, 0);
                        scroll = scroll.saturating_add_signed(by).min(max);
                    }
                }
                self.popup = Some(Popup::Bulk {
                    plan,
                    typed,
                    opened_at,
                    scroll,
                });
                return vec![];
            }
            Popup::Palette {
                mut query,
                selected,
            } => {
                let items = self.palette_items(&query);
                match k.code {
                    KeyCode::Esc => {}
                    KeyCode::Enter => {
                        return match items.get(selected) {
                            Some(PaletteItem::Run(c, _)) => self.run(*c),
                            Some(PaletteItem::SavedView(v)) => {
                                self.tab = Tab::Actions;
                                self.set_view(*v);
                                vec![]
                            }
                            None => vec![],
                        };
                    }
                    KeyCode::Down | KeyCode::Tab => {
                        let selected = (selected + 1).min(items.len().saturating_sub(1));
                        self.popup = Some(Popup::Palette { query, selected });
                    }
                    KeyCode::Up | KeyCode::BackTab => {
                        self.popup = Some(Popup::Palette {
                            query,
                            selected: selected.saturating_sub(1),
                        })
                    }
                    KeyCode::Backspace => {
                        query.pop();
                        self.popup = Some(Popup::Palette { query, selected: 0 });
                    }
                    KeyCode::Char(c) if !ctrl => {
                        query.push(c);
                        self.popup = Some(Popup::Palette { query, selected: 0 });
                    }
                    _ => self.popup = Some(Popup::Palette { query, selected }),
                }
            }
            Popup::Editor(mut ed) => {
                return self.on_editor_key(&mut ed, k).unwrap_or_else(|| {
                    self.popup = Some(Popup::Editor(ed));
                    vec![]
                });
            }
            Popup::Trust { cursor, opened_at } => return self.on_trust_key(k, cursor, opened_at),
            Popup::Calibration { kind } => {
                let n = crate::tui::trust::calibration_kinds().len();
                match k.code {
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('C') => {}
                    KeyCode::Char('j' | 'l') | KeyCode::Down | KeyCode::Right => {
                        self.popup = Some(Popup::Calibration {
                            kind: (kind + 1) % n,
                        })
                    }
                    KeyCode::Char('k' | 'h') | KeyCode::Up | KeyCode::Left => {
                        self.popup = Some(Popup::Calibration {
                            kind: (kind + n - 1) % n,
                        })
                    }
                    _ => self.popup = Some(Popup::Calibration { kind }),
                }
            }
            Popup::PermValue { row, mut text } => match k.code {
                KeyCode::Esc => {}
                KeyCode::Enter => {
                    let Some(p) = &self.perms.perms else {
                        return vec![];
                    };
                    match row.typed_change(p, &text) {
                        Ok(change) => {
                            return vec![Effect::Store(StoreEffect::ChangePermissions(change))];
                        }
                        Err(e) => {
                            self.set_status(Level::Error, e);
                            self.popup = Some(Popup::PermValue { row, text });
                        }
                    }
                }
                KeyCode::Backspace => {
                    text.pop();
                    self.popup = Some(Popup::PermValue { row, text });
                }
                KeyCode::Char(c) if !ctrl => {
                    text.push(c);
                    self.popup = Some(Popup::PermValue { row, text });
                }
                _ => self.popup = Some(Popup::PermValue { row, text }),
            },
            Popup::NeedsAccount { connection, what } => match k.code {
                KeyCode::Char('c') | KeyCode::Enter => {
                    self.popup = Some(Popup::Connect {
                        connection,
                        url: None,
                        pasted: String::new(),
                    });
                    return vec![Effect::Pipeline(PipelineEffect::ConnectAccount(connection))];
                }
                KeyCode::Esc | KeyCode::Char('q') => {
                    self.set_status(Level::Info, format!("{what} stays pending"));
                }
                _ => self.popup = Some(Popup::NeedsAccount { connection, what }),
            },
            Popup::Connect {
                connection,
                url,
                mut pasted,
            } => {
                let mut effects = vec![];
                match k.code {
                    KeyCode::Esc => {
                        self.set_status(Level::Info, "connect cancelled");
                        return vec![Effect::Pipeline(PipelineEffect::CancelConnect)];
                    }
                    // A link wrapped inside a box cannot be selected whole on an 80-column
                    // SSH terminal: copy it through the terminal instead.
                    KeyCode::Char('y') if ctrl => {
                        if let Some((link, _)) = &url {
                            effects.push(Effect::Ui(UiEffect::Copy(link.clone())));
                            self.set_status(
                                Level::Ok,
                                "link copied to your terminal's clipboard (OSC 52; works over SSH)",
                            );
                        }
                    }
                    KeyCode::Enter if !pasted.trim().is_empty() => {
                        effects.push(Effect::Pipeline(PipelineEffect::ConnectRedirect(
                            pasted.trim().to_string(),
                        )));
                        pasted.clear();
                    }
                    KeyCode::Backspace => {
                        pasted.pop();
                    }
                    KeyCode::Char(c) if !ctrl => pasted.push(c),
                    _ => {}
                }
                self.popup = Some(Popup::Connect {
                    connection,
                    url,
                    pasted,
                });
                return effects;
            }
        }
        vec![]
    }

    /// `Some(effects)` closes the editor; `None` keeps it open.
    fn on_editor_key(&mut self, ed: &mut EditorState, k: KeyEvent) -> Option<Vec<Effect>> {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if let Some(q) = &mut ed.search {
            match k.code {
                KeyCode::Esc => ed.search = None,
                KeyCode::Enter => {
                    let pat = q.clone();
                    ed.search = None;
                    match ed.textarea.set_search_pattern(&pat) {
                        Ok(()) => {
                            if !ed.textarea.search_forward(true) {
                                ed.error = Some(format!("no match for {pat:?}"));
                            }
                        }
                        Err(e) => ed.error = Some(format!("search: {e}")),
                    }
                }
                KeyCode::Backspace => {
                    q.pop();
                }
                KeyCode::Char(c) if !ctrl => q.push(c),
                _ => {}
            }
            return None;
        }
        match (ctrl, k.code) {
            (_, KeyCode::Esc) => {
                self.set_status(Level::Info, "edit discarded");
                Some(vec![])
            }
            (true, KeyCode::Char('s')) => {
                match parse_draft(&ed.params, &ed.text(), ed.utc_offset_s) {
                    Ok(p) if p == ed.params => {
                        self.set_status(Level::Info, "no change");
                        Some(vec![])
                    }
                    Ok(p) => match p.validate().and_then(|()| {
                        moved_into_the_past(&ed.params, &p, self.now, ed.utc_offset_s)
                    }) {
                        Ok(()) => Some(vec![Effect::Store(StoreEffect::Edit {
                            id: ed.id.clone(),
                            version: ed.version,
                            params: p,
                        })]),
                        Err(e) => {
                            ed.error = Some(e);
                            None
                        }
                    },
                    Err(e) => {
                        ed.error = Some(e);
                        None
                    }
                }
            }
            (true, KeyCode::Char('z')) => {
                ed.textarea.undo();
                None
            }
            (true, KeyCode::Char('y')) => {
                ed.textarea.redo();
                None
            }
            (true, KeyCode::Char('f')) => {
                ed.search = Some(String::new());
                None
            }
            (true, KeyCode::Char('n')) => {
                ed.textarea.search_forward(false);
                None
            }
            (true, KeyCode::Char('w')) => {
                ed.toggle_wrap();
                None
            }
            _ => {
                ed.error = None;
                ed.textarea.input(k);
                None
            }
        }
    }

    fn on_trust_key(&mut self, k: KeyEvent, cursor: usize, opened_at: i64) -> Vec<Effect> {
        use crate::tui::trust::TrustItem;
        let items = self.trust.items(self.perms.perms.as_ref());
        let n = items.len();
        let current = items.get(cursor).copied();
        let keep = |app: &mut App, cursor: usize| {
            app.popup = Some(Popup::Trust { cursor, opened_at });
        };
        match (k.code, current) {
            (KeyCode::Esc | KeyCode::Char('q'), _) => vec![],
            (KeyCode::Char('j') | KeyCode::Down, _) => {
                keep(self, (cursor + 1).min(n.saturating_sub(1)));
                vec![]
            }
            (KeyCode::Char('k') | KeyCode::Up, _) => {
                keep(self, cursor.saturating_sub(1));
                vec![]
            }
            (KeyCode::Enter | KeyCode::Char('a'), Some(TrustItem::Nudge(nudge))) => {
                // The one key here that loosens anything: not within a second of the
                // popup appearing, so a stray Enter cannot accept a rule.
                if self.now - opened_at < INPUT_GUARD_MS {
                    keep(self, cursor);
                    self.say_input_guard();
                    return vec![];
                }
                let effect = Effect::Store(StoreEffect::AcceptNudge(Box::new(nudge.clone())));
                self.set_status(Level::Info, format!("accepting: {}", nudge.text));
                vec![effect]
            }
            (KeyCode::Char('d'), Some(TrustItem::Nudge(nudge))) => {
                let key = (nudge.kind, nudge.target.clone());
                self.set_status(
                    Level::Info,
                    format!("dismissed for this session: {}", nudge.text),
                );
                self.trust.dismissed.insert(key);
                keep(self, cursor.min(n.saturating_sub(2)));
                vec![]
            }
            // Resuming lets the rule approve again: like accepting, not within the popup's
            // first second.
            (KeyCode::Char('r'), Some(TrustItem::Rule(rule))) if rule.paused.is_some() => {
                let id = rule.id.clone();
                keep(self, cursor);
                if self.now - opened_at < INPUT_GUARD_MS {
                    self.say_input_guard();
                    return vec![];
                }
                self.set_status(Level::Info, format!("resuming rule {id}"));
                vec![Effect::Store(StoreEffect::ChangePermissions(
                    crate::core::permissions::PermissionChange::ResumeAutoRule { id },
                ))]
            }
            (KeyCode::Char('x'), Some(TrustItem::Rule(rule))) => {
                let id = rule.id.clone();
                keep(self, cursor.min(n.saturating_sub(2)));
                vec![Effect::Store(StoreEffect::ChangePermissions(
                    crate::core::permissions::PermissionChange::RevokeAutoRule { id },
                ))]
            }
            _ => {
                keep(self, cursor);
                vec![]
            }
        }
    }
}

/// How a key scrolls a payload being confirmed (step-up boxes, the bulk summary), in
/// rows; `None` for any other key. The ends are far enough to clamp to either end.
pub(super) fn payload_scroll(code: KeyCode) -> Option<isize> {
    Some(match code {
        KeyCode::Char('j') | KeyCode::Down => 1,
        KeyCode::Char('k') | KeyCode::Up => -1,
        KeyCode::Char(' ') | KeyCode::PageDown => 8,
        KeyCode::PageUp => -8,
        KeyCode::Char('G') | KeyCode::End => isize::MAX / 2,
        KeyCode::Char('g') | KeyCode::Home => isize::MIN / 2,
        _ => return None,
    })
}

/// A meeting moved to a time that has already passed is a typo, not a plan (a time the
/// AI proposed and the person left alone is not second-guessed here).
fn moved_into_the_past(
    before: &crate::core::domain::ActionParams,
    after: &crate::core::domain::ActionParams,
    now: crate::core::domain::Millis,
    utc_offset_s: i32,
) -> Result<(), String> {
    use crate::core::domain::ActionParams::ScheduleMeeting;
    match (before, after) {
        (ScheduleMeeting { start: s0, .. }, ScheduleMeeting { start, .. })
            if start != s0 && *start < now =>
        {
            Err(format!(
                "When: {} has passed; pick a time ahead",
                crate::tui::editor::local_time(*start, utc_offset_s)
            ))
        }
        _ => Ok(()),
    }
}
