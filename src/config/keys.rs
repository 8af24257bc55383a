//! The sections and keys the configuration accepts, read off the defaults: the list for
//! docs and tests, the `DEALFLOW_<SECTION>_<KEY>` overrides, and "did you mean" hints.

use super::{Override, RawConfig, Source};

pub(super) fn section_names() -> Vec<String> {
    match toml::Value::try_from(RawConfig::default()) {
        Ok(toml::Value::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The keys of `section`, which may be dotted (`crm.salesforce`).
pub(super) fn keys_of(section: &str) -> Vec<String> {
    let Ok(mut v) = toml::Value::try_from(RawConfig::default()) else {
        return Vec::new();
    };
    for part in section.split('.') {
        v = match v {
            toml::Value::Table(mut t) => match t.remove(part) {
                Some(inner) => inner,
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        };
    }
    match v {
        toml::Value::Table(s) => s.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a String>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.clone())
}

/// Reads `DEALFLOW_<SECTION>_<KEY>` variables for known sections. Others (DEALFLOW_CONFIG…)
/// are not settings and are left alone.
pub fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let sections = section_names();
    let mut out = Vec::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("DEALFLOW_") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let Some((section, key)) = lower.split_once('_') else {
            continue;
        };
        if sections.iter().any(|s| s == section) {
            out.push(Override {
                section: section.into(),
                key: key.into(),
                value,
                source: Source::Env(name.clone()),
            });
        }
    }
    out
}

/// Every `section.key` the configuration accepts, for docs and tests.
pub fn all_keys() -> Vec<String> {
    fn walk(prefix: &str, out: &mut Vec<String>) {
        for k in keys_of(prefix) {
            let path = format!("{prefix}.{k}");
            // A nested table (`crm.salesforce`) is a section of its own, not a key; an
            // open map (`crm.salesforce.stages`) is a key whose entries are the user's.
            let nested = keys_of(&path);
            if nested.is_empty() {
                out.push(path);
            } else {
                walk(&path, out);
            }
        }
    }
    let mut out = Vec::new();
    for s in section_names() {
        walk(&s, &mut out);
    }
    out
}
