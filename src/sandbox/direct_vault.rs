//! A stand-in for the Token Vault client that mints tokens straight from the emulator's
//! state, for tests of the pipeline's own logic (the real client exchanges over HTTP).
//! It caches like the real one and counts exchanges, so tests can assert "one exchange
//! per connection per batch".

use super::state::SandboxState;
use crate::core::domain::Connection;
use crate::runtime::credentials::{
    BoxFuture, CredentialError, Credentials, ProviderToken, Subject,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct DirectVault {
    pub state: Arc<SandboxState>,
    pub sub: String,
    /// Connection → granted scopes (absent = not connected).
    pub granted: Mutex<HashMap<Connection, Vec<String>>>,
    cache: Mutex<HashMap<Connection, ProviderToken>>,
    pub exchanges: AtomicU64,
    pub ttl_ms: i64,
}

impl DirectVault {
    pub fn new(state: Arc<SandboxState>) -> DirectVault {
        let mut granted = HashMap::new();
        granted.insert(
            Connection::Google,
            [
                "https://www.googleapis.com/auth/gmail.send",
                "https://www.googleapis.com/auth/gmail.compose",
                "https://www.googleapis.com/auth/gmail.metadata",
                "https://www.googleapis.com/auth/calendar.events",
                "https://www.googleapis.com/auth/calendar.readonly",
            ]
            .map(String::from)
            .to_vec(),
        );
        granted.insert(
            Connection::Slack,
            ["chat:write", "channels:read"].map(String::from).to_vec(),
        );
        DirectVault {
            state,
            sub: "auth0|sandbox-demo".into(),
            granted: Mutex::new(granted),
            cache: Mutex::new(HashMap::new()),
            exchanges: AtomicU64::new(0),
            ttl_ms: 3_600_000,
        }
    }

    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::SeqCst)
    }
}

impl Credentials for DirectVault {
    fn token<'a>(
        &'a self,
        connection: Connection,
        _subject: &'a Subject,
    ) -> BoxFuture<'a, Result<ProviderToken, CredentialError>> {
        Box::pin(async move {
            let now = super::state::now_ms();
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = cache.get(&connection)
                && t.expires_at_ms > now + 60_000
            {
                return Ok(t.clone());
            }
            let scopes = self
                .granted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&connection)
                .cloned()
                .ok_or_else(|| CredentialError::NotConnected {
                    connection: connection.as_str().into(),
                })?;
            let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let token =
                self.state
                    .issue_provider_token(connection.as_str(), &refs, &self.sub, self.ttl_ms);
            self.exchanges.fetch_add(1, Ordering::SeqCst);
            let t = ProviderToken::new(token, scopes, now + self.ttl_ms);
            cache.insert(connection, t.clone());
            Ok(t)
        })
    }

    fn invalidate(&self, connection: Connection) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&connection);
    }

    fn granted_scopes<'a>(
        &'a self,
        connection: Connection,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, CredentialError>> {
        Box::pin(async move {
            Ok(self
                .granted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&connection)
                .cloned())
        })
    }
}
