//! `dealflow accounts list|connect|disconnect`: the provider accounts in Token Vault.
//!
//! Connecting runs the My Account connect flow: the URL opens in a browser, and the
//! redirect comes back either to a loopback listener or — over SSH, where the browser is
//! on another machine — pasted back here. Disconnecting sets dealflow's own flag, checked
//! before every exchange (deleting the vault's tokenset does not revoke the provider's
//! grant); `--forget` also deletes the connected account at Auth0.

use super::{Ctx, exec, local_actor};
use crate::auth::connect::{ConnectClient, LoopbackRedirect, parse_redirect, short_scope};
use crate::core::audit::NewAuditEntry;
use crate::core::domain::{Connection, Surface};
use crate::core::permissions::PermissionChange;
use crate::wall::now_ms;
use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use std::process::ExitCode;
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Subcommand)]
pub enum AccountsCmd {
    /// Connected accounts, their granted scopes, and dealflow's own connect flag.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Connect (or grant more scopes to) an account.
    Connect {
        #[arg(value_enum)]
        connection: Conn,
        /// Scopes to add (`gmail.send` or the full URL; default: every scope dealflow
        /// uses). What the account already grants is kept: the connect asks for both.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// Stop dealflow from using an account (audited); --forget also deletes it at Auth0.
    Disconnect {
        #[arg(value_enum)]
        connection: Conn,
        #[arg(long)]
        forget: bool,
    },
}

/// Either name works: the short one, or the Auth0 connection name that errors and
/// `accounts list` show.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Conn {
    #[value(alias = "google-oauth2")]
    Google,
    #[value(alias = "sign-in-with-slack")]
    Slack,
    /// The CRM, when `[crm] provider = "salesforce"`.
    Salesforce,
}

impl From<Conn> for Connection {
    fn from(c: Conn) -> Connection {
        match c {
            Conn::Google => Connection::Google,
            Conn::Slack => Connection::Slack,
            Conn::Salesforce => Connection::Salesforce,
        }
    }
}

fn set_connected(ctx: &Ctx, connection: Connection, connected: bool) -> Result<String> {
    let (_, entry) = ctx.store.change_permissions(
        &PermissionChange::SetConnected {
            connection,
            connected,
        },
        NewAuditEntry {
            ts: now_ms(),
            actor: local_actor(),
            surface: Some(Surface::Cli),
            event: "permissions.changed".into(),
            action_id: None,
            outcome: "ok".into(),
            detail: serde_json::json!({}),
        },
    )?;
    Ok(entry
        .detail
        .get("summary")
        .and_then(|s| s.as_str())
        .unwrap_or("")
        .to_string())
}

pub fn run(ctx: &Ctx, cmd: AccountsCmd) -> Result<ExitCode> {
    let rt = exec::runtime()?;
    rt.block_on(async {
        let wired = exec::wire(ctx).await?;
        let cc = ConnectClient::new(&wired.session);
        match cmd {
            AccountsCmd::List { json } => {
                let perms = ctx.store.load_permissions()?;
                let accounts = cc.list().await?;
                if json {
                    let rows: Vec<_> = accounts
                        .iter()
                        .map(|a| {
                            serde_json::json!({
                                "id": a.id,
                                "connection": a.connection,
                                "scopes": a.scopes,
                                "dealflow_disconnected": perms.disconnected.iter().any(|c| c.as_str() == a.connection),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else if accounts.is_empty() {
                    println!("no connected accounts: run `dealflow accounts connect google` (or slack)");
                }
                for a in accounts.iter().filter(|_| !json) {
                    let off = perms.disconnected.iter().any(|c| c.as_str() == a.connection);
                    let short: Vec<&str> = a.scopes.iter().map(|s| short_scope(s)).collect();
                    println!(
                        "{:<20} {}{}",
                        a.connection,
                        short.join(" "),
                        if off { "  [disconnected in dealflow]" } else { "" }
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            AccountsCmd::Connect { connection, scopes } => {
                let connection: Connection = connection.into();
                let plan = cc.plan(connection, &scopes).await?;
                eprintln!("connect {}: {}", connection.as_str(), plan.describe());
                let refs: Vec<&str> = plan.request.iter().map(String::as_str).collect();
                let lb = LoopbackRedirect::bind()
                    .await
                    .context("cannot listen on 127.0.0.1 for the redirect")?;
                let start = cc.start(connection, &refs, &lb.redirect_uri).await?;
                eprintln!("Open this in a browser to connect {}:", connection.as_str());
                eprintln!("  {}", start.connect_url);
                eprintln!(
                    "Waiting for the redirect. Browser on another machine (SSH)? Paste the address it ends on here:"
                );
                let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                let (code, state) = tokio::select! {
                    r = lb.wait() => r?,
                    line = lines.next_line() => {
                        let line = line?.unwrap_or_default();
                        match parse_redirect(line.trim()) {
                            Some(pair) => pair,
                            None => bail!("that address has no connect_code and state: paste the full URL the browser ended on"),
                        }
                    }
                };
                let acct = cc.complete(&start, &code, &state).await?;
                println!("connected {}: {}", acct.connection, acct.scopes.join(" "));
                if ctx.store.load_permissions()?.disconnected.contains(&connection) {
                    println!("{} (audited)", set_connected(ctx, connection, true)?);
                }
                Ok(ExitCode::SUCCESS)
            }
            AccountsCmd::Disconnect { connection, forget } => {
                let connection: Connection = connection.into();
                let summary = set_connected(ctx, connection, false)?;
                println!("{summary} (audited)");
                if forget {
                    let accounts = cc.list().await?;
                    match accounts.iter().find(|a| a.connection == connection.as_str()) {
                        Some(a) => {
                            cc.delete(&a.id).await?;
                            println!("deleted the connected account at Auth0 ({})", a.id);
                        }
                        None => println!("no connected account at Auth0 to delete"),
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
