//! Rendering: a pure read of [`App`]. No IO, no locks, no clock; one file per tab plus
//! popups and the status bar. Lists are virtualised: only visible rows are built, so a
//! frame costs the same with 100 or 100,000 rows.

pub mod actions;
pub mod audit;
mod calibration;
pub use crate::tui::layout::{list_rows, screen_layout, window_start};
pub mod chat;
mod lock;
mod permissions;
pub mod popup;
mod status;

use super::app::{App, Tab};
use super::theme::Role;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

pub fn render(app: &App, f: &mut Frame) {
    let area = f.area();
    f.render_widget(Block::default().style(app.theme.style(Role::Base)), area);
    let [tabs, body, message, bar] = screen_layout(area);
    if app.lock.is_locked() {
        lock::render(app, f, area);
        return;
    }
    render_tabs(app, f, tabs);
    match app.tab {
        Tab::Actions => actions::render(app, f, body),
        Tab::Chat => chat::render(app, f, body),
        Tab::Permissions => permissions::render(app, f, body),
        Tab::Audit => audit::render(app, f, body),
    }
    status::render_message(app, f, message);
    status::render_bar(app, f, bar);
    popup::render(app, f, area);
}

fn render_tabs(app: &App, f: &mut Frame, area: Rect) {
    let mut spans = Vec::new();
    for (i, t) in Tab::ALL.iter().enumerate() {
        let role = if *t == app.tab {
            Role::TabActive
        } else {
            Role::TabInactive
        };
        spans.push(Span::styled(
            format!(" {} {} ", i + 1, t.title()),
            app.theme.style(role),
        ));
        spans.push(Span::raw(" "));
    }
    spans.push(Span::styled(
        "  ? help  : commands",
        app.theme.style(Role::Muted),
    ));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Truncates to `width` display columns, with an ellipsis when cut.
/// `text` in lines of at most `width` characters, broken between words (a word longer
/// than a line is cut into pieces).
pub fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        let len = cur.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&word);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

pub fn fit(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return format!("{s:<width$}");
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// A millisecond timestamp as "YYYY-MM-DD HH:MM:SS" UTC (no clock read: pure).
pub fn fmt_ts(ms: i64) -> String {
    crate::core::text::utc_timestamp(ms)
}

/// A moment as a person reads it: their time zone, with how far off it is — "Tue 2 Dec
/// 14:00 +01:00 (in 2 days)". `now` and the offset are the app's (injected, never read).
pub fn fmt_when(ms: i64, now: i64, utc_offset_s: i32) -> String {
    use chrono::TimeZone;
    let Some(t) = chrono::FixedOffset::east_opt(utc_offset_s)
        .and_then(|tz| tz.timestamp_millis_opt(ms).single())
    else {
        return fmt_ts(ms);
    };
    let delta = ms - now;
    let abs = delta.unsigned_abs() / 1000;
    let span = match abs {
        0..=59 => "now".to_string(),
        60..=3_599 => format!("{} min", abs / 60),
        3_600..=86_399 => format!("{} h", abs / 3_600),
        86_400..=172_799 => "1 day".to_string(),
        _ => format!("{} days", abs / 86_400),
    };
    let rel = if span == "now" {
        span
    } else if delta >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    };
    let zone = if utc_offset_s == 0 {
        "UTC".to_string()
    } else {
        t.format("%:z").to_string()
    };
    format!("{} {zone} ({rel})", t.format("%a %-d %b %H:%M"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_windows() {
        assert_eq!(fmt_ts(0), "1970-01-01 00:00:00");
        assert_eq!(fmt_ts(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(window_start(0, 10), 0);
        assert_eq!(window_start(9, 10), 0);
        assert_eq!(window_start(10, 10), 10);
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("ab", 4), "ab  ");
    }

    #[test]
    fn words_wrap_between_words_and_nothing_is_lost() {
        assert_eq!(
            wrap_words("auto-approve send email to @initech.example", 20),
            ["auto-approve send", "email to", "@initech.example"]
        );
        assert_eq!(wrap_words("abcdefgh ij", 3), ["abc", "def", "gh", "ij"]);
        assert_eq!(wrap_words("", 10), [""]);
        let text = "five Initech regional teams from the October trial landed";
        for w in 1..30 {
            let lines = wrap_words(text, w);
            assert!(
                lines.iter().all(|l| l.chars().count() <= w),
                "{w}: {lines:?}"
            );
            assert_eq!(lines.join(" ").replace(' ', ""), text.replace(' ', ""));
        }
    }
}
