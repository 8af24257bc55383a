#![allow(clippy::unwrap_used)]
//! dealflow's Auth0 client against the emulator over real HTTP: device login, session
//! refresh/logout, Token Vault, CIBA with the phone, connected accounts.

use dealflow::auth::ciba::{CibaClient, CibaOutcome};
use dealflow::auth::connect::{ConnectClient, LoopbackRedirect, parse_redirect};
use dealflow::auth::device::DeviceLogin;
use dealflow::auth::keyring::{ACCESS_TOKEN, MemoryStore, REFRESH_TOKEN, SecretStore};
use dealflow::auth::session::Session;
use dealflow::auth::vault::VaultClient;
use dealflow::auth::{AuthError, AuthSettings, Secret};
use dealflow::core::domain::Connection;
use dealflow::sandbox::Sandbox;
use dealflow::sandbox::auth0::model::{DEMO_SUB, LEAD_SUB};
use dealflow::sandbox::sign_in;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const UNIT_MS: u64 = 20;

async fn setup() -> (Sandbox, AuthSettings) {
    let sb = Sandbox::start(None).await.unwrap();
    sb.state
        .auth0
        .set_timing(|t| t.ms_per_second = UNIT_MS as i64);
    let mut s = sign_in::settings(&sb.base_url()).with_sandbox_key(sb.state.admin.expose());
    s.poll_unit = Duration::from_millis(UNIT_MS);
    (sb, s)
}

/// A poll wait that records each interval it is asked to wait, then waits it (the
/// emulator enforces the interval, so polling early would be answered `slow_down`).
/// Tests assert on the record, never on the wall clock.
fn recording_waits(s: &mut AuthSettings) -> Arc<std::sync::Mutex<Vec<Duration>>> {
    let waited = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = waited.clone();
    s.poll_wait = dealflow::wall::Wait(Arc::new(move |d| {
        log.lock().unwrap().push(d);
        Box::pin(tokio::time::sleep(d))
    }));
    waited
}

fn units(n: u32) -> Duration {
    Duration::from_millis(UNIT_MS) * n
}

async fn session(s: &AuthSettings) -> Session {
    sign_in::session(s.clone()).await.unwrap()
}

#[tokio::test]
async fn device_login_session_refresh_and_logout_with_revocation() {
    let (sb, s) = setup().await;
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::default());
    let login = DeviceLogin::new(s.clone());
    let prompt = login.start().await.unwrap();
    assert!(prompt.verification_uri.starts_with(&sb.base_url()));
    assert_eq!(prompt.user_code.len(), 9);
    sign_in::approve_device(&s, &prompt.user_code)
        .await
        .unwrap();
    let tokens = login
        .complete(&prompt, &CancellationToken::new())
        .await
        .unwrap();
    let sess = Session::from_tokens(s.clone(), store.clone(), tokens)
        .await
        .unwrap();
    assert_eq!(sess.sub().await.unwrap(), DEMO_SUB);
    let rt1 = store.get(REFRESH_TOKEN).unwrap().unwrap();
    assert_eq!(sess.userinfo().await.unwrap()["name"], "Dana Demo");

    // Resume from the keyring: the access token the sign-in got is still good, so the
    // next command neither refreshes nor rotates (one rotation per token lifetime, not
    // one per command).
    let before = sb.state.providers.calls("auth0.token");
    let cached = Session::resume(s.clone(), store.clone()).await.unwrap();
    assert_eq!(cached.sub().await.unwrap(), DEMO_SUB);
    assert_eq!(sb.state.providers.calls("auth0.token"), before);
    assert_eq!(store.get(REFRESH_TOKEN).unwrap().unwrap(), rt1);
    // Once it is gone (expired), resume refreshes; rotation stores the new refresh token.
    store.delete(ACCESS_TOKEN).unwrap();
    let resumed = Session::resume(s.clone(), store.clone()).await.unwrap();
    let at = resumed.access_token().await.unwrap();
    assert_eq!(resumed.sub().await.unwrap(), DEMO_SUB);
    let rt2 = store.get(REFRESH_TOKEN).unwrap().unwrap();
    assert_ne!(rt1, rt2);
    // Cached: no second refresh while the token is fresh.
    assert_eq!(resumed.access_token().await.unwrap(), at);
    assert_eq!(store.get(REFRESH_TOKEN).unwrap().unwrap(), rt2);

    // Logout revokes at Auth0 and clears the keyring.
    resumed.logout().await.unwrap();
    assert_eq!(store.get(REFRESH_TOKEN).unwrap(), None);
    let again = Session::resume(s.clone(), store.clone()).await;
    assert!(matches!(again, Err(AuthError::NotSignedIn)));
    // The revoked token is dead at the server too.
    store.set(REFRESH_TOKEN, &rt2).unwrap();
    let dead = Session::resume(s.clone(), store.clone()).await.unwrap();
    let e = dead.access_token().await.unwrap_err();
    // A dead sign-in says what helps, and leaves no dead token behind.
    assert!(matches!(e, AuthError::SignInEnded(_)), "{e:?}");
    assert!(e.to_string().contains("dealflow login"), "{e}");
    assert_eq!(store.get(REFRESH_TOKEN).unwrap(), None);
    assert!(matches!(
        Session::resume(s.clone(), store.clone()).await,
        Err(AuthError::NotSignedIn)
    ));
}

