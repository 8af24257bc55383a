//! Key bindings as data: `keymap.toml` (embedded) with the user's `keymap.toml` merged
//! over it. Keys resolve to a [`Command`]; `?` help and the `:` palette are generated
//! from the same table. Problems in the user file become warnings, never a crash.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;
use std::collections::BTreeMap;

const DEFAULT: &str = include_str!("keymap.toml");

/// Every named command a key can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Quit,
    Help,
    Palette,
    NextTab,
    PrevTab,
    TabActions,
    TabChat,
    TabPermissions,
    TabAudit,
    Down,
    Up,
    Top,
    Bottom,
    PageDown,
    PageUp,
    Filter,
    Refresh,
    Redraw,
    Approve,
    Reject,
    Edit,
    Mark,
    Range,
    ClearMarks,
    ApproveMarked,
    SendToBatch,
    ExecuteApproved,
    UndoSend,
    Trust,
    Calibration,
    NextView,
    Increase,
    Decrease,
    Connect,
    Verify,
    Export,
    Compose,
    Confirm,
    Deny,
    CancelTurn,
    ToggleFold,
    DetailDown,
    DetailUp,
    /// Unbinds a key in a user file.
    None,
}

impl Command {
    pub fn name(self) -> String {
        // The serde name, so help shows what a user file must spell.
        let dbg = format!("{self:?}");
        let mut out = String::new();
        for (i, c) in dbg.chars().enumerate() {
            if c.is_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.extend(c.to_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    pub fn parse(s: &str) -> Option<Command> {
        toml::Value::String(s.to_string()).try_into().ok()
    }
}

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    Global,
    Actions,
    Chat,
    Permissions,
    Audit,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Section::Global,
        Section::Actions,
        Section::Chat,
        Section::Permissions,
        Section::Audit,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Section::Global => "global",
            Section::Actions => "actions",
            Section::Chat => "chat",
            Section::Permissions => "permissions",
            Section::Audit => "audit",
        }
    }
}

/// A normalised key: code plus ctrl/alt (shift is folded into the character).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub code: KeyCodeOrd,
    pub ctrl: bool,
    pub alt: bool,
}

/// `KeyCode` is not `Ord`; this is the subset bindings use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyCodeOrd {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    Backspace,
    Delete,
    F(u8),
}

impl Key {
    pub fn from_event(ev: &KeyEvent) -> Option<Key> {
        let code = match ev.code {
            KeyCode::Char(c) => KeyCodeOrd::Char(c),
            KeyCode::Enter => KeyCodeOrd::Enter,
            KeyCode::Esc => KeyCodeOrd::Esc,
            KeyCode::Tab => KeyCodeOrd::Tab,
            KeyCode::BackTab => KeyCodeOrd::BackTab,
            KeyCode::Up => KeyCodeOrd::Up,
            KeyCode::Down => KeyCodeOrd::Down,
            KeyCode::Left => KeyCodeOrd::Left,
            KeyCode::Right => KeyCodeOrd::Right,
            KeyCode::Home => KeyCodeOrd::Home,
            KeyCode::End => KeyCodeOrd::End,
            KeyCode::PageUp => KeyCodeOrd::PageUp,
            KeyCode::PageDown => KeyCodeOrd::PageDown,
            KeyCode::Backspace => KeyCodeOrd::Backspace,
            KeyCode::Delete => KeyCodeOrd::Delete,
            KeyCode::F(n) => KeyCodeOrd::F(n),
            _ => return None,
        };
        Some(Key {
            code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
        })
    }

