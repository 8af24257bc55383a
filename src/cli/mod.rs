//! The command line: argument parsing, wiring config → store, and one handler per
//! subcommand. Subcommands whose capability has not been built say so and exit 2.

mod accounts_cmd;
mod actions;
mod args;
mod audit_cmd;
pub mod auth_cmd;
mod batch_cmd;
mod doctor_cmd;
mod exec;
mod import_cmd;
pub(crate) mod init_cmd;
mod logging;
mod mcp_cmd;
mod permissions_cmd;
mod policy_cmd;
mod sandbox_cmd;
mod service_cmd;
mod status;
mod store_cmd;
mod suggest_cmd;
mod team_cmd;
mod tui_cmd;

use crate::config::{Config, Override, Source};
use crate::store::{RedisStore, SqliteStore, Store};
use crate::wall::now_ms;
use anyhow::{Context, Result};
pub use args::{Cli, Cmd, ConfigCmd, SandboxCmd};
use clap::{CommandFactory, Parser};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Everything a handler needs, built once.
#[derive(Clone)]
pub struct Ctx {
    pub config: Config,
    pub sandbox: bool,
    pub store: Arc<dyn Store>,
}

/// The local person acting, as audit rows record it: the signed-in identity, or the
/// Unix account of the process's uid (never `$USER`). On a shared box the CLI also
/// writes [`origin`] (Unix user and SSH client address) into each row's detail.
pub fn local_actor() -> String {
    crate::runtime::identity::current().actor()
}

/// Where this command runs from, for audit details.
pub fn origin() -> serde_json::Value {
    crate::runtime::identity::current().origin()
}

fn parse_sandbox_user(s: &str) -> Result<crate::sandbox::auth0::model::SandboxUser, String> {
    crate::sandbox::auth0::model::SandboxUser::parse(s).ok_or_else(|| {
        format!("unknown sandbox user {s:?}: auth0|demo-user (rep) or auth0|team-lead (lead)")
    })
}

/// Fixes who is acting for this process (in the sandbox the demo user it signs in as,
/// otherwise the identity `dealflow login` stored in the keyring, if any) and where the
/// consent key lives: the keyring, or for the sandbox on a box without one, a 0600 file
/// in the state directory. Returns that keyring, if there is one.
fn establish_identity(sandbox: bool) -> Option<Arc<dyn crate::auth::keyring::SecretStore>> {
    use crate::runtime::identity::{Identity, SignedIn, set_current, stored_sign_in};
    let keyring = match crate::auth::keyring::open_default() {
        Ok(k) => Some(k),
        Err(_) if sandbox => crate::config::state_dir().map(|dir| {
            Arc::new(crate::auth::keyring::FileStore::new(
                dir.join("sandbox-secrets.json"),
            )) as Arc<dyn crate::auth::keyring::SecretStore>
        }),
        Err(_) => None,
    };
    if let Some(k) = &keyring {
        crate::runtime::seal::use_keyring(k.clone());
    }
    let signed_in = if sandbox {
        let user = crate::sandbox::auth0::model::SandboxUser::current();
        Some(SignedIn {
            sub: user.sub().into(),
            name: user.name().into(),
            emulated: true,
        })
    } else {
        keyring.as_ref().and_then(|k| stored_sign_in(k.as_ref()))
    };
    set_current(Identity::local(signed_in));
    keyring
}

