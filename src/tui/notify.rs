//! Terminal notifications that survive SSH and tmux: BEL, OSC 9 and OSC 777, wrapped in
//! tmux's DCS passthrough when `$TMUX` is set. Text is stripped of control characters
//! so a title from the agent cannot inject escape sequences.

fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && *c != ';')
        .take(200)
        .collect()
}

/// OSC 52: sets the terminal's clipboard to `text` (base64; tmux with `set-clipboard`
/// passes it on). Only printable text is sent.
pub fn copy_sequence(text: &str) -> String {
    use base64::Engine;
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(clean.as_bytes())
    )
}

/// The bytes to write for one notification.
pub fn sequence(title: &str, body: &str, tmux: bool) -> String {
    let (t, b) = (clean(title), clean(body));
    let osc9 = format!("\x1b]9;{t}: {b}\x07");
    let osc777 = format!("\x1b]777;notify;{t};{b}\x07");
    let wrap = |s: &str| {
        if tmux {
            // Inside DCS passthrough every ESC is doubled.
            format!("\x1bPtmux;{}\x1b\\", s.replace('\x1b', "\x1b\x1b"))
        } else {
            s.to_string()
        }
    };
    format!("\x07{}{}", wrap(&osc9), wrap(&osc777))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmux_passthrough_doubles_escapes_and_strips_controls() {
        let plain = sequence("dealflow", "1 new\x1b[31m", false);
        assert!(plain.starts_with('\x07'));
        assert!(plain.contains("\x1b]9;dealflow: 1 new[31m\x07"));
        let tmux = sequence("dealflow", "x", true);
        assert!(tmux.contains("\x1bPtmux;\x1b\x1b]9;dealflow: x\x07\x1b\\"));
    }
}
