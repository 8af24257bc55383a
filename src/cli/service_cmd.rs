//! `dealflow service run|install|uninstall|status`: the suggestion engine and the batch
//! gatherer as a background worker, so proposals are filed and pushes sent with no
//! terminal open. `install` writes a systemd **user** unit (the user's own keyring,
//! store and audit, nothing system-wide); where there is no systemd it says so and prints
//! the crontab line that does the same with `service run --once`.

use super::mcp_cmd::{Launch, launch_args, write_atomically};
use super::{Ctx, exec};
use crate::runtime::service::{Liveness, ServiceStatus, WorkerOptions, status_path};
use crate::wall::now_ms;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Run the worker in the foreground until interrupted: the suggestion engine on
    /// `agent.suggest_every` (and whenever the pipeline changes) and one device push per
    /// `batch.every`. This is what the installed unit runs.
    Run {
        /// One suggestion run and one batch round, then exit (for cron).
        #[arg(long)]
        once: bool,
        /// Override agent.suggest_every for this run (e.g. 30s while trying it out).
        #[arg(long, value_name = "DURATION")]
        suggest_every: Option<String>,
        /// Override batch.every for this run (e.g. 30s while trying it out).
        #[arg(long, value_name = "DURATION")]
        batch_every: Option<String>,
    },
    /// Write the systemd user unit that runs `dealflow service run` and start it (or,
    /// without systemd, print the crontab line that does the same).
    Install {
        /// Print the unit instead of writing it.
        #[arg(long)]
        print: bool,
        /// The binary the unit starts (default: this one).
        #[arg(long, value_name = "PATH")]
        exe: Option<PathBuf>,
    },
    /// Stop the service and remove its unit.
    Uninstall,
    /// Whether the worker runs, its last and next runs, and what it last proposed.
    /// Exit status 3 when it is not running.
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// The unit's name: the sandbox's worker is a separate unit, like its store.
fn unit_name(sandbox: bool) -> &'static str {
    if sandbox {
        "dealflow-sandbox.service"
    } else {
        "dealflow.service"
    }
}

fn unit_path(sandbox: bool) -> Result<PathBuf> {
    let base = directories::BaseDirs::new().context("cannot find your home directory")?;
    Ok(base
        .config_dir()
        .join("systemd/user")
        .join(unit_name(sandbox)))
}

/// Settings the worker must see as this shell does: where its keyring, config, data and
/// state live. Paths and switches only: a secret (`ANTHROPIC_API_KEY`) never goes into a
/// unit file, which any process of the user can read and `systemctl show` prints.
const CARRIED_ENV: [&str; 6] = [
    "DEALFLOW_KEYRING",
    "DEALFLOW_SANDBOX_USER",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
];

/// The optional environment file the unit reads for secrets the user chooses to give
/// the service (`ANTHROPIC_API_KEY=…`), kept 0600 beside config.toml.
fn env_file() -> Option<PathBuf> {
    crate::config::project_dirs().map(|d| d.config_dir().join("service.env"))
}

