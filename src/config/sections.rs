//! The raw `config.toml` sections as serde reads them (unknown keys rejected) and their
//! defaults: the shape of the file, before [`super::Config`] validates it.

use serde::{Deserialize, Serialize};

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
