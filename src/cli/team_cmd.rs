//! `dealflow team init|show|set|clear`: the team on a shared Redis store. A team policy
//! only ever tightens: each member's effective permissions take, setting by setting,
//! whichever of their own and the team's has more friction
//! (`Permissions::tighten_with`), so setting one can add friction for the team but never
//! remove any. Only the team's admins (made by `team init`) may set or clear it; every
//! change lands in the team's audit stream, which every member reads
//! (`audit export --team`, `audit verify --team`), and in the admin's own log.

use super::{local_actor, origin, permissions_cmd};
use crate::config::Config;
use crate::core::audit::NewAuditEntry;
use crate::core::domain::Surface;
use crate::core::permissions::Permissions;
use crate::store::RedisStore;
use crate::store::redis::PolicyOp;
use crate::wall::now_ms;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum TeamCmd {
    /// Create the team (`store.team`) with you as its first admin, and its audit stream
    /// (with a Redis credential that may write the team's keys: the admin's).
    Init {
        #[command(flatten)]
        admin: RedisAdmin,
    },
    /// Give member SUB (their Auth0 `sub`) a Redis ACL user that reaches only their own
    /// keys, reads the team policy and appends to the team's stream; `--admin` also lets
    /// them change the policy. Prints the user's password once, for the member's
    /// `dealflow store credential`. Team admins only, with the Redis admin credential.
    AddMember {
        sub: String,
        /// Also a team admin.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        redis: RedisAdmin,
    },
    /// Delete member SUB's Redis ACL user (Redis drops its connections).
    RemoveMember {
        sub: String,
        #[command(flatten)]
        redis: RedisAdmin,
    },
    /// Print the team policy (`store.team`) and the team's admins.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Set the team policy from a TOML or JSON file; keys left out keep the defaults
    /// (team admins only).
    Set { file: PathBuf },
    /// Remove the team policy (team admins only).
    Clear,
}

/// The Redis credential that may manage ACL users, for this one command.
#[derive(Debug, clap::Args)]
pub struct RedisAdmin {
    /// Connect as this Redis user (e.g. `default`), with its password read from stdin,
    /// instead of the credential in the keyring.
    #[arg(long, value_name = "USER")]
    redis_user: Option<String>,
}

/// An audit entry for a team command, naming who (the signed-in identity) and where from.
pub(crate) fn entry(event: &str, detail: serde_json::Value) -> NewAuditEntry {
    let mut detail = detail;
    if let serde_json::Value::Object(m) = &mut detail {
        m.insert("origin".into(), origin());
    }
    NewAuditEntry {
        ts: now_ms(),
        actor: local_actor(),
        surface: Some(Surface::Cli),
        event: event.into(),
        action_id: None,
        outcome: "ok".into(),
        detail,
    }
}

pub fn run(config: &Config, cmd: TeamCmd) -> Result<ExitCode> {
    let redis_user = match &cmd {
        TeamCmd::Init { admin: r }
        | TeamCmd::AddMember { redis: r, .. }
        | TeamCmd::RemoveMember { redis: r, .. } => r.redis_user.clone(),
        _ => None,
    };
    let store = match redis_user {
        None => team_store(config)?,
        Some(user) => {
            let password =
                super::store_cmd::read_password(&format!("the password of Redis user {user}"))?;
            check_team_config(config)?;
            super::open_redis_as(
                config,
                Some(crate::store::redis::Credential { user, password }),
            )
            .context("store.url: cannot open the Redis store with that user")?
        }
    };
    let team = store.team()?.to_string();
    let audit = |event: &str| entry(event, serde_json::json!({}));
    match cmd {
        TeamCmd::AddMember { sub, admin, .. } => {
            let (cred, e) = store.provision_member(&sub, admin, audit("team.member_added"))?;
            // The password on stdout alone (it is what a script pipes on); the rest on stderr.
            println!("{}", cred.password);
            eprintln!(
                "team {team}: Redis user {} made for {sub}{} (team audit #{}). Hand them the password above; they run `dealflow store credential` and paste it. It is not kept anywhere else.",
                cred.user,
                if admin { ", a team admin" } else { "" },
                e.seq
            );
        }
        TeamCmd::RemoveMember { sub, .. } => {
            let (existed, e) = store.revoke_member(&sub, audit("team.member_removed"))?;
            println!(
                "team {team}: {sub} removed{} (team audit #{})",
                if existed {
                    ""
                } else {
                    " (they had no Redis user)"
                },
                e.seq
            );
        }
        TeamCmd::Init { .. } => {
            let e = store.init_team(audit("team.created"))?;
            println!(
                "team {team}: created; you ({}) are its admin (team audit #{}). Add members with `dealflow team add-member SUB`",
                store.namespace(),
                e.seq
            );
        }
        TeamCmd::Show { json } => {
            match store.team_policy()? {
                Some(p) => permissions_cmd::print(&p, json)?,
                None if json => println!("null"),
                None => println!("team {team}: no policy (`dealflow team set FILE` sets one)"),
            }
            if !json {
                match store.team_admins()?.as_slice() {
                    [] => println!("team {team}: not set up (`dealflow team init`)"),
                    admins => println!("team {team}: admins {}", admins.join(", ")),
                }
            }
        }
        TeamCmd::Set { file } => {
            let policy = super::policy_cmd::read_permissions(&file, &Permissions::default())?;
            if let Err(e) = policy.check() {
                bail!("{}: {e}", file.display());
            }
            let (t, own) = store
                .change_team_policy(
                    PolicyOp::Set(&policy),
                    audit("team.policy_set"),
                    audit("team.policy_set"),
                )
                .map_err(refused)?;
            anchor(&store, &own);
            println!(
                "team {team}: policy set (team audit #{}, yours #{}); it tightens every member's own settings — `dealflow permissions show` prints yours in effect",
                t.seq, own.seq
            );
        }
        TeamCmd::Clear => {
            let (t, own) = store
                .change_team_policy(
                    PolicyOp::Clear,
                    audit("team.policy_cleared"),
                    audit("team.policy_cleared"),
                )
                .map_err(refused)?;
            anchor(&store, &own);
            println!(
                "team {team}: policy removed (team audit #{}, yours #{})",
                t.seq, own.seq
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Redis's own refusal (an ACL that does not let this member's user write the key)
/// said in the team's words; dealflow's own refusal passes as it is.
pub(crate) fn refused(e: crate::store::StoreError) -> anyhow::Error {
    let text = e.to_string();
    if crate::store::redis::refused_by_acl(&e) {
        anyhow::anyhow!(
            "Redis refused: your Redis user may not change the team policy (only team admins' users can) — {text}"
        )
    } else {
        e.into()
    }
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
pub(crate) fn team_store(config: &Config) -> Result<RedisStore> {
    check_team_config(config)?;
    super::open_redis(config)
        .context("store.url: cannot open the Redis store (`dealflow doctor` checks)")
}

fn check_team_config(config: &Config) -> Result<()> {
    let raw = &config.raw.store;
    if raw.url.is_empty() {
        bail!(
            "teams live in a shared Redis store: set store.url (redis://… or rediss://…) and store.team"
        );
    }
    if raw.team.is_empty() {
        bail!("store.team is empty: name the team");
    }
    Ok(())
}
