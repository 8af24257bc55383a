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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::Stage;
    use crate::sandbox::demo::suggestions;

    #[test]
    fn every_demo_payload_round_trips_through_its_draft_text() {
        for offset in [0, 3600, -5 * 3600 - 1800] {
            for a in suggestions(1_796_248_544_492) {
                let text = draft_text(&a.params, offset);
                assert_eq!(
                    parse_draft(&a.params, &text, offset).unwrap(),
                    a.params,
                    "{}: {text}",
                    a.id
                );
            }
        }
    }

    #[test]
    fn a_meetings_time_is_edited_in_local_time() {
        let m = ActionParams::ScheduleMeeting {
            title: "Review".into(),
            attendees: vec!["a@x.example".into()],
            start: 1_796_227_200_000, // 2026-12-02 16:00 UTC
            end: 1_796_229_000_000,
            description: "agenda".into(),
        };
        let text = draft_text(&m, 3600);
        assert!(text.contains("When: 2026-12-02 17:00 UTC+01:00"), "{text}");
        assert!(text.contains("Minutes: 30"), "{text}");
        let moved = text
            .replace("2026-12-02 17:00 UTC+01:00", "2026-12-03 09:30")
            .replace("Minutes: 30", "Minutes: 45");
        match parse_draft(&m, &moved, 3600).unwrap() {
            ActionParams::ScheduleMeeting { start, end, .. } => {
                // 09:30 at UTC+01:00 is 08:30 UTC.
                assert_eq!(start, 1_796_286_600_000);
                assert_eq!(end - start, 45 * 60_000);
            }
            other => panic!("{other:?}"),
        }
        // A zone written out wins over the person's.
        assert_eq!(
            parse_local_time("2026-12-02 16:00 UTC", 3600).unwrap(),
            1_796_227_200_000
        );
        assert_eq!(
            parse_local_time("2026-12-02 11:00 -05:00", 0).unwrap(),
            1_796_227_200_000
        );
        for bad in [
            "tomorrow",
            "2026-13-02 16:00",
            "2026-12-02",
            "2026-12-02 16:00 PST x",
        ] {
            assert!(parse_local_time(bad, 0).is_err(), "{bad}");
        }
        let err = parse_draft(&m, &text.replace("Minutes: 30", "Minutes: 0"), 0).unwrap_err();
        assert!(err.contains("Minutes"), "{err}");
    }

    #[test]
    fn deals_are_edited_in_dollars_and_stage_names() {
        let d = ActionParams::CreateDeal {
            name: "Pilot".into(),
            account: "Globex".into(),
            amount_cents: 1_800_000,
            stage: Stage::Proposal,
        };
        let text = draft_text(&d, 0);
        assert!(text.contains("Amount: $18,000"), "{text}");
        let edited = text
            .replace("$18,000", "$20k")
            .replace("proposal", "Negotiation");
        assert_eq!(
            parse_draft(&d, &edited, 0).unwrap(),
            ActionParams::CreateDeal {
                name: "Pilot".into(),
                account: "Globex".into(),
                amount_cents: 2_000_000,
                stage: Stage::Negotiation,
            }
        );
        assert!(parse_draft(&d, &text.replace("$18,000", "lots"), 0).is_err());
        // What an update or a close is about cannot be swapped in the form.
        let close = ActionParams::CloseDeal {
            revision: None,
            deal_id: "deal-stark".into(),
            won: true,
            amount_cents: 25_000_000,
        };
        let t = draft_text(&close, 0);
        let err = parse_draft(&close, &t.replace("deal-stark", "deal-hooli"), 0).unwrap_err();
        assert!(err.contains("stays deal-stark"), "{err}");
        assert_eq!(
            parse_draft(&close, &t.replace("won", "lost"), 0).unwrap(),
            ActionParams::CloseDeal {
                revision: None,
                deal_id: "deal-stark".into(),
                won: false,
                amount_cents: 25_000_000,
            }
        );
    }

    #[test]
    fn a_word_diff_marks_only_the_changed_words_and_loses_nothing() {
        let (old, new) = word_diff(
            "Do you have 20 minutes this week?",
            "Do you have 30 minutes next week?",
        );
        let changed = |v: &[WordSpan]| {
            v.iter()
                .filter(|(_, c)| *c)
                .map(|(t, _)| t.trim().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(changed(&old), ["20", "this"]);
        assert_eq!(changed(&new), ["30", "next"]);
        let join = |v: &[WordSpan]| v.iter().map(|(t, _)| t.as_str()).collect::<String>();
        assert_eq!(join(&old), "Do you have 20 minutes this week?");
        assert_eq!(join(&new), "Do you have 30 minutes next week?");
        let (o, n) = word_diff("", "all new");
        assert!(o.is_empty());
        assert_eq!(n, vec![("all new".to_string(), true)]);
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
