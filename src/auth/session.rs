//! The signed-in user: the refresh token (in the keyring), the current API access token
//! (in memory, renewed shortly before expiry) and the user's `sub`.
//!
//! Refreshes are serialised: with refresh-token rotation, two concurrent refreshes with
//! the same token would trip Auth0's reuse detection and revoke the whole family. Within
//! a process by a mutex; across processes sharing one keyring entry (the TUI, `dealflow
//! mcp` and a CLI command on one box) by an exclusive lock on a file, held from reading
//! the keyring to storing the rotated token.

use super::device::TokenSet;
use super::keyring::{ACCESS_TOKEN, REFRESH_TOKEN, SecretStore};
use super::{AuthError, AuthSettings, Secret, TokenClaims, post_form};
use std::sync::Arc;

const ENDPOINT_TOKEN: &str = "/oauth/token";
const ENDPOINT_REVOKE: &str = "/oauth/revoke";

struct Cached {
    token: Secret,
    expires_at_ms: i64,
    claims: TokenClaims,
}

/// [`Cached`] as the keyring keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    token: String,
    expires_at_ms: i64,
    claims: TokenClaims,
}

impl Cached {
    fn to_stored(&self) -> String {
        serde_json::to_string(&Stored {
            token: self.token.expose().to_string(),
            expires_at_ms: self.expires_at_ms,
            claims: self.claims.clone(),
        })
        .unwrap_or_default()
    }

    fn from_stored(text: &str) -> Option<Cached> {
        let s: Stored = serde_json::from_str(text).ok()?;
        Some(Cached {
            token: Secret::new(s.token),
            expires_at_ms: s.expires_at_ms,
            claims: s.claims,
        })
    }
}

struct Inner {
    refresh: Option<Secret>,
    access: Option<Cached>,
}

pub struct Session {
    http: reqwest::Client,
    settings: AuthSettings,
    store: Arc<dyn SecretStore>,
    inner: tokio::sync::Mutex<Inner>,
    /// The file whose exclusive lock serialises refreshes across processes.
    refresh_lock: Option<std::path::PathBuf>,
}

/// Where processes sharing this user's keyring serialise refreshes.
pub fn default_refresh_lock() -> Option<std::path::PathBuf> {
    crate::config::project_dirs().map(|d| d.data_dir().join("refresh.lock"))
}

/// Takes the cross-process refresh lock (released when the file is dropped). A lock that
/// cannot be taken (unwritable dir) is reported and skipped: refreshing without it only
/// risks the race it exists for, while refusing would sign the user out.
async fn lock_refreshes(path: std::path::PathBuf) -> Option<std::fs::File> {
    let shown = path.display().to_string();
    let taken = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut o = std::fs::OpenOptions::new();
        o.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let f = o.open(&path)?;
        f.lock()?;
        Ok(f)
    })
    .await;
    match taken {
        Ok(Ok(f)) => Some(f),
        Ok(Err(e)) => {
            tracing::warn!(path = %shown, error = %e, "cannot take the refresh lock; refreshing without it");
            None
        }
        Err(e) => {
            tracing::warn!(path = %shown, error = %e, "refresh lock task failed");
            None
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuthError::Keyring(format!("keyring task failed: {e}")))?
}

impl Session {
    /// After a successful device login: stores the refresh token and verifies the
    /// access token (signature, issuer, audience) to learn the user's `sub`.
    pub async fn from_tokens(
        settings: AuthSettings,
        store: Arc<dyn SecretStore>,
        tokens: TokenSet,
    ) -> Result<Session, AuthError> {
        let http = super::http_client();
        let claims = super::verify_access_token(&http, &settings, &tokens.access_token).await?;
        if let Some(rt) = &tokens.refresh_token {
            let (s, v) = (store.clone(), rt.expose().to_string());
            blocking(move || s.set(REFRESH_TOKEN, &v)).await?;
        }
        let stored = Cached {
            token: tokens.access_token.clone(),
            expires_at_ms: tokens.expires_at_ms,
            claims: claims.clone(),
        }
        .to_stored();
        let s = store.clone();
        let _ = blocking(move || s.set(ACCESS_TOKEN, &stored)).await;
        Ok(Session {
            http,
            settings,
            store,
            inner: tokio::sync::Mutex::new(Inner {
                refresh: tokens.refresh_token,
                access: Some(Cached {
                    token: tokens.access_token,
                    expires_at_ms: tokens.expires_at_ms,
                    claims,
                }),
            }),
            refresh_lock: None,
        })
    }

    /// Resumes from the refresh token in the keyring (no network until a token is needed).
    pub async fn resume(
        settings: AuthSettings,
        store: Arc<dyn SecretStore>,
    ) -> Result<Session, AuthError> {
        let s = store.clone();
        let rt = blocking(move || s.get(REFRESH_TOKEN))
            .await?
            .ok_or(AuthError::NotSignedIn)?;
        // The access token an earlier command got is good until it expires.
        let s = store.clone();
        let access = blocking(move || s.get(ACCESS_TOKEN))
            .await
            .ok()
            .flatten()
            .and_then(|t| Cached::from_stored(&t));
        Ok(Session {
            http: super::http_client(),
            settings,
            store,
            inner: tokio::sync::Mutex::new(Inner {
                refresh: Some(Secret::new(rt)),
                access,
            }),
            refresh_lock: None,
        })
    }

