//! The store checks: SQLite opened only if it exists, or Redis with its TLS and ACL
//! user; then the audit chain and the keyring checkpoint that anchors it.

use super::{Doctor, redacted};
use crate::auth::keyring::SecretStore;
use crate::cli::store_path;
use crate::config::Config;
use crate::store::{SqliteStore, Store};
use std::sync::Arc;

impl Doctor {
    /// The store, opened only if it is there: doctor must not create it.
    pub(super) fn store(&mut self, config: &Config, sandbox: bool) -> Option<Arc<dyn Store>> {
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
        let store = match crate::cli::open_redis(config) {
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
    pub(super) fn audit(&mut self, store: &dyn Store, keyring: Option<&dyn SecretStore>) {
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
}
