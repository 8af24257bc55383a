//! The token endpoint: client authentication (secret or private_key_jwt), minting
//! access, ID and refresh tokens, the refresh grant with reuse detection and
//! revocation, and `/oauth/token`'s dispatch to each grant.

use super::{
    AccessClaims, Auth0State, ClientApp, ClientCred, GRANT_CIBA, GRANT_DEVICE, GRANT_REFRESH,
    GRANT_VAULT, OAuthError, RefreshRec, TokenOutcome, constant_eq, err, split_scope,
};
use crate::sandbox::state::random_token;
use std::collections::HashMap;

impl Auth0State {
    /// Registers a public key (PEM, EC P-256 or RSA) for `client_id`: the client may then
    /// authenticate with private_key_jwt, as with an Auth0 client credential.
    pub fn register_client_key(&self, client_id: &str, public_pem: &str) -> bool {
        match self.lock().clients.get_mut(client_id) {
            Some(c) => {
                c.jwt_public_key = Some(public_pem.to_string());
                true
            }
            None => false,
        }
    }

    /// A private_key_jwt client assertion: signed by the client's registered key, `iss` =
    /// `sub` = client id, `aud` = this tenant, short-lived, `jti` never seen before.
    fn verify_assertion(&self, client: &ClientApp, jwt: &str) -> Result<(), OAuthError> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
        let fail = |why: &str| {
            err(
                401,
                "invalid_client",
                format!("Client assertion rejected: {why}."),
            )
        };
        let pem = client
            .jwt_public_key
            .as_deref()
            .ok_or_else(|| fail("no credential is registered for private_key_jwt"))?;
        let header = decode_header(jwt).map_err(|_| fail("malformed JWT"))?;
        let key = match header.alg {
            Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::RS256 | Algorithm::PS256 => DecodingKey::from_rsa_pem(pem.as_bytes()),
            _ => return Err(fail("unsupported alg")),
        }
        .map_err(|_| fail("the registered key does not match the alg"))?;
        let issuer = self.issuer();
        let mut v = Validation::new(header.alg);
        v.set_audience(&[issuer.as_str(), issuer.trim_end_matches('/')]);
        v.set_issuer(&[client.client_id.as_str()]);
        v.sub = Some(client.client_id.clone());
        v.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub", "jti"]);
        v.leeway = 5;
        // The sandbox clock may run fast (tests); the JWT carries wall-clock times.
        let data = decode::<serde_json::Value>(jwt, &key, &v).map_err(|e| fail(&format!("{e}")))?;
        let (iat, exp) = (
            data.claims["iat"].as_i64().unwrap_or(0),
            data.claims["exp"].as_i64().unwrap_or(0),
        );
        if exp - iat > 300 {
            return Err(fail("lifetime over 5 minutes"));
        }
        if iat == 0 {
            return Err(fail("no iat"));
        }
        let jti = data.claims["jti"].as_str().unwrap_or("").to_string();
        if jti.is_empty() {
            return Err(fail("no jti"));
        }
        if !self.lock().assertion_jtis.insert(jti) {
            return Err(fail("jti replayed"));
        }
        Ok(())
    }

    /// Authenticates the client of a request and checks it may use `grant`.
    pub fn authenticate(
        &self,
        client_id: Option<&str>,
        cred: &ClientCred,
        grant: &str,
    ) -> Result<ClientApp, OAuthError> {
        let Some(client_id) = client_id.filter(|c| !c.is_empty()) else {
            return Err(err(
                400,
                "invalid_request",
                "Missing required parameter: client_id",
            ));
        };
        let client = self
            .lock()
            .clients
            .get(client_id)
            .cloned()
            .ok_or_else(|| err(401, "invalid_client", "Unknown client."))?;
        match (&client.secret, cred) {
            (_, ClientCred::Assertion(jwt)) => self.verify_assertion(&client, jwt)?,
            (Some(expected), ClientCred::Secret(given)) => {
                if !constant_eq(expected.as_bytes(), given.as_bytes()) {
                    return Err(err(401, "invalid_client", "Client authentication failed."));
                }
            }
            (Some(_), ClientCred::None) => {
                return Err(err(
                    401,
                    "invalid_client",
                    "Client authentication is required for this client (confidential).",
                ));
            }
            (None, ClientCred::Secret(_)) => {
                return Err(err(
                    401,
                    "invalid_client",
                    "This client is public (token_endpoint_auth_method none); do not send a client_secret.",
                ));
            }
            (None, ClientCred::None) => {}
        }
        if !client.grants.contains(&grant) {
            let why = if client.secret.is_none() {
                "a public client"
            } else {
                "a confidential client without this grant"
            };
            return Err(err(
                403,
                "unauthorized_client",
                format!("Grant type '{grant}' not allowed for the client ({why})."),
            ));
        }
        Ok(client)
    }

    // ---- tokens ------------------------------------------------------------------------

    fn mint_access_with(
        &self,
        sub: &str,
        client_id: &str,
        audience: &str,
        scope: &str,
        authorization_details: Option<Vec<serde_json::Value>>,
    ) -> Result<(String, i64), OAuthError> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| err(500, "server_error", "No signing key."))?;
        let ttl = self.timing().access_token_ttl_s;
        let iat = self.now() / 1000;
        let claims = AccessClaims {
            iss: self.issuer(),
            sub: sub.into(),
            aud: if audience.is_empty() {
                format!("{}userinfo", self.issuer())
            } else {
                audience.into()
            },
            azp: client_id.into(),
            scope: scope.into(),
            iat,
            exp: iat + ttl,
            jti: random_token(""),
            authorization_details,
        };
        let tok = signer
            .sign(&claims)
            .ok_or_else(|| err(500, "server_error", "Signing failed."))?;
        self.lock().issued.push(tok.clone());
        Ok((tok, ttl))
    }

    fn mint_id_token(&self, sub: &str, client_id: &str) -> Option<String> {
        let signer = self.signer.as_ref()?;
        let user = self.user(sub)?;
        let iat = self.now() / 1000;
        let tok = signer.sign(&serde_json::json!({
            "iss": self.issuer(), "sub": sub, "aud": client_id, "iat": iat,
            "exp": iat + 36000, "name": user.name, "email": user.email,
        }))?;
        self.lock().issued.push(tok.clone());
        Some(tok)
    }

    pub(super) fn mint_refresh(
        &self,
        family: Option<String>,
        sub: &str,
        client_id: &str,
        scope: &str,
        audience: &str,
    ) -> String {
        let tok = random_token("v1.sbx-rt-");
        let family = family.unwrap_or_else(|| random_token("fam-"));
        let mut g = self.lock();
        g.refresh.insert(
            tok.clone(),
            RefreshRec {
                family,
                sub: sub.into(),
                client_id: client_id.into(),
                scope: scope.into(),
                audience: audience.into(),
                used: false,
                revoked: false,
            },
        );
        g.issued.push(tok.clone());
        tok
    }

    /// Verifies an access token this tenant signed (signature, expiry, issuer).
    pub fn verify_access(&self, token: &str) -> Option<AccessClaims> {
        let signer = self.signer.as_ref()?;
        let c: AccessClaims = signer.verify(token, self.now() / 1000)?;
        (c.iss == self.issuer()).then_some(c)
    }

    pub fn jwks(&self) -> serde_json::Value {
        self.signer
            .as_ref()
            .map_or_else(|| serde_json::json!({"keys": []}), |s| s.jwks())
    }

    pub(super) fn token_response(
        &self,
        sub: &str,
        client_id: &str,
        scope: &str,
        audience: &str,
        refresh: Option<String>,
    ) -> Result<serde_json::Value, OAuthError> {
        self.token_response_with(sub, client_id, scope, audience, refresh, None)
    }

    pub(super) fn token_response_with(
        &self,
        sub: &str,
        client_id: &str,
        scope: &str,
        audience: &str,
        refresh: Option<String>,
        details: Option<Vec<serde_json::Value>>,
    ) -> Result<serde_json::Value, OAuthError> {
        let (at, ttl) = self.mint_access_with(sub, client_id, audience, scope, details.clone())?;
        let mut v = serde_json::json!({
            "access_token": at, "token_type": "Bearer", "expires_in": ttl, "scope": scope,
        });
        if let Some(d) = details {
            v["authorization_details"] = d.into();
        }
        if split_scope(scope).iter().any(|s| s == "openid")
            && let Some(id) = self.mint_id_token(sub, client_id)
        {
            v["id_token"] = id.into();
        }
        if let Some(rt) = refresh {
            v["refresh_token"] = rt.into();
        }
        Ok(v)
    }

    // ---- refresh tokens ---------------------------------------------------------------

    fn refresh(
        &self,
        client: &ClientApp,
        token: &str,
        audience: Option<&str>,
    ) -> Result<serde_json::Value, OAuthError> {
        let rec = {
            let mut g = self.lock();
            let Some(rec) = g.refresh.get(token).cloned() else {
                return Err(err(
                    403,
                    "invalid_grant",
                    "Unknown or invalid refresh token.",
                ));
            };
            if rec.client_id != client.client_id
                || rec.revoked
                || g.revoked_families.contains(&rec.family)
            {
                return Err(err(
                    403,
                    "invalid_grant",
                    "Unknown or invalid refresh token.",
                ));
            }
            if rec.used {
                // Reuse detection: revoke the whole family.
                g.revoked_families.insert(rec.family.clone());
                return Err(err(
                    403,
                    "invalid_grant",
                    "Unknown or invalid refresh token.",
                ));
            }
            if let Some(r) = g.refresh.get_mut(token) {
                r.used = true;
            }
            rec
        };
        // Multi-resource refresh: the login client may mint a My Account API token.
        let my_account = self.my_account_audience();
        let (aud, scope) = match audience {
            Some(a) if !a.is_empty() && a != rec.audience => {
                if a == my_account {
                    (
                        a.to_string(),
                        "openid create:me:connected_accounts read:me:connected_accounts delete:me:connected_accounts".to_string(),
                    )
                } else {
                    return Err(err(
                        403,
                        "access_denied",
                        format!("Refresh token not allowed for audience '{a}'."),
                    ));
                }
            }
            _ => (rec.audience.clone(), rec.scope.clone()),
        };
        let new_rt = self.mint_refresh(
            Some(rec.family.clone()),
            &rec.sub,
            &client.client_id,
            &rec.scope,
            &rec.audience,
        );
        self.token_response(&rec.sub, &client.client_id, &scope, &aud, Some(new_rt))
    }

    /// `/oauth/revoke`: revokes the refresh token's whole family.
    pub fn revoke(
        &self,
        client_id: Option<&str>,
        cred: &ClientCred,
        token: &str,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate(client_id, cred, GRANT_REFRESH)?;
        let mut g = self.lock();
        if let Some(rec) = g.refresh.get(token).cloned() {
            if rec.client_id != client.client_id {
                return Err(err(
                    403,
                    "access_denied",
                    "The token was issued to another client.",
                ));
            }
            g.revoked_families.insert(rec.family);
        }
        Ok(())
    }

    // ---- /oauth/token dispatch ------------------------------------------------------

    pub fn token(
        &self,
        p: &HashMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<TokenOutcome, OAuthError> {
        let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let (cid, cred) = ClientCred::from_request(p, basic);
        let cid = cid.as_deref();
        let secret = &cred;
        let Some(grant) = get("grant_type") else {
            return Err(err(
                400,
                "invalid_request",
                "Missing required parameter: grant_type",
            ));
        };
        let need = |k: &str| {
            get(k).ok_or_else(|| {
                err(
                    400,
                    "invalid_request",
                    format!("Missing required parameter: {k}"),
                )
            })
        };
        match grant {
            GRANT_DEVICE => {
                let client = self.authenticate(cid, secret, GRANT_DEVICE)?;
                self.poll_device(&client, need("device_code")?)
                    .map(TokenOutcome::Json)
            }
            GRANT_REFRESH => {
                let client = self.authenticate(cid, secret, GRANT_REFRESH)?;
                self.refresh(&client, need("refresh_token")?, get("audience"))
                    .map(TokenOutcome::Json)
            }
            GRANT_CIBA => {
                let client = self.authenticate(cid, secret, GRANT_CIBA)?;
                self.poll_ciba(&client, need("auth_req_id")?)
                    .map(TokenOutcome::Json)
            }
            GRANT_VAULT => {
                let client = self.authenticate(cid, secret, GRANT_VAULT)?;
                self.vault_exchange(
                    &client,
                    need("subject_token")?,
                    need("subject_token_type")?,
                    need("requested_token_type")?,
                    need("connection")?,
                )
                .map(TokenOutcome::Vault)
            }
            other => Err(err(
                400,
                "unsupported_grant_type",
                format!("Unsupported grant type: {other}"),
            )),
        }
    }
}
