//! `dealflow doctor`: every check, in the order they depend on each other (config →
//! auth.domain → the tenant's discovery document → keyring and sign-in → store →
//! model), so the first line that is not `ok` is the one to fix first. A failing check
//! never stops the ones after it; a check that needs what failed says it was skipped.
//!
//! Doctor changes nothing: it opens the store only if its file exists, never creates
//! the consent key, never seeds the sandbox, writes no log file, and asks the model API
//! only to count tokens (free), never for a completion. It prints no secret.

use super::{Cli, store_path};
use crate::auth::keyring::{self, REFRESH_TOKEN, SecretStore};
use crate::config::Config;
use crate::core::text::line;
use crate::store::{SqliteStore, Store};
use anyhow::{Context, Result, bail};
use std::fmt::Display;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one network check may take.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Doctor {
    problems: usize,
}

impl Doctor {
    fn say(&self, status: &str, what: &str, text: impl Display) {
        println!("{status:<6}{what:<10}{text}");
    }
    fn ok(&self, what: &str, text: impl Display) {
        self.say("ok", what, text);
    }
    /// Something to do that is not broken (not signed in yet, no API key).
    fn todo(&self, what: &str, text: impl Display) {
        self.say("todo", what, text);
    }
    fn fail(&mut self, what: &str, text: impl Display) {
        self.problems += 1;
        self.say("FAIL", what, text);
    }
    fn skip(&self, what: &str, why: &str) {
        self.say("skip", what, format!("not checked: {why}"));
    }
}