/// The store with its audit chain anchored in the keyring (a checkpoint refreshed on
/// every append). Without a keyring the store still works; `audit verify` and `doctor`
/// then say the chain is not anchored.
fn anchored(store: Arc<dyn Store>) -> Arc<dyn Store> {
    match crate::runtime::seal::KeyringAnchor::open() {
        Ok(a) => Arc::new(crate::store::Anchored::new(store, Arc::new(a))),
        Err(e) => {
            tracing::warn!(error = %e, "audit checkpoint unavailable");
            store
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut overrides = crate::config::env_overrides(std::env::vars());
    if let Some(s) = &cli.store {
        overrides.push(Override {
            section: "store".into(),
            key: "path".into(),
            value: toml_string(s),
            source: Source::Flag("--store".into()),
        });
    }
    if let Some(t) = &cli.theme {
        overrides.push(Override {
            section: "ui".into(),
            key: "theme".into(),
            value: toml_string(t),
            source: Source::Flag("--theme".into()),
        });
    }
    let (path, explicit) = match &cli.config {
        Some(p) => (Some(p.clone()), true),
        None => (crate::config::default_config_path(), false),
    };
    Ok(Config::load(path.as_deref(), explicit, &overrides)?)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The store file: the configured path, or the data dir (a separate file for the
/// sandbox, so demo data never mixes with real data).
pub fn store_path(config: &Config, sandbox: bool) -> Result<PathBuf> {
    if !config.raw.store.path.is_empty() {
        return Ok(PathBuf::from(&config.raw.store.path));
    }
    let dirs = crate::config::project_dirs()
        .context("cannot find a home directory for the store; set store.path")?;
    let name = if sandbox { "sandbox.db" } else { "dealflow.db" };
    Ok(dirs.data_dir().join(name))
}

/// The Redis namespace for this user: the Auth0 `sub` of the verified sign-in (the one
/// `dealflow login` checked and kept in this user's own keyring; in the sandbox the
/// emulated user it signs in as, under this Unix account, so `--sandbox-user team-lead`
/// is the lead's and another account's sandbox is not this one). Nothing
/// the environment says counts: `USER=alice` names no one. Not signed in, there is no
/// namespace, hence no Redis store.
pub fn redis_namespace() -> Result<String> {
    let me = crate::runtime::identity::current();
    match &me.signed_in {
        // Every Unix account's sandbox signs in as the same emulated rep (or lead), so on
        // a shared Redis the sub alone would hand one account's sandbox to another: the
        // uid, which no one can claim, keeps them apart.
        Some(s) if s.emulated => Ok(format!("sandbox-uid{}-{}", me.uid, s.sub)),
        Some(s) => Ok(s.sub.clone()),
        None => anyhow::bail!(
            "the Redis store (store.url) keeps your data under your verified identity, and no one is signed in: run `dealflow login` first (or `--sandbox` to try it)"
        ),
    }
}

/// The namespace this user's data had before it was keyed by identity: the Unix account
/// of the process's uid ("sandbox" for the sandbox's rep). From the uid, never `$USER`,
/// so no one can adopt another account's data by naming it.
fn legacy_namespace(sandbox: bool) -> Option<String> {
    if sandbox {
        use crate::sandbox::auth0::model::SandboxUser;
        return (SandboxUser::current() == SandboxUser::Rep).then(|| "sandbox".into());
    }
    Some(crate::runtime::identity::current().unix_user.clone())
}

/// The Redis store `store.url` names, in this user's namespace, under `store.team` if
/// set, as the ACL user whose credential `dealflow store credential` kept (if any).
fn open_redis(config: &Config) -> Result<RedisStore> {
    let credential =
        crate::runtime::seal::process_keyring().and_then(|k| store_cmd::stored(k.as_ref()));
    open_redis_as(config, credential)
}

/// [`open_redis`] as `credential` (None: the URL's user, or the default one).
fn open_redis_as(
    config: &Config,
    credential: Option<crate::store::redis::Credential>,
) -> Result<RedisStore> {
    let namespace = redis_namespace()?;
    let team = Some(config.raw.store.team.as_str()).filter(|t| !t.is_empty());
    let ca_file = Some(config.raw.store.ca_file.as_str())
        .filter(|f| !f.is_empty())
        .map(PathBuf::from);
    let connect = crate::store::redis::Connect {
        credential,
        ca_file,
    };
    RedisStore::open_with(&config.raw.store.url, &connect, &namespace, team)
        .map_err(anyhow::Error::from)
}

/// [`open_redis`], after adopting this user's pre-identity namespace (once, audited).
fn open_redis_adopting(config: &Config, sandbox: bool) -> Result<RedisStore> {
    use crate::store::redis::Adoption;
    let store = open_redis(config)?;
    let Some(legacy) = legacy_namespace(sandbox) else {
        return Ok(store);
    };
    let entry = crate::core::audit::NewAuditEntry {
        ts: now_ms(),
        actor: local_actor(),
        surface: Some(crate::core::domain::Surface::Cli),
        event: "store.namespace_adopted".into(),
        action_id: None,
        outcome: "ok".into(),
        detail: serde_json::json!({ "origin": origin() }),
    };
    let done = store
        .adopt_legacy(&legacy, entry)
        .context("store.url: cannot move your earlier namespace")?;
    let entry = match &done {
        Adoption::Nothing => return Ok(store),
        Adoption::Moved { from, keys, entry } => {
            eprintln!(
                "store: moved your data ({keys} keys) from the namespace {from:?} to {:?}, your signed-in identity (audit #{})",
                store.namespace(),
                entry.seq
            );
            entry
        }
        Adoption::LeftInPlace { from, entry } => {
            eprintln!(
                "store: the namespace {from:?} holds data from before sign-in, and so does {:?}: left both as they are (audit #{})",
                store.namespace(),
                entry.seq
            );
            entry
        }
    };
    // Written through the bare store: anchor it as the anchored store does.
    use crate::store::AuditAnchor;
    if let Ok(a) = crate::runtime::seal::KeyringAnchor::open() {
        a.appended(&store, entry);
    }
    Ok(store)
}

fn open_store(config: &Config, sandbox: bool) -> Result<Arc<dyn Store>> {
    if !config.raw.store.url.is_empty() {
        let store = open_redis_adopting(config, sandbox)
            .with_context(|| "store.url: cannot open the Redis store (`dealflow doctor` checks)")?;
        return Ok(anchored(Arc::new(store)));
    }
    let path = store_path(config, sandbox)?;
    let store = SqliteStore::open(&path)?;
    Ok(anchored(Arc::new(store)))
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `dealflow man`: the page for `dealflow` on stdout, or every command's page into `dir`.
fn man_pages(dir: Option<&std::path::Path>) -> Result<ExitCode> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // `page` names the file (dealflow-accounts-connect.1); `invoked` is how it is typed
    // (dealflow accounts connect), for the synopsis.
    fn write(
        cmd: clap::Command,
        page: &str,
        invoked: &str,
        dir: &std::path::Path,
        n: &mut usize,
    ) -> Result<()> {
        let path = dir.join(format!("{page}.1"));
        let mut out = Vec::new();
        let named = cmd
            .clone()
            .name(page.to_string())
            .bin_name(invoked.to_string());
        clap_mangen::Man::new(named).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
        *n += 1;
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let name = sub.get_name();
            write(
                sub.clone(),
                &format!("{page}-{name}"),
                &format!("{invoked} {name}"),
                dir,
                n,
            )?;
        }
        Ok(())
    }
    let mut n = 0;
    write(cmd, "dealflow", "dealflow", dir, &mut n)?;
    println!("wrote {n} man pages to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn dispatch(mut cli: Cli) -> Result<ExitCode> {
    if let Some(u) = cli.sandbox_user {
        u.set_current();
    }
    // The sandbox's world is the sandbox store, whether or not --sandbox was typed.
    if matches!(
        cli.command,
        Some(Cmd::Sandbox {
            cmd: SandboxCmd::Advance { .. }
        })
    ) {
        cli.sandbox = true;
    }
    // Commands that need neither config nor store.
    match &cli.command {
        Some(Cmd::Man { dir }) => return man_pages(dir.as_deref()),
        Some(Cmd::Completions { shell }) => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "dealflow",
                &mut std::io::stdout(),
            );
            return Ok(ExitCode::SUCCESS);
        }
        Some(Cmd::Mcp {
            cmd: Some(mcp_cmd::McpCmd::Install { client, write, yes }),
        }) => {
            let launch = mcp_cmd::Launch {
                sandbox: cli.sandbox,
                config: cli.config.clone(),
                store: cli.store.clone(),
            };
            return mcp_cmd::install(*client, *write, *yes, &launch);
        }
        Some(Cmd::Sandbox {
            cmd:
                SandboxCmd::Phone {
                    url,
                    list,
                    approve,
                    deny,
                    only,
                },
        }) => {
            return sandbox_cmd::phone(url.as_deref(), *list, *approve, *deny, only.as_deref());
        }
        Some(Cmd::Sandbox {
            cmd:
                SandboxCmd::Revoke {
                    connection,
                    scopes,
                    url,
                },
        }) => return sandbox_cmd::revoke(url.as_deref(), (*connection).into(), scopes),
        Some(Cmd::Sandbox {
            cmd: SandboxCmd::Serve { port },
        }) => return sandbox_cmd::serve(*port),
        Some(Cmd::Sandbox {
            cmd:
                SandboxCmd::Salesforce {
                    id,
                    stage,
                    amount,
                    url,
                },
        }) => {
            return sandbox_cmd::salesforce(
                url.as_deref(),
                id.as_deref(),
                stage.as_deref(),
                *amount,
            );
        }
        Some(Cmd::Auth { cmd }) => return auth_cmd::auth(cmd),
        _ => {}
    }
    if let Some(Cmd::Init(args)) = cli.command {
        return init_cmd::run(cli.config, args);
    }
    // Before config is loaded, the log opened or the store created: doctor reports a
    // config that does not load, and changes nothing.
    if matches!(cli.command, Some(Cmd::Doctor)) {
        return doctor_cmd::run(&cli);
    }
    let config = load_config(&cli)?;
    match &cli.command {
        Some(Cmd::Mcp { cmd: None }) => {}
        Some(Cmd::Service {
            cmd: service_cmd::ServiceCmd::Run { .. },
        }) => logging::init(&config, logging::Stderr::All),
        _ => logging::init(&config, logging::Stderr::Quiet),
    }
    let _ = establish_identity(cli.sandbox);
    match &cli.command {
        Some(Cmd::Config { cmd }) => return config_cmd(cmd, &config),
        Some(Cmd::Login) => return auth_cmd::login(&config, cli.sandbox),
        Some(Cmd::Logout) => return auth_cmd::logout(&config, cli.sandbox),
        Some(Cmd::Whoami) => return auth_cmd::whoami(&config, cli.sandbox),
        Some(Cmd::Service {
            cmd: service_cmd::ServiceCmd::Install { print, exe },
        }) => {
            let launch = mcp_cmd::Launch {
                sandbox: cli.sandbox,
                config: cli.config.clone(),
                store: cli.store.clone(),
            };
            return service_cmd::install(&launch, config.batch_every, *print, exe.clone());
        }
        Some(Cmd::Service {
            cmd: service_cmd::ServiceCmd::Uninstall,
        }) => return service_cmd::uninstall(cli.sandbox),
        _ => {}
    }
    // These open the store themselves (the team commands some with a credential read
    // from stdin, the Redis admin's, where the user's own may not open it at all).
    cli.command = match cli.command.take() {
        Some(Cmd::Store { cmd }) => return store_cmd::run(&config, cmd),
        Some(Cmd::Team { cmd }) => return team_cmd::run(&config, cmd),
        other => other,
    };
    let store = open_store(&config, cli.sandbox)?;
    crate::wall::startup_mark("store open");
    let ctx = Ctx {
        config,
        sandbox: cli.sandbox,
        store,
    };
    // With Salesforce as the CRM the demo pipeline is the emulated org's, read into the
    // store's mirror on the first sync, not seeded here.
    if ctx.sandbox
        && ctx.config.crm == crate::core::domain::CrmProvider::Local
        && crate::sandbox::demo::seed(ctx.store.as_ref(), now_ms())?
    {
        eprintln!(
            "sandbox: seeded demo pipeline into {}",
            ctx.store.describe()
        );
    }
    if cli.command.is_none() && tui_cmd::tui_wanted() {
        return tui_cmd::run_tui(ctx);
    }
    match cli.command {
        None | Some(Cmd::Status) => {
            let interactive = cli.command.is_none();
            status::run(&ctx, interactive)
        }
        Some(Cmd::Actions { cmd }) => actions::run(&ctx, cmd),
        Some(Cmd::Audit { cmd }) => audit_cmd::run(&ctx, cmd),
        Some(Cmd::Permissions { cmd }) => permissions_cmd::run(&ctx, cmd),
        Some(Cmd::Policy { cmd }) => policy_cmd::run(&ctx, cmd),
        Some(Cmd::Batch { every }) => batch_cmd::run(&ctx, every),
        Some(Cmd::Suggest { json }) => suggest_cmd::run(&ctx, json),
        Some(Cmd::Service {
            cmd:
                service_cmd::ServiceCmd::Run {
                    once,
                    suggest_every,
                    batch_every,
                },
        }) => service_cmd::run(&ctx, once, suggest_every, batch_every),
        Some(Cmd::Service {
            cmd: service_cmd::ServiceCmd::Status { json },
        }) => service_cmd::status(&ctx, json),
        Some(Cmd::Sandbox {
            cmd: SandboxCmd::Advance { by },
        }) => sandbox_cmd::advance(&ctx, &by),
        Some(Cmd::Accounts { cmd }) => accounts_cmd::run(&ctx, cmd),
        Some(Cmd::Import { cmd }) => import_cmd::run(&ctx, cmd),
        Some(Cmd::Mcp { cmd: None }) => mcp_cmd::serve(&ctx),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn config_cmd(cmd: &ConfigCmd, config: &Config) -> Result<ExitCode> {
    match cmd {
        ConfigCmd::Path => {
            match &config.file {
                Some(p) => println!("{}", p.display()),
                None => match crate::config::default_config_path() {
                    Some(p) => println!("{} (not present: defaults in use)", p.display()),
                    None => println!("(no config directory)"),
                },
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCmd::Check => {
            match &config.file {
                Some(p) => println!("config OK: {}", p.display()),
                None => println!("config OK: defaults (no file)"),
            }
            let table = toml::to_string_pretty(&config.raw).unwrap_or_default();
            print!("{table}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