    /// Parses "q", "A", "ctrl-s", "alt-x", "space", "enter", "shift-tab", "pagedown"…
    pub fn parse(s: &str) -> Option<Key> {
        let mut ctrl = false;
        let mut alt = false;
        let mut rest = s;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                ctrl = true;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-") {
                alt = true;
                rest = r;
            } else {
                break;
            }
        }
        let code = match rest {
            "space" => KeyCodeOrd::Char(' '),
            "enter" => KeyCodeOrd::Enter,
            "esc" => KeyCodeOrd::Esc,
            "tab" => KeyCodeOrd::Tab,
            "shift-tab" | "backtab" => KeyCodeOrd::BackTab,
            "up" => KeyCodeOrd::Up,
            "down" => KeyCodeOrd::Down,
            "left" => KeyCodeOrd::Left,
            "right" => KeyCodeOrd::Right,
            "home" => KeyCodeOrd::Home,
            "end" => KeyCodeOrd::End,
            "pageup" => KeyCodeOrd::PageUp,
            "pagedown" => KeyCodeOrd::PageDown,
            "backspace" => KeyCodeOrd::Backspace,
            "delete" => KeyCodeOrd::Delete,
            f if f.len() > 1 && f.starts_with('f') => KeyCodeOrd::F(f[1..].parse().ok()?),
            c => {
                let mut chars = c.chars();
                let ch = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                KeyCodeOrd::Char(ch)
            }
        };
        Some(Key { code, ctrl, alt })
    }

    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCodeOrd::Char(' ') => "space".to_string(),
            KeyCodeOrd::Char(c) => c.to_string(),
            KeyCodeOrd::Enter => "enter".into(),
            KeyCodeOrd::Esc => "esc".into(),
            KeyCodeOrd::Tab => "tab".into(),
            KeyCodeOrd::BackTab => "shift-tab".into(),
            KeyCodeOrd::Up => "↑".into(),
            KeyCodeOrd::Down => "↓".into(),
            KeyCodeOrd::Left => "←".into(),
            KeyCodeOrd::Right => "→".into(),
            KeyCodeOrd::Home => "home".into(),
            KeyCodeOrd::End => "end".into(),
            KeyCodeOrd::PageUp => "pgup".into(),
            KeyCodeOrd::PageDown => "pgdn".into(),
            KeyCodeOrd::Backspace => "backspace".into(),
            KeyCodeOrd::Delete => "del".into(),
            KeyCodeOrd::F(n) => format!("f{n}"),
        };
        let mut out = String::new();
        if self.ctrl {
            out.push_str("ctrl-");
        }
        if self.alt {
            out.push_str("alt-");
        }
        out.push_str(&base);
        out
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    keys: Vec<String>,
    command: String,
    #[serde(default)]
    desc: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeymap {
    #[serde(default)]
    global: Vec<RawRow>,
    #[serde(default)]
    actions: Vec<RawRow>,
    #[serde(default)]
    chat: Vec<RawRow>,
    #[serde(default)]
    permissions: Vec<RawRow>,
    #[serde(default)]
    audit: Vec<RawRow>,
}

/// One row of help: the keys bound to a command in a section.
#[derive(Debug, Clone, PartialEq)]
pub struct HelpRow {
    pub section: Section,
    pub keys: Vec<String>,
    pub command: Command,
    pub desc: String,
}

#[derive(Debug, Clone, Default)]
pub struct Keymap {
    bindings: BTreeMap<(Section, Key), Command>,
    descs: BTreeMap<(Section, Command), String>,
}

impl Keymap {
    /// The embedded defaults alone.
    pub fn defaults() -> Keymap {
        let mut km = Keymap::default();
        let mut warnings = Vec::new();
        km.merge_str(DEFAULT, "built-in keymap", &mut warnings);
        km
    }

    /// Defaults with `user` (the text of a user keymap file) merged over them.
    pub fn load(user: Option<(&str, &str)>) -> (Keymap, Vec<String>) {
        let mut km = Keymap::defaults();
        let mut warnings = Vec::new();
        if let Some((text, origin)) = user {
            km.merge_str(text, origin, &mut warnings);
        }
        (km, warnings)
    }

