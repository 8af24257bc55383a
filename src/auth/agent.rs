//! How the agent (confidential) client authenticates at the token and CIBA endpoints:
//! a client secret, or private_key_jwt — a short-lived JWT signed with a private key
//! whose public half is registered on the Auth0 client, so no shared secret exists to
//! leak. The key lives in the keyring like the secret; assertions are minted per request.

use super::{AuthError, AuthSettings, Secret};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::sync::Arc;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Clone)]
pub enum AgentAuth {
    Secret(Secret),
    PrivateKeyJwt {
        key: Arc<EncodingKey>,
        alg: Algorithm,
    },
}

impl std::fmt::Debug for AgentAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentAuth::Secret(_) => f.write_str("AgentAuth::Secret([redacted])"),
            AgentAuth::PrivateKeyJwt { alg, .. } => {
                write!(f, "AgentAuth::PrivateKeyJwt({alg:?}, [redacted])")
            }
        }
    }
}

impl From<Secret> for AgentAuth {
    fn from(s: Secret) -> AgentAuth {
        AgentAuth::Secret(s)
    }
}

impl AgentAuth {
    /// A private key in PEM (PKCS#8 or SEC1 EC P-256 → ES256; RSA → RS256). The error
    /// never quotes the key.
    pub fn private_key_pem(pem: &str) -> Result<AgentAuth, AuthError> {
        if let Ok(key) = EncodingKey::from_ec_pem(pem.as_bytes()) {
            return Ok(AgentAuth::PrivateKeyJwt {
                key: Arc::new(key),
                alg: Algorithm::ES256,
            });
        }
        if let Ok(key) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
            return Ok(AgentAuth::PrivateKeyJwt {
                key: Arc::new(key),
                alg: Algorithm::RS256,
            });
        }
        Err(AuthError::Config(
            "the agent private key is not an EC P-256 or RSA private key in PEM".into(),
        ))
    }

    /// The form fields that authenticate the agent client (besides `client_id`).
    pub fn fields(
        &self,
        settings: &AuthSettings,
    ) -> Result<Vec<(&'static str, String)>, AuthError> {
        match self {
            AgentAuth::Secret(s) => Ok(vec![("client_secret", s.expose().to_string())]),
            AgentAuth::PrivateKeyJwt { key, alg } => {
                let now = crate::wall::now_ms() / 1000;
                let claims = serde_json::json!({
                    "iss": settings.agent_client_id,
                    "sub": settings.agent_client_id,
                    // Auth0 expects the tenant's URL with its trailing slash.
                    "aud": format!("{}/", settings.base_url.trim_end_matches('/')),
                    "iat": now,
                    "exp": now + 60,
                    "jti": crate::wall::random_token("jti-"),
                });
                let jwt = jsonwebtoken::encode(&Header::new(*alg), &claims, key).map_err(|e| {
                    AuthError::Config(format!("cannot sign the client assertion: {e}"))
                })?;
                Ok(vec![
                    ("client_assertion_type", ASSERTION_TYPE.to_string()),
                    ("client_assertion", jwt),
                ])
            }
        }
    }
}
