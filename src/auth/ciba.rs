//! CIBA (Client-Initiated Backchannel Authentication), poll mode, with the confidential
//! agent client: `/bc-authorize` pushes a request with a binding message to the user's
//! phone; polling `/oauth/token` honours `interval`, `slow_down` (+5 s, or the body's
//! `interval`/`Retry-After` if larger) and tells a denial from an expiry.

use super::{AuthError, AuthSettings, Secret, int_field, post_form, slowed, str_field, wait};
use tokio_util::sync::CancellationToken;

const ENDPOINT_AUTHORIZE: &str = "/bc-authorize";
const ENDPOINT_TOKEN: &str = "/oauth/token";
pub const GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";

/// A started CIBA request. `auth_req_id` is a credential (with the client secret it
/// redeems the grant), so it is a [`Secret`] too.
#[derive(Debug, Clone)]
pub struct CibaRequest {
    pub auth_req_id: Secret,
    pub binding_message: String,
    pub expires_at_ms: i64,
    pub interval_s: u64,
}

#[derive(Debug, Clone)]
pub enum CibaOutcome {
    Approved {
        access_token: Secret,
        expires_at_ms: i64,
        /// What the approval covered (RFC 9396), as the token response returned it;
        /// `None` when the server returned none.
        authorization_details: Option<Vec<serde_json::Value>>,
    },
    Denied,
    Expired,
    Cancelled,
}

pub struct CibaClient {
    http: reqwest::Client,
    settings: AuthSettings,
    agent: super::agent::AgentAuth,
}

impl CibaClient {
    pub fn new(settings: AuthSettings, agent: impl Into<super::agent::AgentAuth>) -> CibaClient {
        CibaClient {
            http: super::http_client(),
            settings,
            agent: agent.into(),
        }
    }

    /// How long one protocol second lasts (one second, except in fast sandbox tests).
    pub fn protocol_second(&self) -> std::time::Duration {
        self.settings.poll_unit
    }

    /// `login_hint` in Auth0's iss_sub format for `sub`.
    pub fn login_hint(&self, sub: &str) -> String {
        serde_json::json!({"format": "iss_sub", "iss": self.settings.issuer(), "sub": sub})
            .to_string()
    }

    /// Starts a request for `login_hint_sub` (the user, or the team lead a rule names).
    /// `scope` gets `openid` added if missing; the audience is the dealflow API so the
    /// approved token can be the subject of a Token Vault exchange.
    pub async fn start(
        &self,
        login_hint_sub: &str,
        binding_message: &str,
        scope: &str,
    ) -> Result<CibaRequest, AuthError> {
        self.start_with_details(login_hint_sub, binding_message, scope, None)
            .await
    }

    /// [`CibaClient::start`] with RFC 9396 `authorization_details` (a JSON array, as a
    /// string): the authenticator shows the entries and the token carries back those
    /// approved.
    pub async fn start_with_details(
        &self,
        login_hint_sub: &str,
        binding_message: &str,
        scope: &str,
        authorization_details: Option<&str>,
    ) -> Result<CibaRequest, AuthError> {
        let scope = if scope.split(' ').any(|s| s == "openid") {
            scope.to_string()
        } else {
            format!("openid {scope}").trim().to_string()
        };
        let hint = self.login_hint(login_hint_sub);
        let auth = self.agent.fields(&self.settings)?;
        let mut form: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form.extend([
            ("client_id", self.settings.agent_client_id.as_str()),
            ("login_hint", &hint),
            ("scope", &scope),
            ("binding_message", binding_message),
            ("audience", &self.settings.audience),
        ]);
        if let Some(d) = authorization_details {
            form.push(("authorization_details", d));
        }
        // The request's lifetime counts from before it was sent: the server's clock
        // starts later, so ours never outlives it. Auth0 answers access_denied for both a
        // no and an expiry; a deadline later than the server's would read an expiry as a no.
        let sent_at = crate::wall::now_ms();
        let v = post_form(&self.http, &self.settings, ENDPOINT_AUTHORIZE, &form).await?;
        let id = str_field(&v, "auth_req_id").ok_or_else(|| AuthError::Transport {
            endpoint: ENDPOINT_AUTHORIZE.into(),
            message: "response has no auth_req_id".into(),
        })?;
        let expires_in = int_field(&v, "expires_in").unwrap_or(300);
        let unit_ms = self.settings.poll_unit.as_millis().min(i64::MAX as u128) as i64;
        Ok(CibaRequest {
            auth_req_id: Secret::new(id),
            binding_message: binding_message.into(),
            expires_at_ms: sent_at + expires_in * unit_ms,
            interval_s: int_field(&v, "interval").unwrap_or(5).max(0) as u64,
        })
    }

    /// Polls until approved, denied, expired or cancelled. Other Auth0 errors are returned.
    pub async fn poll(
        &self,
        req: &CibaRequest,
        cancel: &CancellationToken,
    ) -> Result<CibaOutcome, AuthError> {
        let mut interval = req.interval_s;
        let mut faults = 0u32;
        loop {
            if crate::wall::now_ms() >= req.expires_at_ms {
                return Ok(CibaOutcome::Expired);
            }
            if !wait(&self.settings, interval, cancel).await {
                return Ok(CibaOutcome::Cancelled);
            }
            // A fresh assertion per poll: each is single-use (its jti).
            let auth = self.agent.fields(&self.settings)?;
            let mut form = vec![
                ("grant_type", GRANT_TYPE),
                ("auth_req_id", req.auth_req_id.expose()),
                ("client_id", self.settings.agent_client_id.as_str()),
            ];
            form.extend(auth.iter().map(|(k, v)| (*k, v.as_str())));
            let r = post_form(&self.http, &self.settings, ENDPOINT_TOKEN, &form).await;
            match r {
                Ok(v) => {
                    let at = str_field(&v, "access_token").ok_or_else(|| AuthError::Transport {
                        endpoint: ENDPOINT_TOKEN.into(),
                        message: "response has no access_token".into(),
                    })?;
                    let expires_in = int_field(&v, "expires_in").unwrap_or(0);
                    let authorization_details = v
                        .get("authorization_details")
                        .and_then(serde_json::Value::as_array)
                        .cloned();
                    return Ok(CibaOutcome::Approved {
                        access_token: Secret::new(at),
                        expires_at_ms: crate::wall::now_ms() + expires_in * 1000,
                        authorization_details,
                    });
                }
                Err(e) => match e.code() {
                    Some("authorization_pending") => faults = 0,
                    Some("slow_down") => {
                        if let AuthError::Server {
                            interval: bi,
                            retry_after,
                            ..
                        } = &e
                        {
                            interval = slowed(interval, *bi, *retry_after);
                        }
                        tracing::debug!(interval, "ciba: slow_down");
                    }
                    // Auth0 uses access_denied for both "denied" and "expired": tell
                    // them apart by the request's own expiry.
                    Some("access_denied") => {
                        return Ok(if crate::wall::now_ms() >= req.expires_at_ms {
                            CibaOutcome::Expired
                        } else {
                            CibaOutcome::Denied
                        });
                    }
                    Some("expired_token") => return Ok(CibaOutcome::Expired),
                    // A dropped connection is not the device's answer: poll on, slower,
                    // until the request expires.
                    _ if e.is_transient() && faults < super::TRANSIENT_RETRIES => {
                        faults += 1;
                        interval = super::backed_off(interval);
                        tracing::warn!(interval, error = %e, "ciba: transient fault; polling on");
                    }
                    _ => return Err(e),
                },
            }
        }
    }
}
