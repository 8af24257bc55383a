//! The Chat tab's input: composing a message, and the inline step-up prompt the agent
//! asks for (scrolled to its last row before `y` counts).

use super::*;
use crate::tui::keymap::{Command, Section};
use crate::tui::msg::Effect;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

impl App {
    /// The step-up box's fit at the current terminal size; `None` before the first
    /// `Resize`, when nothing has been drawn to measure against (and nothing confirmed).
    pub(super) fn step_up_fit(&self) -> Option<crate::tui::layout::StepUpFit> {
        let p = self.chat.step_up.as_ref()?;
        let (w, h) = self.size;
        if w == 0 || h == 0 {
            return None;
        }
        let [_, body, _, _] =
            crate::tui::layout::screen_layout(ratatui::layout::Rect::new(0, 0, w, h));
        Some(crate::tui::layout::step_up_fit(&p.summary, body))
    }

    pub(super) fn scroll_step_up(&mut self, by: isize) -> Vec<Effect> {
        // Keys typed on through the prompt's first second scroll nothing either.
        if self
            .chat
            .step_up
            .as_ref()
            .is_some_and(|p| self.now - p.opened_at < INPUT_GUARD_MS)
        {
            self.say_input_guard();
            return vec![];
        }
        let max = self
            .step_up_fit()
            .map_or(0, |f| f.rows.saturating_sub(f.shown));
        if let Some(p) = &mut self.chat.step_up {
            p.scroll = p.scroll.saturating_add_signed(by).min(max);
        }
        vec![]
    }

    pub(super) fn answer_chat_step_up(&mut self, confirmed: bool) -> Vec<Effect> {
        let Some(p) = &self.chat.step_up else {
            return vec![];
        };
        if self.now - p.opened_at < INPUT_GUARD_MS {
            self.say_input_guard();
            return vec![];
        }
        // "Confirm exactly this" means all of it: a yes waits until the last row of the
        // payload has been on screen. A no never waits.
        let fit = self.step_up_fit();
        if confirmed && fit.is_none_or(|f| f.shown == 0) {
            self.set_status(
                Level::Warn,
                "the terminal is too small to show what you would confirm: enlarge it, or n to refuse",
            );
            return vec![];
        }
        if confirmed
            && let Some(fit) = fit
            && p.scroll + fit.shown < fit.rows
        {
            self.set_status(
                Level::Warn,
                format!(
                    "read it all first: {} more row(s) below (j / space / G scroll)",
                    fit.rows - p.scroll - fit.shown
                ),
            );
            return vec![];
        }
        super::messages::chat_effects(self.chat.answer(confirmed, self.now))
    }

    pub(super) fn on_compose_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        match k.code {
            KeyCode::Esc => self.chat.composing = false,
            KeyCode::Backspace => {
                self.chat.input.pop();
            }
            KeyCode::Enter => {
                let text = self.chat.input.trim().to_string();
                self.chat.input.clear();
                if text.is_empty() {
                    return vec![];
                }
                if self.chat.running {
                    self.chat.input = text;
                    let cancel = self.keymap.keys_for(Section::Chat, Command::CancelTurn);
                    self.set_status(
                        Level::Warn,
                        format!("a turn is running: wait for it, or {cancel} cancels it"),
                    );
                    return vec![];
                }
                return super::messages::chat_effects(self.chat.send(text, self.now));
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.chat.input.push(c)
            }
            _ => {}
        }
        vec![]
    }
}