/// One argument of `ExecStart=`, quoted as systemd reads it (`%` is a specifier there).
fn systemd_quote(arg: &str) -> String {
    let escaped = arg
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    if escaped.is_empty() || escaped.contains(char::is_whitespace) || escaped != arg {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// The unit text: a long-running worker restarted when it fails, its stderr (the log at
/// `log.level`) in the journal.
pub fn unit_text(
    exe: &Path,
    args: &[String],
    env: &[(String, String)],
    documented: bool,
) -> String {
    let mut exec = vec![systemd_quote(&exe.display().to_string())];
    exec.extend(args.iter().map(|a| systemd_quote(a)));
    let mut out = String::new();
    out.push_str(
        "# Written by `dealflow service install`; `dealflow service uninstall` removes it.\n",
    );
    out.push_str("[Unit]\n");
    out.push_str("Description=dealflow agent: suggestions and device batches\n");
    if documented {
        out.push_str("Documentation=man:dealflow-service(1)\n");
    }
    out.push_str("\n[Service]\nType=exec\n");
    out.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    for (k, v) in env {
        out.push_str(&format!(
            "Environment={}\n",
            systemd_quote(&format!("{k}={v}"))
        ));
    }
    if let Some(f) = env_file() {
        // `-`: the file is optional; secrets the user gives the service go there. Under
        // the home directory it is written with `%h`, so one unit (the Debian package's)
        // serves every user.
        let f = f.display().to_string().replace('%', "%%");
        let home = directories::BaseDirs::new().map(|b| b.home_dir().display().to_string());
        let f = match home.as_deref().and_then(|h| f.strip_prefix(h)) {
            Some(rest) if rest.starts_with('/') => format!("%h{rest}"),
            _ => f,
        };
        out.push_str(&format!("EnvironmentFile=-{f}\n"));
    }
    out.push_str("Restart=on-failure\nRestartSec=30\n");
    // SIGTERM lets a run in progress finish filing or executing before it exits.
    out.push_str("TimeoutStopSec=45\n");
    out.push_str("NoNewPrivileges=yes\n");
    out.push_str("\n[Install]\nWantedBy=default.target\n");
    out
}

/// The crontab line that runs one round every `every` where there is no systemd.
fn crontab_line(exe: &Path, args: &[String], every: std::time::Duration) -> String {
    let minutes = (every.as_secs() / 60).clamp(1, 59);
    let schedule = if minutes == 1 {
        "* * * * *".to_string()
    } else {
        format!("*/{minutes} * * * *")
    };
    let quote = |s: &str| {
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.=:@".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let mut cmd = vec![quote(&exe.display().to_string())];
    cmd.extend(args.iter().map(|a| quote(a)));
    cmd.push("--once".into());
    format!("{schedule} {} >/dev/null 2>&1", cmd.join(" "))
}

/// What `systemctl --user` can do here.
enum Manager {
    /// This user's systemd manager answers.
    Reachable,
    /// systemd is installed but its user manager does not answer (a container, an SSH
    /// session without lingering): why.
    Unreachable(String),
    /// No systemctl at all (no systemd on this machine, macOS).
    Absent,
}

fn user_manager() -> Manager {
    match Command::new("systemctl")
        .args(["--user", "show-environment"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manager::Absent,
        Err(e) => Manager::Unreachable(format!("systemctl: {e}")),
        Ok(o) if o.status.success() => Manager::Reachable,
        Ok(o) => Manager::Unreachable(format!(
            "systemd's user manager is not reachable ({})",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
    }
}

fn systemctl(args: &[&str]) -> Result<()> {
    let out = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .with_context(|| format!("systemctl --user {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "systemctl --user {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn install(
    launch: &Launch,
    every: std::time::Duration,
    print: bool,
    exe: Option<PathBuf>,
) -> Result<ExitCode> {
    let exe = match exe {
        Some(e) => e,
        None => std::env::current_exe().context("cannot find the dealflow binary")?,
    };
    let args = launch_args(launch, &["service", "run"])?;
    let env: Vec<(String, String)> = CARRIED_ENV
        .iter()
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    // Documentation= is checked by `systemd-analyze verify`: name the page only where
    // it is installed.
    let documented = Command::new("man")
        .args(["-w", "dealflow-service"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let text = unit_text(&exe, &args, &env, documented);
    if print {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let cron = crontab_line(&exe, &args, every);
    // `None`: the user manager answers and the unit is started.
    let not_started = match user_manager() {
        Manager::Reachable => None,
        Manager::Unreachable(why) => Some(why),
        Manager::Absent => {
            println!("systemd is not available on this machine, so no unit was written.");
            println!(
                "This crontab line (`crontab -e`) runs the same worker every {}:",
                humantime(every)
            );
            println!("  {cron}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let path = unit_path(launch.sandbox)?;
    let old = std::fs::read_to_string(&path).ok();
    write_atomically(&path, text.as_bytes())?;
    let verb = match old {
        None => "wrote",
        Some(o) if o == text => "unchanged:",
        Some(_) => "updated",
    };
    println!("{verb} {}", path.display());
    if std::env::var_os("ANTHROPIC_API_KEY").is_some() && env_file().is_some_and(|f| !f.exists()) {
        println!(
            "ANTHROPIC_API_KEY was not copied into the unit (a unit file is no place for a secret): put ANTHROPIC_API_KEY=… in {} (chmod 600) for the service to use Claude; until then it uses the offline planner.",
            env_file()
                .map(|f| f.display().to_string())
                .unwrap_or_default()
        );
    }
    let name = unit_name(launch.sandbox);
    match not_started {
        None => {
            systemctl(&["daemon-reload"])?;
            systemctl(&["enable", "--now", name])?;
            println!(
                "started {name}: `dealflow service status` shows what it does, `journalctl --user -u {name}` its log"
            );
            println!("To keep it running while you are logged out: `loginctl enable-linger`.");
        }
        Some(why) => {
            println!("{why}: the unit is written but not started.");
            println!(
                "In a login session: systemctl --user daemon-reload && systemctl --user enable --now {name}"
            );
            println!(
                "Or, without systemd, this crontab line (`crontab -e`) runs the same worker every {}:",
                humantime(every)
            );
            println!("  {cron}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn uninstall(sandbox: bool) -> Result<ExitCode> {
    let path = unit_path(sandbox)?;
    let name = unit_name(sandbox);
    let reachable = matches!(user_manager(), Manager::Reachable);
    if reachable {
        // Stops a running worker first: it finishes what it is executing (SIGTERM).
        let _ = systemctl(&["disable", "--now", name]);
    }
    match std::fs::remove_file(&path) {
        Ok(()) => println!("removed {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!(
                "{name} is not installed ({} does not exist)",
                path.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    if reachable {
        systemctl(&["daemon-reload"])?;
    }
    Ok(ExitCode::SUCCESS)
}

fn humantime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A duration flag that may go below the config's 1-minute floor (trying it out), but
/// not below a second.
fn short_duration(flag: &str, v: &str) -> Result<std::time::Duration> {
    crate::config::parse_duration(v)
        .filter(|d| d.as_secs() >= 1)
        .with_context(|| format!("{flag} {v:?}: give a duration of at least 1s, like 30s or 15m"))
}

pub fn run(
    ctx: &Ctx,
    once: bool,
    suggest_every: Option<String>,
    batch_every: Option<String>,
) -> Result<ExitCode> {
    let suggest_every = match suggest_every {
        Some(v) => short_duration("--suggest-every", &v)?,
        None => ctx.config.suggest_every,
    };
    let batch_every = match batch_every {
        Some(v) => short_duration("--batch-every", &v)?,
        None => ctx.config.batch_every,
    };
    let rt = exec::runtime()?;
    rt.block_on(async {
        let wired = exec::wire(ctx).await?;
        if let Some(url) = &wired.sandbox_url {
            eprintln!("sandbox ({url}): approve on the phone: `dealflow sandbox phone` in another terminal");
        }
        let engine = Arc::new(super::suggest_cmd::suggester(ctx, wired.pipeline.clone()));
        let opts = WorkerOptions {
            suggest_every,
            batch_every,
            batch: crate::runtime::batch::BatchOptions {
                window: ctx.config.batch_window,
                concurrency: ctx.config.raw.batch.concurrency as usize,
                actor: super::local_actor(),
                ..Default::default()
            },
            once,
            status_path: status_path(ctx.sandbox),
        };
        let cancel = CancellationToken::new();
        {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                // systemd stops a unit with SIGTERM; a terminal with ctrl-c.
                let mut term = signal(SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async {
                        match term.as_mut() {
                            Some(t) => { t.recv().await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => {}
                }
                tracing::info!("stopping: finishing what is in progress");
                cancel.cancel();
            });
        }
        eprintln!(
            "dealflow service: suggestions every {} (and on every change), device batches every {}{}",
            humantime(suggest_every),
            humantime(batch_every),
            if once { "; one round" } else { "; ctrl-c stops" }
        );
        let done = crate::runtime::service::run(
            engine,
            wired.device.clone(),
            opts,
            Arc::new(now_ms),
            cancel,
        )
        .await?;
        if once {
            for line in [&done.last_suggest_summary, &done.last_batch_summary]
                .into_iter()
                .flatten()
            {
                println!("{line}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `HH:MM` in local time, with how long ago or ahead.
fn when(ms: i64, now: i64) -> String {
    use chrono::TimeZone;
    let clock = chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| ms.to_string(), |t| t.format("%H:%M:%S").to_string());
    let d = (now - ms) / 1000;
    let rel = match d.abs() {
        0..=59 => format!("{}s", d.abs()),
        60..=3599 => format!("{}m", d.abs() / 60),
        _ => format!("{}h", d.abs() / 3600),
    };
    if d >= 0 {
        format!("{clock} ({rel} ago)")
    } else {
        format!("{clock} (in {rel})")
    }
}

pub fn status(ctx: &Ctx, json: bool) -> Result<ExitCode> {
    let now = now_ms();
    let status = status_path(ctx.sandbox).and_then(|p| ServiceStatus::read(&p));
    let lease = ctx
        .store
        .leases(now)?
        .into_iter()
        .find(|l| l.name == crate::store::lease::SERVICE)
        // A lease whose holder was a process on this host that is gone (killed) is not
        // a running service, though it has not lapsed yet.
        .filter(|l| !crate::runtime::holder_is_gone(&l.holder));
    let unit = unit_path(ctx.sandbox).ok().filter(|p| p.exists());
    let name = unit_name(ctx.sandbox);
    let active = (unit.is_some() && matches!(user_manager(), Manager::Reachable)).then(|| {
        Command::new("systemctl")
            .args(["--user", "is-active", name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    });
    let liveness = status.as_ref().map(|s| s.liveness());
    let running = liveness == Some(Liveness::Running) || lease.is_some();
    if json {
        let v = serde_json::json!({
            "running": running,
            "unit": unit.as_ref().map(|p| p.display().to_string()),
            "systemd": active,
            "lease": lease,
            "status": status,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        match &unit {
            Some(p) => println!(
                "unit:      {} ({})",
                p.display(),
                active.as_deref().unwrap_or("systemd not reachable")
            ),
            None => println!("unit:      not installed (`dealflow service install`)"),
        }
        match (&status, liveness, &lease) {
            (Some(s), Some(Liveness::Running), _) => {
                println!(
                    "worker:    running, pid {} since {}",
                    s.pid,
                    when(s.started, now)
                )
            }
            (_, _, Some(l)) => println!(
                "worker:    running as {} (another host, or its status file is elsewhere)",
                l.holder
            ),
            (Some(s), Some(Liveness::Stopped), _) => println!(
                "worker:    not running (stopped {})",
                when(s.stopped.unwrap_or(s.started), now)
            ),
            (Some(s), _, _) => println!(
                "worker:    not running: pid {} ended without stopping (killed or crashed)",
                s.pid
            ),
            (None, _, None) => println!("worker:    has never run for this user"),
        }
        if let Some(s) = &status {
            if let (Some(t), Some(what)) = (s.last_suggest, &s.last_suggest_summary) {
                println!("suggested: {} — {what}", when(t, now));
            }
            match s.last_proposed {
                Some(t) => println!("proposed:  last filed something {}", when(t, now)),
                None => println!("proposed:  nothing filed yet"),
            }
            if running && let Some(next) = s.next_suggest() {
                println!(
                    "next look: by {} (sooner when the pipeline changes)",
                    when(next, now)
                );
            }
            if let (Some(t), Some(what)) = (s.last_batch, &s.last_batch_summary) {
                println!("batch:     {} — {what}", when(t, now));
            }
            if running && let Some(next) = s.next_batch {
                println!("next push: {}", when(next, now));
            }
        }
    }
    Ok(if running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
