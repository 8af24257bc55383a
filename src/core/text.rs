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