    fn merge_str(&mut self, text: &str, origin: &str, warnings: &mut Vec<String>) {
        let raw: RawKeymap = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!("{origin}: {e}; using the default keys"));
                return;
            }
        };
        let sections = [
            (Section::Global, raw.global),
            (Section::Actions, raw.actions),
            (Section::Chat, raw.chat),
            (Section::Permissions, raw.permissions),
            (Section::Audit, raw.audit),
        ];
        for (section, rows) in sections {
            for row in rows {
                let Some(cmd) = Command::parse(&row.command) else {
                    warnings.push(format!(
                        "{origin}: [{}] unknown command {:?}; row ignored",
                        section.name(),
                        row.command
                    ));
                    continue;
                };
                for k in &row.keys {
                    match Key::parse(k) {
                        Some(key) if cmd == Command::None => {
                            self.bindings.remove(&(section, key));
                        }
                        Some(key) => {
                            self.bindings.insert((section, key), cmd);
                        }
                        None => warnings.push(format!(
                            "{origin}: [{}] cannot read key {k:?}; ignored",
                            section.name()
                        )),
                    }
                }
                if cmd != Command::None && !row.desc.is_empty() {
                    self.descs.insert((section, cmd), row.desc.clone());
                }
            }
        }
    }

    /// The command for `key` in `section`, falling back to the global bindings.
    pub fn resolve(&self, section: Section, key: &KeyEvent) -> Option<Command> {
        let k = Key::from_event(key)?;
        self.bindings
            .get(&(section, k))
            .or_else(|| self.bindings.get(&(Section::Global, k)))
            .copied()
    }

    /// The key that runs `cmd` in `section` (or globally), as hints should name it; a
    /// command the user unbound is still reachable from the palette, so say that.
    pub fn keys_for(&self, section: Section, cmd: Command) -> String {
        // The plainest key when there are several ("q" rather than "ctrl-c").
        [section, Section::Global]
            .into_iter()
            .find_map(|sec| {
                self.bindings
                    .iter()
                    .filter(|((s, _), c)| *s == sec && **c == cmd)
                    .map(|((_, k), _)| k.label())
                    .min_by_key(|label| (label.chars().count(), label.clone()))
            })
            .unwrap_or_else(|| format!(":{}", cmd.name()))
    }

    /// Help rows, grouped by section in table order.
    pub fn help(&self) -> Vec<HelpRow> {
        let mut rows: Vec<HelpRow> = Vec::new();
        for section in Section::ALL {
            let mut by_cmd: BTreeMap<Command, Vec<String>> = BTreeMap::new();
            for ((s, key), cmd) in &self.bindings {
                if *s == section {
                    by_cmd.entry(*cmd).or_default().push(key.label());
                }
            }
            for (command, keys) in by_cmd {
                let desc = self
                    .descs
                    .get(&(section, command))
                    .cloned()
                    .unwrap_or_else(|| command.name());
                rows.push(HelpRow {
                    section,
                    keys,
                    command,
                    desc,
                });
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_without_warnings() {
        let mut km = Keymap::default();
        let mut w = Vec::new();
        km.merge_str(DEFAULT, "built-in", &mut w);
        assert!(w.is_empty(), "{w:?}");
        let a = KeyEvent::new(KeyCode::Char('a'), KeyModifiers::NONE);
        assert_eq!(km.resolve(Section::Actions, &a), Some(Command::Approve));
        assert_eq!(km.resolve(Section::Audit, &a), None);
    }

    #[test]
    fn user_rows_rebind_and_unbind() {
        let user = r#"
[[actions]]
keys = ["y"]
command = "approve"
[[actions]]
keys = ["a"]
command = "none"
[[global]]
keys = ["Z"]
command = "frobnicate"
"#;
        let (km, w) = Keymap::load(Some((user, "user")));
        assert_eq!(w.len(), 1, "{w:?}");
        let y = KeyEvent::new(KeyCode::Char('y'), KeyModifiers::NONE);
        let a = KeyEvent::new(KeyCode::Char('a'), KeyModifiers::NONE);
        assert_eq!(km.resolve(Section::Actions, &y), Some(Command::Approve));
        assert_eq!(km.resolve(Section::Actions, &a), None);
    }

    #[test]
    fn hints_name_the_bound_key_or_the_palette() {
        let (km, _) = Keymap::load(Some((
            "[[actions]]\nkeys = [\"u\"]\ncommand = \"none\"\n",
            "user",
        )));
        assert_eq!(
            Keymap::defaults().keys_for(Section::Actions, Command::UndoSend),
            "u"
        );
        assert_eq!(
            km.keys_for(Section::Actions, Command::UndoSend),
            ":undo_send"
        );
        assert_eq!(km.keys_for(Section::Actions, Command::Help), "?");
        assert_eq!(km.keys_for(Section::Actions, Command::Quit), "q");
    }

    #[test]
    fn command_names_round_trip() {
        for row in Keymap::defaults().help() {
            assert_eq!(Command::parse(&row.command.name()), Some(row.command));
        }
    }
}
