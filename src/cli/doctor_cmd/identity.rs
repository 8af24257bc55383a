//! The checks up to sign-in: the config file, auth.domain and the tenant's discovery
//! document, the keyring (consent key, agent credential) and the stored refresh token.

use super::{Doctor, outer_and_root, tenant_base};
use crate::auth::keyring::{self, REFRESH_TOKEN, SecretStore};
use crate::cli::Cli;
use crate::config::Config;
use crate::core::text::line;
use std::time::Instant;

impl Doctor {
    pub(super) fn config(&mut self, cli: &Cli) -> Option<Config> {
        let path = cli
            .config
            .clone()
            .or_else(crate::config::default_config_path);
        match crate::cli::load_config(cli) {
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

    pub(super) fn sandbox_auth(&self) -> bool {
        self.ok("auth", "sandbox (emulated Auth0 on 127.0.0.1)");
        self.ok("tenant", "sandbox: nothing to reach");
        true
    }

    /// auth.domain, then the tenant behind it. Returns whether a domain is set.
    pub(super) fn auth(&mut self, config: &Config, rt: &tokio::runtime::Runtime) -> bool {
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
        let answer = rt.block_on(crate::cli::init_cmd::discover(base));
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

    pub(super) fn keyring(&mut self, config: Option<&Config>, sandbox: bool, domain_set: bool) {
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
}
