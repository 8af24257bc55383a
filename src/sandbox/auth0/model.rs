//! The emulated tenant's state and rules: clients, users, device codes, refresh-token
//! families, CIBA requests (the "phone"), connected accounts. Handlers in `auth0.rs`
//! only translate HTTP to these methods, so tests can drive the same rules directly.

use super::jwt::Signer;
use crate::sandbox::state::{now_ms, random_token};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

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

    // ---- client authentication -------------------------------------------------------

    /// Registers a public key (PEM, EC P-256 or RSA) for `client_id`: the client may then
    /// authenticate with private_key_jwt, as with an Auth0 client credential.
    pub fn register_client_key(&self, client_id: &str, public_pem: &str) -> bool {
        match self.lock().clients.get_mut(client_id) {
            Some(c) => {
                c.jwt_public_key = Some(public_pem.to_string());
                true
            }
            None => false,
        }
    }

    /// A private_key_jwt client assertion: signed by the client's registered key, `iss` =
    /// `sub` = client id, `aud` = this tenant, short-lived, `jti` never seen before.
    fn verify_assertion(&self, client: &ClientApp, jwt: &str) -> Result<(), OAuthError> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
        let fail = |why: &str| {
            err(
                401,
                "invalid_client",
                format!("Client assertion rejected: {why}."),
            )
        };
        let pem = client
            .jwt_public_key
            .as_deref()
            .ok_or_else(|| fail("no credential is registered for private_key_jwt"))?;
        let header = decode_header(jwt).map_err(|_| fail("malformed JWT"))?;
        let key = match header.alg {
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::RS256 | Algorithm::PS256 => DecodingKey::from_rsa_pem(pem.as_bytes()),
            _ => return Err(fail("unsupported alg")),
        }
        .map_err(|_| fail("the registered key does not match the alg"))?;
        let issuer = self.issuer();
        let mut v = Validation::new(header.alg);
        v.set_audience(&[issuer.as_str(), issuer.trim_end_matches('/')]);
        v.set_issuer(&[client.client_id.as_str()]);
        v.sub = Some(client.client_id.clone());
        v.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub", "jti"]);
        v.leeway = 5;
        // The sandbox clock may run fast (tests); the JWT carries wall-clock times.
        let data = decode::<serde_json::Value>(jwt, &key, &v).map_err(|e| fail(&format!("{e}")))?;
        let (iat, exp) = (
            data.claims["iat"].as_i64().unwrap_or(0),
            data.claims["exp"].as_i64().unwrap_or(0),
        );
        if exp - iat > 300 {
            return Err(fail("lifetime over 5 minutes"));
        }
        if iat == 0 {
            return Err(fail("no iat"));
        }
        let jti = data.claims["jti"].as_str().unwrap_or("").to_string();
        if jti.is_empty() {
            return Err(fail("no jti"));
        }
        if !self.lock().assertion_jtis.insert(jti) {
            return Err(fail("jti replayed"));
        }
        Ok(())
    }

    /// Authenticates the client of a request and checks it may use `grant`.
    pub fn authenticate(
        &self,
        client_id: Option<&str>,
        cred: &ClientCred,
        grant: &str,
    ) -> Result<ClientApp, OAuthError> {
        let Some(client_id) = client_id.filter(|c| !c.is_empty()) else {
            return Err(err(
                400,
                "invalid_request",
                "Missing required parameter: client_id",
            ));
        };
        let client = self
            .lock()
            .clients
            .get(client_id)
            .cloned()
            .ok_or_else(|| err(401, "invalid_client", "Unknown client."))?;
        match (&client.secret, cred) {
            (_, ClientCred::Assertion(jwt)) => self.verify_assertion(&client, jwt)?,
            (Some(expected), ClientCred::Secret(given)) => {
                if !constant_eq(expected.as_bytes(), given.as_bytes()) {
                    return Err(err(401, "invalid_client", "Client authentication failed."));
                }
            }
            (Some(_), ClientCred::None) => {
                return Err(err(
                    401,
                    "invalid_client",
                    "Client authentication is required for this client (confidential).",
                ));
            }
            (None, ClientCred::Secret(_)) => {
                return Err(err(
                    401,
                    "invalid_client",
                    "This client is public (token_endpoint_auth_method none); do not send a client_secret.",
                ));
            }
            (None, ClientCred::None) => {}
        }
        if !client.grants.contains(&grant) {
            let why = if client.secret.is_none() {
                "a public client"
            } else {
                "a confidential client without this grant"
            };
            return Err(err(
                403,
                "unauthorized_client",
                format!("Grant type '{grant}' not allowed for the client ({why})."),
            ));
        }
        Ok(client)
    }

    // ---- tokens ------------------------------------------------------------------------

    fn mint_access_with(
        &self,
        sub: &str,
        client_id: &str,
        audience: &str,
        scope: &str,
        authorization_details: Option<Vec<serde_json::Value>>,
    ) -> Result<(String, i64), OAuthError> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| err(500, "server_error", "No signing key."))?;
        let ttl = self.timing().access_token_ttl_s;
        let iat = self.now() / 1000;
        let claims = AccessClaims {
            iss: self.issuer(),
            sub: sub.into(),
            aud: if audience.is_empty() {
                format!("{}userinfo", self.issuer())
            } else {
                audience.into()
            },
            azp: client_id.into(),
            scope: scope.into(),
            iat,
            exp: iat + ttl,
            jti: random_token(""),
            authorization_details,
        };
        let tok = signer
            .sign(&claims)
            .ok_or_else(|| err(500, "server_error", "Signing failed."))?;
        self.lock().issued.push(tok.clone());
        Ok((tok, ttl))
    }

    fn mint_id_token(&self, sub: &str, client_id: &str) -> Option<String> {
        let signer = self.signer.as_ref()?;
        let user = self.user(sub)?;
        let iat = self.now() / 1000;
        let tok = signer.sign(&serde_json::json!({
            "iss": self.issuer(), "sub": sub, "aud": client_id, "iat": iat,
            "exp": iat + 36000, "name": user.name, "email": user.email,
        }))?;
        self.lock().issued.push(tok.clone());
        Some(tok)
    }

    fn mint_refresh(
        &self,
        family: Option<String>,
        sub: &str,
        client_id: &str,
        scope: &str,
        audience: &str,
    ) -> String {
        let tok = random_token("v1.sbx-rt-");
        let family = family.unwrap_or_else(|| random_token("fam-"));
        let mut g = self.lock();
        g.refresh.insert(
            tok.clone(),
            RefreshRec {
                family,
                sub: sub.into(),
                client_id: client_id.into(),
                scope: scope.into(),
                audience: audience.into(),
                used: false,
                revoked: false,
            },
        );
        g.issued.push(tok.clone());
        tok
    }

    /// Verifies an access token this tenant signed (signature, expiry, issuer).
    pub fn verify_access(&self, token: &str) -> Option<AccessClaims> {
        let signer = self.signer.as_ref()?;
        let c: AccessClaims = signer.verify(token, self.now() / 1000)?;
        (c.iss == self.issuer()).then_some(c)
    }

    pub fn jwks(&self) -> serde_json::Value {
        self.signer
            .as_ref()
            .map_or_else(|| serde_json::json!({"keys": []}), |s| s.jwks())
    }

    fn token_response(
        &self,
        sub: &str,
        client_id: &str,
        scope: &str,
        audience: &str,
        refresh: Option<String>,
    ) -> Result<serde_json::Value, OAuthError> {
        self.token_response_with(sub, client_id, scope, audience, refresh, None)
    }

    fn token_response_with(
        &self,
        sub: &str,
        client_id: &str,
        scope: &str,
        audience: &str,
        refresh: Option<String>,
        details: Option<Vec<serde_json::Value>>,
    ) -> Result<serde_json::Value, OAuthError> {
        let (at, ttl) = self.mint_access_with(sub, client_id, audience, scope, details.clone())?;
        let mut v = serde_json::json!({
            "access_token": at, "token_type": "Bearer", "expires_in": ttl, "scope": scope,
        });
        if let Some(d) = details {
            v["authorization_details"] = d.into();
        }
        if split_scope(scope).iter().any(|s| s == "openid")
            && let Some(id) = self.mint_id_token(sub, client_id)
        {
            v["id_token"] = id.into();
        }
        if let Some(rt) = refresh {
            v["refresh_token"] = rt.into();
        }
        Ok(v)
    }

    // ---- device flow -------------------------------------------------------------------

    pub fn device_code(
        &self,
        client_id: Option<&str>,
        cred: &ClientCred,
        scope: &str,
        audience: &str,
    ) -> Result<serde_json::Value, OAuthError> {
        let client = self.authenticate(client_id, cred, GRANT_DEVICE)?;
        let t = self.timing();
        let device_code = random_token("sbx-dc-");
        let user_code = format!("{}-{}", code_chars(4), code_chars(4));
        let now = self.now();
        let rec = DeviceRec {
            user_code: user_code.clone(),
            client_id: client.client_id,
            scope: scope.into(),
            audience: audience.into(),
            expires_at: now + self.secs(t.device_expires_in_s),
            interval_s: t.device_interval_s,
            last_poll: None,
            status: DeviceStatus::Pending,
        };
        self.lock().devices.insert(device_code.clone(), rec);
        let uri = format!("{}activate", self.issuer());
        Ok(serde_json::json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "verification_uri_complete": format!("{uri}?user_code={user_code}"),
            "expires_in": t.device_expires_in_s,
            "interval": t.device_interval_s,
        }))
    }

    /// The user approves (or denies) a device code on the activation page.
    pub fn decide_device(&self, user_code: &str, sub: &str, approve: bool) -> bool {
        let now = self.now();
        let mut g = self.lock();
        if !g.users.contains_key(sub) {
            return false;
        }
        let wanted = user_code.trim().to_ascii_uppercase();
        for rec in g.devices.values_mut() {
            if rec.user_code == wanted
                && rec.status == DeviceStatus::Pending
                && now < rec.expires_at
            {
                rec.status = if approve {
                    DeviceStatus::Approved(sub.into())
                } else {
                    DeviceStatus::Denied
                };
                return true;
            }
        }
        false
    }

    fn poll_device(
        &self,
        client: &ClientApp,
        device_code: &str,
    ) -> Result<serde_json::Value, OAuthError> {
        let now = self.now();
        let ms = self.timing().ms_per_second;
        let (sub, scope, audience) = {
            let mut g = self.lock();
            let Some(rec) = g.devices.get_mut(device_code) else {
                return Err(err(400, "invalid_grant", "Invalid or expired device code."));
            };
            if rec.client_id != client.client_id {
                return Err(err(
                    400,
                    "invalid_grant",
                    "Device code was issued to another client.",
                ));
            }
            match rec.status {
                DeviceStatus::Used | DeviceStatus::ExpiredReported => {
                    return Err(err(400, "invalid_grant", "Invalid or expired device code."));
                }
                _ => {}
            }
            if now >= rec.expires_at {
                rec.status = DeviceStatus::ExpiredReported;
                return Err(err(403, "expired_token", "Expired device code."));
            }
            let too_fast = rec
                .last_poll
                .is_some_and(|last| now - last < rec.interval_s * ms);
            let forced = self.forced_slow_down(rec.interval_s);
            if too_fast || forced.is_some() {
                rec.interval_s = forced.unwrap_or(rec.interval_s + 5);
                rec.last_poll = Some(now);
                let mut e = err(
                    429,
                    "slow_down",
                    format!(
                        "You are polling faster than allowed. Try again in {} seconds.",
                        rec.interval_s
                    ),
                );
                e.interval = Some(rec.interval_s);
                return Err(e);
            }
            rec.last_poll = Some(now);
            match rec.status.clone() {
                DeviceStatus::Pending => {
                    return Err(err(
                        403,
                        "authorization_pending",
                        "User has yet to authorize device code.",
                    ));
                }
                DeviceStatus::Denied => {
                    rec.status = DeviceStatus::Used;
                    return Err(err(
                        403,
                        "access_denied",
                        "User refused to authorize the device.",
                    ));
                }
                DeviceStatus::Approved(sub) => {
                    rec.status = DeviceStatus::Used;
                    (sub, rec.scope.clone(), rec.audience.clone())
                }
                _ => return Err(err(400, "invalid_grant", "Invalid device code.")),
            }
        };
        let rt = split_scope(&scope)
            .iter()
            .any(|s| s == "offline_access")
            .then(|| self.mint_refresh(None, &sub, &client.client_id, &scope, &audience));
        self.token_response(&sub, &client.client_id, &scope, &audience, rt)
    }

    // ---- refresh tokens ---------------------------------------------------------------

    fn refresh(
        &self,
        client: &ClientApp,
        token: &str,
        audience: Option<&str>,
    ) -> Result<serde_json::Value, OAuthError> {
        let rec = {
            let mut g = self.lock();
            let Some(rec) = g.refresh.get(token).cloned() else {
                return Err(err(
                    403,
                    "invalid_grant",
                    "Unknown or invalid refresh token.",
                ));
            };
            if rec.client_id != client.client_id
                || rec.revoked
                || g.revoked_families.contains(&rec.family)
            {
                return Err(err(
                    403,
                    "invalid_grant",
                    "Unknown or invalid refresh token.",
                ));
            }
            if rec.used {
                // Reuse detection: revoke the whole family.
                g.revoked_families.insert(rec.family.clone());
                return Err(err(
                    403,
                    "invalid_grant",
                    "Unknown or invalid refresh token.",
                ));
            }
            if let Some(r) = g.refresh.get_mut(token) {
                r.used = true;
            }
            rec
        };
        // Multi-resource refresh: the login client may mint a My Account API token.
        let my_account = self.my_account_audience();
        let (aud, scope) = match audience {
            Some(a) if !a.is_empty() && a != rec.audience => {
                if a == my_account {
                    (
                        a.to_string(),
                        "openid create:me:connected_accounts read:me:connected_accounts delete:me:connected_accounts".to_string(),
                    )
                } else {
                    return Err(err(
                        403,
                        "access_denied",
                        format!("Refresh token not allowed for audience '{a}'."),
                    ));
                }
            }
            _ => (rec.audience.clone(), rec.scope.clone()),
        };
        let new_rt = self.mint_refresh(
            Some(rec.family.clone()),
            &rec.sub,
            &client.client_id,
            &rec.scope,
            &rec.audience,
        );
        self.token_response(&rec.sub, &client.client_id, &scope, &aud, Some(new_rt))
    }

    /// `/oauth/revoke`: revokes the refresh token's whole family.
    pub fn revoke(
        &self,
        client_id: Option<&str>,
        cred: &ClientCred,
        token: &str,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate(client_id, cred, GRANT_REFRESH)?;
        let mut g = self.lock();
        if let Some(rec) = g.refresh.get(token).cloned() {
            if rec.client_id != client.client_id {
                return Err(err(
                    403,
                    "access_denied",
                    "The token was issued to another client.",
                ));
            }
            g.revoked_families.insert(rec.family);
        }
        Ok(())
    }

    // ---- /oauth/token dispatch ------------------------------------------------------

    pub fn token(
        &self,
        p: &HashMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<TokenOutcome, OAuthError> {
        let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let (cid, cred) = ClientCred::from_request(p, basic);
        let cid = cid.as_deref();
        let secret = &cred;
        let Some(grant) = get("grant_type") else {
            return Err(err(
                400,
                "invalid_request",
                "Missing required parameter: grant_type",
            ));
        };
        let need = |k: &str| {
            get(k).ok_or_else(|| {
                err(
                    400,
                    "invalid_request",
                    format!("Missing required parameter: {k}"),
                )
            })
        };
        match grant {
            GRANT_DEVICE => {
                let client = self.authenticate(cid, secret, GRANT_DEVICE)?;
                self.poll_device(&client, need("device_code")?)
                    .map(TokenOutcome::Json)
            }
            GRANT_REFRESH => {
                let client = self.authenticate(cid, secret, GRANT_REFRESH)?;
                self.refresh(&client, need("refresh_token")?, get("audience"))
                    .map(TokenOutcome::Json)
            }
            GRANT_CIBA => {
                let client = self.authenticate(cid, secret, GRANT_CIBA)?;
                self.poll_ciba(&client, need("auth_req_id")?)
                    .map(TokenOutcome::Json)
            }
            GRANT_VAULT => {
                let client = self.authenticate(cid, secret, GRANT_VAULT)?;
                self.vault_exchange(
                    &client,
                    need("subject_token")?,
                    need("subject_token_type")?,
                    need("requested_token_type")?,
                    need("connection")?,
                )
                .map(TokenOutcome::Vault)
            }
            other => Err(err(
                400,
                "unsupported_grant_type",
                format!("Unsupported grant type: {other}"),
            )),
        }
    }

    // ---- Token Vault -----------------------------------------------------------------

    fn vault_exchange(
        &self,
        client: &ClientApp,
        subject_token: &str,
        subject_token_type: &str,
        requested_token_type: &str,
        connection: &str,
    ) -> Result<VaultGrant, OAuthError> {
        if requested_token_type != TOKEN_TYPE_FEDERATED {
            return Err(err(
                400,
                "invalid_request",
                "requested_token_type must be http://auth0.com/oauth/token-type/federated-connection-access-token",
            ));
        }
        let sub = match subject_token_type {
            TOKEN_TYPE_ACCESS => {
                let claims = self.verify_access(subject_token).ok_or_else(|| {
                    err(401, "invalid_grant", "Invalid or expired subject token.")
                })?;
                if claims.aud != API_AUDIENCE {
                    return Err(err(
                        403,
                        "unauthorized_client",
                        "The client is not linked to the subject token's audience.",
                    ));
                }
                claims.sub
            }
            TOKEN_TYPE_REFRESH => {
                let g = self.lock();
                match g.refresh.get(subject_token) {
                    Some(r)
                        if r.client_id == client.client_id
                            && !r.revoked
                            && !g.revoked_families.contains(&r.family) =>
                    {
                        r.sub.clone()
                    }
                    _ => {
                        return Err(err(
                            401,
                            "invalid_grant",
                            "Unknown or invalid refresh token.",
                        ));
                    }
                }
            }
            _ => {
                return Err(err(
                    400,
                    "invalid_request",
                    "Unsupported subject_token_type.",
                ));
            }
        };
        if !CONNECTIONS.contains(&connection) {
            return Err(err(
                400,
                "invalid_request",
                format!(
                    "Connection '{connection}' does not exist or is not enabled for Token Vault."
                ),
            ));
        }
        let account = {
            let mut g = self.lock();
            g.vault_exchanges += 1;
            g.accounts
                .iter()
                .find(|a| a.sub == sub && a.connection == connection)
                .cloned()
        };
        let Some(account) = account else {
            return Err(err(
                401,
                "federated_connection_refresh_token_not_found",
                format!(
                    "Federated connection refresh token not found for connection '{connection}'."
                ),
            ));
        };
        if account.provider_revoked {
            return Err(err(
                401,
                "federated_connection_refresh_token_flow_failed",
                "Failed to obtain a federated access token: the provider rejected the stored refresh token.",
            ));
        }
        Ok(VaultGrant {
            sub,
            connection: connection.to_string(),
            scopes: account.scopes,
            ttl_ms: self.timing().provider_token_ttl_ms,
        })
    }

    // ---- CIBA ------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn bc_authorize(
        &self,
        client_id: Option<&str>,
        cred: &ClientCred,
        login_hint: Option<&str>,
        scope: Option<&str>,
        binding_message: Option<&str>,
        audience: Option<&str>,
        requested_expiry: Option<&str>,
        authorization_details: Option<&str>,
    ) -> Result<serde_json::Value, OAuthError> {
        let client = self.authenticate(client_id, cred, GRANT_CIBA)?;
        let rar = self.lock().rar.clone();
        let details = super::rar::parse(authorization_details, &rar)?;
        let scope = scope.unwrap_or("");
        if !split_scope(scope).iter().any(|s| s == "openid") {
            return Err(err(
                400,
                "invalid_request",
                "The scope parameter must contain openid.",
            ));
        }
        let Some(bm) = binding_message.filter(|b| !b.is_empty()) else {
            return Err(err(
                400,
                "invalid_request",
                "Missing required parameter: binding_message",
            ));
        };
        if bm.chars().count() > 64 {
            return Err(err(
                400,
                "invalid_request",
                "binding_message must be 64 characters or fewer.",
            ));
        }
        if !bm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " +-_.,:#".contains(c))
        {
            return Err(err(
                400,
                "invalid_request",
                "binding_message contains characters that are not allowed.",
            ));
        }
        #[derive(Deserialize)]
        struct Hint {
            format: String,
            iss: String,
            sub: String,
        }
        let hint: Hint = login_hint
            .and_then(|h| serde_json::from_str(h).ok())
            .ok_or_else(|| {
                err(
                    400,
                    "invalid_request",
                    "login_hint must be a JSON object {\"format\":\"iss_sub\",\"iss\":...,\"sub\":...}.",
                )
            })?;
        if hint.format != "iss_sub" || hint.iss != self.issuer() {
            return Err(err(
                400,
                "invalid_request",
                "login_hint: format must be iss_sub and iss this tenant (with trailing slash).",
            ));
        }
        if self.user(&hint.sub).is_none() {
            return Err(err(400, "invalid_request", "login_hint: user not found."));
        }
        {
            let (now, minute, limit) = (self.now(), self.secs(60), self.timing().pushes_per_minute);
            let mut g = self.lock();
            let sent = g.pushes.entry(hint.sub.clone()).or_default();
            sent.retain(|t| now - t < minute);
            if sent.len() >= limit {
                return Err(err(
                    429,
                    "too_many_requests",
                    "Too many push notifications for this user. Try again later.",
                ));
            }
            sent.push(now);
        }
        let t = self.timing();
        let expiry_s = match requested_expiry {
            Some(e) => match e.parse::<i64>() {
                Ok(n) if (1..=259_200).contains(&n) => n,
                _ => {
                    return Err(err(
                        400,
                        "invalid_request",
                        "requested_expiry must be between 1 and 259200.",
                    ));
                }
            },
            None => t.ciba_expires_in_s,
        };
        let now = self.now();
        let id = random_token("sbx-areq-");
        let rec = CibaRec {
            phone_id: random_token("txl_"),
            client_id: client.client_id,
            sub: hint.sub,
            scope: scope.into(),
            audience: audience.unwrap_or(API_AUDIENCE).into(),
            binding_message: bm.into(),
            details,
            approved_details: None,
            expires_at: now + self.secs(expiry_s),
            interval_s: t.ciba_interval_s,
            last_poll: None,
            status: CibaStatus::Pending,
        };
        self.lock().ciba.insert(id.clone(), rec);
        Ok(serde_json::json!({
            "auth_req_id": id, "expires_in": expiry_s, "interval": t.ciba_interval_s,
        }))
    }

    fn poll_ciba(
        &self,
        client: &ClientApp,
        auth_req_id: &str,
    ) -> Result<serde_json::Value, OAuthError> {
        let now = self.now();
        let ms = self.timing().ms_per_second;
        let (sub, scope, audience, details) = {
            let mut g = self.lock();
            let Some(rec) = g.ciba.get_mut(auth_req_id) else {
                return Err(err(400, "invalid_grant", "Invalid auth_req_id."));
            };
            if rec.client_id != client.client_id || rec.status == CibaStatus::Consumed {
                return Err(err(400, "invalid_grant", "Invalid auth_req_id."));
            }
            if now >= rec.expires_at && rec.status != CibaStatus::Denied {
                return Err(err(
                    403,
                    "access_denied",
                    "The end-user denied the authorization request or it has been expired",
                ));
            }
            let too_fast = rec
                .last_poll
                .is_some_and(|last| now - last < rec.interval_s * ms);
            let forced = self.forced_slow_down(rec.interval_s);
            if too_fast || forced.is_some() {
                rec.interval_s = forced.unwrap_or(rec.interval_s + 5);
                rec.last_poll = Some(now);
                let mut e = err(
                    429,
                    "slow_down",
                    format!(
                        "You are polling faster than allowed. Try again in {} seconds.",
                        rec.interval_s
                    ),
                );
                e.interval = Some(rec.interval_s);
                return Err(e);
            }
            rec.last_poll = Some(now);
            match rec.status {
                CibaStatus::Pending => {
                    return Err(err(
                        403,
                        "authorization_pending",
                        "The end-user authorization is pending",
                    ));
                }
                CibaStatus::Denied => {
                    return Err(err(
                        403,
                        "access_denied",
                        "The end-user denied the authorization request or it has been expired",
                    ));
                }
                _ => {}
            }
            rec.status = CibaStatus::Consumed;
            (
                rec.sub.clone(),
                rec.scope.clone(),
                rec.audience.clone(),
                rec.approved_details.clone(),
            )
        };
        self.token_response_with(&sub, &client.client_id, &scope, &audience, None, details)
    }

    /// Pending CIBA requests, as the phone lists them (all users).
    pub fn phone_requests(&self) -> Vec<PhoneRequest> {
        let now = self.now();
        let g = self.lock();
        let mut v: Vec<PhoneRequest> = g
            .ciba
            .values()
            .filter(|r| r.status == CibaStatus::Pending && now < r.expires_at)
            .map(|r| PhoneRequest {
                id: r.phone_id.clone(),
                binding_message: r.binding_message.clone(),
                requester: g
                    .clients
                    .get(&r.client_id)
                    .map_or_else(|| r.client_id.clone(), |c| c.name.clone()),
                user_sub: r.sub.clone(),
                user_name: g
                    .users
                    .get(&r.sub)
                    .map(|u| u.name.clone())
                    .unwrap_or_default(),
                scope: r.scope.clone(),
                expires_in_ms: r.expires_at - now,
                authorization_details: r.details.clone().unwrap_or_default(),
            })
            .collect();
        v.sort_by_key(|r| r.expires_in_ms);
        v
    }

    /// Approves (everything asked) or denies a pending request by its phone id. False
    /// if none matched.
    pub fn phone_decide(&self, phone_id: &str, approve: bool) -> bool {
        self.phone_answer(phone_id, approve, None)
    }

    /// Approves only the `authorization_details` entries at `keep` (by position): the
    /// token then carries just those.
    pub fn phone_approve_only(&self, phone_id: &str, keep: &[usize]) -> bool {
        self.phone_answer(phone_id, true, Some(keep))
    }

    fn phone_answer(&self, phone_id: &str, approve: bool, keep: Option<&[usize]>) -> bool {
        let now = self.now();
        let mut g = self.lock();
        for r in g.ciba.values_mut() {
            if r.phone_id == phone_id && r.status == CibaStatus::Pending && now < r.expires_at {
                r.status = if approve {
                    CibaStatus::Approved
                } else {
                    CibaStatus::Denied
                };
                if approve {
                    r.approved_details = r.details.as_ref().map(|all| match keep {
                        Some(keep) => all
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| keep.contains(i))
                            .map(|(_, d)| d.clone())
                            .collect(),
                        None => all.clone(),
                    });
                }
                return true;
            }
        }
        false
    }

    // ---- connected accounts --------------------------------------------------------

    pub fn connected_accounts(&self, sub: &str) -> Vec<ConnectedAccount> {
        self.lock()
            .accounts
            .iter()
            .filter(|a| a.sub == sub)
            .cloned()
            .collect()
    }

    /// Tests: replace (or create) `sub`'s account on `connection` with exactly `scopes`.
    pub fn set_connected_account(&self, sub: &str, connection: &str, scopes: &[&str]) -> String {
        let id = random_token("cac_");
        let now = self.now();
        let mut g = self.lock();
        g.accounts
            .retain(|a| !(a.sub == sub && a.connection == connection));
        g.accounts.push(ConnectedAccount {
            id: id.clone(),
            sub: sub.into(),
            connection: connection.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            created_at: now,
            provider_revoked: false,
        });
        id
    }

    /// Removes the tokenset from the vault only (what Auth0's delete does: provider
    /// tokens already handed out stay valid).
    pub fn delete_connected_account(&self, sub: &str, connection: &str) -> bool {
        let mut g = self.lock();
        let before = g.accounts.len();
        g.accounts
            .retain(|a| !(a.sub == sub && a.connection == connection));
        before != g.accounts.len()
    }

    /// Takes `scopes` out of `sub`'s grant on `connection`; the scopes left, or `None`
    /// when there is no such account.
    pub fn remove_scopes(
        &self,
        sub: &str,
        connection: &str,
        scopes: &[String],
    ) -> Option<Vec<String>> {
        let mut g = self.lock();
        let a = g
            .accounts
            .iter_mut()
            .find(|a| a.sub == sub && a.connection == connection)?;
        a.scopes.retain(|s| !scopes.contains(s));
        Some(a.scopes.clone())
    }

    /// Tests: the provider revoked the stored refresh token.
    pub fn revoke_at_provider(&self, sub: &str, connection: &str) {
        for a in self.lock().accounts.iter_mut() {
            if a.sub == sub && a.connection == connection {
                a.provider_revoked = true;
            }
        }
    }

    fn my_account_sub(&self, bearer: Option<&str>, scope: &str) -> Result<String, OAuthError> {
        let claims = bearer
            .and_then(|t| self.verify_access(t))
            .ok_or_else(|| err(401, "invalid_token", "Invalid or expired token."))?;
        if claims.aud != self.my_account_audience() {
            return Err(err(
                401,
                "invalid_token",
                "The token's audience is not the My Account API.",
            ));
        }
        if !split_scope(&claims.scope).iter().any(|s| s == scope) {
            return Err(err(
                403,
                "insufficient_scope",
                format!("Missing scope {scope}."),
            ));
        }
        Ok(claims.sub)
    }

    pub fn connect_start(
        &self,
        bearer: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, OAuthError> {
        let sub = self.my_account_sub(bearer, "create:me:connected_accounts")?;
        let s = |k: &str| body.get(k).and_then(|v| v.as_str()).map(String::from);
        let connection = s("connection").unwrap_or_default();
        if !CONNECTIONS.contains(&connection.as_str()) {
            return Err(err(400, "invalid_request", "Unknown connection."));
        }
        let Some(redirect_uri) = s("redirect_uri") else {
            return Err(err(400, "invalid_request", "redirect_uri is required."));
        };
        let scopes: Vec<String> = body
            .get("scopes")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if scopes.is_empty() || scopes.len() > 100 {
            return Err(err(400, "invalid_request", "scopes: 1 to 100 required."));
        }
        let code_challenge = s("code_challenge");
        if code_challenge.is_some() && s("code_challenge_method").as_deref() != Some("S256") {
            return Err(err(
                400,
                "invalid_request",
                "code_challenge_method must be S256.",
            ));
        }
        let auth_session = random_token("as_");
        let ticket = random_token("tkt_");
        let expires_in = 300;
        let session = ConnectSession {
            sub,
            connection,
            redirect_uri,
            state: s("state").unwrap_or_default(),
            code_challenge,
            scopes,
            ticket: ticket.clone(),
            connect_code: None,
            expires_at: self.now() + expires_in * 1000,
        };
        self.lock().sessions.insert(auth_session.clone(), session);
        Ok(serde_json::json!({
            "auth_session": auth_session,
            "connect_uri": format!("{}connected-accounts/connect", self.issuer()),
            "connect_params": {"ticket": ticket},
            "expires_in": expires_in,
        }))
    }

    /// The browser opened the connect URI: the sandbox "provider" consents at once and
    /// returns the redirect URL (`redirect_uri?connect_code=..&state=..`).
    pub fn connect_consent(&self, ticket: &str) -> Option<String> {
        let now = self.now();
        let mut g = self.lock();
        let sess = g
            .sessions
            .values_mut()
            .find(|s| s.ticket == ticket && s.connect_code.is_none() && now < s.expires_at)?;
        let code = random_token("cc_");
        sess.connect_code = Some(code.clone());
        let mut url = url::Url::parse(&sess.redirect_uri).ok()?;
        url.query_pairs_mut()
            .append_pair("connect_code", &code)
            .append_pair("state", &sess.state);
        Some(url.to_string())
    }

    pub fn connect_complete(
        &self,
        bearer: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, OAuthError> {
        let sub = self.my_account_sub(bearer, "create:me:connected_accounts")?;
        let s = |k: &str| {
            body.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let sess = self
            .lock()
            .sessions
            .remove(&s("auth_session"))
            .ok_or_else(|| err(400, "invalid_request", "Unknown or used auth_session."))?;
        if sess.sub != sub
            || sess.connect_code.as_deref() != Some(s("connect_code").as_str())
            || sess.redirect_uri != s("redirect_uri")
            || self.now() >= sess.expires_at
        {
            return Err(err(
                400,
                "invalid_request",
                "connect_code, redirect_uri or session mismatch.",
            ));
        }
        if let Some(ch) = &sess.code_challenge {
            use base64::Engine;
            use sha2::Digest;
            let v = s("code_verifier");
            let got = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(v.as_bytes()));
            if &got != ch {
                return Err(err(400, "invalid_request", "PKCE verification failed."));
            }
        }
        let scopes: Vec<&str> = sess.scopes.iter().map(String::as_str).collect();
        let id = self.set_connected_account(&sub, &sess.connection, &scopes);
        Ok(serde_json::json!({
            "id": id, "connection": sess.connection, "access_type": "offline",
            "scopes": sess.scopes, "created_at": self.now(),
        }))
    }

    pub fn accounts_list(
        &self,
        bearer: Option<&str>,
        connection: Option<&str>,
    ) -> Result<serde_json::Value, OAuthError> {
        let sub = self.my_account_sub(bearer, "read:me:connected_accounts")?;
        let accounts: Vec<serde_json::Value> = self
            .connected_accounts(&sub)
            .into_iter()
            .filter(|a| connection.is_none_or(|c| c == a.connection))
            .map(|a| {
                serde_json::json!({
                    "id": a.id, "connection": a.connection, "access_type": "offline",
                    "scopes": a.scopes, "created_at": a.created_at,
                })
            })
            .collect();
        Ok(serde_json::json!({ "accounts": accounts }))
    }

    pub fn account_delete(&self, bearer: Option<&str>, id: &str) -> Result<(), OAuthError> {
        let sub = self.my_account_sub(bearer, "delete:me:connected_accounts")?;
        let mut g = self.lock();
        let before = g.accounts.len();
        g.accounts.retain(|a| !(a.sub == sub && a.id == id));
        if before == g.accounts.len() {
            return Err(err(404, "not_found", "Connected account not found."));
        }
        Ok(())
    }

    pub fn userinfo(&self, bearer: Option<&str>) -> Result<serde_json::Value, OAuthError> {
        let claims = bearer
            .and_then(|t| self.verify_access(t))
            .ok_or_else(|| err(401, "invalid_token", "Invalid or expired token."))?;
        let u = self
            .user(&claims.sub)
            .ok_or_else(|| err(401, "invalid_token", "Unknown user."))?;
        Ok(serde_json::json!({
            "sub": u.sub, "name": u.name, "email": u.email, "email_verified": true,
        }))
    }

    pub(crate) fn record_issued(&self, token: &str) {
        self.lock().issued.push(token.to_string());
    }
}

pub(crate) fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
