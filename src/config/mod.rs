//! Configuration: `config.toml`, overridden by `DEALFLOW_<SECTION>_<KEY>` environment
//! variables, overridden by command-line flags. Parsed into raw serde types that reject
//! unknown keys, then validated into [`Config`]. Every error names its source (file and
//! line, or variable, or flag), the key, and a hint.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite file; empty means the user's data directory.
    pub path: String,
    /// `redis://…` selects the Redis backend (team / shared box).
    pub url: String,
    /// Redis only: the team whose policy tightens this user's permissions (empty = none).
    pub team: String,
    /// Redis over TLS only: a PEM file of the CA to trust (a private CA) instead of the
    /// system's roots. Empty: the system's.
    pub ca_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    pub domain: String,
    pub client_id: String,
    pub agent_client_id: String,
    pub audience: String,
    pub agent_auth_method: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmSection {
    pub model: String,
    pub base_url: String,
    pub max_tokens: u32,
    pub max_iterations: u32,
    pub timeout: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiSection {
    pub theme: String,
    pub mouse: bool,
    pub notify: bool,
    pub idle_lock: String,
    pub undo_send: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSection {
    pub window: String,
    pub concurrency: u32,
    /// How often the background service (`dealflow service run`) gathers the device
    /// queue into one push.
    pub every: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpSection {
    pub wait_bound: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSection {
    /// How often the suggestion engine looks at the pipeline while the TUI runs (it also
    /// looks at start and when the pipeline changes).
    pub suggest_every: String,
    /// Tokens the suggestion engine may spend on the model per day (UTC); when spent it
    /// pauses until tomorrow and says so. 0: no limit.
    pub daily_token_budget: u64,
}

impl Default for AgentSection {
    fn default() -> Self {
        AgentSection {
            suggest_every: "15m".into(),
            daily_token_budget: 500_000,
        }
    }
}

/// Where the rep's deals live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrmSection {
    /// "local" (dealflow's own store) or "salesforce" (through Token Vault).
    pub provider: String,
    pub salesforce: SalesforceSection,
}

impl Default for CrmSection {
    fn default() -> Self {
        CrmSection {
            provider: "local".into(),
            salesforce: SalesforceSection::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SalesforceSection {
    /// The identity service that says which instance a token belongs to
    /// (`https://test.salesforce.com` for a sandbox org).
    pub login_url: String,
    /// The org's instance (`https://<org>.my.salesforce.com`), used instead of asking
    /// the identity service. Empty: ask.
    pub instance_url: String,
    /// The Opportunity External ID field that carries dealflow's action id, so a create
    /// is made once however often it is retried.
    pub external_id_field: String,
    /// Salesforce stage name → dealflow stage, before the standard sales process's.
    pub stages: std::collections::BTreeMap<String, String>,
}

impl Default for SalesforceSection {
    fn default() -> Self {
        SalesforceSection {
            login_url: "https://login.salesforce.com".into(),
            instance_url: String::new(),
            external_id_field: crate::connectors::salesforce::EXTERNAL_ID_FIELD.into(),
            stages: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    pub level: String,
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub store: StoreSection,
    pub auth: AuthSection,
    pub llm: LlmSection,
    pub ui: UiSection,
    pub batch: BatchSection,
    pub mcp: McpSection,
    pub log: LogSection,
    pub agent: AgentSection,
    pub crm: CrmSection,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            domain: String::new(),
            client_id: String::new(),
            agent_client_id: String::new(),
            audience: "https://api.dealflow.example".into(),
            agent_auth_method: "client_secret_post".into(),
        }
    }
}

impl Default for LlmSection {
    fn default() -> Self {
        LlmSection {
            model: "claude-sonnet-4-5".into(),
            base_url: "https://api.anthropic.com".into(),
            max_tokens: 2048,
            max_iterations: 8,
            timeout: "120s".into(),
        }
    }
}

impl Default for UiSection {
    fn default() -> Self {
        UiSection {
            theme: "dark".into(),
            mouse: false,
            notify: true,
            idle_lock: "15m".into(),
            undo_send: "10s".into(),
        }
    }
}

impl Default for BatchSection {
    fn default() -> Self {
        BatchSection {
            window: "10m".into(),
            concurrency: 4,
            every: "15m".into(),
        }
    }
}

impl Default for McpSection {
    fn default() -> Self {
        McpSection {
            wait_bound: "45s".into(),
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            file: String::new(),
        }
    }
}

/// Validated configuration: durations parsed, paths resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub raw: RawConfig,
    /// The file it came from, if any.
    pub file: Option<PathBuf>,
    pub batch_window: Duration,
    pub mcp_wait_bound: Duration,
    pub idle_lock: Duration,
    /// How long an irreversible send approved in the TUI waits in the outbox (0: none).
    pub undo_send: Duration,
    /// `agent.suggest_every`.
    pub suggest_every: Duration,
    /// `batch.every`.
    pub batch_every: Duration,
    /// `crm.provider`.
    pub crm: crate::core::domain::CrmProvider,
    /// `crm.salesforce.stages`, validated: Salesforce name → dealflow stage.
    pub crm_stages: Vec<(String, crate::core::domain::Stage)>,
}

/// The longest duration any setting takes.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);

/// The longest outbox wait `ui.undo_send` takes.
pub const MAX_UNDO_SEND: Duration = Duration::from_secs(300);

pub const THEMES: [&str; 3] = ["dark", "light", "high-contrast"];
const AUTH_METHODS: [&str; 2] = ["client_secret_post", "private_key_jwt"];
const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    File(PathBuf),
    Env(String),
    Flag(String),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {message}{hint}", hint = hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
pub struct ConfigError {
    /// "path:line:col", "environment variable X" or "flag --x".
    pub location: String,
    pub message: String,
    pub hint: Option<String>,
}

/// One override from the environment or a flag: `section.key = value`.
#[derive(Debug, Clone)]
pub struct Override {
    pub section: String,
    pub key: String,
    pub value: String,
    pub source: Source,
}

fn section_names() -> Vec<String> {
    match toml::Value::try_from(RawConfig::default()) {
        Ok(toml::Value::Table(t)) => t.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The keys of `section`, which may be dotted (`crm.salesforce`).
fn keys_of(section: &str) -> Vec<String> {
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

fn location_of(source: &Source) -> String {
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

fn file_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
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

/// Why `url` must not be used: `http://` to anything but this machine would carry
/// tokens, refresh tokens, the agent secret or the API key in clear text.
pub fn cleartext_off_loopback(url: &str) -> Option<String> {
    let rest = url.trim().strip_prefix("http://")?;
    let parsed = url::Url::parse(&format!("http://{rest}")).ok()?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    (!loopback).then(|| {
        format!(
            "{url:?} is plain http:// to another machine: tokens and secrets would cross the network in clear text"
        )
    })
}

/// Parses a duration like "45s", "15m", "2h", "500ms", "2d" or "1w".
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        "d" => Some(Duration::from_secs(n.checked_mul(86_400)?)),
        "w" => Some(Duration::from_secs(n.checked_mul(7 * 86_400)?)),
        _ => None,
    }
}

impl Config {
    /// Loads from an optional file (text given), then applies overrides in order.
    pub fn from_parts(
        file: Option<(&Path, &str)>,
        overrides: &[Override],
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some((path, text)) => {
                // Parse into the typed form first so errors carry exact spans.
                toml::from_str::<RawConfig>(text).map_err(|e| file_error(path, text, &e))?;
                text.parse::<toml::Table>()
                    .map_err(|e| file_error(path, text, &e))?
            }
            None => toml::Table::new(),
        };
        for o in overrides {
            let location = location_of(&o.source);
            let sections = section_names();
            if !sections.contains(&o.section) {
                return Err(ConfigError {
                    location,
                    message: format!("unknown section `{}`", o.section),
                    hint: Some(format!("sections: {}", sections.join(", "))),
                });
            }
            let known = keys_of(&o.section);
            if !known.contains(&o.key) {
                return Err(ConfigError {
                    location,
                    message: format!("unknown key `{}.{}`", o.section, o.key),
                    hint: Some(match closest(&o.key, &known) {
                        Some(c) => format!(
                            "did you mean `{c}`? [{}] takes: {}",
                            o.section,
                            known.join(", ")
                        ),
                        None => format!("[{}] takes: {}", o.section, known.join(", ")),
                    }),
                });
            }
            // A value that reads as TOML (true, 4) keeps its type; anything else is a string.
            let value = format!("v = {}", o.value)
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(o.value.clone()));
            let sec = table
                .entry(o.section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = sec {
                t.insert(o.key.clone(), value);
            }
            let check: Result<RawConfig, _> = toml::Value::Table(table.clone()).try_into();
            if let Err(e) = check {
                return Err(ConfigError {
                    location,
                    message: format!("{}.{}: {}", o.section, o.key, e.message().trim()),
                    hint: Some("see config.example.toml for the type of each key".into()),
                });
            }
        }
        let raw: RawConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError {
                    location: file.map_or("configuration".into(), |(p, _)| p.display().to_string()),
                    message: e.message().trim().to_string(),
                    hint: None,
                })?;
        Self::validate(
            raw,
            file.map(|(p, _)| p.to_path_buf()),
            file.map(|(_, t)| t),
            overrides,
        )
    }

    fn validate(
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

    /// Loads the file at `path` (an explicit path must exist; the default may not).
    pub fn load(
        path: Option<&Path>,
        explicit: bool,
        overrides: &[Override],
    ) -> Result<Config, ConfigError> {
        match path {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    location: p.display().to_string(),
                    message: format!("cannot read: {e}"),
                    hint: None,
                })?;
                Self::from_parts(Some((p, &text)), overrides)
            }
            Some(p) if explicit => Err(ConfigError {
                location: p.display().to_string(),
                message: "no such file".into(),
                hint: Some("copy config.example.toml there, or drop --config".into()),
            }),
            _ => Self::from_parts(None, overrides),
        }
    }
}

/// The user's standard directories.
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("dev", "dealflow", "dealflow")
}

/// Where dealflow keeps its own state (log, service status, locks, the sandbox's file
/// keyring): the state dir where the platform has one (XDG_STATE_HOME), else the data dir.
pub fn state_dir() -> Option<PathBuf> {
    let d = project_dirs()?;
    Some(d.state_dir().unwrap_or(d.data_dir()).to_path_buf())
}

pub fn default_config_path() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("config.toml"))
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