    /// Serialises this session's refreshes with other processes that use `path` (see
    /// [`default_refresh_lock`]).
    pub fn with_refresh_lock(mut self, path: Option<std::path::PathBuf>) -> Session {
        self.refresh_lock = path;
        self
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The current API access token, refreshed first if it expires within the margin.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        let mut g = self.inner.lock().await;
        let margin = self.settings.refresh_margin.as_millis() as i64;
        if let Some(c) = &g.access
            && c.expires_at_ms - margin > crate::wall::now_ms()
        {
            return Ok(c.token.clone());
        }
        let tokens = self.refresh_locked(&mut g, None).await?;
        let claims =
            super::verify_access_token(&self.http, &self.settings, &tokens.access_token).await?;
        let token = tokens.access_token.clone();
        let cached = Cached {
            token: tokens.access_token,
            expires_at_ms: tokens.expires_at_ms,
            claims,
        };
        let (s, text) = (self.store.clone(), cached.to_stored());
        if let Err(e) = blocking(move || s.set(ACCESS_TOKEN, &text)).await {
            tracing::warn!(error = %e, "cannot cache the access token in the keyring");
        }
        g.access = Some(cached);
        Ok(token)
    }

    /// Verifies another access token of this tenant and API (a CIBA-issued one) against
    /// the tenant's keys, and returns its claims: who it was issued to.
    pub async fn verify(&self, token: &Secret) -> Result<super::TokenClaims, AuthError> {
        super::verify_access_token(&self.http, &self.settings, token).await
    }

    /// The signed-in user's Auth0 id (`auth0|...`), from the verified access token.
    pub async fn sub(&self) -> Result<String, AuthError> {
        self.access_token().await?;
        let g = self.inner.lock().await;
        g.access
            .as_ref()
            .map(|c| c.claims.sub.clone())
            .ok_or(AuthError::NotSignedIn)
    }

    /// A token for another audience from the same refresh token (Auth0 multi-resource
    /// refresh), e.g. the My Account API. Not cached.
    pub async fn token_for_audience(&self, audience: &str) -> Result<Secret, AuthError> {
        let mut g = self.inner.lock().await;
        Ok(self
            .refresh_locked(&mut g, Some(audience))
            .await?
            .access_token)
    }

    async fn refresh_locked(
        &self,
        g: &mut Inner,
        audience: Option<&str>,
    ) -> Result<TokenSet, AuthError> {
        // Another dealflow process may have rotated the token since we read it: using
        // our spent copy would trip reuse detection and revoke the whole family. Under
        // the lock, the keyring read below sees any rotation that finished before it.
        let _other_processes_wait = match &self.refresh_lock {
            Some(p) => lock_refreshes(p.clone()).await,
            None => None,
        };
        let st = self.store.clone();
        if let Ok(Some(current)) = blocking(move || st.get(REFRESH_TOKEN)).await
            && g.refresh.as_ref().is_none_or(|r| r.expose() != current)
        {
            g.refresh = Some(Secret::new(current));
        }
        let rt = g.refresh.clone().ok_or(AuthError::NotSignedIn)?;
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", self.settings.login_client_id.as_str()),
            ("refresh_token", rt.expose()),
        ];
        if let Some(a) = audience {
            form.push(("audience", a));
        }
        let v = match post_form(&self.http, &self.settings, ENDPOINT_TOKEN, &form).await {
            Ok(v) => v,
            // Revoked, expired or reused: it will never work again. Keep no dead token
            // (doctor would call it present) and say what helps.
            Err(AuthError::Server {
                error, description, ..
            }) if error == "invalid_grant" => {
                // Only the token that was refused goes: another process (or a fresh
                // `login`) may have stored a new one meanwhile.
                let (s, refused) = (self.store.clone(), rt.expose().to_string());
                let _ = blocking(move || {
                    if s.get(REFRESH_TOKEN)?.as_deref() == Some(refused.as_str()) {
                        s.delete(ACCESS_TOKEN)?;
                        s.delete(REFRESH_TOKEN)?;
                    }
                    Ok(())
                })
                .await;
                g.refresh = None;
                g.access = None;
                return Err(AuthError::SignInEnded(if description.is_empty() {
                    error
                } else {
                    description
                }));
            }
            Err(e) => return Err(e),
        };
        let tokens = TokenSet::from_json(&v, ENDPOINT_TOKEN)?;
        if let Some(new_rt) = &tokens.refresh_token {
            // Rotation: the old token is now spent; keep the new one.
            let (s, val) = (self.store.clone(), new_rt.expose().to_string());
            blocking(move || s.set(REFRESH_TOKEN, &val)).await?;
            g.refresh = Some(new_rt.clone());
        }
        Ok(tokens)
    }

    /// `/userinfo` for the signed-in user.
    pub async fn userinfo(&self) -> Result<serde_json::Value, AuthError> {
        let at = self.access_token().await?;
        let path = "/userinfo";
        let resp = self
            .http
            .get(self.settings.url(path))
            .bearer_auth(at.expose())
            .send()
            .await
            .map_err(|_| AuthError::Transport {
                endpoint: path.into(),
                message: "request failed".into(),
            })?;
        super::read_json(path, resp).await
    }

    /// Revokes the refresh token at Auth0 and deletes it from the keyring. The keyring
    /// entry is deleted even if revocation fails; the revocation error is returned.
    pub async fn logout(&self) -> Result<(), AuthError> {
        let mut g = self.inner.lock().await;
        let revoked = match g.refresh.take() {
            Some(rt) => post_form(
                &self.http,
                &self.settings,
                ENDPOINT_REVOKE,
                &[
                    ("client_id", self.settings.login_client_id.as_str()),
                    ("token", rt.expose()),
                ],
            )
            .await
            .map(|_| ()),
            None => Ok(()),
        };
        g.access = None;
        let s = self.store.clone();
        blocking(move || {
            s.delete(ACCESS_TOKEN)?;
            s.delete(REFRESH_TOKEN)
        })
        .await?;
        revoked
    }
}