#[tokio::test]
async fn device_poller_adds_five_seconds_on_slow_down() {
    let (sb, mut s) = setup().await;
    let waited = recording_waits(&mut s);
    let login = DeviceLogin::new(s.clone());
    let prompt = login.start().await.unwrap();
    sign_in::approve_device(&s, &prompt.user_code)
        .await
        .unwrap();
    sb.state.auth0.set_timing(|t| t.force_slow_down = 1);
    login
        .complete(&prompt, &CancellationToken::new())
        .await
        .unwrap();
    // 5 units before the first poll, then 5 + 5 = 10 after slow_down. A poller that
    // ignored slow_down would wait 5 again.
    assert_eq!(*waited.lock().unwrap(), vec![units(5), units(10)]);
}

#[tokio::test]
async fn device_poller_stops_on_expiry_and_denial() {
    let (sb, s) = setup().await;
    sb.state.auth0.set_timing(|t| t.device_expires_in_s = 2);
    let login = DeviceLogin::new(s.clone());
    let prompt = login.start().await.unwrap();
    let e = login
        .complete(&prompt, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Expired { .. }), "{e:?}");

    sb.state.auth0.set_timing(|t| t.device_expires_in_s = 900);
    let prompt = login.start().await.unwrap();
    assert!(
        sb.state
            .auth0
            .decide_device(&prompt.user_code, DEMO_SUB, false)
    );
    let e = login
        .complete(&prompt, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Denied { .. }), "{e:?}");

    let prompt = login.start().await.unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let e = login.complete(&prompt, &cancel).await.unwrap_err();
    assert!(matches!(e, AuthError::Cancelled));
}

