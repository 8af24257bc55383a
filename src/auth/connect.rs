//! Connected accounts (My Account API): the only way the vault gets a provider tokenset.
//! `start` returns the URL to open (and show as a QR); the redirect comes back either to
//! a loopback listener ([`LoopbackRedirect`]) or pasted by the user ([`parse_redirect`]);
//! `complete` finishes it with the PKCE verifier.

use super::session::Session;
use super::{AuthError, Secret, str_field};
use base64::Engine;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BASE: &str = "/me/v1/connected-accounts";

/// An in-progress connect. Keep it until `complete`.
#[derive(Debug, Clone)]
pub struct ConnectStart {
    /// Open this in a browser (connect_uri?ticket=...).
    pub connect_url: String,
    pub redirect_uri: String,
    auth_session: Secret,
    code_verifier: Secret,
    state: String,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ConnectedAccountInfo {
    pub id: String,
    pub connection: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

fn random_b64(n: usize) -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    let bytes: Vec<u8> = (0..n).map(|_| rng.random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub struct ConnectClient<'a> {
    session: &'a Session,
    http: reqwest::Client,
}

impl<'a> ConnectClient<'a> {
    pub fn new(session: &'a Session) -> ConnectClient<'a> {
        ConnectClient {
            session,
            http: super::http_client(),
        }
    }

    async fn my_account_token(&self) -> Result<Secret, AuthError> {
        let aud = format!("{}me/", self.session.settings().issuer());
        self.session.token_for_audience(&aud).await
    }

    async fn send(
        &self,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, AuthError> {
        let resp = req.send().await.map_err(|_| AuthError::Transport {
            endpoint: path.into(),
            message: "request failed".into(),
        })?;
        super::read_json(path, resp).await
    }

    /// Starts connecting `connection` with `scopes`; the provider redirects to `redirect_uri`.
    pub async fn start(
        &self,
        connection: crate::core::domain::Connection,
        scopes: &[&str],
        redirect_uri: &str,
    ) -> Result<ConnectStart, AuthError> {
        let at = self.my_account_token().await?;
        let verifier = random_b64(32);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        let state = random_b64(16);
        let path = format!("{BASE}/connect");
        let v = self
            .send(
                &path,
                self.http
                    .post(self.session.settings().url(&path))
                    .bearer_auth(at.expose())
                    .json(&serde_json::json!({
                        "connection": connection.as_str(),
                        "redirect_uri": redirect_uri,
                        "state": state,
                        "code_challenge": challenge,
                        "code_challenge_method": "S256",
                        "scopes": scopes,
                    })),
            )
            .await?;
        let missing = |k: &str| AuthError::Transport {
            endpoint: path.clone(),
            message: format!("response has no {k}"),
        };
        let uri = str_field(&v, "connect_uri").ok_or_else(|| missing("connect_uri"))?;
        let ticket = v
            .get("connect_params")
            .and_then(|p| p.get("ticket"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| missing("connect_params.ticket"))?;
        let mut url = url::Url::parse(&uri).map_err(|_| missing("valid connect_uri"))?;
        url.query_pairs_mut().append_pair("ticket", ticket);
        Ok(ConnectStart {
            connect_url: url.to_string(),
            redirect_uri: redirect_uri.into(),
            auth_session: Secret::new(
                str_field(&v, "auth_session").ok_or_else(|| missing("auth_session"))?,
            ),
            code_verifier: Secret::new(verifier),
            state,
        })
    }

    /// Finishes the connect with the `connect_code` and `state` from the redirect.
    pub async fn complete(
        &self,
        start: &ConnectStart,
        connect_code: &str,
        state: &str,
    ) -> Result<ConnectedAccountInfo, AuthError> {
        if state != start.state {
            return Err(AuthError::Invalid(
                "connect redirect: state does not match".into(),
            ));
        }
        let at = self.my_account_token().await?;
        let path = format!("{BASE}/complete");
        let v = self
            .send(
                &path,
                self.http
                    .post(self.session.settings().url(&path))
                    .bearer_auth(at.expose())
                    .json(&serde_json::json!({
                        "auth_session": start.auth_session.expose(),
                        "connect_code": connect_code,
                        "redirect_uri": start.redirect_uri,
                        "code_verifier": start.code_verifier.expose(),
                    })),
            )
            .await?;
        serde_json::from_value(v).map_err(|_| AuthError::Transport {
            endpoint: path,
            message: "malformed connected account".into(),
        })
    }

    pub async fn list(&self) -> Result<Vec<ConnectedAccountInfo>, AuthError> {
        let at = self.my_account_token().await?;
        let path = format!("{BASE}/accounts");
        let v = self
            .send(
                &path,
                self.http
                    .get(self.session.settings().url(&path))
                    .bearer_auth(at.expose()),
            )
            .await?;
        serde_json::from_value(v.get("accounts").cloned().unwrap_or_default()).map_err(|_| {
            AuthError::Transport {
                endpoint: path,
                message: "malformed accounts list".into(),
            }
        })
    }

    /// The [`ScopePlan`] for connecting `connection` now: what it grants, plus `wanted`.
    pub async fn plan(
        &self,
        connection: crate::core::domain::Connection,
        wanted: &[String],
    ) -> Result<ScopePlan, AuthError> {
        let accounts = self.list().await?;
        let granted = accounts
            .iter()
            .find(|a| a.connection == connection.as_str())
            .map(|a| a.scopes.as_slice());
        Ok(ScopePlan::new(connection, granted, wanted))
    }

    pub async fn delete(&self, id: &str) -> Result<(), AuthError> {
        let at = self.my_account_token().await?;
        let path = format!("{BASE}/accounts/{id}");
        self.send(
            &path,
            self.http
                .delete(self.session.settings().url(&path))
                .bearer_auth(at.expose()),
        )
        .await
        .map(|_| ())
    }
}

/// Scopes dealflow needs on `connection` that no tool names: reconciling an email send
/// interrupted by a crash looks the message up by its Message-ID, which needs
/// `gmail.metadata` (see `connectors::gmail`). Salesforce: `refresh_token`, so Token
/// Vault can keep the grant alive, and `id`, so the identity endpoint tells which
/// instance (`https://<org>.my.salesforce.com`) the token belongs to.
pub fn reconcile_scopes(connection: crate::core::domain::Connection) -> &'static [&'static str] {
    match connection {
        crate::core::domain::Connection::Google => {
            &["https://www.googleapis.com/auth/gmail.metadata"]
        }
        crate::core::domain::Connection::Slack => &[],
        crate::core::domain::Connection::Salesforce => &["refresh_token", "id"],
    }
}

/// Every scope dealflow uses on `connection`: its tools' and reconciliation's.
pub fn tool_scopes(connection: crate::core::domain::Connection) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let tools = crate::core::domain::ActionKind::ALL
        .iter()
        .filter(|k| {
            k.connection_with(crate::core::domain::CrmProvider::Salesforce) == Some(connection)
        })
        .flat_map(|k| k.scopes().iter().copied());
    for s in tools.chain(reconcile_scopes(connection).iter().copied()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// The long form of a scope typed short: `gmail.send` is Google's
/// `https://www.googleapis.com/auth/gmail.send`; Slack's scopes are already short.
pub fn expand_scope(connection: crate::core::domain::Connection, scope: &str) -> String {
    let scope = scope.trim();
    match connection {
        crate::core::domain::Connection::Google if !scope.contains("://") && scope != "openid" => {
            format!("https://www.googleapis.com/auth/{scope}")
        }
        _ => scope.to_string(),
    }
}

/// What a connect asks the provider for. My Account's `scopes` replace the grant rather
/// than add to it, so asking for only what is missing would drop the rest: the request
/// is what was granted plus what is wanted.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopePlan {
    /// Everything the connect asks for, granted scopes first.
    pub request: Vec<String>,
    /// Wanted and not granted yet.
    pub adding: Vec<String>,
    /// Granted already (kept).
    pub keeping: Vec<String>,
}

impl ScopePlan {
    /// `granted`: the account's scopes (`None`: not connected); `wanted`: scopes asked
    /// for, or empty for every scope dealflow uses on `connection`.
    pub fn new(
        connection: crate::core::domain::Connection,
        granted: Option<&[String]>,
        wanted: &[String],
    ) -> ScopePlan {
        let wanted: Vec<String> = if wanted.is_empty() {
            tool_scopes(connection)
        } else {
            wanted.iter().map(|s| expand_scope(connection, s)).collect()
        };
        let keeping: Vec<String> = granted.unwrap_or_default().to_vec();
        let mut request = keeping.clone();
        let mut adding = Vec::new();
        for s in wanted {
            if !request.contains(&s) {
                request.push(s.clone());
                adding.push(s);
            }
        }
        ScopePlan {
            request,
            adding,
            keeping,
        }
    }

    /// "adding gmail.send; keeping 4 granted"
    pub fn describe(&self) -> String {
        let short: Vec<&str> = self.adding.iter().map(|s| short_scope(s)).collect();
        match (self.adding.is_empty(), self.keeping.len()) {
            // A grant can list every scope and still be dead (a refresh token revoked at
            // the provider): connecting then renews it rather than doing nothing.
            (true, _) => "renewing the grant: every scope asked for is listed already".into(),
            (false, 0) => format!("asking for {}", short.join(", ")),
            (false, n) => format!(
                "adding {}; keeping the {n} already granted",
                short.join(", ")
            ),
        }
    }
}

/// `https://www.googleapis.com/auth/gmail.send` → `gmail.send`, for display.
pub fn short_scope(scope: &str) -> &str {
    scope
        .strip_prefix("https://www.googleapis.com/auth/")
        .unwrap_or(scope)
}

/// Parses a pasted redirect URL (SSH case) into `(connect_code, state)`.
pub fn parse_redirect(url: &str) -> Option<(String, String)> {
    let u = url::Url::parse(url.trim()).ok()?;
    let mut code = None;
    let mut state = None;
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "connect_code" => code = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            _ => {}
        }
    }
    Some((code?, state?))
}

/// A one-shot HTTP listener on 127.0.0.1 that receives the connect redirect.
pub struct LoopbackRedirect {
    listener: tokio::net::TcpListener,
    pub redirect_uri: String,
}

impl LoopbackRedirect {
    pub async fn bind() -> std::io::Result<LoopbackRedirect> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        Ok(LoopbackRedirect {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}/callback"),
        })
    }