pub fn run(cli: &Cli) -> Result<ExitCode> {
    let mut d = Doctor::default();
    let config = d.config(cli);
    let keyring = super::establish_identity(cli.sandbox);
    let rt = super::exec::runtime()?;
    let domain_set = match &config {
        _ if cli.sandbox => d.sandbox_auth(),
        Some(c) => d.auth(c, &rt),
        None => {
            d.skip("auth", "the config did not load");
            d.skip("tenant", "the config did not load");
            false
        }
    };
    d.keyring(config.as_ref(), cli.sandbox, domain_set);
    let store = match &config {
        Some(c) => d.store(c, cli.sandbox),
        None => {
            d.skip("store", "the config did not load");
            None
        }
    };
    if let Some(store) = &store {
        d.audit(store.as_ref(), keyring.as_deref());
    }
    match &config {
        Some(c) => d.model(c, &rt),
        None => d.skip("model", "the config did not load"),
    }
    if let (Some(c), Some(store)) = (&config, &store) {
        d.suggester(c, store.as_ref());
    }
    if let Some(store) = &store {
        d.device_consent(store.as_ref());
    }
    if let Some(c) = &config {
        d.crm(c, cli.sandbox);
    }
    d.service(cli.sandbox);
    Ok(if d.problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

impl Doctor {
    fn config(&mut self, cli: &Cli) -> Option<Config> {
        let path = cli
            .config
            .clone()
            .or_else(crate::config::default_config_path);
        match super::load_config(cli) {
            Ok(c) => {
                match (&c.file, path) {
                    (Some(p), _) => self.ok("config", p.display()),
                    (None, Some(p)) => self.todo(
                        "config",
                        format!(
                            "{} does not exist: defaults in use (`dealflow init` writes it)",
                            p.display()
                        ),
                    ),
                    (None, None) => self.todo("config", "no config directory: defaults in use"),
                }
                Some(c)
            }
            Err(e) => {
                self.fail("config", format!("{e:#}"));
                None
            }
        }
    }

    fn sandbox_auth(&self) -> bool {
        self.ok("auth", "sandbox (emulated Auth0 on 127.0.0.1)");
        self.ok("tenant", "sandbox: nothing to reach");
        true
    }

    /// auth.domain, then the tenant behind it. Returns whether a domain is set.
    fn auth(&mut self, config: &Config, rt: &tokio::runtime::Runtime) -> bool {
        let a = &config.raw.auth;
        if a.domain.trim().is_empty() {
            self.todo(
                "auth",
                "auth.domain is not set: `dealflow init` sets up your tenant (or try `dealflow --sandbox`)",
            );
            self.skip("tenant", "no auth.domain");
            return false;
        }
        let base = tenant_base(&a.domain);
        if a.client_id.trim().is_empty() {
            self.todo(
                "auth",
                format!("{base}; auth.client_id is not set (`dealflow init` sets it)"),
            );
        } else {
            self.ok(
                "auth",
                format!("{base}, login client {}", line(&a.client_id)),
            );
        }
        self.tenant(&base, rt);
        true
    }

    /// A real request: the tenant's OpenID discovery document, checked for what dealflow
    /// uses (the same checks `dealflow init` makes).
    fn tenant(&mut self, base: &str, rt: &tokio::runtime::Runtime) {
        let started = Instant::now();
        let answer = rt.block_on(super::init_cmd::discover(base));
        let ms = started.elapsed().as_millis();
        match answer {
            Ok(checks) => {
                let missing: Vec<String> = checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| format!("{} ({})", c.what, c.fix))
                    .collect();
                if missing.is_empty() {
                    self.ok(
                        "tenant",
                        format!(
                            "discovery answered in {ms} ms: device flow, CIBA, token endpoint, JWKS"
                        ),
                    );
                } else {
                    self.fail("tenant", format!("missing: {}", missing.join("; ")));
                }
            }
            Err(e) => self.fail(
                "tenant",
                format!(
                    "{} ({ms} ms) — check auth.domain",
                    line(&outer_and_root(&e))
                ),
            ),
        }
    }

    fn keyring(&mut self, config: Option<&Config>, sandbox: bool, domain_set: bool) {
        if sandbox {
            let consent = match keyring::open_default() {
                Ok(k) => k.describe(),
                Err(_) => "a 0600 file in the state dir (no OS keyring here)".into(),
            };
            self.ok(
                "keyring",
                format!("sandbox sign-in in memory; consent key and audit checkpoint in {consent}"),
            );
            return;
        }
        let store = match keyring::open_default() {
            Ok(s) => s,
            Err(e) => {
                self.fail("keyring", e);
                self.skip("login", "no keyring");
                return;
            }
        };
        self.ok("keyring", store.describe());
        self.login(store.as_ref(), domain_set);
        let method = config.map_or("client_secret_post", |c| &c.raw.auth.agent_auth_method);
        let (entry, what, flag) = keyring::agent_credential_entry(method);
        match store.get(entry) {
            Ok(Some(_)) => self.ok("agent", format!("client {what} present")),
            Ok(None) => self.todo(
                "agent",
                format!("no agent client {what}: run `dealflow auth agent-credential{flag}`"),
            ),
            Err(e) => self.fail("agent", e),
        }
    }

    fn login(&mut self, store: &dyn SecretStore, domain_set: bool) {
        match store.get(REFRESH_TOKEN) {
            Ok(Some(_)) => {
                let who = crate::runtime::identity::stored_sign_in(store)
                    .map(|s| format!(" ({})", line(&s.name)))
                    .unwrap_or_default();
                self.ok("login", format!("refresh token present{who}"));
            }
            Ok(None) if domain_set => self.todo("login", "not signed in: run `dealflow login`"),
            Ok(None) => self.todo(
                "login",
                "not signed in; `dealflow login` needs auth.domain first (above)",
            ),
            Err(e) => self.fail("login", e),
        }
    }

    /// The store, opened only if it is there: doctor must not create it.
    fn store(&mut self, config: &Config, sandbox: bool) -> Option<Arc<dyn Store>> {
        if !config.raw.store.url.is_empty() {
            return self.redis(config);
        }
        let path = match store_path(config, sandbox) {
            Ok(p) => p,
            Err(e) => {
                self.fail("store", format!("{e:#}"));
                return None;
            }
        };
        if !path.exists() {
            let first = if sandbox {
                "the first --sandbox command creates it with demo data"
            } else {
                "the first command that needs it creates it"
            };
            self.ok(
                "store",
                format!("{} not created yet ({first})", path.display()),
            );
            return None;
        }
        match SqliteStore::open(&path) {
            Ok(s) => {
                self.ok("store", s.describe());
                Some(Arc::new(s))
            }
            Err(e) => {
                self.fail("store", e);
                None
            }
        }
    }

    fn redis(&mut self, config: &Config) -> Option<Arc<dyn Store>> {
        let url = &config.raw.store.url;
        // Opening only: doctor changes nothing, so an earlier namespace is adopted by the
        // next command, not here.
        let store = match super::open_redis(config) {
            Ok(s) => s,
            Err(e) if crate::runtime::identity::current().signed_in.is_none() => {
                self.fail("store", format!("{e:#}"));
                return None;
            }
            Err(e) => {
                let why = format!("{e:#}").replace(url.as_str(), &redacted(url));
                self.fail(
                    "store",
                    format!("{why} — is the server up? check store.url"),
                );
                return None;
            }
        };
        self.ok("store", store.describe());
        match store.health() {
            Ok(h) => self.ok(
                "redis",
                format!(
                    "PING {:.1} ms, namespace {} ({} keys)",
                    h.latency.as_secs_f64() * 1000.0,
                    h.namespace,
                    h.keys_in_namespace
                ),
            ),
            Err(e) => self.fail("redis", format!("{e} — check store.url and the server")),
        }
        self.redis_tls(config, &store);
        self.redis_acl(&store);
        Some(Arc::new(store))
    }

    /// Whether the Redis traffic is encrypted, and against what the server is verified.
    fn redis_tls(&self, config: &Config, store: &crate::store::RedisStore) {
        let ca = &config.raw.store.ca_file;
        if store.tls() {
            let against = if ca.is_empty() {
                "the system's trusted roots".to_string()
            } else {
                format!("store.ca_file {ca}")
            };
            self.ok(
                "tls",
                format!("TLS on: server certificate verified against {against}"),
            );
            return;
        }
        let host = url::Url::parse(&config.raw.store.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        if matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]" | "::1") {
            self.ok("tls", "TLS off (a server on this machine)");
        } else {
            self.todo(
                "tls",
                format!("TLS off: actions and the audit log cross the network to {host} in clear text — use rediss://"),
            );
        }
    }

    /// The ACL user the store connects as, and whether it reaches less than everything.
    fn redis_acl(&self, store: &crate::store::RedisStore) {
        match store.acl_report() {
            Ok(r) if r.narrower => self.ok(
                "acl",
                format!("Redis user {}: narrower than the default user (it does not reach every key and command)", r.user),
            ),
            Ok(r) => self.todo(
                "acl",
                format!("Redis user {}: reaches every key, like the default user — anyone with it can read and change your data; a team admin makes you a narrow one (`dealflow team add-member`)", r.user),
            ),
            Err(e) => self.todo("acl", format!("cannot tell which Redis user is in use: {e}")),
        }
    }

    /// The audit chain, and the keyring checkpoint that anchors it.
    fn audit(&mut self, store: &dyn Store, keyring: Option<&dyn SecretStore>) {
        match store.verify_audit() {
            Ok(Ok(n)) => self.ok("audit", format!("chain verifies ({n} entries)")),
            Ok(Err(b)) => self.fail(
                "audit",
                format!("{b} — run `dealflow audit verify` for details"),
            ),
            Err(e) => self.fail("audit", e),
        }
        self.anchor(store, keyring);
    }

    fn anchor(&mut self, store: &dyn Store, keyring: Option<&dyn SecretStore>) {
        use crate::runtime::seal::{Anchor, CONSENT_KEY_ENTRY, KeyringAnchor};
        // Opening the anchor without a key would create one: check first.
        let has_key = keyring.is_some_and(|k| matches!(k.get(CONSENT_KEY_ENTRY), Ok(Some(_))));
        if !has_key {
            self.ok(
                "anchor",
                "no consent key in the keyring yet (made on first use): nothing anchored",
            );
            return;
        }
        match KeyringAnchor::open().map(|a| a.check(store)) {
            Ok(Ok(a @ (Anchor::Holds { .. } | Anchor::Missing))) => {
                self.ok(
                    "anchor",
                    format!("{a}; consent is sealed with your keyring's key"),
                );
            }
            Ok(Ok(bad)) => self.fail(
                "anchor",
                format!("{bad} — the log was changed outside dealflow"),
            ),
            Ok(Err(e)) => self.fail("anchor", e),
            Err(e) => self.fail("anchor", e),
        }
    }

    fn model(&mut self, config: &Config, rt: &tokio::runtime::Runtime) {
        let llm = &config.raw.llm;
        let Some(key) = crate::llm::ApiKey::from_env().and(std::env::var("ANTHROPIC_API_KEY").ok())
        else {
            self.todo(
                "model",
                "no ANTHROPIC_API_KEY: Chat and the suggester use the offline planner (simple intents, rules over the pipeline)",
            );
            return;
        };
        let started = Instant::now();
        match rt.block_on(count_tokens(llm, key.trim())) {
            Ok(()) => self.ok(
                "model",
                format!(
                    "Claude {} at {} answered in {} ms; the key is accepted",
                    line(&llm.model),
                    line(&llm.base_url),
                    started.elapsed().as_millis()
                ),
            ),
            Err(e) => self.fail(
                "model",
                format!(
                    "{} — Chat and the suggester cannot reach Claude",
                    line(&outer_and_root(&e))
                ),
            ),
        }
    }

    /// The suggestion engine's last run and today's spend, from the audit log.
    fn suggester(&mut self, config: &Config, store: &dyn Store) {
        use crate::runtime::suggester::{RUNS_SUBJECT, tokens_today};
        let now = super::now_ms();
        let budget = config.raw.agent.daily_token_budget;
        let used = tokens_today(store, now).unwrap_or(0);
        let spend = if budget > 0 {
            format!("{used} of {budget} tokens today")
        } else {
            format!("{used} tokens today")
        };
        let last = match store.audit_about(RUNS_SUBJECT, now - 30 * 86_400_000) {
            Ok(runs) => runs.into_iter().next(),
            Err(e) => return self.fail("suggest", e),
        };
        match last {
            None => self.ok("suggest", format!("no run yet; {spend}")),
            Some(e) if e.event == "agent.suggest_failed" => self.fail(
                "suggest",
                format!(
                    "last run {} failed: {}; {spend}",
                    when(e.ts),
                    line(e.detail["error"].as_str().unwrap_or("?"))
                ),
            ),
            Some(e) => self.ok(
                "suggest",
                format!(
                    "last run {}: {} filed; {spend}",
                    when(e.ts),
                    e.detail["filed"].as_array().map_or(0, Vec::len)
                ),
            ),
        }
        // Who is working right now: one engine and one gatherer at a time per user.
        match store.leases(now) {
            Ok(held) if held.is_empty() => self.ok("leases", "none held (no run in progress)"),
            Ok(held) => self.ok(
                "leases",
                held.iter()
                    .map(|l| {
                        let gone = if crate::runtime::holder_is_gone(&l.holder) {
                            " (that process is gone: the next run takes it over)"
                        } else {
                            ""
                        };
                        format!(
                            "{} held by {} until {}{gone}",
                            l.name,
                            l.holder,
                            when(l.until)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(e) => self.fail("leases", e),
        }
    }
}

impl Doctor {
    /// Where the deals live. Salesforce is not asked here (that needs a Token Vault
    /// exchange, which changes nothing but costs a call): `dealflow status` reads it.
    fn crm(&mut self, c: &crate::config::Config, sandbox: bool) {
        use crate::core::domain::CrmProvider;
        let sf = &c.raw.crm.salesforce;
        match c.crm {
            CrmProvider::Local => self.ok("crm", "dealflow's own store (crm.provider = \"local\")"),
            CrmProvider::Salesforce if sandbox => self.ok(
                "crm",
                "Salesforce: the sandbox's emulated org (`dealflow sandbox salesforce` shows it)",
            ),
            CrmProvider::Salesforce => self.ok(
                "crm",
                format!(
                    "Salesforce through Token Vault's salesforce connection; instance {}; creates keyed by {}{}",
                    if sf.instance_url.is_empty() {
                        format!("from the identity service at {}", sf.login_url)
                    } else {
                        sf.instance_url.clone()
                    },
                    sf.external_id_field,
                    if c.crm_stages.is_empty() {
                        String::new()
                    } else {
                        format!("; {} stage name(s) of your own", c.crm_stages.len())
                    }
                ),
            ),
        }
    }

    /// How the last device push was proven: by the actions the token carries back
    /// (RAR), or by the batch hash in our own log because the tenant refused or ignored
    /// them. Read from the log; doctor never pushes to a phone to find out.
    fn device_consent(&mut self, store: &dyn Store) {
        use crate::runtime::batch::PUSHES_SUBJECT;
        use crate::runtime::rar::RAR_TYPE;
        let since = super::now_ms() - 30 * 86_400_000;
        let last = match store.audit_about(PUSHES_SUBJECT, since) {
            Ok(entries) => entries.into_iter().next(),
            Err(e) => return self.fail("device consent", e),
        };
        let Some(e) = last else {
            return self.ok(
                "device consent",
                format!(
                    "no push in 30 days; the first says whether the tenant takes each action as an authorization_details entry (type {RAR_TYPE})"
                ),
            );
        };
        let d = &e.detail;
        let why = d["details_refused"]
            .as_str()
            .or(d["details_ignored"].as_str())
            .map(line);
        match (d["proof"].as_str(), why) {
            (Some("authorization_details"), _) => self.ok(
                "device consent",
                format!(
                    "each pushed action is an authorization_details entry the token carries back (RFC 9396); last push {}",
                    when(e.ts)
                ),
            ),
            (_, Some(why)) => self.todo(
                "device consent",
                format!(
                    "hash-bound batches (the phone shows a count, and only our log proves what was approved): {why}. Register the type {RAR_TYPE} on the dealflow API (docs/auth.md)"
                ),
            ),
            _ => self.ok(
                "device consent",
                format!("hash-bound batch, last push {}", when(e.ts)),
            ),
        }
    }

    /// The background service, as its status file says (reading it changes nothing).
    /// Not running is not a problem; one that died without stopping is.
    fn service(&mut self, sandbox: bool) {
        use crate::runtime::service::{Liveness, ServiceStatus, status_path};
        let Some(s) = status_path(sandbox).and_then(|p| ServiceStatus::read(&p)) else {
            self.ok(
                "service",
                "not running (`dealflow service install` runs the agent with no terminal open)",
            );
            return;
        };
        match s.liveness() {
            Liveness::Running => self.ok(
                "service",
                format!(
                    "running, pid {}; last proposed {}",
                    s.pid,
                    s.last_proposed.map_or_else(|| "nothing yet".into(), when)
                ),
            ),
            Liveness::Stopped => self.ok("service", "not running (stopped cleanly)"),
            Liveness::Died => self.fail(
                "service",
                format!(
                    "pid {} ended without stopping (killed or crashed): `journalctl --user -u dealflow` or the log file says why",
                    s.pid
                ),
            ),
        }
    }
}

/// What failed and why at the bottom, without the layers between (an HTTP client
/// repeats the URL in each).
fn outer_and_root(e: &anyhow::Error) -> String {
    let root = e.root_cause().to_string();
    let outer = e.to_string();
    if outer == root {
        outer
    } else {
        format!("{outer}: {root}")
    }
}

fn when(ts: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ts).map_or_else(
        || "?".into(),
        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// The tenant's base URL as sign-in will use it (https:// unless the domain says
/// otherwise; config has already refused plain http off loopback).
fn tenant_base(domain: &str) -> String {
    let d = domain.trim().trim_end_matches('/');
    if d.starts_with("http://") || d.starts_with("https://") {
        d.to_string()
    } else {
        format!("https://{d}")
    }
}

/// `url` with any password in it replaced.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Asks the Messages API to count the tokens of a one-word message: it proves the base
/// URL answers, the key is accepted and the model exists, and costs nothing.
async fn count_tokens(llm: &crate::config::LlmSection, key: &str) -> Result<()> {
    let url = format!(
        "{}/v1/messages/count_tokens",
        llm.base_url.trim_end_matches('/')
    );
    let http = reqwest::Client::builder()
        .timeout(NETWORK_TIMEOUT)
        .build()?;
    let resp = http
        .post(&url)
        .header("x-api-key", key)
        .header(
            "anthropic-version",
            crate::llm::anthropic::ANTHROPIC_VERSION,
        )
        .json(&serde_json::json!({
            "model": llm.model,
            "messages": [{"role": "user", "content": "ping"}],
        }))
        .send()
        .await
        .with_context(|| format!("{url}: no answer"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let kind = body["error"]["type"].as_str().unwrap_or("");
    let said = match body["error"]["message"].as_str() {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    };
    match status.as_u16() {
        401 => bail!("{url}: HTTP 401: the API key was refused (ANTHROPIC_API_KEY)"),
        404 if kind == "not_found_error" => {
            bail!(
                "{url}: HTTP 404{said} (is llm.model {:?} right?)",
                llm.model
            )
        }
        404 => bail!("{url}: HTTP 404: no Messages API there (is llm.base_url right?)"),
        code => bail!("{url}: HTTP {code} {kind}{said}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{redacted, tenant_base};

    #[test]
    fn a_bare_domain_is_https() {
        assert_eq!(tenant_base("t.eu.auth0.com/"), "https://t.eu.auth0.com");
        assert_eq!(tenant_base("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }

    #[test]
    fn a_password_in_a_url_is_not_shown() {
        assert_eq!(
            redacted("redis://:hunter2@db.example:6379"),
            "redis://:***@db.example:6379"
        );
        assert_eq!(redacted("redis://127.0.0.1:1"), "redis://127.0.0.1:1");
    }
}
