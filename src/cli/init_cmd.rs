//! `dealflow init`: a real tenant set up in one command. Asks for (or takes flags for)
//! the tenant domain, the two client ids and the API audience; reads the tenant's OpenID
//! discovery document to check the grants dealflow needs are there; writes
//! `config.toml`; says which Auth0 dashboard settings discovery cannot see; then offers
//! to sign in.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Tenant domain, e.g. your-tenant.us.auth0.com (https:// is assumed).
    #[arg(long)]
    pub domain: Option<String>,
    /// The login client (Native application, Device Code grant).
    #[arg(long)]
    pub client_id: Option<String>,
    /// The agent client (confidential, linked to the dealflow API: Token Vault and CIBA).
    #[arg(long)]
    pub agent_client_id: Option<String>,
    /// The dealflow API's identifier (audience).
    #[arg(long)]
    pub audience: Option<String>,
    /// Replace an existing config file.
    #[arg(long)]
    pub force: bool,
    /// Do not offer to sign in afterwards.
    #[arg(long)]
    pub no_login: bool,
}

/// One discovery check: what, and whether the tenant has it.
pub struct Check {
    pub what: &'static str,
    pub ok: bool,
    pub fix: &'static str,
}

/// Reads `{base}/.well-known/openid-configuration` and checks what dealflow uses.
pub async fn discover(base: &str) -> Result<Vec<Check>> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        base.trim_end_matches('/')
    );
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let resp = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url}: the tenant did not answer"))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("{url}: HTTP {} (is the domain right?)", status.as_u16());
    }
    let d: serde_json::Value = resp
        .json()
        .await
        .with_context(|| format!("{url}: not an OpenID discovery document"))?;
    let has = |k: &str| {
        d.get(k)
            .and_then(|v| v.as_str())
            .is_some_and(|s| !s.is_empty())
    };
    let grants: Vec<&str> = d
        .get("grant_types_supported")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    // Auth0 does not always list every grant; absence from the list is only a failure
    // when the list exists and the endpoint is missing too.
    let grant = |g: &str| grants.is_empty() || grants.contains(&g);
    let issuer_ok = d
        .get("issuer")
        .and_then(|v| v.as_str())
        .is_some_and(|i| i.trim_end_matches('/') == base.trim_end_matches('/'));
    Ok(vec![
        Check {
            what: "issuer matches the domain",
            ok: issuer_ok,
            fix: "use the tenant's own domain (or its custom domain) exactly",
        },
        Check {
            what: "token endpoint",
            ok: has("token_endpoint"),
            fix: "the tenant's discovery document has no token_endpoint",
        },
        Check {
            what: "device authorization (sign-in)",
            ok: has("device_authorization_endpoint")
                && grant("urn:ietf:params:oauth:grant-type:device_code"),
            fix: "enable the Device Code grant on the login application (Advanced Settings > Grant Types)",
        },
        Check {
            what: "CIBA (push approvals)",
            ok: has("backchannel_authentication_endpoint"),
            fix: "enable CIBA on the tenant and the agent application (Auth0 Guardian push)",
        },
        Check {
            what: "JWKS (token verification)",
            ok: has("jwks_uri"),
            fix: "the tenant's discovery document has no jwks_uri",
        },
    ])
}

fn ask(label: &str, default: &str) -> Result<String> {
    let stdin = std::io::stdin();
    let mut out = std::io::stderr();
    if default.is_empty() {
        write!(out, "{label}: ")?;
    } else {
        write!(out, "{label} [{default}]: ")?;
    }
    out.flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let v = line.trim();
    Ok(if v.is_empty() {
        default.into()
    } else {
        v.into()
    })
}

fn value(flag: Option<String>, label: &str, default: &str, flag_name: &str) -> Result<String> {
    if let Some(v) = flag {
        return Ok(v.trim().to_string());
    }
    if std::io::stdin().is_terminal() {
        let v = ask(label, default)?;
        if !v.is_empty() {
            return Ok(v);
        }
    } else if !default.is_empty() {
        return Ok(default.into());
    }
    bail!("{label} is needed: pass {flag_name}")
}

fn write_config(path: &Path, auth: &crate::config::AuthSection, force: bool) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{} exists: pass --force to replace it (your other settings would be kept only if you copy them back)",
            path.display()
        );
    }
    let text = format!(
        "# Written by `dealflow init`; every key: config.example.toml.\n\n[auth]\ndomain = {}\nclient_id = {}\nagent_client_id = {}\naudience = {}\n",
        toml::Value::String(auth.domain.clone()),
        toml::Value::String(auth.client_id.clone()),
        toml::Value::String(auth.agent_client_id.clone()),
        toml::Value::String(auth.audience.clone()),
    );
    // Checked the way every start will read it before it is written.
    crate::config::Config::from_parts(Some((path, &text)), &[]).map_err(anyhow::Error::msg)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub fn run(config_path: Option<PathBuf>, args: InitArgs) -> Result<ExitCode> {
    let path = config_path
        .or_else(crate::config::default_config_path)
        .context("no home directory for the config file: pass --config")?;
    let defaults = crate::config::AuthSection::default();
    let domain = value(args.domain, "Tenant domain", "", "--domain")?;
    let client_id = value(args.client_id, "Login client id", "", "--client-id")?;
    let agent_client_id = value(
        args.agent_client_id,
        "Agent client id",
        "",
        "--agent-client-id",
    )?;
    let audience = value(
        args.audience,
        "API audience",
        &defaults.audience,
        "--audience",
    )?;
    let auth = crate::config::AuthSection {
        domain,
        client_id,
        agent_client_id,
        audience,
        ..defaults
    };
    let settings = crate::auth::AuthSettings::from_config(&auth)?;
    let rt = super::exec::runtime()?;
    let checks = rt.block_on(discover(&settings.base_url))?;
    println!("Tenant {}:", settings.base_url);
    let mut missing = 0;
    for c in &checks {
        if c.ok {
            println!("  ok    {}", c.what);
        } else {
            missing += 1;
            println!("  FAIL  {} — {}", c.what, c.fix);
        }
    }
    if missing > 0 {
        bail!(
            "the tenant lacks {missing} thing(s) dealflow needs; fix them and run `dealflow init` again (nothing was written)"
        );
    }
    write_config(&path, &auth, args.force)?;
    println!("\nWrote {}", path.display());
    println!("\nDiscovery cannot see these; check them in the Auth0 dashboard:");
    for step in [
        "the API (audience above) allows offline access (refresh tokens), with rotation on",
        "the login application is Native, with the Device Code grant",
        "the agent application is a confidential client linked to the API, with Token Vault and CIBA grants",
        "Token Vault is on for the google-oauth2 and sign-in-with-slack connections",
        "the My Account API is activated (connected accounts) for the login application",
    ] {
        println!("  · {step}");
    }
    println!("\nNext: `dealflow auth agent-credential` (the agent client's secret, from stdin)");
    if !args.no_login && std::io::stdin().is_terminal() {
        let yes = ask("Sign in now? (Y/n)", "y")?;
        if yes.eq_ignore_ascii_case("y") || yes.eq_ignore_ascii_case("yes") {
            let config = crate::config::Config::load(Some(&path), true, &[])?;
            return super::auth_cmd::login(&config, false);
        }
    }
    println!("then `dealflow login`.");
    Ok(ExitCode::SUCCESS)
}
