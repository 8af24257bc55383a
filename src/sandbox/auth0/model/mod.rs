//! The emulated tenant's state and rules: clients, users, device codes, refresh-token
//! families, CIBA requests (the "phone"), connected accounts. Handlers in `auth0.rs`
//! only translate HTTP to these methods, so tests can drive the same rules directly.

use super::jwt::Signer;
use crate::sandbox::state::random_token;
use crate::wall::now_ms;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

// One tenant, split by protocol: each file adds the `Auth0State` methods of one.
mod ciba;
mod device;
mod my_account;
mod token;
mod vault;

pub const GRANT_DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub const GRANT_REFRESH: &str = "refresh_token";
pub const GRANT_CIBA: &str = "urn:openid:params:grant-type:ciba";
pub const GRANT_VAULT: &str =
    "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token";
pub const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const TOKEN_TYPE_REFRESH: &str = "urn:ietf:params:oauth:token-type:refresh_token";
pub const TOKEN_TYPE_FEDERATED: &str =
    "http://auth0.com/oauth/token-type/federated-connection-access-token";

/// Sandbox client ids and the API audience (same default as `config.auth.audience`).
pub const LOGIN_CLIENT_ID: &str = "dealflow-cli-sandbox";
pub const AGENT_CLIENT_ID: &str = "dealflow-agent-sandbox";
pub const API_AUDIENCE: &str = "https://api.dealflow.example";
pub const DEMO_SUB: &str = "auth0|demo-user";
pub const LEAD_SUB: &str = "auth0|team-lead";

/// Who a `--sandbox` process signs in as: the rep (default) or the team lead, so a
/// lead's approvals can be shown and tested from their own terminal and phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxUser {
    Rep,
    Lead,
}

static SANDBOX_USER: std::sync::OnceLock<SandboxUser> = std::sync::OnceLock::new();

impl SandboxUser {
    /// `auth0|demo-user`, `rep`, `demo` · `auth0|team-lead`, `lead`, `team-lead`.
    pub fn parse(s: &str) -> Option<SandboxUser> {
        match s.trim() {
            "auth0|demo-user" | "demo-user" | "demo" | "rep" => Some(SandboxUser::Rep),
            "auth0|team-lead" | "team-lead" | "lead" => Some(SandboxUser::Lead),
            _ => None,
        }
    }

    pub fn sub(self) -> &'static str {
        match self {
            SandboxUser::Rep => DEMO_SUB,
            SandboxUser::Lead => LEAD_SUB,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SandboxUser::Rep => "Dana Demo",
            SandboxUser::Lead => "Lee Lead",
        }
    }

    /// Fixes it for this process (the CLI does, once, from `--sandbox-user`).
    pub fn set_current(self) {
        let _ = SANDBOX_USER.set(self);
    }

    pub fn current() -> SandboxUser {
        SANDBOX_USER.get().copied().unwrap_or(SandboxUser::Rep)
    }
}

/// `gmail.metadata` lets reconciliation look a sent message up by its Message-ID; without
/// it an interrupted send could never be resolved and would stay `needs_reconciliation`.
pub const GOOGLE_SCOPES: [&str; 5] = [
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.metadata",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.readonly",
];
pub const SLACK_SCOPES: [&str; 2] = ["chat:write", "channels:read"];
/// What the demo rep's Salesforce connection grants: the REST API, a refresh token for
/// Token Vault, and the identity service (which says where the org's instance is).
pub const SALESFORCE_SCOPES: [&str; 3] = ["api", "refresh_token", "id"];
/// The connections enabled for Token Vault in the emulated tenant.
pub const CONNECTIONS: [&str; 3] = ["google-oauth2", "sign-in-with-slack", "salesforce"];

/// An OAuth error in Auth0's shape, with the HTTP status Auth0 uses.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub status: u16,
    pub error: String,
    pub description: String,
    /// For slow_down: the new interval (seconds), sent in the body and as Retry-After.
    pub interval: Option<i64>,
}

pub fn err(status: u16, error: &str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        status,
        error: error.into(),
        description: description.into(),
        interval: None,
    }
}

