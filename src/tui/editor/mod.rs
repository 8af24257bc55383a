//! The inline draft editor: a payload as a form a person can read and edit (mail-like
//! headers, one field per line, then the body: recipients, subject and text for emails
//! and Slack posts; title, attendees, local date and time and length for meetings;
//! amounts in dollars and stage names for deals), parsed back into typed params, and a
//! line diff against the AI's original with the changed words marked. Pure text
//! functions plus the editor state; the textarea comes from ratatui-textarea (undo/redo,
//! search, wrap).
use crate::core::domain::ActionParams;
use ratatui_textarea::{TextArea, WrapMode};

mod diff;
mod draft;

#[cfg(test)]
mod tests;

pub use diff::{DiffLine, WordSpan, diff_lines, word_diff};
pub use draft::{draft_text, local_time, parse_draft, parse_local_time};

/// An open editor on one action.
#[derive(Debug, Clone)]
pub struct EditorState {
    pub id: String,
    pub version: i64,
    /// The payload being edited (to parse back into the same kind).
    pub params: ActionParams,
    /// The AI's original, as text, for the diff.
    pub original_text: String,
    pub textarea: TextArea<'static>,
    /// `Some` while typing a search pattern (Ctrl-F).
    pub search: Option<String>,
    pub error: Option<String>,
    pub wrap: bool,
    /// The person's offset, for the times in the form.
    pub utc_offset_s: i32,
}

impl EditorState {
    pub fn new(
        id: String,
        version: i64,
        params: &ActionParams,
        original: &ActionParams,
        utc_offset_s: i32,
    ) -> Self {
        let text = draft_text(params, utc_offset_s);
        let mut textarea = TextArea::new(text.split('\n').map(String::from).collect());
        textarea.set_wrap_mode(WrapMode::WordOrGlyph);
        EditorState {
            id,
            version,
            params: params.clone(),
            original_text: draft_text(original, utc_offset_s),
            utc_offset_s,
            textarea,
            search: None,
            error: None,
            wrap: true,
        }
    }

    pub fn text(&self) -> String {
        self.textarea.lines().join("\n")
    }

    pub fn diff(&self) -> Vec<DiffLine> {
        diff_lines(&self.original_text, &self.text())
    }

    pub fn toggle_wrap(&mut self) {
        self.wrap = !self.wrap;
        self.textarea.set_wrap_mode(if self.wrap {
            WrapMode::WordOrGlyph
        } else {
            WrapMode::None
        });
    }
}
