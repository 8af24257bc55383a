//! `dealflow team show|set|clear`: the team policy on a shared Redis store. A team
//! policy only ever tightens: each member's effective permissions take, setting by
//! setting, whichever of their own and the team's has more friction
//! (`Permissions::tighten_with`), so setting one can add friction for the team but never
//! remove any. Who set it is in the setter's audit log.

use super::{Ctx, local_actor, now_ms, origin, permissions_cmd};
use crate::core::audit::NewAuditEntry;
use crate::core::domain::Surface;
use crate::core::permissions::Permissions;
use crate::store::RedisStore;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum TeamCmd {
    /// Print the team policy (`store.team`).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Set the team policy from a TOML or JSON file; keys left out keep the defaults.
    Set { file: PathBuf },
    /// Remove the team policy.
    Clear,
}

pub fn run(ctx: &Ctx, cmd: TeamCmd) -> Result<ExitCode> {
    let store = team_store(ctx)?;
    let audit = |event: &str| NewAuditEntry {
        ts: now_ms(),
        actor: local_actor(),
        surface: Some(Surface::Cli),
        event: event.into(),
        action_id: None,
        outcome: "ok".into(),
        detail: serde_json::json!({ "origin": origin() }),
    };
    let team = &ctx.config.raw.store.team;
    match cmd {
        TeamCmd::Show { json } => match store.team_policy()? {
            Some(p) => permissions_cmd::print(&p, json)?,
            None if json => println!("null"),
            None => println!("team {team}: no policy (`dealflow team set FILE` sets one)"),
        },
        TeamCmd::Set { file } => {
            let policy = super::policy_cmd::read_permissions(&file, &Permissions::default())?;
            if let Err(e) = policy.check() {
                bail!("{}: {e}", file.display());
            }
            let entry = store.set_team_policy(&policy, audit("team.policy_set"))?;
            anchor(&store, &entry);
            println!(
                "team {team}: policy set (audit #{}); it tightens every member's own settings — `dealflow permissions show` prints yours in effect",
                entry.seq
            );
        }
        TeamCmd::Clear => {
            let entry = store.clear_team_policy(audit("team.policy_cleared"))?;
            anchor(&store, &entry);
            println!("team {team}: policy removed (audit #{})", entry.seq);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The team commands write through the Redis store itself (they need its team keys), so
/// their entries are anchored here, as the anchored store does for every other append.
fn anchor(store: &RedisStore, entry: &crate::core::audit::AuditEntry) {
    use crate::store::AuditAnchor;
    if let Ok(a) = crate::runtime::seal::KeyringAnchor::open() {
        a.appended(store, entry);
    }
}

/// The Redis store with its team, or what is missing to have one.
fn team_store(ctx: &Ctx) -> Result<RedisStore> {
    let raw = &ctx.config.raw.store;
    if raw.url.is_empty() {
        bail!(
            "team policies live in a shared Redis store: set store.url (redis://…) and store.team"
        );
    }
    if raw.team.is_empty() {
        bail!("store.team is empty: name the team whose policy this is");
    }
    super::open_redis(&ctx.config)
        .context("store.url: cannot open the Redis store (`dealflow doctor` checks)")
}
