//! Text from outside (a model, an MCP client, a CRM field) shown to a person: control
//! characters are made visible instead of reaching the terminal, where an escape
//! sequence could repaint what the rep reads before confirming.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as is (C0 and C1 controls, DEL).
fn is_control(c: char) -> bool {
    c.is_control()
}

fn escape(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{1b}' => out.push_str("\\e"),
        c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

/// One line: every control character, newlines included, shown as an escape.
pub fn line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_control(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A block (an email body): newlines and tabs kept, every other control shown escaped.
pub fn block(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| is_control(c) && c != '\n' && c != '\t') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_control(c) && c != '\n' && c != '\t' {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The first control character in a one-line field, if any (for validation).
pub fn control_in_line(s: &str) -> Option<char> {
    s.chars().find(|c| is_control(*c))
}

/// The first control character in a block other than newline, carriage return and tab.
pub fn control_in_block(s: &str) -> Option<char> {
    s.chars()
        .find(|c| is_control(*c) && !matches!(c, '\n' | '\r' | '\t'))
}

/// A millisecond timestamp as "YYYY-MM-DD HH:MM:SS" UTC: arithmetic only, no clock or
/// time zone database (the TUI's `fmt_ts` and the consent engine's reasons share it).
pub fn utc_timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// "YYYY-MM-DD HH:MM UTC", for a reason chain read by a person.
pub fn utc_minute(ms: i64) -> String {
    let mut s = utc_timestamp(ms);
    s.truncate(16);
    s.push_str(" UTC");
    s
}

/// A span of time as a person says it: "90s", "15m", "4h", "2d", "1h30m".
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m"), (sec, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_made_visible() {
        let hostile = "#general\u{1b}[2K\rtarget      #deals";
        assert_eq!(line(hostile), "#general\\e[2K\\rtarget      #deals");
        assert_eq!(line("plain"), "plain");
        assert_eq!(block("a\nb\u{9b}c"), "a\nb\\u{9b}c");
        assert_eq!(control_in_line("#a\u{7}"), Some('\u{7}'));
        assert_eq!(control_in_block("hi\nthere"), None);
    }
}