#[tokio::test]
async fn vault_exchange_caches_invalidates_and_surfaces_errors() {
    let (sb, s) = setup().await;
    let sess = session(&s).await;
    let at = sess.access_token().await.unwrap();
    let vault = VaultClient::new(s.clone(), Secret::new(sb.state.auth0.agent_client_secret()));

    let g = vault
        .exchange(at.expose(), Connection::Google)
        .await
        .unwrap();
    assert_eq!(g.scopes.len(), 5);
    assert!(
        g.missing_scopes(&["https://www.googleapis.com/auth/gmail.send"])
            .is_empty()
    );
    let grant = sb.state.provider_grant(g.access_token.expose()).unwrap();
    assert_eq!(grant.connection, "google-oauth2");
    assert_eq!(sb.state.auth0.vault_exchange_count(), 1);
    // Cached.
    let g2 = vault
        .exchange(at.expose(), Connection::Google)
        .await
        .unwrap();
    assert_eq!(g2.access_token, g.access_token);
    assert_eq!(sb.state.auth0.vault_exchange_count(), 1);
    // After a provider 401 the caller invalidates: a fresh exchange.
    vault.invalidate(Connection::Google);
    let g3 = vault
        .exchange(at.expose(), Connection::Google)
        .await
        .unwrap();
    assert_ne!(g3.access_token, g.access_token);
    assert_eq!(sb.state.auth0.vault_exchange_count(), 2);

    // Slack with fewer scopes: the granted scopes come back, the app sees what is missing.
    sb.state
        .auth0
        .set_connected_account(DEMO_SUB, "sign-in-with-slack", &["channels:read"]);
    let sl = vault
        .exchange(at.expose(), Connection::Slack)
        .await
        .unwrap();
    assert_eq!(sl.scopes, vec!["channels:read".to_string()]);
    assert_eq!(sl.missing_scopes(&["chat:write"]), vec!["chat:write"]);

    // Disconnected at Auth0: the full error, typed.
    sb.state.disconnect_account(DEMO_SUB, "google-oauth2");
    vault.invalidate(Connection::Google);
    let e = vault
        .exchange(at.expose(), Connection::Google)
        .await
        .unwrap_err();
    match &e {
        AuthError::Server {
            endpoint,
            status,
            error,
            description,
            ..
        } => {
            assert_eq!(endpoint, "/oauth/token");
            assert_eq!(*status, 401);
            assert_eq!(error, "federated_connection_refresh_token_not_found");
            assert!(description.contains("google-oauth2"));
        }
        other => panic!("{other:?}"),
    }
    // The provider side of the disconnect: previously issued tokens are revoked.
    assert!(sb.state.provider_grant(g3.access_token.expose()).is_none());

    // Provider revoked the stored refresh token.
    sb.state
        .auth0
        .revoke_at_provider(DEMO_SUB, "sign-in-with-slack");
    vault.invalidate(Connection::Slack);
    let e = vault
        .exchange(at.expose(), Connection::Slack)
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("federated_connection_refresh_token_flow_failed")
    );

    // App-level disconnect: refused locally, Auth0 not asked.
    let n = sb.state.auth0.vault_exchange_count();
    vault.set_disconnected(Connection::Slack, true);
    let e = vault
        .exchange(at.expose(), Connection::Slack)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Disconnected(_)));
    assert_eq!(sb.state.auth0.vault_exchange_count(), n);

    // Wrong agent secret.
    let bad = VaultClient::new(s.clone(), Secret::new("wrong"));
    let e = bad
        .exchange(at.expose(), Connection::Slack)
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(401), Some("invalid_client")));
}

