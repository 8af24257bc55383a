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
/// How many colours the terminal shows. 24-bit codes sent to a terminal that does not
/// take them come out as the wrong colours or as garbage (`screen`, an old `xterm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    TrueColor,
    Ansi256,
    Ansi16,
}

/// The depth the environment announces: `COLORTERM=truecolor|24bit`, else a `TERM`
/// ending in `256color`, else the 16 basic colours.
pub fn depth_from(colorterm: Option<&str>, term: Option<&str>) -> Depth {
    match (colorterm, term) {
        (Some(c), _) if c.eq_ignore_ascii_case("truecolor") || c.eq_ignore_ascii_case("24bit") => {
            Depth::TrueColor
        }
        (_, Some(t)) if t.contains("256color") || t.contains("direct") => Depth::Ansi256,
        _ => Depth::Ansi16,
    }
}

pub fn depth_from_env() -> Depth {
    depth_from(
        std::env::var("COLORTERM").ok().as_deref(),
        std::env::var("TERM").ok().as_deref(),
    )
}

/// The nearest colour `depth` can show.
pub fn downsample(c: Color, depth: Depth) -> Color {
    let Color::Rgb(r, g, b) = c else { return c };
    match depth {
        Depth::TrueColor => c,
        Depth::Ansi256 => {
            // The 6×6×6 cube (16..231) or the grey ramp (232..255), whichever is closer.
            let level = |v: u8| ((v as u16 * 5 + 127) / 255) as u8;
            let (lr, lg, lb) = (level(r), level(g), level(b));
            let cube = 16 + 36 * lr + 6 * lg + lb;
            let step = |l: u8| if l == 0 { 0 } else { 55 + 40 * l as i32 };
            let cube_err =
                sq(r as i32 - step(lr)) + sq(g as i32 - step(lg)) + sq(b as i32 - step(lb));
            let avg = (r as i32 + g as i32 + b as i32) / 3;
            let grey = ((avg - 8).max(0) / 10).min(23) as u8;
            let gv = 8 + 10 * grey as i32;
            let grey_err = sq(r as i32 - gv) + sq(g as i32 - gv) + sq(b as i32 - gv);
            Color::Indexed(if grey_err < cube_err {
                232 + grey
            } else {
                cube
            })
        }
        Depth::Ansi16 => {
            const BASIC: [(Color, (i32, i32, i32)); 16] = [
                (Color::Black, (0, 0, 0)),
                (Color::Red, (205, 0, 0)),
                (Color::Green, (0, 205, 0)),
                (Color::Yellow, (205, 205, 0)),
                (Color::Blue, (0, 0, 238)),
                (Color::Magenta, (205, 0, 205)),
                (Color::Cyan, (0, 205, 205)),
                (Color::Gray, (229, 229, 229)),
                (Color::DarkGray, (127, 127, 127)),
                (Color::LightRed, (255, 0, 0)),
                (Color::LightGreen, (0, 255, 0)),
                (Color::LightYellow, (255, 255, 0)),
                (Color::LightBlue, (92, 92, 255)),
                (Color::LightMagenta, (255, 0, 255)),
                (Color::LightCyan, (0, 255, 255)),
                (Color::White, (255, 255, 255)),
            ];
            let (r, g, b) = (r as i32, g as i32, b as i32);
            BASIC
                .iter()
                .min_by_key(|(_, (br, bg, bb))| sq(r - br) + sq(g - bg) + sq(b - bb))
                .map_or(c, |(c, _)| *c)
        }
    }
}

fn sq(v: i32) -> i32 {
    v * v
}

impl Theme {
    /// This theme as a terminal of `depth` can show it.
    pub fn with_depth(mut self, depth: Depth) -> Theme {
        for st in self.styles.values_mut() {
            st.fg = st.fg.map(|c| downsample(c, depth));
            st.bg = st.bg.map(|c| downsample(c, depth));
        }
        self
    }
}

pub fn no_color_from_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_follow_what_the_terminal_announces() {
        assert_eq!(
            depth_from(Some("truecolor"), Some("xterm")),
            Depth::TrueColor
        );
        assert_eq!(depth_from(None, Some("xterm-256color")), Depth::Ansi256);
        assert_eq!(depth_from(None, Some("screen")), Depth::Ansi16);
        assert_eq!(depth_from(None, None), Depth::Ansi16);
        assert_eq!(
            downsample(Color::Rgb(255, 0, 0), Depth::Ansi256),
            Color::Indexed(196)
        );
        assert_eq!(
            downsample(Color::Rgb(128, 128, 128), Depth::Ansi256),
            Color::Indexed(244)
        );
        assert_eq!(
            downsample(Color::Rgb(250, 10, 10), Depth::Ansi16),
            Color::LightRed
        );
        assert_eq!(downsample(Color::Blue, Depth::Ansi16), Color::Blue);
        let (t, _) = Theme::load("dark", None, false);
        let t = t.with_depth(Depth::Ansi16);
        for role in [Role::Base, Role::Selected, Role::Accent, Role::Warn] {
            let st = t.style(role);
            for c in [st.fg, st.bg].into_iter().flatten() {
                assert!(
                    !matches!(c, Color::Rgb(..) | Color::Indexed(_)),
                    "{role:?}: {c:?}"
                );
            }
        }
    }

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