#[derive(Debug, Clone)]
pub struct ClientApp {
    pub client_id: String,
    pub name: String,
    /// `None` = public client (token_endpoint_auth_method none).
    pub secret: Option<String>,
    pub grants: Vec<&'static str>,
    /// A registered public key (PEM): the client may authenticate with private_key_jwt.
    pub jwt_public_key: Option<String>,
}

/// How a request's client authenticated.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCred {
    None,
    /// `client_secret` (post body or Basic).
    Secret(String),
    /// private_key_jwt: a `client_assertion` of type jwt-bearer.
    Assertion(String),
}

pub const ASSERTION_TYPE_JWT: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl ClientCred {
    /// From a request's parameters and its Basic credentials, if any.
    pub fn from_request(
        p: &HashMap<String, String>,
        basic: Option<(String, String)>,
    ) -> (Option<String>, ClientCred) {
        if let Some((c, s)) = basic {
            return (Some(c), ClientCred::Secret(s));
        }
        let get = |k: &str| p.get(k).cloned().filter(|v| !v.is_empty());
        let cred = match (get("client_secret"), get("client_assertion")) {
            (Some(s), _) => ClientCred::Secret(s),
            // An assertion of another type is not one we verify: it authenticates nothing.
            (None, Some(a))
                if get("client_assertion_type").as_deref() == Some(ASSERTION_TYPE_JWT) =>
            {
                ClientCred::Assertion(a)
            }
            (None, _) => ClientCred::None,
        };
        (get("client_id"), cred)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub sub: String,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeviceStatus {
    Pending,
    Approved(String),
    Denied,
    ExpiredReported,
    Used,
}

#[derive(Debug, Clone)]
struct DeviceRec {
    user_code: String,
    client_id: String,
    scope: String,
    audience: String,
    expires_at: i64,
    interval_s: i64,
    last_poll: Option<i64>,
    status: DeviceStatus,
}

#[derive(Debug, Clone)]
struct RefreshRec {
    family: String,
    sub: String,
    client_id: String,
    scope: String,
    audience: String,
    used: bool,
    revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CibaStatus {
    Pending,
    Approved,
    Denied,
    Consumed,
}

#[derive(Debug, Clone)]
struct CibaRec {
    phone_id: String,
    client_id: String,
    sub: String,
    scope: String,
    audience: String,
    binding_message: String,
    /// RFC 9396 entries the client asked about (None without RAR).
    details: Option<Vec<serde_json::Value>>,
    /// The entries the approver said yes to; the token carries these.
    approved_details: Option<Vec<serde_json::Value>>,
    expires_at: i64,
    interval_s: i64,
    last_poll: Option<i64>,
    status: CibaStatus,
}

/// A pending CIBA request as the phone shows it. Contains no token and no auth_req_id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneRequest {
    pub id: String,
    pub binding_message: String,
    /// The application asking.
    pub requester: String,
    /// The user whose phone this is.
    pub user_sub: String,
    pub user_name: String,
    pub scope: String,
    pub expires_in_ms: i64,
    /// The actions themselves (RFC 9396), as the authenticator shows them.
    #[serde(default)]
    pub authorization_details: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectedAccount {
    pub id: String,
    pub sub: String,
    pub connection: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    /// The provider revoked the stored refresh token: exchanges fail with `flow_failed`.
    #[serde(skip)]
    pub provider_revoked: bool,
}

#[derive(Debug, Clone)]
struct ConnectSession {
    sub: String,
    connection: String,
    redirect_uri: String,
    state: String,
    code_challenge: Option<String>,
    scopes: Vec<String>,
    ticket: String,
    connect_code: Option<String>,
    expires_at: i64,
}

/// What `/oauth/token` produced: a JSON body, or a vault grant for which the caller
/// (who owns the provider-token table) mints the provider access token.
#[derive(Debug, Clone)]
pub enum TokenOutcome {
    Json(serde_json::Value),
    Vault(VaultGrant),
}

#[derive(Debug, Clone)]
pub struct VaultGrant {
    pub sub: String,
    pub connection: String,
    /// The connected account's granted scopes (the request cannot change them).
    pub scopes: Vec<String>,
    pub ttl_ms: i64,
}

/// Time knobs, so tests never wait for wall-clock seconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How many real milliseconds one protocol second lasts (1000 normally; tests use ~20).
    /// Applies to `interval`, `expires_in` of device codes and CIBA requests.
    pub ms_per_second: i64,
    /// Added to the wall clock (tests "advance time").
    pub offset_ms: i64,
    pub device_interval_s: i64,
    pub device_expires_in_s: i64,
    pub ciba_interval_s: i64,
    /// Default CIBA expiry when the client sends no `requested_expiry`.
    pub ciba_expires_in_s: i64,
    /// Lifetime of Auth0 access tokens (real seconds).
    pub access_token_ttl_s: i64,
    /// Lifetime of provider tokens minted by the vault exchange (real milliseconds).
    pub provider_token_ttl_ms: i64,
    /// Tests: answer the next N device/CIBA polls with slow_down regardless of timing.
    pub force_slow_down: u32,
    /// Tests: the interval a forced slow_down announces (body and Retry-After);
    /// default is the current interval + 5.
    pub slow_down_to: Option<i64>,
    /// Pushes per approver per (protocol) minute before `/bc-authorize` answers 429, as
    /// Auth0 does; stress tests that push from many processes raise it.
    pub pushes_per_minute: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ms_per_second: 1000,
            offset_ms: 0,
            device_interval_s: 5,
            device_expires_in_s: 900,
            ciba_interval_s: 5,
            ciba_expires_in_s: 300,
            access_token_ttl_s: 86_400,
            provider_token_ttl_ms: 3_600_000,
            force_slow_down: 0,
            slow_down_to: None,
            pushes_per_minute: PUSHES_PER_MINUTE,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    issuer: String,
    clients: HashMap<String, ClientApp>,
    users: HashMap<String, User>,
    devices: HashMap<String, DeviceRec>,
    refresh: HashMap<String, RefreshRec>,
    revoked_families: std::collections::HashSet<String>,
    ciba: HashMap<String, CibaRec>,
    accounts: Vec<ConnectedAccount>,
    sessions: HashMap<String, ConnectSession>,
    /// Every token string this tenant issued (access, refresh, id, provider), for the
    /// secret canary test.
    issued: Vec<String>,
    vault_exchanges: u64,
    /// `jti`s of client assertions already used (replay refused).
    assertion_jtis: std::collections::HashSet<String>,
    /// Which `authorization_details` types the dealflow API accepts.
    rar: super::rar::RarSupport,
    /// When each user's recent pushes went out (Auth0 allows about 5 a minute each).
    pushes: HashMap<String, Vec<i64>>,
}

/// Pushes per approver per (protocol) minute before `/bc-authorize` answers 429.
pub const PUSHES_PER_MINUTE: usize = 5;

#[derive(Debug)]
pub struct Auth0State {
    inner: Mutex<Inner>,
    timing: Mutex<Timing>,
    signer: Option<Signer>,
    agent_secret: String,
}

impl Default for Auth0State {
    fn default() -> Self {
        let agent_secret = random_token("sbx-agent-secret-");
        let mut inner = Inner {
            issuer: "http://127.0.0.1/".into(),
            ..Inner::default()
        };
        for c in [
            ClientApp {
                client_id: LOGIN_CLIENT_ID.into(),
                name: "dealflow (terminal sign-in)".into(),
                secret: None,
                grants: vec![GRANT_DEVICE, GRANT_REFRESH],
                jwt_public_key: None,
            },
            ClientApp {
                client_id: AGENT_CLIENT_ID.into(),
                name: "dealflow agent".into(),
                secret: Some(agent_secret.clone()),
                grants: vec![GRANT_CIBA, GRANT_VAULT],
                jwt_public_key: None,
            },
        ] {
            inner.clients.insert(c.client_id.clone(), c);
        }
        for u in [
            User {
                sub: DEMO_SUB.into(),
                name: "Dana Demo".into(),
                email: "dana@dealflow.example".into(),
            },
            User {
                sub: LEAD_SUB.into(),
                name: "Lee Lead".into(),
                email: "lee@dealflow.example".into(),
            },
        ] {
            inner.users.insert(u.sub.clone(), u);
        }
        let now = now_ms();
        inner.accounts.push(ConnectedAccount {
            id: random_token("cac_"),
            sub: DEMO_SUB.into(),
            connection: "google-oauth2".into(),
            scopes: GOOGLE_SCOPES.iter().map(|s| s.to_string()).collect(),
            created_at: now,
            provider_revoked: false,
        });
        inner.accounts.push(ConnectedAccount {
            id: random_token("cac_"),
            sub: DEMO_SUB.into(),
            connection: "sign-in-with-slack".into(),
            scopes: SLACK_SCOPES.iter().map(|s| s.to_string()).collect(),
            created_at: now,
            provider_revoked: false,
        });
        inner.accounts.push(ConnectedAccount {
            id: random_token("cac_"),
            sub: DEMO_SUB.into(),
            connection: "salesforce".into(),
            scopes: SALESFORCE_SCOPES.iter().map(|s| s.to_string()).collect(),
            created_at: now,
            provider_revoked: false,
        });
        Auth0State {
            inner: Mutex::new(inner),
            timing: Mutex::new(Timing::default()),
            signer: Signer::generate(),
            agent_secret,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// What a CIBA approval covered (RFC 9396), signed into the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<Vec<serde_json::Value>>,
}

fn split_scope(s: &str) -> Vec<String> {
    s.split([' ', ','])
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn code_chars(n: usize) -> String {
    use rand::RngExt;
    const BASE20: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| BASE20[rng.random_range(0..BASE20.len())] as char)
        .collect()
}

impl Auth0State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn timing(&self) -> Timing {
        *self.timing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the time knobs (tests: short intervals and expiries).
    pub fn set_timing(&self, f: impl FnOnce(&mut Timing)) {
        let mut t = self.timing.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut t);
    }

    /// How the tenant treats RAR on CIBA (tests: an older tenant, an unregistered type).
    pub fn set_rar(&self, support: super::rar::RarSupport) {
        self.lock().rar = support;
    }

    /// Moves the sandbox clock forward without waiting.
    pub fn advance_ms(&self, ms: i64) {
        self.set_timing(|t| t.offset_ms += ms);
    }

    pub fn now(&self) -> i64 {
        now_ms() + self.timing().offset_ms
    }

    fn secs(&self, s: i64) -> i64 {
        s * self.timing().ms_per_second
    }

    /// Consumes one forced slow_down, returning the interval to announce.
    fn forced_slow_down(&self, current: i64) -> Option<i64> {
        let mut t = self.timing.lock().unwrap_or_else(|p| p.into_inner());
        if t.force_slow_down == 0 {
            return None;
        }
        t.force_slow_down -= 1;
        Some(t.slow_down_to.unwrap_or(current + 5))
    }

    pub fn set_issuer(&self, issuer: String) {
        self.lock().issuer = issuer;
    }

    /// `http://127.0.0.1:PORT/` (with the trailing slash, as Auth0's `iss`).
    pub fn issuer(&self) -> String {
        self.lock().issuer.clone()
    }

    pub fn my_account_audience(&self) -> String {
        format!("{}me/", self.issuer())
    }

    /// The sandbox agent client's secret (what `dealflow auth agent-credential` stores for
    /// a real tenant); handed to in-process sandbox clients only.
    pub fn agent_client_secret(&self) -> String {
        self.agent_secret.clone()
    }

    /// Every token string this tenant (and its vault) issued so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.lock().issued.clone()
    }

    pub fn vault_exchange_count(&self) -> u64 {
        self.lock().vault_exchanges
    }

    pub fn user(&self, sub: &str) -> Option<User> {
        self.lock().users.get(sub).cloned()
    }

    pub(crate) fn record_issued(&self, token: &str) {
        self.lock().issued.push(token.to_string());
    }
}

pub(crate) fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