async fn wait_for_phone(sb: &Sandbox, bm: &str) -> dealflow::sandbox::auth0::model::PhoneRequest {
    for _ in 0..200 {
        if let Some(r) = sb
            .state
            .phone_pending()
            .into_iter()
            .find(|r| r.binding_message == bm)
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("no phone request");
}

/// The phone says yes to `phone_id`; the CIBA-issued token is the subject of a Token
/// Vault exchange (made with `agent`'s credential) for the demo user's Google account.
async fn device_yes_opens_the_vault(
    sb: &Sandbox,
    s: &AuthSettings,
    ciba: &CibaClient,
    req: &dealflow::auth::ciba::CibaRequest,
    phone_id: &str,
    agent: impl Into<dealflow::auth::agent::AgentAuth>,
) {
    assert!(sb.state.phone_approve(phone_id));
    let out = ciba.poll(req, &CancellationToken::new()).await.unwrap();
    let CibaOutcome::Approved { access_token, .. } = out else {
        panic!("{out:?}")
    };
    let vault = VaultClient::new(s.clone(), agent);
    let g = vault
        .exchange(access_token.expose(), Connection::Google)
        .await
        .unwrap();
    assert_eq!(
        sb.state
            .provider_grant(g.access_token.expose())
            .unwrap()
            .sub,
        DEMO_SUB
    );
}

#[tokio::test]
async fn ciba_approved_token_is_the_vault_subject() {
    let (sb, s) = setup().await;
    let ciba = CibaClient::new(s.clone(), Secret::new(sb.state.auth0.agent_client_secret()));
    let req = ciba
        .start(DEMO_SUB, "dealflow: 2 actions - 1 email 1 cal", "")
        .await
        .unwrap();
    let phone = wait_for_phone(&sb, "dealflow: 2 actions - 1 email 1 cal").await;
    assert_eq!(phone.binding_message, "dealflow: 2 actions - 1 email 1 cal");
    assert_eq!(phone.requester, "dealflow agent");
    assert_eq!(phone.user_sub, DEMO_SUB);
    assert!(phone.expires_in_ms > 0);
    device_yes_opens_the_vault(
        &sb,
        &s,
        &ciba,
        &req,
        &phone.id,
        Secret::new(sb.state.auth0.agent_client_secret()),
    )
    .await;
    // The auth_req_id is single-use.
    let e = ciba
        .poll(&req, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_grant"));
}

#[tokio::test]
async fn ciba_denied_expired_cancelled_and_slow_down() {
    let (sb, mut s) = setup().await;
    let waited = recording_waits(&mut s);
    let ciba = CibaClient::new(s.clone(), Secret::new(sb.state.auth0.agent_client_secret()));

    // Denied over the phone's HTTP API (what `dealflow sandbox phone` calls).
    let req = ciba
        .start(LEAD_SUB, "approve 1 email", "openid")
        .await
        .unwrap();
    let phone = wait_for_phone(&sb, "approve 1 email").await;
    assert_eq!(phone.user_name, "Lee Lead");
    let r = reqwest::Client::new()
        .post(format!(
            "{}/sandbox/phone/requests/{}/deny",
            sb.base_url(),
            phone.id
        ))
        .bearer_auth(sb.state.admin.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let out = ciba.poll(&req, &CancellationToken::new()).await.unwrap();
    assert!(matches!(out, CibaOutcome::Denied), "{out:?}");

    // Expired: nobody answers within 3 units; the server says access_denied, the
    // client knows it is an expiry.
    sb.state.auth0.set_timing(|t| t.ciba_expires_in_s = 3);
    let req = ciba.start(DEMO_SUB, "will expire", "").await.unwrap();
    let out = ciba.poll(&req, &CancellationToken::new()).await.unwrap();
    assert!(matches!(out, CibaOutcome::Expired), "{out:?}");
    sb.state.auth0.set_timing(|t| t.ciba_expires_in_s = 300);

    // Cancelled.
    let req = ciba.start(DEMO_SUB, "cancel me", "").await.unwrap();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        c2.cancel();
    });
    let out = ciba.poll(&req, &cancel).await.unwrap();
    assert!(matches!(out, CibaOutcome::Cancelled));

    // slow_down announcing interval 20 (body + Retry-After): the poller waits 20 units.
    let req = ciba.start(DEMO_SUB, "slow", "").await.unwrap();
    let phone = wait_for_phone(&sb, "slow").await;
    sb.state.phone_approve(&phone.id);
    sb.state.auth0.set_timing(|t| {
        t.force_slow_down = 1;
        t.slow_down_to = Some(20);
    });
    waited.lock().unwrap().clear();
    let out = ciba.poll(&req, &CancellationToken::new()).await.unwrap();
    assert!(matches!(out, CibaOutcome::Approved { .. }));
    // The first interval, then the 20 the server announced (not 5 + 5).
    let waits = waited.lock().unwrap().clone();
    assert_eq!(waits.last(), Some(&units(20)), "{waits:?}");
    assert_eq!(waits.len(), 2, "{waits:?}");

    // Binding message too long: Auth0's error, typed.
    let e = ciba.start(DEMO_SUB, &"x".repeat(65), "").await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.code(), Some("invalid_request"));
    assert!(e.to_string().contains("/bc-authorize"));
}

#[tokio::test]
async fn connected_account_connect_flow_over_loopback_redirect() {
    let (sb, s) = setup().await;
    let sess = session(&s).await;
    sb.state
        .auth0
        .delete_connected_account(DEMO_SUB, "sign-in-with-slack");
    sb.state
        .auth0
        .delete_connected_account(DEMO_SUB, "salesforce");
    let cc = ConnectClient::new(&sess);
    let listed = cc.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].connection, "google-oauth2");

    let lb = LoopbackRedirect::bind().await.unwrap();
    let start = cc
        .start(
            Connection::Slack,
            &["chat:write", "channels:read"],
            &lb.redirect_uri,
        )
        .await
        .unwrap();
    assert!(start.connect_url.contains("ticket="));
    let waiter = tokio::spawn(lb.wait());
    // The "browser": follows the consent redirect to the loopback listener.
    let body = reqwest::get(&start.connect_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("Account connected"));
    let (code, state) = waiter.await.unwrap().unwrap();
    let acct = cc.complete(&start, &code, &state).await.unwrap();
    assert_eq!(acct.connection, "sign-in-with-slack");
    assert_eq!(acct.scopes, vec!["chat:write", "channels:read"]);

    // The vault has it now.
    let vault = VaultClient::new(s.clone(), Secret::new(sb.state.auth0.agent_client_secret()));
    let at = sess.access_token().await.unwrap();
    let t = vault
        .exchange(at.expose(), Connection::Slack)
        .await
        .unwrap();
    assert_eq!(t.scopes.len(), 2);

    // Completing twice fails; a bad state is refused locally.
    assert!(cc.complete(&start, &code, &state).await.is_err());
    assert!(matches!(
        cc.complete(&start, &code, "other").await,
        Err(AuthError::Invalid(_))
    ));
    // Delete through the My Account API.
    cc.delete(&acct.id).await.unwrap();
    assert_eq!(cc.list().await.unwrap().len(), 1);
    // Paste-back parsing.
    assert_eq!(
        parse_redirect("http://127.0.0.1:9/callback?connect_code=abc&state=xyz"),
        Some(("abc".into(), "xyz".into()))
    );
    assert_eq!(
        parse_redirect("http://127.0.0.1:9/callback?state=xyz"),
        None
    );
}

