//! Emulated Auth0: device flow, token grants, Token Vault exchange, CIBA, revocation,
//! userinfo, discovery/JWKS and the My Account connected-accounts API, plus the
//! sandbox-only "phone" (`/sandbox/phone/...`) and device-approval endpoints.
//!
//! The rules live in [`model::Auth0State`]; this file only maps HTTP onto them.
//! Errors use Auth0's `{error, error_description}` body and its status codes.

pub mod jwt;
pub mod model;
pub mod rar;

use super::state::SandboxState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use model::{OAuthError, TokenOutcome};
use std::collections::HashMap;
use std::sync::Arc;

type St = State<Arc<SandboxState>>;

pub fn router(state: Arc<SandboxState>) -> Router {
    Router::new()
        .route("/oauth/device/code", post(device_code))
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .route("/bc-authorize", post(bc_authorize))
        .route("/userinfo", get(userinfo))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/activate", get(activate_page).post(activate_post))
        .route("/connected-accounts/connect", get(connect_consent))
        .route("/me/v1/connected-accounts/connect", post(connect_start))
        .route("/me/v1/connected-accounts/complete", post(connect_complete))
        .route("/me/v1/connected-accounts/accounts", get(accounts_list))
        .route(
            "/me/v1/connected-accounts/accounts/{id}",
            delete(account_delete),
        )
        .route("/sandbox/phone/requests", get(phone_list))
        .route(
            "/sandbox/phone/requests/{id}/{decision}",
            post(phone_decide),
        )
        .route("/sandbox/device/approve", post(device_approve))
        .route("/sandbox/accounts/revoke", post(accounts_revoke))
        .route("/sandbox/agent", get(agent_credentials))
        .with_state(state)
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut body = serde_json::json!({
            "error": self.error, "error_description": self.description,
        });
        let mut resp;
        if let Some(i) = self.interval {
            body["interval"] = i.into();
            resp = (status, axum::Json(body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&i.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        } else {
            resp = (status, axum::Json(body)).into_response();
        }
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// My Account API errors are problem-style bodies.
fn problem(e: OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(serde_json::json!({
            "type": format!("https://auth0.com/api-errors/{}", e.error),
            "status": e.status, "title": e.error, "detail": e.description,
        })),
    )
        .into_response()
}

fn ok_json(v: serde_json::Value) -> Response {
    let mut r = axum::Json(v).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Form or JSON body → string map (Auth0 accepts both on its POST endpoints).
fn params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let v: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| model::err(400, "invalid_request", "Malformed JSON body."))?;
        let obj = v
            .as_object()
            .ok_or_else(|| model::err(400, "invalid_request", "Body must be an object."))?;
        Ok(obj
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect())
    } else {
        Ok(url::form_urlencoded::parse(body).into_owned().collect())
    }
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn client_creds(
    p: &HashMap<String, String>,
    headers: &HeaderMap,
) -> (Option<String>, model::ClientCred) {
    model::ClientCred::from_request(p, basic_auth(headers))
}

async fn device_code(State(st): St, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let p = match params(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Some(r) = st.providers.fault("auth0.device_code").await {
        return r;
    }
    let (cid, secret) = client_creds(&p, &headers);
    let g = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    match st
        .auth0
        .device_code(cid.as_deref(), &secret, g("scope"), g("audience"))
    {
        Ok(v) => ok_json(v),
        Err(e) => e.into_response(),
    }
}

async fn token(State(st): St, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let p = match params(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let endpoint = match p.get("grant_type").map(String::as_str) {
        Some("urn:openid:params:grant-type:ciba") => "auth0.ciba_poll",
        Some(g) if g.contains("token-exchange") => "auth0.vault",
        _ => "auth0.token",
    };
    if let Some(r) = st.providers.fault(endpoint).await {
        return r;
    }
    match st.auth0.token(&p, basic_auth(&headers)) {
        Ok(TokenOutcome::Json(v)) => ok_json(v),
        Ok(TokenOutcome::Vault(g)) => {
            let scopes: Vec<&str> = g.scopes.iter().map(String::as_str).collect();
            let at = st.issue_provider_token(&g.connection, &scopes, &g.sub, g.ttl_ms);
            st.auth0.record_issued(&at);
            ok_json(serde_json::json!({
                "access_token": at,
                "scope": g.scopes.join(" "),
                "expires_in": g.ttl_ms / 1000,
                "issued_token_type": model::TOKEN_TYPE_FEDERATED,
                "token_type": "Bearer",
            }))
        }
        Err(e) => e.into_response(),
    }
}

async fn revoke(State(st): St, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let p = match params(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let (cid, secret) = client_creds(&p, &headers);
    let Some(tok) = p.get("token").filter(|t| !t.is_empty()) else {
        return model::err(400, "invalid_request", "Missing required parameter: token")
            .into_response();
    };
    match st.auth0.revoke(cid.as_deref(), &secret, tok) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn bc_authorize(State(st): St, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let p = match params(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Some(r) = st.providers.fault("auth0.bc_authorize").await {
        return r;
    }
    let (cid, secret) = client_creds(&p, &headers);
    let g = |k: &str| p.get(k).map(String::as_str);
    match st.auth0.bc_authorize(
        cid.as_deref(),
        &secret,
        g("login_hint"),
        g("scope"),
        g("binding_message"),
        g("audience"),
        g("requested_expiry"),
        g("authorization_details"),
    ) {
        Ok(v) => ok_json(v),
        Err(e) => e.into_response(),
    }
}

async fn userinfo(State(st): St, headers: HeaderMap) -> Response {
    match st.auth0.userinfo(bearer(&headers)) {
        Ok(v) => ok_json(v),
        Err(e) => e.into_response(),
    }
}

async fn discovery(State(st): St) -> Response {
    let iss = st.auth0.issuer();
    axum::Json(serde_json::json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}oauth/token"),
        "device_authorization_endpoint": format!("{iss}oauth/device/code"),
        "backchannel_authentication_endpoint": format!("{iss}bc-authorize"),
        "revocation_endpoint": format!("{iss}oauth/revoke"),
        "userinfo_endpoint": format!("{iss}userinfo"),
        "jwks_uri": format!("{iss}.well-known/jwks.json"),
        "grant_types_supported": [model::GRANT_DEVICE, model::GRANT_REFRESH, model::GRANT_CIBA, model::GRANT_VAULT],
        "backchannel_token_delivery_modes_supported": ["poll"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
    }))
    .into_response()
}

async fn jwks(State(st): St) -> Response {
    axum::Json(st.auth0.jwks()).into_response()
}

#[derive(serde::Deserialize)]
struct UserCodeQ {
    user_code: Option<String>,
}

async fn activate_page(Query(q): Query<UserCodeQ>) -> Html<String> {
    let code: String = q
        .user_code
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Html(format!(
        "<!doctype html><title>dealflow sandbox: activate</title>\
         <h1>Sandbox sign-in</h1><p>This is the dealflow sandbox, not Auth0.</p>\
         <form method=post action=/activate>\
         <label>Code <input name=user_code value=\"{code}\"></label>\
         <label>Sandbox key (second line of the sandbox's URL file) <input name=key type=password></label>\
         <button name=decision value=approve>Sign in as Dana Demo</button>\
         <button name=decision value=deny>Deny</button></form>"
    ))
}

async fn activate_post(State(st): St, body: axum::body::Bytes) -> Html<&'static str> {
    let p: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    // The emulated Auth0 has no passwords: the sandbox's key stands in for the owner's
    // login, or any user of the machine could sign in as the demo user.
    let key = p.get("key").map(String::as_str).unwrap_or("");
    if !model::constant_eq(key.as_bytes(), st.admin.expose().as_bytes()) {
        return Html("<p>Wrong sandbox key. It is the second line of the sandbox's URL file.</p>");
    }
    let code = p.get("user_code").map(String::as_str).unwrap_or("");
    let approve = p.get("decision").map(String::as_str) != Some("deny");
    if st.auth0.decide_device(code, model::DEMO_SUB, approve) {
        Html("<p>Done. You can return to your terminal.</p>")
    } else {
        Html("<p>Unknown or expired code.</p>")
    }
}

#[derive(serde::Deserialize)]
struct ApproveDevice {
    user_code: String,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    deny: bool,
}

/// Sandbox-only: approve a device code for a user without a browser (the `--sandbox`
/// session and tests use this).
async fn device_approve(
    State(st): St,
    headers: HeaderMap,
    axum::Json(b): axum::Json<ApproveDevice>,
) -> Response {
    // Approving a sign-in as anyone is the sandbox's master key: its owner's only.
    if let Some(r) = not_admin(&st, &headers) {
        return r;
    }
    let sub = b.sub.as_deref().unwrap_or(model::DEMO_SUB);
    if st.auth0.decide_device(&b.user_code, sub, !b.deny) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        model::err(
            404,
            "not_found",
            "No pending device code with that user code.",
        )
        .into_response()
    }
}

#[derive(serde::Deserialize)]
struct TicketQ {
    ticket: String,
}

async fn connect_consent(State(st): St, Query(q): Query<TicketQ>) -> Response {
    match st.auth0.connect_consent(&q.ticket) {
        Some(url) => Redirect::to(&url).into_response(),
        None => (StatusCode::BAD_REQUEST, "unknown or expired ticket").into_response(),
    }
}

async fn connect_start(
    State(st): St,
    headers: HeaderMap,
    axum::Json(b): axum::Json<serde_json::Value>,
) -> Response {
    match st.auth0.connect_start(bearer(&headers), &b) {
        Ok(v) => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Err(e) => problem(e),
    }
}

async fn connect_complete(
    State(st): St,
    headers: HeaderMap,
    axum::Json(b): axum::Json<serde_json::Value>,
) -> Response {
    match st.auth0.connect_complete(bearer(&headers), &b) {
        Ok(v) => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Err(e) => problem(e),
    }
}

#[derive(serde::Deserialize)]
struct ConnQ {
    connection: Option<String>,
}

async fn accounts_list(State(st): St, headers: HeaderMap, Query(q): Query<ConnQ>) -> Response {
    if let Some(r) = st.providers.fault("auth0.accounts").await {
        return r;
    }
    match st
        .auth0
        .accounts_list(bearer(&headers), q.connection.as_deref())
    {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => problem(e),
    }
}

async fn account_delete(State(st): St, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match st.auth0.account_delete(bearer(&headers), &id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => problem(e),
    }
}

/// The sandbox's own controls answer only its owner's processes (see `AdminKey`).
pub(super) fn not_admin(st: &SandboxState, headers: &HeaderMap) -> Option<Response> {
    (!st.admin.admits(headers)).then(|| {
        model::err(
            401,
            "invalid_token",
            "This sandbox control needs the key from the sandbox's URL file.",
        )
        .into_response()
    })
}

async fn phone_list(State(st): St, headers: HeaderMap) -> Response {
    if let Some(r) = not_admin(&st, &headers) {
        return r;
    }
    axum::Json(serde_json::json!({ "requests": st.auth0.phone_requests() })).into_response()
}

/// `POST /sandbox/phone/requests/{id}/approve` approves everything asked; a JSON body
/// `{"only": [0, 2]}` approves only those `authorization_details` entries (by position).
async fn phone_decide(
    State(st): St,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = not_admin(&st, &headers) {
        return r;
    }
    #[derive(serde::Deserialize)]
    struct Only {
        only: Vec<usize>,
    }
    let only = match (decision.as_str(), body.is_empty()) {
        ("approve", false) => match serde_json::from_slice::<Only>(&body) {
            Ok(o) => Some(o.only),
            Err(e) => {
                return model::err(400, "invalid_request", format!("body: {e}")).into_response();
            }
        },
        _ => None,
    };
    let approve = match decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let decided = match &only {
        Some(keep) => st.auth0.phone_approve_only(&id, keep),
        None => st.auth0.phone_decide(&id, approve),
    };
    if decided {
        StatusCode::NO_CONTENT.into_response()
    } else {
        model::err(404, "not_found", "No pending request with that id.").into_response()
    }
}

#[derive(serde::Deserialize)]
struct RevokeBody {
    connection: String,
    #[serde(default)]
    scopes: Vec<String>,
    /// Whose grant; the demo user's by default.
    #[serde(default)]
    sub: Option<String>,
}

/// `dealflow sandbox revoke`: the user takes scopes (or the whole grant) back at the
/// provider. Answers the scopes left.
async fn accounts_revoke(
    State(st): St,
    headers: HeaderMap,
    axum::Json(b): axum::Json<RevokeBody>,
) -> Response {
    if let Some(r) = not_admin(&st, &headers) {
        return r;
    }
    let sub = b.sub.as_deref().unwrap_or(model::DEMO_SUB);
    let before: Vec<String> = st
        .auth0
        .connected_accounts(sub)
        .into_iter()
        .find(|a| a.connection == b.connection)
        .map(|a| a.scopes)
        .unwrap_or_default();
    let not_granted: Vec<&String> = b.scopes.iter().filter(|s| !before.contains(s)).collect();
    match st.revoke_grant(sub, &b.connection, &b.scopes) {
        Some(left) => axum::Json(serde_json::json!({
            "connection": b.connection, "scopes": left, "not_granted": not_granted,
        }))
        .into_response(),
        None => model::err(
            404,
            "not_found",
            format!("{sub} has no account on {}.", b.connection),
        )
        .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct JoinQ {
    nonce: String,
    proof: String,
}

/// The agent client's secret, for another of the owner's `--sandbox` processes that
/// joins this sandbox instead of starting its own (one world per user). Both sides
/// prove they hold the key without sending it (see `sandbox::proof`): the joiner with
/// its proof of the nonce, this sandbox with its own in the answer.
async fn agent_credentials(State(st): St, Query(q): Query<JoinQ>) -> Response {
    use super::proof;
    let key = st.admin.expose();
    if q.nonce.len() < 16 || !proof::check(key, proof::CLIENT, &q.nonce, &q.proof) {
        return model::err(
            401,
            "invalid_token",
            "Joining this sandbox needs the key from its URL file.",
        )
        .into_response();
    }
    axum::Json(serde_json::json!({
        "agent_client_secret": st.auth0.agent_client_secret(),
        "proof": proof::proof(key, proof::SERVER, &q.nonce),
    }))
    .into_response()
}
