//! Validation of the raw configuration into [`Config`]: durations, allowed values,
//! URLs and the Salesforce stage map, each error pointing at who set the key last.

use super::keys::closest;
use super::locate::location_of;
use super::{
    AUTH_METHODS, Config, ConfigError, LEVELS, MAX_DURATION, MAX_UNDO_SEND, Override, RawConfig,
    THEMES, cleartext_off_loopback, parse_duration,
};
use std::path::PathBuf;
use std::time::Duration;

impl Config {
    pub(super) fn validate(
        raw: RawConfig,
        file: Option<PathBuf>,
        text: Option<&str>,
        overrides: &[Override],
    ) -> Result<Config, ConfigError> {
        // Point at whoever set the key last: a flag, then env, then the file's line.
        let locate = |section: &str, key: &str| -> String {
            if let Some(o) = overrides
                .iter()
                .rev()
                .find(|o| o.section == section && o.key == key)
            {
                return location_of(&o.source);
            }
            match (&file, text) {
                (Some(p), Some(t)) => {
                    let mut in_section = false;
                    for (i, line) in t.lines().enumerate() {
                        let l = line.trim();
                        if l.starts_with('[') {
                            in_section = l.trim_matches(|c| c == '[' || c == ']').trim() == section;
                        } else if in_section && l.split('=').next().map(str::trim) == Some(key) {
                            return format!("{}:{}", p.display(), i + 1);
                        }
                    }
                    p.display().to_string()
                }
                _ => "configuration".into(),
            }
        };
        let dur = |section: &str, key: &str, v: &str| -> Result<Duration, ConfigError> {
            let d = parse_duration(v).ok_or_else(|| ConfigError {
                location: locate(section, key),
                message: format!("{section}.{key}: {v:?} is not a duration"),
                hint: Some("write it like \"45s\", \"15m\" or \"2h\"".into()),
            })?;
            // Every duration here is added to a clock somewhere: a huge one would
            // overflow it (and no wait in dealflow is meant to last a month).
            if d > MAX_DURATION {
                return Err(ConfigError {
                    location: locate(section, key),
                    message: format!("{section}.{key}: {v:?} is longer than 30 days"),
                    hint: Some("write it like \"45s\", \"15m\" or \"2h\"".into()),
                });
            }
            Ok(d)
        };
        let one_of = |section: &str, key: &str, v: &str, allowed: &[&str]| {
            if allowed.contains(&v) {
                Ok(())
            } else {
                let owned: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
                let hint = match closest(v, &owned) {
                    Some(c) => format!("did you mean {c:?}? allowed: {}", allowed.join(", ")),
                    None => format!("allowed: {}", allowed.join(", ")),
                };
                Err(ConfigError {
                    location: locate(section, key),
                    message: format!("{section}.{key}: {v:?} is not allowed"),
                    hint: Some(hint),
                })
            }
        };
        let batch_window = dur("batch", "window", &raw.batch.window)?;
        let mcp_wait_bound = dur("mcp", "wait_bound", &raw.mcp.wait_bound)?;
        let idle_lock = dur("ui", "idle_lock", &raw.ui.idle_lock)?;
        let undo_send = dur("ui", "undo_send", &raw.ui.undo_send)?;
        if undo_send > MAX_UNDO_SEND {
            return Err(ConfigError {
                location: locate("ui", "undo_send"),
                message: format!("ui.undo_send: {:?} is longer than 5m", raw.ui.undo_send),
                hint: Some(
                    "the outbox holds a send only while the TUI runs; use \"10s\"–\"1m\", or \"0s\" for none"
                        .into(),
                ),
            });
        }
        let suggest_every = dur("agent", "suggest_every", &raw.agent.suggest_every)?;
        if suggest_every < Duration::from_secs(60) || suggest_every > Duration::from_secs(86_400) {
            return Err(ConfigError {
                location: locate("agent", "suggest_every"),
                message: format!(
                    "agent.suggest_every: {:?} is out of range",
                    raw.agent.suggest_every
                ),
                hint: Some("use 1m to 24h, e.g. \"15m\"".into()),
            });
        }
        let batch_every = dur("batch", "every", &raw.batch.every)?;
        if batch_every < Duration::from_secs(60) || batch_every > Duration::from_secs(86_400) {
            return Err(ConfigError {
                location: locate("batch", "every"),
                message: format!("batch.every: {:?} is out of range", raw.batch.every),
                hint: Some("use 1m to 24h, e.g. \"15m\"".into()),
            });
        }
        let llm_timeout = dur("llm", "timeout", &raw.llm.timeout)?;
        if llm_timeout.is_zero() {
            return Err(ConfigError {
                location: locate("llm", "timeout"),
                message: "llm.timeout: 0 would fail every reply".into(),
                hint: Some("e.g. \"120s\"".into()),
            });
        }
        one_of("ui", "theme", &raw.ui.theme, &THEMES)?;
        one_of(
            "auth",
            "agent_auth_method",
            &raw.auth.agent_auth_method,
            &AUTH_METHODS,
        )?;
        one_of("log", "level", &raw.log.level, &LEVELS)?;
        if raw.batch.concurrency == 0 || raw.batch.concurrency > 64 {
            return Err(ConfigError {
                location: locate("batch", "concurrency"),
                message: format!(
                    "batch.concurrency: {} is out of range",
                    raw.batch.concurrency
                ),
                hint: Some("use 1 to 64".into()),
            });
        }
        let crm = match raw.crm.provider.as_str() {
            "salesforce" => crate::core::domain::CrmProvider::Salesforce,
            p => {
                one_of("crm", "provider", p, &["local", "salesforce"])?;
                crate::core::domain::CrmProvider::Local
            }
        };
        let sf = &raw.crm.salesforce;
        for (key, v) in [
            ("login_url", sf.login_url.as_str()),
            ("instance_url", sf.instance_url.as_str()),
        ] {
            let bad = if v.is_empty() {
                (key == "login_url").then(|| "is empty".to_string())
            } else if let Some(why) = cleartext_off_loopback(v) {
                Some(why)
            } else if !v.starts_with("https://") && !v.starts_with("http://") {
                Some(format!("{v:?} is not an https:// URL"))
            } else {
                None
            };
            if let Some(why) = bad {
                return Err(ConfigError {
                    location: locate("crm.salesforce", key),
                    message: format!("crm.salesforce.{key}: {why}"),
                    hint: Some("e.g. https://login.salesforce.com, or https://test.salesforce.com for a sandbox org".into()),
                });
            }
        }
        let field = &sf.external_id_field;
        if !(field.ends_with("__c")
            && field.len() > 3
            && field.starts_with(|c: char| c.is_ascii_alphabetic())
            && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(ConfigError {
                location: locate("crm.salesforce", "external_id_field"),
                message: format!(
                    "crm.salesforce.external_id_field: {field:?} is not a custom field's API name"
                ),
                hint: Some(
                    "a custom field's API name ends in __c, e.g. Dealflow_Action_Id__c".into(),
                ),
            });
        }
        // The key may be quoted ("Closed Won" = …): find its line either way.
        let stage_line = |name: &str| match (&file, text) {
            (Some(p), Some(t)) => t
                .lines()
                .position(|l| l.split('=').next().map(|k| k.trim().trim_matches('"')) == Some(name))
                .map_or(p.display().to_string(), |i| {
                    format!("{}:{}", p.display(), i + 1)
                }),
            _ => "configuration".into(),
        };
        let mut crm_stages = Vec::new();
        for (name, stage) in &sf.stages {
            let Some(s) = crate::core::domain::Stage::parse(stage) else {
                let allowed: Vec<&str> = crate::core::domain::Stage::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect();
                return Err(ConfigError {
                    location: stage_line(name),
                    message: format!(
                        "crm.salesforce.stages.{name:?}: {stage:?} is not a dealflow stage"
                    ),
                    hint: Some(format!("allowed: {}", allowed.join(", "))),
                });
            };
            // A Salesforce name that means closed must stay a close: mapped to an open
            // stage, an update_deal to that stage would close the deal past the
            // close-won rule.
            let closes = crate::connectors::salesforce::StageMap::standard()
                .to_dealflow(name)
                .is_some_and(|st| st.is_closed())
                || name.to_ascii_lowercase().starts_with("closed");
            if closes && !s.is_closed() {
                return Err(ConfigError {
                    location: stage_line(name),
                    message: format!(
                        "crm.salesforce.stages.{name:?}: a closed stage cannot mean {stage:?}"
                    ),
                    hint: Some("map it to closed_won or closed_lost".into()),
                });
            }
            crm_stages.push((name.clone(), s));
        }
        for (section, key, v) in [
            ("auth", "domain", raw.auth.domain.as_str()),
            ("llm", "base_url", raw.llm.base_url.as_str()),
        ] {
            if let Some(why) = cleartext_off_loopback(v) {
                return Err(ConfigError {
                    location: locate(section, key),
                    message: format!("{section}.{key}: {why}"),
                    hint: Some(
                        "use https:// (http:// is for a server on this machine: 127.0.0.1, ::1, localhost)"
                            .into(),
                    ),
                });
            }
        }
        if !raw.store.url.is_empty()
            && !raw.store.url.starts_with("redis://")
            && !raw.store.url.starts_with("rediss://")
        {
            return Err(ConfigError {
                location: locate("store", "url"),
                message: format!("store.url: {:?} is not a redis:// URL", raw.store.url),
                hint: Some("leave it empty for the embedded SQLite store".into()),
            });
        }
        Ok(Config {
            raw,
            file,
            batch_window,
            mcp_wait_bound,
            idle_lock,
            undo_send,
            suggest_every,
            batch_every,
            crm,
            crm_stages,
        })
    }
}
