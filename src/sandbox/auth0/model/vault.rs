//! Token Vault: exchanging the user's access or refresh token for a connection's
//! provider token (federated connection access token).

use super::{
    API_AUDIENCE, Auth0State, CONNECTIONS, ClientApp, OAuthError, TOKEN_TYPE_ACCESS,
    TOKEN_TYPE_FEDERATED, TOKEN_TYPE_REFRESH, VaultGrant, err,
};

impl Auth0State {
    pub(super) fn vault_exchange(
        &self,
        client: &ClientApp,
        subject_token: &str,
        subject_token_type: &str,
        requested_token_type: &str,
        connection: &str,
    ) -> Result<VaultGrant, OAuthError> {
        if requested_token_type != TOKEN_TYPE_FEDERATED {
            return Err(err(
                400,
                "invalid_request",
                "requested_token_type must be http://auth0.com/oauth/token-type/federated-connection-access-token",
            ));
        }
        let sub = match subject_token_type {
            TOKEN_TYPE_ACCESS => {
                let claims = self.verify_access(subject_token).ok_or_else(|| {
                    err(401, "invalid_grant", "Invalid or expired subject token.")
                })?;
                if claims.aud != API_AUDIENCE {
                    return Err(err(
                        403,
                        "unauthorized_client",
                        "The client is not linked to the subject token's audience.",
                    ));
                }
                claims.sub
            }
            TOKEN_TYPE_REFRESH => {
                let g = self.lock();
                match g.refresh.get(subject_token) {
                    Some(r)
                        if r.client_id == client.client_id
                            && !r.revoked
                            && !g.revoked_families.contains(&r.family) =>
                    {
                        r.sub.clone()
                    }
                    _ => {
                        return Err(err(
                            401,
                            "invalid_grant",
                            "Unknown or invalid refresh token.",
                        ));
                    }
                }
            }
            _ => {
                return Err(err(
                    400,
                    "invalid_request",
                    "Unsupported subject_token_type.",
                ));
            }
        };
        if !CONNECTIONS.contains(&connection) {
            return Err(err(
                400,
                "invalid_request",
                format!(
                    "Connection '{connection}' does not exist or is not enabled for Token Vault."
                ),
            ));
        }
        let account = {
            let mut g = self.lock();
            g.vault_exchanges += 1;
            g.accounts
                .iter()
                .find(|a| a.sub == sub && a.connection == connection)
                .cloned()
        };
        let Some(account) = account else {
            return Err(err(
                401,
                "federated_connection_refresh_token_not_found",
                format!(
                    "Federated connection refresh token not found for connection '{connection}'."
                ),
            ));
        };
        if account.provider_revoked {
            return Err(err(
                401,
                "federated_connection_refresh_token_flow_failed",
                "Failed to obtain a federated access token: the provider rejected the stored refresh token.",
            ));
        }
        Ok(VaultGrant {
            sub,
            connection: connection.to_string(),
            scopes: account.scopes,
            ttl_ms: self.timing().provider_token_ttl_ms,
        })
    }
}
