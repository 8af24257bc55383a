#![allow(clippy::unwrap_used)]
//! The emulated Auth0 enforces what Auth0 enforces, over real HTTP on loopback:
//! raw requests here (no dealflow client code), so these pin the wire behaviour the
//! client tests rely on.

use dealflow::sandbox::Sandbox;
use dealflow::sandbox::auth0::model::{AGENT_CLIENT_ID, DEMO_SUB, LOGIN_CLIENT_ID};
use serde_json::Value;

const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const VAULT: &str =
    "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token";
const FED: &str = "http://auth0.com/oauth/token-type/federated-connection-access-token";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

async fn sandbox() -> Sandbox {
    let sb = Sandbox::start(None).await.unwrap();
    sb.state.auth0.set_timing(|t| t.ms_per_second = 20);
    sb
}

async fn post(sb: &Sandbox, path: &str, form: &[(&str, &str)]) -> (u16, Value, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", sb.base_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ra = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, ra)
}

fn err(v: &Value) -> &str {
    v["error"].as_str().unwrap_or("")
}

async fn device_code(sb: &Sandbox) -> (String, String) {
    let (s, v, _) = post(
        sb,
        "/oauth/device/code",
        &[
            ("client_id", LOGIN_CLIENT_ID),
            ("scope", "openid offline_access"),
            ("audience", "https://api.dealflow.example"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["verification_uri"]
            .as_str()
            .unwrap()
            .ends_with("/activate")
    );
    assert_eq!(v["interval"], 5);
    (
        v["device_code"].as_str().unwrap().into(),
        v["user_code"].as_str().unwrap().into(),
    )
}

async fn poll_device(sb: &Sandbox, dc: &str) -> (u16, Value, Option<String>) {
    post(
        sb,
        "/oauth/token",
        &[
            ("grant_type", DEVICE),
            ("device_code", dc),
            ("client_id", LOGIN_CLIENT_ID),
        ],
    )
    .await
}

#[tokio::test]
async fn device_pending_then_slow_down_adds_five_seconds() {
    let sb = sandbox().await;
    let (dc, _) = device_code(&sb).await;
    let (s, v, _) = poll_device(&sb, &dc).await;
    assert_eq!((s, err(&v)), (403, "authorization_pending"));
    let (s, v, ra) = poll_device(&sb, &dc).await;
    assert_eq!((s, err(&v)), (429, "slow_down"));
    assert_eq!(v["interval"], 10);
    assert_eq!(ra.as_deref(), Some("10"));
    assert!(v["error_description"].as_str().unwrap().contains("10"));
}

#[tokio::test]
async fn device_expired_token_once_then_invalid_grant() {
    let sb = sandbox().await;
    let (dc, _) = device_code(&sb).await;
    sb.state.auth0.advance_ms(901 * 20);
    let (s, v, _) = poll_device(&sb, &dc).await;
    assert_eq!((s, err(&v)), (403, "expired_token"));
    let (s, v, _) = poll_device(&sb, &dc).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"));
}

#[tokio::test]
async fn device_code_is_single_use_and_denial_is_access_denied() {
    let sb = sandbox().await;
    let (dc, uc) = device_code(&sb).await;
    assert!(sb.state.auth0.decide_device(&uc, DEMO_SUB, true));
    let (s, v, _) = poll_device(&sb, &dc).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["refresh_token"].as_str().is_some());
    assert!(v["id_token"].as_str().is_some());
    sb.state.auth0.advance_ms(10 * 20);
    let (s, v, _) = poll_device(&sb, &dc).await;
    assert_eq!((s, err(&v)), (400, "invalid_grant"));

    let (dc, uc) = device_code(&sb).await;
    assert!(sb.state.auth0.decide_device(&uc, DEMO_SUB, false));
    let (s, v, _) = poll_device(&sb, &dc).await;
    assert_eq!((s, err(&v)), (403, "access_denied"));
}

#[tokio::test]
async fn client_types_are_enforced_per_grant() {
    let sb = sandbox().await;
    let secret = sb.state.auth0.agent_client_secret();
    // Device flow with the confidential agent client: not allowed.
    let (s, v, _) = post(
        &sb,
        "/oauth/device/code",
        &[("client_id", AGENT_CLIENT_ID), ("client_secret", &secret)],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "unauthorized_client"));
    // The public login client must not send a secret.
    let (s, v, _) = post(
        &sb,
        "/oauth/device/code",
        &[("client_id", LOGIN_CLIENT_ID), ("client_secret", "x")],
    )
    .await;
    assert_eq!((s, err(&v)), (401, "invalid_client"));
    // Vault exchange and CIBA with the public client: not allowed.
    let (s, v, _) = post(
        &sb,
        "/oauth/token",
        &[
            ("grant_type", VAULT),
            ("client_id", LOGIN_CLIENT_ID),
            ("subject_token", "x"),
            ("subject_token_type", AT),
            ("requested_token_type", FED),
            ("connection", "google-oauth2"),
        ],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "unauthorized_client"));
    let hint = format!(
        r#"{{"format":"iss_sub","iss":"{}/","sub":"{DEMO_SUB}"}}"#,
        sb.base_url()
    );
    let (s, v, _) = post(
        &sb,
        "/bc-authorize",
        &[
            ("client_id", LOGIN_CLIENT_ID),
            ("login_hint", &hint),
            ("scope", "openid"),
            ("binding_message", "hi"),
        ],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "unauthorized_client"));
    // The agent client without / with a wrong secret.
    for form_secret in [None, Some("wrong")] {
        let mut form = vec![
            ("client_id", AGENT_CLIENT_ID),
            ("login_hint", hint.as_str()),
            ("scope", "openid"),
            ("binding_message", "hi"),
        ];
        if let Some(s) = form_secret {
            form.push(("client_secret", s));
        }
        let (s, v, _) = post(&sb, "/bc-authorize", &form).await;
        assert_eq!((s, err(&v)), (401, "invalid_client"));
    }
}

