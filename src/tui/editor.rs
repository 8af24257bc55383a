//! The inline draft editor: a payload as a form a person can read and edit (mail-like
//! headers, one field per line, then the body: recipients, subject and text for emails
//! and Slack posts; title, attendees, local date and time and length for meetings;
//! amounts in dollars and stage names for deals), parsed back into typed params, and a
//! line diff against the AI's original with the changed words marked. Pure text
//! functions plus the editor state; the textarea comes from ratatui-textarea (undo/redo,
//! search, wrap).

use crate::core::domain::{ActionParams, Email, Millis, Stage, format_money};
use ratatui_textarea::{TextArea, WrapMode};

/// `2026-12-02 16:00 UTC+01:00`: a time as the person reads it, in their offset.
pub fn local_time(ms: Millis, utc_offset_s: i32) -> String {
    let Some(zone) = chrono::FixedOffset::east_opt(utc_offset_s) else {
        return ms.to_string();
    };
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => {
            let z = if utc_offset_s == 0 {
                "UTC".to_string()
            } else {
                format!("UTC{}", t.with_timezone(&zone).format("%:z"))
            };
            format!("{} {z}", t.with_timezone(&zone).format("%Y-%m-%d %H:%M"))
        }
        None => ms.to_string(),
    }
}

/// Reads `2026-12-02 16:00` (in the person's offset), optionally followed by a zone as
/// [`local_time`] writes it (`UTC`, `UTC+01:00`, `+01:00`, `Z`).
pub fn parse_local_time(s: &str, utc_offset_s: i32) -> Result<Millis, String> {
    let bad = || format!("{s:?}: give a date and time like 2026-12-02 16:00");
    let mut parts = s.split_whitespace();
    let (Some(day), Some(hm)) = (parts.next(), parts.next()) else {
        return Err(bad());
    };
    let naive = chrono::NaiveDateTime::parse_from_str(&format!("{day} {hm}"), "%Y-%m-%d %H:%M")
        .map_err(|_| bad())?;
    let offset = match parts.next() {
        None => utc_offset_s,
        Some(z) => {
            let z = z.trim_start_matches("UTC");
            if z.is_empty() || z == "Z" {
                0
            } else {
                let sign = match z.chars().next() {
                    Some('+') => 1,
                    Some('-') => -1,
                    _ => return Err(format!("{s:?}: the zone must look like UTC+01:00")),
                };
                let (h, m) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
                let (h, m): (i32, i32) =
                    (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
                sign * (h * 3600 + m * 60)
            }
        }
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    let zone = chrono::FixedOffset::east_opt(offset).ok_or_else(bad)?;
    naive
        .and_local_timezone(zone)
        .single()
        .map(|t| t.timestamp_millis())
        .ok_or_else(bad)
}

/// The text a person edits for `params`; times in their UTC offset.
pub fn draft_text(params: &ActionParams, utc_offset_s: i32) -> String {
    match params {
        ActionParams::SendEmail(e) | ActionParams::DraftEmail(e) => format!(
            "To: {}\nCc: {}\nSubject: {}\n\n{}",
            e.to.join(", "),
            e.cc.join(", "),
            e.subject,
            e.body
        ),
        ActionParams::PostSlack { channel, text } => format!("Channel: {channel}\n\n{text}"),
        ActionParams::ScheduleMeeting {
            title,
            attendees,
            start,
            end,
            description,
        } => format!(
            "Title: {title}\nAttendees: {}\nWhen: {}\nMinutes: {}\n\n{description}",
            attendees.join(", "),
            local_time(*start, utc_offset_s),
            end.saturating_sub(*start) / 60_000
        ),
        ActionParams::CreateDeal {
            name,
            account,
            amount_cents,
            stage,
        } => format!(
            "Name: {name}\nAccount: {account}\nAmount: {}\nStage: {}",
            format_money(*amount_cents),
            stage.as_str()
        ),
        ActionParams::UpdateDeal {
            deal_id,
            stage,
            amount_cents,
            notes,
            ..
        } => format!(
            "Deal: {deal_id}\nStage: {}\nAmount: {}\n\n{}",
            stage.map_or("", |s| s.as_str()),
            amount_cents.map(format_money).unwrap_or_default(),
            notes.as_deref().unwrap_or_default()
        ),
        ActionParams::CloseDeal { deal_id, won, .. } => format!(
            "Deal: {deal_id}\nOutcome: {}",
            if *won { "won" } else { "lost" }
        ),
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

fn amount(v: &str) -> Result<i64, String> {
    crate::agent::offline::parse_amount_cents(v)
        .ok_or_else(|| format!("Amount {v:?}: give dollars, like $75,000 or 75k"))
}

fn stage(v: &str) -> Result<Stage, String> {
    Stage::parse(&v.trim().to_lowercase().replace([' ', '-'], "_")).ok_or_else(|| {
        format!(
            "Stage {v:?}: one of {}",
            Stage::ALL.map(Stage::as_str).join(", ")
        )
    })
}

fn unknown(k: &str, known: &str) -> String {
    format!("unknown field {k:?} ({known})")
}

/// Parses edited text back into params of the same kind as `like`; times are read in
/// the person's UTC offset unless a zone is written.
pub fn parse_draft(
    like: &ActionParams,
    text: &str,
    utc_offset_s: i32,
) -> Result<ActionParams, String> {
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
                    other => return Err(unknown(other, "To, Cc, Subject")),
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
                    other => return Err(unknown(other, "Channel")),
                }
            }
            Ok(ActionParams::PostSlack {
                channel,
                text: body,
            })
        }
        ActionParams::ScheduleMeeting { start, end, .. } => {
            let (hs, description) = headers(text);
            let (mut title, mut attendees) = (String::new(), Vec::new());
            // A field left as shown keeps its exact value (the form shows minutes, the
            // payload holds milliseconds): only what the person changed changes.
            let mut at = *start;
            let mut length = end.saturating_sub(*start);
            for (k, v) in hs {
                match k.as_str() {
                    "title" => title = v,
                    "attendees" => attendees = split_list(&v),
                    "when" if v == local_time(*start, utc_offset_s) => {}
                    "when" => at = parse_local_time(&v, utc_offset_s)?,
                    "minutes" if v == (length / 60_000).to_string() => {}
                    "minutes" => {
                        length = v
                            .parse::<i64>()
                            .ok()
                            .filter(|m| (1..=24 * 60).contains(m))
                            .ok_or_else(|| format!("Minutes {v:?}: a length from 1 to 1440"))?
                            * 60_000
                    }
                    other => return Err(unknown(other, "Title, Attendees, When, Minutes")),
                }
            }
            Ok(ActionParams::ScheduleMeeting {
                title,
                attendees,
                start: at,
                end: at + length,
                description,
            })
        }
        ActionParams::CreateDeal { .. } => {
            let (hs, _) = headers(text);
            let (mut name, mut account, mut cents, mut st) =
                (String::new(), String::new(), 0, Stage::Prospecting);
            for (k, v) in hs {
                match k.as_str() {
                    "name" => name = v,
                    "account" => account = v,
                    "amount" => cents = amount(&v)?,
                    "stage" => st = stage(&v)?,
                    other => return Err(unknown(other, "Name, Account, Amount, Stage")),
                }
            }
            Ok(ActionParams::CreateDeal {
                name,
                account,
                amount_cents: cents,
                stage: st,
            })
        }
        ActionParams::UpdateDeal { deal_id, .. } => {
            let (hs, notes) = headers(text);
            let (mut st, mut cents) = (None, None);
            for (k, v) in hs {
                match k.as_str() {
                    // The deal an update is about is what was reviewed: not editable.
                    "deal" if v == *deal_id => {}
                    "deal" => return Err(format!("Deal stays {deal_id}")),
                    "stage" if v.is_empty() => {}
                    "stage" => st = Some(stage(&v)?),
                    "amount" if v.is_empty() => {}
                    "amount" => cents = Some(amount(&v)?),
                    other => return Err(unknown(other, "Deal, Stage, Amount")),
                }
            }
            Ok(ActionParams::UpdateDeal {
                deal_id: deal_id.clone(),
                stage: st,
                amount_cents: cents,
                notes: Some(notes).filter(|n| !n.trim().is_empty()),
                // The CRM revision is the store's, filled again by the pipeline.
                revision: None,
            })
        }
        ActionParams::CloseDeal {
            deal_id,
            amount_cents,
            revision,
            ..
        } => {
            let (hs, _) = headers(text);
            let mut won = None;
            for (k, v) in hs {
                match k.as_str() {
                    "deal" if v == *deal_id => {}
                    "deal" => return Err(format!("Deal stays {deal_id}")),
                    "outcome" => {
                        won = Some(match v.to_lowercase().as_str() {
                            "won" => true,
                            "lost" => false,
                            _ => return Err(format!("Outcome {v:?}: won or lost")),
                        })
                    }
                    other => return Err(unknown(other, "Deal, Outcome")),
                }
            }
            Ok(ActionParams::CloseDeal {
                deal_id: deal_id.clone(),
                won: won.ok_or("Outcome: won or lost")?,
                // The amount at stake and the revision are the CRM's, filled again by
                // the pipeline.
                amount_cents: *amount_cents,
                revision: revision.clone(),
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

/// One piece of a line in a word diff: the text and whether it changed.
pub type WordSpan = (String, bool);

/// The words of `old` and `new` (a removed line and the added line that replaced it),
/// each marked changed or not by a word-level LCS; whitespace is kept with the word
/// before it, so the spans join back into the lines exactly.
pub fn word_diff(old: &str, new: &str) -> (Vec<WordSpan>, Vec<WordSpan>) {
    fn words(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut in_space = false;
        for (i, c) in s.char_indices() {
            if c.is_whitespace() {
                in_space = true;
            } else if in_space {
                out.push(&s[start..i]);
                start = i;
                in_space = false;
            }
        }
        if start < s.len() {
            out.push(&s[start..]);
        }
        out
    }
    let (a, b) = (words(old), words(new));
    // Long lines are marked whole: the table is quadratic.
    if a.len() * b.len() > 40_000 {
        return (vec![(old.to_string(), true)], vec![(new.to_string(), true)]);
    }
    let key = |w: &str| w.trim_end().to_string();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u16; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if key(a[i]) == key(b[j]) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut ka, mut kb) = (vec![false; n], vec![false; m]);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if key(a[i]) == key(b[j]) {
            ka[i] = true;
            kb[j] = true;
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    let spans = |ws: &[&str], kept: &[bool]| -> Vec<WordSpan> {
        let mut out: Vec<WordSpan> = Vec::new();
        for (w, k) in ws.iter().zip(kept) {
            match out.last_mut() {
                Some((text, changed)) if *changed != *k => text.push_str(w),
                _ => out.push((w.to_string(), !k)),
            }
        }
        out
    };
    (spans(&a, &ka), spans(&b, &kb))
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
