//! Token Vault: exchange an Auth0 access token (the user's API token, or a CIBA-issued
//! one) for the provider access token of a connected account, with the confidential
//! agent client. Results are cached in memory per (connection, subject) until shortly
//! before they expire; Auth0's full error is returned as [`AuthError::Server`].

use super::{AuthError, AuthSettings, Secret, int_field, post_form, str_field};
use crate::core::domain::Connection;
use sha2::Digest;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

const ENDPOINT: &str = "/oauth/token";
pub const GRANT_TYPE: &str =
    "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token";
pub const SUBJECT_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const REQUESTED_FEDERATED: &str =
    "http://auth0.com/oauth/token-type/federated-connection-access-token";

/// A provider access token from the vault.
#[derive(Debug, Clone)]
pub struct FederatedToken {
    pub access_token: Secret,
    pub expires_at_ms: i64,
    /// The scopes the connected account granted (space- or comma-separated on the wire).
    pub scopes: Vec<String>,
    /// RFC 8693's `issued_token_type`, as the response stated it (checked).
    pub issued_token_type: Option<String>,
}

impl FederatedToken {
    /// Which of `needed` the token lacks (the vault ignores a `scope` request parameter,
    /// so the app checks the granted scopes itself).
    pub fn missing_scopes(&self, needed: &[&str]) -> Vec<String> {
        needed
            .iter()
            .filter(|n| !self.scopes.iter().any(|s| s == *n))
            .map(|n| n.to_string())
            .collect()
    }
}

pub struct VaultClient {
    http: reqwest::Client,
    settings: AuthSettings,
    agent: super::agent::AgentAuth,
    cache: Mutex<HashMap<(Connection, String), FederatedToken>>,
    disconnected: Mutex<HashSet<Connection>>,
}

fn subject_key(subject: &str) -> String {
    hex::encode(sha2::Sha256::digest(subject.as_bytes()))
}

impl VaultClient {
    pub fn new(settings: AuthSettings, agent: impl Into<super::agent::AgentAuth>) -> VaultClient {
        VaultClient {
            http: super::http_client(),
            settings,
            agent: agent.into(),
            cache: Mutex::new(HashMap::new()),
            disconnected: Mutex::new(HashSet::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(Connection, String), FederatedToken>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn disconnected(&self) -> std::sync::MutexGuard<'_, HashSet<Connection>> {
        self.disconnected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The provider token for `connection`, from cache or by exchanging `subject_token`.
    pub async fn exchange(
        &self,
        subject_token: &str,
        connection: Connection,
    ) -> Result<FederatedToken, AuthError> {
        if self.disconnected().contains(&connection) {
            return Err(AuthError::Disconnected(connection.as_str().into()));
        }
        let key = (connection, subject_key(subject_token));
        let margin = self.settings.refresh_margin.as_millis() as i64;
        if let Some(t) = self.cache().get(&key)
            && t.expires_at_ms - margin > crate::wall::now_ms()
        {
            return Ok(t.clone());
        }
        let auth = self.agent.fields(&self.settings)?;
        let mut form = vec![
            ("grant_type", GRANT_TYPE),
            ("client_id", self.settings.agent_client_id.as_str()),
            ("subject_token", subject_token),
            ("subject_token_type", SUBJECT_ACCESS_TOKEN),
            ("requested_token_type", REQUESTED_FEDERATED),
            ("connection", connection.as_str()),
        ];
        form.extend(auth.iter().map(|(k, v)| (*k, v.as_str())));
        let v = post_form(&self.http, &self.settings, ENDPOINT, &form).await?;
        // RFC 8693 §2.2.1: what was issued. Anything but the federated provider token we
        // asked for is not something to hand a provider.
        let issued = str_field(&v, "issued_token_type");
        if let Some(t) = &issued
            && t != REQUESTED_FEDERATED
        {
            return Err(AuthError::Transport {
                endpoint: ENDPOINT.into(),
                message: format!("issued_token_type is {t:?}, not the provider token requested"),
            });
        }
        let at = str_field(&v, "access_token").ok_or_else(|| AuthError::Transport {
            endpoint: ENDPOINT.into(),
            message: "response has no access_token".into(),
        })?;
        let now = crate::wall::now_ms();
        let expires_at_ms = match (int_field(&v, "expires_in"), int_field(&v, "expires_at")) {
            (Some(s), _) => now + s * 1000,
            (None, Some(at)) => at * 1000,
            (None, None) => now,
        };
        let scopes = str_field(&v, "scope")
            .unwrap_or_default()
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let tok = FederatedToken {
            access_token: Secret::new(at),
            expires_at_ms,
            scopes,
            issued_token_type: issued,
        };
        self.cache().insert(key, tok.clone());
        Ok(tok)
    }

    /// Forget cached tokens for `connection` (after the provider answered 401).
    pub fn invalidate(&self, connection: Connection) {
        self.cache().retain(|(c, _), _| *c != connection);
    }

    /// The app-level disconnect flag: while set, `exchange` fails with
    /// [`AuthError::Disconnected`] without asking Auth0 (deleting a tokenset at Auth0 does
    /// not revoke provider tokens, so the app must refuse itself).
    pub fn set_disconnected(&self, connection: Connection, disconnected: bool) {
        if disconnected {
            self.disconnected().insert(connection);
            self.invalidate(connection);
        } else {
            self.disconnected().remove(&connection);
        }
    }
}
