//! The command line as clap reads it: every command, its flags and their help (also the
//! man pages' and completions' source).

use super::{
    accounts_cmd, actions, audit_cmd, auth_cmd, import_cmd, init_cmd, mcp_cmd, parse_sandbox_user,
    permissions_cmd, policy_cmd, service_cmd, store_cmd, team_cmd,
};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dealflow",
    version,
    about = "A trustworthy AI sales agent in your terminal",
    long_about = "A trustworthy AI sales agent in your terminal.\n\nEvery action the agent takes goes through one consent-gated pipeline: review in the Action Center, step-up confirms in Chat, a push to your phone (CIBA) when an external agent acts over MCP."
)]
pub struct Cli {
    /// Config file (default: the user's config dir, config.toml).
    #[arg(long, global = true, env = "DEALFLOW_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run everything on this machine: emulated Auth0, Gmail, Calendar, Slack and demo data.
    #[arg(long, global = true, env = "DEALFLOW_SANDBOX")]
    pub sandbox: bool,
    /// Who the sandbox signs in as: the rep (auth0|demo-user, default) or the team lead
    /// (auth0|team-lead), whose phone then shows only the lead's pushes.
    #[arg(long, global = true, env = "DEALFLOW_SANDBOX_USER", value_name = "USER", value_parser = parse_sandbox_user)]
    pub sandbox_user: Option<crate::sandbox::auth0::model::SandboxUser>,
    /// SQLite store file (overrides store.path).
    #[arg(long, global = true, value_name = "PATH")]
    pub store: Option<String>,
    /// Theme (overrides ui.theme): dark, light, high-contrast.
    #[arg(long, global = true)]
    pub theme: Option<String>,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Set up a real tenant: domain and clients, checked against its OpenID discovery,
    /// written to config.toml; then sign in.
    Init(init_cmd::InitArgs),
    /// Sign in with the OAuth device flow.
    Login,
    /// Sign out and revoke the refresh token.
    Logout,
    /// Show who is signed in.
    Whoami,
    /// Credentials: store the agent client secret in the keyring.
    Auth {
        #[command(subcommand)]
        cmd: auth_cmd::AuthCmd,
    },
    /// Serve the tool registry to external agents over MCP (stdio).
    Mcp {
        #[command(subcommand)]
        cmd: Option<mcp_cmd::McpCmd>,
    },
    /// Run the suggestion engine once: proposals filed through the gate (reviewed ones to
    /// the Action Center, device-gated ones to the next batch, allowed ones run).
    Suggest {
        #[arg(long)]
        json: bool,
    },
    /// Send queued actions to your device as one CIBA batch.
    Batch {
        /// Repeat on an interval, e.g. 15m.
        #[arg(long)]
        every: Option<String>,
    },
    /// Provider accounts in Token Vault: list, connect (loopback or paste-back), disconnect.
    Accounts {
        #[command(subcommand)]
        cmd: accounts_cmd::AccountsCmd,
    },
    /// The action queue, scriptable.
    Actions {
        #[command(subcommand)]
        cmd: actions::ActionsCmd,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        cmd: audit_cmd::AuditCmd,
    },
    /// Show or change permissions (every change is audited).
    Permissions {
        #[command(subcommand)]
        cmd: permissions_cmd::PermissionsCmd,
    },
    /// Trust calibration: figures, nudges, auto-approve rules, and the policy simulator.
    Policy {
        #[command(subcommand)]
        cmd: policy_cmd::PolicyCmd,
    },
    /// The background worker: suggestions and device batches with no terminal open, as a
    /// systemd user service (install, uninstall, status) or in the foreground (run).
    Service {
        #[command(subcommand)]
        cmd: service_cmd::ServiceCmd,
    },
    /// The team policy on a shared Redis store (it only ever tightens members' settings).
    Team {
        #[command(subcommand)]
        cmd: team_cmd::TeamCmd,
    },
    /// The Redis store's credential (kept in the keyring).
    Store {
        #[command(subcommand)]
        cmd: store_cmd::StoreCmd,
    },
    /// Import deals or contacts from a CSV file into the store: checked row by row
    /// first (nothing is written if a row is invalid, unless --skip-invalid), then
    /// written as one batch and audited; re-importing the same file changes nothing.
    Import {
        #[command(subcommand)]
        cmd: import_cmd::ImportCmd,
    },
    /// Pipeline overview: deals and the queue with the gate each action faces.
    Status,
    /// Sandbox tools.
    Sandbox {
        #[command(subcommand)]
        cmd: SandboxCmd,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Check config, keyring, store and reachability, and say what to fix.
    Doctor,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory
    /// (`dealflow man --dir /usr/local/share/man/man1`).
    Man {
        /// Write dealflow.1 and dealflow-<command>.1 here instead of printing.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SandboxCmd {
    /// The sandbox "phone": approve or deny pending CIBA requests.
    Phone {
        /// Sandbox URL (default: $DEALFLOW_SANDBOX_URL, then the URL file a running sandbox writes).
        #[arg(long)]
        url: Option<String>,
        /// Print the pending requests once and exit.
        #[arg(long)]
        list: bool,
        /// Approve request number N (as listed) and exit.
        #[arg(long, value_name = "N", conflicts_with = "deny")]
        approve: Option<usize>,
        /// Deny request number N (as listed) and exit.
        #[arg(long, value_name = "N")]
        deny: Option<usize>,
        /// With --approve: approve only these of the request's actions (as numbered
        /// under it, e.g. 1,3); the token then carries just those.
        #[arg(long, value_name = "LIST", requires = "approve")]
        only: Option<String>,
    },
    /// Move the sandbox's world forward (deals age, go stale): `sandbox advance 2d`. The
    /// suggestion engine notices and proposes.
    Advance {
        /// How far: 12h, 2d, 1w.
        by: String,
    },
    /// Take scopes (or, with none named, the whole grant) back from dealflow in the
    /// running sandbox, as a user would in Google's or Slack's security settings: the
    /// next action that needs one asks for exactly it.
    Revoke {
        #[arg(value_enum)]
        connection: accounts_cmd::Conn,
        /// `gmail.send`, `calendar.events`, `chat:write`, …
        scopes: Vec<String>,
        /// Sandbox URL (default: the URL file a running sandbox writes).
        #[arg(long)]
        url: Option<String>,
    },
    /// The running sandbox's emulated Salesforce: list its Opportunities, or edit one
    /// as another Salesforce user would (`sandbox salesforce 006SB… --stage "Closed
    /// Lost"`), to see dealflow notice a change made since the rep approved.
    Salesforce {
        /// The Opportunity to edit; none lists them.
        id: Option<String>,
        /// A Salesforce stage name ("Negotiation/Review", "Closed Lost", …).
        #[arg(long, requires = "id")]
        stage: Option<String>,
        /// The amount in dollars.
        #[arg(long, requires = "id")]
        amount: Option<f64>,
        /// Sandbox URL (default: the URL file a running sandbox writes).
        #[arg(long)]
        url: Option<String>,
    },
    /// Run a sandbox in the foreground and publish its URL for `sandbox phone`.
    Serve {
        #[arg(long)]
        port: Option<u16>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate the configuration and print where each setting came from.
    Check,
    /// Print the config file path in use.
    Path,
}
