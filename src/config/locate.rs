//! Pointing at where a bad setting sits: a source's location, a byte offset's line and
//! column and `[section]`, and the error for a file that does not parse.

use super::keys::{closest, keys_of, section_names};
use super::{ConfigError, Source};
use std::path::Path;

pub(super) fn location_of(source: &Source) -> String {
    match source {
        Source::File(p) => p.display().to_string(),
        Source::Env(v) => format!("environment variable {v}"),
        Source::Flag(f) => format!("flag {f}"),
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// The `[section]` header in force at `offset`.
pub(crate) fn section_at(text: &str, offset: usize) -> Option<String> {
    text[..offset.min(text.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
}

pub(super) fn file_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let span = err.span().unwrap_or(0..0);
    let (line, col) = line_col(text, span.start);
    let location = format!("{}:{line}:{col}", path.display());
    let msg = err.message().trim().to_string();
    // serde's wording: "unknown field `x`, expected one of `a`, `b`" (or "expected `a`").
    if let Some(field) = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        let section = section_at(text, span.start);
        let (known, what) = match &section {
            Some(s) if !keys_of(s).is_empty() => (keys_of(s), format!("[{s}]")),
            _ => (section_names(), "the top level".to_string()),
        };
        let key = match &section {
            Some(s) => format!("{s}.{field}"),
            None => field.to_string(),
        };
        let hint = match closest(field, &known) {
            Some(c) => format!("did you mean `{c}`? {what} takes: {}", known.join(", ")),
            None => format!("{what} takes: {}", known.join(", ")),
        };
        return ConfigError {
            location,
            message: format!("unknown key `{key}`"),
            hint: Some(hint),
        };
    }
    // Name the key the error sits on, when the span is on a `key = value` line.
    let line_text = text[span.start.min(text.len())..]
        .lines()
        .next()
        .map(|rest| {
            let start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            format!("{}{rest}", &text[start..span.start.min(text.len())])
        })
        .unwrap_or_default();
    let message = match line_text.split_once('=') {
        Some((key, _)) if !line_text.trim_start().starts_with('[') => {
            let key = key.trim();
            match section_at(text, span.start) {
                Some(s) => format!("{s}.{key}: {msg}"),
                None => format!("{key}: {msg}"),
            }
        }
        _ => msg,
    };
    ConfigError {
        location,
        message,
        hint: Some("see config.example.toml for every key and its type".into()),
    }
}
