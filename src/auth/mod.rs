//! The Auth0 client: device-flow sign-in (login client, public), Token Vault exchange and
//! CIBA (agent client, confidential), connected accounts (My Account API), and the
//! keyring that holds the refresh token and the agent secret.
//!
//! Hand-rolled over reqwest (RFC 8628 / OpenID CIBA / Auth0 Token Vault), no oauth2 crate.
//! Tokens are [`Secret`]s: their Debug/Display print `[redacted]`; they live in memory
//! or in the keyring and never in a log line, the store, an error or stdout.

pub mod agent;
pub mod ciba;
pub mod connect;
pub mod device;
pub mod keyring;
pub mod session;
pub mod vault;

use serde::Deserialize;
use std::time::Duration;

/// A credential. Debug and Display never show it; `.expose()` does, on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything that can go wrong talking to Auth0. Display never contains a token:
/// endpoints are paths, and the body fields are Auth0's own `error`/`error_description`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    /// Auth0 answered with an error body (`{error, error_description}`).
    #[error("{endpoint}: HTTP {status} {error}: {description}")]
    Server {
        endpoint: String,
        status: u16,
        error: String,
        description: String,
        /// `interval` from a slow_down body.
        interval: Option<u64>,
        /// `Retry-After` header (seconds).
        retry_after: Option<u64>,
    },
    /// The request never got an answer (connection refused, timeout, bad body).
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    /// The device code or CIBA request expired before the user answered.
    #[error("{endpoint}: the request expired before it was approved")]
    Expired { endpoint: String },
    /// The user refused the device sign-in.
    #[error("{endpoint}: access denied by the user")]
    Denied { endpoint: String },
    /// Cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// Nobody is signed in (no refresh token in the keyring).
    #[error("not signed in: run `dealflow login`")]
    NotSignedIn,
    /// The refresh token was refused (revoked, expired, reused): it has been removed
    /// from the keyring, and only a new sign-in helps.
    #[error(
        "your sign-in is no longer valid ({0}); the dead refresh token was removed from the keyring: run `dealflow login`"
    )]
    SignInEnded(String),
    /// The app disconnected this connection; no exchange is attempted.
    #[error("{0} is disconnected in dealflow; reconnect it first")]
    Disconnected(String),
    /// Missing configuration or credential (e.g. no agent secret in the keyring).
    #[error("{0}")]
    Config(String),
    /// A token failed verification (signature, issuer, audience, expiry).
    #[error("token verification failed: {0}")]
    Invalid(String),
    /// The keyring failed.
    #[error("keyring: {0}")]
    Keyring(String),
}

impl AuthError {
    /// Auth0's `error` code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AuthError::Server { error, .. } => Some(error),
            _ => None,
        }
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            AuthError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Where Auth0 is and which clients to use.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `https://TENANT.auth0.com` or the sandbox's `http://127.0.0.1:PORT` (no trailing slash).
    pub base_url: String,
    /// The login (native, public) client.
    pub login_client_id: String,
    /// The agent (confidential) client.
    pub agent_client_id: String,
    /// The dealflow API audience.
    pub audience: String,
    /// How long one protocol second lasts for polling (1 s; the sandbox in tests runs faster).
    pub poll_unit: Duration,
    /// How a poll waits its interval (the timer; tests record it instead of timing it).
    pub poll_wait: crate::wall::Wait,
    /// Renew cached tokens this long before they expire.
    pub refresh_margin: Duration,
    /// Sandbox only: the key its own controls ask for (see `sandbox::state::AdminKey`),
    /// which the sandbox's auto-approved sign-in presents.
    pub sandbox_key: Option<Secret>,
}

impl AuthSettings {
    pub fn from_config(a: &crate::config::AuthSection) -> Result<AuthSettings, AuthError> {
        if a.domain.is_empty() || a.client_id.is_empty() {
            return Err(AuthError::Config(
                "auth.domain and auth.client_id must be set (or use --sandbox)".into(),
            ));
        }
        let domain = a.domain.trim_end_matches('/');
        if let Some(why) = crate::config::cleartext_off_loopback(domain) {
            return Err(AuthError::Config(format!(
                "auth.domain: {why}; use https://"
            )));
        }
        let base_url = if domain.starts_with("http://") || domain.starts_with("https://") {
            domain.to_string()
        } else {
            format!("https://{domain}")
        };
        Ok(AuthSettings {
            base_url,
            login_client_id: a.client_id.clone(),
            agent_client_id: a.agent_client_id.clone(),
            audience: a.audience.clone(),
            poll_unit: Duration::from_secs(1),
            poll_wait: crate::wall::Wait::sleep(),
            refresh_margin: Duration::from_secs(60),
            sandbox_key: None,
        })
    }

