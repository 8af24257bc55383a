//! `dealflow login | logout | whoami | auth agent-credential | sandbox phone | sandbox serve`
//! (`doctor`'s keyring and auth checks are in `doctor_cmd`). Nothing here prints a token:
//! tokens are [`Secret`]s and only the keyring or memory holds them.

use crate::auth::device::{DeviceLogin, DevicePrompt};
use crate::auth::keyring::{self, AGENT_SECRET, MemoryStore, SecretStore};
use crate::auth::session::Session;
use crate::auth::{AuthError, AuthSettings, Secret};
use crate::config::Config;
use crate::sandbox::Sandbox;
use crate::sandbox::sign_in;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Store the agent (confidential) client's credential in the keyring, read from stdin:
    /// its secret, or with --private-key its private key in PEM (for
    /// auth.agent_auth_method = "private_key_jwt"; register the public key on the client).
    AgentCredential {
        #[arg(long)]
        private_key: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// An in-process sandbox for one command, with a 1-second device interval.
async fn start_sandbox() -> Result<(Sandbox, AuthSettings)> {
    let sb = Sandbox::start(None)
        .await
        .context("cannot start the sandbox")?;
    sb.state.auth0.set_timing(|t| t.device_interval_s = 1);
    let settings = sign_in::settings(&sb.base_url()).with_sandbox_key(sb.state.admin.expose());
    Ok((sb, settings))
}

fn qr(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build(),
    )
}

fn show_prompt(p: &DevicePrompt) {
    let url = p
        .verification_uri_complete
        .as_deref()
        .unwrap_or(&p.verification_uri);
    println!("To sign in, open {}", p.verification_uri);
    println!("and enter the code:  {}", p.user_code);
    if let Some(q) = qr(url) {
        println!("\nor scan:\n{q}");
    }
    println!(
        "Check that the code shown in the browser is {}.",
        p.user_code
    );
}

/// Prints a countdown on stderr while the device flow polls (only on a terminal).
fn countdown(expires_at_ms: i64, cancel: CancellationToken) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    tokio::spawn(async move {
        loop {
            let left = (expires_at_ms - crate::wall::now_ms()).max(0) / 1000;
            eprint!(
                "\r  waiting for approval… {:02}:{:02} left ",
                left / 60,
                left % 60
            );
            let _ = std::io::stderr().flush();
            tokio::select! {
                _ = cancel.cancelled() => { eprint!("\r{:50}\r", ""); return; }
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    });
}

async fn device_login(
    settings: &AuthSettings,
    store: Arc<dyn SecretStore>,
    sandbox_auto_approve: bool,
) -> Result<Session> {
    let login = DeviceLogin::new(settings.clone());
    let prompt = login.start().await?;
    show_prompt(&prompt);
    if sandbox_auto_approve {
        println!("sandbox: approving the code as the demo user (no browser needed)");
        sign_in::approve_device(settings, &prompt.user_code).await?;
    }
    let cancel = CancellationToken::new();
    let shown = CancellationToken::new();
    countdown(prompt.expires_at_ms, shown.clone());
    let c2 = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c2.cancel();
        }
    });
    let r = login.complete(&prompt, &cancel).await;
    shown.cancel();
    let tokens = match r {
        Ok(t) => t,
        Err(AuthError::Expired { .. }) => bail!("the code expired; run `dealflow login` again"),
        Err(AuthError::Denied { .. }) => bail!("sign-in was refused in the browser"),
        Err(e) => return Err(e.into()),
    };
    Ok(Session::from_tokens(settings.clone(), store, tokens)
        .await?
        .with_refresh_lock(crate::auth::session::default_refresh_lock()))
}

async fn print_identity(s: &Session) -> Result<()> {
    let ui = s.userinfo().await?;
    let field = |k: &str| ui.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    println!(
        "{} <{}>  ({})",
        field("name"),
        field("email"),
        s.sub().await?
    );
    Ok(())
}

fn open_keyring() -> Result<Arc<dyn SecretStore>> {
    Ok(keyring::open_default()?)
}