#[test]
fn secrets_and_errors_never_print_tokens() {
    let s = Secret::new("eyJhbGciOi.super.secret");
    assert_eq!(format!("{s}"), "[redacted]");
    assert_eq!(format!("{s:?}"), "[redacted]");
    assert_eq!(s.expose(), "eyJhbGciOi.super.secret");
}

#[tokio::test]
async fn auth_clients_from_keyring_and_sandbox() {
    use dealflow::auth::AuthClients;
    use dealflow::auth::keyring::AGENT_SECRET;
    use dealflow::sandbox::auth0::model::{AGENT_CLIENT_ID, API_AUDIENCE, LOGIN_CLIENT_ID};
    let (sb, s) = setup().await;
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::default());
    let cfg = dealflow::config::AuthSection {
        domain: sb.base_url(),
        client_id: LOGIN_CLIENT_ID.into(),
        agent_client_id: AGENT_CLIENT_ID.into(),
        audience: API_AUDIENCE.into(),
        agent_auth_method: "client_secret_post".into(),
    };
    // Signed in but no agent secret yet: a clear configuration error.
    let login = DeviceLogin::new(s.clone());
    let p = login.start().await.unwrap();
    sign_in::approve_device(&s, &p.user_code).await.unwrap();
    let t = login.complete(&p, &CancellationToken::new()).await.unwrap();
    Session::from_tokens(s.clone(), store.clone(), t)
        .await
        .unwrap();
    let e = AuthClients::from_keyring(&cfg, store.clone())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("agent-credential"), "{e}");
    store
        .set(AGENT_SECRET, &sb.state.auth0.agent_client_secret())
        .unwrap();
    let c = AuthClients::from_keyring(&cfg, store.clone())
        .await
        .unwrap();
    let at = c.session.access_token().await.unwrap();
    let g = c
        .vault
        .exchange(at.expose(), Connection::Slack)
        .await
        .unwrap();
    assert_eq!(g.scopes.len(), 2);

    let c = sign_in::clients(&sb, s.clone()).await.unwrap();
    assert_eq!(c.session.sub().await.unwrap(), DEMO_SUB);
}

#[tokio::test]
async fn a_second_process_rotating_the_refresh_token_does_not_revoke_the_family() {
    let (_sb, s) = setup().await;
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::default());
    let login = DeviceLogin::new(s.clone());
    let p = login.start().await.unwrap();
    sign_in::approve_device(&s, &p.user_code).await.unwrap();
    let t = login.complete(&p, &CancellationToken::new()).await.unwrap();
    Session::from_tokens(s.clone(), store.clone(), t)
        .await
        .unwrap();
    // Two "processes" share the keyring entry.
    let a = Session::resume(s.clone(), store.clone()).await.unwrap();
    let b = Session::resume(s.clone(), store.clone()).await.unwrap();
    a.access_token().await.unwrap(); // rotates; the keyring now holds the new token
    b.access_token().await.unwrap(); // must pick up the rotated token, not reuse the spent one
    // Both still work: the family was not revoked.
    let a2 = Session::resume(s.clone(), store.clone()).await.unwrap();
    a2.access_token().await.unwrap();
}

