//! State shared by every emulator in one sandbox: what the emulated Auth0 issued is what
//! the emulated providers check, exactly as Google and Slack only accept tokens their
//! own authorization server minted.

use std::collections::HashMap;
use std::sync::Mutex;

/// A provider access token the emulated Token Vault handed out.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderGrant {
    /// Auth0 connection name: "google-oauth2" or "sign-in-with-slack".
    pub connection: String,
    /// Scopes the connected account granted (space-separated on the wire).
    pub scopes: Vec<String>,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
    /// The Auth0 user it belongs to.
    pub sub: String,
}

/// The key a sandbox's own controls (`/sandbox/phone`, `/sandbox/accounts`) ask for. The
/// port is reachable by every user of the machine; the key is only in the 0600 URL file
/// the owner's processes read, so another user cannot approve the owner's pushes.
pub struct AdminKey(String);

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey([redacted])")
    }
}

impl Default for AdminKey {
    fn default() -> Self {
        AdminKey(random_token("sbx-admin-"))
    }
}

impl AdminKey {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `Authorization: Bearer <key>`, compared in constant time.
    pub fn admits(&self, headers: &axum::http::HeaderMap) -> bool {
        let got = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        super::auth0::model::constant_eq(got.as_bytes(), self.0.as_bytes())
    }
}

#[derive(Debug, Default)]
pub struct SandboxState {
    /// What `/sandbox/...` controls ask for.
    pub admin: AdminKey,
    /// Provider access token → grant. Filled by the Token Vault exchange.
    pub provider_tokens: Mutex<HashMap<String, ProviderGrant>>,
    /// What the emulated Gmail, Calendar and Slack hold, and their fault knobs.
    pub providers: super::providers::ProviderData,
    /// The emulated Auth0 tenant: clients, users, grants, CIBA requests, connected accounts.
    pub auth0: super::auth0::model::Auth0State,
}

use crate::wall::now_ms;
pub use crate::wall::random_token;

impl SandboxState {
    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProviderGrant>> {
        self.provider_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Mints a provider token for `connection` with `scopes`, valid `ttl_ms`.
    pub fn issue_provider_token(
        &self,
        connection: &str,
        scopes: &[&str],
        sub: &str,
        ttl_ms: i64,
    ) -> String {
        let prefix = match connection {
            "sign-in-with-slack" => "xoxp-sbx-",
            // Salesforce access tokens start with the org id and a `!`.
            "salesforce" => "00DSB0000000001!sbx-",
            _ => "ya29.sbx-",
        };
        let token = random_token(prefix);
        self.lock_tokens().insert(
            token.clone(),
            ProviderGrant {
                connection: connection.to_string(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                expires_at: now_ms() + ttl_ms,
                sub: sub.to_string(),
            },
        );
        token
    }

    pub fn provider_grant(&self, token: &str) -> Option<ProviderGrant> {
        self.lock_tokens().get(token).cloned()
    }

    /// Revokes every provider token of `sub` on `connection` (the provider side of a
    /// disconnect; Auth0's own tokenset deletion does not do this).
    pub fn revoke_provider_tokens(&self, sub: &str, connection: &str) {
        self.lock_tokens()
            .retain(|_, g| !(g.sub == sub && g.connection == connection));
    }
}

/// The sandbox "phone" (the user's Guardian app): pending CIBA requests.
impl SandboxState {
    pub fn phone_pending(&self) -> Vec<super::auth0::model::PhoneRequest> {
        self.auth0.phone_requests()
    }

    pub fn phone_approve(&self, id: &str) -> bool {
        self.auth0.phone_decide(id, true)
    }

    /// Approves only some of a request's actions (positions in its details).
    pub fn phone_approve_only(&self, id: &str, keep: &[usize]) -> bool {
        self.auth0.phone_approve_only(id, keep)
    }

    pub fn phone_deny(&self, id: &str) -> bool {
        self.auth0.phone_decide(id, false)
    }

    /// What a user does in the provider's security settings (`dealflow sandbox revoke`):
    /// takes `scopes` back from dealflow, or the whole grant when `scopes` is empty. The
    /// vault's record and the provider tokens already handed out both lose them. Returns
    /// the scopes left, or `None` when `sub` has no account on `connection`.
    pub fn revoke_grant(
        &self,
        sub: &str,
        connection: &str,
        scopes: &[String],
    ) -> Option<Vec<String>> {
        if scopes.is_empty() {
            return self.disconnect_account(sub, connection).then(Vec::new);
        }
        let left = self.auth0.remove_scopes(sub, connection, scopes)?;
        // (Taking back what was not granted changes nothing; the caller says so.)
        for g in self.lock_tokens().values_mut() {
            if g.sub == sub && g.connection == connection {
                g.scopes.retain(|s| !scopes.contains(s));
            }
        }
        Some(left)
    }

    /// App-level disconnect as the sandbox models it: the tokenset leaves the vault and
    /// the provider tokens already issued are revoked at the provider.
    pub fn disconnect_account(&self, sub: &str, connection: &str) -> bool {
        let removed = self.auth0.delete_connected_account(sub, connection);
        self.revoke_provider_tokens(sub, connection);
        removed
    }
}