#[tokio::test]
async fn bc_authorize_validates_binding_message_login_hint_and_scope() {
    let sb = sandbox().await;
    let secret = sb.state.auth0.agent_client_secret();
    let good_hint = format!(
        r#"{{"format":"iss_sub","iss":"{}/","sub":"{DEMO_SUB}"}}"#,
        sb.base_url()
    );
    let long = "x".repeat(65);
    let cases: Vec<(String, &str, String)> = vec![
        (good_hint.clone(), "openid", long),
        (DEMO_SUB.to_string(), "openid", "ok".into()),
        (
            format!(
                r#"{{"format":"iss_sub","iss":"{}","sub":"{DEMO_SUB}"}}"#,
                sb.base_url()
            ),
            "openid",
            "ok".into(),
        ),
        (
            good_hint.replace(DEMO_SUB, "auth0|nobody"),
            "openid",
            "ok".into(),
        ),
        (good_hint.clone(), "email", "ok".into()),
    ];
    for (hint, scope, bm) in &cases {
        let (s, v, _) = post(
            &sb,
            "/bc-authorize",
            &[
                ("client_id", AGENT_CLIENT_ID),
                ("client_secret", &secret),
                ("login_hint", hint),
                ("scope", scope),
                ("binding_message", bm),
            ],
        )
        .await;
        assert_eq!(
            (s, err(&v)),
            (400, "invalid_request"),
            "{hint} {scope} {bm}"
        );
    }
    let ok_bm = "x".repeat(64);
    let (s, v, _) = post(
        &sb,
        "/bc-authorize",
        &[
            ("client_id", AGENT_CLIENT_ID),
            ("client_secret", &secret),
            ("login_hint", &good_hint),
            ("scope", "openid"),
            ("binding_message", &ok_bm),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["auth_req_id"].as_str().is_some());
    assert_eq!(sb.state.phone_pending().len(), 1);
}

async fn device_tokens(sb: &Sandbox) -> Value {
    let (dc, uc) = device_code(sb).await;
    assert!(sb.state.auth0.decide_device(&uc, DEMO_SUB, true));
    let (s, v, _) = poll_device(sb, &dc).await;
    assert_eq!(s, 200);
    v
}

#[tokio::test]
async fn refresh_rotation_and_reuse_detection_revoke_the_family() {
    let sb = sandbox().await;
    let v = device_tokens(&sb).await;
    let rt1 = v["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String| {
        let sb = &sb;
        async move {
            post(
                sb,
                "/oauth/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", LOGIN_CLIENT_ID),
                    ("refresh_token", &rt),
                ],
            )
            .await
        }
    };
    let (s, v, _) = refresh(rt1.clone()).await;
    assert_eq!(s, 200);
    let rt2 = v["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    // Reusing the spent token fails and revokes the family, so rt2 dies too.
    let (s, v, _) = refresh(rt1).await;
    assert_eq!((s, err(&v)), (403, "invalid_grant"));
    let (s, v, _) = refresh(rt2).await;
    assert_eq!((s, err(&v)), (403, "invalid_grant"));
}