/// The TUI, `dealflow mcp` and a CLI command on one box share the keyring entry and
/// refresh at the same moment: the file lock keeps the rotation single-file, so nobody
/// presents a spent token and Auth0's reuse detection never revokes the family.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_from_several_processes_never_revoke_the_family() {
    let (sb, s) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("state/refresh.lock");
    let store: Arc<MemoryStore> = Arc::new(MemoryStore::default());
    let login = DeviceLogin::new(s.clone());
    let p = login.start().await.unwrap();
    sign_in::approve_device(&s, &p.user_code).await.unwrap();
    let t = login.complete(&p, &CancellationToken::new()).await.unwrap();
    Session::from_tokens(s.clone(), store.clone(), t)
        .await
        .unwrap();
    // Each "process" has its own Session (own in-process mutex, own copy of the token);
    // only the keyring entry and the lock file are shared.
    let mut tasks = vec![];
    for _ in 0..4 {
        let session = Session::resume(s.clone(), store.clone())
            .await
            .unwrap()
            .with_refresh_lock(Some(lock.clone()));
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                // Not cached: every call is a refresh (and a rotation).
                session
                    .token_for_audience(&session.settings().audience)
                    .await?;
            }
            Ok::<(), AuthError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let after = Session::resume(s.clone(), store.clone()).await.unwrap();
    after.access_token().await.unwrap();
    assert!(std::fs::metadata(&lock).unwrap().is_file());
    drop(sb);
}