    /// These settings, presenting the sandbox's control key when it signs in.
    pub fn with_sandbox_key(mut self, key: &str) -> AuthSettings {
        self.sandbox_key = Some(Secret::new(key.to_string()));
        self
    }

    /// `iss` as Auth0 writes it: base URL with a trailing slash.
    pub fn issuer(&self) -> String {
        format!("{}/", self.base_url)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

static HTTP_TIMEOUT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(30_000);

/// Sets the request timeout of Auth0 clients created afterwards in this process (30 s by
/// default); tests of silent servers shorten it.
pub fn set_http_timeout(d: Duration) {
    HTTP_TIMEOUT_MS.store(
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
}

pub(crate) fn http_client() -> reqwest::Client {
    let timeout = HTTP_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed);
    crate::connectors::http::shared_client(Duration::from_millis(timeout))
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
    error_description: Option<String>,
    interval: Option<u64>,
}

fn transport(endpoint: &str, e: &reqwest::Error) -> AuthError {
    // reqwest's Display includes the URL: ours never carry a token (tokens go in bodies).
    AuthError::Transport {
        endpoint: endpoint.to_string(),
        message: e.without_url_ref().to_string(),
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let kind = if self.is_timeout() {
            "timed out"
        } else if self.is_connect() {
            "could not connect"
        } else if self.is_decode() {
            "malformed response"
        } else {
            "request failed"
        };
        kind.to_string()
    }
}

/// POSTs a form to `path` and returns the JSON body, or the typed Auth0 error.
pub(crate) async fn post_form(
    http: &reqwest::Client,
    settings: &AuthSettings,
    path: &str,
    form: &[(&str, &str)],
) -> Result<serde_json::Value, AuthError> {
    let resp = http
        .post(settings.url(path))
        .form(form)
        .send()
        .await
        .map_err(|e| transport(path, &e))?;
    read_json(path, resp).await
}

pub(crate) async fn read_json(
    path: &str,
    resp: reqwest::Response,
) -> Result<serde_json::Value, AuthError> {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let bytes = resp.bytes().await.map_err(|e| transport(path, &e))?;
    if status.is_success() {
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        return serde_json::from_slice(&bytes).map_err(|_| AuthError::Transport {
            endpoint: path.to_string(),
            message: format!("HTTP {}: response is not JSON", status.as_u16()),
        });
    }
    let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
    // My Account API problem bodies: {title, detail}.
    let problem: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    let pick = |k: &str| {
        problem
            .as_ref()
            .and_then(|p| p.get(k))
            .and_then(|v| v.as_str())
            .map(String::from)
    };
    Err(AuthError::Server {
        endpoint: path.to_string(),
        status: status.as_u16(),
        error: body
            .as_ref()
            .and_then(|b| b.error.clone())
            .or_else(|| pick("title"))
            .unwrap_or_else(|| "http_error".into()),
        description: body
            .as_ref()
            .and_then(|b| b.error_description.clone())
            .or_else(|| pick("detail"))
            .unwrap_or_default(),
        interval: body.as_ref().and_then(|b| b.interval),
        retry_after,
    })
}

impl AuthError {
    /// A fault of the connection or a server hiccup (a dropped keep-alive, a reset, a
    /// timeout, a 5xx) that a polling client retries within its deadline (RFC 8628
    /// §3.5), as opposed to an answer.
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::Transport { message, .. } => message != "malformed response",
            AuthError::Server { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            _ => false,
        }
    }
}

/// Consecutive transient faults a poller rides out before it reports the last one: a
/// dropped keep-alive or a restart is survived, an outage is said.
pub(crate) const TRANSIENT_RETRIES: u32 = 4;

/// The next wait after a transient fault while polling: doubled, at most a minute.
pub(crate) fn backed_off(interval: u64) -> u64 {
    (interval.max(1) * 2).min(60)
}

/// Sleeps `secs` protocol seconds, or returns false if cancelled first.
pub(crate) async fn wait(
    settings: &AuthSettings,
    secs: u64,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    let d = settings
        .poll_unit
        .saturating_mul(secs.min(u32::MAX as u64) as u32);
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = (settings.poll_wait.0)(d) => true,
    }
}

/// RFC 8628 §3.5 / CIBA slow_down: add 5 s, or more if the server says so.
pub(crate) fn slowed(interval: u64, body_interval: Option<u64>, retry_after: Option<u64>) -> u64 {
    (interval + 5)
        .max(body_interval.unwrap_or(0))
        .max(retry_after.unwrap_or(0))
}

pub(crate) fn str_field(v: &serde_json::Value, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_str()).map(String::from)
}

pub(crate) fn int_field(v: &serde_json::Value, k: &str) -> Option<i64> {
    v.get(k).and_then(|x| {
        x.as_i64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
    })
}

