//! Configuration: `config.toml`, overridden by `DEALFLOW_<SECTION>_<KEY>` environment
//! variables, overridden by command-line flags. Parsed into raw serde types that reject
//! unknown keys, then validated into [`Config`]. Every error names its source (file and
//! line, or variable, or flag), the key, and a hint.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod keys;
mod locate;
mod sections;
mod validate;

pub(crate) use keys::closest;
pub use keys::{all_keys, env_overrides};
use keys::{keys_of, section_names};
use locate::{file_error, location_of};
pub(crate) use locate::{line_col, section_at};
pub use sections::{
    AgentSection, AuthSection, BatchSection, CrmSection, LlmSection, LogSection, McpSection,
    RawConfig, SalesforceSection, StoreSection, UiSection,
};

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
