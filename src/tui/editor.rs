//! The inline draft editor: a payload as editable text (mail-like headers and a body
//! for emails and Slack posts, pretty JSON for the rest), parsed back into typed
//! params, and a line diff against the AI's original. Pure text functions plus the
//! editor state; the textarea comes from ratatui-textarea (undo/redo, search, wrap).

use crate::core::domain::{ActionParams, Email};
use ratatui_textarea::{TextArea, WrapMode};

/// The text a person edits for `params`.
pub fn draft_text(params: &ActionParams) -> String {
    match params {
        ActionParams::SendEmail(e) | ActionParams::DraftEmail(e) => format!(
            "To: {}\nCc: {}\nSubject: {}\n\n{}",
            e.to.join(", "),
            e.cc.join(", "),
            e.subject,
            e.body
        ),
        ActionParams::PostSlack { channel, text } => format!("Channel: {channel}\n\n{text}"),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// Headers up to the first blank line, then the body.
fn headers(text: &str) -> (Vec<(String, String)>, String) {
    let mut hs = Vec::new();
    let mut lines = text.split('\n');
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            hs.push((k.trim().to_lowercase(), v.trim().to_string()));
        } else {
            hs.push((line.trim().to_lowercase(), String::new()));
        }
    }
    let body: Vec<&str> = lines.collect();
    (hs, body.join("\n"))
}

/// Parses edited text back into params of the same kind as `like`.
pub fn parse_draft(like: &ActionParams, text: &str) -> Result<ActionParams, String> {
    match like {
        ActionParams::SendEmail(orig) | ActionParams::DraftEmail(orig) => {
            let (hs, body) = headers(text);
            let mut e = Email {
                to: vec![],
                cc: vec![],
                subject: String::new(),
                body,
                deal_id: orig.deal_id.clone(),
            };
            for (k, v) in hs {
                match k.as_str() {
                    "to" => e.to = split_list(&v),
                    "cc" => e.cc = split_list(&v),
                    "subject" => e.subject = v,
                    other => return Err(format!("unknown header {other:?} (To, Cc, Subject)")),
                }
            }
            Ok(if matches!(like, ActionParams::SendEmail(_)) {
                ActionParams::SendEmail(e)
            } else {
                ActionParams::DraftEmail(e)
            })
        }
        ActionParams::PostSlack { .. } => {
            let (hs, body) = headers(text);
            let mut channel = String::new();
            for (k, v) in hs {
                match k.as_str() {
                    "channel" => channel = v,
                    other => return Err(format!("unknown header {other:?} (Channel)")),
                }
            }
            Ok(ActionParams::PostSlack {
                channel,
                text: body,
            })
        }
        _ => {
            let p: ActionParams =
                serde_json::from_str(text).map_err(|e| format!("payload JSON: {e}"))?;
            if p.kind() != like.kind() {
                return Err(format!("kind must stay {}", like.kind()));
            }
            Ok(p)
        }
    }
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    Same(String),
    Added(String),
    Removed(String),
}

/// A line diff (LCS). Drafts are small; inputs above 2,000 lines fall back to
/// "all removed, all added" to bound the cost.
pub fn diff_lines(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.split('\n').collect();
    let b: Vec<&str> = new.split('\n').collect();
    if a.len() > 2000 || b.len() > 2000 {
        let mut out: Vec<DiffLine> = a.iter().map(|l| DiffLine::Removed(l.to_string())).collect();
        out.extend(b.iter().map(|l| DiffLine::Added(l.to_string())));
        return out;
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n && j < m {
        if a[i] == b[j] {
            out.push(DiffLine::Same(a[i].to_string()));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(DiffLine::Removed(a[i].to_string()));
            i += 1;
        } else {
            out.push(DiffLine::Added(b[j].to_string()));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| DiffLine::Removed(l.to_string())));
    out.extend(b[j..].iter().map(|l| DiffLine::Added(l.to_string())));
    out
}

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
}

impl EditorState {
    pub fn new(id: String, version: i64, params: &ActionParams, original: &ActionParams) -> Self {
        let text = draft_text(params);
        let mut textarea = TextArea::new(text.split('\n').map(String::from).collect());
        textarea.set_wrap_mode(WrapMode::WordOrGlyph);
        EditorState {
            id,
            version,
            params: params.clone(),
            original_text: draft_text(original),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::demo::suggestions;

    #[test]
    fn every_demo_payload_round_trips_through_its_draft_text() {
        for a in suggestions(0) {
            let text = draft_text(&a.params);
            assert_eq!(parse_draft(&a.params, &text).unwrap(), a.params, "{}", a.id);
        }
    }

    #[test]
    fn diff_marks_changed_lines() {
        let d = diff_lines("a\nb\nc", "a\nB\nc\nd");
        assert_eq!(
            d,
            vec![
                DiffLine::Same("a".into()),
                DiffLine::Removed("b".into()),
                DiffLine::Added("B".into()),
                DiffLine::Same("c".into()),
                DiffLine::Added("d".into()),
            ]
        );
    }
}
