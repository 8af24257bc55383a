//! Themes: styles per [`Role`] (what a thing *means*, not which widget draws it), from
//! the TOML files shipped in `themes/` (embedded), with `inherits`, a `palette`, and
//! the user's file merged over. A broken theme warns and falls back; `NO_COLOR` keeps
//! only modifiers (bold, reversed) so selection stays visible without color.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const BUILTIN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Base,
    Border,
    Title,
    TabActive,
    TabInactive,
    Selected,
    Marked,
    Muted,
    Accent,
    RiskNone,
    RiskLow,
    RiskMedium,
    RiskHigh,
    Ok,
    Warn,
    Error,
    StatusBar,
    Sandbox,
    DiffAdd,
    DiffDel,
    Popup,
    Confidence,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStyle {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    modifiers: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTheme {
    inherits: Option<String>,
    #[serde(default)]
    palette: BTreeMap<String, String>,
    #[serde(default)]
    roles: BTreeMap<Role, RawStyle>,
}

#[derive(Debug, Clone, Default)]
pub struct Theme {
    pub name: String,
    styles: BTreeMap<Role, Style>,
    no_color: bool,
}

impl Theme {
    /// The style for a role; roles a theme leaves out fall back to `base`.
    pub fn style(&self, role: Role) -> Style {
        self.styles
            .get(&role)
            .or_else(|| self.styles.get(&Role::Base))
            .copied()
            .unwrap_or_default()
    }

    pub fn no_color(&self) -> bool {
        self.no_color
    }

    /// Loads built-in `name`, merges `user` (text, origin) over it, and applies
    /// `NO_COLOR`. Never fails: problems come back as warnings.
    pub fn load(name: &str, user: Option<(&str, &str)>, no_color: bool) -> (Theme, Vec<String>) {
        let mut warnings = Vec::new();
        let mut raw = RawTheme::default();
        let mut base = name.to_string();
        let user_raw = user.and_then(|(text, origin)| match toml::from_str::<RawTheme>(text) {
            Ok(r) => Some(r),
            Err(e) => {
                warnings.push(format!("{origin}: {e}; ignoring it"));
                None
            }
        });
        if let Some(inh) = user_raw.as_ref().and_then(|u| u.inherits.clone()) {
            base = inh;
        }
        if !BUILTIN.iter().any(|(n, _)| *n == base) {
            warnings.push(format!("theme {base:?} is not built in; using dark"));
            base = "dark".into();
        }
        chain(&base, &mut raw, &mut warnings, 0);
        if let Some(u) = user_raw {
            merge(&mut raw, u);
        }
        let mut styles = BTreeMap::new();
        for (role, rs) in &raw.roles {
            let mut st = Style::default();
            if !no_color {
                if let Some(c) = &rs.fg {
                    match color(c, &raw.palette) {
                        Some(c) => st = st.fg(c),
                        None => warnings.push(format!("theme {base}: {role:?}: bad color {c:?}")),
                    }
                }
                if let Some(c) = &rs.bg {
                    match color(c, &raw.palette) {
                        Some(c) => st = st.bg(c),
                        None => warnings.push(format!("theme {base}: {role:?}: bad color {c:?}")),
                    }
                }
            }
            for m in &rs.modifiers {
                match modifier(m) {
                    Some(m) => st = st.add_modifier(m),
                    None => warnings.push(format!("theme {base}: {role:?}: bad modifier {m:?}")),
                }
            }
            styles.insert(*role, st);
        }
        if no_color {
            // Without color, selection and tabs must still be visible.
            for role in [Role::Selected, Role::TabActive, Role::StatusBar] {
                let st = styles.entry(role).or_default();
                *st = st.add_modifier(Modifier::REVERSED);
            }
        }
        (
            Theme {
                name: base,
                styles,
                no_color,
            },
            warnings,
        )
    }
}

fn chain(name: &str, out: &mut RawTheme, warnings: &mut Vec<String>, depth: u8) {
    let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name) else {
        warnings.push(format!("theme {name:?} is not built in"));
        return;
    };
    let raw: RawTheme = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            warnings.push(format!("built-in theme {name}: {e}"));
            return;
        }
    };
    if let Some(parent) = &raw.inherits {
        if depth < 4 && parent != name {
            chain(parent, out, warnings, depth + 1);
        } else {
            warnings.push(format!("theme {name}: inherits cycle; stopped"));
        }
    }
    merge(out, raw);
}

fn merge(into: &mut RawTheme, from: RawTheme) {
    into.palette.extend(from.palette);
    into.roles.extend(from.roles);
}

fn color(s: &str, palette: &BTreeMap<String, String>) -> Option<Color> {
    let s = palette.get(s).map_or(s, String::as_str);
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() != 6 {
            return None;
        }
        let v = u32::from_str_radix(hex, 16).ok()?;
        return Some(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
    }
    if let Ok(i) = s.parse::<u8>() {
        return Some(Color::Indexed(i));
    }
    Some(match s {
        "reset" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" => Color::Gray,
        "darkgray" => Color::DarkGray,
        "lightred" => Color::LightRed,
        "lightgreen" => Color::LightGreen,
        "lightyellow" => Color::LightYellow,
        "lightblue" => Color::LightBlue,
        "lightmagenta" => Color::LightMagenta,
        "lightcyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return None,
    })
}

fn modifier(s: &str) -> Option<Modifier> {
    Some(match s {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" => Modifier::UNDERLINED,
        "reversed" => Modifier::REVERSED,
        "crossed_out" => Modifier::CROSSED_OUT,
        _ => return None,
    })
}

/// `NO_COLOR` is honoured when present and not empty (no-color.org).
pub fn no_color_from_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_theme_loads_cleanly() {
        for (name, _) in BUILTIN {
            let (t, w) = Theme::load(name, None, false);
            assert!(w.is_empty(), "{name}: {w:?}");
            assert_eq!(t.name, name);
            assert_ne!(t.style(Role::Selected), Style::default(), "{name}");
        }
    }

    #[test]
    fn user_file_merges_and_bad_input_warns() {
        let user =
            "inherits = \"light\"\n[roles]\nok = { fg = \"#ff0000\" }\nwarn = { fg = \"nope\" }\n";
        let (t, w) = Theme::load("dark", Some((user, "user theme")), false);
        assert_eq!(t.name, "light");
        assert_eq!(t.style(Role::Ok).fg, Some(Color::Rgb(255, 0, 0)));
        assert_eq!(w.len(), 1, "{w:?}");
        let (t, w) = Theme::load("dark", Some(("not toml [", "user theme")), false);
        assert_eq!(t.name, "dark");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn no_color_keeps_only_modifiers() {
        let (t, _) = Theme::load("dark", None, true);
        let s = t.style(Role::Selected);
        assert_eq!(s.fg, None);
        assert_eq!(s.bg, None);
        assert!(s.add_modifier.contains(Modifier::REVERSED));
    }
}