pub fn login(config: &Config, sandbox: bool) -> Result<ExitCode> {
    runtime()?.block_on(async {
        if sandbox {
            let (_sb, settings) = start_sandbox().await?;
            let s = device_login(&settings, Arc::new(MemoryStore::default()), true).await?;
            print!("Signed in to the sandbox as ");
            print_identity(&s).await?;
            println!("(sandbox session: held in memory, gone when this command exits)");
            return Ok(ExitCode::SUCCESS);
        }
        let settings = AuthSettings::from_config(&config.raw.auth)?;
        let store = open_keyring()?;
        let s = device_login(&settings, store.clone(), false).await?;
        print!("Signed in as ");
        print_identity(&s).await?;
        // Who the audit log names from now on: the verified `sub`, kept beside the
        // refresh token (never `$USER`).
        let who = crate::runtime::identity::SignedIn {
            emulated: false,
            sub: s.sub().await?,
            name: s
                .userinfo()
                .await
                .ok()
                .and_then(|u| u.get("name").and_then(|v| v.as_str()).map(String::from))
                .unwrap_or_default(),
        };
        crate::runtime::identity::store_sign_in(store.as_ref(), &who)?;
        println!("Refresh token stored in: {}", store.describe());
        Ok(ExitCode::SUCCESS)
    })
}

pub fn logout(config: &Config, sandbox: bool) -> Result<ExitCode> {
    if sandbox {
        println!("Sandbox sessions live in memory only; nothing to sign out.");
        return Ok(ExitCode::SUCCESS);
    }
    runtime()?.block_on(async {
        let settings = AuthSettings::from_config(&config.raw.auth)?;
        let store = open_keyring()?;
        // Whoever signs in next is someone the audit log must name afresh.
        let _ = store.delete(crate::runtime::identity::IDENTITY_ENTRY);
        match Session::resume(settings, store.clone()).await {
            Err(AuthError::NotSignedIn) => {
                println!("Not signed in.");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(e.into()),
            Ok(s) => match s.logout().await {
                Ok(()) => {
                    println!(
                        "Signed out; the refresh token was revoked and removed from {}.",
                        store.describe()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!(
                        "Removed the refresh token from {}, but revocation failed: {e}",
                        store.describe()
                    );
                    Ok(ExitCode::FAILURE)
                }
            },
        }
    })
}

pub fn whoami(config: &Config, sandbox: bool) -> Result<ExitCode> {
    runtime()?.block_on(async {
        if sandbox {
            let (_sb, mut settings) = start_sandbox().await?;
            settings.poll_unit = std::time::Duration::from_secs(1);
            let s = sign_in::session(settings).await?;
            print!("sandbox: ");
            print_identity(&s).await?;
            return Ok(ExitCode::SUCCESS);
        }
        let settings = AuthSettings::from_config(&config.raw.auth)?;
        let store = open_keyring()?;
        match Session::resume(settings, store)
            .await
            .map(|s| s.with_refresh_lock(crate::auth::session::default_refresh_lock()))
        {
            Err(AuthError::NotSignedIn) => {
                println!("Not signed in. Run `dealflow login`.");
                Ok(ExitCode::from(1))
            }
            Err(e) => Err(e.into()),
            Ok(s) => {
                print_identity(&s).await?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

pub fn auth(cmd: &AuthCmd) -> Result<ExitCode> {
    match cmd {
        AuthCmd::AgentCredential { private_key: true } => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!(
                    "Paste the agent client's private key (PEM), then Ctrl-D (or pipe it in):"
                );
            }
            let mut pem = String::new();
            std::io::Read::read_to_string(&mut stdin.lock(), &mut pem)?;
            // Checked before storing: a key that cannot sign would fail only at first use.
            crate::auth::agent::AgentAuth::private_key_pem(&pem)?;
            let store = open_keyring()?;
            store.set(crate::auth::keyring::AGENT_PRIVATE_KEY, pem.trim())?;
            println!(
                "Agent client private key stored in: {} (set auth.agent_auth_method = \"private_key_jwt\")",
                store.describe()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuthCmd::AgentCredential { private_key: false } => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("Paste the agent client secret and press Enter (or pipe it in):");
            }
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            let secret = Secret::new(line.trim().to_string());
            if secret.expose().is_empty() {
                bail!("no secret on stdin");
            }
            let store = open_keyring()?;
            let (s2, v) = (store.clone(), secret.expose().to_string());
            s2.set(AGENT_SECRET, &v)?;
            println!("Agent client secret stored in: {}", store.describe());
            Ok(ExitCode::SUCCESS)
        }
    }
}