/// Claims dealflow reads from an Auth0 access token.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct TokenClaims {
    pub sub: String,
    #[serde(default)]
    pub scope: String,
    pub exp: i64,
    /// What a CIBA approval covered (RFC 9396), signed into the token by the server.
    #[serde(default)]
    pub authorization_details: Option<Vec<serde_json::Value>>,
}

fn jwks_cache()
-> &'static std::sync::Mutex<std::collections::HashMap<String, jsonwebtoken::jwk::JwkSet>> {
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, jsonwebtoken::jwk::JwkSet>>,
    > = std::sync::OnceLock::new();
    CACHE.get_or_init(Default::default)
}

async fn fetch_jwks(
    http: &reqwest::Client,
    settings: &AuthSettings,
) -> Result<jsonwebtoken::jwk::JwkSet, AuthError> {
    let path = "/.well-known/jwks.json";
    let resp = http
        .get(settings.url(path))
        .send()
        .await
        .map_err(|e| transport(path, &e))?;
    serde_json::from_value(read_json(path, resp).await?)
        .map_err(|_| AuthError::Invalid("JWKS is malformed".into()))
}

/// Verifies an Auth0 access token against the tenant's JWKS (signature, `iss`, `aud`,
/// `exp`) and returns its claims.
pub async fn verify_access_token(
    http: &reqwest::Client,
    settings: &AuthSettings,
    token: &Secret,
) -> Result<TokenClaims, AuthError> {
    let header = jsonwebtoken::decode_header(token.expose())
        .map_err(|_| AuthError::Invalid("not a JWT".into()))?;
    let find = |jwks: &jsonwebtoken::jwk::JwkSet| {
        match &header.kid {
            Some(kid) => jwks.find(kid),
            None => jwks.keys.first(),
        }
        .cloned()
    };
    // The tenant's keys, fetched once per process and again only for a key it has not
    // seen (Auth0 rotates signing keys rarely).
    let cached = jwks_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&settings.base_url)
        .and_then(&find);
    let jwk = match cached {
        Some(k) => k,
        None => {
            let jwks = fetch_jwks(http, settings).await?;
            let k = find(&jwks);
            jwks_cache()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(settings.base_url.clone(), jwks);
            k.ok_or_else(|| AuthError::Invalid("signing key not in JWKS".into()))?
        }
    };
    let jwk = &jwk;
    let alg = header.alg;
    if !matches!(
        alg,
        jsonwebtoken::Algorithm::RS256 | jsonwebtoken::Algorithm::ES256
    ) {
        return Err(AuthError::Invalid("unexpected algorithm".into()));
    }
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)
        .map_err(|_| AuthError::Invalid("unusable JWK".into()))?;
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_issuer(&[settings.issuer()]);
    v.set_audience(&[settings.audience.as_str()]);
    v.leeway = 30;
    jsonwebtoken::decode::<TokenClaims>(token.expose(), &key, &v)
        .map(|d| d.claims)
        .map_err(|e| AuthError::Invalid(format!("{:?}", e.kind())))
}

/// Everything the pipeline needs to act for the signed-in user: the session (API access
/// token, `sub`), the Token Vault client and the CIBA client, sharing one configuration.
pub struct AuthClients {
    pub settings: AuthSettings,
    pub session: session::Session,
    pub vault: vault::VaultClient,
    pub ciba: ciba::CibaClient,
}

impl AuthClients {
    /// Real tenant: settings from `[auth]`, refresh token and agent secret from `store`
    /// (normally [`keyring::open_default`]). Fails with `NotSignedIn` before `dealflow login`.
    pub async fn from_keyring(
        auth: &crate::config::AuthSection,
        store: std::sync::Arc<dyn keyring::SecretStore>,
    ) -> Result<AuthClients, AuthError> {
        let settings = AuthSettings::from_config(auth)?;
        let (entry, what, flag) = keyring::agent_credential_entry(&auth.agent_auth_method);
        let s = store.clone();
        let stored = tokio::task::spawn_blocking(move || s.get(entry))
            .await
            .map_err(|e| AuthError::Keyring(format!("keyring task failed: {e}")))??
            .ok_or_else(|| {
                AuthError::Config(format!(
                    "auth.agent_auth_method = {:?}: no agent client {what} in the keyring: run `dealflow auth agent-credential{flag}`",
                    auth.agent_auth_method
                ))
            })?;
        let agent = if entry == keyring::AGENT_PRIVATE_KEY {
            agent::AgentAuth::private_key_pem(&stored)?
        } else {
            agent::AgentAuth::Secret(Secret::new(stored))
        };
        let session = session::Session::resume(settings.clone(), store)
            .await?
            .with_refresh_lock(session::default_refresh_lock());
        Ok(AuthClients {
            vault: vault::VaultClient::new(settings.clone(), agent.clone()),
            ciba: ciba::CibaClient::new(settings.clone(), agent),
            session,
            settings,
        })
    }
}