#[tokio::test]
async fn revoke_kills_the_refresh_token() {
    let sb = sandbox().await;
    let v = device_tokens(&sb).await;
    let rt = v["refresh_token"].as_str().unwrap().to_string();
    let (s, _, _) = post(
        &sb,
        "/oauth/revoke",
        &[("client_id", LOGIN_CLIENT_ID), ("token", &rt)],
    )
    .await;
    assert_eq!(s, 200);
    let (s, v, _) = post(
        &sb,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", LOGIN_CLIENT_ID),
            ("refresh_token", &rt),
        ],
    )
    .await;
    assert_eq!((s, err(&v)), (403, "invalid_grant"));
}

#[tokio::test]
async fn vault_exchange_unknown_connection_and_bad_subject() {
    let sb = sandbox().await;
    let secret = sb.state.auth0.agent_client_secret();
    let v = device_tokens(&sb).await;
    let at = v["access_token"].as_str().unwrap().to_string();
    let exch = |conn: &'static str, subject: String| {
        let (sb, secret) = (&sb, secret.clone());
        async move {
            post(
                sb,
                "/oauth/token",
                &[
                    ("grant_type", VAULT),
                    ("client_id", AGENT_CLIENT_ID),
                    ("client_secret", &secret),
                    ("subject_token", &subject),
                    ("subject_token_type", AT),
                    ("requested_token_type", FED),
                    ("connection", conn),
                ],
            )
            .await
        }
    };
    let (s, v, _) = exch("github", at.clone()).await;
    assert_eq!((s, err(&v)), (400, "invalid_request"));
    let (s, v, _) = exch("google-oauth2", "not-a-token".into()).await;
    assert_eq!((s, err(&v)), (401, "invalid_grant"));
    let (s, v, _) = exch("google-oauth2", at.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["issued_token_type"], FED);
    let tok = v["access_token"].as_str().unwrap();
    let grant = sb.state.provider_grant(tok).unwrap();
    assert_eq!(grant.connection, "google-oauth2");
    assert_eq!(grant.sub, DEMO_SUB);
    assert_eq!(grant.scopes.len(), 5);
}

#[tokio::test]
async fn discovery_jwks_userinfo_and_phone_http() {
    let sb = sandbox().await;
    let http = reqwest::Client::new();
    let d: Value = http
        .get(format!(
            "{}/.well-known/openid-configuration",
            sb.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], format!("{}/", sb.base_url()));
    let jwks: Value = http
        .get(d["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    let v = device_tokens(&sb).await;
    let ui = http
        .get(format!("{}/userinfo", sb.base_url()))
        .bearer_auth(v["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    let ui: Value = ui.json().await.unwrap();
    assert_eq!(ui["sub"], DEMO_SUB);
    let bad = http
        .get(format!("{}/userinfo", sb.base_url()))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);

    // Phone over HTTP: only with the sandbox's key (another user of the machine can
    // reach the port, not the owner's URL file).
    let key = sb.state.admin.expose();
    for forged in [None, Some("sbx-admin-guess")] {
        let mut req = http.get(format!("{}/sandbox/phone/requests", sb.base_url()));
        if let Some(f) = forged {
            req = req.bearer_auth(f);
        }
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    let r = http
        .post(format!("{}/sandbox/accounts/revoke", sb.base_url()))
        .json(&serde_json::json!({"connection": "google-oauth2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no key, no revoke");
    let r = http
        .post(format!("{}/sandbox/device/approve", sb.base_url()))
        .json(&serde_json::json!({"user_code": "ABCD-EFGH", "sub": "auth0|team-lead"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no key, no signing in as someone");
    let r = http
        .get(format!("{}/sandbox/providers", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no key, no reading the owner's mail");
    // No requests; an unknown id is 404.
    let list: Value = http
        .get(format!("{}/sandbox/phone/requests", sb.base_url()))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["requests"].as_array().unwrap().len(), 0);
    let r = http
        .post(format!(
            "{}/sandbox/phone/requests/txl_nope/approve",
            sb.base_url()
        ))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
