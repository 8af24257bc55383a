//! Where provider tokens come from. The pipeline asks for a token for a connection on
//! behalf of a subject — the user's session, or the access token a CIBA approval issued
//! — and never sees how it was obtained. Tokens stay in memory: [`ProviderToken`]'s
//! Debug hides them.

use crate::core::domain::Connection;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A provider access token; Debug and Display never print it.
#[derive(Clone, PartialEq)]
pub struct ProviderToken {
    token: String,
    pub scopes: Vec<String>,
    pub expires_at_ms: i64,
}

impl ProviderToken {
    pub fn new(token: String, scopes: Vec<String>, expires_at_ms: i64) -> ProviderToken {
        ProviderToken {
            token,
            scopes,
            expires_at_ms,
        }
    }
    pub fn expose(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderToken")
            .field("token", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// Whose authority the exchange uses.
#[derive(Clone)]
pub enum Subject {
    /// The signed-in user's current API access token.
    User,
    /// The access token a CIBA approval issued: without the device's yes there is no
    /// token to exchange.
    Ciba(String),
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User => f.write_str("Subject::User"),
            Subject::Ciba(_) => f.write_str("Subject::Ciba([redacted])"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CredentialError {
    /// No connected account for the connection.
    #[error("{connection} is not connected")]
    NotConnected { connection: String },
    /// The token service refused, with its own words (endpoint, status, error, description).
    #[error("{endpoint} answered {status}: {error}: {description}")]
    Refused {
        endpoint: String,
        status: u16,
        error: String,
        description: String,
    },
    #[error("{endpoint}: {detail}")]
    Unavailable { endpoint: String, detail: String },
    #[error("not signed in: {0}")]
    NoSession(String),
}

pub trait Credentials: Send + Sync {
    /// A provider token for `connection`, cached until shortly before it expires.
    fn token<'a>(
        &'a self,
        connection: Connection,
        subject: &'a Subject,
    ) -> BoxFuture<'a, Result<ProviderToken, CredentialError>>;

    /// Drops any cached token (after the provider said 401).
    fn invalidate(&self, connection: Connection);

    /// The scopes the connected account granted; `None` when not connected.
    fn granted_scopes<'a>(
        &'a self,
        connection: Connection,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, CredentialError>>;
}
