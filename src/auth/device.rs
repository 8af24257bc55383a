//! OAuth 2.0 Device Authorization Grant (RFC 8628) with the public login client.
//!
//! Polling rules: wait `interval` seconds counted from the previous response; on
//! `slow_down` add 5 s (or the server's `interval`/`Retry-After` if larger) for this and
//! every later poll; stop on `expired_token`, `access_denied` or any other error.

use super::{AuthError, AuthSettings, Secret, int_field, post_form, slowed, str_field, wait};
use tokio_util::sync::CancellationToken;

const ENDPOINT_CODE: &str = "/oauth/device/code";
const ENDPOINT_TOKEN: &str = "/oauth/token";

/// What to show the user. `device_code` stays private.
#[derive(Debug, Clone)]
pub struct DevicePrompt {
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in_s: u64,
    pub interval_s: u64,
    pub expires_at_ms: i64,
    device_code: Secret,
}

/// Tokens from a successful sign-in or refresh.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub id_token: Option<Secret>,
    pub expires_at_ms: i64,
    pub scope: String,
}

impl TokenSet {
    pub(crate) fn from_json(v: &serde_json::Value, endpoint: &str) -> Result<TokenSet, AuthError> {
        let at = str_field(v, "access_token").ok_or_else(|| AuthError::Transport {
            endpoint: endpoint.into(),
            message: "response has no access_token".into(),
        })?;
        let expires_in = int_field(v, "expires_in").unwrap_or(0);
        Ok(TokenSet {
            access_token: Secret::new(at),
            refresh_token: str_field(v, "refresh_token").map(Secret::new),
            id_token: str_field(v, "id_token").map(Secret::new),
            expires_at_ms: crate::wall::now_ms() + expires_in * 1000,
            scope: str_field(v, "scope").unwrap_or_default(),
        })
    }
}

pub struct DeviceLogin {
    http: reqwest::Client,
    settings: AuthSettings,
}

impl DeviceLogin {
    pub fn new(settings: AuthSettings) -> DeviceLogin {
        DeviceLogin {
            http: super::http_client(),
            settings,
        }
    }

    /// Asks for a device code: scope `openid profile email offline_access`, audience the API.
    pub async fn start(&self) -> Result<DevicePrompt, AuthError> {
        let v = post_form(
            &self.http,
            &self.settings,
            ENDPOINT_CODE,
            &[
                ("client_id", &self.settings.login_client_id),
                ("scope", "openid profile email offline_access"),
                ("audience", &self.settings.audience),
            ],
        )
        .await?;
        let missing = |k: &str| AuthError::Transport {
            endpoint: ENDPOINT_CODE.into(),
            message: format!("response has no {k}"),
        };
        let expires_in = int_field(&v, "expires_in").unwrap_or(900).max(0) as u64;
        Ok(DevicePrompt {
            device_code: Secret::new(
                str_field(&v, "device_code").ok_or_else(|| missing("device_code"))?,
            ),
            user_code: str_field(&v, "user_code").ok_or_else(|| missing("user_code"))?,
            verification_uri: str_field(&v, "verification_uri")
                .ok_or_else(|| missing("verification_uri"))?,
            verification_uri_complete: str_field(&v, "verification_uri_complete"),
            expires_in_s: expires_in,
            interval_s: int_field(&v, "interval").unwrap_or(5).max(0) as u64,
            expires_at_ms: crate::wall::now_ms()
                + (expires_in as i64)
                    * self.settings.poll_unit.as_millis().min(i64::MAX as u128) as i64,
        })
    }

    /// Polls until the user approves, refuses, or the code expires.
    pub async fn complete(
        &self,
        prompt: &DevicePrompt,
        cancel: &CancellationToken,
    ) -> Result<TokenSet, AuthError> {
        let mut interval = prompt.interval_s;
        let mut faults = 0u32;
        loop {
            if !wait(&self.settings, interval, cancel).await {
                return Err(AuthError::Cancelled);
            }
            let r = post_form(
                &self.http,
                &self.settings,
                ENDPOINT_TOKEN,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", prompt.device_code.expose()),
                    ("client_id", &self.settings.login_client_id),
                ],
            )
            .await;
            match r {
                Ok(v) => return TokenSet::from_json(&v, ENDPOINT_TOKEN),
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
                        tracing::debug!(interval, "device flow: slow_down");
                    }
                    Some("expired_token") => {
                        return Err(AuthError::Expired {
                            endpoint: ENDPOINT_TOKEN.into(),
                        });
                    }
                    Some("access_denied") => {
                        return Err(AuthError::Denied {
                            endpoint: ENDPOINT_TOKEN.into(),
                        });
                    }
                    // A dropped connection is not an answer: keep polling, slower, while
                    // the code is still valid.
                    _ if e.is_transient()
                        && faults < super::TRANSIENT_RETRIES
                        && crate::wall::now_ms() < prompt.expires_at_ms =>
                    {
                        faults += 1;
                        interval = super::backed_off(interval);
                        tracing::warn!(interval, error = %e, "device flow: transient fault; polling on");
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    /// The current interval after slow_downs is internal; exposed for tests/UI.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }
}
