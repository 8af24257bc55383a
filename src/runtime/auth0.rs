//! The pipeline's credential seams served by the real Auth0 clients: Token Vault for
//! provider tokens (subject: the user's session or a CIBA-issued token), My Account for
//! the connection's granted scopes, and CIBA for device consent.

use super::batch::{DetailsSent, DeviceAnswer, DeviceConsent, DeviceRequest};
use super::credentials::{BoxFuture, CredentialError, Credentials, ProviderToken, Subject};
use crate::auth::AuthError;
use crate::auth::ciba::{CibaClient, CibaOutcome, CibaRequest};
use crate::auth::connect::ConnectClient;
use crate::auth::session::Session;
use crate::auth::vault::VaultClient;
use crate::core::domain::Connection;
use crate::core::permissions::Approver;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

fn cred_err(e: AuthError) -> CredentialError {
    match e {
        AuthError::Server {
            endpoint,
            status,
            error,
            description,
            ..
        } => CredentialError::Refused {
            endpoint,
            status,
            error,
            description,
        },
        AuthError::Transport { endpoint, message } => CredentialError::Unavailable {
            endpoint,
            detail: message,
        },
        AuthError::NotSignedIn => CredentialError::NoSession("run `dealflow login`".into()),
        AuthError::Disconnected(c) => CredentialError::NotConnected { connection: c },
        other => CredentialError::Unavailable {
            endpoint: "auth0".into(),
            detail: other.to_string(),
        },
    }
}

pub struct VaultCredentials {
    pub vault: VaultClient,
    pub session: Arc<Session>,
    /// Single-flight: concurrent executions needing the same token wait for the first
    /// exchange and then hit the vault client's cache (one exchange per connection).
    pub exchange_lock: tokio::sync::Mutex<()>,
}

impl Credentials for VaultCredentials {
    fn token<'a>(
        &'a self,
        connection: Connection,
        subject: &'a Subject,
    ) -> BoxFuture<'a, Result<ProviderToken, CredentialError>> {
        Box::pin(async move {
            let _one_at_a_time = self.exchange_lock.lock().await;
            let subject_token = match subject {
                Subject::User => self.session.access_token().await.map_err(cred_err)?,
                Subject::Ciba(t) => crate::auth::Secret::new(t.clone()),
            };
            let t = self
                .vault
                .exchange(subject_token.expose(), connection)
                .await
                .map_err(cred_err)?;
            Ok(ProviderToken::new(
                t.access_token.expose().to_string(),
                t.scopes,
                t.expires_at_ms,
            ))
        })
    }

    fn invalidate(&self, connection: Connection) {
        self.vault.invalidate(connection);
    }

    fn granted_scopes<'a>(
        &'a self,
        connection: Connection,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, CredentialError>> {
        Box::pin(async move {
            let accounts = ConnectClient::new(&self.session)
                .list()
                .await
                .map_err(cred_err)?;
            Ok(accounts
                .into_iter()
                .find(|a| a.connection == connection.as_str())
                .map(|a| a.scopes))
        })
    }
}

/// CIBA as the batch and the MCP server use it. The `auth_req_id` is a credential, so
/// callers (and the audit log) only see a digest of it; the request stays here.
pub struct CibaDevice {
    pub ciba: CibaClient,
    pub session: Arc<Session>,
    /// Requests in flight, with the `sub` each was sent to.
    pending: Mutex<HashMap<String, (CibaRequest, String)>>,
    /// Why the server refused `authorization_details`, once it has: later pushes from
    /// this process go without them instead of being refused first each time.
    details_refused: Mutex<Option<String>>,
    /// When this process last pushed to each approver, to stay under Auth0's push rate.
    pushes: Mutex<HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
}

/// Auth0 allows about 5 pushes a minute per approver; past that it refuses. A process
/// waits for a slot instead (the batch already gathers everything per approver into
/// one push, so only many single MCP or chat writes at once come near it).
const PUSHES_PER_MINUTE: usize = 5;

