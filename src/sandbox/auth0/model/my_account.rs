//! Connected accounts and the My Account API: the connect flow, listing and deleting
//! accounts, provider-side revocation, and `/userinfo`.

use super::{
    Auth0State, CONNECTIONS, ConnectSession, ConnectedAccount, OAuthError, err, split_scope,
};
use crate::sandbox::state::random_token;

impl Auth0State {
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
}