    /// Waits for the browser's redirect and returns `(connect_code, state)`.
    pub async fn wait(self) -> Result<(String, String), AuthError> {
        let io = |e: std::io::Error| AuthError::Transport {
            endpoint: "loopback redirect".into(),
            message: e.to_string(),
        };
        loop {
            let (mut sock, _) = self.listener.accept().await.map_err(io)?;
            let mut buf = vec![0u8; 8192];
            let n = sock.read(&mut buf).await.map_err(io)?;
            let head = String::from_utf8_lossy(&buf[..n]);
            let target = head
                .lines()
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or("");
            let parsed = parse_redirect(&format!("http://127.0.0.1{target}"));
            let body = if parsed.is_some() {
                "Account connected. You can return to dealflow."
            } else {
                "Waiting for the connect redirect."
            };
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            if let Some(p) = parsed {
                return Ok(p);
            }
        }
    }
}

#[cfg(test)]
mod scope_plan_tests {
    use super::*;
    use crate::core::domain::Connection;

    fn g(s: &str) -> String {
        expand_scope(Connection::Google, s)
    }

    #[test]
    fn asking_for_one_scope_keeps_what_was_granted() {
        let granted = vec![g("gmail.send"), g("calendar.events")];
        let p = ScopePlan::new(
            Connection::Google,
            Some(&granted),
            &["gmail.compose".into()],
        );
        assert_eq!(
            p.request,
            vec![g("gmail.send"), g("calendar.events"), g("gmail.compose")]
        );
        assert_eq!(p.adding, vec![g("gmail.compose")]);
        assert_eq!(
            p.describe(),
            "adding gmail.compose; keeping the 2 already granted"
        );
    }

    #[test]
    fn a_plain_connect_asks_for_the_reconciliation_scope_too() {
        let p = ScopePlan::new(Connection::Google, None, &[]);
        assert!(p.request.contains(&g("gmail.metadata")), "{:?}", p.request);
        assert!(p.request.contains(&g("gmail.send")));
        assert!(p.keeping.is_empty());
    }

    #[test]
    fn nothing_missing_means_nothing_added() {
        let all = tool_scopes(Connection::Slack);
        let p = ScopePlan::new(Connection::Slack, Some(&all), &[]);
        assert!(p.adding.is_empty());
        assert_eq!(p.request, all);
        assert!(p.describe().starts_with("renewing the grant"));
    }
}
