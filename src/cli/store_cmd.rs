//! `dealflow store credential`: the Redis user and password this user's store connects
//! with, read from stdin into the keyring. Never in `config.toml` or the URL, where a
//! backup, a screen share or a support paste would carry it.

use crate::auth::keyring::SecretStore;
use crate::config::Config;
use crate::store::redis::{Credential, member_user};
use anyhow::{Result, bail};
use clap::Subcommand;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

/// The keyring entry: {"user": …, "password": …}.
pub const CREDENTIAL_ENTRY: &str = "redis-credential";

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Store the Redis ACL password (one line on stdin) in the keyring, with its user:
    /// by default your member user in `store.team` (`dealflow:<team>:<your sub>`), as
    /// `dealflow team add-member` made it.
    Credential {
        /// The ACL user, if not your member user (e.g. the Redis admin's).
        #[arg(long)]
        user: Option<String>,
    },
}

pub fn run(config: &Config, cmd: StoreCmd) -> Result<ExitCode> {
    match cmd {
        StoreCmd::Credential { user } => {
            let user = match user {
                Some(u) => u,
                None => {
                    let sub = super::redis_namespace()?;
                    let team = &config.raw.store.team;
                    if team.is_empty() {
                        bail!("store.team is empty: name the team, or give the user with --user");
                    }
                    member_user(team, &sub)
                }
            };
            let password = read_password("the Redis password")?;
            let keyring = match crate::runtime::seal::process_keyring() {
                Some(k) => k,
                None => crate::auth::keyring::open_default()?,
            };
            let cred = serde_json::json!({ "user": user, "password": password }).to_string();
            keyring.set(CREDENTIAL_ENTRY, &cred)?;
            println!(
                "Redis credential for user {user} stored in: {}",
                keyring.describe()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line from stdin (a prompt on stderr when it is a terminal).
pub(crate) fn read_password(what: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Paste {what} and press Enter (or pipe it in):");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim().to_string();
    if password.is_empty() {
        bail!("no password on stdin");
    }
    Ok(password)
}

/// The credential `store credential` kept, if any.
pub(crate) fn stored(keyring: &dyn SecretStore) -> Option<Credential> {
    let text = keyring.get(CREDENTIAL_ENTRY).ok().flatten()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(Credential {
        user: v["user"].as_str()?.to_string(),
        password: v["password"].as_str()?.to_string(),
    })
}