impl CibaDevice {
    pub fn new(ciba: CibaClient, session: Arc<Session>) -> CibaDevice {
        CibaDevice {
            ciba,
            session,
            pending: Mutex::new(HashMap::new()),
            details_refused: Mutex::new(None),
            pushes: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until a push to `sub` stays within the rate, and counts it.
    async fn push_slot(&self, sub: &str) {
        // A second's margin over the minute: our clock and the server's see a push at
        // slightly different moments.
        let window = self.ciba.protocol_second() * 61;
        loop {
            let wait = {
                let mut g = self.pushes.lock().unwrap_or_else(|p| p.into_inner());
                let sent = g.entry(sub.to_string()).or_default();
                let now = std::time::Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    sent.pop_front();
                }
                if sent.len() < PUSHES_PER_MINUTE {
                    sent.push_back(now);
                    return;
                }
                sent.front().map_or(window, |first| {
                    window.saturating_sub(now.duration_since(*first))
                })
            };
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "device push rate reached for this approver; waiting for a slot"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// A stable reference to a CIBA request that is safe to log.
pub fn request_ref(auth_req_id: &str) -> String {
    format!(
        "ciba-{}",
        &hex::encode(sha2::Sha256::digest(auth_req_id.as_bytes()))[..16]
    )
}

impl DeviceConsent for CibaDevice {
    fn request<'a>(
        &'a self,
        approver: &'a Approver,
        binding_message: &'a str,
        details: Option<&'a str>,
    ) -> BoxFuture<'a, Result<DeviceRequest, CredentialError>> {
        Box::pin(async move {
            let sub = match approver {
                Approver::User => self.session.sub().await.map_err(cred_err)?,
                Approver::TeamLead(sub) => sub.clone(),
            };
            self.push_slot(&sub).await;
            let known_refusal = self
                .details_refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let (req, sent) = match (details, known_refusal) {
                (None, _) => (
                    self.ciba.start(&sub, binding_message, "openid").await,
                    DetailsSent::NotAsked,
                ),
                (Some(_), Some(why)) => (
                    self.ciba.start(&sub, binding_message, "openid").await,
                    DetailsSent::Refused(why),
                ),
                (Some(d), None) => match self
                    .ciba
                    .start_with_details(&sub, binding_message, "openid", Some(d))
                    .await
                {
                    // A tenant without the type registered (or without RAR) refuses the
                    // parameter: push without it, and remember for this process.
                    Err(AuthError::Server {
                        error, description, ..
                    }) if error == "invalid_request"
                        && description.contains("authorization_details") =>
                    {
                        *self
                            .details_refused
                            .lock()
                            .unwrap_or_else(|p| p.into_inner()) = Some(description.clone());
                        (
                            self.ciba.start(&sub, binding_message, "openid").await,
                            DetailsSent::Refused(description),
                        )
                    }
                    other => (other, DetailsSent::Sent),
                },
            };
            let req = req.map_err(cred_err)?;
            let reference = request_ref(req.auth_req_id.expose());
            let out = DeviceRequest {
                auth_req_id: reference.clone(),
                expires_at_ms: req.expires_at_ms,
                details: sent,
            };
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(reference, (req, sub));
            Ok(out)
        })
    }

    fn wait<'a>(
        &'a self,
        req: &'a DeviceRequest,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<DeviceAnswer, CredentialError>> {
        Box::pin(async move {
            let Some((ciba_req, asked)) = self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&req.auth_req_id)
                .cloned()
            else {
                return Err(CredentialError::Unavailable {
                    endpoint: "/bc-authorize".into(),
                    detail: format!("unknown request {}", req.auth_req_id),
                });
            };
            let outcome = self.ciba.poll(&ciba_req, cancel).await;
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&req.auth_req_id);
            Ok(match outcome {
                Ok(CibaOutcome::Approved {
                    access_token,
                    expires_at_ms,
                    authorization_details,
                }) => {
                    // Who said yes is the token's verified subject, not whom we asked.
                    let claims = self.session.verify(&access_token).await.map_err(cred_err)?;
                    if claims.sub != asked {
                        return Err(CredentialError::Unavailable {
                            endpoint: "/oauth/token".into(),
                            detail: format!(
                                "the device approval was issued to {}, not to {asked} who was asked",
                                claims.sub
                            ),
                        });
                    }
                    DeviceAnswer::Approved {
                        token: access_token.expose().to_string(),
                        expires_at_ms,
                        sub: claims.sub,
                        // The signed claim proves it; the response body is the fallback
                        // for a server that returns details but does not sign them in.
                        details: claims.authorization_details.or(authorization_details),
                    }
                }
                Ok(CibaOutcome::Denied) => DeviceAnswer::Denied,
                Ok(CibaOutcome::Expired) => DeviceAnswer::Expired,
                Ok(CibaOutcome::Cancelled) | Err(AuthError::Cancelled) => DeviceAnswer::Cancelled,
                Err(AuthError::Expired { .. }) => DeviceAnswer::Expired,
                Err(AuthError::Denied { .. }) => DeviceAnswer::Denied,
                Err(e) => return Err(cred_err(e)),
            })
        })
    }
}