#[tokio::test]
async fn activation_page_approves_in_a_browser() {
    let (sb, s) = setup().await;
    let login = DeviceLogin::new(s.clone());
    let p = login.start().await.unwrap();
    let page = reqwest::get(p.verification_uri_complete.clone().unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&p.user_code) && page.contains("sandbox"));
    let r = reqwest::Client::new()
        .post(format!("{}/activate", sb.base_url()))
        .form(&[("user_code", p.user_code.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // No key, no sign-in: the port is open to every user of the machine.
    assert!(r.contains("Wrong sandbox key"), "{r}");
    let r = reqwest::Client::new()
        .post(format!("{}/activate", sb.base_url()))
        .form(&[
            ("user_code", p.user_code.as_str()),
            ("decision", "approve"),
            ("key", sb.state.admin.expose()),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(r.contains("Done"));
    login.complete(&p, &CancellationToken::new()).await.unwrap();
}

/// A fresh P-256 key: (private key PEM, public key PEM).
fn p256_pem_pair() -> (String, String) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    // SubjectPublicKeyInfo for an id-ecPublicKey on prime256v1, then the point.
    let mut spki = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    spki.extend_from_slice(pair.public_key().as_ref());
    let pem = |label: &str, der: &[u8]| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    (pem("PRIVATE KEY", pkcs8.as_ref()), pem("PUBLIC KEY", &spki))
}

/// private_key_jwt: the agent client proves itself with a JWT signed by a key whose
/// public half is registered on the client; no shared secret crosses the wire.
#[tokio::test]
async fn the_agent_client_authenticates_with_private_key_jwt() {
    use dealflow::auth::agent::AgentAuth;
    let (sb, s) = setup().await;
    let (private, public) = p256_pem_pair();
    // Not registered yet: refused, and the error never quotes the assertion.
    let agent = AgentAuth::private_key_pem(&private).unwrap();
    assert!(!format!("{agent:?}").contains("PRIVATE"));
    let ciba = CibaClient::new(s.clone(), agent.clone());
    let e = ciba
        .start(DEMO_SUB, "dealflow: key test", "")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_client"), "{e}");
    assert!(e.to_string().contains("no credential is registered"), "{e}");

    assert!(
        sb.state
            .auth0
            .register_client_key(&s.agent_client_id, &public)
    );
    let req = ciba
        .start(DEMO_SUB, "dealflow: key test", "")
        .await
        .unwrap();
    let phone = wait_for_phone(&sb, "dealflow: key test").await;
    device_yes_opens_the_vault(&sb, &s, &ciba, &req, &phone.id, agent).await;

    // Another key is refused; so is a replayed assertion.
    let (other, _) = p256_pem_pair();
    let e = CibaClient::new(s.clone(), AgentAuth::private_key_pem(&other).unwrap())
        .start(DEMO_SUB, "dealflow: key test", "")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("invalid_client"), "{e}");
    let fields = AgentAuth::private_key_pem(&private)
        .unwrap()
        .fields(&s)
        .unwrap();
    let post = || {
        let mut form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form.extend([
            ("client_id", s.agent_client_id.as_str()),
            ("login_hint", "x"),
            ("scope", "openid"),
            ("binding_message", "replay"),
        ]);
        reqwest::Client::new()
            .post(format!("{}/bc-authorize", s.base_url))
            .form(&form)
            .send()
    };
    let first = post().await.unwrap();
    assert_ne!(first.status(), 401, "a fresh assertion authenticates");
    let again = post().await.unwrap();
    assert_eq!(again.status(), 401);
    assert!(again.text().await.unwrap().contains("jti replayed"));

    // The secret still works alongside.
    CibaClient::new(s.clone(), Secret::new(sb.state.auth0.agent_client_secret()))
        .start(DEMO_SUB, "dealflow: secret", "")
        .await
        .unwrap();
    // A key that is not a key is a clear error, without the text.
    let bad = AgentAuth::private_key_pem(
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(
        bad.to_string()
            .contains("not an EC P-256 or RSA private key"),
        "{bad}"
    );
    assert!(!bad.to_string().contains("nope"));
}

/// One dropped connection (a 503 from a proxy, a read that times out) while a poll is in
/// flight is not an answer: the device flow and CIBA poll on and finish; an outage that
/// lasts is still reported, naming the endpoint.
#[tokio::test]
async fn polling_rides_out_a_transient_fault() {
    use dealflow::sandbox::providers::Fault;
    dealflow::auth::set_http_timeout(Duration::from_millis(400));
    let (sb, s) = setup().await;
    let one = |status: u16, delay_ms: u64| Fault {
        status,
        body: None,
        retry_after_secs: None,
        delay_ms,
        remaining: 1,
    };
    // Sign-in: the first token poll gets a 503, the next one a stall past the timeout.
    sb.state.providers.inject("auth0.token", one(503, 0));
    let session = sign_in::session(s.clone()).await.unwrap();
    assert!(session.sub().await.is_ok());
    sb.state.providers.inject("auth0.token", one(200, 1_000));
    let login = DeviceLogin::new(s.clone());
    let prompt = login.start().await.unwrap();
    sign_in::approve_device(&s, &prompt.user_code)
        .await
        .unwrap();
    login
        .complete(&prompt, &CancellationToken::new())
        .await
        .unwrap();
    // CIBA: a 502 on the poll, then the phone's yes.
    let ciba = CibaClient::new(s.clone(), Secret::new(sb.state.auth0.agent_client_secret()));
    let req = ciba
        .start(DEMO_SUB, "dealflow: test", "openid")
        .await
        .unwrap();
    sb.state.providers.inject("auth0.ciba_poll", one(502, 0));
    let phone = wait_for_phone(&sb, "dealflow: test").await;
    assert!(sb.state.phone_approve(&phone.id));
    let out = ciba.poll(&req, &CancellationToken::new()).await.unwrap();
    assert!(matches!(out, CibaOutcome::Approved { .. }), "{out:?}");
    // A fault that does not go away ends the poll with the endpoint named.
    sb.state.providers.inject(
        "auth0.ciba_poll",
        Fault {
            remaining: 1000,
            ..one(500, 0)
        },
    );
    let req = ciba
        .start(DEMO_SUB, "dealflow: outage", "openid")
        .await
        .unwrap();
    let err = ciba
        .poll(&req, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/oauth/token"), "{err}");
    dealflow::auth::set_http_timeout(Duration::from_secs(30));
}

// ---------------------------------------------------------------- the emulator itself

/// The emulated Auth0's own conformance: it enforces what Auth0 enforces, over real HTTP
/// on loopback, with raw requests and no dealflow client code. These pin the wire
/// behaviour the client tests above rely on; each behaviour is also met by the client:
/// slow_down by `device_poller_adds_five_seconds_on_slow_down`, expiry and denial by
/// `device_poller_stops_on_expiry_and_denial`, rotation and reuse by the multi-process
/// refresh tests, revocation by `device_login_session_refresh_and_logout_with_revocation`,
/// vault errors by `vault_exchange_caches_invalidates_and_surfaces_errors`, CIBA outcomes
/// by `ciba_denied_expired_cancelled_and_slow_down`.
mod emulator {

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
        // Two polls must land inside one interval: at the sped-up 20 ms a second, a
        // loaded box let 100 ms pass between them and there was no slow_down to see.
        sb.state.auth0.set_timing(|t| t.ms_per_second = 1000);
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
}
